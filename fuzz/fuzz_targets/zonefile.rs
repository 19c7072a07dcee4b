//! Any bytes as a zone file: parsing never panics; every record of a zone
//! it accepts is found again under its owner's key and type, and the TS
//! answers a question for each owner and type without panicking.
#![no_main]

use dnslb::dns::{CLASS_IN, Message, Question};
use dnslb::ts::dns::{Transport, answer_query};
use dnslb::zone::{self, Zone};
use dnslb::zonefile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = zonefile::parse(data) else { return };
    let mut served = Zone::default();
    served
        .add_file_zone(file.apex_key(), file.to_zone())
        .expect("one zone into an empty table");
    for (_, record) in &file.records {
        let set = served
            .node(&zone::key(&record.name))
            .and_then(|node| node.rrset(record.rtype))
            .expect("a record is found under its owner and type");
        assert!(set.entries().iter().any(|e| e.record == *record));
        let mut query = Message::default();
        query.questions.push(Question {
            name: record.name.clone(),
            qtype: record.rtype,
            qclass: CLASS_IN,
        });
        let answer = answer_query(&query.to_bytes(512), &served, 300, Transport::Udp)
            .expect("a query is answered");
        Message::parse(&answer).expect("an answer parses");
    }
});
