//! scripts/select_ls.py, the select() baseline of docs/COMPARISON.md, run
//! with python3 behind two in-process TSes: it must answer like dnslb's LS.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use support::*;

/// select_ls.py on port 0 in front of `ts`, with `timeout` seconds.
fn select_ls(ts: [&Server; 2], timeout: &str) -> Running {
    select_ls_with(ts, timeout, &[])
}

/// select_ls.py with `extra` arguments.
fn select_ls_with(ts: [&Server; 2], timeout: &str, extra: &[&str]) -> Running {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/select_ls.py");
    let mut command = Command::new("python3");
    command
        .arg(script)
        .args(["0", "--bind", "127.0.0.1", "--timeout", timeout]);
    for server in ts {
        command.args(["127.0.0.1", &server.addr.port().to_string()]);
    }
    command.args(extra);
    spawn_server_command(command)
}

/// Whether python3 can be run here; a test that needs it says it skips.
fn python3_runs(test: &str) -> bool {
    let runs = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    if !runs {
        eprintln!("{test}: skipped, python3 cannot be run");
    }
    runs
}

#[test]
fn smoke() {
    let ts1 = start_ts("amazon.org 94.5.6.7 A\nrutgers.com 172.34.4.6 A\n");
    let ts2 = start_ts("www.princeton.edu 128.1.1.4 A\ngoogle.site 46.1.3.7 A\n");
    let ls = select_ls([&ts1, &ts2], "0.2");
    let mut client = LineClient::connect(ls.addr);
    assert_eq!(
        client.ask("www.princeton.edu"),
        "www.princeton.edu 128.1.1.4 A"
    );
    assert_eq!(client.ask("RUTGERS.com"), "rutgers.com 172.34.4.6 A");
    let asked = Instant::now();
    assert_eq!(
        client.ask("nothinghere.com"),
        "nothinghere.com - Error:HOST NOT FOUND"
    );
    let waited = asked.elapsed();
    assert!(
        waited >= ms(190) && waited < ms(2000),
        "the miss took {waited:?}, expected about the 0.2 s timeout"
    );
    assert_eq!(client.ask("google.site"), "google.site 46.1.3.7 A");
}

#[test]
fn several_queries_in_one_write_get_one_reply_each_in_order() {
    let ts1 = start_ts("amazon.org 94.5.6.7 A\n");
    let ts2 = start_ts("google.site 46.1.3.7 A\n");
    let ls = select_ls([&ts1, &ts2], "0.2");
    let mut client = LineClient::connect(ls.addr);
    client
        .writer()
        .write_all(b"google.site\nmissing.example\namazon.org\ngoog")
        .unwrap();
    assert_eq!(client.recv(), "google.site 46.1.3.7 A");
    assert_eq!(client.recv(), "missing.example - Error:HOST NOT FOUND");
    assert_eq!(client.recv(), "amazon.org 94.5.6.7 A");
    client.send_raw(b"le.site\n");
    assert_eq!(client.recv(), "google.site 46.1.3.7 A");
}

#[test]
fn bench_finds_no_wrong_answer_through_it() {
    let ts1 = start_ts("amazon.org 94.5.6.7 A\nrutgers.com 172.34.4.6 A\n");
    let ts2 = start_ts("www.princeton.edu 128.1.1.4 A\ngoogle.site 46.1.3.7 A\n");
    let ls = select_ls([&ts1, &ts2], "0.2");
    let dir = tempfile::tempdir().unwrap();
    let port = ls.addr.port().to_string();
    let (status, stdout, stderr) = run_bin(
        dir.path(),
        &[
            "bench",
            "127.0.0.1",
            &port,
            "--clients",
            "4",
            "--queries",
            "50",
            "--miss-ratio",
            "0.04",
        ],
    );
    assert!(status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("\nhits        192\n"), "{stdout}");
    assert!(stdout.contains("\nmisses      8 "), "{stdout}");
    assert!(stdout.contains("\nwrong       0\n"), "{stdout}");
}

#[test]
fn trace_records_each_step_of_a_course_query_as_dnslb_reads_them() {
    if !python3_runs("trace_records_each_step_of_a_course_query_as_dnslb_reads_them") {
        return;
    }
    use dnslb::trace::parse::{Kind, parse};
    let ts1 = start_ts("amazon.org 94.5.6.7 A\n");
    let ts2 = start_ts("www.princeton.edu 128.1.1.4 A\n");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("trace.jsonl");
    // Hits do not wait for the timeout: a long one keeps a loaded
    // machine from turning one into a miss.
    let ls = select_ls_with([&ts1, &ts2], "10", &["--trace", file.to_str().unwrap()]);
    let mut client = LineClient::connect(ls.addr);
    let me = client.writer().local_addr().unwrap().to_string();
    assert_eq!(
        client.ask("www.princeton.edu"),
        "www.princeton.edu 128.1.1.4 A"
    );
    // The second reply comes after the first query's `write` was recorded.
    assert_eq!(client.ask("amazon.org"), "amazon.org 94.5.6.7 A");
    let text = std::fs::read(&file).unwrap();
    let events = parse(&text).unwrap_or_else(|(line, why)| panic!("line {line}: {why}"));
    let first: Vec<_> = events
        .iter()
        .filter(|e| e.query == events[0].query)
        .collect();
    let steps: Vec<(&Kind, Option<&str>)> =
        first.iter().map(|e| (&e.kind, e.ts.as_deref())).collect();
    assert_eq!(
        steps,
        [
            (&Kind::Arrive, None),
            (&Kind::Send, Some("ts1")),
            (&Kind::Send, Some("ts2")),
            (&Kind::Reply, Some("ts2")),
            (&Kind::Settle, Some("ts2")),
            (&Kind::Write, None),
        ]
    );
    assert!(
        first
            .iter()
            .all(|e| e.thread == "select-1" && e.name == "www.princeton.edu")
    );
    assert!(first.windows(2).all(|w| w[0].t_us <= w[1].t_us));
    assert_eq!(first[0].frontend.as_deref(), Some("course"));
    assert_eq!(first[0].client.as_deref(), Some(me.as_str()));
    assert_eq!(first[4].outcome.as_deref(), Some("answer"));
    // Each query has its own id.
    assert!(
        events
            .iter()
            .any(|e| e.query != first[0].query && e.name == "amazon.org")
    );
}

#[test]
fn trace_records_a_timeout_as_the_settle_of_a_query_no_ts_answers() {
    if !python3_runs("trace_records_a_timeout_as_the_settle_of_a_query_no_ts_answers") {
        return;
    }
    use dnslb::trace::parse::{Kind, parse};
    let ts1 = start_ts("amazon.org 94.5.6.7 A\n");
    let ts2 = start_ts("google.site 46.1.3.7 A\n");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("trace.jsonl");
    let ls = select_ls_with([&ts1, &ts2], "0.5", &["--trace", file.to_str().unwrap()]);
    let mut client = LineClient::connect(ls.addr);
    assert_eq!(
        client.ask("missing.example"),
        "missing.example - Error:HOST NOT FOUND"
    );
    // Any reply to a second query comes after the first one's `write`.
    client.ask("amazon.org");
    let events = parse(&std::fs::read(&file).unwrap()).unwrap();
    let settle = events
        .iter()
        .find(|e| e.name == "missing.example" && e.kind == Kind::Settle)
        .expect("the miss was settled");
    assert_eq!(settle.outcome.as_deref(), Some("timeout"));
    assert_eq!(settle.ts, None);
    let arrive = events.iter().find(|e| e.kind == Kind::Arrive).unwrap();
    assert!(settle.t_us - arrive.t_us >= 490_000, "{settle:?}");
    assert!(
        !events
            .iter()
            .any(|e| e.name == "missing.example" && e.kind == Kind::Reply)
    );
}
