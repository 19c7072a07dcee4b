//! The course's table files: one `hostname ip A` record per line, read
//! into the [`Zone`] a TS serves.
//!
//! Several lines with the same name (in any case) form one RRset, which
//! answers take turns over (see [`crate::zone`]); each line keeps its
//! spelling of the name for the course protocol's answers. As the course's
//! top-level server, a TS is authoritative for the top-level zone of each
//! of its names (`com.` and `edu.` for a table holding `google.com` and
//! `www.princeton.edu`).
//!
//! Errors name the file and line, because a TS that starts with half its table
//! would answer wrongly forever after.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::Path;

use crate::dns::{Name, Record};
use crate::linefile::{self, FileError, content_lines};
use crate::wire;
use crate::zone::{Entry, Zone};

/// Loads a table file.
///
/// # Errors
/// [`FileError::Io`] when the file cannot be read, [`FileError::Line`] for
/// the first malformed line, [`FileError::Empty`] for a table without
/// records.
pub fn load(path: &Path) -> Result<Zone, FileError> {
    linefile::load(path, parse, Zone::is_empty, "records")
}

/// Parses a table's text: one `hostname ip A` record per line, fields
/// separated by whitespace; blank lines and `#` comments are ignored.
///
/// ```
/// use dnslb::dns::RecordType;
/// use dnslb::table;
/// let t = table::parse(b"# TS1\r\nAmazon.org 94.5.6.7 A\r\n\nrutgers.com 172.34.4.6 A").unwrap();
/// assert_eq!(t.len(), 2);
/// let set = t.node("amazon.org").unwrap().rrset(RecordType::A).unwrap();
/// assert_eq!(set.entries()[0].spelt, "Amazon.org");
/// assert_eq!(table::parse(b"a.com 1.2.3.4 A\nb.com 1.2.3 A").unwrap_err().0, 2);
/// // Two addresses for one name form one set; the same line twice is an error.
/// assert_eq!(table::parse(b"a.com 1.2.3.4 A\nA.com 1.2.3.5 A").unwrap().len(), 1);
/// assert_eq!(table::parse(b"a.com 1.2.3.4 A\nA.com 1.2.3.4 A").unwrap_err().0, 2);
/// // The zones served: each name's top-level label; the names between exist.
/// let t = table::parse(b"google.com 10.0.0.1 A\nwww.princeton.EDU 10.0.0.2 A").unwrap();
/// assert_eq!(t.zones(), ["com", "edu"]);
/// assert!(t.serves_zone("Edu") && !t.serves_zone("org") && !t.serves_zone("princeton.edu"));
/// assert!(t.name_exists("princeton.edu") && t.name_exists("edu"));
/// assert!(!t.name_exists("cs.princeton.edu") && !t.name_exists("x.www.princeton.edu"));
/// ```
///
/// # Errors
/// The first malformed line's number (from 1) and what is wrong with it.
pub fn parse(text: &[u8]) -> Result<Zone, (usize, String)> {
    let mut zone = Zone::default();
    // Each (name, address) pair and the line that listed it first.
    let mut lines: HashMap<(String, Ipv4Addr), usize> = HashMap::new();
    for line in content_lines(text) {
        let (number, content) = line?;
        let (spelt, ip) = parse_record(content).map_err(|problem| (number, problem))?;
        let key = wire::name_key(spelt);
        if let Some(first) = lines.insert((key.clone(), ip), number) {
            return Err((
                number,
                format!("duplicate record {spelt:?} {ip} (already listed on line {first})"),
            ));
        }
        let name = Name::from_ascii(spelt).map_err(|problem| (number, problem))?;
        let top = key.rsplit('.').next().unwrap_or(&key).to_string();
        zone.add(
            key,
            Entry {
                record: Record::a(name, 0, ip),
                spelt: spelt.to_string(),
            },
        );
        zone.serve(top);
    }
    Ok(zone)
}

/// A line's name as written and its address.
fn parse_record(content: &str) -> Result<(&str, Ipv4Addr), String> {
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
    Ok((name, ip))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::RecordType;

    fn problem(text: &str) -> (usize, String) {
        parse(text.as_bytes()).unwrap_err()
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
        let t = parse(b"\r\n  # all comment\r\na.com 1.2.3.4 A # trailing\r\n\t\r\n").unwrap();
        assert_eq!(t.len(), 1);
        let set = t.node("a.com").unwrap().rrset(RecordType::A).unwrap();
        assert_eq!(
            set.entries()[0].record,
            Record::a(
                Name::from_ascii("a.com").unwrap(),
                0,
                Ipv4Addr::new(1, 2, 3, 4)
            )
        );
        assert!(parse(b"").unwrap().is_empty());
    }

    #[test]
    fn each_line_keeps_its_spelling_of_the_name() {
        let t = parse(b"rr.com 10.0.0.1 A\nRR.com. 10.0.0.2 A").unwrap();
        let set = t.node("rr.com").unwrap().rrset(RecordType::A).unwrap();
        let spelt: Vec<&str> = set.entries().iter().map(|e| e.spelt.as_str()).collect();
        assert_eq!(spelt, ["rr.com", "RR.com."]);
        assert_eq!(set.entries()[1].record.name.to_string(), "RR.com.");
    }
}
