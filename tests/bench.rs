//! `dnslb bench` run as a user runs it, against real TSes and LSes on
//! loopback and against fake servers that answer wrongly.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

use support::*;

/// A TS table of `n` names `<prefix>-<i>.example` at 10.<octet>.x.y.
fn table(prefix: &str, octet: u8, n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "{prefix}-{i}.example 10.{octet}.{}.{} A\n",
                i / 256,
                i % 256
            )
        })
        .collect()
}

fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `dnslb bench 127.0.0.1 <port> <args>` (bounded).
fn bench(port: u16, args: &[&str]) -> (ExitStatus, Report) {
    let dir = tempfile::tempdir().unwrap();
    let port = port.to_string();
    let mut all = vec!["bench", "127.0.0.1", &port];
    all.extend_from_slice(args);
    let (status, stdout, stderr) = run_bin(dir.path(), &all);
    (status, Report { stdout, stderr })
}

/// What the bench printed.
struct Report {
    stdout: String,
    stderr: String,
}

impl Report {
    /// The number after `key` at the start of a line of the summary.
    fn count(&self, key: &str) -> u64 {
        self.stdout
            .lines()
            .find_map(|line| {
                let mut words = line.split_whitespace();
                (words.next() == Some(key)).then(|| words.next())?
            })
            .unwrap_or_else(|| panic!("no {key:?} line in:\n{}{}", self.stdout, self.stderr))
            .parse()
            .unwrap_or_else(|_| panic!("{key:?} is not a count in:\n{}", self.stdout))
    }

    fn show(&self) -> String {
        format!("stdout:\n{}stderr:\n{}", self.stdout, self.stderr)
    }
}

#[test]
fn smoke() {
    let dir = tempfile::tempdir().unwrap();
    let (t1, t2) = (table("one", 1, 50), table("two", 2, 50));
    let ts1 = start_ts(&t1);
    let ts2 = start_ts(&t2);
    let ls = start_ls(&[ts1.addr, ts2.addr], ms(100));
    let names = write_file(dir.path(), "names.txt", &(t1 + &t2));
    let (status, report) = bench(
        ls.addr.port(),
        &[
            "--clients",
            "4",
            "--queries",
            "50",
            "--names",
            names.to_str().unwrap(),
            "--miss-ratio",
            "0.1",
        ],
    );
    assert!(status.success(), "{}", report.show());
    assert_eq!(report.count("queries"), 200, "{}", report.show());
    assert_eq!(report.count("hits"), 180, "{}", report.show());
    assert_eq!(report.count("misses"), 20, "{}", report.show());
    for key in ["timeouts", "errors", "unanswered", "wrong"] {
        assert_eq!(report.count(key), 0, "{key}: {}", report.show());
    }
    assert!(
        report.stdout.contains("latency ms  p50 "),
        "{}",
        report.show()
    );
    assert!(report.stdout.contains("queries/s"), "{}", report.show());
}

#[test]
fn pipelined_clients_get_every_answer_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (t1, t2) = (table("one", 1, 40), table("two", 2, 40));
    let ts1 = start_ts(&t1);
    let ts2 = start_ts(&t2);
    let ls = start_ls(&[ts1.addr, ts2.addr], ms(500));
    let both = write_file(dir.path(), "both.txt", &(t1.clone() + &t2));
    let only_ts1 = write_file(dir.path(), "ts1.txt", &t1);
    let run = |port: u16, names: &Path| {
        bench(
            port,
            &[
                "--clients",
                "3",
                "--queries",
                "400",
                "--pipeline",
                "16",
                "--names",
                names.to_str().unwrap(),
            ],
        )
    };
    for (status, report) in [run(ls.addr.port(), &both), run(ts1.addr.port(), &only_ts1)] {
        assert!(status.success(), "{}", report.show());
        assert_eq!(report.count("hits"), 1200, "{}", report.show());
        assert_eq!(report.count("wrong"), 0, "{}", report.show());
        assert!(report.stdout.contains("pipeline 16"), "{}", report.show());
    }
}

#[test]
fn raw_framing_speaks_to_a_ts_like_the_course_programs() {
    let dir = tempfile::tempdir().unwrap();
    let t1 = table("one", 1, 10);
    let ts = start_ts(&t1);
    let names = write_file(dir.path(), "ts1.txt", &t1);
    let (status, report) = bench(
        ts.addr.port(),
        &[
            "--raw",
            "--queries",
            "20",
            "--names",
            names.to_str().unwrap(),
        ],
    );
    assert!(status.success(), "{}", report.show());
    assert_eq!(report.count("hits"), 20, "{}", report.show());
    assert!(report.stdout.contains("bare framing"), "{}", report.show());
}

#[test]
fn a_miss_against_a_silent_ts_counts_as_a_timeout() {
    let ts = start_ts("amazon.org 94.5.6.7 A\n");
    let dir = tempfile::tempdir().unwrap();
    let names = write_file(dir.path(), "names.txt", "amazon.org 94.5.6.7 A\n");
    let (status, report) = bench(
        ts.addr.port(),
        &[
            "--queries",
            "4",
            "--miss-ratio",
            "0.5",
            "--timeout",
            "0.2",
            "--names",
            names.to_str().unwrap(),
        ],
    );
    assert!(status.success(), "{}", report.show());
    assert_eq!(report.count("hits"), 2, "{}", report.show());
    assert_eq!(report.count("timeouts"), 2, "{}", report.show());
    assert_eq!(report.count("wrong"), 0, "{}", report.show());
}

#[test]
fn a_reply_after_its_timeout_is_counted_late_not_judged_against_the_next_query() {
    // Answers each odd-numbered query only when the next one arrives.
    let port = fake_server(|stream| {
        let mut writer = stream.try_clone().unwrap();
        let mut held: Option<String> = None;
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { return };
            let name = line.trim().to_string();
            let Some(first) = held.take() else {
                held = Some(name);
                continue;
            };
            let text = format!("{first} 1.2.3.4 A\n{name} 1.2.3.4 A\n");
            if writer.write_all(text.as_bytes()).is_err() {
                return;
            }
        }
    })
    .port();
    let dir = tempfile::tempdir().unwrap();
    let names = write_file(dir.path(), "names.txt", "a.example\nb.example\nc.example\n");
    let (status, report) = bench(
        port,
        &[
            "--queries",
            "6",
            "--timeout",
            "0.2",
            "--names",
            names.to_str().unwrap(),
        ],
    );
    assert!(status.success(), "{}", report.show());
    assert_eq!(report.count("timeouts"), 3, "{}", report.show());
    assert_eq!(report.count("late"), 3, "{}", report.show());
    assert_eq!(report.count("hits"), 3, "{}", report.show());
    assert_eq!(report.count("wrong"), 0, "{}", report.show());
}

/// A server answering every query line with `reply(query)`.
fn answering_server(reply: fn(&str) -> String) -> u16 {
    fake_server(move |stream| {
        let mut writer = stream.try_clone().unwrap();
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { return };
            let text = format!("{}\n", reply(line.trim()));
            if writer.write_all(text.as_bytes()).is_err() {
                return;
            }
        }
    })
    .port()
}

#[test]
fn answers_for_another_name_are_reported_wrong_and_fail_the_run() {
    let port = answering_server(|_| "amazon.org 94.5.6.7 A".to_string());
    // The course names: amazon.org is one of four, so three in four are wrong.
    let (status, report) = bench(port, &["--clients", "2", "--queries", "8"]);
    assert_eq!(status.code(), Some(1), "{}", report.show());
    assert_eq!(report.count("wrong"), 12, "{}", report.show());
    assert_eq!(report.count("hits"), 4, "{}", report.show());
    assert!(
        report.stdout.contains("answer for another name"),
        "{}",
        report.show()
    );
    assert!(
        report.stderr.contains("12 wrong answer"),
        "{}",
        report.show()
    );
}

#[test]
fn answers_with_another_address_or_for_absent_names_are_wrong() {
    let port = answering_server(|name| format!("{name} 9.9.9.9 A"));
    let (status, report) = bench(port, &["--queries", "10", "--miss-ratio", "0.2"]);
    assert_eq!(status.code(), Some(1), "{}", report.show());
    assert_eq!(report.count("wrong"), 10, "{}", report.show());
    assert!(
        report
            .stdout
            .contains("address differs from the names file"),
        "{}",
        report.show()
    );
    assert!(
        report.stdout.contains("answer for a name no TS holds"),
        "{}",
        report.show()
    );
}

#[test]
fn replies_out_of_query_order_are_wrong() {
    // Answers each pair of queries in reverse order.
    let port = fake_server(|stream| {
        let mut writer = stream.try_clone().unwrap();
        let mut lines = BufReader::new(stream).lines();
        while let (Some(Ok(first)), Some(Ok(second))) = (lines.next(), lines.next()) {
            let text = format!("{second} - Error:HOST NOT FOUND\n{first} - Error:HOST NOT FOUND\n");
            if writer.write_all(text.as_bytes()).is_err() {
                return;
            }
        }
    })
    .port();
    let (status, report) = bench(port, &["--queries", "6", "--pipeline", "2"]);
    assert_eq!(status.code(), Some(1), "{}", report.show());
    assert_eq!(report.count("wrong"), 6, "{}", report.show());
    assert!(
        report.stdout.contains("miss line for another name"),
        "{}",
        report.show()
    );
}

#[test]
fn unreachable_server_fails_the_run_and_names_the_address() {
    let addr = closed_port();
    let (status, report) = bench(addr.port(), &["--clients", "2", "--queries", "3"]);
    assert_eq!(status.code(), Some(1), "{}", report.show());
    assert_eq!(report.count("unanswered"), 6, "{}", report.show());
    assert!(
        report.stdout.contains(&format!("cannot connect to {addr}")),
        "{}",
        report.show()
    );
}

#[test]
fn bad_names_file_and_bad_options_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let names = write_file(dir.path(), "names.txt", "ok.example\nbad.example 1.2.3 A\n");
    let (status, report) = bench(1, &["--names", names.to_str().unwrap()]);
    assert_eq!(status.code(), Some(2), "{}", report.show());
    assert!(report.stderr.contains("names.txt:2:"), "{}", report.show());
    let (status, report) = bench(1, &["--raw", "--pipeline", "4"]);
    assert_eq!(status.code(), Some(2), "{}", report.show());
    let (status, report) = bench(1, &["--miss-ratio", "1.5"]);
    assert_eq!(status.code(), Some(2), "{}", report.show());
}
