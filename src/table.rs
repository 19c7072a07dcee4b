//! A TS's table of `hostname ip A` records: loaded once at start-up, then
//! shared read-only by every connection.
//!
//! Errors name the file and line, because a TS that starts with half its table
//! would answer wrongly forever after.

use std::collections::HashMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::wire::{self, Answer};

/// Hostname → record, looked up case-insensitively.
#[derive(Clone, Debug, Default)]
pub struct Table {
    records: HashMap<String, Answer>,
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
    /// assert_eq!(t.lookup("AMAZON.ORG").unwrap().name, "Amazon.org");
    /// assert_eq!(Table::parse(b"a.com 1.2.3.4 A\nb.com 1.2.3 A").unwrap_err().0, 2);
    /// ```
    ///
    /// # Errors
    /// The first malformed line's number (from 1) and what is wrong with it.
    pub fn parse(text: &[u8]) -> Result<Table, (usize, String)> {
        let mut records = HashMap::new();
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
            if let Some(first) = records.get(&key) {
                let first: &Answer = first;
                return Err((
                    number,
                    format!(
                        "duplicate name {:?} (already listed as {:?})",
                        answer.name, first.name
                    ),
                ));
            }
            records.insert(key, answer);
        }
        Ok(Table { records })
    }

    /// The record for `name`, whatever its case.
    pub fn lookup(&self, name: &str) -> Option<&Answer> {
        self.records.get(&wire::name_key(name))
    }

    /// The record for an already normalised key (see [`wire::name_key`]).
    pub fn lookup_key(&self, key: &str) -> Option<&Answer> {
        self.records.get(key)
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the table has no records.
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
        let dup = problem("a.com 1.2.3.4 A\n# c\nA.COM 1.2.3.5 A\n");
        assert_eq!(dup.0, 3);
        assert!(dup.1.contains("duplicate"));
        assert!(problem(" x y z w").1.contains("4 field"));
    }

    #[test]
    fn comments_blank_lines_and_crlf_are_accepted() {
        let t =
            Table::parse(b"\r\n  # all comment\r\na.com 1.2.3.4 A # trailing\r\n\t\r\n").unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t.lookup("A.com").unwrap().ip, Ipv4Addr::new(1, 2, 3, 4));
        assert!(Table::parse(b"").unwrap().is_empty());
    }
}
