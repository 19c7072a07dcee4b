//! The LS's DNS pieces (`dnslb::dns::{respond, upstream, cache}`) checked
//! through hickory-proto, an independent DNS implementation: TS replies
//! built by hickory (its compression, its case) are matched and classified
//! by `Upstream`, and the LS's answers are parsed by hickory. No sockets:
//! the pieces are pure.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use dnslb::dns::cache::Cache;
use dnslb::dns::respond::{Accepted, Resolution, Transport, accept_query, answer};
use dnslb::dns::upstream::{Rejected, Upstream};
use dnslb::dns::{self, Question};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, CNAME, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};

fn hname(text: &str) -> Name {
    Name::from_ascii(text).unwrap()
}

/// A TS's reply, built by hickory, to the query dnslb's `Upstream` sent.
fn ts_reply(sent: &[u8], code: ResponseCode, build: impl FnOnce(&mut Message)) -> Vec<u8> {
    let query = Message::from_vec(sent).expect("hickory parses dnslb's query");
    assert_eq!(query.metadata.message_type, MessageType::Query);
    assert!(!query.metadata.recursion_desired, "RD clear toward a TS");
    assert!(query.edns.is_none(), "no OPT toward a TS");
    let mut reply = Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
    reply.metadata.authoritative = true;
    reply.metadata.response_code = code;
    for q in &query.queries {
        reply.add_query(q.clone());
    }
    build(&mut reply);
    reply.to_vec().unwrap()
}

fn question(name: &str) -> Question {
    Question {
        name: dns::Name::from_ascii(name).unwrap(),
        qtype: dns::RecordType::A,
        qclass: dns::CLASS_IN,
    }
}

#[test]
fn smoke() {
    let mut link = Upstream::new(42, 64);
    let (_, sent) = link.send(&question("www.example.com"), "q1").unwrap();
    let reply = ts_reply(&sent, ResponseCode::NoError, |m| {
        m.add_answer(Record::from_rdata(
            hname("www.example.com."),
            77,
            RData::A(A(Ipv4Addr::new(10, 0, 0, 1))),
        ));
    });
    let matched = link.receive(&reply).unwrap();
    assert_eq!(matched.tag, "q1");
    let Resolution::Answer(records) = matched.outcome else {
        panic!("{:?}", matched.outcome)
    };
    assert_eq!(records.answers.len(), 1);
    assert_eq!(records.answers[0].ttl, 77);
}

#[test]
fn hickory_replies_match_out_of_order_and_whatever_their_case() {
    let mut link = Upstream::new(9, 64);
    let names = ["a.example.com", "b.example.com", "c.example.com"];
    let sent: Vec<Vec<u8>> = names
        .iter()
        .map(|n| link.send(&question(n), *n).unwrap().1)
        .collect();
    for (i, bytes) in sent.iter().enumerate().rev() {
        // The TS echoes the question upper-cased: still the same question.
        let mut query = Message::from_vec(bytes).unwrap();
        let upper = hname(&names[i].to_ascii_uppercase());
        query.queries[0] = Query::query(upper.clone(), RecordType::A);
        let reply = ts_reply(&query.to_vec().unwrap(), ResponseCode::NoError, |m| {
            m.add_answer(Record::from_rdata(
                upper.clone(),
                60,
                RData::A(A(Ipv4Addr::new(10, 0, 0, i as u8))),
            ));
        });
        assert_eq!(link.receive(&reply).unwrap().tag, names[i]);
    }
    assert!(link.is_empty());
}

#[test]
fn a_hickory_reply_for_another_question_is_rejected() {
    let mut link = Upstream::new(3, 64);
    let (id, sent) = link.send(&question("a.example.com"), ()).unwrap();
    let mut query = Message::from_vec(&sent).unwrap();
    query.queries[0] = Query::query(hname("b.example.com"), RecordType::A);
    let reply = ts_reply(&query.to_vec().unwrap(), ResponseCode::NoError, |_| {});
    assert!(matches!(
        link.receive(&reply),
        Err(Rejected::WrongQuestion { id: i, .. }) if i == id
    ));
    assert_eq!(link.len(), 1);
}

#[test]
fn negative_hickory_replies_classify_and_cache_with_the_soa_ttl() {
    let mut link = Upstream::new(5, 64);
    let q = question("gone.example.com");
    let (_, sent) = link.send(&q, ()).unwrap();
    let reply = ts_reply(&sent, ResponseCode::NXDomain, |m| {
        m.add_authority(Record::from_rdata(
            hname("example.com."),
            3600,
            RData::SOA(SOA::new(
                hname("ns.example.com."),
                hname("hostmaster.example.com."),
                1,
                7200,
                900,
                1_209_600,
                45,
            )),
        ));
    });
    let outcome = link.receive(&reply).unwrap().outcome;
    assert!(matches!(outcome, Resolution::NxDomain { soa: Some(_), .. }));
    let mut cache = Cache::new(10);
    let t0 = Instant::now();
    assert!(cache.insert(&q, &outcome, t0));
    let Some(Resolution::NxDomain { soa: Some(soa), .. }) =
        cache.get(&q, t0 + Duration::from_secs(5))
    else {
        panic!()
    };
    assert_eq!(soa.ttl, 40, "min(3600, 45) - 5");
    assert_eq!(cache.get(&q, t0 + Duration::from_secs(45)), None);
}

#[test]
fn a_cname_chain_from_hickory_passes_and_stray_records_do_not() {
    let mut link = Upstream::new(8, 64);
    let (_, sent) = link.send(&question("www.example.com"), ()).unwrap();
    let reply = ts_reply(&sent, ResponseCode::NoError, |m| {
        m.add_answer(Record::from_rdata(
            hname("www.example.com."),
            60,
            RData::CNAME(CNAME(hname("web.example.com."))),
        ));
        m.add_answer(Record::from_rdata(
            hname("web.example.com."),
            60,
            RData::A(A(Ipv4Addr::new(10, 0, 0, 2))),
        ));
        m.add_answer(Record::from_rdata(
            hname("bank.example.net."),
            60,
            RData::A(A(Ipv4Addr::new(6, 6, 6, 6))),
        ));
    });
    let Resolution::Answer(records) = link.receive(&reply).unwrap().outcome else {
        panic!()
    };
    let owners: Vec<String> = records.answers.iter().map(|r| r.name.to_string()).collect();
    assert_eq!(owners, ["www.example.com.", "web.example.com."]);
}

/// The LS's answer to a hickory query, parsed by hickory.
fn ls_answer(query: &Message, transport: Transport, outcome: &Resolution) -> Message {
    let Some(Accepted::Query(q)) = accept_query(&query.to_vec().unwrap(), transport) else {
        panic!("not accepted")
    };
    Message::from_vec(&answer(&q, outcome)).expect("hickory parses the LS's answer")
}

#[test]
fn the_ls_answer_echoes_the_query_and_clears_ra_as_hickory_reads_it() {
    let mut query = Message::query();
    query.metadata.id = 0x5151;
    query.metadata.recursion_desired = true;
    query.add_query(Query::query(hname("Www.Example.com."), RecordType::A));
    let records = vec![dns::Record::a(
        dns::Name::from_ascii("www.example.com").unwrap(),
        33,
        [10, 9, 8, 7].into(),
    )];
    let m = ls_answer(&query, Transport::Udp, &Resolution::answer(records));
    assert_eq!(m.metadata.id, 0x5151);
    assert_eq!(m.metadata.message_type, MessageType::Response);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.recursion_desired);
    assert!(!m.metadata.recursion_available && !m.metadata.authoritative);
    assert_eq!(m.queries[0].name().to_string(), "Www.Example.com.");
    assert_eq!(m.answers.len(), 1);
    assert_eq!(m.answers[0].ttl, 33);
    assert_eq!(m.answers[0].data, RData::A(A(Ipv4Addr::new(10, 9, 8, 7))));
    for (outcome, code) in [
        (Resolution::nxdomain(), ResponseCode::NXDomain),
        (Resolution::ServFail, ResponseCode::ServFail),
        (Resolution::Refused, ResponseCode::Refused),
    ] {
        let m = ls_answer(&query, Transport::Udp, &outcome);
        assert_eq!(m.metadata.response_code, code);
        assert_eq!(m.metadata.id, 0x5151);
    }
}

#[test]
fn a_big_answer_is_truncated_for_udp_and_whole_for_tcp_as_hickory_reads_it() {
    let mut query = Message::query();
    query.metadata.id = 1;
    query.add_query(Query::query(hname("many.example."), RecordType::A));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    query.set_edns(edns);
    let name = dns::Name::from_ascii("many.example").unwrap();
    let big = Resolution::answer(
        (0..100)
            .map(|i| dns::Record::a(name.clone(), 60, [10, 0, 0, i].into()))
            .collect(),
    );
    let udp = ls_answer(&query, Transport::Udp, &big);
    assert!(udp.metadata.truncation);
    assert!(udp.answers.is_empty());
    assert_eq!(udp.edns.as_ref().unwrap().max_payload(), 1232);
    let tcp = ls_answer(&query, Transport::Tcp, &big);
    assert!(!tcp.metadata.truncation);
    assert_eq!(tcp.answers.len(), 100);
}

#[test]
fn refused_and_nxdomain_replies_from_hickory_are_told_apart() {
    // How the TSes' outcomes combine is the LS's in-flight rule (tested in
    // src/ls/inflight.rs and tests/dns_ls.rs); here, what each reply says.
    let q = question("x.example.com");
    let mut links = [Upstream::new(1, 8), Upstream::new(2, 8)];
    let sent: Vec<Vec<u8>> = links
        .iter_mut()
        .map(|l| l.send(&q, ()).unwrap().1)
        .collect();
    let refused = ts_reply(&sent[0], ResponseCode::Refused, |_| {});
    let nx = ts_reply(&sent[1], ResponseCode::NXDomain, |_| {});
    assert_eq!(
        links[0].receive(&refused).unwrap().outcome,
        Resolution::Refused
    );
    assert_eq!(
        links[1].receive(&nx).unwrap().outcome,
        Resolution::nxdomain()
    );
}
