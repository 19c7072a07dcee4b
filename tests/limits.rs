//! Limits: a full LS and the client, places freed at once, TSes that cannot
//! be reached at start, counters while queries are in flight, the LS and
//! the TS under a low descriptor limit, and a second signal.

mod support;

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Instant;

use support::*;

const TS1: &str = "amazon.org 94.5.6.7 A\nrutgers.com 172.34.4.6 A\n";

/// `dnslb ls` on loopback forwarding to `ts1` and `ts2` with `timeout`
/// seconds; its stderr lines on the channel.
fn spawn_ls_bin(
    ts1: SocketAddr,
    ts2: SocketAddr,
    timeout: &str,
) -> (Running, crossbeam_channel::Receiver<String>) {
    let (p1, p2) = (ts1.port().to_string(), ts2.port().to_string());
    spawn_server_bin_stderr(&[
        "ls",
        "0",
        "127.0.0.1",
        &p1,
        "127.0.0.1",
        &p2,
        "--bind",
        "127.0.0.1",
        "--timeout",
        timeout,
    ])
}

#[test]
fn smoke() {
    let ts = start_ts(TS1);
    let ls = start_ls_observed(&[ts.addr], ms(500), |o| o.max_clients = 1);
    assert_eq!(
        LineClient::connect(ls.addr()).ask("amazon.org"),
        "amazon.org 94.5.6.7 A"
    );
}

#[test]
fn the_client_says_the_ls_is_busy_and_writes_no_answer_for_it() {
    let ts = start_ts(TS1);
    let ls = start_ls_observed(&[ts.addr], ms(3000), |o| o.max_clients = 1);
    // The only place is taken, and busy however slow the machine (an idle
    // one would give way): a query in flight that no TS answers.
    let mut holder = LineClient::connect(ls.addr());
    assert_eq!(holder.ask("amazon.org"), "amazon.org 94.5.6.7 A");
    holder.send_raw(b"nothere.com\n");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("PROJ2-HNS.txt"),
        "amazon.org\nrutgers.com\n",
    )
    .unwrap();
    let port = ls.addr().port().to_string();
    let (status, stdout, stderr) = run_bin(dir.path(), &["client", "127.0.0.1", &port]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("busy") && stderr.contains(&format!("127.0.0.1:{port}")),
        "{stderr}"
    );
    let resolved = std::fs::read_to_string(dir.path().join("RESOLVED.txt")).unwrap();
    assert_eq!(resolved, "", "the busy line is not an answer");
    assert!(!stdout.contains("SERVER BUSY"), "{stdout}");
    drop(holder);
}

#[test]
fn clients_one_after_another_are_never_refused_at_max_clients_1() {
    let (ts1, ts2) = course_tses();
    let ls = start_ls_observed(&[ts1.addr, ts2.addr], ms(100), |o| o.max_clients = 1);
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(data("PROJ2-HNS.txt"), dir.path().join("PROJ2-HNS.txt")).unwrap();
    let expected = std::fs::read_to_string(data("example-RESOLVED.txt")).unwrap();
    let port = ls.addr().port().to_string();
    for run in 0..25 {
        // Lines: this LS is dnslb's, and 25 runs need not each learn it.
        let args = ["client", "127.0.0.1", &port, "--framing", "line"];
        let (status, stdout, stderr) = run_bin(dir.path(), &args);
        assert!(status.success(), "client {run} failed: {stderr}");
        assert_eq!(stdout, expected, "client {run}");
    }
    let counts = ls.settled_snapshot();
    assert_eq!((counts.accepted, counts.refused), (25, 0));
}

#[test]
fn the_ls_names_each_ts_it_cannot_reach_at_start_and_starts_anyway() {
    let (ts1, _ts2) = course_tses();
    let dead = closed_port();
    let p2 = dead.port().to_string();
    let (ls, log) = spawn_ls_bin(ts1.addr, dead, "0.3");
    let line = line_containing(&log, "is not reachable");
    assert!(
        line.contains(&format!("ts2 (127.0.0.1:{p2})")) && line.contains("starting anyway"),
        "{line}"
    );
    assert_eq!(
        LineClient::connect(ls.addr).ask("amazon.org"),
        "amazon.org 94.5.6.7 A"
    );
}

#[test]
fn the_counters_add_up_while_queries_are_in_flight() {
    let ls = start_ls_observed(&[silent_ts()], ms(3000), |_| {});
    let mut client = LineClient::connect(ls.addr());
    for name in ["a.com", "b.com", "c.com"] {
        client.send(name);
    }
    client.send("bad name!");
    // Replies are counted once they are sent, in query order: the invalid
    // query's reply waits behind the three misses, and all four are in
    // flight until the first deadline.
    let counted = Instant::now();
    while ls.ls.snapshot().queries < 4 {
        assert!(counted.elapsed() < BOUND, "queries not counted");
        thread::yield_now();
    }
    let live = ls.ls.snapshot();
    assert_eq!((live.queries, live.in_flight), (4, 4), "{live}");
    assert_eq!(live.settled() + live.in_flight, live.queries);
    assert!(live.to_string().contains("+ in-flight 4;"), "{live}");
    client.finish_sending();
    let settled = ls.settled_snapshot();
    assert_eq!(
        (settled.queries, settled.timed_out, settled.in_flight),
        (4, 3, 0)
    );
}

/// What one client got from an LS.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Got {
    Right,
    Busy,
    Miss,
    Other,
    Reset,
    SilentClose,
}

/// `clients` clients connect at once, each asks `name` and reads one line.
fn ask_all_at_once(ls: SocketAddr, clients: usize, name: &str, right: &str) -> Vec<Got> {
    let barrier = Arc::new(Barrier::new(clients));
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            let (name, right) = (name.to_string(), right.to_string());
            thread::spawn(move || {
                barrier.wait();
                let stream = TcpStream::connect(ls).expect("connect");
                stream.set_read_timeout(Some(BOUND)).unwrap();
                if (&stream).write_all(format!("{name}\n").as_bytes()).is_err() {
                    return Got::Reset;
                }
                let mut line = String::new();
                match BufReader::new(&stream).read_line(&mut line) {
                    Ok(0) => Got::SilentClose,
                    Ok(_) => match line.trim_end() {
                        l if l == right => Got::Right,
                        "- Error:SERVER BUSY" => Got::Busy,
                        l if l.ends_with("HOST NOT FOUND") => Got::Miss,
                        _ => Got::Other,
                    },
                    Err(e) if e.kind() == ErrorKind::ConnectionReset => Got::Reset,
                    Err(e) => panic!("no reply within the bound: {e}"),
                }
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

fn count(got: &[Got], what: Got) -> usize {
    got.iter().filter(|&&g| g == what).count()
}

#[test]
fn under_ulimit_n_64_every_client_gets_its_answer_or_busy() {
    let (ts1, ts2) = course_tses();
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg("ulimit -n 64 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_dnslb"))
        .args(["ls", "0", "127.0.0.1"])
        .arg(ts1.addr.port().to_string())
        .arg("127.0.0.1")
        .arg(ts2.addr.port().to_string())
        .args(["--bind", "127.0.0.1", "--timeout", "2"]);
    let (ls, log) = spawn_logged(command);
    let lowered = line_containing(&log, "serving at most");
    assert!(
        lowered.contains("--max-clients 1024") && lowered.contains("limit is 64"),
        "{lowered}"
    );
    let got = ask_all_at_once(ls.addr, 100, "amazon.org", "amazon.org 94.5.6.7 A");
    let (right, busy) = (count(&got, Got::Right), count(&got, Got::Busy));
    eprintln!("ulimit -n 64, 100 clients at once: {right} right, {busy} busy");
    assert_eq!(right + busy, 100, "{got:?}");
    assert!(right >= 1, "{got:?}");
    // Places are given back: one more client is served.
    assert_eq!(
        LineClient::connect(ls.addr).ask("amazon.org"),
        "amazon.org 94.5.6.7 A"
    );
    ls.signal(libc::SIGTERM);
    assert!(ls.wait().success());
    let lines: Vec<String> = log.try_iter().collect();
    assert!(
        !lines.iter().any(|l| l.contains("is down")),
        "a TS was taken for down: {lines:?}"
    );
}

#[test]
fn the_ts_closes_connections_over_its_limit_and_idle_ones() {
    let table = data("PROJ2-DNSTS1.txt");
    let (ts, log) = spawn_server_bin_stderr(&[
        "ts",
        "0",
        "--bind",
        "127.0.0.1",
        "--table",
        table.to_str().unwrap(),
        "--max-clients",
        "2",
        "--idle-timeout",
        "0.5",
        "-v",
    ]);
    let mut first = LineClient::connect(ts.addr);
    let mut second = LineClient::connect(ts.addr);
    // Both kept in use until the TS has turned the third away, so that
    // neither reaches the 0.5 s idle timeout first and makes room for it,
    // however slow the machine.
    let (refused, started) = (AtomicBool::new(false), Instant::now());
    let mut third = thread::scope(|scope| {
        scope.spawn(|| {
            while !refused.load(Ordering::Relaxed) && started.elapsed() < BOUND {
                assert_eq!(first.ask("amazon.org"), "amazon.org 94.5.6.7 A");
                assert_eq!(second.ask("amazon.org"), "amazon.org 94.5.6.7 A");
                // The pace of clients in use, well inside the idle timeout.
                thread::sleep(ms(50));
            }
        });
        let third = LineClient::connect(ts.addr);
        line_containing(&log, "refusing");
        refused.store(true, Ordering::Relaxed);
        third
    });
    assert_eq!(third.try_recv(), None, "over the limit: closed");
    // Both idle past 0.5 s: closed, and the places are free again.
    let idle = Instant::now();
    assert_eq!(first.try_recv(), None);
    assert_eq!(second.try_recv(), None);
    assert!(idle.elapsed() < BOUND);
    assert_eq!(
        LineClient::connect(ts.addr).ask("rutgers.com"),
        "rutgers.com 172.34.4.6 A"
    );
}

#[test]
fn a_second_sigterm_exits_at_once() {
    let (ts, _ts2) = course_tses();
    // The silent TS keeps a query in flight for the whole 30 s timeout.
    let silent = silent_ts();
    let (ls, log) = spawn_ls_bin(ts.addr, silent, "30");
    let mut idle = LineClient::connect(ls.addr);
    assert_eq!(idle.ask("amazon.org"), "amazon.org 94.5.6.7 A");
    let mut waiting = LineClient::connect(ls.addr);
    waiting.send("nothing.here");
    // Answered only at the 30 s deadline: the first signal waits for it.
    ls.signal(libc::SIGTERM);
    line_containing(&log, "stopping");
    let second = Instant::now();
    ls.signal(libc::SIGTERM);
    let status = ls.wait();
    assert_eq!(status.code(), Some(130));
    assert!(second.elapsed() < ms(5000), "took {:?}", second.elapsed());
    drop((idle, waiting));
}
