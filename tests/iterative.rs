//! The LS resolving iteratively (`--root`) through a hierarchy of zone
//! TSes in-process, each on its own loopback address (127.0.0.x) and one
//! shared port: the course's names under data/hierarchy/.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};

use dnslb::framing::Framing;
use dnslb::ls::iterative::{self, IterativeOptions};
use dnslb::net::DnsSockets;
use dnslb::resolve::Config;
use dnslb::shutdown::Shutdown;
use dnslb::ts::dns::DnsOptions;
use dnslb::ts::{self, TsOptions};
use dnslb::wire::Dialect;
use dnslb::zone::Zone;
use dnslb::{cidr::CidrList, zonefile};
use support::BOUND;
use support::dns::*;

/// Who serves what: the last byte of the server's loopback address and
/// its zone files.
const SERVERS: [(u8, &[&str]); 8] = [
    (2, &["root.zone"]),
    (3, &["com.zone"]),
    (4, &["edu.zone"]),
    (5, &["org.zone"]),
    (10, &["rutgers.com.zone"]),
    (11, &["princeton.edu.zone"]),
    (12, &["princeton.edu.zone"]),
    (13, &["hosting.com.zone", "amazon.org.zone"]),
];

fn zone(files: &[&str]) -> Zone {
    let mut zone = Zone::default();
    for file in files {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("data/hierarchy")
            .join(file);
        let file = zonefile::load(&path).unwrap();
        zone.add_file_zone(file.apex_key(), file.to_zone()).unwrap();
    }
    zone
}

/// A zone TS in-process; stopped on drop.
struct Ts {
    shutdown: Shutdown,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Ts {
    fn drop(&mut self) {
        self.shutdown.trigger();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn start_ts(sockets: DnsSockets, zone: Zone) -> Ts {
    let shutdown = Shutdown::new();
    let handle = shutdown.clone();
    let thread = thread::spawn(move || {
        let fronts = vec![ts::FrontEnd::Dns(sockets, DnsOptions::default())];
        ts::run(fronts, Arc::new(zone), TsOptions::default(), &handle).unwrap();
    });
    Ts {
        shutdown,
        thread: Some(thread),
    }
}

/// The hierarchy and an iterative LS in front of it.
struct Hierarchy {
    port: u16,
    servers: Vec<(u8, Option<Ts>)>,
    /// Sockets bound but never read: servers that do not answer.
    frozen: Vec<UdpSocket>,
    ls_dns: SocketAddr,
    ls_course: SocketAddr,
    ls_shutdown: Shutdown,
    ls_thread: Option<JoinHandle<()>>,
    /// The LS's counters, as its web endpoint reads them.
    counts: Arc<iterative::Counts>,
}

impl Hierarchy {
    /// Stops the LS and waits for it: every reply it wrote is counted.
    fn stop_ls(&mut self) {
        self.ls_shutdown.trigger();
        if let Some(thread) = self.ls_thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Hierarchy {
    fn drop(&mut self) {
        self.stop_ls();
    }
}

fn at(last: u8, port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, last], port))
}

impl Hierarchy {
    /// Every server but those in `frozen`, which hold their port and
    /// never answer.
    fn start(frozen: &[u8]) -> Hierarchy {
        dnslb::log::to_test_harness();
        // One port free on every address: the root's pick, tried on the others.
        'again: for _ in 0..20 {
            let root = DnsSockets::bind(&[at(2, 0)]).unwrap();
            let port = root.udp.local_addr().unwrap().port();
            let mut bound = vec![(2, root)];
            for (last, _) in &SERVERS[1..] {
                match DnsSockets::bind(&[at(*last, port)]) {
                    Ok(sockets) => bound.push((*last, sockets)),
                    Err(_) => continue 'again,
                }
            }
            let mut servers = Vec::new();
            let mut frozen_sockets = Vec::new();
            for (last, sockets) in bound {
                if frozen.contains(&last) {
                    frozen_sockets.push(sockets.udp);
                    servers.push((last, None));
                    continue;
                }
                let files = SERVERS.iter().find(|(l, _)| *l == last).unwrap().1;
                servers.push((last, Some(start_ts(sockets, zone(files)))));
            }
            let options = IterativeOptions {
                config: Config {
                    roots: vec![at(2, port)],
                    server_port: port,
                },
                try_timeout: Duration::from_millis(300),
                deadline: Duration::from_secs(3),
                dialect: Dialect::Y2020,
                framing: Framing::Auto,
                allow: CidrList::private(),
                max_clients: 64,
            };
            let course = TcpListener::bind("127.0.0.1:0").unwrap();
            let ls_course = course.local_addr().unwrap();
            let dns = loopback_sockets();
            let ls_dns = dns.local_addr().unwrap();
            let ls_shutdown = Shutdown::new();
            let handle = ls_shutdown.clone();
            let counts = Arc::new(iterative::Counts::default());
            let run_counts = Arc::clone(&counts);
            let ls_thread = thread::spawn(move || {
                iterative::run_counted(options, course, Some(dns), &run_counts, &handle).unwrap();
            });
            return Hierarchy {
                port,
                servers,
                frozen: frozen_sockets,
                ls_dns,
                ls_course,
                ls_shutdown,
                ls_thread: Some(ls_thread),
                counts,
            };
        }
        panic!("no port free on every loopback address");
    }

    fn ask(&self, name: &str, qtype: RecordType) -> Message {
        udp_ask(self.ls_dns, &query(7, name, qtype))
    }

    /// Stops the server at 127.0.0.`last`.
    fn stop(&mut self, last: u8) {
        for (l, ts) in &mut self.servers {
            if *l == last {
                ts.take();
            }
        }
    }
}

fn course_ask(ls: SocketAddr, names: &[&str]) -> Vec<String> {
    let stream = TcpStream::connect(ls).unwrap();
    stream.set_read_timeout(Some(BOUND)).unwrap();
    let mut writer = stream.try_clone().unwrap();
    for name in names {
        writeln!(writer, "{name}").unwrap();
    }
    let mut reader = BufReader::new(stream);
    names
        .iter()
        .map(|_| {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            line.trim_end().to_string()
        })
        .collect()
}

#[test]
fn a_name_is_resolved_from_the_root_with_ra_set() {
    let h = Hierarchy::start(&[]);
    let m = h.ask("www.princeton.edu", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(addresses(&m), [Ipv4Addr::new(128, 1, 1, 4)]);
    assert!(m.metadata.recursion_available);
    assert!(!m.metadata.authoritative);
    // The same over TCP, from the cache now.
    let m = tcp_ask(h.ls_dns, &query(8, "www.princeton.edu", RecordType::A));
    assert_eq!(addresses(&m), [Ipv4Addr::new(128, 1, 1, 4)]);
    assert!(m.answers[0].ttl <= 300);
}

#[test]
fn the_course_client_gets_the_sample_replies() {
    let h = Hierarchy::start(&[]);
    let started = Instant::now();
    let lines = course_ask(
        h.ls_course,
        &[
            "www.princeton.edu",
            "rutgers.com",
            "nothinghere.com",
            "amazon.org",
        ],
    );
    let expected = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("data/example-RESOLVED.txt"),
    )
    .unwrap();
    assert_eq!(lines, expected.lines().collect::<Vec<_>>());
    // The miss came from com's NXDOMAIN, not from a deadline.
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn the_web_metrics_count_each_front_ends_queries_and_replies() {
    use dnslb::web::metrics::check;
    let mut h = Hierarchy::start(&[]);
    // UDP: an answer and NXDOMAIN; TCP: an answer; course: an answer, a
    // miss, a message that is no hostname (not resolved).
    let m = h.ask("www.princeton.edu", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    let m = h.ask("nothinghere.com", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let mut tcp = tcp_connect(h.ls_dns);
    tcp.write_all(&framed(&query(9, "rutgers.com", RecordType::A)))
        .unwrap();
    assert_eq!(
        tcp_read(&mut tcp).metadata.response_code,
        ResponseCode::NoError
    );
    let read = |h: &Hierarchy| check::parse(&h.counts.metrics().to_prometheus()).unwrap();
    assert_eq!(read(&h)["dnslb_clients{frontend=\"dns_tcp\"}"], 1.0);
    let lines = course_ask(
        h.ls_course,
        &["rutgers.com", "nothinghere.com", "not a name"],
    );
    assert_eq!(lines[0], "rutgers.com 172.34.4.6 A", "{lines:?}");
    drop(tcp);
    h.stop_ls();
    let m = read(&h);
    let queries = |front: &str| m[&format!("dnslb_queries_total{{frontend=\"{front}\"}}")];
    assert_eq!(
        (queries("course"), queries("dns_udp"), queries("dns_tcp")),
        (3.0, 2.0, 1.0)
    );
    let replies = |front: &str, result: &str| {
        m[&format!("dnslb_responses_total{{frontend=\"{front}\",result=\"{result}\"}}")]
    };
    let course = ["answer", "not_found", "invalid"].map(|r| replies("course", r));
    assert_eq!(course, [1.0, 1.0, 1.0]);
    let udp = ["answer", "nxdomain", "servfail"].map(|r| replies("dns_udp", r));
    assert_eq!(udp, [1.0, 1.0, 0.0]);
    assert_eq!(replies("dns_tcp", "answer"), 1.0);
    assert_eq!(m["dnslb_resolutions_total"], 5.0);
    assert_eq!(m["dnslb_dropped_questions_total"], 0.0);
    assert_eq!(m["dnslb_clients{frontend=\"dns_tcp\"}"], 0.0);
}

#[test]
fn nxdomain_carries_the_soa_of_the_zone_that_said_so() {
    let h = Hierarchy::start(&[]);
    for (name, apex) in [
        ("nothing.zz", "."),
        ("nothinghere.com", "com."),
        ("nothing.princeton.edu", "princeton.edu."),
    ] {
        let m = h.ask(name, RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{name}");
        assert_eq!(m.authorities[0].name.to_ascii(), apex, "{name}");
    }
}

#[test]
fn a_glueless_delegation_and_a_cname_into_another_tld_are_followed() {
    let h = Hierarchy::start(&[]);
    // amazon.org's server is ns.hosting.com, with no glue in org.
    let m = h.ask("amazon.org", RecordType::A);
    assert_eq!(addresses(&m), [Ipv4Addr::new(94, 5, 6, 7)]);
    // www.amazon.org is an alias for rutgers.com.
    let m = h.ask("www.amazon.org", RecordType::A);
    assert_eq!(m.answers.len(), 2);
    assert_eq!(m.answers[0].record_type(), RecordType::CNAME);
    match &m.answers[1].data {
        RData::A(a) => assert_eq!(a.0, Ipv4Addr::new(172, 34, 4, 6)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_stopped_root_leaves_cached_delegations_usable() {
    let mut h = Hierarchy::start(&[]);
    assert_eq!(
        addresses(&h.ask("www.princeton.edu", RecordType::A)),
        [Ipv4Addr::new(128, 1, 1, 4)]
    );
    h.stop(2);
    h.stop(4);
    // princeton.edu's servers are known: neither the root nor edu is needed.
    let m = h.ask("ns2.princeton.edu", RecordType::A);
    assert_eq!(addresses(&m), [Ipv4Addr::new(127, 0, 0, 12)]);
    // A TLD not yet known needs the root: SERVFAIL.
    let m = h.ask("rutgers.com", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
}

#[test]
fn a_frozen_name_server_is_left_for_the_zones_next() {
    let h = Hierarchy::start(&[11]);
    assert_eq!(h.frozen.len(), 1);
    let started = Instant::now();
    let m = h.ask("www.princeton.edu", RecordType::A);
    assert_eq!(addresses(&m), [Ipv4Addr::new(128, 1, 1, 4)]);
    assert!(started.elapsed() < Duration::from_secs(2));
    // Backed off: the next name goes to 127.0.0.12 at once. Asking the
    // frozen server first would cost the whole try-timeout (300 ms).
    let started = Instant::now();
    let m = h.ask("ns1.princeton.edu", RecordType::A);
    assert_eq!(addresses(&m), [Ipv4Addr::new(127, 0, 0, 11)]);
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    let _ = h.port;
}

#[test]
fn the_answer_in_rdata_is_the_zones() {
    let h = Hierarchy::start(&[]);
    let m = h.ask("rutgers.com", RecordType::A);
    match &m.answers[0].data {
        RData::A(a) => assert_eq!(a.0, Ipv4Addr::new(172, 34, 4, 6)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn dash_v_shows_each_step_of_the_iterated_query() {
    let h = Hierarchy::start(&[]);
    let root = format!("127.0.0.2:{}", h.port);
    let port = h.port.to_string();
    let (_ls, dns, log) =
        spawn_dns_bin(&["ls", "0", "--root", &root, "--server-port", &port, "-v"]);
    let m = udp_ask(dns, &query(1, "www.princeton.edu", RecordType::A));
    assert_eq!(addresses(&m), [Ipv4Addr::new(128, 1, 1, 4)]);
    let mut wanted = vec![
        "ask 127.0.0.2".to_string(),
        "referral to edu.".to_string(),
        format!("ask 127.0.0.4:{port} (a server for edu.)"),
        "referral to princeton.edu.".to_string(),
        "answered www.princeton.edu. A".to_string(),
        "NOERROR after 3 queries".to_string(),
    ];
    let end = Instant::now() + BOUND;
    while !wanted.is_empty() {
        let line = log
            .recv_deadline(end)
            .unwrap_or_else(|_| panic!("no log line with {:?}", wanted[0]));
        if line.contains(&wanted[0]) {
            wanted.remove(0);
        }
    }
}

#[test]
fn root_errors_are_usage_errors() {
    let dir = std::env::temp_dir();
    for (args, says) in [
        (&["ls", "0", "--root", "a.root"][..], "--root \"a.root\""),
        (
            &["ls", "0", "--root", "127.0.0.1", "localhost", "5300"][..],
            "no TS",
        ),
        (
            &["ls", "0", "--root", "127.0.0.1", "--try-timeout", "0"][..],
            "--try-timeout",
        ),
    ] {
        let (status, _, err) = support::run_bin(&dir, args);
        assert_eq!(status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

/// A server for evil.com that adds an address for rutgers.com to its
/// answer and its additional section.
fn poisoner(port: u16) -> JoinHandle<()> {
    let socket = UdpSocket::bind(at(66, port)).unwrap();
    thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, peer)) = socket.recv_from(&mut buf) {
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let name = q.queries[0].name().to_ascii();
            let reply = reply_to(&q, ResponseCode::NoError, |m| {
                m.metadata.authoritative = true;
                m.answers
                    .push(a_record(&name, 300, Ipv4Addr::new(203, 0, 113, 66)));
                m.answers
                    .push(a_record("rutgers.com.", 86400, Ipv4Addr::new(6, 6, 6, 6)));
                m.additionals.push(a_record(
                    "ns1.rutgers.com.",
                    86400,
                    Ipv4Addr::new(6, 6, 6, 6),
                ));
            });
            let _ = socket.send_to(&reply.to_vec().unwrap(), peer);
            if name.starts_with("stop") {
                return;
            }
        }
    })
}

#[test]
fn records_outside_the_senders_bailiwick_are_not_believed() {
    let h = Hierarchy::start(&[]);
    let evil = poisoner(h.port);
    let cache = std::sync::Mutex::new(dnslb::resolve::Cache::new());
    let now = Instant::now();
    // The cache knows evil.com's server, as a referral from com would
    // have taught it.
    {
        let mut c = cache.lock().unwrap();
        let ns = dnslb::dns::Name::from_ascii("ns.evil.com").unwrap();
        c.put(
            now,
            vec![dnslb::dns::Record {
                name: dnslb::dns::Name::from_ascii("evil.com").unwrap(),
                rtype: dnslb::dns::RecordType::NS,
                class: 1,
                ttl: 3600,
                data: dnslb::dns::RData::Name(ns.clone()),
            }],
        );
        c.put(
            now,
            vec![dnslb::dns::Record::a(
                ns,
                3600,
                Ipv4Addr::new(127, 0, 0, 66),
            )],
        );
    }
    let hierarchy = IterativeOptions {
        config: Config {
            roots: vec![at(2, h.port)],
            server_port: h.port,
        },
        try_timeout: Duration::from_millis(300),
        deadline: Duration::from_secs(3),
        dialect: Dialect::Y2020,
        framing: Framing::Auto,
        allow: CidrList::private(),
        max_clients: 64,
    };
    let question = |name: &str| dnslb::dns::Question {
        name: dnslb::dns::Name::from_ascii(name).unwrap(),
        qtype: dnslb::dns::RecordType::A,
        qclass: 1,
    };
    let first = iterative::resolve(&question("www.evil.com"), &cache, &hierarchy, 1);
    let dnslb::dns::Resolution::Answer(s) = first else {
        panic!("{first:?}")
    };
    assert_eq!(s.answers.len(), 1, "only evil.com's own record is kept");
    // rutgers.com comes from its own server, not from the poisoner.
    let second = iterative::resolve(&question("rutgers.com"), &cache, &hierarchy, 2);
    let dnslb::dns::Resolution::Answer(s) = second else {
        panic!("{second:?}")
    };
    assert_eq!(
        s.answers[0].data,
        dnslb::dns::RData::A(Ipv4Addr::new(172, 34, 4, 6))
    );
    let _ = iterative::resolve(&question("stop.evil.com"), &cache, &hierarchy, 3);
    evil.join().unwrap();
}

#[test]
fn a_truncated_answer_is_asked_again_over_tcp() {
    dnslb::log::to_test_harness();
    let sockets = DnsSockets::bind(&[at(77, 0)]).unwrap();
    let server = sockets.udp.local_addr().unwrap();
    let DnsSockets { udp, tcp } = sockets;
    let answer = |q: &Message, truncated: bool| {
        reply_to(q, ResponseCode::NoError, |m| {
            m.metadata.authoritative = true;
            m.metadata.truncation = truncated;
            if !truncated {
                m.answers
                    .push(a_record("big.test.", 60, Ipv4Addr::new(192, 0, 2, 7)));
            }
        })
        .to_vec()
        .unwrap()
    };
    let over_udp = thread::spawn(move || {
        let mut buf = [0u8; 1500];
        let (n, peer) = udp.recv_from(&mut buf).unwrap();
        let q = Message::from_vec(&buf[..n]).unwrap();
        udp.send_to(&answer(&q, true), peer).unwrap();
    });
    let over_tcp = thread::spawn(move || {
        let (mut stream, _) = tcp.accept().unwrap();
        stream.set_read_timeout(Some(BOUND)).unwrap();
        let bytes = read_framed(&mut stream).unwrap();
        let q = Message::from_vec(&bytes).unwrap();
        stream.write_all(&framed_bytes(&answer(&q, false))).unwrap();
    });
    let options = IterativeOptions {
        config: Config {
            roots: vec![server],
            server_port: server.port(),
        },
        try_timeout: Duration::from_secs(2),
        deadline: Duration::from_secs(3),
        dialect: Dialect::Y2020,
        framing: Framing::Auto,
        allow: CidrList::private(),
        max_clients: 64,
    };
    let cache = std::sync::Mutex::new(dnslb::resolve::Cache::new());
    let question = dnslb::dns::Question {
        name: dnslb::dns::Name::from_ascii("big.test").unwrap(),
        qtype: dnslb::dns::RecordType::A,
        qclass: 1,
    };
    let result = iterative::resolve(&question, &cache, &options, 5);
    let dnslb::dns::Resolution::Answer(s) = result else {
        panic!("{result:?}")
    };
    assert_eq!(
        s.answers[0].data,
        dnslb::dns::RData::A(Ipv4Addr::new(192, 0, 2, 7))
    );
    over_udp.join().unwrap();
    over_tcp.join().unwrap();
}

#[test]
fn the_course_client_writes_the_samples_resolved_txt() {
    let h = Hierarchy::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    let hns = data.join("PROJ2-HNS.txt");
    let port = h.ls_course.port().to_string();
    // The client's defaults: one bare message per name, as the course's.
    let (status, _, err) = support::run_bin(
        dir.path(),
        &[
            "client",
            "127.0.0.1",
            &port,
            "--input",
            hns.to_str().unwrap(),
        ],
    );
    assert!(status.success(), "{err}");
    let resolved = std::fs::read_to_string(dir.path().join("RESOLVED.txt")).unwrap();
    let sample = std::fs::read_to_string(data.join("example-RESOLVED.txt")).unwrap();
    assert_eq!(resolved, sample);
}

#[test]
fn clients_past_max_clients_are_told_the_server_is_busy() {
    let ls = support::spawn_server_bin(&[
        "ls",
        "0",
        "--bind",
        "127.0.0.1",
        "--root",
        "127.0.0.1:9",
        "--max-clients",
        "1",
    ]);
    let first = TcpStream::connect(ls.addr).unwrap();
    let second = TcpStream::connect(ls.addr).unwrap();
    second.set_read_timeout(Some(BOUND)).unwrap();
    let mut line = String::new();
    BufReader::new(second).read_line(&mut line).unwrap();
    assert_eq!(line, "- Error:SERVER BUSY\n");
    drop(first);
}

#[test]
fn a_client_gives_way_once_its_queries_are_answered() {
    // No root server at 127.0.0.1:9: every name is a miss.
    let (ls, dns, _log) = spawn_dns_bin(&[
        "ls",
        "0",
        "--root",
        "127.0.0.1:9",
        "--max-clients",
        "1",
        "--dns-timeout",
        "0.3",
    ]);
    let course = TcpStream::connect(ls.addr).unwrap();
    course.set_read_timeout(Some(BOUND)).unwrap();
    let mut writer = course.try_clone().unwrap();
    writer.write_all(b"a b\nnothere.com\n").unwrap();
    let mut replies = BufReader::new(course.try_clone().unwrap());
    for reply in [
        "a b - Error:INVALID HOSTNAME",
        "nothere.com - Error:HOST NOT FOUND",
    ] {
        let mut line = String::new();
        replies.read_line(&mut line).unwrap();
        assert_eq!(line.trim_end(), reply);
    }
    let mut over_tcp = tcp_connect(dns);
    let cut = &query(1, "nothere.com.", RecordType::A).to_vec().unwrap()[..20];
    over_tcp.write_all(&framed_bytes(cut)).unwrap();
    over_tcp
        .write_all(&framed(&query(2, "nothere.com.", RecordType::A)))
        .unwrap();
    for code in [ResponseCode::FormErr, ResponseCode::ServFail] {
        assert_eq!(tcp_read(&mut over_tcp).metadata.response_code, code);
    }
    // Idle enough to give way (the wait is the idle period, with a margin
    // for a loaded machine).
    thread::sleep(dnslb::server::EVICTABLE_AFTER + Duration::from_millis(500));
    assert_eq!(
        course_ask(ls.addr, &["a b"]),
        ["a b - Error:INVALID HOSTNAME"]
    );
    let mut line = String::new();
    assert_eq!(replies.read_line(&mut line).ok(), Some(0), "{line}");
    // A class the LS refuses at once, from a newcomer over TCP.
    let mut chaos = query(3, "version.bind.", RecordType::TXT);
    chaos.queries[0].set_query_class(hickory_proto::rr::DNSClass::CH);
    let refused = tcp_ask(dns, &chaos);
    assert_eq!(refused.metadata.response_code, ResponseCode::Refused);
    assert_eq!(read_framed(&mut over_tcp), None, "the idle client gave way");
}
