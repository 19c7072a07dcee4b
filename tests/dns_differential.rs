//! dnslb's DNS parser against hickory-proto's on the same bytes: messages
//! built by hickory (so with its name compression), then mutated, then
//! random bytes. The two must reach the same verdict and, on accepted
//! messages, the same content, except for the differences documented in
//! `support/dns_diff.rs`. The `dns` fuzz target runs the same comparison
//! on inputs libFuzzer finds.

#[path = "support/dns_diff.rs"]
mod dns_diff;

use std::net::{Ipv4Addr, Ipv6Addr};

use dns_diff::Verdict;
use dnslb::dns::Message;
use dnslb::random::SplitMix64;
use hickory_proto::op::{Edns, Message as HMessage, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, NS, PTR, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// How many messages each test builds.
const CASES: usize = 4000;

struct Gen(SplitMix64);

impl Gen {
    fn below(&mut self, n: u64) -> u64 {
        self.0.next_u64() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn name(&mut self) -> Name {
        const POOL: [&str; 8] = [
            "www.example.com.",
            "WWW.Example.COM.",
            "mail.example.com.",
            "example.com.",
            "a.b.c.d.e.f.example.org.",
            "x.",
            ".",
            "ns1.example.net.",
        ];
        if self.chance(5) {
            // Long labels, near the 255-byte limit.
            let label = "z".repeat(63);
            let n = 1 + self.below(3) as usize;
            return Name::from_ascii(format!("{}.", vec![label; n].join("."))).unwrap();
        }
        Name::from_ascii(POOL[self.below(POOL.len() as u64) as usize]).unwrap()
    }

    fn rdata(&mut self) -> RData {
        match self.below(9) {
            0..=2 => RData::A(A(Ipv4Addr::from(self.0.next_u64() as u32))),
            3 => RData::CNAME(CNAME(self.name())),
            4 => RData::NS(NS(self.name())),
            5 => RData::PTR(PTR(self.name())),
            6 => RData::MX(MX::new(self.below(100) as u16, self.name())),
            7 => RData::SOA(SOA::new(self.name(), self.name(), 1, 2, 3, 4, 5)),
            _ if self.chance(50) => RData::AAAA(AAAA(Ipv6Addr::LOCALHOST)),
            _ => RData::TXT(TXT::new(vec!["hello".into()])),
        }
    }

    fn record(&mut self) -> Record {
        Record::from_rdata(self.name(), self.below(100_000) as u32, self.rdata())
    }

    fn message(&mut self) -> Vec<u8> {
        let kind = if self.chance(50) {
            MessageType::Query
        } else {
            MessageType::Response
        };
        let op =
            [OpCode::Query, OpCode::Query, OpCode::Query, OpCode::Notify][self.below(4) as usize];
        let mut m = HMessage::new(self.below(65_536) as u16, kind, op);
        m.metadata.recursion_desired = self.chance(50);
        m.metadata.authoritative = self.chance(50);
        for _ in 0..self.below(3) {
            let qtype = [RecordType::A, RecordType::AAAA, RecordType::MX][self.below(3) as usize];
            m.add_query(Query::query(self.name(), qtype));
        }
        for _ in 0..self.below(4) {
            let record = self.record();
            m.add_answer(record);
        }
        for _ in 0..self.below(2) {
            let record = self.record();
            m.add_authority(record);
        }
        for _ in 0..self.below(2) {
            let record = self.record();
            m.add_additional(record);
        }
        if self.chance(40) {
            let mut edns = Edns::new();
            edns.set_max_payload(self.below(5000) as u16);
            edns.set_version(self.below(2) as u8);
            edns.set_dnssec_ok(self.chance(50));
            m.set_edns(edns);
        }
        m.to_vec().expect("hickory encodes what it built")
    }

    /// A few random edits of `bytes`, favouring the ones that reach the
    /// parsers' edge cases: cut ends, pointer bytes, length bytes.
    fn mutate(&mut self, bytes: &mut Vec<u8>) {
        for _ in 0..1 + self.below(3) {
            if bytes.is_empty() {
                bytes.push(0);
            }
            let at = self.below(bytes.len() as u64) as usize;
            match self.below(7) {
                0 => bytes[at] = self.0.next_u64() as u8,
                1 => bytes[at] ^= 1 << self.below(8),
                2 => bytes.truncate(at),
                3 => bytes.insert(at, self.0.next_u64() as u8),
                4 => {
                    bytes.remove(at);
                }
                5 => {
                    // A compression pointer to a random offset.
                    let target = self.below(bytes.len() as u64 + 4) as u16;
                    let pointer = (0xC000 | target).to_be_bytes();
                    bytes.splice(at..(at + 2).min(bytes.len()), pointer);
                }
                _ => bytes[at] = [0, 1, 63, 64, 0x80, 0xC0, 0xFF][self.below(7) as usize],
            }
        }
    }
}

/// Runs the comparison on `inputs` and checks it found no disagreement
/// and exercised both verdicts.
fn run(inputs: impl Iterator<Item = Vec<u8>>) -> [usize; 3] {
    let mut counts = [0usize; 3];
    for bytes in inputs {
        match dns_diff::compare(&bytes) {
            Verdict::BothAccept => counts[0] += 1,
            Verdict::BothReject => counts[1] += 1,
            Verdict::Excused(_) => counts[2] += 1,
            Verdict::Disagree(why) => panic!("{why} on {bytes:02x?}"),
        }
    }
    eprintln!("both accept, both reject, excused: {counts:?}");
    counts
}

#[test]
fn messages_built_by_hickory_parse_alike() {
    let mut g = Gen(SplitMix64::new(1));
    let counts = run((0..CASES).map(|_| g.message()));
    // Whatever hickory writes, dnslb reads (some excused: AAAA and TXT
    // records are opaque to dnslb, but hickory accepts its own).
    assert_eq!(counts[1], 0, "{counts:?}");
    assert!(counts[0] > CASES / 2, "{counts:?}");
}

#[test]
fn mutated_messages_get_the_same_verdict() {
    let mut g = Gen(SplitMix64::new(2));
    let counts = run((0..CASES * 4).map(|_| {
        let mut bytes = g.message();
        g.mutate(&mut bytes);
        bytes
    }));
    assert!(counts[0] > CASES / 4 && counts[1] > CASES / 4, "{counts:?}");
}

#[test]
fn random_bytes_get_the_same_verdict() {
    let mut g = Gen(SplitMix64::new(3));
    let counts = run((0..CASES).map(|_| {
        let len = g.below(64) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| g.0.next_u64() as u8).collect();
        // Small counts, so that the sections are reached at all.
        if bytes.len() >= 12 {
            for i in [4, 6, 8, 10] {
                bytes[i] = 0;
                bytes[i + 1] = g.below(3) as u8;
            }
        }
        bytes
    }));
    assert!(counts[1] > CASES / 2, "{counts:?}");
}

#[test]
fn a_partial_edns_option_is_rejected_by_dnslb_and_ignored_by_hickory() {
    // One OPT of 2 bytes: an option code without its length.
    let bytes = b"\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\
                  \x00\x00\x29\x77\x00\x03\x80\x00\x05\x00\x02\x00\x77";
    assert!(Message::parse(bytes).is_err());
    assert!(HMessage::from_vec(bytes).is_ok());
    assert!(matches!(dns_diff::compare(bytes), Verdict::Excused(_)));
}

#[test]
fn every_parsed_message_survives_writing_and_reading_again() {
    let mut g = Gen(SplitMix64::new(4));
    let mut checked = 0;
    for _ in 0..CASES {
        let mut bytes = g.message();
        g.mutate(&mut bytes);
        let Ok(m) = Message::parse(&bytes) else {
            continue;
        };
        let again = Message::parse(&m.to_bytes(65_535)).expect("dnslb reads what it writes");
        assert_eq!(again.questions.len(), m.questions.len());
        assert_eq!(again.answers.len(), m.answers.len());
        assert_eq!(again.authority.len(), m.authority.len());
        assert_eq!(again.additional.len(), m.additional.len());
        assert_eq!((again.rcode, &again.edns), (m.rcode, &m.edns));
        for (a, b) in again.answers.iter().zip(&m.answers) {
            assert!(a.name.eq_ignore_case(&b.name));
            assert_eq!((a.rtype, a.ttl), (b.rtype, b.ttl));
        }
        checked += 1;
    }
    assert!(checked > CASES / 8, "{checked}");
}
