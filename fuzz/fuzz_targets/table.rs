//! Any bytes as a table file: parsing never panics, and every record it
//! accepts is found again under its own name, whatever the case.
#![no_main]

use dnslb::dns::RecordType;
use dnslb::table;
use dnslb::wire::name_key;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(zone) = table::parse(data) else { return };
    let text = String::from_utf8_lossy(data);
    for line in text.lines() {
        let content = line.split('#').next().unwrap_or("");
        if let Some(name) = content.split_whitespace().next() {
            let found = zone
                .node(&name_key(&name.to_ascii_uppercase()))
                .and_then(|node| node.rrset(RecordType::A))
                .expect("a listed name is found");
            assert!(found.entries()[0].spelt.eq_ignore_ascii_case(name));
        }
    }
});
