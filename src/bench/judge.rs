//! Judging every reply: [`check_reply`] says whether a reply is the right one
//! to the query asked, and a client's `Tally` counts the verdicts, timeouts
//! and late replies. What a reply says is read with [`wire`]'s parsers, so
//! the bench holds servers to the same protocol the LS speaks.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::names::Expect;
use crate::wire::{self, ReplyError, same_name};

/// Examples of wrong replies kept per client (and printed per run).
pub const WRONG_EXAMPLES: usize = 10;

/// Timed-out queries remembered per client, to recognise their late replies.
const MAX_OVERDUE: usize = 1024;

/// How one reply was judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// An answer for the name asked (with the expected address, when known).
    Hit,
    /// A miss line for the name asked.
    Miss,
    /// An error line (`- Error:...`, `<name> - Error:INVALID HOSTNAME`, ...).
    Error,
    /// Not a right reply to this query; the text says why.
    Wrong(&'static str),
}

/// Judges `reply` (one reply message, without line ending) to the query
/// `asked`. Names compare ignoring case and a final dot, as lookups do.
///
/// ```
/// use dnslb::bench::{check_reply, Expect, Verdict};
/// let ip = Expect::Ip("46.1.3.7".parse().unwrap());
/// assert_eq!(check_reply("google.site", ip, b"Google.site 46.1.3.7 A"), Verdict::Hit);
/// assert_eq!(check_reply("x.com", Expect::Unknown, b"x.com - Error:HOST NOT FOUND"), Verdict::Miss);
/// assert!(matches!(check_reply("google.site", ip, b"amazon.org 46.1.3.7 A"), Verdict::Wrong(_)));
/// assert!(matches!(check_reply("google.site", ip, b"google.site 1.1.1.1 A"), Verdict::Wrong(_)));
/// ```
pub fn check_reply(asked: &str, expect: Expect, reply: &[u8]) -> Verdict {
    match shape(reply) {
        Shape::Answer(wire::Found { name, ip }) => {
            if !same_name(&name, asked) {
                Verdict::Wrong("answer for another name")
            } else {
                match expect {
                    Expect::Absent => Verdict::Wrong("answer for a name no TS holds"),
                    Expect::Ip(right) if right != ip => {
                        Verdict::Wrong("address differs from the names file")
                    }
                    _ => Verdict::Hit,
                }
            }
        }
        Shape::Miss(name) if same_name(name, asked) => Verdict::Miss,
        Shape::Miss(_) => Verdict::Wrong("miss line for another name"),
        Shape::ErrorLine => Verdict::Error,
        Shape::Other(why) => Verdict::Wrong(why),
    }
}

/// What kind of line a reply is, whatever was asked.
enum Shape<'a> {
    /// `name ip A` or `name ip A IN`.
    Answer(wire::Found),
    /// A miss line (see [`wire::parse_miss`]) about this name.
    Miss(&'a str),
    /// An error line (see [`wire::is_error_line`]).
    ErrorLine,
    /// Anything else, and why it is none of the above.
    Other(&'static str),
}

fn shape(reply: &[u8]) -> Shape<'_> {
    match wire::parse_answer(reply) {
        Ok(answer) => Shape::Answer(answer),
        Err(ReplyError::NotUtf8) => Shape::Other("reply is not UTF-8"),
        Err(ReplyError::Malformed(_)) => match wire::parse_miss(reply) {
            Some(name) => Shape::Miss(name),
            None if wire::is_error_line(reply) => Shape::ErrorLine,
            None => Shape::Other("not an answer, a miss or an error line"),
        },
    }
}

/// The name an answer or a miss line is about.
fn subject(reply: &[u8]) -> Option<Cow<'_, str>> {
    match shape(reply) {
        Shape::Answer(answer) => Some(Cow::Owned(answer.name)),
        Shape::Miss(name) => Some(Cow::Borrowed(name)),
        Shape::ErrorLine | Shape::Other(_) => None,
    }
}

/// What reading the reply to one query gave.
pub(super) enum Read {
    Reply(Vec<u8>),
    TimedOut,
    /// The connection is unusable; the text says why.
    Lost(String),
}

/// What one client counted.
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub(super) hits: u64,
    pub(super) misses: u64,
    /// Misses for names the names file gives an address for.
    pub(super) known_misses: u64,
    pub(super) errors: u64,
    pub(super) wrong: u64,
    pub(super) timeouts: u64,
    /// Replies that came after their query timed out.
    pub(super) late: u64,
    /// Names of the queries that timed out and whose reply may still come,
    /// oldest first (at most [`MAX_OVERDUE`]).
    overdue: VecDeque<String>,
    /// Latency of every reply received, in nanoseconds.
    pub(super) latencies: Vec<u64>,
    pub(super) examples: Vec<String>,
    pub(super) failures: Vec<String>,
}

impl Tally {
    /// An empty tally with room for the latencies of `queries` replies.
    pub(super) fn for_queries(queries: usize) -> Tally {
        Tally {
            latencies: Vec::with_capacity(queries),
            ..Tally::default()
        }
    }

    fn record(&mut self, asked: &str, expect: Expect, reply: &[u8], latency: Duration) {
        self.latencies
            .push(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX));
        match check_reply(asked, expect, reply) {
            Verdict::Hit => self.hits += 1,
            Verdict::Miss => {
                self.misses += 1;
                if matches!(expect, Expect::Ip(_)) {
                    self.known_misses += 1;
                }
            }
            Verdict::Error => self.errors += 1,
            Verdict::Wrong(why) => {
                let got = String::from_utf8_lossy(reply);
                self.wrong(format!("asked {asked:?}, got {:?}: {why}", got.trim()));
            }
        }
    }

    /// Counts a timeout on `asked`; its reply may still come.
    fn timed_out(&mut self, asked: &str) {
        self.timeouts += 1;
        if self.overdue.len() == MAX_OVERDUE {
            self.overdue.pop_front();
        }
        self.overdue.push_back(asked.to_string());
    }

    /// Whether `reply`, read while waiting for `asked`, is the late reply to
    /// a query that timed out: then it is counted as late and dropped, and
    /// the queries overdue before that one are forgotten (replies come in
    /// order, so theirs never will). Matched by name, as the LS matches TS
    /// answers.
    pub(super) fn take_late(&mut self, asked: &str, reply: &[u8]) -> bool {
        if self.overdue.is_empty() {
            return false;
        }
        let Some(name) = subject(reply) else {
            return false;
        };
        if same_name(&name, asked) {
            return false;
        }
        match self.overdue.iter().position(|n| same_name(n, &name)) {
            Some(at) => {
                self.overdue.drain(..=at);
                self.late += 1;
                true
            }
            None => false,
        }
    }

    fn wrong(&mut self, example: String) {
        self.wrong += 1;
        if self.examples.len() < WRONG_EXAMPLES {
            self.examples.push(example);
        }
    }

    /// Counts what reading the reply to `asked` (sent at `sent`) by client
    /// `c` gave; false when the connection is lost.
    pub(super) fn judge(
        &mut self,
        read: Read,
        c: usize,
        asked: &str,
        expect: Expect,
        sent: Instant,
    ) -> bool {
        match read {
            Read::Reply(reply) => self.record(asked, expect, &reply, sent.elapsed()),
            Read::TimedOut => self.timed_out(asked),
            Read::Lost(why) => {
                let done = self.done();
                self.failures
                    .push(format!("client {c}: after {done} replies: {why}"));
                return false;
            }
        }
        true
    }

    /// Replies received plus timeouts: the queries that were dealt with.
    pub(super) fn done(&self) -> u64 {
        self.hits + self.misses + self.errors + self.wrong + self.timeouts
    }

    pub(super) fn merge(&mut self, other: Tally) {
        self.hits += other.hits;
        self.misses += other.misses;
        self.known_misses += other.known_misses;
        self.errors += other.errors;
        self.wrong += other.wrong;
        self.timeouts += other.timeouts;
        self.late += other.late;
        self.latencies.extend(other.latencies);
        for example in other.examples {
            if self.examples.len() < WRONG_EXAMPLES {
                self.examples.push(example);
            }
        }
        self.failures.extend(other.failures);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Expect {
        Expect::Ip(text.parse().unwrap())
    }

    #[test]
    fn answers_are_hits_only_for_the_name_and_address_expected() {
        let expect = ip("1.2.3.4");
        assert_eq!(
            check_reply("a.com", expect, b"a.com 1.2.3.4 A"),
            Verdict::Hit
        );
        assert_eq!(
            check_reply("A.com.", expect, b"a.COM 1.2.3.4 A IN\r"),
            Verdict::Hit
        );
        assert_eq!(
            check_reply("a.com", Expect::Unknown, b"a.com 9.9.9.9 A"),
            Verdict::Hit
        );
        assert_eq!(
            check_reply("a.com", expect, b"b.com 1.2.3.4 A"),
            Verdict::Wrong("answer for another name")
        );
        assert_eq!(
            check_reply("a.com", expect, b"a.com 1.2.3.5 A"),
            Verdict::Wrong("address differs from the names file")
        );
        assert_eq!(
            check_reply(
                "miss-0-1.invalid",
                Expect::Absent,
                b"miss-0-1.invalid 1.2.3.4 A"
            ),
            Verdict::Wrong("answer for a name no TS holds")
        );
    }

    #[test]
    fn miss_lines_count_only_for_the_name_asked() {
        for line in [
            "a.com - Error:HOST NOT FOUND",
            "A.com - TIMED OUT",
            "a.com. - NOT FOUND",
        ] {
            assert_eq!(
                check_reply("a.com", Expect::Absent, line.as_bytes()),
                Verdict::Miss,
                "{line}"
            );
        }
        for other in ["b.com - Error:HOST NOT FOUND", "a b - Error:HOST NOT FOUND"] {
            assert_eq!(
                check_reply("a.com", Expect::Absent, other.as_bytes()),
                Verdict::Wrong("miss line for another name"),
                "{other}"
            );
        }
    }

    #[test]
    fn error_lines_and_garbage_are_told_apart() {
        assert_eq!(
            check_reply("a.com", Expect::Unknown, b"- Error:EMPTY QUERY"),
            Verdict::Error
        );
        assert_eq!(
            check_reply("a.com", Expect::Unknown, b"a.com - Error:INVALID HOSTNAME"),
            Verdict::Error
        );
        for garbage in [
            &b""[..],
            b"a.com",
            b"a.com 1.2.3 A",
            b"a.com 1.2.3.4 MX",
            b"\xff",
        ] {
            assert!(
                matches!(
                    check_reply("a.com", Expect::Unknown, garbage),
                    Verdict::Wrong(_)
                ),
                "{garbage:?}"
            );
        }
    }

    #[test]
    fn wrong_replies_say_why() {
        assert_eq!(
            check_reply("a.com", Expect::Unknown, b"a.com \xff A"),
            Verdict::Wrong("reply is not UTF-8")
        );
        assert_eq!(
            check_reply("a.com", Expect::Unknown, b"a.com 1.2.3.4 MX"),
            Verdict::Wrong("not an answer, a miss or an error line")
        );
    }

    #[test]
    fn late_replies_are_recognised_by_name_and_dropped_once() {
        let mut tally = Tally::default();
        assert!(!tally.take_late("b.com", b"a.com 1.2.3.4 A"));
        tally.timed_out("a.com");
        tally.timed_out("x.com");
        // The reply to the query asked is never late.
        assert!(!tally.take_late("a.com", b"a.com 1.2.3.4 A"));
        assert!(tally.take_late("c.com", b"x.com - Error:HOST NOT FOUND"));
        // x.com's reply came, so a.com's never will: both are forgotten.
        assert!(!tally.take_late("c.com", b"a.com 1.2.3.4 A"));
        assert!(!tally.take_late("c.com", b"- Error:EMPTY QUERY"));
        assert_eq!((tally.timeouts, tally.late), (2, 1));
    }
}
