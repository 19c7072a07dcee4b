//! The names a bench run asks for: a names file (a TS table, so answers can
//! be checked against their addresses, or a plain list of hostnames), the
//! course's built-in names, and the [`Workload`] that gives every client's
//! every query, with its share of made-up names no TS holds.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::Path;

use crate::linefile::{self, FileError, content_lines};
use crate::wire;

/// The names used when no names file is given: the course's two TS tables
/// (data/PROJ2-DNSTS1.txt and data/PROJ2-DNSTS2.txt), built in.
const COURSE_TABLES: &str = concat!(
    include_str!("../../data/PROJ2-DNSTS1.txt"),
    "\n",
    include_str!("../../data/PROJ2-DNSTS2.txt"),
);

/// What the bench knows about the right reply to a name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// The names file gives this address: an answer must carry it.
    Ip(Ipv4Addr),
    /// A plain hostname: any answer for it (or a miss) is accepted.
    Unknown,
    /// A name the bench made up (`miss-<client>-<n>.invalid`): no TS holds
    /// it, so the only right reply is a miss.
    Absent,
}

/// One name of the workload and what is expected for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The hostname sent.
    pub name: String,
    /// The right reply, as far as known.
    pub expect: Expect,
}

/// The names a bench run asks for (misses aside).
#[derive(Clone, Debug, Default)]
pub struct Names {
    entries: Vec<Entry>,
}

impl Names {
    /// The course's four names with their addresses (see `data/`).
    pub fn course() -> Names {
        Names::parse(COURSE_TABLES.as_bytes()).expect("the built-in course tables parse")
    }

    /// Loads a names file: a TS table file (`name ip A` per line, so every
    /// answer can be checked against its address) or a plain list of
    /// hostnames, one per line; the two may be mixed. Blank lines and `#`
    /// comments are ignored.
    ///
    /// # Errors
    /// [`FileError`] naming the file (and line) that is unreadable, malformed or empty.
    pub fn load(path: &Path) -> Result<Names, FileError> {
        linefile::load(path, Names::parse, Names::is_empty, "names")
    }

    /// Parses a names file's text (see [`Names::load`]).
    ///
    /// ```
    /// use dnslb::bench::{Expect, Names};
    /// let names = Names::parse(b"# TS1\nAmazon.org 94.5.6.7 A\n\nwww.example.com\n").unwrap();
    /// assert_eq!(names.entries()[0].expect, Expect::Ip("94.5.6.7".parse().unwrap()));
    /// assert_eq!(names.entries()[1].expect, Expect::Unknown);
    /// assert_eq!(Names::parse(b"a.com\nb.com 1.2.3 A").unwrap_err().0, 2);
    /// ```
    ///
    /// # Errors
    /// The first malformed line's number (from 1) and what is wrong with it;
    /// a name listed twice with different addresses is malformed, because
    /// either address could then be the right answer.
    pub fn parse(text: &[u8]) -> Result<Names, (usize, String)> {
        let mut entries = Vec::new();
        let mut seen: HashMap<String, (Ipv4Addr, usize)> = HashMap::new();
        for line in content_lines(text) {
            let (number, content) = line?;
            if !content.contains(char::is_whitespace) {
                if !wire::is_hostname(content) {
                    return Err((number, format!("{content:?} is not a valid hostname")));
                }
                entries.push(Entry {
                    name: content.to_string(),
                    expect: Expect::Unknown,
                });
                continue;
            }
            let answer = wire::parse_answer(content.as_bytes()).map_err(|_| {
                (
                    number,
                    format!("expected a hostname or `hostname ip A`, found {content:?}"),
                )
            })?;
            let key = wire::name_key(&answer.name);
            if let Some(&(ip, first)) = seen.get(&key) {
                if ip != answer.ip {
                    return Err((
                        number,
                        format!(
                            "{} is listed with {} here and with {ip} on line {first}",
                            answer.name, answer.ip
                        ),
                    ));
                }
            } else {
                seen.insert(key, (answer.ip, number));
            }
            entries.push(Entry {
                name: answer.name,
                expect: Expect::Ip(answer.ip),
            });
        }
        Ok(Names { entries })
    }

    /// The names, in file order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Number of names.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no names.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The queries of a run, computed from (client, index) so none is stored.
pub(super) struct Workload {
    names: Names,
    queries: usize,
    miss_ratio: f64,
}

impl Workload {
    /// `queries` queries per client over `names`, a share `miss_ratio`
    /// (clamped to 0..=1) of them for made-up names.
    pub(super) fn new(names: Names, queries: usize, miss_ratio: f64) -> Workload {
        Workload {
            names,
            queries,
            miss_ratio: miss_ratio.clamp(0.0, 1.0),
        }
    }

    /// Whether query `j` asks for a made-up name: spread evenly, exactly
    /// `floor(queries × ratio)` per client.
    fn is_miss(&self, j: usize) -> bool {
        self.names.is_empty()
            || ((j + 1) as f64 * self.miss_ratio).floor() > (j as f64 * self.miss_ratio).floor()
    }

    /// The name client `c` sends as its query `j`, and what is expected for it.
    pub(super) fn query(&self, c: usize, j: usize) -> (Cow<'_, str>, Expect) {
        if self.is_miss(j) {
            return (Cow::Owned(format!("miss-{c}-{j}.invalid")), Expect::Absent);
        }
        let entry = &self.names.entries[(c * self.queries + j) % self.names.len()];
        (Cow::Borrowed(&entry.name), entry.expect)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn miss_ratio_gives_exactly_that_share_of_misses() {
        for (ratio, queries, misses) in [(0.0, 100, 0), (0.1, 100, 10), (0.5, 7, 3), (1.0, 5, 5)] {
            let workload = Workload::new(Names::course(), queries, ratio);
            let counted = (0..queries).filter(|&j| workload.is_miss(j)).count();
            assert_eq!(counted, misses, "ratio {ratio} over {queries}");
        }
    }

    #[test]
    fn queries_cycle_through_the_names_and_misses_are_made_up() {
        let workload = Workload::new(Names::course(), 10, 0.5);
        let (name, expect) = workload.query(3, 1);
        assert_eq!(
            (name.as_ref(), expect),
            ("miss-3-1.invalid", Expect::Absent)
        );
        assert!(wire::is_hostname(&name));
        let (name, expect) = workload.query(0, 0);
        assert_eq!(name, "amazon.org");
        assert_eq!(expect, Expect::Ip("94.5.6.7".parse().unwrap()));
    }

    #[test]
    fn names_file_rejects_conflicting_addresses_and_garbage() {
        let (line, problem) =
            Names::parse(b"a.com 1.1.1.1 A\nb.com\nA.COM 2.2.2.2 A\n").unwrap_err();
        assert_eq!(line, 3);
        assert!(problem.contains("line 1"), "{problem}");
        assert!(Names::parse(b"a.com 1.1.1.1 A\na.com 1.1.1.1 A\n").is_ok());
        assert_eq!(Names::parse(b"bad name!").unwrap_err().0, 1);
        assert_eq!(Names::parse(b"ok.com\nx..y").unwrap_err().0, 2);
        assert_eq!(Names::course().len(), 4);
    }
}
