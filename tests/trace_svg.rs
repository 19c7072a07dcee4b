//! `dnslb trace`, the binary, on trace files: the SVG it writes, its text
//! summary and its errors.

mod support;

use std::path::{Path, PathBuf};

use support::*;

/// The hand-written trace of a threaded LS answering the course sample
/// (one client, a timeout among the hits).
fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/trace_fixtures/threads.jsonl")
}

fn path(p: &Path) -> &str {
    p.to_str().expect("paths here are UTF-8")
}

/// The text of every element of class `class` in `svg`.
fn texts_of(svg: &str, class: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse(svg).expect("well-formed XML");
    doc.descendants()
        .filter(|n| n.attribute("class") == Some(class))
        .filter_map(|n| n.text().map(String::from))
        .collect()
}

/// The classes of the drawn events in `svg`.
fn events_of(svg: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse(svg).expect("well-formed XML");
    doc.descendants()
        .filter_map(|n| n.attribute("class"))
        .filter(|c| c.starts_with("event "))
        .map(String::from)
        .collect()
}

#[test]
fn smoke() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.svg");
    let (status, stdout, stderr) = run_bin(
        dir.path(),
        &["trace", path(&fixture()), "--svg", path(&out)],
    );
    assert!(status.success(), "{stdout}{stderr}");
    let svg = std::fs::read_to_string(&out).unwrap();
    assert_eq!(
        texts_of(&svg, "lane-title"),
        [
            "127.0.0.1:50312",
            "reader-1",
            "worker-1",
            "link-1-ts1",
            "link-1-ts2",
            "ts1",
            "ts2"
        ]
    );
    let lines = std::fs::read_to_string(fixture()).unwrap().lines().count();
    assert_eq!(events_of(&svg).len(), lines);
    // The timeout's five seconds are a break, not five seconds of height.
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let height: f64 = doc
        .root_element()
        .attribute("height")
        .unwrap()
        .parse()
        .unwrap();
    assert!(height < 3000.0, "{height}");
}

#[test]
fn query_name_and_first_pick_what_is_drawn() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.svg");
    let fixture = fixture();
    let draw = |args: &[&str]| {
        let mut all = vec!["trace", path(&fixture), "--svg", path(&out)];
        all.extend_from_slice(args);
        let (status, stdout, stderr) = run_bin(dir.path(), &all);
        assert!(status.success(), "{args:?}: {stdout}{stderr}");
        events_of(&std::fs::read_to_string(&out).unwrap())
    };
    let one = draw(&["--query", "3"]);
    assert_eq!(one.len(), 5);
    assert!(one.iter().all(|c| c.ends_with(" q3")), "{one:?}");
    let named = draw(&["--name", "AMAZON.org"]);
    assert!(
        !named.is_empty() && named.iter().all(|c| c.ends_with(" q4")),
        "{named:?}"
    );
    let first = draw(&["--first", "2"]);
    assert_eq!(first.len(), 12);
    assert!(
        first
            .iter()
            .all(|c| c.ends_with(" q1") || c.ends_with(" q2"))
    );
}

#[test]
fn without_svg_it_prints_one_summary_line_per_query() {
    let dir = tempfile::tempdir().unwrap();
    let (status, stdout, stderr) = run_bin(dir.path(), &["trace", path(&fixture())]);
    assert!(status.success(), "{stderr}");
    assert_eq!(
        stdout,
        "q1 www.princeton.edu  arrive→write 310 µs  asked ts1,ts2  answer (ts2)\n\
         q2 rutgers.com  arrive→write 270 µs  asked ts1,ts2  answer (ts1)\n\
         q3 nothinghere.com  arrive→write 5000080 µs  asked ts1,ts2  timeout\n\
         q4 amazon.org  arrive→write 250 µs  asked ts1,ts2  answer (ts1)\n"
    );
}

#[test]
fn a_malformed_line_is_an_error_naming_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.jsonl");
    let good = std::fs::read_to_string(fixture()).unwrap();
    let first_two: String = good.lines().take(2).map(|l| format!("{l}\n")).collect();
    std::fs::write(&file, format!("{first_two}{{\"t_us\":1,\n")).unwrap();
    let (status, _, stderr) = run_bin(dir.path(), &["trace", path(&file)]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("trace: {}:3: ", file.display())),
        "{stderr}"
    );
}

#[test]
fn usage_errors_name_the_role_and_flag_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = fixture();
    for (args, says) in [
        (
            vec!["trace", path(&fixture), "--query", "9"],
            "--query 9: no query 9 in the trace (it holds 4 queries with ids 1 to 4)",
        ),
        (
            vec!["trace", path(&fixture), "--name", "x.org"],
            "--name x.org: no query for \"x.org\"",
        ),
        (
            vec!["trace", path(&fixture), "--query", "1", "--first", "2"],
            "trace: give at most one of --query, --name and --first",
        ),
        (
            vec!["trace", path(&fixture), "--first", "0"],
            "trace: --first must be at least 1",
        ),
        (
            vec!["trace", path(&fixture), "--query", "x"],
            "trace: --query: \"x\" is not a whole number",
        ),
        (
            vec!["trace", "missing.jsonl"],
            "trace: cannot read missing.jsonl",
        ),
    ] {
        let (status, _, stderr) = run_bin(dir.path(), &args);
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    let out = dir.path().join("no-such-dir/t.svg");
    let (status, _, stderr) = run_bin(dir.path(), &["trace", path(&fixture), "--svg", path(&out)]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("trace: --svg ") && stderr.contains("cannot write it"));
}

#[test]
fn help_lists_the_flags_after_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (status, stdout, _) = run_bin(dir.path(), &["trace", "-h"]);
    assert!(status.success());
    assert!(stdout.starts_with("Usage: dnslb trace <file> "), "{stdout}");
    for flag in ["--svg", "--query", "--name", "--first"] {
        assert!(stdout.contains(flag), "{flag}: {stdout}");
    }
}
