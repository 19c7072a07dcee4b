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
//!
//! Zones read from zone files ([`crate::zonefile`]) are kept apart, one
//! [`Zone`] each under the table's, so that a parent's delegation and glue
//! and its child's own records at the same names do not mix;
//! [`Zone::file_zone_of`] finds the most specific one for a name.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::dns::{Name, Record, RecordType};

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
    /// The zones read from zone files, by their apex's key (the root's is
    /// empty), each holding only its own records.
    files: HashMap<String, Zone>,
}

/// The key of `name` in a [`Zone`]: its labels in lower case joined by
/// dots, without a final dot; the root's is empty. A label holding
/// anything but letters, digits, `-` and `_` (which no zone holds) becomes
/// `\0`, which matches no name but keeps the name's place under its zone.
///
/// ```
/// use dnslb::dns::Name;
/// use dnslb::zone::key;
/// assert_eq!(key(&Name::from_ascii("WWW.Example.com.").unwrap()), "www.example.com");
/// assert_eq!(key(&Name::root()), "");
/// assert_eq!(key(&Name::from_ascii("a b.com").unwrap()), "\\0.com");
/// ```
pub fn key(name: &Name) -> String {
    let labels: Vec<String> = name
        .labels()
        .map(|label| {
            if label
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
            {
                label
                    .iter()
                    .map(|b| char::from(b.to_ascii_lowercase()))
                    .collect()
            } else {
                "\\0".to_string()
            }
        })
        .collect();
    labels.join(".")
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
        let apex = apex.to_ascii_lowercase();
        self.apexes.contains(&apex) || self.files.contains_key(&apex)
    }

    /// Serves `zone`, read from a zone file, whose apex has key `apex`.
    ///
    /// # Errors
    /// When a zone with that apex is already served, or a table name lies
    /// in it.
    pub fn add_file_zone(&mut self, apex: String, zone: Zone) -> Result<(), String> {
        let shown = if apex.is_empty() { "." } else { &apex };
        if self.files.contains_key(&apex) {
            return Err(format!(
                "the zone {shown} is already served by another --zone"
            ));
        }
        let mut tabled: Vec<&String> = self
            .nodes
            .keys()
            .filter(|key| is_at_or_below(key, &apex))
            .collect();
        tabled.sort();
        if let Some(name) = tabled.first() {
            return Err(format!(
                "the zone {shown} holds {name}, which the --table lists too"
            ));
        }
        self.files.insert(apex, zone);
        Ok(())
    }

    /// The most specific zone read from a file that the name of key `key`
    /// lies in, with its apex's key.
    pub fn file_zone_of(&self, key: &str) -> Option<(&str, &Zone)> {
        let mut rest = key;
        loop {
            if let Some((apex, zone)) = self.files.get_key_value(rest) {
                return Some((apex, zone));
            }
            match rest.split_once('.') {
                Some((_, parent)) => rest = parent,
                None if !rest.is_empty() => rest = "",
                None => return None,
            }
        }
    }

    /// The apexes of the zones served, sorted, lower case, without a final dot.
    pub fn zones(&self) -> Vec<&str> {
        let mut zones: Vec<&str> = self.apexes.iter().map(String::as_str).collect();
        zones.sort_unstable();
        zones
    }

    /// The apexes of the zones read from zone files, sorted, lower case,
    /// without a final dot (the root's is empty).
    pub fn file_zones(&self) -> Vec<&str> {
        let mut zones: Vec<&str> = self.files.keys().map(String::as_str).collect();
        zones.sort_unstable();
        zones
    }

    /// Whether the name of key `key` exists: it has records, or a name with
    /// records lies below it.
    pub fn name_exists(&self, key: &str) -> bool {
        self.nodes.contains_key(key) || self.ancestors.contains(key)
    }

    /// The RRsets of the name of key `key`: the table's, or those of the
    /// most specific zone file's zone the name lies in.
    pub fn node(&self, key: &str) -> Option<&Node> {
        self.nodes.get(key).or_else(|| {
            let (_, zone) = self.file_zone_of(key)?;
            zone.nodes.get(key)
        })
    }

    /// Number of names with records (in the table, zone files aside).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether no name has records (in the table) and no zone file is served.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty() && self.files.is_empty()
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

/// Whether the name of key `key` is `zone` or below it (keys as
/// [`key`] makes them: the root is empty).
pub fn is_at_or_below(key: &str, zone: &str) -> bool {
    zone.is_empty()
        || key == zone
        || key
            .strip_suffix(zone)
            .is_some_and(|rest| rest.ends_with('.'))
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
