//! A DNS TS's answer relayed to a DNS client as its bytes (no cache, an A
//! or AAAA answer to the question asked and nothing else): the client
//! sees what a decoded and re-encoded answer would have shown it, and any
//! other reply still takes the decoding path.

mod support;

use std::net::Ipv4Addr;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

use dnslb::ls::TsProtocol;
use support::dns::*;

/// An LS in front of `ts`, a DNS TS.
fn ls_for(ts: std::net::SocketAddr) -> DnsLs {
    DnsLs::start(&[ts], |o| o.ts_protocol = TsProtocol::Dns)
}

/// A fake TS answering every query with `records(name)` A records owned
/// by the name it was asked, its question spelt in lower case, AA and RA
/// set.
fn lower_case_ts(records: u8, ttl: u32) -> std::net::SocketAddr {
    fake_dns_ts(move |q, stream| {
        let mut lower = q.clone();
        let asked = lower.queries[0].name().to_ascii().to_ascii_lowercase();
        lower.queries[0] =
            hickory_proto::op::Query::query(Name::from_ascii(&asked).unwrap(), RecordType::A);
        let reply = reply_to(&lower, ResponseCode::NoError, |m| {
            m.metadata.recursion_available = true;
            for i in 1..=records {
                m.add_answer(a_record(&asked, ttl, Ipv4Addr::new(10, 7, 0, i)));
            }
        });
        write_message(stream, &reply);
    })
}

fn owners(message: &Message) -> Vec<String> {
    message.answers.iter().map(|r| r.name.to_ascii()).collect()
}

#[test]
fn a_relayed_answer_has_the_clients_id_and_case_ra_clear_and_the_tss_records() {
    let ls = ls_for(lower_case_ts(2, 300));
    let asked = "HoSt.ExAmple.COM.";
    let want = [Ipv4Addr::new(10, 7, 0, 1), Ipv4Addr::new(10, 7, 0, 2)];
    for (id, edns) in [(0x1234, false), (0xBEEF, true)] {
        let mut q = query(id, asked, RecordType::A);
        if edns {
            q = with_edns(q, 4096, 0, true);
        }
        for answer in [udp_ask(ls.dns, &q), tcp_ask(ls.dns, &q)] {
            assert_eq!(answer.metadata.id, id);
            assert_eq!(
                answer.queries[0].name().to_ascii(),
                asked,
                "the client's case"
            );
            assert_eq!(owners(&answer), [asked, asked], "owners spelt as asked");
            assert!(
                !answer.metadata.recursion_available,
                "RA clear, as the LS sets it"
            );
            assert!(
                !answer.metadata.authoritative,
                "AA clear, as the LS sets it"
            );
            assert!(answer.metadata.recursion_desired, "RD echoed");
            assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
            assert_eq!(addresses(&answer), want);
            assert!(answer.answers.iter().all(|r| r.ttl == 300));
            let opt = answer
                .edns
                .as_ref()
                .map(|e| (e.max_payload(), e.flags().dnssec_ok));
            assert_eq!(opt, edns.then_some((1232, true)), "the LS's own OPT");
        }
    }
    assert_eq!(ls.stop().dropped_replies, 0);
}

#[test]
fn an_answer_too_large_for_the_clients_udp_size_is_truncated_as_before() {
    let ls = ls_for(lower_case_ts(60, 60));
    let q = query(7, "big.example.com.", RecordType::A);
    let bytes = udp_raw(ls.dns, &q.to_vec().unwrap());
    assert!(bytes.len() <= 512, "{} bytes", bytes.len());
    let cut = Message::from_vec(&bytes).unwrap();
    assert!(cut.metadata.truncation, "TC set");
    // One RRset, never split: cut whole, the client asks again over TCP.
    assert!(cut.answers.is_empty());
    assert_eq!((cut.metadata.id, cut.queries.len()), (7, 1));
    let fits = udp_ask(ls.dns, &with_edns(q.clone(), 1232, 0, false));
    assert!(!fits.metadata.truncation, "60 records fit in 1232 bytes");
    assert_eq!(fits.answers.len(), 60);
    let capped = udp_ask(ls.dns, &with_edns(q.clone(), 900, 0, false));
    assert!(
        capped.metadata.truncation && capped.answers.is_empty(),
        "900 bytes is too few"
    );
    let whole = tcp_ask(ls.dns, &q);
    assert!(!whole.metadata.truncation);
    assert_eq!(whole.answers.len(), 60, "over TCP it all fits");
}

#[test]
fn a_reply_to_another_question_is_not_relayed() {
    // The same ID, first for another name, then for the name asked.
    let ts = fake_dns_ts(|q, stream| {
        let mut other = q.clone();
        other.queries[0] = hickory_proto::op::Query::query(
            Name::from_ascii("other.example.com.").unwrap(),
            RecordType::A,
        );
        write_message(
            stream,
            &reply_to(&other, ResponseCode::NoError, |m| {
                m.add_answer(a_record(
                    "other.example.com.",
                    60,
                    Ipv4Addr::new(6, 6, 6, 6),
                ));
            }),
        );
        let name = q.queries[0].name().to_ascii();
        write_message(
            stream,
            &reply_to(q, ResponseCode::NoError, |m| {
                m.add_answer(a_record(&name, 60, Ipv4Addr::new(10, 1, 1, 1)));
            }),
        );
    });
    let ls = ls_for(ts);
    let answer = udp_ask(ls.dns, &query(3, "www.example.com.", RecordType::A));
    assert_eq!(addresses(&answer), [Ipv4Addr::new(10, 1, 1, 1)]);
    assert_eq!(answer.queries[0].name().to_ascii(), "www.example.com.");
    assert_eq!(ls.stop().dropped_replies, 1);
}

#[test]
fn a_ttl_of_2_to_the_31_or_more_still_reaches_the_client_as_0() {
    for ttl in [0x8000_0000, u32::MAX] {
        let ls = ls_for(lower_case_ts(1, ttl));
        for answer in [
            udp_ask(ls.dns, &query(9, "Big.Ttl.example.", RecordType::A)),
            tcp_ask(ls.dns, &query(9, "Big.Ttl.example.", RecordType::A)),
        ] {
            assert_eq!(addresses(&answer), [Ipv4Addr::new(10, 7, 0, 1)]);
            assert_eq!(answer.answers[0].ttl, 0, "TTL {ttl:#x}");
            assert_eq!(answer.queries[0].name().to_ascii(), "Big.Ttl.example.");
        }
    }
}
