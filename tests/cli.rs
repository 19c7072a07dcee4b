//! The `dnslb` binary as scripts and users run it.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;

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
fn argument_errors_name_the_role_point_at_its_help_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    for (args, role) in [
        (&["ls", "0", "127.0.0.1"][..], Some("ls")),
        (&["ls", "0", "127.0.0.1", "notaport"], Some("ls")),
        (
            &["ls", "0", "127.0.0.1", "1", "--timeout", "-1"],
            Some("ls"),
        ),
        (
            &["ls", "0", "127.0.0.1", "1", "--timeout", "soon"],
            Some("ls"),
        ),
        (
            &["ls", "0", "127.0.0.1", "1", "--max-inflight", "0"],
            Some("ls"),
        ),
        (
            &["ls", "0", "127.0.0.1", "1", "--max-clients-per-ip", "0"],
            Some("ls"),
        ),
        (
            &["ls", "0", "127.0.0.1", "1", "--rrl", "0", "--dns-port", "0"],
            Some("ls"),
        ),
        (&["ls", "0", "127.0.0.1", "1", "--rrl", "5"], Some("ls")),
        (&["ts", "0", "--table", "x", "--rrl", "5"], Some("ts")),
        (
            &["ls", "0", "127.0.0.1", "1", "--allow", "10.0.0.0/33"],
            Some("ls"),
        ),
        (&["ls"], Some("ls")),
        (
            &["ts", "0", "--table", "x", "--dialect", "2021"],
            Some("ts"),
        ),
        (&["ts", "0", "--bogus"], Some("ts")),
        (&["client", "127.0.0.1"], Some("client")),
        (
            &["bench", "h", "1", "--raw", "--pipeline", "2"],
            Some("bench"),
        ),
        (&["udp-echo", "0", "--loss", "2"], Some("udp-echo")),
        (&["udp-lb", "0", "127.0.0.1"], Some("udp-lb")),
        (&["ping", "127.0.0.1", "1", "-c", "0"], Some("ping")),
        (&["ping", "127.0.0.1"], Some("ping")),
        (&["nonsense"], None),
        (&[], None),
    ] {
        let (status, stdout, stderr) = run_bin(dir.path(), args);
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stdout, "", "{args:?}");
        let (prefix, command) = match role {
            Some(role) => (format!("dnslb: {role}: "), format!("dnslb {role}")),
            None => ("dnslb: ".to_string(), "dnslb".to_string()),
        };
        assert!(stderr.starts_with(&prefix), "{args:?}: {stderr}");
        assert!(
            stderr.ends_with(&format!("\nRun '{command} --help' for usage.\n")),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn a_word_that_is_no_role_is_answered_with_the_roles() {
    let dir = tempfile::tempdir().unwrap();
    let (status, _, stderr) = run_bin(dir.path(), &["foo"]);
    assert_eq!(status.code(), Some(2));
    assert!(
        stderr.starts_with(
            "dnslb: \"foo\" is not a role; the roles are ts, ls, client, bench, udp-echo, udp-lb, ping, trace\n"
        ),
        "{stderr}"
    );
}

#[test]
fn start_up_errors_name_the_role_the_argument_and_a_way_out_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("empty.txt"), "# nothing\n\n").unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().port().to_string();
    let table = data("PROJ2-DNSTS1.txt");
    let table = table.to_str().unwrap();
    let in_use = format!(
        "dnslb: ls: cannot listen on 127.0.0.1:{taken}: address in use (another server on that port? choose another port or stop it)\n"
    );
    // A DNS port in use: no `listening on` line for the course port either
    // (a script would take the server for started).
    let dns_in_use = |role: &str| {
        format!("dnslb: {role}: cannot listen on 127.0.0.1:{taken} (dns udp+tcp): address in use")
    };
    let (ts_dns_in_use, ls_dns_in_use) = (dns_in_use("ts"), dns_in_use("ls"));
    for (args, expected) in [
        (
            &[
                "ts",
                "0",
                "--table",
                table,
                "--bind",
                "127.0.0.1",
                "--dns-port",
                &taken,
            ][..],
            &ts_dns_in_use[..],
        ),
        (
            &[
                "ls",
                "0",
                "127.0.0.1",
                "1",
                "--bind",
                "127.0.0.1",
                "--dns-port",
                &taken,
            ],
            &ls_dns_in_use,
        ),
        (
            &["ts", "70000", "--table", table][..],
            "dnslb: ts: <port>: 70000 is not a port (0-65535)\n",
        ),
        (
            &["ts", "0", "--table", table, "--dns-port", "65536"],
            "dnslb: ts: --dns-port: 65536 is not a port (0-65535)\n",
        ),
        (
            &["ls", "0", "127.0.0.1", "70000"],
            "dnslb: ls: <ts-port> of 127.0.0.1: 70000 is not a port (0-65535)\n",
        ),
        (
            &["ls", "0", "127.0.0.1", "1", "--cache", "-1"],
            "dnslb: ls: --cache: \"-1\" is not a whole number\n",
        ),
        (
            &["ts", "0", "--table", table, "--ttl", "3000000000"],
            "dnslb: ts: --ttl: \"3000000000\": expected whole seconds from 0 to 2147483647\n",
        ),
        (
            &["ls", &taken, "127.0.0.1", "1", "--bind", "127.0.0.1"],
            &in_use,
        ),
        (
            &["ts", "0", "--table", "nope.txt"],
            "dnslb: ts: --table nope.txt: cannot read it: ",
        ),
        (
            &["ts", "0", "--table", "empty.txt"],
            "dnslb: ts: --table empty.txt: no records, so the TS would answer nothing (give --table a file of `hostname ip A` lines",
        ),
        (
            &["client", "127.0.0.1", "1"],
            "dnslb: client: --input PROJ2-HNS.txt: cannot read it: ",
        ),
    ] {
        let (status, stdout, stderr) = run_bin(dir.path(), args);
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
        assert!(!stdout.contains("listening"), "{args:?}: {stdout}");
        assert!(stderr.starts_with(expected), "{args:?}: {stderr}");
    }
    let (_, _, stderr) = run_bin(dir.path(), &["client", "127.0.0.1", "1"]);
    assert!(stderr.contains("--input <file>"), "{stderr}");
}

#[test]
fn a_host_that_does_not_resolve_exits_2_from_every_role() {
    let dir = tempfile::tempdir().unwrap();
    let host = "no-such-host.invalid";
    for (args, role, what) in [
        (&["client", host, "1"][..], "client", "<ls-host>"),
        (&["ping", host, "1"], "ping", "<host>"),
        (&["bench", host, "1"], "bench", "<host>"),
        (&["ls", "0", host, "1"], "ls", "<ts-host>"),
        (&["udp-lb", "0", host, "1"], "udp-lb", "<backend-host>"),
        (&["udp-echo", "0", "--bind", host], "udp-echo", "--bind"),
    ] {
        let (status, _, stderr) = run_bin(dir.path(), args);
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.starts_with(&format!(
                "dnslb: {role}: {what}: cannot resolve host \"{host}\""
            )),
            "{args:?}: {stderr}"
        );
        assert!(
            stderr.contains("(check the name, or give an IP address)"),
            "{stderr}"
        );
    }
}

#[test]
fn configuration_errors_exit_2_without_a_usage_hint() {
    let dir = tempfile::tempdir().unwrap();
    let (status, _, stderr) = run_bin(dir.path(), &["ts", "0", "--table", "-h"]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    // `-h` as an option's value is that value, not a request for help.
    assert!(
        stderr.starts_with("dnslb: ") && stderr.contains("-h"),
        "{stderr}"
    );
    assert!(!stderr.contains("--help"), "{stderr}");
}

/// The roles, as `dnslb --help` lists them.
const ROLES: [&str; 7] = ["ts", "ls", "client", "bench", "udp-echo", "udp-lb", "ping"];

#[test]
fn dash_h_and_help_print_the_usage_of_every_role_as_the_readme_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let (status, top, _) = run_bin(dir.path(), &["-h"]);
    assert!(status.success());
    assert!(
        top.starts_with("Usage: dnslb [-V] <command> [<args>]\n"),
        "{top}"
    );
    assert!(top.contains("  -h, --help  "), "{top}");
    assert_eq!(run_bin(dir.path(), &["--help"]).1, top);
    for role in ROLES {
        assert!(
            top.contains(&format!("\n  {role} ")),
            "{role} missing: {top}"
        );
        let (status, help, stderr) = run_bin(dir.path(), &[role, "-h"]);
        assert!(status.success(), "{role} -h: {stderr}");
        assert_eq!(run_bin(dir.path(), &[role, "--help"]).1, help, "{role}");
        // After the positional arguments too, as --help works there.
        assert_eq!(run_bin(dir.path(), &[role, "0", "-h"]).1, help, "{role}");
        assert!(help.contains("\n  -h, --help  "), "{help}");
        let usage = help.lines().next().unwrap();
        assert!(!usage.contains("[--]"), "{usage}");
        let rest = usage
            .strip_prefix(&format!("Usage: dnslb {role} "))
            .unwrap_or_else(|| panic!("{usage}"));
        // The synopsis: the command and its positional arguments, options after.
        let options = [" [-", " -"]
            .iter()
            .filter_map(|start| rest.find(start))
            .min();
        let synopsis = match options {
            Some(end) => &usage["Usage: ".len()..usage.len() - rest.len() + end],
            None => &usage["Usage: ".len()..],
        };
        assert!(
            synopsis.contains(" <"),
            "{role}: positionals shown required: {usage}"
        );
        assert!(
            readme
                .lines()
                .any(|line| line == synopsis || line.starts_with(&format!("{synopsis} "))),
            "README.md has no line starting with {synopsis:?}"
        );
    }
}

#[test]
fn ls_help_shows_the_root_form_beside_the_ts_list_as_the_readme_does() {
    let dir = tempfile::tempdir().unwrap();
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let (status, help, _) = run_bin(dir.path(), &["ls", "--help"]);
    assert!(status.success());
    let mut lines = help.lines();
    let usage = lines.next().unwrap();
    assert!(
        usage.starts_with("Usage: dnslb ls <port> [<ts-host> <ts-port>...] "),
        "{usage}"
    );
    let root = lines.next().unwrap();
    let form = root
        .strip_prefix("  or:  ")
        .unwrap_or_else(|| panic!("no second form: {help}"));
    assert!(
        form.starts_with("dnslb ls <port> --root <addr[:port][,...]> [--server-port <n>]"),
        "{form}"
    );
    // README.md wraps the same form over several lines.
    let in_readme = readme
        .lines()
        .skip_while(|line| !line.starts_with("dnslb ls <port> --root "))
        .take_while(|line| line.starts_with("dnslb ls <port> --root ") || line.starts_with("  "))
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(form, in_readme);
    // Each of its options is one the LS takes.
    let words = form.split(['[', ']', ' ']);
    for option in words.filter(|word| word.starts_with('-')) {
        assert!(
            [" ", ", "]
                .iter()
                .any(|after| help.contains(&format!("\n  {option}{after}"))),
            "{option} is not an ls option: {help}"
        );
    }
}

#[test]
fn version_prints_the_name_and_the_version() {
    let dir = tempfile::tempdir().unwrap();
    for flag in ["--version", "-V"] {
        let (status, stdout, _) = run_bin(dir.path(), &[flag]);
        assert!(status.success());
        assert_eq!(stdout, format!("dnslb {}\n", env!("CARGO_PKG_VERSION")));
    }
}

#[test]
fn ping_takes_pings_short_flags_and_prints_its_lines() {
    let echo = spawn_server_bin(&["udp-echo", "0", "--bind", "127.0.0.1", "--loss", "0"]);
    let port = echo.addr.port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "ping",
        "127.0.0.1",
        &port,
        "-c",
        "3",
        "-i",
        "0.2",
        "-W",
        "5",
    ];
    let (status, out, stderr) = run_bin(dir.path(), &args);
    assert!(status.success(), "{stderr}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 8, "{out}");
    let target = format!("127.0.0.1:{port}");
    for (i, line) in lines[1..4].iter().enumerate() {
        // `PING <seq> HH:MM:SS` echoed: 15 bytes.
        let prefix = format!("15 bytes from {target}: seq={} time=", i + 1);
        let time = line
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(" ms"))
            .unwrap_or_else(|| panic!("{line:?}\n{out}"));
        assert!(time.parse::<f64>().is_ok(), "{line}");
    }
    assert_eq!(lines[4], "");
    assert_eq!(lines[5], format!("--- {target} ping statistics ---"));
    let elapsed = lines[6]
        .strip_prefix("3 packets transmitted, 3 received, 0% packet loss, time ")
        .and_then(|rest| rest.strip_suffix("ms"))
        .unwrap_or_else(|| panic!("{out}"));
    // -i 0.2: two pauses at least between three pings.
    assert!(elapsed.parse::<u64>().unwrap() >= 400, "{out}");
    assert!(lines[7].starts_with("rtt min/avg/max/mdev = "), "{out}");
    assert!(lines[7].ends_with(" ms"), "{out}");
}

#[test]
fn ping_reports_lost_pings_only_in_the_summary_unless_dash_o() {
    // A socket that never answers.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let quiet = ["ping", "127.0.0.1", &port, "-c", "2", "-W", "0.1"];
    let (status, out, _) = run_bin(dir.path(), &quiet);
    assert_eq!(status.code(), Some(1), "{out}");
    assert_eq!(out.lines().nth(1), Some(""), "nothing per lost ping: {out}");
    assert!(
        out.contains("2 packets transmitted, 0 received, 100% packet loss, time "),
        "{out}"
    );
    assert!(!out.contains("rtt"), "{out}");
    let (_, out, _) = run_bin(dir.path(), &[&quiet[..], &["-O"]].concat());
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[1..3],
        ["no answer yet for seq=1", "no answer yet for seq=2"],
        "{out}"
    );
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
    // A line-only LS (hence `--framing line`) that answers two queries, then closes.
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
            "--framing",
            "line",
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

/// Stops `server` with SIGTERM; checks it says `stopping` as `stopping`
/// shows, then prints `counters`, and exits 0.
fn stops_saying(server: Running, log: &Receiver<String>, stopping: &str, counters: &str) {
    server.signal(libc::SIGTERM);
    assert_eq!(
        line_containing(log, "stopping"),
        format!("dnslb: {stopping}")
    );
    assert_eq!(
        line_containing(log, counters.split(' ').next().unwrap()),
        format!("dnslb: {counters}")
    );
    assert_eq!(server.wait().code(), Some(0));
}

#[test]
fn each_server_names_its_role_and_its_wait_when_stopping_then_prints_its_counters() {
    let table = data("PROJ2-DNSTS1.txt");
    let ts_args = [
        "ts",
        "0",
        "--bind",
        "127.0.0.1",
        "--table",
        table.to_str().unwrap(),
    ];
    let (ts, ts_log) = spawn_server_bin_stderr(&ts_args);
    let mut client = LineClient::connect(ts.addr);
    client.send("nothinghere.com");
    client.send("bad name");
    assert_eq!(client.ask("amazon.org"), "amazon.org 94.5.6.7 A");
    drop(client);
    stops_saying(
        ts,
        &ts_log,
        "ts: stopping: finishing the queries in flight (up to 1 s)",
        "ts: queries 3 = answered 1 + not in table 1 + invalid 1; connections accepted 1, turned away 0",
    );

    let (_ts1, _ts2, ls, ls_log) = course_system_logged(&[]);
    ls.signal(libc::SIGTERM);
    assert_eq!(
        line_containing(&ls_log, "stopping"),
        "dnslb: ls: stopping: finishing the queries in flight (up to 0.7 s)"
    );
    assert_eq!(ls.wait().code(), Some(0));

    let echo_args = ["udp-echo", "0", "--bind", "127.0.0.1", "--loss", "0"];
    let (echo, echo_log) = spawn_server_bin_stderr(&echo_args);
    let echo_port = echo.addr.port().to_string();
    let lb_args = [
        "udp-lb",
        "0",
        "127.0.0.1",
        &echo_port,
        "--bind",
        "127.0.0.1",
    ];
    let (lb, lb_log) = spawn_server_bin_stderr(&lb_args);
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(BOUND)).unwrap();
    let mut buf = [0u8; 16];
    socket.send_to(b"ping 1", echo.addr).unwrap();
    assert_eq!(socket.recv(&mut buf).unwrap(), 6);
    socket.send_to(b"ping 2", lb.addr).unwrap();
    assert_eq!(socket.recv(&mut buf).unwrap(), 6);
    stops_saying(
        lb,
        &lb_log,
        "udp-lb: stopping: closing its sessions",
        "udp-lb: datagrams forwarded 1, replies relayed 1; backends marked down 0 times",
    );
    stops_saying(
        echo,
        &echo_log,
        "udp-echo: stopping",
        "udp-echo: datagrams 2 = echoed 2 + dropped 0 (simulated loss) + unsent 0",
    );
}

#[test]
fn a_client_turned_away_is_counted_once_as_busy() {
    let (_ts1, _ts2, ls, log) = course_system_logged(&["--max-clients", "1"]);
    let mut first = LineClient::connect(ls.addr);
    assert_eq!(first.ask("amazon.org"), "amazon.org 94.5.6.7 A");
    let mut second = LineClient::connect(ls.addr);
    assert_eq!(second.recv(), "- Error:SERVER BUSY");
    drop((first, second));
    ls.signal(libc::SIGTERM);
    let counters = line_containing(&log, " = answered ");
    assert!(
        counters.contains("queries 1 = ") && counters.contains("+ busy 0 +"),
        "{counters}"
    );
    assert!(
        counters.contains("; clients accepted 1, busy 1, idle-closed 0;"),
        "{counters}"
    );
    assert!(!counters.contains("refused"), "{counters}");
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
    let addr = line["listening on ".len()..].trim().parse().unwrap();
    let server = Running { child, addr };
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait().code(), Some(0));
}

/// A directory for the scripts' build step: a `cargo` that only logs its
/// arguments (to `cargo.log`), first on PATH, and a target directory.
struct FakeBuild {
    dir: tempfile::TempDir,
}

impl FakeBuild {
    fn new() -> FakeBuild {
        let dir = tempfile::tempdir().unwrap();
        let cargo = dir.path().join("bin/cargo");
        std::fs::create_dir_all(cargo.parent().unwrap()).unwrap();
        let log = dir.path().join("cargo.log");
        std::fs::write(
            &cargo,
            format!("#!/bin/sh\necho \"$*\" >> '{}'\n", log.display()),
        )
        .unwrap();
        let mut permissions = std::fs::metadata(&cargo).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
        std::fs::set_permissions(&cargo, permissions).unwrap();
        FakeBuild { dir }
    }

    /// Puts the binary under test where the scripts look for the release build.
    fn with_binary(self) -> FakeBuild {
        let release = self.dir.path().join("target/release");
        std::fs::create_dir_all(&release).unwrap();
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_dnslb"), release.join("dnslb")).unwrap();
        self
    }

    /// `bash <script> <args>` in `cwd`, with the fake cargo and target.
    fn run(
        &self,
        script: &Path,
        args: &[&str],
        cwd: &Path,
    ) -> (std::process::ExitStatus, String, String) {
        let path = format!(
            "{}:{}",
            self.dir.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut child = std::process::Command::new("bash")
            .arg(script)
            .args(args)
            .current_dir(cwd)
            .env("PATH", path)
            .env("CARGO_TARGET_DIR", self.dir.path().join("target"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = String::new();
        let mut stderr = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        (wait_bounded(&mut child, BOUND), stdout, stderr)
    }

    fn cargo_calls(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("cargo.log")).unwrap_or_default()
    }
}

fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_demo_labels_each_servers_lines_with_its_name() {
    let probe = tempfile::tempdir().unwrap();
    let script = probe.path().join("probe.sh");
    let demo = repository().join("scripts/demo.sh");
    std::fs::write(
        &script,
        format!("DEMO_TIMEOUT=0.2 exec bash '{}'\n", demo.display()),
    )
    .unwrap();
    let build = FakeBuild::new().with_binary();
    let (status, stdout, stderr) = build.run(&script, &[], probe.path());
    assert!(status.success(), "{stderr}");
    let expected = std::fs::read_to_string(data("example-RESOLVED.txt")).unwrap();
    assert_eq!(stdout, expected);
    for line in [
        "ts1: listening on 127.0.0.1:",
        "ts2: listening on 127.0.0.1:",
        "ls: listening on 127.0.0.1:",
        "ls: dnslb: ls: nothinghere.com not found",
        "ls: dnslb: ls: stopping: finishing the queries in flight (up to 0.7 s)",
        "ts1: dnslb: ts: stopping: finishing the queries in flight (up to 1 s)",
        "ts2: dnslb: ts: stopping: finishing the queries in flight (up to 1 s)",
        "ts1: dnslb: ts: queries ",
        "ts2: dnslb: ts: queries ",
        "ls: dnslb: ls: queries 4 = ",
    ] {
        assert!(
            stderr.lines().any(|l| l.starts_with(line)),
            "no line {line:?} in:\n{stderr}"
        );
    }
    // Every server line is labelled.
    assert!(
        !stderr.lines().any(|l| l.starts_with("dnslb: ")),
        "{stderr}"
    );
}

#[test]
fn the_first_script_build_shows_cargos_progress_later_ones_are_quiet() {
    let probe = tempfile::tempdir().unwrap();
    let script = probe.path().join("probe.sh");
    let lib = repository().join("scripts/lib.sh");
    std::fs::write(&script, format!(". '{}'\ndnslb_bin\n", lib.display())).unwrap();
    let build = FakeBuild::new();
    let (status, stdout, stderr) = build.run(&script, &[], probe.path());
    assert!(status.success(), "{stderr}");
    assert!(
        stdout.trim_end().ends_with("target/release/dnslb"),
        "{stdout}"
    );
    assert!(stderr.contains("building dnslb"), "{stderr}");
    let first = build.cargo_calls();
    assert!(
        first.starts_with("build --release ") && !first.contains("--quiet"),
        "{first}"
    );
    let build = build.with_binary();
    std::fs::remove_file(build.dir.path().join("cargo.log")).unwrap();
    let (status, _, stderr) = build.run(&script, &[], probe.path());
    assert!(status.success(), "{stderr}");
    assert_eq!(stderr, "");
    assert!(
        build.cargo_calls().contains("--quiet"),
        "{}",
        build.cargo_calls()
    );
}

#[test]
fn comparison_scripts_mark_each_target_met_or_not() {
    // compare.sh and dns-compare.sh judge their targets with lib.sh's
    // `target`: a ratio below its threshold says NOT MET, not only 0.84.
    let lib = repository().join("scripts/lib.sh");
    let output = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            ". '{}'; target 'cached / direct' \"$(ratio 84 100)\" '>=' 1; \
             target 'lost %' 0.000 '<' 0.1; target 'missing' '' '>=' 1",
            lib.display()
        ))
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().map(str::trim).collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(lines[0].starts_with("cached / direct (>= 1):"), "{stdout}");
    assert!(lines[0].ends_with("0.84  NOT MET"), "{stdout}");
    assert!(lines[1].ends_with("0.000  met"), "{stdout}");
    assert!(lines[2].ends_with("n/a  n/a"), "{stdout}");
}

#[test]
fn client_script_finds_the_course_names_from_anywhere() {
    let (_ts1, _ts2, ls) = course_system(&[]);
    let port = ls.addr.port().to_string();
    let build = FakeBuild::new().with_binary();
    let elsewhere = tempfile::tempdir().unwrap();
    let (status, _, stderr) = build.run(
        &repository().join("scripts/client.sh"),
        &["127.0.0.1", &port],
        elsewhere.path(),
    );
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("data/PROJ2-HNS.txt"), "{stderr}");
    let expected = std::fs::read_to_string(data("example-RESOLVED.txt")).unwrap();
    let resolved = std::fs::read_to_string(elsewhere.path().join("RESOLVED.txt")).unwrap();
    assert_eq!(resolved, expected);
}

#[test]
fn client_script_without_names_says_where_it_looked() {
    // A copy of the scripts with no data/ beside them.
    let copy = tempfile::tempdir().unwrap();
    std::fs::create_dir(copy.path().join("scripts")).unwrap();
    for script in ["client.sh", "lib.sh"] {
        std::fs::copy(
            repository().join("scripts").join(script),
            copy.path().join("scripts").join(script),
        )
        .unwrap();
    }
    let build = FakeBuild::new().with_binary();
    let elsewhere = tempfile::tempdir().unwrap();
    let (status, _, stderr) = build.run(
        &copy.path().join("scripts/client.sh"),
        &["127.0.0.1", "1"],
        elsewhere.path(),
    );
    assert_eq!(status.code(), Some(2), "{stderr}");
    let cwd = elsewhere.path().canonicalize().unwrap();
    let root = copy.path().canonicalize().unwrap();
    assert!(stderr.contains(&format!("{}", cwd.display())), "{stderr}");
    assert!(
        stderr.contains(&format!("{}/data", root.display())),
        "{stderr}"
    );
    assert!(stderr.contains("--input"), "{stderr}");
}

// What servers log stays in the test harness's capture: shown for a
// failing test, hidden for a passing one. The two helper tests below run
// only when asked for (`--ignored`), in a child test process.

/// Starts and stops an in-process LS (it logs its counters when it stops)
/// and a `dnslb udp-echo` process (it logs `stopping` on SIGTERM).
fn log_from_servers() {
    let ls = start_ls(&[closed_port()], ms(100));
    ls.stop();
    let (echo, log) = spawn_server_bin_stderr(&["udp-echo", "0", "--bind", "127.0.0.1"]);
    echo.signal(libc::SIGTERM);
    line_containing(&log, "stopping");
    assert_eq!(echo.wait().code(), Some(0));
}

#[test]
#[ignore = "run by server_logs_show_only_for_a_failing_test"]
fn helper_servers_log_then_the_test_passes() {
    log_from_servers();
}

#[test]
#[ignore = "run by server_logs_show_only_for_a_failing_test"]
fn helper_servers_log_then_the_test_fails() {
    log_from_servers();
    panic!("failing on purpose");
}

#[test]
fn server_logs_show_only_for_a_failing_test() {
    let run = |test: &str| {
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--ignored", "--exact", test, "--test-threads", "1"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout).to_string()
            + &String::from_utf8_lossy(&output.stderr);
        (output.status.success(), text)
    };
    let (passed, out) = run("helper_servers_log_then_the_test_passes");
    assert!(passed, "{out}");
    assert!(
        !out.contains("dnslb: "),
        "a passing test's logs are hidden:\n{out}"
    );
    let (passed, out) = run("helper_servers_log_then_the_test_fails");
    assert!(!passed, "{out}");
    assert!(
        out.contains("dnslb: ls: queries 0 = "),
        "in-process LS log:\n{out}"
    );
    assert!(
        out.contains("dnslb: udp-echo: stopping"),
        "child process log:\n{out}"
    );
}
