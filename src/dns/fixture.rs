//! What the `dns` unit tests build their messages from, written once:
//! names, questions and the records they use most.

use super::{CLASS_IN, Name, Question, RData, Record, RecordType};

/// The name `text`, which must be valid.
pub fn name(text: &str) -> Name {
    Name::from_ascii(text).unwrap()
}

/// A question for the A records of `text`.
pub fn question(text: &str) -> Question {
    question_of(text, RecordType::A)
}

/// A question for the `qtype` records of `text`.
pub fn question_of(text: &str, qtype: RecordType) -> Question {
    Question {
        name: name(text),
        qtype,
        qclass: CLASS_IN,
    }
}

/// An A record of `owner` with address 10.0.0.`last`.
pub fn a(owner: &str, ttl: u32, last: u8) -> Record {
    Record::a(name(owner), ttl, [10, 0, 0, last].into())
}

/// The SOA record of `example.com` with this TTL and negative-caching
/// minimum.
pub fn soa(ttl: u32, minimum: u32) -> Record {
    Record {
        name: name("example.com"),
        rtype: RecordType::SOA,
        class: CLASS_IN,
        ttl,
        data: RData::Soa {
            mname: name("ns.example.com"),
            rname: name("host.example.com"),
            serial: 1,
            refresh: 2,
            retry: 3,
            expire: 4,
            minimum,
        },
    }
}
