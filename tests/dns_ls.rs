//! The LS's DNS side end to end, through hickory-proto (an independent DNS
//! implementation) over real UDP and TCP sockets on 127.0.0.1: an LS with
//! its DNS front end in-process (or the binary), in front of dnslb TSes
//! speaking DNS or the course protocol, and fake DNS TSes that refuse,
//! reorder, lie or stay silent.

mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use dnslb::dns::rrl::RateLimit;
use dnslb::ls::{LsOptions, TsProtocol};
use dnslb::ts::TsOptions;
use dnslb::ts::dns::DnsOptions;
use support::dns::*;
use support::*;

/// TS1's table: one name with one address, one with three.
const TABLE1: &str = "www.example.com 10.0.0.1 A\n\
                      rr.example.com 10.0.1.1 A\n\
                      rr.example.com 10.0.1.2 A\n\
                      rr.example.com 10.0.1.3 A\n";
/// TS2's table.
const TABLE2: &str = "mail.example.org 10.0.2.1 A\n";

/// Both ways a DNS client asks.
#[derive(Clone, Copy, Debug)]
enum Via {
    Udp,
    Tcp,
}

const BOTH: [Via; 2] = [Via::Udp, Via::Tcp];

fn ask(via: Via, server: SocketAddr, message: &Message) -> Message {
    match via {
        Via::Udp => udp_ask(server, message),
        Via::Tcp => tcp_ask(server, message),
    }
}

/// Asks and also returns how long the answer took.
fn timed_ask(via: Via, server: SocketAddr, message: &Message) -> (Message, Duration) {
    let start = Instant::now();
    let answer = ask(via, server, message);
    (answer, start.elapsed())
}

/// Two TSes speaking DNS (TTL 77) and an LS in front of them speaking DNS
/// to them, with `tweak` applied to its options.
fn dns_system(tweak: impl FnOnce(&mut LsOptions)) -> (DnsTs, DnsTs, DnsLs) {
    let options = DnsOptions {
        ttl: 77,
        ..DnsOptions::default()
    };
    let ts1 = DnsTs::start_with(TABLE1, options);
    let ts2 = DnsTs::start_with(TABLE2, options);
    let ls = DnsLs::start(&[ts1.addr, ts2.addr], |o| {
        o.ts_protocol = TsProtocol::Dns;
        tweak(o);
    });
    (ts1, ts2, ls)
}

fn ip(a: u8, b: u8, c: u8, d: u8) -> Ipv4Addr {
    Ipv4Addr::new(a, b, c, d)
}

#[test]
fn smoke() {
    let (_ts1, _ts2, ls) = dns_system(|_| {});
    let answer = udp_ask(ls.dns, &query(1, "www.example.com.", RecordType::A));
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    assert_eq!(addresses(&answer), [ip(10, 0, 0, 1)]);
}

#[test]
fn an_answer_carries_the_whole_rrset_and_the_ts_ttl_and_echoes_the_query() {
    let (_ts1, _ts2, ls) = dns_system(|_| {});
    for (n, via) in BOTH.into_iter().enumerate() {
        for rd in [true, false] {
            let id = 0x7100 + n as u16 * 2 + u16::from(rd);
            let mut q = query(id, "Rr.EXAMPLE.com.", RecordType::A);
            q.metadata.recursion_desired = rd;
            let answer = ask(via, ls.dns, &q);
            let m = &answer.metadata;
            assert_eq!(m.response_code, ResponseCode::NoError, "{via:?}");
            assert_eq!((m.id, m.recursion_desired), (id, rd), "{via:?}");
            assert!(!m.recursion_available && !m.authoritative && !m.truncation);
            assert_eq!(answer.queries.len(), 1);
            assert_eq!(answer.queries[0].name().to_ascii(), "Rr.EXAMPLE.com.");
            assert_eq!(answer.queries[0].query_type(), RecordType::A);
            let mut got = addresses(&answer);
            got.sort();
            assert_eq!(got, [ip(10, 0, 1, 1), ip(10, 0, 1, 2), ip(10, 0, 1, 3)]);
            assert!(answer.answers.iter().all(|r| r.ttl == 77), "{via:?}");
        }
    }
    // The second TS's name comes from the second TS.
    let answer = udp_ask(ls.dns, &query(9, "mail.example.org.", RecordType::A));
    assert_eq!(addresses(&answer), [ip(10, 0, 2, 1)]);
    let s = ls.stop();
    assert_eq!(s.dns[0], 5, "five NOERROR responses counted: {s}");
    assert_eq!(s.answered[1], 1, "{s}");
}

#[test]
fn every_ts_saying_nxdomain_is_nxdomain_at_once() {
    let (_ts1, _ts2, ls) = dns_system(|o| o.dns_timeout = Duration::from_secs(8));
    for via in BOTH {
        // TS1 serves com. and says NXDOMAIN; TS2 (org. only) refuses: not its name.
        let (answer, took) = timed_ask(
            via,
            ls.dns,
            &query(3, "nothere.example.com.", RecordType::A),
        );
        assert_eq!(answer.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(answer.metadata.id, 3);
        assert!(answer.answers.is_empty());
        assert!(
            took < Duration::from_secs(4),
            "{via:?}: NXDOMAIN took {took:?}, not at once"
        );
    }
    assert_eq!(ls.stop().dns[1], 2);
}

#[test]
fn refusals_are_refused_when_all_refuse_and_nxdomain_beside_an_nxdomain() {
    let refused = || rcode_ts(ResponseCode::Refused);
    let all_refuse = DnsLs::start(&[refused(), refused()], |o| {
        o.ts_protocol = TsProtocol::Dns;
        o.dns_timeout = Duration::from_secs(8);
    });
    let one_nx = DnsLs::start(&[refused(), rcode_ts(ResponseCode::NXDomain)], |o| {
        o.ts_protocol = TsProtocol::Dns;
        o.dns_timeout = Duration::from_secs(8);
    });
    for via in BOTH {
        let q = query(4, "elsewhere.example.", RecordType::A);
        let (answer, took) = timed_ask(via, all_refuse.dns, &q);
        assert_eq!(answer.metadata.response_code, ResponseCode::Refused);
        assert!(took < Duration::from_secs(4), "{via:?}: {took:?}");
        let (answer, took) = timed_ask(via, one_nx.dns, &q);
        assert_eq!(answer.metadata.response_code, ResponseCode::NXDomain);
        assert!(took < Duration::from_secs(4), "{via:?}: {took:?}");
    }
    assert_eq!(all_refuse.stop().dns[3], 2);
}

#[test]
fn a_ts_that_never_answers_gives_servfail_at_the_dns_timeout() {
    // The course timeout as short, so that this test does not depend on
    // how long the worker waits between deadlines (see the ignored test
    // below for a DNS timeout shorter than the course one).
    let ls = DnsLs::start(&[silent_ts()], |o| {
        o.ts_protocol = TsProtocol::Dns;
        o.dns_timeout = ms(400);
        o.timeout = ms(400);
    });
    for via in BOTH {
        let (answer, took) = timed_ask(via, ls.dns, &query(5, "slow.example.", RecordType::A));
        assert_eq!(answer.metadata.response_code, ResponseCode::ServFail);
        assert_eq!(answer.metadata.id, 5);
        assert!(
            took >= ms(390),
            "{via:?}: SERVFAIL before the deadline: {took:?}"
        );
        assert!(
            took < Duration::from_secs(4),
            "{via:?}: SERVFAIL at {took:?}, not at --dns-timeout"
        );
    }
    assert_eq!(ls.stop().dns[2], 2);
}

#[test]
fn servfail_comes_at_the_dns_timeout_once_the_links_are_up() {
    let known = start_ts("known.example 10.1.1.1 A\n");
    let ls = DnsLs::start(&[silent_ts(), known.addr], |o| o.dns_timeout = ms(400));
    let socket = udp_client();
    let ask = |id: u16, name: &str| {
        let start = Instant::now();
        socket
            .send_to(&query(id, name, RecordType::A).to_vec().unwrap(), ls.dns)
            .unwrap();
        let answer = Message::from_vec(&udp_recv(&socket)).unwrap();
        (answer, start.elapsed())
    };
    // The first query waits while the links come up; this one after.
    let (first, _) = ask(1, "known.example.");
    assert_eq!(addresses(&first), [ip(10, 1, 1, 1)]);
    let (answer, took) = ask(2, "gone.example.");
    assert_eq!(answer.metadata.response_code, ResponseCode::ServFail);
    assert!(
        took < Duration::from_secs(3),
        "SERVFAIL at {took:?}, not at --dns-timeout"
    );
}

/// The address a fake TS gives `name`: 10.9.9.<its first label's last digit>.
fn address_of(name: &Name) -> Ipv4Addr {
    let label = name.to_ascii();
    let digit = label.split('.').next().unwrap().bytes().last().unwrap() - b'0';
    ip(10, 9, 9, digit)
}

fn answer_for(query: &Message) -> Message {
    reply_to(query, ResponseCode::NoError, |m| {
        let name = query.queries[0].name().clone();
        let a = address_of(&name);
        m.add_answer(Record::from_rdata(name, 60, RData::A(A(a))));
    })
}

#[test]
fn replies_out_of_order_from_a_dns_ts_are_matched_to_their_queries() {
    // Reads up to four queries (fewer when no more come for a moment: the
    // UDP sessions each have their own connection), then answers them last
    // first.
    let reversing = fake_server(|mut stream| {
        loop {
            let mut batch = Vec::new();
            while batch.len() < 4 {
                stream
                    .set_read_timeout(if batch.is_empty() {
                        None
                    } else {
                        Some(ms(100))
                    })
                    .unwrap();
                let mut len = [0; 2];
                match stream.read_exact(&mut len) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => break,
                    Err(_) => return,
                }
                stream.set_read_timeout(None).unwrap();
                let mut bytes = vec![0; usize::from(u16::from_be_bytes(len))];
                if stream.read_exact(&mut bytes).is_err() {
                    return;
                }
                batch.push(Message::from_vec(&bytes).unwrap());
            }
            for q in batch.iter().rev() {
                write_message(&mut stream, &answer_for(q));
            }
        }
    });
    let ls = DnsLs::start(&[reversing], |o| o.ts_protocol = TsProtocol::Dns);
    let queries: Vec<Message> = (1..=4)
        .map(|i| query(i, &format!("q{i}.example."), RecordType::A))
        .collect();
    // Over TCP, pipelined on one connection.
    let mut tcp = tcp_connect(ls.dns);
    let all: Vec<u8> = queries.iter().flat_map(framed).collect();
    tcp.write_all(&all).unwrap();
    // Over UDP, four datagrams from one socket.
    let udp = udp_client();
    for q in &queries {
        udp.send_to(&q.to_vec().unwrap(), ls.dns).unwrap();
    }
    let answers: Vec<Message> = (0..4)
        .map(|_| tcp_read(&mut tcp))
        .chain((0..4).map(|_| Message::from_vec(&udp_recv(&udp)).unwrap()))
        .collect();
    for answer in &answers {
        let i = answer.metadata.id;
        assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
        assert_eq!(
            answer.queries[0].name().to_ascii(),
            format!("q{i}.example.")
        );
        assert_eq!(addresses(answer), [ip(10, 9, 9, i as u8)], "query {i}");
    }
    assert_eq!(ls.snapshot().dropped_replies, 0);
}

#[test]
fn replies_with_a_wrong_id_or_question_are_dropped_and_counted() {
    // Before each true answer: one with another ID, one for another name.
    let lying = fake_dns_ts(|q, stream| {
        let mut wrong_id = answer_for(q);
        wrong_id.metadata.id ^= 0x8000;
        write_message(stream, &wrong_id);
        let mut other = q.clone();
        other.queries[0] = hickory_proto::op::Query::query(
            Name::from_ascii("q9.other.example.").unwrap(),
            RecordType::A,
        );
        write_message(stream, &answer_for(&other));
        write_message(stream, &answer_for(q));
    });
    let ls = DnsLs::start(&[lying], |o| o.ts_protocol = TsProtocol::Dns);
    for (n, via) in BOTH.into_iter().enumerate() {
        let answer = ask(via, ls.dns, &query(6, "q5.example.", RecordType::A));
        assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
        assert_eq!(addresses(&answer), [ip(10, 9, 9, 5)], "{via:?}");
        // The lies came first on the TS's stream: they are counted by now.
        assert_eq!(ls.snapshot().dropped_replies, 2 * (n as u64 + 1), "{via:?}");
    }
}

#[test]
fn a_dns_ts_that_closes_its_connection_is_asked_again_on_a_new_one() {
    // Answers one query per connection, then closes it.
    let closing = fake_server(|mut stream| {
        if let Some(bytes) = read_framed(&mut stream) {
            write_message(
                &mut stream,
                &answer_for(&Message::from_vec(&bytes).unwrap()),
            );
        }
    });
    let ls = DnsLs::start(&[closing], |o| o.ts_protocol = TsProtocol::Dns);
    for id in 1..=3 {
        let answer = udp_ask(ls.dns, &query(id, "q7.example.", RecordType::A));
        assert_eq!(
            answer.metadata.response_code,
            ResponseCode::NoError,
            "query {id}"
        );
    }
}

#[test]
fn a_dns_ts_that_closes_after_a_few_queries_under_pipelined_load_answers_them_all() {
    // NSD with `tcp-query-count: 5` (or a server shedding TCP load): each
    // connection answers five queries and is closed with the queries
    // pipelined after them unread. The LS's writes then fail (broken
    // pipe) before it has read the five answers; it must still ask the
    // rest again on a new connection rather than take the TS for down
    // (which made 98 % of dnsperf's queries SERVFAIL).
    let five_per_connection = fake_server(|mut stream| {
        for _ in 0..5 {
            let Some(bytes) = read_framed(&mut stream) else {
                return;
            };
            write_message(
                &mut stream,
                &answer_for(&Message::from_vec(&bytes).unwrap()),
            );
        }
    });
    let ls = DnsLs::start(&[five_per_connection], |o| {
        o.ts_protocol = TsProtocol::Dns;
        o.dns_timeout = Duration::from_secs(8);
    });
    let count: u16 = 300;
    let mut tcp = tcp_connect(ls.dns);
    for round in 0..3 {
        let all: Vec<u8> = (1..=count)
            .flat_map(|i| framed(&query(i, &format!("q{}.example.", i % 10), RecordType::A)))
            .collect();
        tcp.write_all(&all).unwrap();
        let mut failed = Vec::new();
        for _ in 0..count {
            let answer = tcp_read(&mut tcp);
            if answer.metadata.response_code != ResponseCode::NoError {
                failed.push((answer.metadata.id, answer.metadata.response_code));
            }
        }
        assert!(
            failed.is_empty(),
            "round {round}: {} failed: {failed:?}",
            failed.len()
        );
    }
}

#[test]
fn a_course_ts_answer_becomes_one_a_record_with_ttl_300() {
    let ts1 = start_ts(TABLE1);
    let ts2 = start_ts(TABLE2);
    let ls = DnsLs::start(&[ts1.addr, ts2.addr], |_| {});
    for via in BOTH {
        let answer = ask(via, ls.dns, &query(7, "MAIL.example.org.", RecordType::A));
        assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
        assert_eq!(answer.queries[0].name().to_ascii(), "MAIL.example.org.");
        assert_eq!(addresses(&answer), [ip(10, 0, 2, 1)], "{via:?}");
        assert_eq!(answer.answers[0].ttl, 300);
    }
}

#[test]
fn course_tses_that_answer_misses_give_nxdomain_at_once() {
    let misses = TsOptions {
        answer_misses: true,
        ..TsOptions::default()
    };
    let ts1 = start_ts_with(TABLE1, misses);
    let ts2 = start_ts_with(TABLE2, misses);
    let ls = DnsLs::start(&[ts1.addr, ts2.addr], |o| {
        o.dns_timeout = Duration::from_secs(8);
    });
    for via in BOTH {
        let (answer, took) = timed_ask(via, ls.dns, &query(8, "gone.example.", RecordType::A));
        assert_eq!(answer.metadata.response_code, ResponseCode::NXDomain);
        assert!(took < Duration::from_secs(4), "{via:?}: {took:?}");
    }
}

#[test]
fn silent_course_tses_give_servfail_at_the_dns_timeout() {
    let ls = DnsLs::start(&[silent_ts(), silent_ts()], |o| {
        o.dns_timeout = ms(300);
        o.timeout = ms(300);
    });
    for via in BOTH {
        let (answer, took) = timed_ask(via, ls.dns, &query(9, "gone.example.", RecordType::A));
        assert_eq!(answer.metadata.response_code, ResponseCode::ServFail);
        assert!(
            took >= ms(290) && took < Duration::from_secs(4),
            "{via:?}: {took:?}"
        );
    }
}

#[test]
fn tses_serving_their_top_level_zones_still_give_every_name_and_nxdomain() {
    // TS1 serves com. and org., TS2 edu. and site. (the course's tables);
    // each refuses the other's zones, and the LS takes REFUSED as "not mine".
    let (ts1, ts2) = course_dns_tses();
    let ls = DnsLs::start(&[ts1.addr, ts2.addr], |o| {
        o.ts_protocol = TsProtocol::Dns;
        o.dns_timeout = Duration::from_secs(8);
    });
    let hits = [
        ("amazon.org.", ip(94, 5, 6, 7)),
        ("rutgers.com.", ip(172, 34, 4, 6)),
        ("www.princeton.edu.", ip(128, 1, 1, 4)),
        ("google.site.", ip(46, 1, 3, 7)),
    ];
    for via in BOTH {
        for (name, address) in hits {
            let answer = ask(via, ls.dns, &query(1, name, RecordType::A));
            assert_eq!(addresses(&answer), [address], "{via:?} {name}");
        }
        for (name, code) in [
            ("nothinghere.com.", ResponseCode::NXDomain),
            ("cs.princeton.edu.", ResponseCode::NXDomain),
            ("princeton.edu.", ResponseCode::NoError),
            ("nothinghere.net.", ResponseCode::Refused),
            (".", ResponseCode::Refused),
        ] {
            let (answer, took) = timed_ask(via, ls.dns, &query(2, name, RecordType::A));
            assert_eq!(answer.metadata.response_code, code, "{via:?} {name}");
            assert!(answer.answers.is_empty(), "{via:?} {name}");
            assert!(took < Duration::from_secs(4), "{via:?} {name}: {took:?}");
        }
        // The apex of a zone one TS serves: its SOA, from that TS.
        let answer = ask(via, ls.dns, &query(3, "edu.", RecordType::SOA));
        assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
        assert_eq!(answer.answers.len(), 1, "{via:?}");
        assert_eq!(answer.answers[0].record_type(), RecordType::SOA);
    }
}

#[test]
fn classes_other_than_in_are_refused_at_once_whatever_the_tses_speak() {
    // Silent TSes: an answer that waited for them would come at the DNS timeout.
    for protocol in [TsProtocol::Line, TsProtocol::Dns] {
        let ls = DnsLs::start(&[silent_ts(), silent_ts()], |o| {
            o.ts_protocol = protocol;
            o.dns_timeout = Duration::from_secs(8);
        });
        for via in BOTH {
            let mut q = query(4, "version.bind.", RecordType::TXT);
            q.queries[0].set_query_class(hickory_proto::rr::DNSClass::CH);
            let (answer, took) = timed_ask(via, ls.dns, &q);
            assert_eq!(
                answer.metadata.response_code,
                ResponseCode::Refused,
                "{protocol:?} {via:?}"
            );
            assert_eq!(
                answer.queries[0].query_class(),
                hickory_proto::rr::DNSClass::CH
            );
            assert!(
                took < Duration::from_secs(2),
                "{protocol:?} {via:?}: {took:?}"
            );
        }
        assert_eq!(ls.stop().dns[3], 2, "{protocol:?}: two REFUSED counted");
    }
}

#[test]
fn zone_transfers_are_refused_at_once_whatever_the_tses_speak() {
    // A transfer is a stream of messages and the LS relays one per query:
    // refused, not asked of the TSes (silent ones would make it SERVFAIL
    // at the DNS timeout; a DNS TS would give a lone SOA or NODATA).
    for protocol in [TsProtocol::Line, TsProtocol::Dns] {
        let ls = DnsLs::start(&[silent_ts(), silent_ts()], |o| {
            o.ts_protocol = protocol;
            o.dns_timeout = Duration::from_secs(8);
        });
        for qtype in [RecordType::AXFR, RecordType::IXFR] {
            let (answer, took) = timed_ask(Via::Tcp, ls.dns, &query(6, "example.com.", qtype));
            assert_eq!(
                answer.metadata.response_code,
                ResponseCode::Refused,
                "{protocol:?} {qtype}"
            );
            assert!(answer.answers.is_empty());
            assert!(
                took < Duration::from_secs(2),
                "{protocol:?} {qtype}: {took:?}"
            );
        }
    }
    // Through DNS TSes, a SOA query for the same zone is still answered.
    let (_ts1, _ts2, ls) = dns_system(|_| {});
    let soa = ask(Via::Tcp, ls.dns, &query(7, "com.", RecordType::SOA));
    assert_eq!(soa.metadata.response_code, ResponseCode::NoError);
    assert_eq!(soa.answers.len(), 1);
}

#[test]
fn udp_answers_past_the_rate_limit_slip_as_truncated_ones() {
    // One answer a second, and every answer past it sent truncated: each
    // query gets one datagram back, whole or truncated.
    let (_ts1, _ts2, ls) = dns_system(|o| o.rrl = Some(RateLimit { rate: 1, slip: 1 }));
    let client = udp_client();
    for id in 0..10u16 {
        // Half asked of the TSes, half refused at once.
        let mut q = query(id, "www.example.com.", RecordType::A);
        if id % 2 == 1 {
            q.queries[0].set_query_class(hickory_proto::rr::DNSClass::CH);
        }
        client.send_to(&q.to_vec().unwrap(), ls.dns).unwrap();
    }
    let (mut whole, mut truncated) = (0, 0);
    for _ in 0..10 {
        let answer = Message::from_vec(&udp_recv(&client)).unwrap();
        if answer.metadata.truncation {
            assert!(answer.answers.is_empty());
            assert_eq!(answer.queries[0].name().to_ascii(), "www.example.com.");
            truncated += 1;
        } else {
            whole += 1;
        }
    }
    assert!((1..=2).contains(&whole), "{whole} whole answers");
    let s = ls.snapshot();
    assert_eq!(s.dns_limits[1], truncated, "{s}");
    assert!(truncated >= 8, "{s}");
    // TCP is not limited.
    assert_eq!(
        addresses(&tcp_ask(
            ls.dns,
            &query(11, "www.example.com.", RecordType::A)
        )),
        [ip(10, 0, 0, 1)]
    );
}

#[test]
fn sources_outside_the_allow_list_are_dropped_over_udp_and_closed_over_tcp() {
    let (_ts1, _ts2, ls) = dns_system(|o| o.allow = "127.0.1.0/24".parse().unwrap());
    let q = query(1, "www.example.com.", RecordType::A);
    let outside = udp_client();
    outside.send_to(&q.to_vec().unwrap(), ls.dns).unwrap();
    let inside = UdpSocket::bind("127.0.1.1:0").unwrap();
    inside.set_read_timeout(Some(BOUND)).unwrap();
    inside.send_to(&q.to_vec().unwrap(), ls.dns).unwrap();
    assert_eq!(
        addresses(&Message::from_vec(&udp_recv(&inside)).unwrap()),
        [ip(10, 0, 0, 1)]
    );
    // The answer to the allowed source is in; none comes to the other.
    outside.set_read_timeout(Some(ms(200))).unwrap();
    let mut buf = [0; 512];
    assert!(
        outside.recv_from(&mut buf).is_err(),
        "a source not allowed was answered"
    );
    let mut tcp = tcp_connect(ls.dns);
    let _ = tcp.write_all(&framed(&q));
    assert!(
        matches!(tcp.read(&mut buf), Ok(0) | Err(_)),
        "a connection not allowed was answered"
    );
    assert_eq!(ls.stop().dns_limits[2], 2);
}

#[test]
fn the_start_up_lines_name_the_allow_list_and_servfail_on_course_misses() {
    let ts = start_ts(TABLE1);
    let port = ts.addr.port().to_string();
    let (ls, _dns, log) = spawn_dns_bin(&["ls", "0", "127.0.0.1", &port]);
    let allow = line_containing(&log, "(--allow)");
    assert!(
        allow.contains("127.0.0.0/8,10.0.0.0/8,172.16.0.0/12"),
        "{allow}"
    );
    assert!(allow.contains("fc00::/7,fe80::/10"), "{allow}");
    let misses = line_containing(&log, "--answer-misses");
    assert!(
        misses.contains("SERVFAIL after --dns-timeout (2s)"),
        "{misses}"
    );
    ls.signal(libc::SIGINT);
    assert!(ls.wait().success());
    let (ls, _dns, log) = spawn_dns_bin(&[
        "ls",
        "0",
        "127.0.0.1",
        &port,
        "--allow",
        "10.0.0.0/8",
        "--rrl",
        "50",
    ]);
    assert!(line_containing(&log, "(--allow)").contains("in 10.0.0.0/8 only"));
    let rrl = line_containing(&log, "--rrl");
    assert!(
        rrl.contains("at most 50 UDP answers per second per /24"),
        "{rrl}"
    );
    ls.signal(libc::SIGINT);
    assert!(ls.wait().success());
}

#[test]
fn course_clients_of_a_dns_speaking_ls_get_course_replies() {
    let (_ts1, _ts2, ls) = dns_system(|_| {});
    let mut client = LineClient::connect(ls.course());
    // The first address of the RRset (a fresh TS starts with the first line).
    assert_eq!(client.ask("rr.example.com"), "rr.example.com 10.0.1.1 A");
    assert_eq!(
        client.ask("mail.example.org"),
        "mail.example.org 10.0.2.1 A"
    );
    assert_eq!(
        client.ask("nothere.example"),
        "nothere.example - Error:HOST NOT FOUND"
    );
}

/// Course TSes as DNS TSes, from the course's tables.
fn course_dns_tses() -> (DnsTs, DnsTs) {
    let table = |n| std::fs::read_to_string(data(&format!("PROJ2-DNSTS{n}.txt"))).unwrap();
    (DnsTs::start(&table(1)), DnsTs::start(&table(2)))
}

#[test]
fn the_course_sample_through_dns_tses_is_byte_identical() {
    let (ts1, ts2) = course_dns_tses();
    let ls = DnsLs::start(&[ts1.addr, ts2.addr], |o| o.ts_protocol = TsProtocol::Dns);
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(data("PROJ2-HNS.txt"), dir.path().join("PROJ2-HNS.txt")).unwrap();
    let port = ls.course().port().to_string();
    let (status, _, stderr) = run_bin(dir.path(), &["client", "127.0.0.1", &port]);
    assert!(status.success(), "client failed: {stderr}");
    let expected = std::fs::read_to_string(data("example-RESOLVED.txt")).unwrap();
    let resolved = std::fs::read_to_string(dir.path().join("RESOLVED.txt")).unwrap();
    assert_eq!(resolved, expected);
}

#[test]
fn course_replies_through_dns_tses_name_the_name_as_line_tses_do_but_for_case() {
    // A course TS answers with its table's spelling (`google.site`); a DNS
    // TS echoes the question as asked (RFC 1035 §4.1.1), so through DNS TSes
    // the reply spells the name as the client did. Same name, same address.
    let (dns1, dns2) = course_dns_tses();
    let over_dns = DnsLs::start(&[dns1.addr, dns2.addr], |o| o.ts_protocol = TsProtocol::Dns);
    let (line1, line2) = course_tses();
    let over_lines = DnsLs::start(&[line1.addr, line2.addr], |_| {});
    for name in ["Google.site", "WWW.Princeton.EDU", "NothingHere.com"] {
        let via_lines = LineClient::connect(over_lines.course()).ask(name);
        let via_dns = LineClient::connect(over_dns.course()).ask(name);
        assert!(
            via_dns.eq_ignore_ascii_case(&via_lines),
            "{via_dns} / {via_lines}"
        );
        assert!(via_dns.starts_with(&format!("{name} ")), "{via_dns}");
    }
}

#[test]
fn a_second_query_is_a_cache_hit_and_served_while_the_tses_are_down() {
    let (ts1, ts2, ls) = dns_system(|o| o.cache = 100);
    let q = query(10, "www.example.com.", RecordType::A);
    let first = udp_ask(ls.dns, &q);
    assert_eq!(first.answers[0].ttl, 77);
    assert_eq!(ls.snapshot().cached, 0);
    let second = udp_ask(ls.dns, &q);
    assert_eq!(addresses(&second), [ip(10, 0, 0, 1)]);
    assert!(second.answers[0].ttl <= 77);
    // A negative answer is kept too.
    let nx = query(11, "nothere.example.com.", RecordType::A);
    assert_eq!(
        udp_ask(ls.dns, &nx).metadata.response_code,
        ResponseCode::NXDomain
    );
    drop((ts1, ts2));
    for via in BOTH {
        let answer = ask(via, ls.dns, &q);
        assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
        assert_eq!(addresses(&answer), [ip(10, 0, 0, 1)], "{via:?}");
        assert_eq!(answer.metadata.id, 10);
        let answer = ask(via, ls.dns, &nx);
        assert_eq!(answer.metadata.response_code, ResponseCode::NXDomain);
    }
    // Course clients are served from the same cache (the name spelt as
    // whoever filled it spelt it).
    let mut client = LineClient::connect(ls.course());
    let line = client.ask("WWW.example.com");
    assert!(
        line.eq_ignore_ascii_case("www.example.com 10.0.0.1 A"),
        "{line}"
    );
    drop(client);
    // Positive cache hits: the second query, two with the TSes down, the
    // course client's (a cached NXDOMAIN counts as not-found). A response
    // is counted once written, which may be after its client read it:
    // read after stopping.
    assert_eq!(ls.stop().cached, 4, "cache hits");
}

#[test]
fn servfail_is_not_cached() {
    let ls = DnsLs::start(&[silent_ts()], |o| {
        o.ts_protocol = TsProtocol::Dns;
        o.dns_timeout = ms(300);
        o.timeout = ms(300);
        o.cache = 100;
    });
    let q = query(12, "slow.example.", RecordType::A);
    for via in BOTH {
        let (answer, took) = timed_ask(via, ls.dns, &q);
        assert_eq!(answer.metadata.response_code, ResponseCode::ServFail);
        assert!(
            took >= ms(290),
            "{via:?}: SERVFAIL came from the cache: {took:?}"
        );
    }
    let s = ls.stop();
    assert_eq!((s.cached, s.dns[2]), (0, 2), "{s}");
}

#[test]
fn many_queries_pipelined_over_tcp_are_all_answered() {
    let (_ts1, _ts2, ls) = dns_system(|_| {});
    let names = ["www.example.com.", "gone.example.com.", "mail.example.org."];
    let queries: Vec<Message> = (0..300u16)
        .map(|i| query(i, names[usize::from(i) % 3], RecordType::A))
        .collect();
    let mut tcp = tcp_connect(ls.dns);
    let all: Vec<u8> = queries.iter().flat_map(framed).collect();
    tcp.write_all(&all).unwrap();
    let mut seen = vec![false; queries.len()];
    for _ in 0..queries.len() {
        let answer = tcp_read(&mut tcp);
        let i = answer.metadata.id;
        assert!(
            !std::mem::replace(&mut seen[usize::from(i)], true),
            "{i} twice"
        );
        let expected = if i % 3 == 1 {
            ResponseCode::NXDomain
        } else {
            ResponseCode::NoError
        };
        assert_eq!(answer.metadata.response_code, expected, "query {i}");
        assert_eq!(
            answer.queries[0].name().to_ascii(),
            names[usize::from(i) % 3]
        );
    }
}

#[test]
fn a_length_prefix_split_across_writes_is_read_whole() {
    let (_ts1, _ts2, ls) = dns_system(|_| {});
    let mut tcp = tcp_connect(ls.dns);
    let first = framed(&query(1, "www.example.com.", RecordType::A));
    let second = framed(&query(2, "mail.example.org.", RecordType::A));
    // The first query and one byte of the second's length.
    tcp.write_all(&first).unwrap();
    tcp.write_all(&second[..1]).unwrap();
    // Its answer proves the LS has read past the first query.
    assert_eq!(tcp_read(&mut tcp).metadata.id, 1);
    tcp.write_all(&second[1..]).unwrap();
    let answer = tcp_read(&mut tcp);
    assert_eq!(answer.metadata.id, 2);
    assert_eq!(addresses(&answer), [ip(10, 0, 2, 1)]);
}

/// Resident memory of process `pid` now, in kB.
fn resident_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches(" kB").parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

/// Threads of process `pid` now.
fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .count()
}

/// Asks `name` over UDP until an answer comes, as a resolver retries (each
/// try waits up to `wait`, at most 10 tries).
fn ask_until_answered(server: SocketAddr, name: &str, wait: Duration) -> Message {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(wait)).unwrap();
    for id in 0..10 {
        socket
            .send_to(&query(id, name, RecordType::A).to_vec().unwrap(), server)
            .unwrap();
        let mut buf = vec![0; 65_536];
        while let Ok((len, _)) = socket.recv_from(&mut buf) {
            let answer = Message::from_vec(&buf[..len]).unwrap();
            if answer.metadata.id == id {
                return answer;
            }
        }
    }
    panic!("no answer to {name} after 10 tries");
}

#[test]
fn a_udp_flood_costs_no_threads_is_counted_as_dropped_and_the_ls_goes_on() {
    let known = start_ts("known.example 10.1.1.1 A\n");
    let silent = silent_ts();
    let (known_port, silent_port) = (known.addr.port().to_string(), silent.port().to_string());
    let (ls, dns, log) = spawn_dns_bin(&[
        "ls",
        "0",
        "127.0.0.1",
        &silent_port,
        "127.0.0.1",
        &known_port,
        "--max-inflight",
        "4",
        "--dns-timeout",
        "1",
        "--timeout",
        "1",
    ]);
    let pid = ls.child.id();
    let warm = ask_until_answered(dns, "known.example.", Duration::from_secs(3));
    assert_eq!(addresses(&warm), [ip(10, 1, 1, 1)]);
    let (before, memory_before) = (threads(pid), resident_kb(pid));
    // 1000 queries for names no TS answers, from 20 addresses: each waits
    // for the 1 s deadline, so the sessions fill up at once.
    let flooders: Vec<UdpSocket> = (0..20).map(|_| udp_client()).collect();
    for i in 0..1000u16 {
        let q = query(i, &format!("flood{i}.example."), RecordType::A);
        flooders[usize::from(i) % 20]
            .send_to(&q.to_vec().unwrap(), dns)
            .unwrap();
    }
    let (during, memory_during) = (threads(pid), resident_kb(pid));
    let after = ask_until_answered(dns, "known.example.", Duration::from_secs(2));
    assert_eq!(addresses(&after), [ip(10, 1, 1, 1)]);
    assert!(
        during <= before && threads(pid) <= before,
        "threads grew: {before} before, {during} during the flood"
    );
    assert!(
        memory_during < memory_before + 8 * 1024,
        "memory grew from {memory_before} kB to {memory_during} kB"
    );
    ls.signal(libc::SIGINT);
    let stats = line_containing(&log, "UDP queries dropped");
    let figure = |after: &str| -> u64 {
        let at = stats
            .find(after)
            .unwrap_or_else(|| panic!("{after} in {stats}"))
            + after.len();
        stats[at..]
            .split(|c: char| !c.is_ascii_digit())
            .find(|s| !s.is_empty())
            .unwrap()
            .parse()
            .unwrap()
    };
    let (queries, dropped) = (figure("queries "), figure("UDP queries dropped "));
    assert!(dropped >= 100, "few queries counted as dropped: {stats}");
    assert!(
        queries + dropped <= 1000 + 20,
        "more queries than were sent: {stats}"
    );
    assert!(ls.wait().success());
}

/// Two misses that wait for a long deadline, then eight hits: `send` sends
/// the queries (misses first) and `recv` reads one answer. Each hit must
/// come back within 150 ms of being sent, ahead of the misses.
fn hits_overtake_misses(send: impl FnOnce(&[Message]), mut recv: impl FnMut() -> Message) {
    let misses = (0..2u16).map(|i| query(100 + i, &format!("slow{i}.example."), RecordType::A));
    let hits = (0..8u16).map(|i| query(i, "www.example.com.", RecordType::A));
    let queries: Vec<Message> = misses.chain(hits).collect();
    let sent = Instant::now();
    send(&queries);
    for _ in 0..8 {
        let answer = recv();
        let took = sent.elapsed();
        assert!(answer.metadata.id < 8, "a miss came first: {answer:?}");
        assert_eq!(addresses(&answer), [ip(10, 0, 0, 1)]);
        assert!(took < ms(150), "a hit took {took:?}");
    }
    eprintln!(
        "eight hits behind two misses: all back within {:?}",
        sent.elapsed()
    );
}

/// Course TSes that stay silent on names they do not hold, behind an LS
/// whose DNS deadline is long; the links are up.
fn silent_on_misses() -> (Server, Server, DnsLs) {
    silent_on_misses_with(|_| {})
}

/// [`silent_on_misses`] with `tweak` applied to the LS's options.
fn silent_on_misses_with(tweak: impl FnOnce(&mut LsOptions)) -> (Server, Server, DnsLs) {
    let ts1 = start_ts(TABLE1);
    let ts2 = start_ts(TABLE2);
    let ls = DnsLs::start(&[ts1.addr, ts2.addr], |o| {
        o.dns_timeout = Duration::from_secs(2);
        tweak(o);
    });
    for via in BOTH {
        let answer = ask(via, ls.dns, &query(1, "www.example.com.", RecordType::A));
        assert_eq!(addresses(&answer), [ip(10, 0, 0, 1)]);
    }
    (ts1, ts2, ls)
}

#[test]
fn udp_answers_leave_as_they_settle_not_behind_slow_queries() {
    let (_ts1, _ts2, ls) = silent_on_misses();
    let (slow, fast) = (udp_client(), udp_client());
    hits_overtake_misses(
        |queries| {
            for (i, q) in queries.iter().enumerate() {
                let socket = if i < 2 { &slow } else { &fast };
                socket.send_to(&q.to_vec().unwrap(), ls.dns).unwrap();
            }
        },
        || Message::from_vec(&udp_recv(&fast)).unwrap(),
    );
    // The misses end at their deadline.
    for _ in 0..2 {
        let miss = Message::from_vec(&udp_recv(&slow)).unwrap();
        assert_eq!(miss.metadata.response_code, ResponseCode::ServFail);
    }
}

#[test]
fn pipelined_tcp_answers_leave_as_they_settle() {
    let (_ts1, _ts2, ls) = silent_on_misses();
    let mut tcp = tcp_connect(ls.dns);
    let mut writer = tcp.try_clone().unwrap();
    hits_overtake_misses(
        |queries| {
            let all: Vec<u8> = queries.iter().flat_map(framed).collect();
            writer.write_all(&all).unwrap();
        },
        || tcp_read(&mut tcp),
    );
    for _ in 0..2 {
        let miss = tcp_read(&mut tcp);
        assert_eq!(miss.metadata.response_code, ResponseCode::ServFail);
        assert!(miss.metadata.id >= 100);
    }
}

#[test]
fn one_source_flooding_misses_cannot_crowd_out_another_sources_hit() {
    // 2 sessions × 8 slots; misses hold theirs for the whole deadline.
    let (_ts1, _ts2, ls) = silent_on_misses_with(|o| o.max_inflight = 8);
    let flooder = udp_client();
    for i in 0..200u16 {
        let q = query(i, &format!("flood{i}.example."), RecordType::A);
        flooder.send_to(&q.to_vec().unwrap(), ls.dns).unwrap();
    }
    // Another /24 of the loopback network: another source.
    let other = UdpSocket::bind("127.0.1.1:0").unwrap();
    other.set_read_timeout(Some(BOUND)).unwrap();
    let hit = query(7, "www.example.com.", RecordType::A);
    other.send_to(&hit.to_vec().unwrap(), ls.dns).unwrap();
    let answer = Message::from_vec(&udp_recv(&other)).unwrap();
    assert_eq!(answer.metadata.id, 7);
    assert_eq!(addresses(&answer), [ip(10, 0, 0, 1)]);
    // The flooder got its share (2 of the 16 slots); the rest of its
    // queries were dropped, counted under their reason.
    let s = ls.snapshot();
    let [.., full, over_share] = s.dns;
    assert!(over_share >= 190, "{s}");
    assert_eq!(full, 0, "{s}");
    assert!(
        s.to_string()
            .contains(&format!("source over its share {over_share}")),
        "{s}"
    );
}

#[test]
fn dns_sent_to_the_course_port_is_closed_with_a_pointer_to_the_dns_port() {
    let ts = start_ts(TABLE1);
    let port = ts.addr.port().to_string();
    let (ls, dns, log) = spawn_dns_bin(&["ls", "0", "127.0.0.1", &port]);
    let hint = format!("DNS is served on --dns-port {}", dns.port());
    dns_to_the_course_port_is_closed(ls.addr, &log, &hint);
    // Text queries are served as ever.
    let mut client = LineClient::connect(ls.addr);
    assert_eq!(client.ask("www.example.com"), "www.example.com 10.0.0.1 A");
    drop(client);
    ls.signal(libc::SIGINT);
    let counts = line_containing(&log, "ls: queries ");
    assert!(
        counts.contains("queries 3 = answered 1 ") && counts.contains("+ invalid 2 +"),
        "{counts}"
    );
    // Without a DNS port, the line says how to serve DNS.
    let (ls, log) =
        spawn_server_bin_stderr(&["ls", "0", "--bind", "127.0.0.1", "127.0.0.1", &port]);
    dns_to_the_course_port_is_closed(ls.addr, &log, "run with --dns-port to serve DNS");
}
