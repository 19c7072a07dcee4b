//! What an LS with `--ts-protocol dns` passes on from its TSes, and what
//! its cache keeps, through hickory-proto: fake authoritative TSes that
//! send SOAs, referrals, dangling CNAMEs, CNAMEs into other zones,
//! authority and additional records and TTLs with the top bit set; and the
//! course sample asked twice through the cache.

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};

use dnslb::ls::{LsOptions, TsProtocol};
use dnslb::ts::TsOptions;
use support::dns::*;
use support::*;

/// An LS speaking DNS to `ts`, with a cache of 100 entries.
fn caching_ls(ts: &[SocketAddr]) -> DnsLs {
    DnsLs::start(ts, |o: &mut LsOptions| {
        o.ts_protocol = TsProtocol::Dns;
        o.cache = 100;
    })
}

fn count(asked: &AtomicUsize) -> usize {
    asked.load(Ordering::SeqCst)
}

/// The zone `zone.test`: `www` has an address, `alias` is a CNAME to the
/// missing `gone`, every other name is missing (NXDOMAIN) and `www` has no
/// AAAA (NODATA); each negative answer carries the zone's SOA, TTL 3600,
/// MINIMUM 45.
fn zone_test(query: &Message) -> Message {
    let soa = || soa_record("zone.test.", 3600, 45);
    let name = asked(query);
    let qtype = query.queries[0].query_type();
    match (name.as_str(), qtype) {
        ("www.zone.test", RecordType::A) => reply_to(query, ResponseCode::NoError, |m| {
            m.add_answer(a_record("www.zone.test.", 60, Ipv4Addr::new(10, 7, 0, 1)));
        }),
        ("www.zone.test", _) => reply_to(query, ResponseCode::NoError, |m| {
            m.add_authority(soa());
        }),
        ("alias.zone.test", _) => reply_to(query, ResponseCode::NXDomain, |m| {
            m.add_answer(cname_record("alias.zone.test.", 60, "gone.zone.test."));
            m.add_authority(soa());
        }),
        _ => reply_to(query, ResponseCode::NXDomain, |m| {
            m.add_authority(soa());
        }),
    }
}

fn soa_of(message: &Message) -> (u32, u32) {
    match message.authorities.as_slice() {
        [record] => match &record.data {
            RData::SOA(soa) => (record.ttl, soa.minimum),
            other => panic!("not a SOA: {other:?}"),
        },
        other => panic!("not one SOA: {other:?}"),
    }
}

#[test]
fn smoke() {
    let (zone, _) = fake_authority(zone_test);
    let ls = caching_ls(&[zone]);
    let answer = udp_ask(ls.dns, &query(1, "www.zone.test.", RecordType::A));
    assert_eq!(addresses(&answer), [Ipv4Addr::new(10, 7, 0, 1)]);
}

#[test]
fn nxdomain_and_nodata_carry_the_backends_soa_and_the_cache_counts_it_down() {
    let (zone, asked) = fake_authority(zone_test);
    // A second TS that serves nothing: its REFUSED is "not mine".
    let ls = caching_ls(&[zone, rcode_ts(ResponseCode::Refused)]);
    for (id, name, qtype, code) in [
        (
            1,
            "nothere.zone.test.",
            RecordType::A,
            ResponseCode::NXDomain,
        ),
        (2, "www.zone.test.", RecordType::AAAA, ResponseCode::NoError),
    ] {
        let first = udp_ask(ls.dns, &query(id, name, qtype));
        assert_eq!(first.metadata.response_code, code, "{name}");
        assert!(first.answers.is_empty());
        assert_eq!(soa_of(&first), (3600, 45), "relayed as sent: {name}");
        let before = count(&asked);
        let again = tcp_ask(ls.dns, &query(id + 10, name, qtype));
        assert_eq!(count(&asked), before, "{name} answered from the cache");
        assert_eq!(again.metadata.response_code, code);
        // The cache keeps it for min(TTL, MINIMUM) and counts that down.
        let (ttl, minimum) = soa_of(&again);
        assert!((44..=45).contains(&ttl), "{ttl}");
        assert_eq!(minimum, 45);
    }
}

#[test]
fn a_cname_that_leads_nowhere_keeps_its_cname() {
    let (zone, _) = fake_authority(zone_test);
    let ls = caching_ls(&[zone]);
    for id in [1, 2] {
        // The second from the cache.
        let answer = udp_ask(ls.dns, &query(id, "alias.zone.test.", RecordType::A));
        assert_eq!(answer.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(answer.answers.len(), 1, "{answer:?}");
        let RData::CNAME(target) = &answer.answers[0].data else {
            panic!("{answer:?}")
        };
        assert_eq!(target.0.to_ascii(), "gone.zone.test.");
        assert_eq!(soa_of(&answer).1, 45);
    }
    assert_eq!(
        LineClient::connect(ls.course()).ask("alias.zone.test"),
        "alias.zone.test - Error:HOST NOT FOUND"
    );
}

/// A parent zone `example.test` that delegates `sub.example.test` to
/// `ns1.sub.example.test`, with glue (as NSD answers without AA).
fn delegating(query: &Message) -> Message {
    let mut reply = reply_to(query, ResponseCode::NoError, |m| {
        m.add_authority(ns_record(
            "sub.example.test.",
            3600,
            "ns1.sub.example.test.",
        ));
        m.add_additional(a_record(
            "ns1.sub.example.test.",
            3600,
            Ipv4Addr::new(10, 8, 0, 53),
        ));
    });
    reply.metadata.authoritative = false;
    reply
}

#[test]
fn a_referral_is_passed_on_as_a_referral_and_counts_as_an_answer() {
    let (parent, asked) = fake_authority(delegating);
    let ls = caching_ls(&[parent, rcode_ts(ResponseCode::Refused)]);
    let q = query(7, "www.sub.example.test.", RecordType::A);
    for answer in [udp_ask(ls.dns, &q), tcp_ask(ls.dns, &q)] {
        assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
        assert!(!answer.metadata.authoritative);
        assert!(answer.answers.is_empty());
        let [ns] = answer.authorities.as_slice() else {
            panic!("{answer:?}")
        };
        assert!(matches!(&ns.data, RData::NS(n) if n.0.to_ascii() == "ns1.sub.example.test."));
        assert_eq!(
            addresses_in(&answer.additionals),
            [Ipv4Addr::new(10, 8, 0, 53)]
        );
    }
    assert_eq!(count(&asked), 1, "the second answer came from the cache");
}

/// The A addresses among `records`.
fn addresses_in(records: &[hickory_proto::rr::Record]) -> Vec<Ipv4Addr> {
    records
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

#[test]
fn positive_answers_carry_the_zones_ns_and_the_addresses_they_name() {
    let (ts, _) = fake_authority(|query| {
        reply_to(query, ResponseCode::NoError, |m| {
            m.add_answer(mx_record("mx.test.", 300, "mail.mx.test."));
            m.add_authority(ns_record("mx.test.", 3600, "ns1.mx.test."));
            m.add_additional(a_record("mail.mx.test.", 300, Ipv4Addr::new(10, 9, 0, 25)));
            m.add_additional(a_record("ns1.mx.test.", 300, Ipv4Addr::new(10, 9, 0, 53)));
            // Not named by any record above: not passed on.
            m.add_additional(a_record("google.com.", 300, Ipv4Addr::new(6, 6, 6, 6)));
        })
    });
    let ls = caching_ls(&[ts]);
    for id in [1, 2] {
        let answer = tcp_ask(ls.dns, &query(id, "mx.test.", RecordType::MX));
        assert_eq!(answer.answers.len(), 1);
        assert_eq!(answer.authorities.len(), 1, "{answer:?}");
        assert_eq!(
            addresses_in(&answer.additionals),
            [Ipv4Addr::new(10, 9, 0, 25), Ipv4Addr::new(10, 9, 0, 53)]
        );
    }
}

#[test]
fn badvers_echoes_the_question() {
    let (ts, _) = fake_authority(zone_test);
    let ls = caching_ls(&[ts]);
    let q = with_edns(query(9, "www.zone.test.", RecordType::A), 1232, 1, false);
    let answer = udp_ask(ls.dns, &q);
    // Extended rcode 16 (hickory names it BADSIG, which shares the value).
    assert_eq!(rcode(&answer), dnslb::dns::Rcode::BADVERS.0);
    assert_eq!(answer.queries, q.queries);
}

/// A TS that holds only `mine`, answering NXDOMAIN with a SOA for every
/// other name.
fn holding(mine: &'static str) -> impl Fn(&Message) -> Message + Send + Sync + 'static {
    move |query| {
        if asked(query) == mine {
            reply_to(query, ResponseCode::NoError, |m| {
                m.add_answer(a_record(
                    &format!("{mine}."),
                    60,
                    Ipv4Addr::new(10, 1, 1, 1),
                ));
            })
        } else {
            reply_to(query, ResponseCode::NXDomain, |m| {
                m.add_authority(soa_record("test.", 60, 60));
            })
        }
    }
}

#[test]
fn a_miss_formed_while_a_ts_was_down_or_failing_is_answered_but_not_cached() {
    // Both TSes heard: the miss is kept.
    let (ts1, _) = fake_authority(holding("one.test"));
    let (ts2, asked2) = fake_authority(holding("two.test"));
    let ls = caching_ls(&[ts1, ts2]);
    for id in [1, 2] {
        let answer = udp_ask(ls.dns, &query(id, "none.test.", RecordType::A));
        assert_eq!(answer.metadata.response_code, ResponseCode::NXDomain);
    }
    assert_eq!(count(&asked2), 1, "kept: every TS said NXDOMAIN");
    // The TS that holds the name is down, or fails: the others' NXDOMAIN
    // is answered, and asked again next time.
    for ts1 in [closed_port(), rcode_ts(ResponseCode::ServFail)] {
        let (ts2, asked2) = fake_authority(holding("two.test"));
        let ls = caching_ls(&[ts1, ts2]);
        for id in [1, 2] {
            let answer = udp_ask(ls.dns, &query(id, "one.test.", RecordType::A));
            assert_eq!(answer.metadata.response_code, ResponseCode::NXDomain);
            assert_eq!(soa_of(&answer).1, 60);
        }
        assert_eq!(count(&asked2), 2, "not kept while {ts1} could not say");
        // Course clients too.
        let line = LineClient::connect(ls.course()).ask("one.test");
        assert_eq!(line, "one.test - Error:HOST NOT FOUND");
        assert_eq!(count(&asked2), 3);
    }
}

/// A TS that answers `cn.evil.test` with a CNAME to `google.com` and an
/// address for google.com, and `cn.good.test` with a CNAME inside its own
/// zone and the target's address; REFUSED for every other name.
fn evil(query: &Message) -> Message {
    match asked(query).as_str() {
        "cn.evil.test" => reply_to(query, ResponseCode::NoError, |m| {
            m.add_answer(cname_record("cn.evil.test.", 300, "google.com."));
            m.add_answer(a_record("google.com.", 300, Ipv4Addr::new(6, 6, 6, 6)));
        }),
        "cn.good.test" => reply_to(query, ResponseCode::NoError, |m| {
            m.add_answer(cname_record("cn.good.test.", 300, "www.good.test."));
            m.add_answer(a_record("www.good.test.", 300, Ipv4Addr::new(10, 5, 5, 5)));
        }),
        _ => reply_to(query, ResponseCode::Refused, |_| {}),
    }
}

#[test]
fn a_cname_is_followed_only_inside_the_zone_that_answered() {
    let (evil, _) = fake_authority(evil);
    let honest = DnsTs::start("google.com 142.250.1.1 A\n");
    let ls = caching_ls(&[evil, honest.addr]);
    // Twice: the second from the cache, byte for byte the same.
    for _ in 0..2 {
        let mut client = LineClient::connect(ls.course());
        assert_eq!(
            client.ask("cn.evil.test"),
            "cn.evil.test - Error:HOST NOT FOUND"
        );
        assert_eq!(client.ask("cn.good.test"), "cn.good.test 10.5.5.5 A");
        assert_eq!(client.ask("google.com"), "google.com 142.250.1.1 A");
    }
    let answer = udp_ask(ls.dns, &query(3, "cn.evil.test.", RecordType::A));
    assert_eq!(answer.answers.len(), 1, "only the CNAME: {answer:?}");
    assert!(matches!(answer.answers[0].data, RData::CNAME(_)));
    let answer = udp_ask(ls.dns, &query(4, "google.com.", RecordType::A));
    assert_eq!(addresses(&answer), [Ipv4Addr::new(142, 250, 1, 1)]);
}

#[test]
fn ttls_with_the_top_bit_set_are_relayed_as_zero_and_not_cached() {
    let (ts, asked) = fake_authority(|query| {
        reply_to(query, ResponseCode::NoError, |m| {
            m.add_answer(a_record(
                "big.test.",
                0x8000_0000,
                Ipv4Addr::new(10, 0, 0, 8),
            ));
        })
    });
    let ls = caching_ls(&[ts]);
    for id in [1, 2] {
        let answer = udp_ask(ls.dns, &query(id, "big.test.", RecordType::A));
        assert_eq!(addresses(&answer), [Ipv4Addr::new(10, 0, 0, 8)]);
        assert_eq!(answer.answers[0].ttl, 0);
    }
    assert_eq!(count(&asked), 2, "a TTL of 0 is not cached");
}

#[test]
fn the_course_sample_twice_through_the_cache_is_byte_identical() {
    let table = |n| std::fs::read_to_string(data(&format!("PROJ2-DNSTS{n}.txt"))).unwrap();
    let options = TsOptions {
        answer_misses: true,
        ..TsOptions::default()
    };
    let ts1 = start_ts_with(&table(1), options);
    let ts2 = start_ts_with(&table(2), options);
    let ls = start_ls_with(&[ts1.addr, ts2.addr], ms(5000), |o| o.cache = 100);
    let expected = std::fs::read_to_string(data("example-RESOLVED.txt")).unwrap();
    for round in 1..=2 {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(data("PROJ2-HNS.txt"), dir.path().join("PROJ2-HNS.txt")).unwrap();
        let port = ls.addr.port().to_string();
        let (status, _, stderr) = run_bin(dir.path(), &["client", "127.0.0.1", &port]);
        assert!(status.success(), "client failed: {stderr}");
        let resolved = std::fs::read_to_string(dir.path().join("RESOLVED.txt")).unwrap();
        assert_eq!(resolved, expected, "round {round}");
    }
}
