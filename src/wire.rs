//! The line protocol spoken on every hop: hostname queries, TS answers, LS
//! miss and error lines. Pure functions, no I/O, so that every front end (the
//! line-protocol LS, a later RFC 1035 front end, the bench tool) agrees on what
//! a valid name and a valid answer are.
//!
//! docs/PROTOCOL.md describes the same messages for people; the examples here
//! are asserted by `cargo test`.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// Longest hostname accepted, in bytes (the course spec's limit).
pub const MAX_NAME_LEN: usize = 255;

/// Longest label (the part between dots) accepted, in bytes, as in RFC 1035.
pub const MAX_LABEL_LEN: usize = 63;

/// Longest message (query or reply line, without its line ending) read from a
/// peer before the rest of it is discarded unread.
pub const MAX_MESSAGE_LEN: usize = 512;

/// The line an LS sends a client it cannot serve (too many clients, or
/// short of its own descriptors or threads).
pub const SERVER_BUSY: &str = "- Error:SERVER BUSY";

/// The reply formats of the course's semesters.
///
/// ```
/// use dnslb::wire::Dialect;
/// assert_eq!("2022".parse::<Dialect>(), Ok(Dialect::Y2022));
/// assert!("2021".parse::<Dialect>().is_err());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Dialect {
    /// `name ip A` answers, `name - Error:HOST NOT FOUND` misses.
    #[default]
    Y2020,
    /// `name ip A IN` answers, `name - TIMED OUT` misses.
    Y2022,
}

impl FromStr for Dialect {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "2020" => Ok(Dialect::Y2020),
            "2022" => Ok(Dialect::Y2022),
            other => Err(format!("unknown dialect {other:?}: expected 2020 or 2022")),
        }
    }
}

/// Why a query line is not a hostname that can be looked up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueryError {
    /// The line was empty or only whitespace.
    Empty,
    /// The line was longer than [`MAX_NAME_LEN`] bytes.
    TooLong,
    /// The line was not valid UTF-8.
    NotUtf8,
    /// The line is text but not a hostname (the offending text is kept,
    /// trimmed, with control characters escaped).
    Invalid(String),
}

impl QueryError {
    /// The one reply line the LS sends for this error (without line ending).
    ///
    /// ```
    /// use dnslb::wire::{parse_query, QueryError};
    /// assert_eq!(parse_query(b"  ").unwrap_err().reply(), "- Error:EMPTY QUERY");
    /// assert_eq!(QueryError::TooLong.reply(), "- Error:QUERY TOO LONG");
    /// assert_eq!(parse_query(b"\xff.com").unwrap_err().reply(), "- Error:INVALID UTF-8");
    /// assert_eq!(parse_query(b"a b").unwrap_err().reply(), "a b - Error:INVALID HOSTNAME");
    /// ```
    pub fn reply(&self) -> String {
        match self {
            QueryError::Empty => "- Error:EMPTY QUERY".to_string(),
            QueryError::TooLong => "- Error:QUERY TOO LONG".to_string(),
            QueryError::NotUtf8 => "- Error:INVALID UTF-8".to_string(),
            QueryError::Invalid(text) => format!("{text} - Error:INVALID HOSTNAME"),
        }
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryError::Empty => f.write_str("empty query"),
            QueryError::TooLong => write!(f, "query longer than {MAX_NAME_LEN} bytes"),
            QueryError::NotUtf8 => f.write_str("query is not valid UTF-8"),
            QueryError::Invalid(text) => write!(f, "{text:?} is not a hostname"),
        }
    }
}

impl std::error::Error for QueryError {}

/// A validated query: the hostname as the client sent it (trimmed) and the
/// key it is looked up and matched by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    /// The hostname exactly as sent, without surrounding whitespace.
    pub name: String,
    /// The lookup key: see [`name_key`].
    pub key: String,
}

/// Parses one query message (a line without its line ending, or one bare message).
///
/// ```
/// use dnslb::wire::{parse_query, QueryError};
/// let q = parse_query(b" WWW.Princeton.edu\r").unwrap();
/// assert_eq!(q.name, "WWW.Princeton.edu");
/// assert_eq!(q.key, "www.princeton.edu");
/// assert_eq!(parse_query(b""), Err(QueryError::Empty));
/// assert_eq!(parse_query(&[b'a'; 256]), Err(QueryError::TooLong));
/// ```
///
/// # Errors
/// A [`QueryError`] when the message is not a single valid hostname.
pub fn parse_query(message: &[u8]) -> Result<Query, QueryError> {
    let text = std::str::from_utf8(message).map_err(|_| QueryError::NotUtf8)?;
    let name = text.trim();
    if name.is_empty() {
        return Err(QueryError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(QueryError::TooLong);
    }
    if !is_hostname(name) {
        return Err(QueryError::Invalid(escape_controls(name)));
    }
    Ok(Query {
        name: name.to_string(),
        key: name_key(name),
    })
}

/// `text` with control characters written as escapes (`\r`, `\u{1b}`), so
/// that echoing it keeps a reply on one line.
///
/// ```
/// use dnslb::wire::parse_query;
/// assert_eq!(parse_query(b"a\rb\x1b").unwrap_err().reply(), r"a\rb\u{1b} - Error:INVALID HOSTNAME");
/// ```
fn escape_controls(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    escaped
}

/// Whether `name` is a hostname: dot-separated labels of 1 to 63 ASCII
/// letters, digits, `-` or `_`, at most 255 bytes, with an optional final dot.
///
/// ```
/// use dnslb::wire::is_hostname;
/// assert!(is_hostname("www.princeton.edu"));
/// assert!(is_hostname("localhost"));
/// assert!(is_hostname("example.com."));
/// assert!(!is_hostname("a..b"));
/// assert!(!is_hostname("a b"));
/// assert!(!is_hostname("."));
/// ```
pub fn is_hostname(name: &str) -> bool {
    let body = name.strip_suffix('.').unwrap_or(name).as_bytes();
    if body.is_empty() || name.len() > MAX_NAME_LEN {
        return false;
    }
    // One pass over the bytes (every query and reply is checked): the
    // length of the label so far, 0 right after a dot.
    let mut label = 0;
    for &b in body {
        if b == b'.' {
            if label == 0 {
                return false;
            }
            label = 0;
        } else if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            label += 1;
            if label > MAX_LABEL_LEN {
                return false;
            }
        } else {
            return false;
        }
    }
    label > 0
}

/// The key a hostname is looked up and matched by: lower case, without a final dot.
///
/// ```
/// use dnslb::wire::name_key;
/// assert_eq!(name_key("Google.SITE."), "google.site");
/// ```
pub fn name_key(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// Whether two hostnames are the same name, as [`name_key`] compares them
/// (ignoring case and a final dot), without building the keys.
///
/// ```
/// use dnslb::wire::same_name;
/// assert!(same_name("Google.SITE.", "google.site"));
/// assert!(!same_name("google.site", "google.sit"));
/// ```
pub fn same_name(a: &str, b: &str) -> bool {
    let a = a.strip_suffix('.').unwrap_or(a);
    let b = b.strip_suffix('.').unwrap_or(b);
    a.eq_ignore_ascii_case(b)
}

/// A TS's positive answer, the name found and its address: `name ip A`
/// (2020) or `name ip A IN` (2022).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// The hostname as the TS's table spells it.
    pub name: String,
    /// Its address.
    pub ip: Ipv4Addr,
}

impl Found {
    /// The answer line in `dialect` (without line ending).
    ///
    /// ```
    /// use dnslb::wire::{Dialect, Found};
    /// let a = Found { name: "google.site".into(), ip: "46.1.3.7".parse().unwrap() };
    /// assert_eq!(a.line(Dialect::Y2020), "google.site 46.1.3.7 A");
    /// assert_eq!(a.line(Dialect::Y2022), "google.site 46.1.3.7 A IN");
    /// ```
    pub fn line(&self, dialect: Dialect) -> String {
        match dialect {
            Dialect::Y2020 => format!("{} {} A", self.name, self.ip),
            Dialect::Y2022 => format!("{} {} A IN", self.name, self.ip),
        }
    }
}

/// Why a line from a TS is not an answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplyError {
    /// Not valid UTF-8.
    NotUtf8,
    /// Text, but not `name ip A` or `name ip A IN` with a hostname and an IPv4 address.
    Malformed(String),
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyError::NotUtf8 => f.write_str("reply is not valid UTF-8"),
            ReplyError::Malformed(text) => write!(f, "{text:?} is not `name ip A`"),
        }
    }
}

impl std::error::Error for ReplyError {}

/// Parses a TS reply in either dialect.
///
/// ```
/// use dnslb::wire::parse_answer;
/// let a = parse_answer(b"GOOGLE.com 46.1.3.7 A").unwrap();
/// assert_eq!((a.name.as_str(), a.ip.to_string().as_str()), ("GOOGLE.com", "46.1.3.7"));
/// assert!(parse_answer(b"google.com 46.1.3.7 A IN\r").is_ok());
/// assert!(parse_answer(b"google.com 46.1.3 A").is_err());
/// assert!(parse_answer(b"google.com 46.1.3.7 MX").is_err());
/// assert!(parse_answer(b"google.com - Error:HOST NOT FOUND").is_err());
/// ```
///
/// # Errors
/// A [`ReplyError`] when the message is not an answer.
pub fn parse_answer(message: &[u8]) -> Result<Found, ReplyError> {
    let text = std::str::from_utf8(message).map_err(|_| ReplyError::NotUtf8)?;
    let malformed = || ReplyError::Malformed(text.trim().to_string());
    // The fields between ASCII whitespace, as `split_ascii_whitespace`
    // gives them, found with a plain byte loop (every reply of every TS
    // goes through here); each starts and ends at an ASCII byte.
    let (bytes, mut pos) = (text.as_bytes(), 0);
    let mut next_field = || {
        while bytes.get(pos).is_some_and(u8::is_ascii_whitespace) {
            pos += 1;
        }
        let start = pos;
        while bytes.get(pos).is_some_and(|b| !b.is_ascii_whitespace()) {
            pos += 1;
        }
        text.get(start..pos).filter(|field| !field.is_empty())
    };
    let (name, ip) = match [(); 5].map(|()| next_field()) {
        [Some(name), Some(ip), Some("A"), None | Some("IN"), None] => (name, ip),
        _ => return Err(malformed()),
    };
    if !is_hostname(name) {
        return Err(malformed());
    }
    let ip = ip.parse().map_err(|_| malformed())?;
    Ok(Found {
        name: name.to_string(),
        ip,
    })
}

/// A TS's negative answer, sent by `dnslb ts --answer-misses` instead of
/// silence.
///
/// ```
/// use dnslb::wire::not_found_line;
/// assert_eq!(not_found_line("nothinghere.com"), "nothinghere.com - NOT FOUND");
/// ```
pub fn not_found_line(query: &str) -> String {
    format!("{query}{NOT_FOUND}")
}

/// How a TS's negative answer ends, after the name.
const NOT_FOUND: &str = " - NOT FOUND";

/// How the LS's miss line ends, after the name, in each dialect.
const MISS_2020: &str = " - Error:HOST NOT FOUND";
const MISS_2022: &str = " - TIMED OUT";

/// What a TS can send: an answer, or (with `--answer-misses`) a negative answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `name ip A` or `name ip A IN`.
    Found(Found),
    /// `name - NOT FOUND`: the TS does not hold `name`.
    NotFound(String),
}

impl Reply {
    /// The name the reply is about.
    pub fn name(&self) -> &str {
        match self {
            Reply::Found(found) => &found.name,
            Reply::NotFound(name) => name,
        }
    }
}

/// Parses anything a TS may send.
///
/// ```
/// use dnslb::wire::{parse_reply, Reply};
/// assert!(matches!(parse_reply(b"a.com 1.2.3.4 A"), Ok(Reply::Found(_))));
/// assert_eq!(parse_reply(b"A.com - NOT FOUND"), Ok(Reply::NotFound("A.com".into())));
/// assert!(parse_reply(b"a b - NOT FOUND").is_err());
/// ```
///
/// # Errors
/// A [`ReplyError`] when the message is neither.
pub fn parse_reply(message: &[u8]) -> Result<Reply, ReplyError> {
    if let Some(name) = message.strip_suffix(NOT_FOUND.as_bytes()) {
        let text = std::str::from_utf8(name)
            .map_err(|_| ReplyError::NotUtf8)?
            .trim();
        return if is_hostname(text) {
            Ok(Reply::NotFound(text.to_string()))
        } else {
            Err(ReplyError::Malformed(format!("{text}{NOT_FOUND}")))
        };
    }
    parse_answer(message).map(Reply::Found)
}

/// The LS's reply when no TS answered `query` in time.
///
/// ```
/// use dnslb::wire::{miss_line, Dialect};
/// assert_eq!(miss_line("nothinghere.com", Dialect::Y2020), "nothinghere.com - Error:HOST NOT FOUND");
/// assert_eq!(miss_line("nothinghere.com", Dialect::Y2022), "nothinghere.com - TIMED OUT");
/// ```
pub fn miss_line(query: &str, dialect: Dialect) -> String {
    match dialect {
        Dialect::Y2020 => format!("{query}{MISS_2020}"),
        Dialect::Y2022 => format!("{query}{MISS_2022}"),
    }
}

/// The name a miss line is about: the LS's miss line in either dialect or a
/// TS's negative answer, trimmed, as written (it is not checked to be a
/// hostname: compare it with the name asked). `None` for any other message.
///
/// ```
/// use dnslb::wire::{miss_line, not_found_line, parse_miss, Dialect};
/// assert_eq!(parse_miss(miss_line("a.com", Dialect::Y2020).as_bytes()), Some("a.com"));
/// assert_eq!(parse_miss(miss_line("a.com", Dialect::Y2022).as_bytes()), Some("a.com"));
/// assert_eq!(parse_miss(not_found_line("A.com.").as_bytes()), Some("A.com."));
/// assert_eq!(parse_miss(b" a.com - TIMED OUT\r"), Some("a.com"));
/// assert_eq!(parse_miss(b"a.com 1.2.3.4 A"), None);
/// assert_eq!(parse_miss(b"- Error:EMPTY QUERY"), None);
/// ```
pub fn parse_miss(message: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(message).ok()?.trim();
    [MISS_2020, MISS_2022, NOT_FOUND]
        .iter()
        .find_map(|ending| text.strip_suffix(ending))
        .map(str::trim)
}

/// Whether `message` is one of the LS's error lines: `- Error:...` for a
/// query that is no hostname, `<text> - Error:...` when it echoes the query.
/// A 2020 miss line has the same shape; try [`parse_miss`] first.
///
/// ```
/// use dnslb::wire::{is_error_line, parse_query};
/// assert!(is_error_line(parse_query(b"").unwrap_err().reply().as_bytes()));
/// assert!(is_error_line(parse_query(b"a b").unwrap_err().reply().as_bytes()));
/// assert!(!is_error_line(b"a.com 1.2.3.4 A"));
/// assert!(!is_error_line(b"Error: no"));
/// ```
pub fn is_error_line(message: &[u8]) -> bool {
    std::str::from_utf8(message)
        .map(str::trim)
        .is_ok_and(|text| text.starts_with("- Error:") || text.contains(" - Error:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostname_labels_are_one_to_63_bytes_of_letters_digits_hyphen_underscore() {
        let label = |n| "a".repeat(n);
        assert!(is_hostname(&label(63)));
        assert!(!is_hostname(&label(64)));
        assert!(is_hostname(&format!("{}.b", label(63))));
        assert!(!is_hostname(&format!("b.{}", label(64))));
        for bad in [".a", "a.", "..", "a..", "a.b..", "a/b", "é.com", ""] {
            assert_eq!(is_hostname(bad), bad == "a.", "{bad:?}");
        }
        assert!(is_hostname("x_y-1.Z9"));
        let long = vec![label(63); 4].join(".");
        assert_eq!(long.len(), 255);
        assert!(is_hostname(&long) && !is_hostname(&format!("{long}a")));
    }

    #[test]
    fn answer_fields_split_at_any_ascii_whitespace() {
        let found = parse_answer(b"\t a.com \t 1.2.3.4\x0cA  IN \r").unwrap();
        assert_eq!(
            (found.name.as_str(), found.ip.to_string()),
            ("a.com", "1.2.3.4".into())
        );
        for bad in [
            &b"a.com 1.2.3.4"[..],
            b"a.com 1.2.3.4 A IN x",
            b"a.com 1.2.3.4 A x",
            b"",
        ] {
            assert!(parse_answer(bad).is_err(), "{bad:?}");
        }
    }
}
