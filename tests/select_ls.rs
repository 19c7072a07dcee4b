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
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/select_ls.py");
    let mut command = Command::new("python3");
    command
        .arg(script)
        .args(["0", "--bind", "127.0.0.1", "--timeout", timeout]);
    for server in ts {
        command.args(["127.0.0.1", &server.addr.port().to_string()]);
    }
    spawn_server_command(command)
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
