//! Any bytes as a DNS message: dnslb's parser never panics, agrees with
//! hickory-proto's (tests/support/dns_diff.rs lists where they may
//! legitimately differ), reads back what it writes; and the TS's answer to
//! any bytes is a message within the size its transport allows.
#![no_main]

#[path = "../../tests/support/dns_diff.rs"]
mod dns_diff;

use std::sync::LazyLock;

use dnslb::dns::{Header, Message};
use dnslb::table;
use dnslb::ts::dns::{Transport, answer_query};
use libfuzzer_sys::fuzz_target;

static TABLE: LazyLock<dnslb::zone::Zone> = LazyLock::new(|| {
    let mut text = String::from("www.example.com 10.0.0.1 A\nx 10.0.0.2 A\n");
    for i in 1..=100 {
        text.push_str(&format!("big.example.com 10.9.0.{i} A\n"));
    }
    table::parse(text.as_bytes()).expect("the fuzz table parses")
});

fuzz_target!(|data: &[u8]| {
    if let dns_diff::Verdict::Disagree(why) = dns_diff::compare(data) {
        panic!("{why}");
    }
    if let Ok(m) = Message::parse(data) {
        let again = Message::parse(&m.to_bytes(65_535)).expect("dnslb reads what it writes");
        assert_eq!(again.answers.len(), m.answers.len());
        assert_eq!((again.rcode, &again.edns), (m.rcode, &m.edns));
    }
    for transport in [Transport::Udp, Transport::Tcp] {
        let Some(answer) = answer_query(data, &TABLE, 300, transport) else {
            assert!(Header::parse(data).is_none_or(|h| h.qr));
            continue;
        };
        let parsed = Message::parse(&answer).expect("the TS's answers parse");
        assert!(parsed.header.qr);
        let limit = match (transport, Message::parse(data).ok().and_then(|q| q.edns)) {
            (Transport::Tcp, _) => 65_535,
            (Transport::Udp, Some(edns)) => edns.udp_limit(),
            (Transport::Udp, None) => 512,
        };
        assert!(answer.len() <= limit, "{} > {limit}", answer.len());
        assert!(transport == Transport::Udp || !parsed.header.tc);
    }
});
