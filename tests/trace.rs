//! `ls --trace FILE`: the steps of each query, through each front end
//! (course, DNS over UDP, DNS over TCP), in order, on the threads that
//! did them, with the TSes and outcomes the LS saw; the cache's hits and
//! misses; a pool's retry; the binary's start-up error and its trace
//! complete after SIGINT.

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

use dnslb::ls::{LsOptions, Policy, TsProtocol};
use support::dns::*;
use support::*;

/// One trace line: its keys in order, each value a string or a number
/// (as text).
#[derive(Debug, Clone)]
struct Line {
    keys: Vec<String>,
    values: BTreeMap<String, String>,
}

impl Line {
    fn get(&self, key: &str) -> &str {
        self.values
            .get(key)
            .unwrap_or_else(|| panic!("no {key:?} in {self:?}"))
    }

    fn opt(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    fn t_us(&self) -> u64 {
        self.get("t_us").parse().unwrap()
    }

    fn query(&self) -> u64 {
        self.get("query").parse().unwrap()
    }

    /// `event`, with `ts` or `outcome` when it has them: `send ts1`,
    /// `settle answer ts1`.
    fn step(&self) -> String {
        let mut step = self.get("event").to_string();
        for key in ["outcome", "ts"] {
            if let Some(value) = self.opt(key) {
                step.push(' ');
                step.push_str(value);
            }
        }
        step
    }
}

/// Parses one flat JSON object of strings and integers, as the trace
/// writes them (and checks it is that).
fn parse_line(text: &str) -> Line {
    let mut chars = text.chars().peekable();
    let mut keys = Vec::new();
    let mut values = BTreeMap::new();
    let string = |chars: &mut std::iter::Peekable<std::str::Chars>| -> String {
        assert_eq!(chars.next(), Some('"'), "a string in {text}");
        let mut out = String::new();
        loop {
            match chars.next().expect("a closed string") {
                '"' => return out,
                '\\' => match chars.next().unwrap() {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'u' => {
                        let hex: String = (0..4).map(|_| chars.next().unwrap()).collect();
                        out.push(char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap());
                    }
                    c => out.push(c),
                },
                c => {
                    assert!(u32::from(c) >= 0x20, "a raw control character in {text:?}");
                    out.push(c);
                }
            }
        }
    };
    assert_eq!(chars.next(), Some('{'), "{text}");
    loop {
        let key = string(&mut chars);
        assert_eq!(chars.next(), Some(':'));
        let value = if chars.peek() == Some(&'"') {
            string(&mut chars)
        } else {
            let mut number = String::new();
            while chars.peek().is_some_and(char::is_ascii_digit) {
                number.push(chars.next().unwrap());
            }
            assert!(!number.is_empty(), "a value in {text}");
            number
        };
        keys.push(key.clone());
        values.insert(key, value);
        match chars.next() {
            Some(',') => continue,
            Some('}') => break,
            other => panic!("{other:?} in {text}"),
        }
    }
    assert_eq!(chars.next(), None, "one object a line: {text}");
    Line { keys, values }
}

/// Every line of the trace at `path`, each checked to start with the
/// common keys in order.
fn read_trace(path: &Path) -> Vec<Line> {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.is_empty() || text.ends_with('\n'), "whole lines");
    let lines: Vec<Line> = text.lines().map(parse_line).collect();
    for line in &lines {
        assert_eq!(
            line.keys[..5],
            ["t_us", "thread", "query", "name", "event"],
            "{line:?}"
        );
    }
    lines
}

/// The lines of the query named `name` (the only one so named), by time.
fn steps_of(lines: &[Line], name: &str) -> Vec<Line> {
    let mut of: Vec<Line> = lines
        .iter()
        .filter(|l| l.get("name") == name)
        .cloned()
        .collect();
    assert!(!of.is_empty(), "no step of {name:?}");
    let query = of[0].query();
    assert!(of.iter().all(|l| l.query() == query), "one query: {of:?}");
    // Stable: steps recorded at the same microsecond keep their order.
    of.sort_by_key(Line::t_us);
    of
}

/// The steps (see [`Line::step`]) of `lines`, with each thread's name.
fn path(lines: &[Line]) -> Vec<(String, String)> {
    lines
        .iter()
        .map(|l| (l.step(), l.get("thread").to_string()))
        .collect()
}

fn pairs(expected: &[(&str, String)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(s, t)| (s.to_string(), t.clone()))
        .collect()
}

/// The path of session `n`'s query answered by ts1: read and sent to both
/// TSes on the thread `arrived`, ts1's reply read on its link thread,
/// settled and written on the worker.
fn answered_by_ts1(arrived: &str, n: &str) -> Vec<(String, String)> {
    let worker = format!("worker-{n}");
    pairs(&[
        ("arrive", arrived.to_string()),
        ("send ts1", arrived.to_string()),
        ("send ts2", arrived.to_string()),
        ("reply ts1", format!("link-{n}-ts1")),
        ("settle answer ts1", worker.clone()),
        ("write", worker),
    ])
}

/// The `N` of the session thread a line names (`reader-N`, `link-N-ts1`).
fn session_of(line: &Line) -> String {
    line.get("thread")
        .split('-')
        .nth(1)
        .unwrap_or_else(|| panic!("a session's thread: {line:?}"))
        .to_string()
}

fn trace_file() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trace.jsonl");
    (dir, path)
}

#[test]
fn smoke() {
    let (_dir, file) = trace_file();
    let ts1 = start_ts("www.example.com 10.0.0.1 A\n");
    let ts2 = start_ts("other.example 10.0.0.2 A\n");
    let trace = file.clone();
    let ls = start_ls_with(&[ts1.addr, ts2.addr], ms(2000), move |o| {
        o.trace = Some(trace);
    });
    let mut client = LineClient::connect(ls.addr);
    let client_addr = client.writer().local_addr().unwrap();
    assert_eq!(client.ask("www.example.com"), "www.example.com 10.0.0.1 A");
    drop(client);
    ls.stop();

    let lines = read_trace(&file);
    let steps = steps_of(&lines, "www.example.com");
    let n = session_of(&steps[0]);
    assert_eq!(path(&steps), answered_by_ts1(&format!("reader-{n}"), &n));
    assert_eq!(steps[0].get("frontend"), "course");
    assert_eq!(steps[0].get("client"), client_addr.to_string());
    assert_eq!(lines.len(), steps.len(), "one query, nothing else");
}

/// Two TSes speaking DNS and an LS in front of them speaking DNS to them,
/// tracing to `file`, with `tweak` applied.
fn dns_system(file: &Path, tweak: impl FnOnce(&mut LsOptions)) -> (DnsTs, DnsTs, DnsLs) {
    let ts1 = DnsTs::start("www.example.com 10.0.0.1 A\n");
    let ts2 = DnsTs::start("mail.example.org 10.0.2.1 A\n");
    let trace = file.to_path_buf();
    let ls = DnsLs::start(&[ts1.addr, ts2.addr], move |o| {
        o.ts_protocol = TsProtocol::Dns;
        o.trace = Some(trace);
        tweak(o);
    });
    (ts1, ts2, ls)
}

/// Asks over UDP from a socket of its own; returns the answer and that
/// socket's address.
fn udp_from(server: SocketAddr, message: &Message) -> (Message, SocketAddr) {
    let socket = udp_client();
    socket.send_to(&message.to_vec().unwrap(), server).unwrap();
    let answer = Message::from_vec(&udp_recv(&socket)).unwrap();
    (answer, socket.local_addr().unwrap())
}

/// The steps of a query TS1 answers and TS2 refuses (it is not TS2's
/// zone): the refusal is part of the path only when it came before the
/// answer settled the query (after, it belongs to no query in flight).
fn without_ts2_reply(steps: &[Line]) -> Vec<Line> {
    let settle = steps.iter().position(|l| l.get("event") == "settle");
    let refused_in_time = steps
        .iter()
        .position(|l| l.step() == "reply ts2")
        .map(|at| (at, settle.is_some_and(|s| at < s)));
    if let Some((_, false)) = refused_in_time {
        panic!("a reply recorded after its query settled: {steps:?}");
    }
    steps
        .iter()
        .filter(|l| l.step() != "reply ts2")
        .cloned()
        .collect()
}

#[test]
fn a_dns_query_over_udp_is_traced_from_its_receiving_thread_to_its_worker() {
    let (_dir, file) = trace_file();
    let (_ts1, _ts2, ls) = dns_system(&file, |_| {});
    let (answer, client) = udp_from(ls.dns, &query(7, "www.example.com.", RecordType::A));
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    ls.stop();

    let lines = read_trace(&file);
    let steps = steps_of(&lines, "www.example.com");
    let n = session_of(&steps[0]);
    assert_eq!(
        path(&without_ts2_reply(&steps)),
        answered_by_ts1(&format!("udp-{n}"), &n)
    );
    assert_eq!(steps[0].get("frontend"), "dns_udp");
    assert_eq!(steps[0].get("client"), client.to_string());
}

#[test]
fn a_udp_query_over_its_sources_share_settles_as_dropped() {
    let (_dir, file) = trace_file();
    let silent = silent_ts();
    let trace = file.clone();
    // 2 sessions of 4 slots: a source holds one at a time.
    let ls = DnsLs::start(&[silent], move |o| {
        o.max_inflight = 4;
        o.dns_timeout = ms(200);
        o.trace = Some(trace);
    });
    let (first, second) = (udp_client(), udp_client());
    let ask = |socket: &std::net::UdpSocket, id: u16, name: &str| {
        let bytes = query(id, name, RecordType::A).to_vec().unwrap();
        socket.send_to(&bytes, ls.dns).unwrap();
    };
    ask(&first, 1, "one.example.");
    ask(&second, 2, "two.example.");
    // One of the two is answered (SERVFAIL: the TS is silent); which one
    // depends on which receiving thread took its datagram first.
    let answered = [&first, &second].map(|socket| {
        socket.set_read_timeout(Some(ms(1000))).unwrap();
        let mut buf = [0; 512];
        socket.recv_from(&mut buf).is_ok()
    });
    assert_eq!(answered.iter().filter(|&&a| a).count(), 1, "{answered:?}");
    ls.stop();

    let lines = read_trace(&file);
    let mut paths: Vec<Vec<String>> = ["one.example", "two.example"]
        .iter()
        .map(|name| steps_of(&lines, name).iter().map(Line::step).collect())
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            vec!["arrive", "send ts1", "settle timeout", "write"],
            vec!["arrive", "settle dropped"],
        ]
    );
}

#[test]
fn the_metrics_count_the_trace_steps_dropped() {
    let (_dir, file) = trace_file();
    let (_ts1, _ts2, ls) = dns_system(&file, |_| {});
    udp_from(ls.dns, &query(7, "www.example.com.", RecordType::A));
    let dropped = ls.ls.metrics().get("dnslb_trace_dropped_total", &[]);
    assert_eq!(dropped, Some(0.0));
    ls.stop();
}

#[test]
fn a_dns_query_over_tcp_is_traced_like_a_course_query() {
    let (_dir, file) = trace_file();
    let (_ts1, _ts2, ls) = dns_system(&file, |_| {});
    let mut stream = tcp_connect(ls.dns);
    let client = stream.local_addr().unwrap();
    stream
        .write_all(&framed(&query(8, "www.example.com.", RecordType::A)))
        .unwrap();
    assert_eq!(
        tcp_read(&mut stream).metadata.response_code,
        ResponseCode::NoError
    );
    drop(stream);
    ls.stop();

    let lines = read_trace(&file);
    let steps = steps_of(&lines, "www.example.com");
    let n = session_of(&steps[0]);
    assert_eq!(
        path(&without_ts2_reply(&steps)),
        answered_by_ts1(&format!("reader-{n}"), &n)
    );
    assert_eq!(steps[0].get("frontend"), "dns_tcp");
    assert_eq!(steps[0].get("client"), client.to_string());
}

#[test]
fn the_cache_step_says_miss_then_hit_and_a_hit_settles_on_the_reading_thread() {
    let (_dir, file) = trace_file();
    let (_ts1, _ts2, ls) = dns_system(&file, |o| o.cache = 100);
    for id in [1, 2] {
        let (answer, _) = udp_from(ls.dns, &query(id, "www.example.com.", RecordType::A));
        assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    }
    // A course client's query meets the same cache.
    let mut client = LineClient::connect(ls.course());
    assert!(client.ask("WWW.example.com").ends_with(" 10.0.0.1 A"));
    drop(client);
    ls.stop();

    let lines = read_trace(&file);
    let mut queries: Vec<u64> = lines
        .iter()
        .filter(|l| l.get("event") == "arrive")
        .map(Line::query)
        .collect();
    queries.sort();
    assert_eq!(queries.len(), 3);
    let of = |q: u64| -> Vec<Line> {
        let mut steps: Vec<Line> = lines.iter().filter(|l| l.query() == q).cloned().collect();
        steps.sort_by_key(Line::t_us);
        steps
    };
    let miss = of(queries[0]);
    assert_eq!(miss[1].step(), "cache miss");
    assert!(miss.iter().any(|l| l.step() == "send ts1"));
    assert!(miss.iter().any(|l| l.step() == "settle answer ts1"));
    let hit = of(queries[1]);
    let udp = hit[0].get("thread").to_string();
    assert!(udp.starts_with("udp-"), "{udp}");
    // Answered at once by the receiving thread: no TS, no worker.
    assert_eq!(
        path(&hit),
        pairs(&[
            ("arrive", udp.clone()),
            ("cache hit", udp.clone()),
            ("settle cached", udp.clone()),
            ("write", udp.clone()),
        ])
    );
    let course = of(queries[2]);
    assert_eq!(
        course[0].get("name"),
        "WWW.example.com",
        "the name as received"
    );
    let n = session_of(&course[0]);
    assert_eq!(
        path(&course),
        pairs(&[
            ("arrive", format!("reader-{n}")),
            ("cache hit", format!("reader-{n}")),
            ("settle cached", format!("reader-{n}")),
            ("write", format!("worker-{n}")),
        ])
    );
}

#[test]
fn a_query_no_ts_answers_settles_as_a_timeout_on_its_deadline() {
    let (_dir, file) = trace_file();
    let silent = silent_ts();
    let trace = file.clone();
    let ls = start_ls_with(&[silent], ms(150), move |o| o.trace = Some(trace));
    let mut client = LineClient::connect(ls.addr);
    assert_eq!(
        client.ask("nowhere.example"),
        "nowhere.example - Error:HOST NOT FOUND"
    );
    drop(client);
    ls.stop();

    let steps = steps_of(&read_trace(&file), "nowhere.example");
    let events: Vec<String> = steps.iter().map(Line::step).collect();
    assert_eq!(events, ["arrive", "send ts1", "settle timeout", "write"]);
    let waited = steps[2].t_us() - steps[0].t_us();
    assert!(
        waited >= 150_000,
        "settled at its deadline, not {waited} µs"
    );
}

#[test]
fn a_pool_query_moved_to_the_next_member_is_traced_as_a_retry_and_a_send() {
    let (_dir, file) = trace_file();
    let silent = silent_ts();
    let answering = start_ts("www.example.com 10.0.0.1 A\n");
    let trace = file.clone();
    let ls = start_ls_with(&[silent, answering.addr], ms(2000), move |o| {
        o.pools = vec![vec![(0, 1), (1, 1)]];
        o.policy = Policy::First;
        o.try_timeout = ms(100);
        o.trace = Some(trace);
    });
    let mut client = LineClient::connect(ls.addr);
    assert_eq!(client.ask("www.example.com"), "www.example.com 10.0.0.1 A");
    drop(client);
    ls.stop();

    let steps = steps_of(&read_trace(&file), "www.example.com");
    let n = session_of(&steps[0]);
    let worker = format!("worker-{n}");
    assert_eq!(
        path(&steps),
        pairs(&[
            ("arrive", format!("reader-{n}")),
            ("send ts1", format!("reader-{n}")),
            ("retry ts2", worker.clone()),
            ("send ts2", worker.clone()),
            ("reply ts2", format!("link-{n}-ts2")),
            ("settle answer ts2", worker.clone()),
            ("write", worker.clone()),
        ])
    );
    assert!(
        steps[2].t_us() - steps[1].t_us() >= 100_000,
        "after the try timeout"
    );
}

#[test]
fn ids_are_unique_across_front_ends_and_every_query_has_its_steps() {
    let (_dir, file) = trace_file();
    let (_ts1, _ts2, ls) = dns_system(&file, |_| {});
    let mut client = LineClient::connect(ls.course());
    for i in 0..20 {
        client.send(&format!("n{i}.example.com"));
    }
    for _ in 0..20 {
        client.recv();
    }
    for id in 0..10 {
        udp_from(
            ls.dns,
            &query(id, &format!("u{id}.example.com."), RecordType::A),
        );
    }
    drop(client);
    ls.stop();

    let lines = read_trace(&file);
    let mut by_query: BTreeMap<u64, Vec<Line>> = BTreeMap::new();
    for line in lines {
        by_query.entry(line.query()).or_default().push(line);
    }
    assert_eq!(by_query.len(), 30);
    for (query, steps) in by_query {
        let names: std::collections::HashSet<&str> = steps.iter().map(|l| l.get("name")).collect();
        assert_eq!(names.len(), 1, "query {query} has one name");
        let events: Vec<&str> = steps.iter().map(|l| l.get("event")).collect();
        for event in ["arrive", "send", "settle", "write"] {
            assert_eq!(
                events.iter().filter(|&&e| e == event).count(),
                if event == "send" { 2 } else { 1 },
                "query {query}: {events:?}"
            );
        }
        let arrive = steps.iter().find(|l| l.get("event") == "arrive").unwrap();
        let write = steps.iter().find(|l| l.get("event") == "write").unwrap();
        assert!(
            steps
                .iter()
                .all(|l| arrive.t_us() <= l.t_us() && l.t_us() <= write.t_us())
        );
        // Each reply read before the query settled, each send before it.
        let settle = steps.iter().find(|l| l.get("event") == "settle").unwrap();
        for step in &steps {
            match step.get("event") {
                "send" | "reply" => assert!(step.t_us() <= settle.t_us(), "{steps:?}"),
                _ => {}
            }
        }
    }
}

#[test]
fn the_binary_refuses_an_unwritable_trace_file_and_completes_one_on_sigint() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("no-such-dir").join("trace.jsonl");
    let (status, _, stderr) = run_bin(
        dir.path(),
        &[
            "ls",
            "0",
            "127.0.0.1",
            "1",
            "--trace",
            bad.to_str().unwrap(),
        ],
    );
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(bad.to_str().unwrap()), "{stderr}");

    let ts = start_ts("www.example.com 10.0.0.1 A\n");
    let file = dir.path().join("trace.jsonl");
    let port = ts.addr.port().to_string();
    let args = [
        "ls",
        "0",
        "127.0.0.1",
        &port,
        "--bind",
        "127.0.0.1",
        "--trace",
        file.to_str().unwrap(),
    ];
    let (ls, stderr) = spawn_server_bin_stderr(&args);
    let mut client = LineClient::connect(ls.addr);
    assert_eq!(client.ask("www.example.com"), "www.example.com 10.0.0.1 A");
    drop(client);
    ls.signal(libc::SIGINT);
    assert!(ls.wait().success());
    let said = line_containing(&stderr, "trace: ");
    assert!(
        said.ends_with("trace: 5 events written, 0 dropped"),
        "{said}"
    );
    let events: Vec<String> = steps_of(&read_trace(&file), "www.example.com")
        .iter()
        .map(Line::step)
        .collect();
    assert_eq!(
        events,
        [
            "arrive",
            "send ts1",
            "reply ts1",
            "settle answer ts1",
            "write"
        ]
    );
}

#[test]
fn a_running_ls_flushes_its_trace_once_idle() {
    let (_dir, file) = trace_file();
    let ts = start_ts("www.example.com 10.0.0.1 A\n");
    let trace = file.clone();
    let ls = start_ls_with(&[ts.addr], ms(2000), move |o| o.trace = Some(trace));
    let mut client = LineClient::connect(ls.addr);
    assert_eq!(client.ask("www.example.com"), "www.example.com 10.0.0.1 A");
    // The LS still runs: the writer flushes within 100 ms of going idle.
    // Nothing tells a reader of the file when, so it is read until the
    // last step is there (bounded).
    let deadline = std::time::Instant::now() + BOUND;
    loop {
        let text = std::fs::read_to_string(&file).unwrap();
        if text.lines().any(|l| l.contains("\"event\":\"write\"")) {
            assert!(text.ends_with('\n'), "whole lines: {text}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not flushed while idle: {text:?}"
        );
        std::thread::sleep(ms(10));
    }
    drop(client);
    ls.stop();
}

#[test]
fn trace_with_root_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let (status, _, stderr) = run_bin(
        dir.path(),
        &["ls", "0", "--root", "127.0.0.1", "--trace", "t.jsonl"],
    );
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--trace"), "{stderr}");
    assert!(!dir.path().join("t.jsonl").exists());
}
