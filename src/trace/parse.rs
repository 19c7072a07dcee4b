//! Reading a trace file (`--trace FILE` of `dnslb ls` and of
//! scripts/select_ls.py): one JSON object per line, each one step of one
//! query. No I/O but [`load`]'s one read of the file.
//!
//! ```text
//! {"t_us":1234,"thread":"worker-3","query":17,"name":"www.google.com","event":"send","ts":"ts1"}
//! ```
//!
//! `t_us`, `thread`, `query` and `event` are required; `name`, `ts`,
//! `outcome`, `frontend` and `client` are read where present. Keys this
//! reader does not know, and events it does not know, are kept out of the
//! way (an unknown event becomes [`Kind::Other`]), never an error: a newer
//! recorder's file still draws. A line that is not such an object is an
//! error naming the file and the line. Blank lines are skipped.

use std::path::Path;

use crate::linefile::FileError;

/// What one step of a query was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// The query came in from a client (`frontend`, `client`).
    Arrive,
    /// It was sent to the TS `ts`.
    Send,
    /// The TS `ts` replied.
    Reply,
    /// Its outcome was decided (`outcome`, and `ts` when a TS answered).
    Settle,
    /// Its reply was written to the client.
    Write,
    /// The cache was asked (`outcome`: hit, miss or stale).
    Cache,
    /// A pool query moved on to the member `ts`.
    Retry,
    /// An event this reader does not know, by its name.
    Other(String),
}

impl Kind {
    /// The kind an `event` value names.
    ///
    /// ```
    /// use dnslb::trace::parse::Kind;
    /// assert_eq!(Kind::named("send"), Kind::Send);
    /// assert_eq!(Kind::named("evict"), Kind::Other("evict".into()));
    /// ```
    pub fn named(name: &str) -> Kind {
        match name {
            "arrive" => Kind::Arrive,
            "send" => Kind::Send,
            "reply" => Kind::Reply,
            "settle" => Kind::Settle,
            "write" => Kind::Write,
            "cache" => Kind::Cache,
            "retry" => Kind::Retry,
            other => Kind::Other(other.to_string()),
        }
    }

    /// The `event` value of this kind.
    pub fn name(&self) -> &str {
        match self {
            Kind::Arrive => "arrive",
            Kind::Send => "send",
            Kind::Reply => "reply",
            Kind::Settle => "settle",
            Kind::Write => "write",
            Kind::Cache => "cache",
            Kind::Retry => "retry",
            Kind::Other(name) => name,
        }
    }
}

/// One line of a trace file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The line of the file it came from (from 1).
    pub line: usize,
    /// Microseconds since the LS started.
    pub t_us: u64,
    /// The thread that recorded it (`worker-3`, `select-1`, ...).
    pub thread: String,
    /// The query's id, unique in the LS.
    pub query: u64,
    /// The query's name (empty when the line has none).
    pub name: String,
    /// What happened.
    pub kind: Kind,
    /// The TS it concerns (`ts1`, ...), where it applies.
    pub ts: Option<String>,
    /// `settle`'s and `cache`'s outcome.
    pub outcome: Option<String>,
    /// `arrive`'s front end: course, dns_udp or dns_tcp.
    pub frontend: Option<String>,
    /// `arrive`'s client address, `IP:PORT`.
    pub client: Option<String>,
}

/// The longest line read, in bytes: a trace line is a few hundred.
pub const MAX_LINE: usize = 64 * 1024;

/// How deep arrays and objects nest in a value of an unknown key.
const MAX_DEPTH: usize = 32;

/// Reads the trace file at `path`.
///
/// # Errors
/// [`FileError`] naming the file when it cannot be read or holds no
/// events, and the line when one is malformed.
pub fn load(path: &Path) -> Result<Vec<Event>, FileError> {
    crate::linefile::load(path, parse, Vec::is_empty, "events")
}

/// Parses a whole trace file; a malformed line is returned as its number
/// and problem.
///
/// # Errors
/// The first malformed line's number (from 1) and what is wrong with it.
pub fn parse(text: &[u8]) -> Result<Vec<Event>, (usize, String)> {
    let mut events = Vec::new();
    for (index, raw) in text.split(|&b| b == b'\n').enumerate() {
        let number = index + 1;
        if raw.len() > MAX_LINE {
            return Err((number, format!("line longer than {MAX_LINE} bytes")));
        }
        let line = std::str::from_utf8(raw).map_err(|_| (number, "not valid UTF-8".to_string()))?;
        if line.trim().is_empty() {
            continue;
        }
        events.push(parse_line(line, number).map_err(|problem| (number, problem))?);
    }
    Ok(events)
}

/// Parses one line, numbered `line`, into an event.
///
/// ```
/// use dnslb::trace::parse::{parse_line, Kind};
/// let line = r#"{"t_us":1234,"thread":"worker-3","query":17,"name":"www.google.com","event":"send","ts":"ts1"}"#;
/// let event = parse_line(line, 1).unwrap();
/// assert_eq!((event.t_us, event.query, event.kind), (1234, 17, Kind::Send));
/// assert_eq!(event.ts.as_deref(), Some("ts1"));
/// assert!(parse_line(r#"{"t_us":1}"#, 1).unwrap_err().contains("thread"));
/// ```
///
/// # Errors
/// What is wrong: not a JSON object, a required key missing, a value of
/// the wrong type.
pub fn parse_line(text: &str, line: usize) -> Result<Event, String> {
    let fields = Json::new(text).object()?;
    let mut t_us = None;
    let mut thread = None;
    let mut query = None;
    let mut event = None;
    let mut name = String::new();
    let (mut ts, mut outcome, mut frontend, mut client) = (None, None, None, None);
    for (key, value) in fields {
        let slot = match key.as_str() {
            "t_us" => {
                t_us = Some(whole(&key, value)?);
                continue;
            }
            "query" => {
                query = Some(whole(&key, value)?);
                continue;
            }
            "thread" => &mut thread,
            "event" => &mut event,
            "ts" => &mut ts,
            "outcome" => &mut outcome,
            "frontend" => &mut frontend,
            "client" => &mut client,
            "name" => {
                name = string(&key, value)?;
                continue;
            }
            _ => continue,
        };
        *slot = Some(string(&key, value)?);
    }
    let missing = |key: &str| format!("no \"{key}\" in the event");
    Ok(Event {
        line,
        t_us: t_us.ok_or_else(|| missing("t_us"))?,
        thread: thread.ok_or_else(|| missing("thread"))?,
        query: query.ok_or_else(|| missing("query"))?,
        name,
        kind: Kind::named(&event.ok_or_else(|| missing("event"))?),
        ts,
        outcome,
        frontend,
        client,
    })
}

/// `value` of `key` as a whole number of at least 0.
fn whole(key: &str, value: Value) -> Result<u64, String> {
    match value {
        Value::Number(text) => text
            .parse()
            .map_err(|_| format!("\"{key}\" must be a whole number of at least 0, not {text}")),
        other => Err(format!(
            "\"{key}\" must be a whole number, not {}",
            other.kind()
        )),
    }
}

/// `value` of `key` as a string.
fn string(key: &str, value: Value) -> Result<String, String> {
    match value {
        Value::String(text) => Ok(text),
        other => Err(format!("\"{key}\" must be a string, not {}", other.kind())),
    }
}

/// A JSON value as far as the trace reader needs it: strings and numbers
/// kept, anything else only recognised.
#[derive(Debug, PartialEq)]
enum Value {
    String(String),
    /// The number as written.
    Number(String),
    /// `true`, `false`, `null`, an array or an object.
    Other(&'static str),
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::String(_) => "a string",
            Value::Number(_) => "a number",
            Value::Other(kind) => kind,
        }
    }
}

/// A cursor over one line of JSON (RFC 8259).
struct Json<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Json<'a> {
    fn new(text: &'a str) -> Self {
        Json { text, at: 0 }
    }

    fn rest(&self) -> &'a str {
        &self.text[self.at..]
    }

    fn skip_space(&mut self) {
        let rest = self.rest();
        self.at += rest.len() - rest.trim_start_matches([' ', '\t', '\r', '\n']).len();
    }

    /// The next character, after whitespace, without taking it.
    fn peek(&mut self) -> Option<char> {
        self.skip_space();
        self.rest().chars().next()
    }

    fn expect(&mut self, wanted: char, what: &str) -> Result<(), String> {
        match self.peek() {
            Some(c) if c == wanted => {
                self.at += c.len_utf8();
                Ok(())
            }
            Some(c) => Err(format!(
                "expected {what} at column {}, found {c:?}",
                self.at + 1
            )),
            None => Err(format!(
                "expected {what} at column {}, found the end of the line",
                self.at + 1
            )),
        }
    }

    /// The whole line as one object: its keys and values in order.
    fn object(mut self) -> Result<Vec<(String, Value)>, String> {
        if self.peek() != Some('{') {
            return Err("not a JSON object (a trace line is {\"t_us\":...})".to_string());
        }
        let fields = self.members(0)?;
        if let Some(c) = self.peek() {
            return Err(format!(
                "unexpected {c:?} at column {} after the object",
                self.at + 1
            ));
        }
        Ok(fields)
    }

    /// An object's members, from its `{` to its `}`.
    fn members(&mut self, depth: usize) -> Result<Vec<(String, Value)>, String> {
        self.expect('{', "{")?;
        let mut fields = Vec::new();
        if self.peek() == Some('}') {
            self.at += 1;
            return Ok(fields);
        }
        loop {
            if self.peek() != Some('"') {
                return Err(format!(
                    "expected a key in quotes at column {}",
                    self.at + 1
                ));
            }
            let key = self.string()?;
            self.expect(':', "':' after a key")?;
            let value = self.value(depth + 1)?;
            fields.push((key, value));
            match self.peek() {
                Some(',') => self.at += 1,
                Some('}') => {
                    self.at += 1;
                    return Ok(fields);
                }
                None => return Err("the line ends inside the object".to_string()),
                _ => {
                    return Err(format!("expected ',' or '}}' at column {}", self.at + 1));
                }
            }
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err(format!("values nested more than {MAX_DEPTH} deep"));
        }
        match self.peek() {
            Some('"') => self.string().map(Value::String),
            Some('{') => self.members(depth).map(|_| Value::Other("an object")),
            Some('[') => self.array(depth).map(|()| Value::Other("an array")),
            Some('-' | '0'..='9') => self.number().map(Value::Number),
            Some(_) => {
                for (word, kind) in [("true", "true"), ("false", "false"), ("null", "null")] {
                    if self.rest().starts_with(word) {
                        self.at += word.len();
                        return Ok(Value::Other(kind));
                    }
                }
                Err(format!("expected a value at column {}", self.at + 1))
            }
            None => Err("the line ends inside the object".to_string()),
        }
    }

    fn array(&mut self, depth: usize) -> Result<(), String> {
        self.expect('[', "[")?;
        if self.peek() == Some(']') {
            self.at += 1;
            return Ok(());
        }
        loop {
            self.value(depth + 1)?;
            match self.peek() {
                Some(',') => self.at += 1,
                Some(']') => {
                    self.at += 1;
                    return Ok(());
                }
                None => return Err("the line ends inside an array".to_string()),
                _ => return Err(format!("expected ',' or ']' at column {}", self.at + 1)),
            }
        }
    }

    /// A number, as written; its syntax checked.
    fn number(&mut self) -> Result<String, String> {
        let start = self.at;
        let rest = self.rest();
        let end = rest
            .find(|c: char| !matches!(c, '0'..='9' | '-' | '+' | '.' | 'e' | 'E'))
            .unwrap_or(rest.len());
        let text = &rest[..end];
        let digits = text.strip_prefix('-').unwrap_or(text);
        let (int, frac_exp) = digits
            .find(['.', 'e', 'E'])
            .map_or((digits, ""), |i| digits.split_at(i));
        let valid_int = int == "0"
            || (!int.is_empty()
                && !int.starts_with('0')
                && int.bytes().all(|b| b.is_ascii_digit()));
        if !valid_int || text.parse::<f64>().is_err() || frac_exp.starts_with("..") {
            return Err(format!("{text:?} at column {} is not a number", start + 1));
        }
        self.at += end;
        Ok(text.to_string())
    }

    /// A string from its opening quote, its escapes decoded.
    fn string(&mut self) -> Result<String, String> {
        let start = self.at;
        self.expect('"', "'\"'")?;
        let mut out = String::new();
        let unterminated = || format!("the string at column {} is not closed", start + 1);
        loop {
            let mut chars = self.rest().char_indices();
            let (_, c) = chars.next().ok_or_else(unterminated)?;
            self.at += c.len_utf8();
            match c {
                '"' => return Ok(out),
                '\\' => out.push(self.escape()?),
                c if (c as u32) < 0x20 => {
                    return Err(format!(
                        "a control character in the string at column {}",
                        start + 1
                    ));
                }
                c => out.push(c),
            }
        }
    }

    /// The character an escape after `\` stands for.
    fn escape(&mut self) -> Result<char, String> {
        let column = self.at;
        let c = self
            .rest()
            .chars()
            .next()
            .ok_or_else(|| "the line ends inside an escape".to_string())?;
        self.at += c.len_utf8();
        Ok(match c {
            '"' => '"',
            '\\' => '\\',
            '/' => '/',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'u' => {
                let high = self.hex4()?;
                if (0xD800..0xDC00).contains(&high) {
                    if !self.rest().starts_with("\\u") {
                        return Ok(char::REPLACEMENT_CHARACTER);
                    }
                    self.at += 2;
                    let low = self.hex4()?;
                    if !(0xDC00..0xE000).contains(&low) {
                        return Ok(char::REPLACEMENT_CHARACTER);
                    }
                    let code = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
                    char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER)
                } else {
                    char::from_u32(high).unwrap_or(char::REPLACEMENT_CHARACTER)
                }
            }
            other => return Err(format!("\\{other} at column {column} is not a JSON escape")),
        })
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let digits = self.rest().get(..4).unwrap_or("");
        if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "\\u at column {} needs four hex digits",
                self.at - 1
            ));
        }
        self.at += 4;
        Ok(u32::from_str_radix(digits, 16).expect("four hex digits"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(line: &str) -> Event {
        parse_line(line, 1).unwrap_or_else(|e| panic!("{line}: {e}"))
    }

    #[test]
    fn every_event_of_the_format_is_read() {
        let arrive = event(
            r#"{"t_us":10,"thread":"reader-1","query":3,"name":"a.com","event":"arrive","frontend":"course","client":"127.0.0.1:4000"}"#,
        );
        assert_eq!(arrive.kind, Kind::Arrive);
        assert_eq!(arrive.frontend.as_deref(), Some("course"));
        assert_eq!(arrive.client.as_deref(), Some("127.0.0.1:4000"));
        assert_eq!((arrive.t_us, arrive.query), (10, 3));
        assert_eq!(arrive.thread, "reader-1");
        assert_eq!(arrive.name, "a.com");
        let settle = event(
            r#"{"t_us":99,"thread":"worker-1","query":3,"name":"a.com","event":"settle","outcome":"answer","ts":"ts2"}"#,
        );
        assert_eq!(settle.kind, Kind::Settle);
        assert_eq!(settle.outcome.as_deref(), Some("answer"));
        assert_eq!(settle.ts.as_deref(), Some("ts2"));
        for (name, kind) in [
            ("send", Kind::Send),
            ("reply", Kind::Reply),
            ("write", Kind::Write),
            ("cache", Kind::Cache),
            ("retry", Kind::Retry),
        ] {
            let line =
                format!(r#"{{"t_us":1,"thread":"t","query":1,"name":"n","event":"{name}"}}"#);
            assert_eq!(event(&line).kind, kind);
            assert_eq!(kind.name(), name);
        }
    }

    #[test]
    fn escapes_are_decoded() {
        let e = event(
            r#"{"t_us":1,"thread":"w\"1\\","query":1,"name":"a\u00e9\ud83d\ude00\n\t\/<&>","event":"send"}"#,
        );
        assert_eq!(e.thread, "w\"1\\");
        assert_eq!(e.name, "a\u{e9}\u{1F600}\n\t/<&>");
        // A lone surrogate is not a character: it reads as U+FFFD.
        assert_eq!(
            event(r#"{"t_us":1,"thread":"t","query":1,"name":"\ud800x","event":"send"}"#).name,
            "\u{FFFD}x"
        );
    }

    #[test]
    fn unknown_keys_and_events_are_ignored() {
        let e = event(
            r#" { "future" : {"a":[1,2.5e3,{"b":null}],"c":true}, "t_us" : 5 , "thread":"udp-1","query":2,"event":"evict","rtt":1.5,"x":false,"y":[]} "#,
        );
        assert_eq!(e.kind, Kind::Other("evict".into()));
        assert_eq!((e.t_us, e.query, e.name.as_str()), (5, 2, ""));
    }

    #[test]
    fn malformed_lines_are_errors_saying_what_is_wrong() {
        for (line, problem) in [
            ("", "not a JSON object"),
            ("[1]", "not a JSON object"),
            ("{\"t_us\":1", "ends inside"),
            (
                r#"{"t_us":1,"thread":"t","query":1,"event":"send"} x"#,
                "after the object",
            ),
            (r#"{"thread":"t","query":1,"event":"send"}"#, "no \"t_us\""),
            (r#"{"t_us":1,"query":1,"event":"send"}"#, "no \"thread\""),
            (r#"{"t_us":1,"thread":"t","event":"send"}"#, "no \"query\""),
            (r#"{"t_us":1,"thread":"t","query":1}"#, "no \"event\""),
            (
                r#"{"t_us":-1,"thread":"t","query":1,"event":"s"}"#,
                "at least 0",
            ),
            (
                r#"{"t_us":1.5,"thread":"t","query":1,"event":"s"}"#,
                "whole number",
            ),
            (
                r#"{"t_us":"1","thread":"t","query":1,"event":"s"}"#,
                "not a string",
            ),
            (
                r#"{"t_us":1,"thread":2,"query":1,"event":"s"}"#,
                "must be a string",
            ),
            (
                r#"{"t_us":01,"thread":"t","query":1,"event":"s"}"#,
                "not a number",
            ),
            (
                r#"{"t_us":1,"thread":"t\x","query":1,"event":"s"}"#,
                "not a JSON escape",
            ),
            (
                r#"{"t_us":1,"thread":"t\u12","query":1,"event":"s"}"#,
                "four hex digits",
            ),
            (r#"{"t_us":1,"thread":"t"#, "not closed"),
            (r#"{"t_us":1 "thread":"t"}"#, "expected ',' or '}'"),
            (r#"{t_us:1}"#, "a key in quotes"),
            (r#"{"a":tru}"#, "expected a value"),
        ] {
            let error = parse_line(line, 1).expect_err(line);
            assert!(error.contains(problem), "{line}: {error}");
        }
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(40), "]".repeat(40));
        assert!(parse_line(&deep, 1).unwrap_err().contains("nested"));
    }

    #[test]
    fn a_file_names_its_malformed_line() {
        let text = b"{\"t_us\":1,\"thread\":\"t\",\"query\":1,\"event\":\"send\"}\n\n{oops}\n";
        let (line, problem) = parse(text).unwrap_err();
        assert_eq!(line, 3);
        assert!(problem.contains("key in quotes"), "{problem}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        std::fs::write(&path, text).unwrap();
        let error = load(&path).unwrap_err().to_string();
        assert!(
            error.starts_with(&format!("{}:3: ", path.display())),
            "{error}"
        );
        std::fs::write(&path, "\n\n").unwrap();
        assert!(load(&path).unwrap_err().to_string().contains("no events"));
    }

    #[test]
    fn good_lines_of_a_file_are_read_in_order_with_their_numbers() {
        let text = b"{\"t_us\":1,\"thread\":\"t\",\"query\":1,\"event\":\"arrive\"}\r\n\n{\"t_us\":2,\"thread\":\"t\",\"query\":1,\"event\":\"write\"}";
        let events = parse(text).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!((events[0].line, events[1].line), (1, 3));
        assert_eq!(events[1].kind, Kind::Write);
        let long = vec![b' '; MAX_LINE + 1];
        assert_eq!(parse(&long).unwrap_err().0, 1);
        assert_eq!(parse(b"\xff").unwrap_err(), (1, "not valid UTF-8".into()));
    }
}
