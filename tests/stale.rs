//! Serving stale answers (`--stale S`, RFC 8767): with `--cache`, a query
//! no TS can answer (every TS down, or silent past the deadline) is
//! answered from a cache entry expired at most S seconds ago, with TTL 30;
//! without `--stale`, such a query fails as before.
//!
//! The entries here live 1 second: the tests wait that second out, since
//! an entry's expiry is the passing of time itself.

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::sleep;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};

use dnslb::ls::{LsOptions, TsProtocol};
use dnslb::ts::dns::DnsOptions;
use support::dns::*;
use support::*;

const TABLE: &str = "www.example.com 10.0.0.1 A\n";

/// A DNS TS answering with TTL 1.
fn short_lived_ts() -> DnsTs {
    DnsTs::start_with(
        TABLE,
        DnsOptions {
            ttl: 1,
            ..DnsOptions::default()
        },
    )
}

fn ls_of(ts: SocketAddr, stale: u32) -> DnsLs {
    DnsLs::start(&[ts], |o: &mut LsOptions| {
        o.ts_protocol = TsProtocol::Dns;
        o.cache = 100;
        o.stale = stale;
        o.dns_timeout = ms(300);
        o.timeout = ms(300);
    })
}

#[test]
fn an_expired_answer_is_served_with_ttl_30_while_the_ts_is_down_and_only_for_s_seconds() {
    let ts = short_lived_ts();
    let ls = ls_of(ts.addr, 1);
    let q = query(1, "www.example.com.", RecordType::A);
    assert_eq!(udp_ask(ls.dns, &q).answers[0].ttl, 1);
    drop(ts);
    sleep(ms(1100));
    for reply in [udp_ask(ls.dns, &q), tcp_ask(ls.dns, &q)] {
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        assert_eq!(addresses(&reply), [Ipv4Addr::new(10, 0, 0, 1)]);
        assert_eq!(reply.answers[0].ttl, 30);
    }
    let mut client = LineClient::connect(ls.course());
    assert_eq!(client.ask("www.example.com"), "www.example.com 10.0.0.1 A");
    let snapshot = ls.snapshot();
    assert_eq!(snapshot.stale, 3, "{snapshot}");
    // One through each front end (course, DNS over UDP, over TCP).
    let by_front = snapshot.fronts.each_ref().map(|front| front.stale);
    assert_eq!(by_front, [1, 1, 1], "{snapshot}");
    assert!(snapshot.to_string().contains("stale 3"), "{snapshot}");
    // Expired more than S = 1 second ago: not served.
    sleep(ms(1000));
    let late = udp_ask(ls.dns, &q);
    assert_eq!(late.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(
        client.ask("www.example.com"),
        "www.example.com - Error:HOST NOT FOUND"
    );
    assert_eq!(ls.stop().stale, 3);
}

#[test]
fn without_stale_an_expired_answer_is_not_served() {
    let ts = short_lived_ts();
    let ls = ls_of(ts.addr, 0);
    let q = query(1, "www.example.com.", RecordType::A);
    assert_eq!(udp_ask(ls.dns, &q).answers[0].ttl, 1);
    drop(ts);
    sleep(ms(1100));
    let reply = udp_ask(ls.dns, &q);
    assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
    let mut client = LineClient::connect(ls.course());
    assert_eq!(
        client.ask("www.example.com"),
        "www.example.com - Error:HOST NOT FOUND"
    );
    assert_eq!(ls.stop().stale, 0);
}

#[test]
fn an_expired_answer_is_served_at_the_deadline_when_the_ts_falls_silent() {
    let answering = Arc::new(AtomicBool::new(true));
    let on = Arc::clone(&answering);
    let ts = fake_dns_ts(move |query, stream| {
        if on.load(Ordering::SeqCst) {
            let name = query.queries[0].name().clone();
            let record = Record::from_rdata(name, 1, RData::A(A(Ipv4Addr::new(10, 0, 0, 2))));
            write_message(
                stream,
                &reply_to(query, ResponseCode::NoError, |m| {
                    m.add_answer(record);
                }),
            );
        }
    });
    let ls = ls_of(ts, 30);
    let q = query(1, "www.example.com.", RecordType::A);
    assert_eq!(udp_ask(ls.dns, &q).answers[0].ttl, 1);
    answering.store(false, Ordering::SeqCst);
    sleep(ms(1100));
    let started = std::time::Instant::now();
    let reply = udp_ask(ls.dns, &q);
    assert!(started.elapsed() >= ms(250), "{:?}", started.elapsed());
    assert_eq!(addresses(&reply), [Ipv4Addr::new(10, 0, 0, 2)]);
    assert_eq!(reply.answers[0].ttl, 30);
    // A name never cached still fails at the deadline.
    let other = udp_ask(ls.dns, &query(2, "other.example.com.", RecordType::A));
    assert_eq!(other.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(ls.stop().stale, 1);
}

#[test]
fn stale_without_a_cache_is_a_usage_error() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_dnslb"))
        .args(["ls", "0", "127.0.0.1", "53", "--stale", "60"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--stale") && stderr.contains("--cache"),
        "{stderr}"
    );
}
