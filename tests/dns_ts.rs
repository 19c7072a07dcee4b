//! The TS's DNS side, checked through hickory-proto, an independent DNS
//! implementation: queries are built and answers parsed by it, over real
//! UDP and TCP sockets on 127.0.0.1. Malformed queries are sent as raw bytes.

mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::rdata::NS;
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};

use dnslb::dns::rrl::RateLimit;
use dnslb::net::DnsSockets as Sockets;
use dnslb::ts::dns::DnsOptions;
use support::dns::*;
use support::{BOUND, ms};

const TABLE: &str = "www.example.com 10.0.0.1 A\n\
                     rr.example.com 10.0.1.1 A\n\
                     rr.example.com 10.0.1.2 A\n\
                     RR.example.com 10.0.1.3 A\n";

#[test]
fn smoke() {
    let ts = DnsTs::start(TABLE);
    let answer = udp_ask(ts.addr, &query(0x4242, "www.example.com.", RecordType::A));
    let m = &answer.metadata;
    assert_eq!(m.id, 0x4242);
    assert_eq!(m.response_code, ResponseCode::NoError);
    assert!(m.authoritative && m.recursion_desired && !m.truncation);
    assert_eq!(m.op_code, OpCode::Query);
    assert_eq!(answer.queries.len(), 1);
    assert_eq!(addresses(&answer), [Ipv4Addr::new(10, 0, 0, 1)]);
    assert_eq!(answer.answers[0].ttl, 300);
    assert_eq!(answer.answers[0].dns_class, DNSClass::IN);
    assert!(answer.edns.is_none());
}

#[test]
fn an_rrset_comes_whole_with_one_ttl_and_rotates() {
    let ts = DnsTs::start_with(
        TABLE,
        DnsOptions {
            ttl: 60,
            ..DnsOptions::default()
        },
    );
    let first: Vec<Vec<Ipv4Addr>> = (0..3)
        .map(|i| {
            addresses(&udp_ask(
                ts.addr,
                &query(i, "rr.example.com.", RecordType::A),
            ))
        })
        .collect();
    let ip = |last| Ipv4Addr::new(10, 0, 1, last);
    assert_eq!(first[0], [ip(1), ip(2), ip(3)]);
    assert_eq!(first[1], [ip(2), ip(3), ip(1)]);
    assert_eq!(first[2], [ip(3), ip(1), ip(2)]);
    let again = udp_ask(ts.addr, &query(9, "RR.EXAMPLE.COM.", RecordType::A));
    assert_eq!(addresses(&again), [ip(1), ip(2), ip(3)]);
    assert!(again.answers.iter().all(|r| r.ttl == 60));
}

#[test]
fn a_missing_name_is_an_authoritative_nxdomain() {
    let ts = DnsTs::start(TABLE);
    let answer = udp_ask(ts.addr, &query(7, "nothere.example.com.", RecordType::A));
    assert_eq!(answer.metadata.response_code, ResponseCode::NXDomain);
    assert!(answer.metadata.authoritative);
    assert!(answer.answers.is_empty());
    assert_eq!(answer.queries[0].name().to_ascii(), "nothere.example.com.");
}

#[test]
fn another_type_of_a_present_name_is_noerror_without_answers() {
    let ts = DnsTs::start(TABLE);
    for qtype in [RecordType::AAAA, RecordType::MX, RecordType::TXT] {
        let answer = udp_ask(ts.addr, &query(8, "www.example.com.", qtype));
        assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
        assert!(answer.metadata.authoritative);
        assert!(answer.answers.is_empty(), "{qtype}");
        assert_eq!(answer.queries[0].query_type(), qtype);
    }
}

/// The one SOA record of a negative answer's authority section: its owner,
/// TTL and minimum.
fn authority_soa(answer: &Message) -> (String, u32, u32) {
    let [record] = &answer.authorities[..] else {
        panic!("not one authority record: {:?}", answer.authorities);
    };
    let RData::SOA(soa) = &record.data else {
        panic!("not an SOA: {record:?}");
    };
    (record.name.to_ascii(), record.ttl, soa.minimum)
}

/// The top-level zone of `name` (with a final dot), lower case.
fn top_level(name: &str) -> String {
    let label = name.trim_end_matches('.').rsplit('.').next().unwrap();
    format!("{}.", label.to_ascii_lowercase())
}

/// A table holding names under two top-level zones, com. and edu.
const TWO_ZONES: &str = "google.com 10.1.0.1 A\nwww.princeton.edu 10.1.0.2 A\n";

#[test]
fn the_apex_of_each_top_level_zone_has_a_soa_and_an_ns() {
    let ts = DnsTs::start_with(
        TWO_ZONES,
        DnsOptions {
            ttl: 120,
            ..DnsOptions::default()
        },
    );
    for zone in ["com.", "EDU."] {
        for via_tcp in [false, true] {
            let ask = |q: &Message| {
                if via_tcp {
                    tcp_ask(ts.addr, q)
                } else {
                    udp_ask(ts.addr, q)
                }
            };
            let answer = ask(&query(1, zone, RecordType::SOA));
            assert_eq!(
                answer.metadata.response_code,
                ResponseCode::NoError,
                "{zone}"
            );
            assert!(answer.metadata.authoritative, "{zone}");
            let [record] = &answer.answers[..] else {
                panic!("{zone}: {:?}", answer.answers)
            };
            assert_eq!((record.name.to_ascii().as_str(), record.ttl), (zone, 120));
            let RData::SOA(soa) = &record.data else {
                panic!("{record:?}")
            };
            assert_eq!(soa.mname.to_ascii(), "ts.dnslb.invalid.");
            assert_eq!(
                soa.rname.to_ascii().to_ascii_lowercase(),
                format!("hostmaster.{}", zone.to_ascii_lowercase())
            );
            assert_eq!((soa.serial, soa.minimum), (1, 120));

            let answer = ask(&query(2, zone, RecordType::NS));
            assert!(answer.metadata.authoritative);
            let [record] = &answer.answers[..] else {
                panic!("{zone}: {:?}", answer.answers)
            };
            assert_eq!(
                record.data,
                RData::NS(NS(Name::from_ascii("ts.dnslb.invalid.").unwrap()))
            );

            // Another type at the apex: NODATA with the SOA.
            let answer = ask(&query(3, zone, RecordType::A));
            assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
            assert!(answer.answers.is_empty());
            assert_eq!(authority_soa(&answer).0, zone);
        }
    }
    let any = udp_ask(ts.addr, &query(4, "com.", RecordType::ANY));
    let types: Vec<_> = any.answers.iter().map(|r| r.record_type()).collect();
    assert_eq!(types, [RecordType::SOA, RecordType::NS]);
}

#[test]
fn a_missing_name_in_a_zone_served_is_nxdomain_with_the_zones_soa() {
    let ts = DnsTs::start_with(
        TWO_ZONES,
        DnsOptions {
            ttl: 90,
            ..DnsOptions::default()
        },
    );
    for name in [
        "nothere.com.",
        "cs.princeton.edu.",
        "x.www.princeton.edu.",
        "a.b.c.COM.",
    ] {
        let answer = udp_ask(ts.addr, &query(5, name, RecordType::A));
        assert_eq!(
            answer.metadata.response_code,
            ResponseCode::NXDomain,
            "{name}"
        );
        assert!(answer.metadata.authoritative, "{name}");
        assert!(answer.answers.is_empty(), "{name}");
        let (owner, ttl, minimum) = authority_soa(&answer);
        assert_eq!(owner.to_ascii_lowercase(), top_level(name), "{name}");
        assert_eq!(ttl, minimum.min(90), "the negative TTL (RFC 2308 §5)");
    }
}

#[test]
fn a_name_without_records_of_the_type_asked_is_nodata_with_the_soa() {
    let ts = DnsTs::start(TWO_ZONES);
    // A name with an A record asked for another type, and a name that
    // exists only because a table name lies below it (RFC 8020: it must
    // not be NXDOMAIN, or www.princeton.edu would be denied too).
    for (name, qtype) in [
        ("google.com.", RecordType::AAAA),
        ("www.princeton.edu.", RecordType::MX),
        ("princeton.edu.", RecordType::A),
        ("Princeton.EDU.", RecordType::NS),
    ] {
        let answer = udp_ask(ts.addr, &query(6, name, qtype));
        assert_eq!(
            answer.metadata.response_code,
            ResponseCode::NoError,
            "{name}"
        );
        assert!(
            answer.metadata.authoritative && answer.answers.is_empty(),
            "{name}"
        );
        let owner = authority_soa(&answer).0;
        assert_eq!(owner.to_ascii_lowercase(), top_level(name), "{name}");
    }
}

#[test]
fn the_root_and_names_under_zones_not_served_are_refused() {
    let ts = DnsTs::start(TWO_ZONES);
    for (name, qtype) in [
        (".", RecordType::NS),
        (".", RecordType::SOA),
        ("org.", RecordType::SOA),
        ("amazon.org.", RecordType::A),
        ("a.root-servers.net.", RecordType::A),
        ("google.site.", RecordType::A),
    ] {
        for answer in [
            udp_ask(ts.addr, &query(7, name, qtype)),
            tcp_ask(ts.addr, &query(7, name, qtype)),
        ] {
            assert_eq!(
                answer.metadata.response_code,
                ResponseCode::Refused,
                "{name}"
            );
            assert!(!answer.metadata.authoritative, "{name}");
            assert!(
                answer.answers.is_empty() && answer.authorities.is_empty(),
                "{name}"
            );
            assert_eq!(answer.queries[0].name().to_ascii(), name);
        }
    }
}

#[test]
fn other_classes_are_refused() {
    let ts = DnsTs::start(TABLE);
    for class in [DNSClass::CH, DNSClass::HS] {
        for name in ["version.bind.", "www.example.com."] {
            let mut q = query(9, name, RecordType::TXT);
            q.queries[0].set_query_class(class);
            let answer = udp_ask(ts.addr, &q);
            assert_eq!(
                answer.metadata.response_code,
                ResponseCode::Refused,
                "{name} {class}"
            );
            assert!(answer.answers.is_empty() && !answer.metadata.authoritative);
        }
    }
}

#[test]
fn zone_transfers_are_refused() {
    // dig's `com AXFR` got com.'s SOA as a one-record "transfer" (NODATA)
    // and reported it as failed; NSD and BIND refuse a transfer they do not
    // provide.
    let ts = DnsTs::start(TABLE);
    for qtype in [RecordType::AXFR, RecordType::IXFR] {
        for name in ["com.", "www.example.com."] {
            let answer = tcp_ask(ts.addr, &query(8, name, qtype));
            assert_eq!(
                answer.metadata.response_code,
                ResponseCode::Refused,
                "{name} {qtype}"
            );
            assert!(answer.answers.is_empty() && answer.authorities.is_empty());
            assert!(!answer.metadata.authoritative);
        }
    }
    // The zone's SOA is still there.
    let soa = tcp_ask(ts.addr, &query(9, "com.", RecordType::SOA));
    assert_eq!(soa.metadata.response_code, ResponseCode::NoError);
    assert_eq!(soa.answers.len(), 1);
}

#[test]
fn other_opcodes_are_not_implemented() {
    let ts = DnsTs::start(TABLE);
    for op in [OpCode::Status, OpCode::Notify, OpCode::Update] {
        let mut q = query(5, "www.example.com.", RecordType::A);
        q.metadata.op_code = op;
        let answer = udp_ask(ts.addr, &q);
        assert_eq!(answer.metadata.response_code, ResponseCode::NotImp);
        assert_eq!((answer.metadata.id, answer.metadata.op_code), (5, op));
        assert!(answer.answers.is_empty());
    }
}

/// A header with `id`, RD set and `qdcount` questions, the other counts in `counts`.
fn header(id: u16, qdcount: u16, counts: [u16; 3]) -> Vec<u8> {
    let mut h = id.to_be_bytes().to_vec();
    h.extend_from_slice(&[0x01, 0x00]);
    for n in [qdcount, counts[0], counts[1], counts[2]] {
        h.extend_from_slice(&n.to_be_bytes());
    }
    h
}

#[test]
fn malformed_queries_get_formerr_with_their_id() {
    let ts = DnsTs::start(TABLE);
    let question = b"\x03www\x07example\x03com\x00\x00\x01\x00\x01";
    let long_name: Vec<u8> = (0..5)
        .flat_map(|_| {
            let mut label = vec![63];
            label.extend([b'a'; 63]);
            label
        })
        .chain([0, 0, 1, 0, 1])
        .collect();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("no question", header(1, 0, [0; 3])),
        (
            "two questions",
            [header(2, 2, [0; 3]), question.repeat(2)].concat(),
        ),
        (
            "question cut short",
            [header(3, 1, [0; 3]), question[..10].to_vec()].concat(),
        ),
        (
            "forward pointer",
            [
                header(4, 1, [0; 3]),
                b"\xc0\x0e\x00\x01\x00\x01\x00".to_vec(),
            ]
            .concat(),
        ),
        (
            "pointer to itself",
            [header(5, 1, [0; 3]), b"\xc0\x0c\x00\x01\x00\x01".to_vec()].concat(),
        ),
        (
            "reserved label type",
            [header(6, 1, [0; 3]), b"\x41a\x00\x00\x01\x00\x01".to_vec()].concat(),
        ),
        (
            "name over 255 bytes",
            [header(7, 1, [0; 3]), long_name].concat(),
        ),
        (
            "answer count beyond the end",
            [header(8, 1, [1, 0, 0]), question.to_vec()].concat(),
        ),
    ];
    for (what, bytes) in cases {
        let raw = udp_raw(ts.addr, &bytes);
        let answer = Message::from_vec(&raw).unwrap();
        assert_eq!(
            answer.metadata.response_code,
            ResponseCode::FormErr,
            "{what}"
        );
        assert_eq!(
            answer.metadata.id,
            u16::from_be_bytes([bytes[0], bytes[1]]),
            "{what}"
        );
        assert!(answer.metadata.recursion_desired, "{what}");
        // hickory must reject the same bytes.
        assert!(
            Message::from_vec(&bytes).is_err() || what.contains("question"),
            "{what}"
        );
    }
}

#[test]
fn short_datagrams_and_responses_are_dropped() {
    let ts = DnsTs::start(TABLE);
    let socket = udp_client();
    let mut response = query(1, "www.example.com.", RecordType::A);
    response.metadata.message_type = hickory_proto::op::MessageType::Response;
    socket.send_to(&[0; 11], ts.addr).unwrap();
    socket
        .send_to(&response.to_vec().unwrap(), ts.addr)
        .unwrap();
    socket.send_to(&[], ts.addr).unwrap();
    let asked = query(2, "www.example.com.", RecordType::A);
    socket.send_to(&asked.to_vec().unwrap(), ts.addr).unwrap();
    // Datagrams are answered in order: had any of the first three been
    // answered, that answer would come first.
    let mut buf = vec![0; 65_536];
    let (len, _) = socket.recv_from(&mut buf).unwrap();
    assert_eq!(Message::from_vec(&buf[..len]).unwrap().metadata.id, 2);
}

#[test]
fn an_opt_is_answered_with_an_opt_of_version_0_and_1232_bytes() {
    let ts = DnsTs::start(TABLE);
    for dnssec_ok in [true, false] {
        let q = with_edns(
            query(3, "www.example.com.", RecordType::A),
            4096,
            0,
            dnssec_ok,
        );
        let answer = udp_ask(ts.addr, &q);
        let edns = answer.edns.as_ref().expect("an OPT in the answer");
        assert_eq!((edns.version(), edns.max_payload()), (0, 1232));
        assert_eq!(edns.flags().dnssec_ok, dnssec_ok);
        assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
        assert_eq!(addresses(&answer), [Ipv4Addr::new(10, 0, 0, 1)]);
    }
}

#[test]
fn an_unknown_edns_version_gets_badvers() {
    let ts = DnsTs::start(TABLE);
    let q = with_edns(query(4, "www.example.com.", RecordType::A), 1232, 1, false);
    let raw = udp_raw(ts.addr, &q.to_vec().unwrap());
    let answer = Message::from_vec(&raw).unwrap();
    assert_eq!(rcode(&answer), 16);
    assert_eq!(answer.edns.as_ref().unwrap().version(), 0);
    assert_eq!(answer.edns.as_ref().unwrap().rcode_high(), 1);
    assert_eq!(raw[3] & 0x0F, 0, "the header holds BADVERS's low bits, 0");
    assert!(answer.answers.is_empty());
}

#[test]
fn two_opts_are_a_format_error() {
    let ts = DnsTs::start(TABLE);
    let q = with_edns(query(6, "www.example.com.", RecordType::A), 1232, 0, false);
    let mut bytes = q.to_vec().unwrap();
    let opt = bytes[bytes.len() - 11..].to_vec();
    bytes.extend_from_slice(&opt);
    bytes[11] = 2;
    assert!(Message::from_vec(&bytes).is_err(), "hickory refuses it too");
    let answer = Message::from_vec(&udp_raw(ts.addr, &bytes)).unwrap();
    assert_eq!(answer.metadata.response_code, ResponseCode::FormErr);
    assert_eq!(answer.metadata.id, 6);
}

/// A table with `n` addresses for big.example.com.
fn big_table(n: u8) -> String {
    (1..=n)
        .map(|i| format!("big.example.com 10.9.0.{i} A\n"))
        .collect()
}

#[test]
fn a_big_rrset_is_truncated_over_udp_and_whole_over_tcp() {
    // 100 A records of 16 bytes each: 1600 bytes of answers.
    let ts = DnsTs::start(&big_table(100));
    let plain = udp_raw(
        ts.addr,
        &query(1, "big.example.com.", RecordType::A)
            .to_vec()
            .unwrap(),
    );
    assert!(plain.len() <= 512, "{}", plain.len());
    let plain = Message::from_vec(&plain).unwrap();
    assert!(plain.metadata.truncation);
    assert!(plain.answers.is_empty(), "whole RRsets or nothing");

    let q = with_edns(query(2, "big.example.com.", RecordType::A), 1232, 0, false);
    let raw = udp_raw(ts.addr, &q.to_vec().unwrap());
    assert!(raw.len() <= 1232);
    let small = Message::from_vec(&raw).unwrap();
    assert!(small.metadata.truncation && small.answers.is_empty());
    assert!(small.edns.is_some(), "the OPT stays in a truncated answer");

    // However large the client's size, a UDP answer is at most 1232 bytes
    // (RFC 9715): a 30-byte query draws no 64 KB datagram.
    for payload in [4096, 65_535] {
        let q = with_edns(
            query(3, "big.example.com.", RecordType::A),
            payload,
            0,
            false,
        );
        let raw = udp_raw(ts.addr, &q.to_vec().unwrap());
        assert!(raw.len() <= 1232, "{payload}: {} bytes", raw.len());
        let capped = Message::from_vec(&raw).unwrap();
        assert!(capped.metadata.truncation && capped.answers.is_empty());
    }
    let fits = DnsTs::start(&big_table(60));
    let q = with_edns(
        query(3, "big.example.com.", RecordType::A),
        65_535,
        0,
        false,
    );
    let roomy = udp_ask(fits.addr, &q);
    assert!(!roomy.metadata.truncation);
    assert_eq!(roomy.answers.len(), 60);

    let mut stream = tcp_connect(ts.addr);
    stream
        .write_all(&framed(&query(4, "big.example.com.", RecordType::A)))
        .unwrap();
    let whole = tcp_read(&mut stream);
    assert!(!whole.metadata.truncation);
    assert_eq!(whole.answers.len(), 100);
    assert_eq!(whole.metadata.id, 4);
}

#[test]
fn udp_answers_past_the_rate_limit_are_dropped_and_every_second_one_slips() {
    let ts = DnsTs::start_with(
        TABLE,
        DnsOptions {
            rrl: Some(RateLimit { rate: 2, slip: 2 }),
            ..DnsOptions::default()
        },
    );
    let flooded = udp_client();
    for id in 0..10 {
        let q = query(id, "www.example.com.", RecordType::A);
        flooded.send_to(&q.to_vec().unwrap(), ts.addr).unwrap();
    }
    // Another /24 has its own bucket. The TS answers datagrams in turn, so
    // once this answer is in, the ten answers are in too (loopback).
    let other = std::net::UdpSocket::bind("127.0.1.1:0").unwrap();
    other.set_read_timeout(Some(BOUND)).unwrap();
    other
        .send_to(
            &query(99, "www.example.com.", RecordType::A)
                .to_vec()
                .unwrap(),
            ts.addr,
        )
        .unwrap();
    assert_eq!(
        Message::from_vec(&udp_recv(&other)).unwrap().metadata.id,
        99
    );
    flooded.set_nonblocking(true).unwrap();
    let mut buf = vec![0; 65_536];
    let (mut whole, mut truncated) = (0, 0);
    while let Ok((len, _)) = flooded.recv_from(&mut buf) {
        let answer = Message::from_vec(&buf[..len]).unwrap();
        assert!(answer.metadata.id < 10);
        assert_eq!(answer.queries[0].name().to_ascii(), "www.example.com.");
        if answer.metadata.truncation {
            assert!(answer.answers.is_empty() && answer.additionals.is_empty());
            truncated += 1;
        } else {
            assert_eq!(addresses(&answer), [Ipv4Addr::new(10, 0, 0, 1)]);
            whole += 1;
        }
    }
    // Two at once (a second's worth), a third should half a second have
    // passed; of the other seven or eight, every second one slips.
    assert!((2..=3).contains(&whole), "{whole} whole answers");
    assert!(
        (3..=4).contains(&truncated),
        "{truncated} truncated answers"
    );
}

#[test]
fn the_binary_says_its_zones_and_rate_limit_at_start_and_what_it_dropped_at_stop() {
    let table = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(table.path(), TABLE).unwrap();
    let path = table.path().to_str().unwrap();
    let (ts, addr, log) =
        spawn_dns_bin(&["ts", "0", "--table", path, "--rrl", "5", "--rrl-slip", "0"]);
    let zones = support::line_containing(&log, "authoritative for");
    assert!(
        zones.ends_with("ts dns: authoritative for com. (the top-level zones of the table's names); the root and other zones are REFUSED"),
        "{zones}"
    );
    let start = support::line_containing(&log, "--rrl");
    assert!(
        start.contains(
            "at most 5 UDP answers per second per /24 (IPv4) or /56 (IPv6); none past it"
        ),
        "{start}"
    );
    let client = udp_client();
    for id in 0..7 {
        let q = query(id, "www.example.com.", RecordType::A);
        client.send_to(&q.to_vec().unwrap(), addr).unwrap();
    }
    // Another /24's answer comes after the seven were dealt with.
    let other = std::net::UdpSocket::bind("127.0.1.1:0").unwrap();
    other.set_read_timeout(Some(BOUND)).unwrap();
    let q = query(99, "www.example.com.", RecordType::A);
    other.send_to(&q.to_vec().unwrap(), addr).unwrap();
    assert_eq!(
        Message::from_vec(&udp_recv(&other)).unwrap().metadata.id,
        99
    );
    ts.signal(libc::SIGINT);
    let stop = support::line_containing(&log, "rate limit:");
    let dropped: u32 = stop
        .split("rate limit: ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{stop}"));
    assert!((1..=2).contains(&dropped), "{stop}");
    assert!(
        stop.ends_with("UDP answers dropped, 0 sent truncated"),
        "{stop}"
    );
    assert!(ts.wait().success());
}

#[test]
fn tcp_queries_split_anywhere_and_pipelined_are_answered_in_order() {
    let ts = DnsTs::start(TABLE);
    let mut stream = tcp_connect(ts.addr);
    let names = [
        "www.example.com.",
        "nothere.example.com.",
        "rr.example.com.",
    ];
    let bytes: Vec<u8> = names
        .iter()
        .enumerate()
        .flat_map(|(i, name)| framed(&query(100 + i as u16, name, RecordType::A)))
        .collect();
    // One byte per write, with Nagle off: the length prefixes arrive split.
    for byte in &bytes[..5] {
        stream.write_all(&[*byte]).unwrap();
    }
    stream.write_all(&bytes[5..]).unwrap();
    let answers: Vec<Message> = (0..3).map(|_| tcp_read(&mut stream)).collect();
    let ids: Vec<u16> = answers.iter().map(|a| a.metadata.id).collect();
    assert_eq!(ids, [100, 101, 102]);
    assert_eq!(answers[1].metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(answers[2].answers.len(), 3);
    // The connection stays open for more.
    stream
        .write_all(&framed(&query(103, "www.example.com.", RecordType::A)))
        .unwrap();
    assert_eq!(tcp_read(&mut stream).metadata.id, 103);
}

#[test]
fn the_question_comes_back_with_its_case() {
    let ts = DnsTs::start(TABLE);
    let q = query(11, "WwW.ExAmPlE.cOm.", RecordType::A);
    let sent = q.to_vec().unwrap();
    let raw = udp_raw(ts.addr, &sent);
    let question_len = sent.len() - 12;
    assert_eq!(
        raw[12..12 + question_len],
        sent[12..],
        "question echoed byte for byte"
    );
    let answer = Message::from_vec(&raw).unwrap();
    assert_eq!(answer.queries[0].name().to_ascii(), "WwW.ExAmPlE.cOm.");
    assert_eq!(answer.answers[0].name.to_ascii(), "WwW.ExAmPlE.cOm.");
    assert_eq!(addresses(&answer), [Ipv4Addr::new(10, 0, 0, 1)]);
}

#[test]
fn an_idle_tcp_connection_is_closed() {
    let ts = DnsTs::start_with(
        TABLE,
        DnsOptions {
            tcp_idle: ms(200),
            ..DnsOptions::default()
        },
    );
    let mut stream = tcp_connect(ts.addr);
    let start = Instant::now();
    let mut buf = [0; 1];
    assert_eq!(stream.read(&mut buf).unwrap(), 0, "closed by the server");
    assert!(start.elapsed() < BOUND);
}

#[test]
fn tcp_connections_over_the_limit_are_closed() {
    let ts = DnsTs::start_with(
        TABLE,
        DnsOptions {
            max_connections: 1,
            ..DnsOptions::default()
        },
    );
    let mut first = tcp_connect(ts.addr);
    first
        .write_all(&framed(&query(1, "www.example.com.", RecordType::A)))
        .unwrap();
    assert_eq!(tcp_read(&mut first).metadata.id, 1);
    let mut second = tcp_connect(ts.addr);
    let _ = second.write_all(&framed(&query(2, "www.example.com.", RecordType::A)));
    let mut buf = [0; 1];
    assert!(matches!(second.read(&mut buf), Ok(0) | Err(_)));
    // UDP is not limited by TCP connections.
    assert_eq!(
        udp_ask(ts.addr, &query(3, "www.example.com.", RecordType::A))
            .metadata
            .id,
        3
    );
}

#[test]
fn shutdown_ends_udp_and_open_tcp_connections() {
    let mut ts = DnsTs::start(TABLE);
    let mut idle = tcp_connect(ts.addr);
    idle.write_all(&framed(&query(1, "www.example.com.", RecordType::A)))
        .unwrap();
    assert_eq!(tcp_read(&mut idle).metadata.id, 1);
    let start = Instant::now();
    ts.shutdown.trigger();
    ts.thread.take().unwrap().join().unwrap();
    assert!(start.elapsed() < Duration::from_secs(5));
    let mut buf = [0; 1];
    assert!(matches!(idle.read(&mut buf), Ok(0) | Err(_)));
}

#[test]
fn a_given_port_taken_for_tcp_is_an_error_naming_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let error = Sockets::bind(&[addr]).err().expect("the TCP port is taken");
    assert_eq!(error.kind(), std::io::ErrorKind::AddrInUse);
}

#[test]
fn the_binary_serves_dns_beside_the_course_protocol() {
    let table = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(table.path(), TABLE).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dnslb"))
        .args([
            "ts",
            "0",
            "--bind",
            "127.0.0.1",
            "--dns-port",
            "0",
            "--ttl",
            "42",
        ])
        .arg("--table")
        .arg(table.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let course = lines.next().unwrap().unwrap();
    let dns = lines.next().unwrap().unwrap();
    assert!(course.starts_with("listening on 127.0.0.1:"), "{course}");
    let addr: SocketAddr = dns
        .strip_prefix("listening on ")
        .and_then(|rest| rest.strip_suffix(" (dns udp+tcp)"))
        .unwrap_or_else(|| panic!("{dns}"))
        .parse()
        .unwrap();
    let socket = udp_client();
    socket
        .send_to(
            &query(1, "rr.example.com.", RecordType::A).to_vec().unwrap(),
            addr,
        )
        .unwrap();
    let mut buf = vec![0; 65_536];
    let (len, _) = socket.recv_from(&mut buf).unwrap();
    let answer = Message::from_vec(&buf[..len]).unwrap();
    assert_eq!(answer.answers.len(), 3);
    assert_eq!(answer.answers[0].ttl, 42);
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(BOUND)).unwrap();
    tcp.write_all(&framed(&query(2, "www.example.com.", RecordType::A)))
        .unwrap();
    assert_eq!(addresses(&tcp_read(&mut tcp)), [Ipv4Addr::new(10, 0, 0, 1)]);
    let server = support::Running { child, addr };
    server.signal(libc::SIGTERM);
    let status = server.wait();
    assert!(status.success(), "{status}");
}

#[test]
fn dns_sent_to_the_course_port_is_closed_with_a_pointer_to_the_dns_port() {
    let table = support::data("PROJ2-DNSTS1.txt");
    let table = table.to_str().unwrap();
    let (ts, dns, log) = spawn_dns_bin(&["ts", "0", "--table", table]);
    let hint = format!("DNS is served on --dns-port {}", dns.port());
    dns_to_the_course_port_is_closed(ts.addr, &log, &hint);
    // Text queries are answered as ever.
    let mut client = support::LineClient::connect(ts.addr);
    assert_eq!(client.ask("amazon.org"), "amazon.org 94.5.6.7 A");
    drop(client);
    ts.signal(libc::SIGINT);
    let counts = support::line_containing(&log, "ts: queries ");
    assert!(
        counts.contains("queries 3 = answered 1 + not in table 0 + invalid 2;"),
        "{counts}"
    );
    // Without a DNS port, the line says how to serve DNS.
    let (ts, log) =
        support::spawn_server_bin_stderr(&["ts", "0", "--bind", "127.0.0.1", "--table", table]);
    dns_to_the_course_port_is_closed(ts.addr, &log, "run with --dns-port to serve DNS");
}
