//! The data a TS serves, in DNS terms: names, each with its records grouped
//! by type into RRsets (RFC 2181 §5), the zones served, and the names that
//! exist without records of their own. Loaded once at start-up (from a
//! course table by [`crate::table`]), then shared read-only by every
//! connection; both of the TS's protocols answer from it.
//!
//! Each answer from an RRset takes the next turn of the set's rotation, so
//! answers spread over its records (round-robin DNS): a DNS answer lists the
//! whole set starting at that turn's record, a course answer gives that
//! record alone.
//!
//! Every name between a zone's apex and a name with records
//! (`princeton.edu` for `www.princeton.edu` in `edu.`) exists, holding no
//! records (an empty non-terminal, RFC 8020).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::dns::{Record, RecordType};

/// Names → their RRsets, looked up case-insensitively by their key
/// ([`crate::dns::Name::hostname_key`]: lower case, no final dot).
#[derive(Debug, Default)]
pub struct Zone {
    nodes: HashMap<String, Node>,
    /// Every proper suffix of a name with records (`princeton.edu` and
    /// `edu` for `www.princeton.edu`), lower case.
    ancestors: HashSet<String>,
    /// The zones served, by their apex's key.
    apexes: HashSet<String>,
}

/// One name's RRsets, one per type, in the order their first records came.
#[derive(Debug, Default)]
pub struct Node {
    rrsets: Vec<RrSet>,
}

/// The records of one name and type in source order, and the rotation that
/// spreads answers over them.
#[derive(Debug)]
pub struct RrSet {
    entries: Vec<Entry>,
    /// Answers given so far; the next one starts at this index (modulo the length).
    turn: AtomicUsize,
}

/// One record, with its owner name as its source spelt it (case and a
/// final dot kept), which the course protocol's answers repeat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The record. Records read from a course table carry TTL 0: the TS
    /// answers with its `--ttl`.
    pub record: Record,
    /// The owner name as written.
    pub spelt: String,
}

impl Zone {
    /// Adds `entry` to the end of the RRset of its type at the name of key
    /// `key`.
    pub fn add(&mut self, key: String, entry: Entry) {
        let mut rest = key.as_str();
        while let Some((_, parent)) = rest.split_once('.') {
            self.ancestors.insert(parent.to_string());
            rest = parent;
        }
        let node = self.nodes.entry(key).or_default();
        let rtype = entry.record.rtype;
        match node.rrsets.iter_mut().find(|set| set.rtype() == rtype) {
            Some(set) => set.entries.push(entry),
            None => node.rrsets.push(RrSet {
                entries: vec![entry],
                turn: AtomicUsize::new(0),
            }),
        }
    }

    /// Serves the zone whose apex has key `apex`.
    pub fn serve(&mut self, apex: String) {
        self.apexes.insert(apex);
    }

    /// Whether the zone whose apex is `apex` (any case, no final dot) is
    /// served.
    pub fn serves_zone(&self, apex: &str) -> bool {
        self.apexes.contains(&apex.to_ascii_lowercase())
    }

    /// The apexes of the zones served, sorted, lower case, without a final dot.
    pub fn zones(&self) -> Vec<&str> {
        let mut zones: Vec<&str> = self.apexes.iter().map(String::as_str).collect();
        zones.sort_unstable();
        zones
    }

    /// Whether the name of key `key` exists: it has records, or a name with
    /// records lies below it.
    pub fn name_exists(&self, key: &str) -> bool {
        self.nodes.contains_key(key) || self.ancestors.contains(key)
    }

    /// The RRsets of the name of key `key`.
    pub fn node(&self, key: &str) -> Option<&Node> {
        self.nodes.get(key)
    }

    /// Number of names with records.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether no name has records.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

impl Node {
    /// The RRset of type `rtype`, if the name has records of that type.
    pub fn rrset(&self, rtype: RecordType) -> Option<&RrSet> {
        self.rrsets.iter().find(|set| set.rtype() == rtype)
    }

    /// Every RRset, in the order their first records came.
    pub fn rrsets(&self) -> &[RrSet] {
        &self.rrsets
    }
}

impl RrSet {
    /// The records' type.
    pub fn rtype(&self) -> RecordType {
        self.entries[0].record.rtype
    }

    /// The records in source order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Takes the next turn and returns the records in the order of that
    /// turn: the source order rotated left by one more place than the last
    /// time. Threads answering at once each get a different turn.
    pub fn rotate(&self) -> Vec<&Entry> {
        let start = self.take_turn();
        let (before, after) = self.entries.split_at(start);
        after.iter().chain(before).collect()
    }

    /// Takes the next turn and returns that turn's record alone (the first
    /// of [`rotate`](Self::rotate)'s order).
    pub fn next_entry(&self) -> &Entry {
        &self.entries[self.take_turn()]
    }

    fn take_turn(&self) -> usize {
        self.turn.fetch_add(1, Ordering::Relaxed) % self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::net::Ipv4Addr;

    use super::*;
    use crate::dns::RData;
    use crate::table;

    fn ip(entry: &Entry) -> Ipv4Addr {
        match entry.record.data {
            RData::A(ip) => ip,
            _ => panic!("not an A record: {entry:?}"),
        }
    }

    #[test]
    fn each_turn_rotates_the_set_one_place_further() {
        let t = table::parse(b"rr.com 10.0.0.1 A\nrr.com 10.0.0.2 A\nRR.com 10.0.0.3 A").unwrap();
        let set = t.node("rr.com").unwrap().rrset(RecordType::A).unwrap();
        let ips = |turn: Vec<&Entry>| {
            turn.into_iter()
                .map(|e| ip(e).to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(ips(set.rotate()), ["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
        assert_eq!(ips(set.rotate()), ["10.0.0.2", "10.0.0.3", "10.0.0.1"]);
        assert_eq!(set.next_entry().spelt, "RR.com");
        assert_eq!(ips(set.rotate()), ["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
        assert!(t.node("rr.com").unwrap().rrset(RecordType::AAAA).is_none());
    }

    #[test]
    fn a_single_record_answers_the_same_every_time() {
        let t = table::parse(b"one.com 1.1.1.1 A").unwrap();
        let set = t.node("one.com").unwrap().rrset(RecordType::A).unwrap();
        for _ in 0..3 {
            assert_eq!(ip(set.next_entry()), Ipv4Addr::new(1, 1, 1, 1));
            assert_eq!(set.rotate().len(), 1);
        }
    }

    #[test]
    fn turns_taken_at_once_are_spread_evenly() {
        let t = table::parse(b"rr.com 1.0.0.1 A\nrr.com 1.0.0.2 A\nrr.com 1.0.0.3 A").unwrap();
        let set = t.node("rr.com").unwrap().rrset(RecordType::A).unwrap();
        let mut counts = HashMap::new();
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..4)
                .map(|_| s.spawn(|| (0..300).map(|_| ip(set.next_entry())).collect::<Vec<_>>()))
                .collect();
            for worker in workers {
                for ip in worker.join().unwrap() {
                    *counts.entry(ip).or_insert(0) += 1;
                }
            }
        });
        assert!(counts.values().all(|&n| n == 400), "{counts:?}");
    }
}
