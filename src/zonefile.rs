//! Zone files: RFC 1035 §5 master files, read into the [`Zone`] of one
//! zone a TS serves with `--zone`.
//!
//! Supported: `$ORIGIN` and `$TTL` (RFC 2308 §4), `@` for the origin, names
//! relative to the origin, parentheses joining lines, `;` comments, a blank
//! owner repeating the previous record's, an optional TTL (seconds, or with
//! units `1h30m`, `2d`, `1w`) and class `IN` in either order before the
//! type, quoted strings and escapes (`\X`, `\DDD`) in TXT data. Types:
//! SOA, NS, A, AAAA, CNAME, MX, TXT and PTR; any other is an error, as are
//! `$INCLUDE`, wildcards and other classes.
//!
//! The zone's apex is its SOA's owner. As `named-checkzone` does, a file is
//! refused unless it has exactly one SOA, at the apex, and NS records at the
//! apex; a CNAME shares its name with no other data; every name is at or
//! below the apex; below a delegation (NS records at a name under the
//! apex) there is nothing but glue (A and AAAA records); and a server named
//! by an NS record inside the zone has an address there and is no alias. A record that
//! repeats another, or whose TTL differs from its RRset's, is refused too.
//!
//! Parsing is pure: text in, the zone or the first error's line (from 1)
//! and what is wrong out; [`load`] adds the file's name.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use crate::dns::{CLASS_IN, Name, RData, Record, RecordType};
use crate::linefile::FileError;
use crate::zone::{self, Entry, Zone, is_at_or_below};

/// Longest TTL (RFC 2181 §8).
const MAX_TTL: u32 = 0x7FFF_FFFF;

/// The types a zone file may hold.
const TYPES: [(&str, RecordType); 8] = [
    ("SOA", RecordType::SOA),
    ("NS", RecordType::NS),
    ("A", RecordType::A),
    ("AAAA", RecordType::AAAA),
    ("CNAME", RecordType::CNAME),
    ("MX", RecordType::MX),
    ("TXT", RecordType::TXT),
    ("PTR", RecordType::PTR),
];

/// A parsed and checked zone file.
#[derive(Debug)]
pub struct ZoneFile {
    /// The zone's apex (its SOA's owner), as written.
    pub apex: Name,
    /// Each record and the line it starts on, in file order.
    pub records: Vec<(usize, Record)>,
}

impl ZoneFile {
    /// The apex's key ([`zone::key`]).
    pub fn apex_key(&self) -> String {
        zone::key(&self.apex)
    }

    /// The zone's records as the [`Zone`] of this one zone.
    pub fn to_zone(&self) -> Zone {
        let mut zone = Zone::default();
        for (_, record) in &self.records {
            let spelt = record.name.to_string();
            let spelt = spelt.strip_suffix('.').unwrap_or(&spelt).to_string();
            zone.add(
                zone::key(&record.name),
                Entry {
                    record: record.clone(),
                    spelt,
                },
            );
        }
        zone.serve(self.apex_key());
        zone
    }
}

/// Loads and checks a zone file.
///
/// # Errors
/// [`FileError::Io`] when the file cannot be read, [`FileError::Line`]
/// for the first error in it.
pub fn load(path: &Path) -> Result<ZoneFile, FileError> {
    let bytes = std::fs::read(path).map_err(|error| FileError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    parse(&bytes).map_err(|(line, problem)| FileError::Line {
        path: path.to_path_buf(),
        line,
        problem,
    })
}

/// Parses and checks a zone file's text.
///
/// ```
/// use dnslb::zonefile::parse;
/// let zone = parse(b"$ORIGIN example.test.\n$TTL 1h\n\
///     @ IN SOA ns hostmaster 1 7200 900 1209600 300\n\
///     \tNS ns\n\
///     ns A 192.0.2.1\n").unwrap();
/// assert_eq!(zone.apex.to_string(), "example.test.");
/// assert_eq!(zone.records.len(), 3);
/// assert_eq!(zone.records[2].1.ttl, 3600);
/// let (line, problem) = parse(b"$TTL 60\nexample.test. SOA a. b. 1 2 3 4 5\nexample.test. HINFO x y\n").unwrap_err();
/// assert_eq!(line, 3);
/// assert!(problem.contains("HINFO"), "{problem}");
/// ```
///
/// # Errors
/// The first error's line number (from 1) and what is wrong.
pub fn parse(text: &[u8]) -> Result<ZoneFile, (usize, String)> {
    let text = std::str::from_utf8(text).map_err(|e| {
        let line = 1 + text[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        (
            line,
            "not UTF-8 text (use \\DDD escapes for other bytes)".to_string(),
        )
    })?;
    let mut reader = Reader::default();
    for line in logical_lines(text)? {
        reader
            .line(&line)
            .map_err(|problem| (line.number, problem))?;
    }
    check(reader.records, count_lines(text))
}

fn count_lines(text: &str) -> usize {
    text.lines().count().max(1)
}

/// One token: its bytes with escapes resolved, and how it was written.
#[derive(Debug)]
struct Token {
    bytes: Vec<u8>,
    quoted: bool,
    escaped: bool,
}

impl Token {
    fn text(&self) -> &str {
        std::str::from_utf8(&self.bytes).unwrap_or("\u{fffd}")
    }
}

/// A record or directive: its tokens, which may span lines in parentheses.
#[derive(Debug)]
struct LogicalLine {
    /// The line it starts on.
    number: usize,
    /// Whether it starts with white space: the owner is the previous one.
    blank_owner: bool,
    tokens: Vec<Token>,
}

/// Splits `text` into logical lines of tokens: comments dropped,
/// parenthesized line breaks joined, quotes and escapes resolved.
fn logical_lines(text: &str) -> Result<Vec<LogicalLine>, (usize, String)> {
    let mut lines = Vec::new();
    let mut number = 1;
    let mut current = LogicalLine {
        number: 1,
        blank_owner: false,
        tokens: Vec::new(),
    };
    // The line of the open parenthesis, when inside one.
    let mut open: Option<usize> = None;
    let mut at_start = true;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if at_start {
            at_start = false;
            current.blank_owner = c == ' ' || c == '\t';
        }
        match c {
            '\n' => {
                number += 1;
                if open.is_none() {
                    let done = std::mem::replace(
                        &mut current,
                        LogicalLine {
                            number,
                            blank_owner: false,
                            tokens: Vec::new(),
                        },
                    );
                    if !done.tokens.is_empty() {
                        lines.push(done);
                    }
                    at_start = true;
                }
            }
            ' ' | '\t' | '\r' => {}
            ';' => while chars.next_if(|&c| c != '\n').is_some() {},
            '(' => {
                if open.is_some() {
                    return Err((number, "nested '(' (parentheses do not nest)".to_string()));
                }
                open = Some(number);
            }
            ')' => {
                if open.take().is_none() {
                    return Err((number, "')' without '('".to_string()));
                }
            }
            '"' => {
                let mut token = Token {
                    bytes: Vec::new(),
                    quoted: true,
                    escaped: false,
                };
                loop {
                    match chars.next() {
                        None | Some('\n') => {
                            return Err((number, "unterminated quoted string".to_string()));
                        }
                        Some('"') => break,
                        Some('\\') => {
                            token.escaped = true;
                            escape(&mut chars, &mut token.bytes).map_err(|p| (number, p))?;
                        }
                        Some(c) => push_char(&mut token.bytes, c),
                    }
                }
                current.tokens.push(token);
            }
            c => {
                let mut token = Token {
                    bytes: Vec::new(),
                    quoted: false,
                    escaped: false,
                };
                let mut next = Some(c);
                while let Some(c) = next {
                    if c == '\\' {
                        token.escaped = true;
                        escape(&mut chars, &mut token.bytes).map_err(|p| (number, p))?;
                    } else {
                        push_char(&mut token.bytes, c);
                    }
                    next = chars.next_if(|&c| {
                        !matches!(c, ' ' | '\t' | '\r' | '\n' | ';' | '(' | ')' | '"')
                    });
                }
                current.tokens.push(token);
            }
        }
    }
    if let Some(line) = open {
        return Err((line, "'(' is never closed".to_string()));
    }
    if !current.tokens.is_empty() {
        lines.push(current);
    }
    Ok(lines)
}

fn push_char(bytes: &mut Vec<u8>, c: char) {
    let mut buf = [0; 4];
    bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

/// Resolves the escape after a `\`: `\DDD` (a decimal byte) or `\X` (X itself).
fn escape(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    bytes: &mut Vec<u8>,
) -> Result<(), String> {
    match chars.next() {
        None | Some('\n') => Err("'\\' at the end of a line".to_string()),
        Some(d) if d.is_ascii_digit() => {
            let mut value = d.to_digit(10).expect("a digit");
            for _ in 0..2 {
                let d = chars
                    .next_if(char::is_ascii_digit)
                    .ok_or("\\DDD needs three decimal digits")?;
                value = value * 10 + d.to_digit(10).expect("a digit");
            }
            let byte = u8::try_from(value).map_err(|_| format!("\\{value} is over 255"))?;
            bytes.push(byte);
            Ok(())
        }
        Some(c) => {
            push_char(bytes, c);
            Ok(())
        }
    }
}

/// The state carried from line to line.
#[derive(Default)]
struct Reader {
    /// `$ORIGIN`, absolute, with its final dot.
    origin: Option<String>,
    /// `$TTL`.
    default_ttl: Option<u32>,
    /// The last TTL written on a record (RFC 1035 §5.1's default).
    last_ttl: Option<u32>,
    /// The previous record's owner.
    owner: Option<Name>,
    records: Vec<(usize, Record)>,
}

impl Reader {
    fn line(&mut self, line: &LogicalLine) -> Result<(), String> {
        let mut tokens = line.tokens.iter().peekable();
        let first = tokens.peek().expect("logical lines hold tokens");
        if !line.blank_owner && !first.quoted && first.bytes.starts_with(b"$") {
            let directive = first.text().to_ascii_uppercase();
            tokens.next();
            let args: Vec<&Token> = tokens.collect();
            return self.directive(&directive, &args);
        }
        let owner = if line.blank_owner {
            self.owner
                .clone()
                .ok_or("a blank owner, but no record before it to take it from")?
        } else {
            let token = tokens.next().expect("a first token");
            self.name(token)?
        };
        let mut ttl = None;
        let mut class_seen = false;
        let rtype = loop {
            let Some(token) = tokens.next() else {
                return Err(format!("no record type after {owner}"));
            };
            let text = token.text();
            if !token.quoted && text.starts_with(|c: char| c.is_ascii_digit()) && ttl.is_none() {
                ttl = Some(parse_ttl(text)?);
            } else if text.eq_ignore_ascii_case("IN") && !class_seen {
                class_seen = true;
            } else if ["CH", "HS", "CS", "ANY", "NONE"]
                .iter()
                .any(|c| text.eq_ignore_ascii_case(c))
            {
                return Err(format!("class {text}: only IN is served"));
            } else {
                let upper = text.to_ascii_uppercase();
                break TYPES
                    .iter()
                    .find(|(name, _)| *name == upper)
                    .map(|&(_, t)| t)
                    .ok_or_else(|| {
                        format!(
                            "record type {text:?} is not supported \
                             (SOA, NS, A, AAAA, CNAME, MX, TXT, PTR)"
                        )
                    })?;
            }
        };
        let args: Vec<&Token> = tokens.collect();
        let data = self.rdata(rtype, &args)?;
        let ttl = match ttl {
            Some(ttl) => {
                self.last_ttl = Some(ttl);
                ttl
            }
            None => self
                .default_ttl
                .or(self.last_ttl)
                .ok_or("no TTL: give a $TTL line before the records, or a TTL on this one")?,
        };
        self.owner = Some(owner.clone());
        self.records.push((
            line.number,
            Record {
                name: owner,
                rtype,
                class: CLASS_IN,
                ttl,
                data,
            },
        ));
        Ok(())
    }

    fn directive(&mut self, directive: &str, args: &[&Token]) -> Result<(), String> {
        match directive {
            "$ORIGIN" => {
                let [name] = args else {
                    return Err(format!("$ORIGIN takes one name, found {}", args.len()));
                };
                let name = self.name(name)?;
                self.origin = Some(name.to_string());
                Ok(())
            }
            "$TTL" => {
                let [ttl] = args else {
                    return Err(format!("$TTL takes one TTL, found {}", args.len()));
                };
                self.default_ttl = Some(parse_ttl(ttl.text())?);
                Ok(())
            }
            "$INCLUDE" => Err("$INCLUDE is not supported: put the records in this file".into()),
            other => Err(format!("unknown directive {other}")),
        }
    }

    /// A name as written: `@`, absolute (a final dot) or relative to `$ORIGIN`.
    fn name(&self, token: &Token) -> Result<Name, String> {
        let text = token.text();
        if token.quoted || token.escaped {
            return Err(format!(
                "name {text:?}: quotes and escapes in names are not supported"
            ));
        }
        let absolute = if text == "@" {
            self.origin
                .clone()
                .ok_or("'@' but no $ORIGIN before it (add `$ORIGIN zone.`)")?
        } else if text.ends_with('.') {
            text.to_string()
        } else {
            let origin = self.origin.as_deref().ok_or_else(|| {
                format!("relative name {text:?} but no $ORIGIN before it (add `$ORIGIN zone.` or end the name with '.')")
            })?;
            if origin == "." {
                format!("{text}.")
            } else {
                format!("{text}.{origin}")
            }
        };
        if absolute != "." {
            for label in absolute.trim_end_matches('.').split('.') {
                if label == "*" {
                    return Err(format!("name {text:?}: wildcards are not supported"));
                }
                if !label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                {
                    return Err(format!(
                        "name {text:?}: labels hold letters, digits, '-' and '_' only"
                    ));
                }
            }
        }
        Name::from_ascii(&absolute).map_err(|e| format!("name {e}"))
    }

    fn rdata(&self, rtype: RecordType, args: &[&Token]) -> Result<RData, String> {
        let want = |n: usize, shape: &str| {
            if args.len() == n {
                Ok(())
            } else {
                Err(format!(
                    "{rtype} takes {shape}, found {} field(s)",
                    args.len()
                ))
            }
        };
        match rtype {
            RecordType::A => {
                want(1, "an IPv4 address")?;
                let text = args[0].text();
                let ip: Ipv4Addr = text
                    .parse()
                    .map_err(|_| format!("{text:?} is not an IPv4 address"))?;
                Ok(RData::A(ip))
            }
            RecordType::AAAA => {
                want(1, "an IPv6 address")?;
                let text = args[0].text();
                let ip: Ipv6Addr = text
                    .parse()
                    .map_err(|_| format!("{text:?} is not an IPv6 address"))?;
                Ok(RData::Other(ip.octets().to_vec()))
            }
            RecordType::NS | RecordType::CNAME | RecordType::PTR => {
                want(1, "one name")?;
                Ok(RData::Name(self.name(args[0])?))
            }
            RecordType::MX => {
                want(2, "a preference and a name")?;
                let text = args[0].text();
                let preference = text
                    .parse()
                    .map_err(|_| format!("MX preference {text:?} is not a number 0 to 65535"))?;
                Ok(RData::Mx {
                    preference,
                    exchange: self.name(args[1])?,
                })
            }
            RecordType::SOA => {
                want(7, "mname rname serial refresh retry expire minimum")?;
                let text = args[2].text();
                let serial = text
                    .parse()
                    .map_err(|_| format!("SOA serial {text:?} is not a number 0 to 4294967295"))?;
                let time = |i: usize| parse_ttl(args[i].text());
                Ok(RData::Soa {
                    mname: self.name(args[0])?,
                    rname: self.name(args[1])?,
                    serial,
                    refresh: time(3)?,
                    retry: time(4)?,
                    expire: time(5)?,
                    minimum: time(6)?,
                })
            }
            RecordType::TXT => {
                if args.is_empty() {
                    return Err("TXT takes at least one string".into());
                }
                let mut data = Vec::new();
                for arg in args {
                    let len = u8::try_from(arg.bytes.len()).map_err(|_| {
                        format!("a TXT string of {} bytes (at most 255)", arg.bytes.len())
                    })?;
                    data.push(len);
                    data.extend_from_slice(&arg.bytes);
                }
                if data.len() > usize::from(u16::MAX) {
                    return Err("TXT data over 65535 bytes".into());
                }
                Ok(RData::Other(data))
            }
            _ => unreachable!("only the listed types are parsed"),
        }
    }
}

/// A TTL: seconds, or numbers with units (`1h30m`, `2d`, `1w`, `90s`).
fn parse_ttl(text: &str) -> Result<u32, String> {
    let bad = || format!("{text:?} is not a TTL (seconds, or like 1h30m, 2d, 1w)");
    let mut total: u64 = 0;
    let mut number: Option<u64> = None;
    for c in text.chars() {
        if let Some(d) = c.to_digit(10) {
            number = Some(number.unwrap_or(0) * 10 + u64::from(d));
            if number > Some(u64::from(u32::MAX)) {
                return Err(bad());
            }
            continue;
        }
        let unit = match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return Err(bad()),
        };
        total += number.take().ok_or_else(bad)? * unit;
        if total > u64::from(u32::MAX) {
            return Err(bad());
        }
    }
    if let Some(n) = number {
        total += n;
    }
    if text.is_empty() {
        return Err(bad());
    }
    u32::try_from(total)
        .ok()
        .filter(|&t| t <= MAX_TTL)
        .ok_or_else(|| format!("TTL {text:?} is over {MAX_TTL} seconds"))
}

/// The zone's checks, on its records in file order; `last_line` is where a
/// missing SOA is reported.
fn check(records: Vec<(usize, Record)>, last_line: usize) -> Result<ZoneFile, (usize, String)> {
    let mut soa: Option<(usize, Name)> = None;
    for (line, record) in &records {
        if record.rtype == RecordType::SOA {
            if let Some((first, _)) = &soa {
                return Err((
                    *line,
                    format!("a second SOA (the zone's is on line {first})"),
                ));
            }
            soa = Some((*line, record.name.clone()));
        }
    }
    let Some((soa_line, apex)) = soa else {
        return Err((
            last_line,
            "no SOA record: a zone needs one, at its apex".into(),
        ));
    };
    let apex_key = zone::key(&apex);
    let in_zone = |key: &str| is_at_or_below(key, &apex_key);
    // (key, type) -> (line, TTL) of the RRset's first record.
    let mut sets: HashMap<(String, RecordType), (usize, u32)> = HashMap::new();
    // key -> the first line of a CNAME, and of other data.
    let mut cnames: HashMap<String, usize> = HashMap::new();
    let mut others: HashMap<String, usize> = HashMap::new();
    let mut cuts: HashSet<String> = HashSet::new();
    // (key, type) -> each record's data and line.
    let mut data: HashMap<(String, RecordType), Vec<(&RData, usize)>> = HashMap::new();
    for (line, record) in &records {
        let key = zone::key(&record.name);
        if !in_zone(&key) {
            return Err((*line, format!("{} is outside the zone {apex}", record.name)));
        }
        let same = data.entry((key.clone(), record.rtype)).or_default();
        if let Some((_, first)) = same.iter().find(|(data, _)| *data == &record.data) {
            return Err((
                *line,
                format!(
                    "a duplicate {} record at {} (line {first})",
                    record.rtype, record.name
                ),
            ));
        }
        same.push((&record.data, *line));
        match sets.get(&(key.clone(), record.rtype)) {
            Some((first, ttl)) if *ttl != record.ttl => {
                return Err((
                    *line,
                    format!(
                        "TTL {} differs from the {} {} RRset's TTL {ttl} (line {first})",
                        record.ttl, record.name, record.rtype
                    ),
                ));
            }
            Some(_) => {}
            None => {
                sets.insert((key.clone(), record.rtype), (*line, record.ttl));
            }
        }
        if record.rtype == RecordType::CNAME {
            if let Some(first) = cnames.get(&key) {
                return Err((
                    *line,
                    format!("a second CNAME at {} (line {first})", record.name),
                ));
            }
            if let Some(first) = others.get(&key) {
                return Err((
                    *line,
                    format!(
                        "a CNAME beside other data at {} (line {first})",
                        record.name
                    ),
                ));
            }
            cnames.insert(key.clone(), *line);
        } else {
            if let Some(first) = cnames.get(&key) {
                return Err((
                    *line,
                    format!(
                        "{} data beside the CNAME at {} (line {first})",
                        record.rtype, record.name
                    ),
                ));
            }
            others.entry(key.clone()).or_insert(*line);
        }
        if record.rtype == RecordType::NS && key != apex_key {
            cuts.insert(key);
        }
    }
    if !sets.contains_key(&(apex_key.clone(), RecordType::NS)) {
        return Err((soa_line, format!("no NS records at the apex {apex}")));
    }
    for (line, record) in &records {
        let key = zone::key(&record.name);
        if matches!(record.rtype, RecordType::A | RecordType::AAAA) {
            continue;
        }
        // The name itself (a cut unless this is its NS), then its ancestors.
        let mut names = std::iter::successors(Some(key.as_str()), |name| {
            name.split_once('.').map(|(_, parent)| parent)
        });
        let own = names.next().filter(|_| record.rtype != RecordType::NS);
        if let Some(cut) = own
            .into_iter()
            .chain(names)
            .find(|name| cuts.contains(*name))
        {
            return Err((
                *line,
                format!(
                    "{} {} is under the delegation at {cut}: only glue (A, AAAA) may be there",
                    record.name, record.rtype
                ),
            ));
        }
    }
    // As named-checkzone: a server named inside the zone needs an address
    // there (glue, below a delegation), and is no alias.
    let addressed = |key: &str| {
        sets.contains_key(&(key.to_string(), RecordType::A))
            || sets.contains_key(&(key.to_string(), RecordType::AAAA))
    };
    for (line, record) in &records {
        let RData::Name(target) = &record.data else {
            continue;
        };
        let key = zone::key(target);
        if record.rtype != RecordType::NS || !in_zone(&key) {
            continue;
        }
        if cnames.contains_key(&key) {
            return Err((*line, format!("the NS target {target} is a CNAME")));
        }
        if !addressed(&key) {
            return Err((
                *line,
                format!("the NS target {target} has no address records (A or AAAA) in the zone"),
            ));
        }
    }
    Ok(ZoneFile { apex, records })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str =
        "$ORIGIN example.test.\n$TTL 300\n@ SOA ns host 1 2 3 4 60\n@ NS ns\nns A 192.0.2.1\n";

    fn zone(body: &str) -> ZoneFile {
        parse(format!("{HEAD}{body}").as_bytes()).unwrap_or_else(|e| panic!("{e:?}"))
    }

    /// The error for `HEAD` + `body`: its line, and that the problem says `what`.
    fn problem(body: &str, line: usize, what: &str) {
        let (at, problem) = parse(format!("{HEAD}{body}").as_bytes()).unwrap_err();
        assert!(problem.contains(what), "{problem:?} should say {what:?}");
        assert_eq!(at, line, "{problem}");
    }

    fn last(z: &ZoneFile) -> &Record {
        &z.records.last().unwrap().1
    }

    #[test]
    fn origin_and_at_and_relative_names() {
        let z = zone(
            "www CNAME @\n$ORIGIN sub.example.test.\nx A 10.0.0.1\ny.example.test. A 10.0.0.2\n",
        );
        assert_eq!(z.apex.to_string(), "example.test.");
        let names: Vec<String> = z.records.iter().map(|(_, r)| r.name.to_string()).collect();
        assert_eq!(
            names[3..],
            [
                "www.example.test.",
                "x.sub.example.test.",
                "y.example.test."
            ]
        );
        assert_eq!(
            z.records[3].1.data,
            RData::Name(Name::from_ascii("example.test.").unwrap())
        );
        // $ORIGIN relative to the previous origin.
        let z = zone("$ORIGIN b\nc A 10.0.0.3\n");
        assert_eq!(last(&z).name.to_string(), "c.b.example.test.");
        assert_eq!(z.records[3].0, 7);
    }

    #[test]
    fn ttl_directive_units_and_the_last_explicit_ttl() {
        let z = zone("a 1h30m A 10.0.0.1\nb A 10.0.0.2\n$TTL 1w\nc A 10.0.0.3\n");
        let ttls: Vec<u32> = z.records[3..].iter().map(|(_, r)| r.ttl).collect();
        assert_eq!(ttls, [5400, 300, 604_800]);
        let no_default = b"example.test. 60 SOA a.example.test. b.example.test. 1 2 3 4 5\n\
                           example.test. NS a.example.test.\na.example.test. A 10.0.0.1\n";
        let z = parse(no_default).unwrap();
        assert_eq!(z.records[1].1.ttl, 60);
        assert_eq!(parse_ttl("2d").unwrap(), 172_800);
        assert!(parse_ttl("h").is_err() && parse_ttl("1x").is_err());
        assert!(parse_ttl("2147483648").unwrap_err().contains("over"));
    }

    #[test]
    fn ttl_and_class_come_in_either_order() {
        let z = zone("a IN 60 A 10.0.0.1\nb 61 IN A 10.0.0.2\nc in a 10.0.0.3\n");
        let ttls: Vec<u32> = z.records[3..].iter().map(|(_, r)| r.ttl).collect();
        assert_eq!(ttls, [60, 61, 300]);
        assert!(z.records.iter().all(|(_, r)| r.class == CLASS_IN));
    }

    #[test]
    fn a_blank_owner_is_the_previous_records() {
        let z = zone("mail A 10.0.0.1\n\tAAAA 2001:db8::1\n  MX 10 mail\n");
        let names: Vec<String> = z.records[3..]
            .iter()
            .map(|(_, r)| r.name.to_string())
            .collect();
        assert_eq!(names, ["mail.example.test."; 3]);
        assert_eq!(
            z.records[4].1.data,
            RData::Other("2001:db8::1".parse::<Ipv6Addr>().unwrap().octets().to_vec())
        );
        assert!(
            parse(b" A 10.0.0.1\n")
                .unwrap_err()
                .1
                .contains("blank owner")
        );
    }

    #[test]
    fn parentheses_span_lines_and_comments_are_dropped() {
        let text = "$ORIGIN example.test. ; the zone\n$TTL 300\n\
                    @ IN SOA ns host ( ; multi-line\n  2024010101 ; serial\n 7200 900\n 1209600 60 )\n\
                    ; a comment line\n\n@ NS ns\nns A 192.0.2.1 ; glue\n";
        let z = parse(text.as_bytes()).unwrap();
        assert_eq!(z.records.len(), 3);
        assert_eq!(z.records[0].0, 3);
        assert_eq!(z.records[1].0, 9);
        let RData::Soa {
            serial, minimum, ..
        } = z.records[0].1.data
        else {
            panic!()
        };
        assert_eq!((serial, minimum), (2_024_010_101, 60));
        assert!(
            parse(b"$TTL 1\na. SOA a. b. ( 1 2 3 4 5\n")
                .unwrap_err()
                .1
                .contains("never closed")
        );
        assert_eq!(
            parse(b"$TTL 1\n\na. SOA a. b. ( 1 2 3 4 5\n")
                .unwrap_err()
                .0,
            3
        );
        assert!(parse(b"$TTL 1 )\n").unwrap_err().1.contains("without"));
    }

    #[test]
    fn txt_strings_quotes_and_escapes() {
        let z = zone("t TXT \"hello world\" plain \"say \\\"hi\\\"\" \"\\065\\;;x\"\n");
        assert_eq!(
            last(&z).data,
            RData::Other(b"\x0bhello world\x05plain\x08say \"hi\"\x04A;;x".to_vec())
        );
        let z = zone("t TXT \"\"\n");
        assert_eq!(last(&z).data, RData::Other(vec![0]));
        problem(&format!("t TXT {}\n", "x".repeat(256)), 6, "at most 255");
        problem("t TXT \"open\n", 6, "unterminated");
        problem("t TXT \\999\n", 6, "over 255");
        problem("t TXT \\12\n", 6, "three decimal digits");
        problem("t TXT\n", 6, "at least one");
    }

    #[test]
    fn every_supported_type_reads() {
        let z = zone(
            "@ MX 10 mail\nmail A 10.0.0.1\n1 PTR host.other.\nv6 AAAA ::1\nt TXT x\nalias CNAME mail\n",
        );
        let types: Vec<String> = z.records.iter().map(|(_, r)| r.rtype.to_string()).collect();
        assert_eq!(
            types,
            ["SOA", "NS", "A", "MX", "A", "PTR", "AAAA", "TXT", "CNAME"]
        );
        assert_eq!(
            z.records[3].1.data,
            RData::Mx {
                preference: 10,
                exchange: Name::from_ascii("mail.example.test").unwrap()
            }
        );
    }

    #[test]
    fn malformed_records_name_their_line() {
        problem("a HINFO x y\n", 6, "HINFO");
        problem("a CH A 10.0.0.1\n", 6, "only IN");
        problem("a A 10.0.0.300\n", 6, "IPv4");
        problem("a AAAA 10.0.0.1\n", 6, "IPv6");
        problem("a A 10.0.0.1 10.0.0.2\n", 6, "2 field");
        problem("a MX x mail\n", 6, "preference");
        problem("a\n", 6, "no record type");
        problem("a.. A 10.0.0.1\n", 6, "name");
        problem("* A 10.0.0.1\n", 6, "wildcard");
        problem("a_b!c A 10.0.0.1\n", 6, "letters");
        problem("$INCLUDE other\n", 6, "$INCLUDE");
        problem("$FOO x\n", 6, "unknown directive");
        problem("$TTL\n", 6, "one TTL");
        problem("$TTL 1x\n", 6, "not a TTL");
        problem(&format!("{} A 10.0.0.1\n", "x".repeat(64)), 6, "1 to 63");
        assert!(
            parse(b"a A 10.0.0.1\n")
                .unwrap_err()
                .1
                .contains("no $ORIGIN")
        );
        assert!(
            parse(b"@ A 10.0.0.1\n")
                .unwrap_err()
                .1
                .contains("no $ORIGIN")
        );
        assert!(
            parse(b"$ORIGIN x.\na A 10.0.0.1\n")
                .unwrap_err()
                .1
                .contains("no TTL")
        );
        assert_eq!(parse(b"$ORIGIN x.\n\xff\n").unwrap_err().0, 2);
    }

    #[test]
    fn the_soa_and_the_apex_ns_are_required_once() {
        problem(
            "@ SOA ns host 2 2 3 4 60\n",
            6,
            "second SOA (the zone's is on line 3)",
        );
        let (line, p) = parse(b"$ORIGIN a.\n$TTL 1\n@ NS ns\n").unwrap_err();
        assert!(p.contains("no SOA") && line == 3, "{line} {p}");
        let (line, p) =
            parse(b"$ORIGIN a.\n$TTL 1\n@ SOA ns h 1 2 3 4 5\nns A 10.0.0.1\n").unwrap_err();
        assert!(
            p.contains("no NS records at the apex") && line == 3,
            "{line} {p}"
        );
    }

    #[test]
    fn data_outside_the_zone_is_refused() {
        problem(
            "other.test. A 10.0.0.1\n",
            6,
            "outside the zone example.test.",
        );
        problem("test. A 10.0.0.1\n", 6, "outside");
        problem("xexample.test. A 10.0.0.1\n", 6, "outside");
        // Targets outside the zone are fine.
        zone("a CNAME www.other.test.\n");
    }

    #[test]
    fn a_cname_stands_alone() {
        problem(
            "a CNAME b\na A 10.0.0.1\n",
            7,
            "beside the CNAME at a.example.test. (line 6)",
        );
        problem("a A 10.0.0.1\na CNAME b\n", 7, "CNAME beside other data");
        problem("a CNAME b\nA CNAME c\n", 7, "second CNAME");
        problem("@ CNAME b\n", 6, "CNAME beside other data");
    }

    #[test]
    fn under_a_delegation_only_glue() {
        let z = zone(
            "sub NS ns.sub\nsub NS ns.other.test.\nns.sub A 10.0.0.1\nns.sub AAAA ::1\nsub A 10.0.0.2\n",
        );
        assert_eq!(z.records.len(), 8);
        problem(
            "sub NS ns.sub\nwww.sub MX 1 x\n",
            7,
            "under the delegation at sub.example.test",
        );
        problem("sub NS ns.sub\nsub TXT x\n", 7, "only glue");
        problem("sub NS ns.sub\na.sub NS x\n", 7, "only glue");
        problem("a.sub CNAME x\nsub NS ns.sub\n", 6, "only glue");
    }

    #[test]
    fn a_server_named_in_the_zone_needs_an_address_there() {
        problem(
            "@ NS ns2\n",
            6,
            "NS target ns2.example.test. has no address records",
        );
        problem("sub NS ns.sub\n", 6, "no address records");
        problem("@ NS alias\nalias CNAME ns\n", 6, "is a CNAME");
        zone("@ NS ns2\nns2 AAAA ::1\nsub NS ns.other.test.\n");
    }

    #[test]
    fn duplicates_and_mixed_ttls_are_refused() {
        problem("a A 10.0.0.1\nA A 10.0.0.1\n", 7, "duplicate A");
        problem("a A 10.0.0.1\na 60 A 10.0.0.2\n", 7, "differs");
    }

    #[test]
    fn the_root_zone_reads() {
        let z = parse(b"$TTL 1d\n. SOA a.root. b.root. 1 2 3 4 5\n. NS a.root.\ncom. NS a.gtld.\na.root. A 10.0.0.1\na.gtld. A 10.0.0.2\n").unwrap();
        assert_eq!(z.apex_key(), "");
        assert_eq!(z.records.len(), 5);
        let zone = z.to_zone();
        assert!(zone.serves_zone(""));
        assert!(zone.node("com").is_some());
    }

    #[test]
    fn to_zone_keys_names_in_lower_case_and_keeps_their_spelling() {
        let z = zone("WWW A 10.0.0.7\n").to_zone();
        let set = z
            .node("www.example.test")
            .unwrap()
            .rrset(RecordType::A)
            .unwrap();
        assert_eq!(set.entries()[0].spelt, "WWW.example.test");
        assert!(z.serves_zone("example.test"));
        assert!(z.name_exists("example.test"));
    }
}
