//! Answers from zones read from zone files, as RFC 1034 §4.3.2 and NSD
//! give them; pure, no I/O.
//!
//! The question's name is looked up in the most specific zone holding it.
//! Walking down from the apex, the first name with NS records below the
//! apex is a delegation: the answer is a referral (not authoritative; the
//! NS set in authority, the addresses of its servers that the TS holds,
//! in that zone, glue included, in additional). Otherwise the answer is authoritative:
//! the RRset asked for (every RRset of the name for `*`); a CNAME, followed to its target while the target
//! lies in a zone the TS serves (at most [`MAX_CHAIN`] links, never the
//! same name twice), the chain in the answer section; NODATA (NOERROR,
//! nothing in answer) for a name without the type asked, an empty
//! non-terminal included; NXDOMAIN for a name that does not exist. Both
//! negative answers carry the zone's SOA in authority with the TTL
//! min(SOA TTL, SOA minimum) (RFC 2308 §3). MX and NS answers carry the
//! addresses of their targets that their zone holds in additional. Records keep
//! their zone file's TTL; the first answer's owner is the question's name
//! as asked.

use crate::dns::{Message, Name, Question, RData, Rcode, Record, RecordType};
use crate::zone::{self, Zone};

/// Most CNAME links followed in one answer.
pub const MAX_CHAIN: usize = 8;

/// Fills `response` for `question`, whose name lies in a zone file's zone
/// of `served`; sets AA and the rcode.
pub fn fill(response: &mut Message, question: &Question, served: &Zone) {
    response.header.aa = true;
    let mut name = question.name.clone();
    let mut seen: Vec<String> = Vec::new();
    loop {
        let key = zone::key(&name);
        // A CNAME's target outside every zone served ends the chain.
        let Some((apex, zone)) = served.file_zone_of(&key) else {
            return;
        };
        if let Some(cut) = delegation(zone, apex, &key) {
            if seen.is_empty() {
                response.header.aa = false;
            }
            let ns = zone
                .node(&cut)
                .and_then(|node| node.rrset(RecordType::NS))
                .expect("a delegation has NS records");
            let records: Vec<Record> = ns.rotate().into_iter().map(|e| e.record.clone()).collect();
            add_addresses(response, zone, &records);
            response.authority.extend(records);
            return;
        }
        seen.push(key.clone());
        let node = zone.node(&key);
        let cname = node.and_then(|node| node.rrset(RecordType::CNAME));
        let alias = !matches!(question.qtype, RecordType::CNAME | RecordType::ANY);
        if let Some(cname) = cname.filter(|_| alias) {
            let record = Record {
                name: name.clone(),
                ..cname.entries()[0].record.clone()
            };
            let RData::Name(target) = &record.data else {
                unreachable!("a CNAME's data is a name")
            };
            let target = target.clone();
            response.answers.push(record);
            if seen.len() > MAX_CHAIN || seen.contains(&zone::key(&target)) {
                return;
            }
            name = target;
            continue;
        }
        let mut found = Vec::new();
        for set in node.iter().flat_map(|node| node.rrsets()) {
            if question.qtype == set.rtype() || question.qtype == RecordType::ANY {
                found.extend(set.rotate().into_iter().map(|entry| Record {
                    name: name.clone(),
                    ..entry.record.clone()
                }));
            }
        }
        if found.is_empty() {
            if !zone.name_exists(&key) {
                response.rcode = Rcode::NXDOMAIN;
            }
            response.authority.push(negative_soa(zone, apex));
            return;
        }
        if matches!(question.qtype, RecordType::MX | RecordType::NS) {
            add_addresses(response, zone, &found);
        }
        response.answers.extend(found);
        return;
    }
}

/// The highest name strictly below `apex` and at or above `key` that has
/// NS records: the delegation `key` lies under.
fn delegation(zone: &Zone, apex: &str, key: &str) -> Option<String> {
    let labels: Vec<&str> = if key.is_empty() {
        Vec::new()
    } else {
        key.split('.').collect()
    };
    let apex_len = if apex.is_empty() {
        0
    } else {
        apex.split('.').count()
    };
    (apex_len + 1..=labels.len())
        .map(|n| labels[labels.len() - n..].join("."))
        .find(|name| {
            zone.node(name)
                .is_some_and(|node| node.rrset(RecordType::NS).is_some())
        })
}

/// The zone's SOA, for a negative answer: TTL min(its TTL, its minimum).
fn negative_soa(zone: &Zone, apex: &str) -> Record {
    let soa = &zone
        .node(apex)
        .and_then(|node| node.rrset(RecordType::SOA))
        .expect("a zone file's zone has its SOA")
        .entries()[0]
        .record;
    let minimum = match soa.data {
        RData::Soa { minimum, .. } => minimum,
        _ => soa.ttl,
    };
    Record {
        ttl: soa.ttl.min(minimum),
        ..soa.clone()
    }
}

/// Adds to the additional section the A and AAAA records `zone` holds
/// (glue included) for the names the NS or MX `records` point at, each
/// name once.
fn add_addresses(response: &mut Message, zone: &Zone, records: &[Record]) {
    let mut done: Vec<String> = Vec::new();
    for record in records {
        let target: &Name = match &record.data {
            RData::Name(target) => target,
            RData::Mx { exchange, .. } => exchange,
            _ => continue,
        };
        let key = zone::key(target);
        if done.contains(&key) {
            continue;
        }
        done.push(key.clone());
        let Some(node) = zone.node(&key) else {
            continue;
        };
        for rtype in [RecordType::A, RecordType::AAAA] {
            if let Some(set) = node.rrset(rtype) {
                response
                    .additional
                    .extend(set.rotate().into_iter().map(|e| e.record.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::CLASS_IN;
    use crate::zonefile;

    const ZONE: &str = "$ORIGIN example.test.\n$TTL 3600\n\
        @ SOA ns host 1 2 3 4 60\n@ NS ns\n@ MX 10 mail\nns A 192.0.2.1\n\
        mail A 192.0.2.2\nmail AAAA 2001:db8::2\nwww CNAME web\nweb A 192.0.2.3\n\
        loop1 CNAME loop2\nloop2 CNAME loop1\nout CNAME www.elsewhere.\n\
        sub NS ns.sub\nsub NS ns\nns.sub A 192.0.2.9\ndeep.ent A 192.0.2.4\n";

    fn served() -> Zone {
        let file = zonefile::parse(ZONE.as_bytes()).unwrap();
        let mut served = Zone::default();
        served
            .add_file_zone(file.apex_key(), file.to_zone())
            .unwrap();
        served
    }

    fn ask(name: &str, qtype: RecordType) -> Message {
        let question = Question {
            name: Name::from_ascii(name).unwrap(),
            qtype,
            qclass: CLASS_IN,
        };
        let mut response = Message::default();
        fill(&mut response, &question, &served());
        response
    }

    fn names(records: &[Record]) -> Vec<String> {
        records
            .iter()
            .map(|r| format!("{} {}", r.name, r.rtype))
            .collect()
    }

    #[test]
    fn data_is_authoritative_with_its_own_ttl_and_the_askers_case() {
        let m = ask("MAIL.example.test", RecordType::A);
        assert!(m.header.aa);
        assert_eq!(names(&m.answers), ["MAIL.example.test. A"]);
        assert_eq!(m.answers[0].ttl, 3600);
    }

    #[test]
    fn a_cname_chain_is_followed_and_bounded() {
        let m = ask("www.example.test", RecordType::A);
        assert_eq!(
            names(&m.answers),
            ["www.example.test. CNAME", "web.example.test. A"]
        );
        let m = ask("www.example.test", RecordType::CNAME);
        assert_eq!(names(&m.answers), ["www.example.test. CNAME"]);
        let m = ask("www.example.test", RecordType::ANY);
        assert_eq!(names(&m.answers), ["www.example.test. CNAME"]);
        let m = ask("loop1.example.test", RecordType::A);
        assert_eq!(m.answers.len(), 2);
        assert_eq!(m.rcode, Rcode::NOERROR);
        let m = ask("out.example.test", RecordType::A);
        assert_eq!(
            (m.answers.len(), m.authority.len(), m.header.aa),
            (1, 0, true)
        );
    }

    #[test]
    fn a_delegation_refers_with_glue() {
        for name in ["sub.example.test", "a.b.sub.example.test"] {
            let m = ask(name, RecordType::A);
            assert!(!m.header.aa);
            assert!(m.answers.is_empty());
            assert_eq!(names(&m.authority), ["sub.example.test. NS"; 2]);
            let mut glue = names(&m.additional);
            glue.sort();
            assert_eq!(glue, ["ns.example.test. A", "ns.sub.example.test. A"]);
        }
    }

    #[test]
    fn negative_answers_carry_the_soa_with_the_lesser_ttl() {
        let m = ask("nothere.example.test", RecordType::A);
        assert_eq!((m.rcode, m.header.aa), (Rcode::NXDOMAIN, true));
        assert_eq!(names(&m.authority), ["example.test. SOA"]);
        assert_eq!(m.authority[0].ttl, 60);
        let m = ask("web.example.test", RecordType::MX);
        assert_eq!(
            (m.rcode, m.answers.len(), m.authority[0].ttl),
            (Rcode::NOERROR, 0, 60)
        );
        let m = ask("ent.example.test", RecordType::A);
        assert_eq!((m.rcode, m.authority.len()), (Rcode::NOERROR, 1));
    }

    #[test]
    fn mx_and_ns_answers_carry_their_targets_addresses() {
        let m = ask("example.test", RecordType::MX);
        assert_eq!(
            names(&m.additional),
            ["mail.example.test. A", "mail.example.test. AAAA"]
        );
        let m = ask("example.test", RecordType::NS);
        assert_eq!(names(&m.additional), ["ns.example.test. A"]);
    }
}
