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
    assert_eq!(m["dnslb_queries_total{frontend=\"course\"}"], 4.0);
    assert_eq!(sum_of(&m, "dnslb_queries_total{"), snapshot.queries as f64);
    assert_eq!(m["dnslb_backend_queries_total{backend=\"ts1\"}"], 4.0);
    assert_eq!(m["dnslb_backend_answers_total{backend=\"ts1\"}"], 3.0);
    assert_eq!(
        m["dnslb_backend_answers_total{backend=\"ts1\"}"],
        snapshot.answered[0] as f64
    );
    assert_eq!(m["dnslb_backend_timeouts_total{backend=\"ts1\"}"], 1.0);
    assert_eq!(
        m["dnslb_responses_total{frontend=\"course\",result=\"answer\"}"],
        3.0
    );
    // No TS answered in time: the client was told HOST NOT FOUND.
    assert_eq!(
        m["dnslb_responses_total{frontend=\"course\",result=\"not_found\"}"],
        1.0
    );
    assert_eq!(m["dnslb_outcomes_total{outcome=\"timeout\"}"], 1.0);
    assert_eq!(
        m["dnslb_outcomes_total{outcome=\"answered\"}"],
        snapshot.answered_total() as f64
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
    assert_eq!(m["dnslb_stale_answers_total{frontend=\"course\"}"], 0.0);
    for name in [
        "dnslb_cache_hits_total",
        "dnslb_cache_misses_total",
        "dnslb_cache_entries",
        "dnslb_clients{frontend=\"course\"}",
    ] {
        assert!(m.contains_key(name), "{name}");
    }
}

/// The sum of every sample whose key starts with `prefix` (a family's
/// name and the start of its labels).
fn sum_of(m: &HashMap<String, f64>, prefix: &str) -> f64 {
    m.iter()
        .filter(|(key, _)| key.starts_with(prefix))
        .map(|(_, v)| v)
        .sum()
}

/// Reads metrics until `sample` has `value` (bounded): a gauge that
/// follows a connection closing.
fn wait_for_sample(addr: SocketAddr, sample: &str, value: f64) {
    let deadline = Instant::now() + BOUND;
    while metrics(addr)[sample] != value {
        assert!(Instant::now() < deadline, "{sample} never {value}");
        thread::yield_now();
    }
}

#[test]
fn each_front_end_counts_its_queries_and_replies_and_they_sum_to_the_counters_line() {
    use hickory_proto::rr::RecordType;
    use support::dns::{DnsLs, framed, query, rcode, tcp_connect, tcp_read, udp_ask, udp_raw};
    let ts = support::start_ts_with(
        TABLE,
        dnslb::ts::TsOptions {
            answer_misses: true,
            ..Default::default()
        },
    );
    let ls = DnsLs::start(&[ts.addr], |o| o.timeout = ms(2000));
    let site = Web::start(ls.ls.metrics_source(), WebOptions::default());
    // Course: two answers, a miss, a message that is no hostname.
    let mut client = LineClient::connect(ls.course());
    for name in ["a.com", "b.com", "missing.com", "not a name"] {
        client.ask(name);
    }
    drop(client);
    // UDP: an answer, NODATA (a.com has no AAAA), NXDOMAIN, FORMERR.
    assert_eq!(
        rcode(&udp_ask(ls.dns, &query(1, "a.com.", RecordType::A))),
        0
    );
    let nodata = udp_ask(ls.dns, &query(2, "a.com.", RecordType::AAAA));
    assert!(rcode(&nodata) == 0 && nodata.answers.is_empty());
    assert_eq!(
        rcode(&udp_ask(ls.dns, &query(3, "x.com.", RecordType::A))),
        3
    );
    let formerr = udp_raw(ls.dns, &[0, 4, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(formerr[3] & 0x0f, 1, "FORMERR");
    // TCP, one connection: an answer, NXDOMAIN, a zone transfer REFUSED.
    let mut tcp = tcp_connect(ls.dns);
    for (id, name, qtype, code) in [
        (5, "b.com.", RecordType::A, 0),
        (6, "y.com.", RecordType::A, 3),
        (7, "a.com.", RecordType::AXFR, 5),
    ] {
        tcp.write_all(&framed(&query(id, name, qtype))).unwrap();
        assert_eq!(rcode(&tcp_read(&mut tcp)), code, "{name} {qtype}");
    }
    let m = metrics(site.addr);
    assert_eq!(m["dnslb_clients{frontend=\"dns_tcp\"}"], 1.0);
    drop(tcp);
    wait_for_sample(site.addr, "dnslb_clients{frontend=\"dns_tcp\"}", 0.0);
    // Counted once written: every count is in once the LS has stopped.
    let snapshot = ls.stop();
    let m = metrics(site.addr);
    let queries = |front: &str| m[&format!("dnslb_queries_total{{frontend=\"{front}\"}}")];
    assert_eq!(
        (queries("course"), queries("dns_udp"), queries("dns_tcp")),
        (4.0, 4.0, 3.0)
    );
    assert_eq!(sum_of(&m, "dnslb_queries_total{"), snapshot.queries as f64);
    assert!(
        snapshot.to_string().starts_with("queries 11 = "),
        "{snapshot}"
    );
    let replies = |front: &str, result: &str| {
        m[&format!("dnslb_responses_total{{frontend=\"{front}\",result=\"{result}\"}}")]
    };
    let course = ["answer", "not_found", "invalid", "busy"].map(|r| replies("course", r));
    assert_eq!(course, [2.0, 1.0, 1.0, 0.0]);
    let udp = [
        "answer", "nodata", "nxdomain", "formerr", "servfail", "refused",
    ];
    assert_eq!(
        udp.map(|r| replies("dns_udp", r)),
        [1.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    );
    let tcp = ["answer", "nxdomain", "refused", "nodata"];
    assert_eq!(tcp.map(|r| replies("dns_tcp", r)), [1.0, 1.0, 1.0, 0.0]);
    // Every reply once, under its front end: the counters line's replies.
    let replied = snapshot.answered_total() + snapshot.misses() + snapshot.invalid + snapshot.busy;
    assert_eq!(sum_of(&m, "dnslb_responses_total{"), replied as f64);
    for (front, counted) in ["course", "dns_udp", "dns_tcp"]
        .iter()
        .zip(&snapshot.fronts)
    {
        let prefix = format!("dnslb_responses_total{{frontend=\"{front}\",");
        assert_eq!(sum_of(&m, &prefix), counted.replied() as f64, "{front}");
        assert_eq!(queries(front), counted.queries as f64, "{front}");
        let stale = format!("dnslb_stale_answers_total{{frontend=\"{front}\"}}");
        assert_eq!(m[&stale], 0.0);
    }
    // By rcode: NOERROR is the answers and NODATA of both transports.
    assert_eq!(m["dnslb_dns_responses_total{rcode=\"noerror\"}"], 3.0);
    assert_eq!(snapshot.dns[..5], [3, 2, 0, 1, 1], "{snapshot}");
    assert_eq!(
        m["dnslb_outcomes_total{outcome=\"invalid\"}"],
        snapshot.invalid as f64
    );
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
fn the_ts_counts_its_queries_by_protocol_and_result_as_its_counters_line_does() {
    use hickory_proto::rr::RecordType;
    use support::dns::{
        framed, loopback_sockets, query, rcode, tcp_connect, tcp_read, udp_client, udp_recv,
    };
    let counts = Arc::new(dnslb::ts::Counts::default());
    let mut zone = dnslb::table::parse(TABLE.as_bytes()).unwrap();
    let parent = support::data("zones/example.test.zone");
    let file = dnslb::zonefile::load(&parent).unwrap();
    zone.add_file_zone(file.apex_key(), file.to_zone()).unwrap();
    let zone = Arc::new(zone);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let ts_addr = listener.local_addr().unwrap();
    let dns_sockets = loopback_sockets();
    let dns = dns_sockets.local_addr().unwrap();
    let shutdown = Shutdown::new();
    let (run_counts, run_shutdown) = (Arc::clone(&counts), shutdown.clone());
    let ts = thread::spawn(move || {
        let fronts = vec![
            dnslb::ts::FrontEnd::Course(listener),
            dnslb::ts::FrontEnd::Dns(dns_sockets, Default::default()),
        ];
        dnslb::ts::run_counted(fronts, zone, Default::default(), run_counts, &run_shutdown)
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
    // UDP, from one socket, answered in turn: a response sent to the TS
    // (dropped unanswered), then an answer, NODATA, NXDOMAIN, REFUSED
    // (a zone it does not serve), a referral (cs.example.test is
    // delegated), FORMERR and NOTIMP (an opcode other than QUERY).
    let udp = udp_client();
    let mut response = query(1, "a.com.", RecordType::A).to_vec().unwrap();
    response[2] |= 0x80;
    udp.send_to(&response, dns).unwrap();
    let mut status = query(8, "a.com.", RecordType::A).to_vec().unwrap();
    status[2] |= 2 << 3;
    let asked: [(&[u8], u8); 7] = [
        (&query(2, "a.com.", RecordType::A).to_vec().unwrap(), 0),
        (&query(3, "a.com.", RecordType::AAAA).to_vec().unwrap(), 0),
        (&query(4, "x.com.", RecordType::A).to_vec().unwrap(), 3),
        (&query(5, "x.org.", RecordType::A).to_vec().unwrap(), 5),
        (
            &query(6, "www.cs.example.test.", RecordType::A)
                .to_vec()
                .unwrap(),
            0,
        ),
        (&[0, 7, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0], 1),
        (&status, 4),
    ];
    for (bytes, code) in asked {
        udp.send_to(bytes, dns).unwrap();
        assert_eq!(udp_recv(&udp)[3] & 0x0f, code);
    }
    // TCP: an answer and NXDOMAIN; the connection stays open.
    let mut tcp = tcp_connect(dns);
    for (id, name, code) in [(9, "b.com.", 0), (10, "y.com.", 3)] {
        tcp.write_all(&framed(&query(id, name, RecordType::A)))
            .unwrap();
        assert_eq!(rcode(&tcp_read(&mut tcp)), code);
    }
    let m = metrics(site.addr);
    let ts_queries = |protocol: &str, result: &str| {
        m[&format!("dnslb_ts_queries_total{{protocol=\"{protocol}\",result=\"{result}\"}}")]
    };
    assert_eq!(ts_queries("course", "answered"), 2.0);
    assert_eq!(ts_queries("course", "not_in_table"), 1.0);
    let udp_results = [
        "answer",
        "nodata",
        "nxdomain",
        "refused",
        "referral",
        "formerr",
        "notimp",
        "dropped",
        "servfail",
        "rate_limited",
    ];
    assert_eq!(
        udp_results.map(|r| ts_queries("dns_udp", r)),
        [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    );
    let tcp_results = ["answer", "nxdomain", "nodata"];
    assert_eq!(
        tcp_results.map(|r| ts_queries("dns_tcp", r)),
        [1.0, 1.0, 0.0]
    );
    assert_eq!(m["dnslb_clients{frontend=\"course\"}"], 1.0);
    assert_eq!(m["dnslb_clients{frontend=\"dns_tcp\"}"], 1.0);
    drop(tcp);
    wait_for_sample(site.addr, "dnslb_clients{frontend=\"dns_tcp\"}", 0.0);
    // The counters line printed at exit: the same counts, UDP and TCP
    // together.
    let m = metrics(site.addr);
    let terms: Vec<String> = dnslb::ts::dns::DnsCounts::results()
        .iter()
        .map(|r| {
            let n = ts_queries_sum(&m, r);
            format!("{r} {n}")
        })
        .collect();
    let line = counts.dns.line();
    let expected = format!("queries 10 = {} (udp 8, tcp 2);", terms.join(" + "));
    assert!(line.starts_with(&expected), "{line}\n{expected}");
    drop((stream, reader));
    shutdown.trigger();
    ts.join().unwrap().unwrap();
}

/// A TS's DNS queries with `result`, over UDP and TCP together.
fn ts_queries_sum(m: &HashMap<String, f64>, result: &str) -> f64 {
    ["dns_udp", "dns_tcp"]
        .iter()
        .map(|p| m[&format!("dnslb_ts_queries_total{{protocol=\"{p}\",result=\"{result}\"}}")])
        .sum()
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

/// Starts `dnslb <args> --bind 127.0.0.1 --dns-port 0 --web 127.0.0.1:0`
/// and reads its three listening lines (bounded): the server (killed on
/// drop, its `addr` the web endpoint's) and the lines.
fn spawn_with_web(args: &[&str]) -> (support::Running, Vec<String>) {
    use std::process::{Command, Stdio};
    let child = Command::new(env!("CARGO_BIN_EXE_dnslb"))
        .args(args)
        .args([
            "--bind",
            "127.0.0.1",
            "--dns-port",
            "0",
            "--web",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut server = support::Running {
        child,
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
    };
    let stdout = server.child.stdout.take().unwrap();
    let (tx, rx) = crossbeam_channel::bounded(1);
    thread::spawn(move || {
        let lines: Vec<String> = BufReader::new(stdout)
            .lines()
            .take(3)
            .map_while(Result::ok)
            .collect();
        let _ = tx.send(lines);
    });
    let lines = rx.recv_timeout(BOUND).expect("three listening lines");
    server.addr = lines[2]
        .strip_prefix("listening on ")
        .and_then(|l| l.strip_suffix(" (http)"))
        .unwrap_or_else(|| panic!("{lines:?}"))
        .parse()
        .unwrap();
    (server, lines)
}

#[test]
fn the_binary_announces_its_http_port_after_the_others_and_serves_it() {
    let ts = start_ts(TABLE);
    let ts_port = ts.addr.port().to_string();
    let (server, lines) = spawn_with_web(&["ls", "0", "127.0.0.1", &ts_port]);
    assert!(lines[1].ends_with(" (dns udp+tcp)"), "{lines:?}");
    let m = metrics(server.addr);
    assert_eq!(m["dnslb_backend_up{backend=\"ts1\"}"], 1.0);
}

#[test]
fn an_ls_resolving_from_the_root_serves_its_metrics_too() {
    // A root that is never asked: no query is sent.
    let (server, lines) = spawn_with_web(&["ls", "0", "--root", "127.0.0.1:9"]);
    assert!(lines[1].ends_with(" (dns udp+tcp)"), "{lines:?}");
    let m = metrics(server.addr);
    assert_eq!(m["dnslb_queries_total{frontend=\"dns_udp\"}"], 0.0);
    assert_eq!(m["dnslb_resolutions_total"], 0.0);
    assert_eq!(m["dnslb_clients{frontend=\"course\"}"], 0.0);
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
