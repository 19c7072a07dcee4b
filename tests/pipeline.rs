//! Many queries in flight on one connection, and TSes that answer misses.

mod support;

use std::time::Instant;

use dnslb::ts::TsOptions;
use support::*;

const TS1: &str = "amazon.org 94.5.6.7 A\nrutgers.com 172.34.4.6 A\n";
const TS2: &str = "www.princeton.edu 128.1.1.4 A\n";

fn answering_misses() -> TsOptions {
    TsOptions {
        answer_misses: true,
        ..TsOptions::default()
    }
}

#[test]
fn smoke() {
    let (ts1, ts2) = (start_ts(TS1), start_ts(TS2));
    let ls = start_ls(&[ts1.addr, ts2.addr], ms(200));
    let mut client = LineClient::connect(ls.addr);
    client.send_raw(b"amazon.org\nwww.princeton.edu\nrutgers.com\n");
    assert_eq!(client.recv(), "amazon.org 94.5.6.7 A");
    assert_eq!(client.recv(), "www.princeton.edu 128.1.1.4 A");
    assert_eq!(client.recv(), "rutgers.com 172.34.4.6 A");
}

#[test]
fn pipelined_replies_come_in_query_order() {
    // Each slow.com answer comes 30 ms after its query, long after the fast names'.
    let slow = slow_ts(&[("slow.com", "5.5.5.5")], ms(30));
    let fast = start_ts(TS1);
    let ls = start_ls(&[slow, fast.addr], ms(2000));
    let mut client = LineClient::connect(ls.addr);
    let names = [
        "slow.com",
        "amazon.org",
        "rutgers.com",
        "",
        "slow.com",
        "amazon.org",
    ];
    let batch: String = (0..10)
        .flat_map(|_| names)
        .map(|n| format!("{n}\n"))
        .collect();
    client.send_raw(batch.as_bytes());
    for i in 0..10 * names.len() {
        let reply = client.recv();
        let expected = match names[i % names.len()] {
            "" => "- Error:EMPTY QUERY",
            "slow.com" => "slow.com 5.5.5.5 A",
            "amazon.org" => "amazon.org 94.5.6.7 A",
            _ => "rutgers.com 172.34.4.6 A",
        };
        assert_eq!(reply, expected, "reply {i}");
    }
}

#[test]
fn misses_in_flight_wait_together_not_one_after_another() {
    let ls = start_ls(&[silent_ts()], ms(300));
    let mut client = LineClient::connect(ls.addr);
    let started = Instant::now();
    let batch: String = (0..200).map(|i| format!("miss{i}.com\n")).collect();
    client.send_raw(batch.as_bytes());
    for i in 0..200 {
        assert_eq!(client.recv(), format!("miss{i}.com - Error:HOST NOT FOUND"));
    }
    // One after another they would take 60 s.
    assert!(started.elapsed() < ms(3000), "took {:?}", started.elapsed());
}

#[test]
fn the_inflight_cap_holds_queries_back_without_dropping_any() {
    let ls = start_ls_with(&[silent_ts()], ms(200), |o| o.max_inflight = 4);
    let mut client = LineClient::connect(ls.addr);
    let started = Instant::now();
    let batch: String = (0..20).map(|i| format!("miss{i}.com\n")).collect();
    client.send_raw(batch.as_bytes());
    for i in 0..20 {
        assert_eq!(client.recv(), format!("miss{i}.com - Error:HOST NOT FOUND"));
    }
    // Four at a time: five rounds of one timeout each.
    assert!(
        started.elapsed() >= ms(1000),
        "only {:?}: the cap was not applied",
        started.elapsed()
    );
}

#[test]
fn negative_answers_settle_a_miss_at_once() {
    let ts1 = start_ts_with(TS1, answering_misses());
    let ts2 = start_ts_with(TS2, answering_misses());
    let ls = start_ls(&[ts1.addr, ts2.addr], ms(5000));
    let mut client = LineClient::connect(ls.addr);
    let started = Instant::now();
    assert_eq!(
        client.ask("nothinghere.com"),
        "nothinghere.com - Error:HOST NOT FOUND"
    );
    assert!(
        started.elapsed() < ms(2000),
        "waited {:?} despite two NOT FOUNDs",
        started.elapsed()
    );
    // A NOT FOUND from one TS does not hide the other's answer.
    assert_eq!(
        client.ask("www.princeton.edu"),
        "www.princeton.edu 128.1.1.4 A"
    );
    assert_eq!(client.ask("amazon.org"), "amazon.org 94.5.6.7 A");
}

#[test]
fn a_ts_answering_misses_beside_a_silent_one_still_waits_for_the_silent_one() {
    let ts1 = start_ts_with(TS1, answering_misses());
    let ts2 = start_ts(TS2);
    let ls = start_ls(&[ts1.addr, ts2.addr], ms(300));
    let mut client = LineClient::connect(ls.addr);
    assert_eq!(
        client.ask("www.princeton.edu"),
        "www.princeton.edu 128.1.1.4 A"
    );
    let started = Instant::now();
    assert_eq!(
        client.ask("nothinghere.com"),
        "nothinghere.com - Error:HOST NOT FOUND"
    );
    assert!(
        started.elapsed() >= ms(300),
        "the silent TS was not waited for"
    );
    assert_eq!(client.ask("amazon.org"), "amazon.org 94.5.6.7 A");
}

#[test]
fn ts_says_not_found_only_when_asked_to() {
    let ts = start_ts_with(TS2, answering_misses());
    let mut direct = LineClient::connect(ts.addr);
    assert_eq!(direct.ask("Nothing.Here"), "Nothing.Here - NOT FOUND");
    assert_eq!(
        direct.ask("www.princeton.edu"),
        "www.princeton.edu 128.1.1.4 A"
    );
}

#[test]
fn pipelined_client_resolves_a_file_of_misses_in_about_one_timeout() {
    let (ts1, ts2) = (start_ts(TS1), start_ts(TS2));
    let ls = start_ls(&[ts1.addr, ts2.addr], ms(300));
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..2000)
        .map(|i| {
            if i % 2 == 0 {
                format!("miss{i}.com")
            } else {
                "amazon.org".to_string()
            }
        })
        .collect();
    std::fs::write(dir.path().join("names.txt"), names.join("\n")).unwrap();
    let port = ls.addr.port().to_string();
    let started = Instant::now();
    let (status, _, stderr) = run_bin(
        dir.path(),
        &[
            "client",
            "127.0.0.1",
            &port,
            "--input",
            "names.txt",
            "--pipeline",
            "2000",
        ],
    );
    let took = started.elapsed();
    assert!(status.success(), "{stderr}");
    let resolved = std::fs::read_to_string(dir.path().join("RESOLVED.txt")).unwrap();
    let lines: Vec<&str> = resolved.lines().collect();
    assert_eq!(lines.len(), 2000);
    for (line, name) in lines.iter().zip(&names) {
        assert!(line.starts_with(&format!("{name} ")), "{line} for {name}");
    }
    // One at a time, the 1000 misses would take 300 s.
    assert!(took < ms(5000), "took {took:?}");
}

#[test]
fn pipelined_client_writes_the_same_file_as_the_sequential_one() {
    let (ts1, ts2) = (start_ts(TS1), start_ts(TS2));
    let ls = start_ls(&[ts1.addr, ts2.addr], ms(200));
    let dir = tempfile::tempdir().unwrap();
    let port = ls.addr.port().to_string();
    let input = data("PROJ2-HNS.txt");
    for (window, output) in [("1", "one.txt"), ("8", "eight.txt")] {
        let args = [
            "client",
            "127.0.0.1",
            &port,
            "--input",
            input.to_str().unwrap(),
            "--output",
            output,
            "--pipeline",
            window,
        ];
        assert!(run_bin(dir.path(), &args).0.success());
    }
    let expected = std::fs::read_to_string(data("example-RESOLVED.txt")).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("one.txt")).unwrap(),
        expected
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("eight.txt")).unwrap(),
        expected
    );
}

#[test]
fn a_pipelining_client_works_through_course_style_tses() {
    // A bare TS reads one query per recv(): the LS sends it one at a time.
    // (TS2 holds none of the names, as in course_style_ts_servers_work_behind_the_ls.)
    let ts1 = course_ts(&[
        ("amazon.org", "94.5.6.7"),
        ("www.princeton.edu", "128.1.1.4"),
    ]);
    let ts2 = course_ts(&[("other.org", "1.1.1.1")]);
    let ls = start_ls_with(&[ts1, ts2], ms(300), |o| {
        o.ts_framing = dnslb::framing::Framing::Bare
    });
    let mut client = LineClient::connect(ls.addr);
    client.send_raw(b"amazon.org\nwww.princeton.edu\namazon.org\n");
    assert_eq!(client.recv(), "amazon.org 94.5.6.7 A");
    assert_eq!(client.recv(), "www.princeton.edu 128.1.1.4 A");
    assert_eq!(client.recv(), "amazon.org 94.5.6.7 A");
}
