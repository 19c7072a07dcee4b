//! A TS serving zone files (`--zone`), checked through hickory-proto over
//! UDP and TCP on 127.0.0.1: every answer rule (authoritative data,
//! CNAMEs, referrals with glue, negative answers with the SOA, additional
//! addresses, REFUSED, empty non-terminals, several zones), the course
//! protocol answering from a zone, and the binary refusing a bad zone
//! file with its `file:line`.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};

use dnslb::shutdown::Shutdown;
use dnslb::ts::dns::DnsOptions;
use dnslb::ts::{self, TsOptions};
use dnslb::zone::Zone;
use dnslb::{table, zonefile};
use support::dns::*;
use support::{BOUND, run_bin};

const PARENT: &str = "data/zones/example.test.zone";
const CHILD: &str = "data/zones/cs.example.test.zone";

/// The zone files at `paths` (from the repository) in one zone, beside
/// the table `table` (table-file text, may be empty).
fn served(table: &str, paths: &[&str]) -> Zone {
    let mut zone = table::parse(table.as_bytes()).unwrap();
    for path in paths {
        let file = zonefile::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap();
        zone.add_file_zone(file.apex_key(), file.to_zone()).unwrap();
    }
    zone
}

/// A TS's DNS side and course protocol serving `zone` in-process; stopped on drop.
struct ZoneTs {
    dns: SocketAddr,
    course: SocketAddr,
    shutdown: Shutdown,
    thread: Option<JoinHandle<()>>,
}

impl ZoneTs {
    fn start(zone: Zone) -> ZoneTs {
        dnslb::log::to_test_harness();
        let sockets = loopback_sockets();
        let dns = sockets.local_addr().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let course = listener.local_addr().unwrap();
        let shutdown = Shutdown::new();
        let handle = shutdown.clone();
        let zone = Arc::new(zone);
        let thread = thread::spawn(move || {
            let fronts = vec![
                ts::FrontEnd::Course(listener),
                ts::FrontEnd::Dns(sockets, DnsOptions::default()),
            ];
            ts::run(fronts, zone, TsOptions::default(), &handle).unwrap();
        });
        ZoneTs {
            dns,
            course,
            shutdown,
            thread: Some(thread),
        }
    }

    fn both() -> ZoneTs {
        ZoneTs::start(served("", &[PARENT, CHILD]))
    }

    fn ask(&self, name: &str, qtype: RecordType) -> Message {
        udp_ask(self.dns, &query(1, name, qtype))
    }
}

impl Drop for ZoneTs {
    fn drop(&mut self) {
        self.shutdown.trigger();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Each record of a section as `name TTL TYPE data`, names in lower case, sorted.
fn section(records: &[hickory_proto::rr::Record]) -> Vec<String> {
    let mut lines: Vec<String> = records
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {}",
                r.name.to_ascii().to_ascii_lowercase(),
                r.ttl,
                r.record_type(),
                r.data.to_string().to_ascii_lowercase()
            )
        })
        .collect();
    lines.sort();
    lines
}

#[test]
fn smoke() {
    let ts = ZoneTs::both();
    let m = ts.ask("www.example.test.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative);
    assert_eq!(
        section(&m.answers),
        [
            "www.example.test. 300 A 192.0.2.80",
            "www.example.test. 300 A 192.0.2.81"
        ]
    );
    assert!(m.authorities.is_empty() && m.additionals.is_empty());
}

#[test]
fn every_record_type_is_served_with_its_own_ttl() {
    let ts = ZoneTs::both();
    let m = ts.ask("mail.example.test.", RecordType::AAAA);
    assert_eq!(
        section(&m.answers),
        ["mail.example.test. 3600 AAAA 2001:db8::25"]
    );
    let m = ts.ask("motd.example.test.", RecordType::TXT);
    let RData::TXT(txt) = &m.answers[0].data else {
        panic!("{m:?}")
    };
    let strings: Vec<&[u8]> = txt.txt_data.iter().map(|s| &s[..]).collect();
    assert_eq!(
        strings,
        [&b"Welcome to \"example\""[..], b"second string", b"plainA"]
    );
    let m = ts.ask("1.2.0.192.example.test.", RecordType::PTR);
    assert_eq!(
        section(&m.answers),
        ["1.2.0.192.example.test. 3600 PTR www.example.test."]
    );
    let m = ts.ask("example.test.", RecordType::SOA);
    assert_eq!(
        section(&m.answers),
        [
            "example.test. 3600 SOA ns1.example.test. hostmaster.example.test. 2026120301 7200 900 1209600 300"
        ]
    );
    // Over TCP too.
    let m = tcp_ask(ts.dns, &query(2, "example.test.", RecordType::TXT));
    assert_eq!(
        section(&m.answers),
        ["example.test. 3600 TXT v=spf1 mx -all"]
    );
}

#[test]
fn the_question_keeps_its_case_and_names_match_in_any() {
    let ts = ZoneTs::both();
    let m = ts.ask("WwW.ExAmple.TEST.", RecordType::A);
    assert_eq!(m.queries[0].name().to_ascii(), "WwW.ExAmple.TEST.");
    assert_eq!(m.answers[0].name.to_ascii(), "WwW.ExAmple.TEST.");
    assert_eq!(m.answers.len(), 2);
}

#[test]
fn a_cname_chain_is_followed_within_the_zone() {
    let ts = ZoneTs::both();
    let m = ts.ask("docs.example.test.", RecordType::A);
    assert!(m.metadata.authoritative);
    assert_eq!(
        section(&m.answers),
        [
            "docs.example.test. 3600 CNAME web.example.test.",
            "web.example.test. 3600 CNAME www.example.test.",
            "www.example.test. 300 A 192.0.2.80",
            "www.example.test. 300 A 192.0.2.81",
        ]
    );
    // Asked for the CNAME itself: no chain.
    let m = ts.ask("docs.example.test.", RecordType::CNAME);
    assert_eq!(m.answers.len(), 1);
    // A target outside every zone served ends the chain.
    let m = ts.ask("portal.example.test.", RecordType::A);
    assert_eq!(
        section(&m.answers),
        ["portal.example.test. 3600 CNAME www.elsewhere.test."]
    );
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
}

#[test]
fn a_cname_is_followed_into_another_served_zone() {
    let ts = ZoneTs::both();
    let m = ts.ask("library.example.test.", RecordType::A);
    assert!(m.metadata.authoritative);
    assert_eq!(
        section(&m.answers),
        [
            "library.example.test. 3600 CNAME www.cs.example.test.",
            "www.cs.example.test. 1800 A 192.0.2.180",
        ]
    );
}

#[test]
fn a_delegation_gives_a_referral_with_glue() {
    let ts = ZoneTs::start(served("", &[PARENT]));
    for name in [
        "cs.example.test.",
        "www.cs.example.test.",
        "a.b.cs.example.test.",
    ] {
        let m = ts.ask(name, RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{name}");
        assert!(!m.metadata.authoritative, "{name}");
        assert!(m.answers.is_empty());
        assert_eq!(
            section(&m.authorities),
            [
                "cs.example.test. 3600 NS ns.cs.example.test.",
                "cs.example.test. 3600 NS ns1.example.test.",
            ]
        );
        assert_eq!(
            section(&m.additionals),
            [
                "ns.cs.example.test. 3600 A 192.0.2.153",
                "ns1.example.test. 3600 A 192.0.2.53",
            ]
        );
    }
    // A CNAME into the delegated zone answers the CNAME, then refers.
    let m = ts.ask("library.example.test.", RecordType::A);
    assert_eq!(m.answers.len(), 1);
    assert_eq!(m.authorities.len(), 2);
}

#[test]
fn the_most_specific_zone_answers() {
    let ts = ZoneTs::both();
    let m = ts.ask("cs.example.test.", RecordType::NS);
    assert!(m.metadata.authoritative);
    assert_eq!(m.answers.len(), 2);
    assert!(m.authorities.is_empty());
    let m = ts.ask("nothere.cs.example.test.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(
        section(&m.authorities),
        [
            "cs.example.test. 1800 SOA ns.cs.example.test. hostmaster.example.test. 7 3600 600 86400 3600"
        ]
    );
}

#[test]
fn negative_answers_carry_the_soa_with_the_lesser_ttl() {
    let ts = ZoneTs::both();
    let soa = "example.test. 300 SOA ns1.example.test. hostmaster.example.test. 2026120301 7200 900 1209600 300";
    let m = ts.ask("nothere.example.test.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(m.metadata.authoritative);
    assert!(m.answers.is_empty());
    assert_eq!(section(&m.authorities), [soa]);
    // NODATA: the name exists without the type.
    let m = ts.ask("www.example.test.", RecordType::MX);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative && m.answers.is_empty());
    assert_eq!(section(&m.authorities), [soa]);
    // The cs zone's SOA TTL (30m) is below its minimum (1h).
    let m = ts.ask("www.cs.example.test.", RecordType::TXT);
    assert_eq!(m.authorities[0].ttl, 1800);
}

#[test]
fn an_empty_non_terminal_is_nodata() {
    let ts = ZoneTs::both();
    for name in ["rooms.example.test.", "lab.rooms.example.test."] {
        let m = ts.ask(name, RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{name}");
        assert!(m.answers.is_empty());
        assert_eq!(m.authorities.len(), 1);
    }
    let m = ts.ask("x.lab.rooms.example.test.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
}

#[test]
fn mx_and_ns_answers_carry_their_targets_addresses() {
    let ts = ZoneTs::both();
    let m = ts.ask("example.test.", RecordType::MX);
    assert_eq!(m.answers.len(), 2);
    // mail2.backup.test is in no zone served: no address for it.
    assert_eq!(
        section(&m.additionals),
        [
            "mail.example.test. 3600 A 192.0.2.25",
            "mail.example.test. 3600 AAAA 2001:db8::25",
        ]
    );
    let m = ts.ask("example.test.", RecordType::NS);
    assert_eq!(
        section(&m.additionals),
        [
            "ns1.example.test. 3600 A 192.0.2.53",
            "ns2.example.test. 3600 A 192.0.2.54",
            "ns2.example.test. 3600 AAAA 2001:db8::54",
        ]
    );
}

#[test]
fn a_name_in_no_zone_is_refused() {
    let ts = ZoneTs::both();
    for name in ["www.nowhere.invalid.", "test.", "."] {
        let m = ts.ask(name, RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::Refused, "{name}");
        assert!(!m.metadata.authoritative);
        assert!(m.answers.is_empty() && m.authorities.is_empty());
    }
}

#[test]
fn zone_transfers_of_a_zone_file_are_refused() {
    let ts = ZoneTs::both();
    for qtype in [RecordType::AXFR, RecordType::IXFR] {
        for name in ["example.test.", "cs.example.test."] {
            let m = tcp_ask(ts.dns, &query(5, name, qtype));
            assert_eq!(
                m.metadata.response_code,
                ResponseCode::Refused,
                "{name} {qtype}"
            );
            assert!(!m.metadata.authoritative);
            assert!(m.answers.is_empty() && m.authorities.is_empty());
        }
    }
    let soa = ts.ask("example.test.", RecordType::SOA);
    assert_eq!(soa.metadata.response_code, ResponseCode::NoError);
    assert_eq!(soa.answers.len(), 1);
}

#[test]
fn a_table_and_zone_files_are_served_side_by_side() {
    let ts = ZoneTs::start(served("google.com 10.0.0.1 A\n", &[PARENT]));
    let m = ts.ask("google.com.", RecordType::A);
    assert_eq!(addresses(&m), [Ipv4Addr::new(10, 0, 0, 1)]);
    let m = ts.ask("nothere.com.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(m.authorities[0].name.to_ascii(), "com.");
    let m = ts.ask("www.example.test.", RecordType::A);
    assert_eq!(m.answers.len(), 2);
    // A table name inside a zone file's zone is refused at load.
    let mut zone = table::parse(b"www.example.test 10.0.0.1 A\n").unwrap();
    let file = zonefile::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join(PARENT)).unwrap();
    let problem = zone
        .add_file_zone(file.apex_key(), file.to_zone())
        .unwrap_err();
    assert!(problem.contains("www.example.test"), "{problem}");
}

#[test]
fn a_root_zone_refers_to_its_top_level_zones() {
    let root = zonefile::parse(
        b"$TTL 1d\n. SOA a.root-servers.test. hostmaster.root-servers.test. 1 2 3 4 1h\n\
          . NS a.root-servers.test.\na.root-servers.test. A 127.0.0.2\n\
          test. NS ns.nic.test.\nns.nic.test. A 127.0.0.3\n",
    )
    .unwrap();
    let mut zone = Zone::default();
    zone.add_file_zone(root.apex_key(), root.to_zone()).unwrap();
    let ts = ZoneTs::start(zone);
    let m = ts.ask("www.example.test.", RecordType::A);
    assert!(!m.metadata.authoritative);
    assert_eq!(section(&m.authorities), ["test. 86400 NS ns.nic.test."]);
    assert_eq!(section(&m.additionals), ["ns.nic.test. 86400 A 127.0.0.3"]);
    let m = ts.ask(".", RecordType::NS);
    assert!(m.metadata.authoritative);
    assert_eq!(section(&m.answers), [". 86400 NS a.root-servers.test."]);
    assert_eq!(
        section(&m.additionals),
        ["a.root-servers.test. 86400 A 127.0.0.2"]
    );
    let m = ts.ask("nothere.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(m.authorities[0].ttl, 3600);
}

#[test]
fn the_course_protocol_answers_a_records_from_a_zone() {
    let ts = ZoneTs::both();
    let mut stream = TcpStream::connect(ts.course).unwrap();
    stream.set_read_timeout(Some(BOUND)).unwrap();
    let mut lines = BufReader::new(stream.try_clone().unwrap()).lines();
    stream.write_all(b"ns.cs.example.test\n").unwrap();
    assert_eq!(
        lines.next().unwrap().unwrap(),
        "ns.cs.example.test 192.0.2.153 A"
    );
    stream.write_all(b"WWW.example.test\n").unwrap();
    assert_eq!(
        lines.next().unwrap().unwrap(),
        "www.example.test 192.0.2.80 A"
    );
    stream.write_all(b"www.example.test\n").unwrap();
    assert_eq!(
        lines.next().unwrap().unwrap(),
        "www.example.test 192.0.2.81 A"
    );
}

#[test]
fn the_binary_refuses_a_bad_zone_file_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.zone"),
        "$ORIGIN a.test.\n$TTL 60\n@ SOA ns h 1 2 3 4 5\n@ NS ns\nwww CNAME x\nwww A 10.0.0.1\n",
    )
    .unwrap();
    let (status, _, stderr) = run_bin(dir.path(), &["ts", "0", "--zone", "bad.zone"]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--zone bad.zone:6: A data beside the CNAME"),
        "{stderr}"
    );
    let (status, _, stderr) = run_bin(dir.path(), &["ts", "0", "--zone", "none.zone"]);
    assert_eq!(status.code(), Some(2));
    assert!(
        stderr.contains("--zone none.zone: cannot read it"),
        "{stderr}"
    );
    std::fs::write(
        dir.path().join("good.zone"),
        "$ORIGIN a.test.\n$TTL 60\n\n@ SOA ns h 1 2 3 4 5\n@ NS ns\nns A 10.0.0.1\n",
    )
    .unwrap();
    let (status, _, stderr) = run_bin(
        dir.path(),
        &["ts", "0", "--zone", "good.zone", "--zone", "good.zone"],
    );
    assert_eq!(status.code(), Some(2));
    assert!(
        stderr.contains("--zone good.zone:4: the zone a.test is already served"),
        "{stderr}"
    );
    let (status, _, stderr) = run_bin(dir.path(), &["ts", "0"]);
    assert_eq!(status.code(), Some(2));
    assert!(stderr.contains("--zone"), "{stderr}");
}

#[test]
fn the_binary_serves_zone_files() {
    let root = env!("CARGO_MANIFEST_DIR");
    let (parent, child) = (format!("{root}/{PARENT}"), format!("{root}/{CHILD}"));
    let (_ts, dns, log) = spawn_dns_bin(&["ts", "0", "--zone", &parent, "--zone", &child]);
    // The start-up line names the zones read from the files.
    let zones = support::line_containing(&log, "authoritative for");
    assert!(
        zones.ends_with(
            "ts dns: authoritative for cs.example.test., example.test. (zone files); the root and other zones are REFUSED"
        ),
        "{zones}"
    );
    let m = udp_ask(dns, &query(3, "grad.cs.example.test.", RecordType::A));
    assert!(m.metadata.authoritative);
    assert_eq!(
        section(&m.answers),
        [
            "grad.cs.example.test. 1800 CNAME www.cs.example.test.",
            "www.cs.example.test. 1800 A 192.0.2.180",
        ]
    );
}
