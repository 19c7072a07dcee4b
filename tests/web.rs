//! The web endpoint (`--web`): status codes, the Prometheus text checked
//! against the exposition format's rules, counts that match the queries
//! sent, a TS going down, the JSON, and hostile HTTP clients that leave the
//! course and DNS service answering.

mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use dnslb::shutdown::Shutdown;
use dnslb::web::{self, WebOptions, metrics::check};
use support::{BOUND, LineClient, ms, start_ls_observed, start_ts};

const TABLE: &str = "a.com 1.1.1.1 A\nb.com 2.2.2.2 A\n";

/// A web endpoint running in-process; stopped on drop.
struct Web {
    addr: SocketAddr,
    shutdown: Shutdown,
    thread: Option<JoinHandle<()>>,
}

impl Web {
    fn start(source: web::Source, options: WebOptions) -> Web {
        dnslb::log::to_test_harness();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = Shutdown::new();
        let handle = shutdown.clone();
        let thread = thread::spawn(move || web::serve(listener, source, options, &handle).unwrap());
        Web {
            addr,
            shutdown,
            thread: Some(thread),
        }
    }
}

impl Drop for Web {
    fn drop(&mut self) {
        self.shutdown.trigger();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Sends `request` as is and reads the whole response (the server closes).
fn exchange(addr: SocketAddr, request: &[u8]) -> (u16, HashMap<String, String>, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(BOUND)).unwrap();
    // The server may answer (and close) before reading all of a huge request.
    let _ = stream.write_all(request);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    parse_response(&response)
}

fn parse_response(bytes: &[u8]) -> (u16, HashMap<String, String>, String) {
    let text = String::from_utf8_lossy(bytes).to_string();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {text:?}"));
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect::<HashMap<_, _>>();
    if let Some(length) = headers.get("content-length")
        && !body.is_empty()
    {
        assert_eq!(
            length.parse::<usize>().unwrap(),
            body.len(),
            "Content-Length"
        );
    }
    (status, headers, body.to_string())
}

fn get(addr: SocketAddr, path: &str) -> (u16, HashMap<String, String>, String) {
    exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes(),
    )
}

fn metrics(addr: SocketAddr) -> HashMap<String, f64> {
    let (status, headers, body) = get(addr, "/metrics");
    assert_eq!(status, 200);
    assert_eq!(
        headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    check::parse(&body).unwrap_or_else(|e| panic!("{e}\n{body}"))
}

#[test]
fn smoke() {
    let ts = start_ts(TABLE);
    let ls = start_ls_observed(&[ts.addr], ms(2000), |_| {});
    let site = Web::start(ls.ls.metrics_source(), WebOptions::default());
    let (status, headers, body) = get(site.addr, "/");
    assert_eq!(status, 200);
    assert!(headers["content-type"].starts_with("text/html"));
    assert!(body.contains("/api/v1/stats"));
    // Self-contained: nothing fetched from elsewhere.
    assert!(!body.contains("http://") && !body.contains("https://") && !body.contains("src="));
    assert_eq!(headers["connection"], "close");
}

#[test]
fn unknown_paths_other_methods_and_garbage_are_refused() {
    let site = Web::start(
        Arc::new(|| dnslb::web::metrics::Metrics::new("ls")),
        WebOptions::default(),
    );
    assert_eq!(get(site.addr, "/nope").0, 404);
    let (status, headers, _) = exchange(site.addr, b"POST /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(status, 405);
    assert_eq!(headers["allow"], "GET, HEAD");
    assert_eq!(exchange(site.addr, b"hello there\r\n\r\n").0, 400);
    let huge = format!("GET /{} HTTP/1.1\r\n\r\n", "x".repeat(100_000));
    assert_eq!(exchange(site.addr, huge.as_bytes()).0, 414);
    let many = format!("GET / HTTP/1.1\r\n{}\r\n", "X-Filler: yes\r\n".repeat(1000));
    assert_eq!(exchange(site.addr, many.as_bytes()).0, 431);
    let (status, headers, body) = exchange(site.addr, b"HEAD / HTTP/1.1\r\n\r\n");
    assert_eq!(status, 200);
    assert!(body.is_empty());
    // HEAD: the length GET would send, and no body.
    assert!(headers["content-length"].parse::<usize>().unwrap() > 0);
}

#[test]
fn slow_headers_are_answered_408_and_closed_after_the_bound() {
    let options = WebOptions {
        head_timeout: ms(300),
        ..WebOptions::default()
    };
    let site = Web::start(
        Arc::new(|| dnslb::web::metrics::Metrics::new("ls")),
        options,
    );
    let mut stream = TcpStream::connect(site.addr).unwrap();
    stream.set_read_timeout(Some(BOUND)).unwrap();
    let started = Instant::now();
    stream.write_all(b"GET / HTTP/1.1\r\nX-Slow: ").unwrap();
    // A byte now and then would not extend the bound; nothing more is sent.
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let took = started.elapsed();
    assert_eq!(parse_response(&response).0, 408);
    assert!(took >= ms(250) && took < ms(3000), "closed after {took:?}");
}

#[test]
fn counts_match_the_queries_sent_and_agree_with_the_counters_line() {
    let ts = start_ts(TABLE);
    let ls = start_ls_observed(&[ts.addr], ms(300), |_| {});
    let site = Web::start(ls.ls.metrics_source(), WebOptions::default());
    let mut client = LineClient::connect(ls.addr());
    for name in ["a.com", "b.com", "a.com", "missing.org"] {
        client.ask(name);
    }
    drop(client);
    let snapshot = ls.settled_snapshot();
    let m = metrics(site.addr);
    assert_eq!(m["dnslb_queries_total{frontend=\"all\"}"], 4.0);
    assert_eq!(
        m["dnslb_queries_total{frontend=\"all\"}"],
        snapshot.queries as f64
    );
    assert_eq!(m["dnslb_backend_queries_total{backend=\"ts1\"}"], 4.0);
    assert_eq!(m["dnslb_backend_answers_total{backend=\"ts1\"}"], 3.0);
    assert_eq!(
        m["dnslb_backend_answers_total{backend=\"ts1\"}"],
        snapshot.answered[0] as f64
    );
    assert_eq!(m["dnslb_backend_timeouts_total{backend=\"ts1\"}"], 1.0);
    assert_eq!(
        m["dnslb_responses_total{frontend=\"all\",result=\"answer\"}"],
        3.0
    );
    assert_eq!(
        m["dnslb_responses_total{frontend=\"all\",result=\"timeout\"}"],
        1.0
    );
    assert_eq!(
        m["dnslb_backend_response_seconds_count{backend=\"ts1\"}"],
        3.0
    );
    assert_eq!(
        m["dnslb_backend_response_seconds_bucket{backend=\"ts1\",le=\"+Inf\"}"],
        3.0
    );
    assert_eq!(m["dnslb_backend_up{backend=\"ts1\"}"], 1.0);
    assert_eq!(m["dnslb_inflight"], 0.0);
    assert!(m["dnslb_threads"] >= 2.0);
    assert_eq!(m["dnslb_build_info{version=\"0.1.0\"}"], 1.0);
    assert_eq!(m["dnslb_stale_answers_total{frontend=\"all\"}"], 0.0);
    for name in [
        "dnslb_cache_hits_total",
        "dnslb_cache_misses_total",
        "dnslb_cache_entries",
        "dnslb_clients",
    ] {
        assert!(m.contains_key(name), "{name}");
    }
}

#[test]
fn backend_up_flips_to_0_when_a_ts_dies() {
    let ts1 = start_ts(TABLE);
    let ts2 = start_ts("c.com 3.3.3.3 A\n");
    let ls = start_ls_observed(&[ts1.addr, ts2.addr], ms(500), |_| {});
    let site = Web::start(ls.ls.metrics_source(), WebOptions::default());
    let mut client = LineClient::connect(ls.addr());
    assert_eq!(client.ask("c.com"), "c.com 3.3.3.3 A");
    let up =
        |m: &HashMap<String, f64>, ts: &str| m[&format!("dnslb_backend_up{{backend=\"{ts}\"}}")];
    let m = metrics(site.addr);
    assert_eq!((up(&m, "ts1"), up(&m, "ts2")), (1.0, 1.0));
    ts2.stop();
    // The LS learns it when the connection ends, or at the next query.
    let deadline = Instant::now() + BOUND;
    loop {
        let m = metrics(site.addr);
        if up(&m, "ts2") == 0.0 {
            assert_eq!(up(&m, "ts1"), 1.0);
            break;
        }
        assert!(Instant::now() < deadline, "ts2 still up");
        client.ask("a.com");
    }
}

/// Checks that `text` is one JSON value (RFC 8259), returning what follows.
fn json_value(text: &str) -> Result<&str, String> {
    let text = text.trim_start();
    let fail = |what: &str| Err(format!("{what} at {:?}", &text[..text.len().min(40)]));
    match text.chars().next() {
        Some('{') => {
            let mut rest = text[1..].trim_start();
            if let Some(after) = rest.strip_prefix('}') {
                return Ok(after);
            }
            loop {
                rest = json_string(rest.trim_start())?.trim_start();
                rest = rest.strip_prefix(':').ok_or("no colon")?;
                rest = json_value(rest)?.trim_start();
                match rest.chars().next() {
                    Some(',') => rest = &rest[1..],
                    Some('}') => return Ok(&rest[1..]),
                    _ => return fail("object not closed"),
                }
            }
        }
        Some('[') => {
            let mut rest = text[1..].trim_start();
            if let Some(after) = rest.strip_prefix(']') {
                return Ok(after);
            }
            loop {
                rest = json_value(rest)?.trim_start();
                match rest.chars().next() {
                    Some(',') => rest = &rest[1..],
                    Some(']') => return Ok(&rest[1..]),
                    _ => return fail("array not closed"),
                }
            }
        }
        Some('"') => json_string(text),
        _ => {
            for word in ["true", "false", "null"] {
                if let Some(rest) = text.strip_prefix(word) {
                    return Ok(rest);
                }
            }
            let end = text
                .find(|c: char| !(c.is_ascii_digit() || "+-.eE".contains(c)))
                .unwrap_or(text.len());
            match text[..end].parse::<f64>() {
                Ok(_) if end > 0 && !text.starts_with('+') => Ok(&text[end..]),
                _ => fail("bad value"),
            }
        }
    }
}

fn json_string(text: &str) -> Result<&str, String> {
    let mut chars = text.strip_prefix('"').ok_or("no string")?.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok(&text[i + 2..]),
            '\\' => {
                chars.next();
            }
            c if (c as u32) < 0x20 => return Err("control character in a string".into()),
            _ => {}
        }
    }
    Err("string not closed".into())
}

#[test]
fn the_json_parses_and_names_every_backend() {
    let ts1 = start_ts(TABLE);
    let ts2 = start_ts("c.com 3.3.3.3 A\n");
    let ls = start_ls_observed(&[ts1.addr, ts2.addr], ms(500), |_| {});
    let site = Web::start(ls.ls.metrics_source(), WebOptions::default());
    let mut client = LineClient::connect(ls.addr());
    client.ask("a.com");
    let (status, headers, body) = get(site.addr, "/api/v1/stats");
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(json_value(&body).map(str::trim), Ok(""), "{body}");
    assert!(body.starts_with("{\"role\":\"ls\",\"version\":\""));
    assert!(body.contains("{\"backend\":\"ts1\",\"up\":true,\"queries\":1,\"answers\":1,"));
    assert!(body.contains("{\"backend\":\"ts2\",\"up\":true,\"queries\":1,\"answers\":0,"));
    assert!(body.contains("\"name\":\"dnslb_backend_response_seconds\""));
    assert!(json_value("{\"a\":[1,2,}").is_err());
}

#[test]
fn the_ts_counts_its_queries_by_result() {
    let counts = Arc::new(dnslb::ts::Counts::default());
    let zone = Arc::new(dnslb::table::parse(TABLE.as_bytes()).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let ts_addr = listener.local_addr().unwrap();
    let shutdown = Shutdown::new();
    let (run_counts, run_shutdown) = (Arc::clone(&counts), shutdown.clone());
    let ts = thread::spawn(move || {
        dnslb::ts::run_counted(
            vec![dnslb::ts::FrontEnd::Course(listener)],
            zone,
            Default::default(),
            run_counts,
            &run_shutdown,
        )
    });
    let source_counts = Arc::clone(&counts);
    let site = Web::start(
        Arc::new(move || source_counts.metrics()),
        WebOptions::default(),
    );
    let mut stream = TcpStream::connect(ts_addr).unwrap();
    stream.set_read_timeout(Some(BOUND)).unwrap();
    stream.write_all(b"a.com\nnothere.org\nb.com\n").unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    reader.read_line(&mut line).unwrap();
    let m = metrics(site.addr);
    assert_eq!(
        m["dnslb_ts_queries_total{protocol=\"course\",result=\"answered\"}"],
        2.0
    );
    assert_eq!(
        m["dnslb_ts_queries_total{protocol=\"course\",result=\"not_in_table\"}"],
        1.0
    );
    assert_eq!(m["dnslb_clients"], 1.0);
    drop((stream, reader));
    shutdown.trigger();
    ts.join().unwrap().unwrap();
}

#[test]
fn a_thousand_idle_http_connections_leave_course_and_dns_service_answering() {
    use hickory_proto::rr::RecordType;
    use support::dns::{DnsLs, addresses, query, udp_ask};
    let ts = start_ts(TABLE);
    let ls = DnsLs::start(&[ts.addr], |o| o.timeout = ms(1000));
    let site = Web::start(
        ls.ls.metrics_source(),
        WebOptions {
            max_connections: 8,
            head_timeout: Duration::from_secs(30),
        },
    );
    let idle: Vec<TcpStream> = (0..1000)
        .filter_map(|_| TcpStream::connect(site.addr).ok())
        .collect();
    assert!(idle.len() >= 900, "only {} connected", idle.len());
    let mut client = LineClient::connect(ls.course());
    assert_eq!(client.ask("a.com"), "a.com 1.1.1.1 A");
    let answer = udp_ask(ls.dns, &query(7, "b.com.", RecordType::A));
    assert_eq!(
        addresses(&answer),
        ["2.2.2.2".parse::<std::net::Ipv4Addr>().unwrap()]
    );
    drop(idle);
    // The endpoint itself serves again once the idle ones are gone.
    let deadline = Instant::now() + BOUND;
    loop {
        let mut stream = TcpStream::connect(site.addr).unwrap();
        stream.set_read_timeout(Some(BOUND)).unwrap();
        let _ = stream.write_all(b"GET /metrics HTTP/1.1\r\n\r\n");
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response);
        if response.starts_with(b"HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "the endpoint did not recover");
    }
}

#[test]
fn the_binary_announces_its_http_port_after_the_others_and_serves_it() {
    use std::process::{Command, Stdio};
    let ts = start_ts(TABLE);
    let ts_port = ts.addr.port().to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_dnslb"))
        .args(["ls", "0", "127.0.0.1", &ts_port, "--bind", "127.0.0.1"])
        .args(["--dns-port", "0", "--web", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = crossbeam_channel::bounded(1);
    thread::spawn(move || {
        let lines: Vec<String> = BufReader::new(stdout)
            .lines()
            .take(3)
            .map_while(Result::ok)
            .collect();
        let _ = tx.send(lines);
    });
    let lines = rx.recv_timeout(BOUND);
    let lines = lines.inspect_err(|_| {
        let _ = child.kill();
    });
    let lines = lines.expect("three listening lines");
    assert!(lines[1].ends_with(" (dns udp+tcp)"), "{lines:?}");
    let web: SocketAddr = lines[2]
        .strip_prefix("listening on ")
        .and_then(|l| l.strip_suffix(" (http)"))
        .unwrap_or_else(|| panic!("{lines:?}"))
        .parse()
        .unwrap();
    let m = metrics(web);
    assert_eq!(m["dnslb_backend_up{backend=\"ts1\"}"], 1.0);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_web_address_without_a_port_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let (status, _, stderr) = support::run_bin(
        dir.path(),
        &["ls", "0", "127.0.0.1", "1", "--web", "127.0.0.1"],
    );
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--web") && stderr.contains("ADDR:PORT"),
        "{stderr}"
    );
}
