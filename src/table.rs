//! A TS's table of `hostname ip A` records: loaded once at start-up, then
//! shared read-only by every connection.
//!
//! Several lines with the same name (in any case) form one set of records,
//! an RRset in DNS terms (RFC 2181 §5). Each answer for the name takes the
//! next turn of the set's rotation, so answers spread over its addresses
//! (round-robin DNS): a DNS answer lists the whole set starting at that
//! turn's address, a course answer gives that address alone.
//!
//! A table also says which names exist without records of their own and
//! which zones the TS serves: as the course's top-level server, a TS is
//! authoritative for the top-level zone of each of its names (`com.` and
//! `edu.` for a table holding `google.com` and `www.princeton.edu`), and
//! every name between such a zone and a table name (`princeton.edu`) exists,
//! holding no records (an empty non-terminal, RFC 8020).
//!
//! Errors name the file and line, because a TS that starts with half its table
//! would answer wrongly forever after.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::wire::{self, Answer};

/// Hostname → its records, looked up case-insensitively.
#[derive(Debug, Default)]
pub struct Table {
    records: HashMap<String, RecordSet>,
    /// Every proper suffix of a table name (`princeton.edu` and `edu` for
    /// `www.princeton.edu`), lower case.
    ancestors: HashSet<String>,
    /// The top-level zones served: each name's last label, lower case.
    zones: HashSet<String>,
}

/// The records of one name in table order, and the rotation that spreads
/// answers over them.
#[derive(Debug)]
pub struct RecordSet {
    answers: Vec<Answer>,
    /// Answers given so far; the next one starts at this index (modulo the length).
    turn: AtomicUsize,
}

impl RecordSet {
    /// The name as its first line spells it.
    pub fn name(&self) -> &str {
        &self.answers[0].name
    }

    /// The records in table order, each with its line's spelling of the name.
    pub fn answers(&self) -> &[Answer] {
        &self.answers
    }

    /// Takes the next turn and returns the records in the order of that
    /// turn: the table order rotated left by one more place than the last
    /// time. Threads answering at once each get a different turn.
    ///
    /// ```
    /// use dnslb::table::Table;
    /// let t = Table::parse(b"rr.com 10.0.0.1 A\nrr.com 10.0.0.2 A\nRR.com 10.0.0.3 A").unwrap();
    /// let set = t.lookup("rr.COM").unwrap();
    /// let ips = |turn: Vec<&dnslb::wire::Answer>| turn.iter().map(|a| a.ip.to_string()).collect::<Vec<_>>();
    /// assert_eq!(ips(set.rotate()), ["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
    /// assert_eq!(ips(set.rotate()), ["10.0.0.2", "10.0.0.3", "10.0.0.1"]);
    /// assert_eq!(set.next_answer().line(Default::default()), "RR.com 10.0.0.3 A");
    /// assert_eq!(ips(set.rotate()), ["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
    /// ```
    pub fn rotate(&self) -> Vec<&Answer> {
        let start = self.take_turn();
        let (before, after) = self.answers.split_at(start);
        after.iter().chain(before).collect()
    }

    /// Takes the next turn and returns that turn's record alone (the
    /// first of [`rotate`](Self::rotate)'s order).
    pub fn next_answer(&self) -> &Answer {
        &self.answers[self.take_turn()]
    }

    fn take_turn(&self) -> usize {
        self.turn.fetch_add(1, Ordering::Relaxed) % self.answers.len()
    }
}

/// What is wrong with a table file.
#[derive(Debug)]
pub enum TableError {
    /// The file could not be read.
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// Line `line` (counted from 1) is not a valid record.
    Line {
        path: PathBuf,
        line: usize,
        problem: String,
    },
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TableError::Io { path, error } => write!(f, "{}: {error}", path.display()),
            TableError::Line {
                path,
                line,
                problem,
            } => {
                write!(f, "{}:{line}: {problem}", path.display())
            }
        }
    }
}

impl std::error::Error for TableError {}

impl Table {
    /// Loads a table file.
    ///
    /// # Errors
    /// [`TableError::Io`] when the file cannot be read, [`TableError::Line`]
    /// for the first malformed line.
    pub fn load(path: &Path) -> Result<Table, TableError> {
        let bytes = std::fs::read(path).map_err(|error| TableError::Io {
            path: path.to_path_buf(),
            error,
        })?;
        Table::parse(&bytes).map_err(|(line, problem)| TableError::Line {
            path: path.to_path_buf(),
            line,
            problem,
        })
    }

    /// Parses a table's text: one `hostname ip A` record per line, fields
    /// separated by whitespace; blank lines and `#` comments are ignored.
    ///
    /// ```
    /// use dnslb::table::Table;
    /// let t = Table::parse(b"# TS1\r\nAmazon.org 94.5.6.7 A\r\n\nrutgers.com 172.34.4.6 A").unwrap();
    /// assert_eq!(t.len(), 2);
    /// assert_eq!(t.lookup("AMAZON.ORG").unwrap().name(), "Amazon.org");
    /// assert_eq!(Table::parse(b"a.com 1.2.3.4 A\nb.com 1.2.3 A").unwrap_err().0, 2);
    /// // Two addresses for one name form one set; the same line twice is an error.
    /// assert_eq!(Table::parse(b"a.com 1.2.3.4 A\nA.com 1.2.3.5 A").unwrap().len(), 1);
    /// assert_eq!(Table::parse(b"a.com 1.2.3.4 A\nA.com 1.2.3.4 A").unwrap_err().0, 2);
    /// ```
    ///
    /// # Errors
    /// The first malformed line's number (from 1) and what is wrong with it.
    pub fn parse(text: &[u8]) -> Result<Table, (usize, String)> {
        let mut records: HashMap<String, RecordSet> = HashMap::new();
        // Each (name, address) pair and the line that listed it first.
        let mut lines: HashMap<(String, Ipv4Addr), usize> = HashMap::new();
        for (index, raw) in text.split(|&b| b == b'\n').enumerate() {
            let number = index + 1;
            let line =
                std::str::from_utf8(raw).map_err(|_| (number, "not valid UTF-8".to_string()))?;
            let content = line.split('#').next().unwrap_or("").trim();
            if content.is_empty() {
                continue;
            }
            let answer = parse_record(content).map_err(|problem| (number, problem))?;
            let key = wire::name_key(&answer.name);
            if let Some(first) = lines.insert((key.clone(), answer.ip), number) {
                return Err((
                    number,
                    format!(
                        "duplicate record {:?} {} (already listed on line {first})",
                        answer.name, answer.ip
                    ),
                ));
            }
            records
                .entry(key)
                .or_insert_with(|| RecordSet {
                    answers: Vec::new(),
                    turn: AtomicUsize::new(0),
                })
                .answers
                .push(answer);
        }
        let mut ancestors = HashSet::new();
        let mut zones = HashSet::new();
        for key in records.keys() {
            let mut rest = key.as_str();
            while let Some((_, parent)) = rest.split_once('.') {
                ancestors.insert(parent.to_string());
                rest = parent;
            }
            zones.insert(rest.to_string());
        }
        Ok(Table {
            records,
            ancestors,
            zones,
        })
    }

    /// Whether the TS serves the top-level zone `label` (one label, any
    /// case): the last label of one of its names.
    ///
    /// ```
    /// use dnslb::table::Table;
    /// let t = Table::parse(b"google.com 10.0.0.1 A\nwww.princeton.EDU 10.0.0.2 A").unwrap();
    /// assert!(t.serves_zone("com") && t.serves_zone("Edu"));
    /// assert!(!t.serves_zone("org") && !t.serves_zone("princeton.edu"));
    /// assert_eq!(t.zones(), ["com", "edu"]);
    /// ```
    pub fn serves_zone(&self, label: &str) -> bool {
        self.zones.contains(&label.to_ascii_lowercase())
    }

    /// The zones served, sorted, lower case, without a final dot.
    pub fn zones(&self) -> Vec<&str> {
        let mut zones: Vec<&str> = self.zones.iter().map(String::as_str).collect();
        zones.sort_unstable();
        zones
    }

    /// Whether the name of an already normalised key (see
    /// [`wire::name_key`]) exists: it has records, or a name with records
    /// lies below it.
    ///
    /// ```
    /// use dnslb::table::Table;
    /// let t = Table::parse(b"www.princeton.edu 10.0.0.2 A").unwrap();
    /// assert!(t.name_exists("www.princeton.edu") && t.name_exists("princeton.edu"));
    /// assert!(t.name_exists("edu"));
    /// assert!(!t.name_exists("cs.princeton.edu") && !t.name_exists("x.www.princeton.edu"));
    /// ```
    pub fn name_exists(&self, key: &str) -> bool {
        self.records.contains_key(key) || self.ancestors.contains(key)
    }

    /// The records of `name`, whatever its case.
    pub fn lookup(&self, name: &str) -> Option<&RecordSet> {
        self.records.get(&wire::name_key(name))
    }

    /// The records of an already normalised key (see [`wire::name_key`]).
    pub fn lookup_key(&self, key: &str) -> Option<&RecordSet> {
        self.records.get(key)
    }

    /// Number of names.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the table has no names.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

fn parse_record(content: &str) -> Result<Answer, String> {
    let fields: Vec<&str> = content.split_whitespace().collect();
    let [name, ip, kind] = fields.as_slice() else {
        return Err(format!(
            "expected `hostname ip A`, found {} field(s): {content:?}",
            fields.len()
        ));
    };
    if !wire::is_hostname(name) {
        return Err(format!("{name:?} is not a valid hostname"));
    }
    let ip: Ipv4Addr = ip
        .parse()
        .map_err(|_| format!("{ip:?} is not an IPv4 address"))?;
    if *kind != "A" {
        return Err(format!("record type {kind:?} is not supported (only A)"));
    }
    Ok(Answer {
        name: name.to_string(),
        ip,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(text: &str) -> (usize, String) {
        Table::parse(text.as_bytes()).unwrap_err()
    }

    #[test]
    fn each_malformed_line_is_reported_with_its_number() {
        assert_eq!(problem("a.com 1.2.3.4\n").0, 1);
        assert!(problem("a.com 1.2.3.4\n").1.contains("2 field"));
        assert!(problem("\na.com 999.2.3.4 A").1.contains("IPv4"));
        assert_eq!(problem("\na.com 999.2.3.4 A").0, 2);
        assert!(problem("a.com 1.2.3.4 MX").1.contains("MX"));
        assert!(problem("a..com 1.2.3.4 A").1.contains("hostname"));
        let dup = problem("a.com 1.2.3.4 A\n# c\nA.COM 1.2.3.4 A\n");
        assert_eq!(dup.0, 3);
        assert!(dup.1.contains("duplicate"), "{}", dup.1);
        assert!(dup.1.contains("line 1"), "{}", dup.1);
        assert!(problem(" x y z w").1.contains("4 field"));
    }

    #[test]
    fn comments_blank_lines_and_crlf_are_accepted() {
        let t =
            Table::parse(b"\r\n  # all comment\r\na.com 1.2.3.4 A # trailing\r\n\t\r\n").unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(
            t.lookup("A.com").unwrap().answers()[0].ip,
            Ipv4Addr::new(1, 2, 3, 4)
        );
        assert!(Table::parse(b"").unwrap().is_empty());
    }

    #[test]
    fn a_single_record_answers_the_same_every_time() {
        let t = Table::parse(b"one.com 1.1.1.1 A").unwrap();
        let set = t.lookup("ONE.com").unwrap();
        for _ in 0..3 {
            assert_eq!(
                set.next_answer().line(wire::Dialect::Y2020),
                "one.com 1.1.1.1 A"
            );
            assert_eq!(set.rotate().len(), 1);
        }
    }

    #[test]
    fn turns_taken_at_once_are_spread_evenly() {
        let t = Table::parse(b"rr.com 1.0.0.1 A\nrr.com 1.0.0.2 A\nrr.com 1.0.0.3 A").unwrap();
        let set = t.lookup("rr.com").unwrap();
        let mut counts = HashMap::new();
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..4)
                .map(|_| s.spawn(|| (0..300).map(|_| set.next_answer().ip).collect::<Vec<_>>()))
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
