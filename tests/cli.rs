//! The `dnslb` binary as scripts and users run it.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;

use crossbeam_channel::Receiver;

use support::*;

/// Starts TS1, TS2 (the course tables) and an LS with a 0.2 s timeout; the
/// LS's stderr lines come on the channel.
fn course_system_logged(extra_ls_args: &[&str]) -> (Running, Running, Running, Receiver<String>) {
    let (ts1, ts2) = course_tses();
    let (p1, p2) = (ts1.addr.port().to_string(), ts2.addr.port().to_string());
    // One TS by name, one by address: both kinds of host argument.
    let mut args = vec![
        "ls",
        "0",
        "127.0.0.1",
        &p1,
        "localhost",
        &p2,
        "--bind",
        "127.0.0.1",
        "--timeout",
        "0.2",
    ];
    args.extend_from_slice(extra_ls_args);
    let (ls, log) = spawn_server_bin_stderr(&args);
    (ts1, ts2, ls, log)
}

/// Like [`course_system_logged`], without reading the log.
fn course_system(extra_ls_args: &[&str]) -> (Running, Running, Running) {
    let (ts1, ts2, ls, _log) = course_system_logged(extra_ls_args);
    (ts1, ts2, ls)
}

#[test]
fn smoke() {
    let (_ts1, _ts2, ls) = course_system(&[]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(data("PROJ2-HNS.txt"), dir.path().join("PROJ2-HNS.txt")).unwrap();
    let port = ls.addr.port().to_string();
    let (status, stdout, stderr) = run_bin(dir.path(), &["client", "127.0.0.1", &port]);
    assert!(status.success(), "client failed: {stderr}");
    let expected = std::fs::read_to_string(data("example-RESOLVED.txt")).unwrap();
    let resolved = std::fs::read_to_string(dir.path().join("RESOLVED.txt")).unwrap();
    assert_eq!(
        resolved, expected,
        "RESOLVED.txt differs from the course's example"
    );
    assert_eq!(stdout, expected, "the client prints what it writes");
}

#[test]
fn ls_logs_which_ts_answered_with_v() {
    let (_ts1, _ts2, ls, log) = course_system_logged(&["-v"]);
    let mut client = LineClient::connect(ls.addr);
    assert_eq!(
        client.ask("www.princeton.edu"),
        "www.princeton.edu 128.1.1.4 A"
    );
    assert_eq!(
        client.ask("nothinghere.com"),
        "nothinghere.com - Error:HOST NOT FOUND"
    );
    let hit = line_containing(&log, "www.princeton.edu");
    assert!(
        hit.contains("answered by ts2") && hit.contains(" ms"),
        "{hit}"
    );
    let miss = line_containing(&log, "nothinghere.com");
    assert!(miss.contains("not found"), "{miss}");
}

#[test]
fn sigint_under_load_answers_every_query_received_and_prints_counters() {
    let (_ts1, _ts2, ls, log) = course_system_logged(&[]);
    let names = [
        "amazon.org",
        "nothinghere.com",
        "www.princeton.edu",
        "rutgers.com",
        "bad name",
    ];
    let mut clients: Vec<LineClient> = (0..8).map(|_| LineClient::connect(ls.addr)).collect();
    for client in &mut clients {
        let batch: String = (0..300)
            .map(|i| format!("{}\n", names[i % names.len()]))
            .collect();
        client.send_raw(batch.as_bytes());
    }
    ls.signal(libc::SIGINT);
    for client in &mut clients {
        for i in 0..300 {
            let reply = client.recv();
            assert!(
                reply.starts_with(names[i % names.len()]),
                "reply {i}: {reply}"
            );
        }
        assert_eq!(client.try_recv(), None);
    }
    assert_eq!(ls.wait().code(), Some(0));
    let counters = line_containing(&log, " = answered ");
    assert!(counters.contains("queries 2400 = "), "{counters}");
    assert!(counters.contains("invalid 480"), "{counters}");
    assert!(counters.contains("abandoned 0"), "{counters}");
}

#[test]
fn malformed_table_exits_2_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("bad.txt");
    std::fs::write(&table, "# fine\na.com 1.2.3.4 A\nb.com 1.2.3.4\n").unwrap();
    let (status, stdout, stderr) =
        run_bin(dir.path(), &["ts", "0", "--table", table.to_str().unwrap()]);
    assert_eq!(status.code(), Some(2));
    assert!(stderr.contains("bad.txt:3:"), "{stderr}");
    assert!(
        !stdout.contains("listening"),
        "a TS with a bad table must not start"
    );
}

#[test]
fn missing_table_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let (status, _, stderr) = run_bin(dir.path(), &["ts", "0", "--table", "nope.txt"]);
    assert_eq!(status.code(), Some(2));
    assert!(stderr.contains("nope.txt"), "{stderr}");
}

#[test]
fn bad_usage_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["ls", "0", "127.0.0.1"][..],
        &["ls", "0", "127.0.0.1", "notaport"],
        &["ls", "0", "127.0.0.1", "1", "--timeout", "-1"],
        &["ls", "0", "127.0.0.1", "1", "--timeout", "soon"],
        &["ts", "0", "--table", "x", "--dialect", "2021"],
        &["nonsense"],
    ] {
        let (status, _, stderr) = run_bin(dir.path(), args);
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
        assert!(!stderr.is_empty(), "{args:?} printed no error");
    }
}

#[test]
fn client_against_a_closed_port_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("PROJ2-HNS.txt"), "a.com\n").unwrap();
    let port = closed_port().port().to_string();
    let (status, _, stderr) = run_bin(dir.path(), &["client", "127.0.0.1", &port]);
    assert_eq!(status.code(), Some(1));
    assert!(
        stderr.contains("cannot connect") && stderr.contains(&port),
        "{stderr}"
    );
    assert!(!dir.path().join("RESOLVED.txt").exists());
}

#[test]
fn client_keeps_answers_when_the_connection_drops_mid_file() {
    // An LS that answers two queries, then closes.
    let ls = fake_server(|mut stream| {
        let mut seen = 0;
        let mut buf = [0u8; 64];
        while seen < 2 {
            let Ok(n) = stream.read(&mut buf) else { return };
            if n == 0 {
                return;
            }
            for _ in buf[..n].iter().filter(|&&b| b == b'\n') {
                seen += 1;
                let _ = stream.write_all(format!("answer{seen}\n").as_bytes());
            }
        }
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("names.txt"),
        "a.com\n\n  \nb.com\nc.com\nd.com\n",
    )
    .unwrap();
    let port = ls.port().to_string();
    let (status, _, stderr) = run_bin(
        dir.path(),
        &[
            "client",
            "127.0.0.1",
            &port,
            "--input",
            "names.txt",
            "--output",
            "out.txt",
        ],
    );
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("after 2 of 4"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out.txt")).unwrap(),
        "answer1\nanswer2\n"
    );
}

#[test]
fn bare_client_works_with_a_course_style_ls() {
    // A course LS: one recv() per query, one bare send() per reply.
    let ls = fake_server(|mut stream| {
        let mut buf = [0u8; 200];
        loop {
            let n = match stream.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let name = String::from_utf8_lossy(&buf[..n]).to_string();
            assert!(!name.contains('\n'), "bare queries carry no newline");
            let _ = stream.write_all(format!("{name} - Error:HOST NOT FOUND").as_bytes());
        }
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("PROJ2-HNS.txt"), "a.com\nb.com\n").unwrap();
    let port = ls.port().to_string();
    let (status, _, stderr) = run_bin(
        dir.path(),
        &["client", "127.0.0.1", &port, "--framing", "bare"],
    );
    assert!(status.success(), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("RESOLVED.txt")).unwrap(),
        "a.com - Error:HOST NOT FOUND\nb.com - Error:HOST NOT FOUND\n"
    );
}

#[test]
fn sigint_stops_each_server_with_exit_0() {
    let (ts1, ts2, ls) = course_system(&[]);
    // An idle client must not keep the LS from stopping.
    let idle = LineClient::connect(ls.addr);
    for server in [ls, ts1, ts2] {
        server.signal(libc::SIGINT);
        assert_eq!(server.wait().code(), Some(0));
    }
    drop(idle);
}

#[test]
fn sigterm_answers_the_query_in_flight_then_exits_0() {
    let (_ts1, _ts2, ls) = course_system(&[]);
    let mut client = LineClient::connect(ls.addr);
    assert_eq!(client.ask("amazon.org"), "amazon.org 94.5.6.7 A");
    client.send("nothinghere.com");
    ls.signal(libc::SIGTERM);
    assert_eq!(client.recv(), "nothinghere.com - Error:HOST NOT FOUND");
    assert_eq!(client.try_recv(), None);
    assert_eq!(ls.wait().code(), Some(0));
}

#[test]
fn listening_line_comes_first_and_port_0_picks_a_free_port() {
    let ts = spawn_server_bin(&[
        "ts",
        "0",
        "--bind",
        "127.0.0.1",
        "--table",
        data("PROJ2-DNSTS1.txt").to_str().unwrap(),
    ]);
    assert_ne!(ts.addr.port(), 0);
    // The port is really taken by the TS.
    assert!(TcpListener::bind(ts.addr).is_err());
}

#[test]
fn a_closed_stderr_does_not_stop_a_server_from_stopping() {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dnslb"))
        .args(["ts", "0", "--bind", "127.0.0.1", "--table"])
        .arg(data("PROJ2-DNSTS1.txt"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert!(line.starts_with("listening on "), "{line}");
    // Whoever read the server's log has gone: its next log line fails to write.
    drop(child.stderr.take());
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: kill(2) on a child we started and have not reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    assert_eq!(wait_bounded(&mut child, BOUND).code(), Some(0));
}
