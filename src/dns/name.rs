//! Domain names on the wire (RFC 1035 §3.1, §4.1.4): a sequence of labels,
//! each a length byte (1 to 63) and that many bytes, ended by the zero-length
//! root label. Inside a message a name may end with a compression pointer
//! (two bytes, top bits `11`, then a 14-bit offset from the start of the
//! message) standing for the rest of a name written earlier.
//!
//! Parsing follows every pointer but accepts a pointer only when it points
//! strictly before the bytes being read, and only reads bytes before the
//! previous jump's target: each jump moves backwards, so a loop is
//! impossible and the work is bounded by the message's length. Names keep
//! their case; comparisons ignore ASCII case (RFC 4343).

use std::fmt;

use super::error::FormatError;

/// Longest name on the wire, root label included (RFC 1035 §3.1).
pub const MAX_NAME_WIRE: usize = 255;

/// Longest label (RFC 1035 §3.1).
pub const MAX_LABEL: usize = 63;

/// A domain name in uncompressed wire form, case kept.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Name {
    /// Length-prefixed labels ending with the root's zero byte.
    wire: Vec<u8>,
}

impl Name {
    /// The root name `.`.
    pub fn root() -> Name {
        Name { wire: vec![0] }
    }

    /// A name from dotted text; a final dot is optional. Bytes are taken as
    /// they are (no escapes).
    ///
    /// ```
    /// use dnslb::dns::Name;
    /// let name = Name::from_ascii("www.Example.com").unwrap();
    /// assert_eq!(name.wire(), b"\x03www\x07Example\x03com\x00");
    /// assert_eq!(Name::from_ascii("www.Example.com.").unwrap(), name);
    /// assert!(Name::from_ascii("a..b").is_err());
    /// assert!(Name::from_ascii(&"x".repeat(64)).is_err());
    /// ```
    ///
    /// # Errors
    /// When a label is empty or longer than 63 bytes, or the name longer
    /// than 255 bytes on the wire.
    pub fn from_ascii(text: &str) -> Result<Name, String> {
        if text == "." {
            return Ok(Name::root());
        }
        let body = text.strip_suffix('.').unwrap_or(text);
        let mut wire = Vec::with_capacity(body.len() + 2);
        // Split as bytes: the dot is ASCII, and a byte search is quicker
        // than a char search (every course query is turned into a name).
        for label in body.as_bytes().split(|&b| b == b'.') {
            if label.is_empty() || label.len() > MAX_LABEL {
                return Err(format!(
                    "{text:?}: labels must be 1 to {MAX_LABEL} bytes long"
                ));
            }
            wire.push(label.len() as u8);
            wire.extend_from_slice(label);
        }
        wire.push(0);
        if wire.len() > MAX_NAME_WIRE {
            return Err(format!(
                "{text:?}: longer than {MAX_NAME_WIRE} bytes on the wire"
            ));
        }
        Ok(Name { wire })
    }

    /// The uncompressed wire form: labels with their length bytes, then a zero byte.
    pub fn wire(&self) -> &[u8] {
        &self.wire
    }

    /// The labels, most specific first, without length bytes.
    pub fn labels(&self) -> impl Iterator<Item = &[u8]> {
        let mut rest = &self.wire[..];
        std::iter::from_fn(move || {
            let (&len, after) = rest.split_first()?;
            if len == 0 {
                return None;
            }
            let (label, next) = after.split_at(usize::from(len));
            rest = next;
            Some(label)
        })
    }

    /// Whether two names are equal ignoring ASCII case.
    ///
    /// ```
    /// use dnslb::dns::Name;
    /// let a = Name::from_ascii("WWW.example.COM").unwrap();
    /// assert!(a.eq_ignore_case(&Name::from_ascii("www.Example.com").unwrap()));
    /// ```
    pub fn eq_ignore_case(&self, other: &Name) -> bool {
        self.wire.eq_ignore_ascii_case(&other.wire)
    }

    /// The name as a hostname in lower case without a final dot (the key
    /// dnslb looks names up by), or `None` when a label holds anything but
    /// letters, digits, `-` and `_` (such a name cannot be in a table) or
    /// the name is the root.
    ///
    /// ```
    /// use dnslb::dns::Name;
    /// assert_eq!(Name::from_ascii("WWW.Example.com.").unwrap().hostname_key().unwrap(), "www.example.com");
    /// assert_eq!(Name::from_ascii("a b.com").unwrap().hostname_key(), None);
    /// assert_eq!(Name::root().hostname_key(), None);
    /// ```
    pub fn hostname_key(&self) -> Option<String> {
        let mut key = String::with_capacity(self.wire.len());
        for label in self.labels() {
            if !label
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
            {
                return None;
            }
            if !key.is_empty() {
                key.push('.');
            }
            key.extend(label.iter().map(|b| char::from(b.to_ascii_lowercase())));
        }
        (!key.is_empty()).then_some(key)
    }

    /// Reads the name that starts at `start` in `message`, following
    /// compression pointers. Returns the name and the offset just after it
    /// where it is written (after its first pointer, if any).
    ///
    /// ```
    /// use dnslb::dns::Name;
    /// use dnslb::dns::FormatError;
    /// // "a.com" at offset 0, then "b" + a pointer to offset 0.
    /// let message = b"\x01a\x03com\x00\x01b\xc0\x00";
    /// let (name, end) = Name::parse(message, 7).unwrap();
    /// assert_eq!(name.to_string(), "b.a.com.");
    /// assert_eq!(end, 11);
    /// // A pointer to itself, or forwards, is refused: no loops.
    /// assert!(matches!(Name::parse(b"\xc0\x00", 0), Err(FormatError::BadPointer { .. })));
    /// assert!(matches!(Name::parse(b"\x01a\xc0\x00", 0), Err(FormatError::BadPointer { .. })));
    /// // Label types 01 and 10 are reserved.
    /// assert!(matches!(Name::parse(b"\x40", 0), Err(FormatError::LabelType { .. })));
    /// ```
    ///
    /// # Errors
    /// A [`FormatError`] when the message ends inside the name, a pointer
    /// does not point strictly backwards (or leads to bytes at or after the
    /// name it came from), a label has a reserved type, or the name is
    /// longer than 255 bytes.
    pub fn parse(message: &[u8], start: usize) -> Result<(Name, usize), FormatError> {
        let mut wire = Vec::new();
        let mut pos = start;
        // Where the labels being read began; a pointer must point before it.
        let mut segment = start;
        // After a jump, reading must stay before the segment jumped from.
        let mut limit = usize::MAX;
        let mut end = None;
        loop {
            if pos >= limit {
                return Err(FormatError::BadPointer { at: pos });
            }
            let len = *message.get(pos).ok_or(FormatError::Truncated)?;
            match len & 0xC0 {
                0x00 if len == 0 => {
                    wire.push(0);
                    let end = end.unwrap_or(pos + 1);
                    return Ok((Name { wire }, end));
                }
                0x00 => {
                    let len = usize::from(len);
                    let label = message
                        .get(pos + 1..pos + 1 + len)
                        .ok_or(FormatError::Truncated)?;
                    // One byte is still owed for the root label.
                    if wire.len() + 1 + len + 1 > MAX_NAME_WIRE {
                        return Err(FormatError::NameTooLong { at: start });
                    }
                    wire.push(len as u8);
                    wire.extend_from_slice(label);
                    pos += 1 + len;
                }
                0xC0 => {
                    let low = *message.get(pos + 1).ok_or(FormatError::Truncated)?;
                    let target = usize::from(u16::from_be_bytes([len & 0x3F, low]));
                    if target >= segment {
                        return Err(FormatError::BadPointer { at: pos });
                    }
                    end.get_or_insert(pos + 2);
                    limit = segment;
                    segment = target;
                    pos = target;
                }
                _ => return Err(FormatError::LabelType { at: pos, byte: len }),
            }
        }
    }
}

impl fmt::Display for Name {
    /// Dotted text with a final dot; bytes other than letters, digits, `-`
    /// and `_` written as `\DDD`, as in zone files (RFC 1035 §5.1).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.wire == [0] {
            return f.write_str(".");
        }
        let plain = |b: &u8| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_';
        for label in self.labels() {
            // Runs of plain bytes are written at once (every query a
            // front end relays is spelt out), the others escaped.
            let mut rest = label;
            while !rest.is_empty() {
                let run = rest.iter().position(|b| !plain(b)).unwrap_or(rest.len());
                let (text, after) = rest.split_at(run);
                f.write_str(std::str::from_utf8(text).map_err(|_| fmt::Error)?)?;
                let Some((&b, after)) = after.split_first() else {
                    break;
                };
                write!(f, "\\{b:03}")?;
                rest = after;
            }
            f.write_str(".")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({self})")
    }
}

/// Names already written into a message being built, for compression: each
/// written name once (in lower case), and each of its suffixes by where it
/// starts in that name and its offset in the message.
#[derive(Default)]
pub(crate) struct Compressor {
    names: Vec<Vec<u8>>,
    /// (index in `names`, start in that name, offset in the message).
    written: Vec<(usize, usize, usize)>,
}

/// Offsets a pointer can reach (14 bits).
const POINTER_RANGE: usize = 0x4000;

impl Compressor {
    /// Appends `name` to `out`, ending it with a pointer to the longest
    /// suffix already written, and remembers its new suffixes.
    pub(crate) fn write(&mut self, out: &mut Vec<u8>, name: &Name) {
        let lower = name.wire.to_ascii_lowercase();
        let mut i = 0;
        while lower[i] != 0 {
            let found = self
                .written
                .iter()
                .find(|&&(n, start, _)| self.names[n][start..] == lower[i..]);
            if let Some(&(_, _, offset)) = found {
                out.extend_from_slice(&name.wire[..i]);
                out.extend_from_slice(&(0xC000 | offset as u16).to_be_bytes());
                self.remember(lower, out.len() - i - 2, i);
                return;
            }
            i += 1 + usize::from(lower[i]);
        }
        out.extend_from_slice(&name.wire);
        self.remember(lower, out.len() - name.wire.len(), i);
    }

    /// Records the suffixes of `lower` starting before `upto`, written at
    /// `base` (one copy of the name for all of them).
    fn remember(&mut self, lower: Vec<u8>, base: usize, upto: usize) {
        let n = self.names.len();
        let mut i = 0;
        while i < upto && base + i < POINTER_RANGE {
            self.written.push((n, i, base + i));
            i += 1 + usize::from(lower[i]);
        }
        if i > 0 {
            self.names.push(lower);
        }
    }

    /// Forgets names written at or after `len` (the message was cut back to it).
    pub(crate) fn truncate(&mut self, len: usize) {
        self.written.retain(|&(_, _, offset)| offset < len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::fixture::name;

    #[test]
    fn names_of_255_bytes_parse_and_256_do_not() {
        // 3 labels of 63 + one of 61: 4 + 63*3 + 61 + 1 = 255 bytes.
        let long = format!("{0}.{0}.{0}.{1}", "a".repeat(63), "b".repeat(61));
        let wire = name(&long).wire().to_vec();
        assert_eq!(wire.len(), 255);
        assert_eq!(Name::parse(&wire, 0).unwrap().0.wire(), &wire[..]);
        let longer = format!("{0}.{0}.{0}.{1}", "a".repeat(63), "b".repeat(62));
        assert!(Name::from_ascii(&longer).is_err());
        let mut wire = wire;
        wire.insert(0, b'c');
        wire.insert(0, 1);
        assert!(matches!(
            Name::parse(&wire, 0),
            Err(FormatError::NameTooLong { .. })
        ));
    }

    #[test]
    fn a_long_name_built_from_pointers_is_refused() {
        // A 63-byte label at 0, then names that each add one label and point
        // back at the previous one: the third is longer than 255 bytes.
        let mut message = vec![63];
        message.extend([b'x'; 63]);
        message.push(0);
        let mut previous = 0u16;
        let mut results = Vec::new();
        for _ in 0..3 {
            let here = message.len() as u16;
            message.push(63);
            message.extend([b'y'; 63]);
            message.extend((0xC000 | previous).to_be_bytes());
            results.push(Name::parse(&message, usize::from(here)).map(|(n, _)| n.wire().len()));
            previous = here;
        }
        assert!(matches!(results[..2], [Ok(129), Ok(193)]));
        assert!(matches!(results[2], Err(FormatError::NameTooLong { .. })));
    }

    #[test]
    fn pointers_into_the_name_being_read_are_refused() {
        // "a" then a pointer back to the same name's start: a loop.
        assert!(matches!(
            Name::parse(b"\x00\x01a\xc0\x01", 1),
            Err(FormatError::BadPointer { .. })
        ));
        // A pointer to an earlier pointer that points forward again.
        assert!(matches!(
            Name::parse(b"\xc0\x04\x00\x00\xc0\x00", 4),
            Err(FormatError::BadPointer { .. })
        ));
        // A jump whose labels run into the bytes the jump came from.
        assert!(matches!(Name::parse(b"\x03abc\x00", 0).map(|_| ()), Ok(())));
        assert!(matches!(
            Name::parse(b"\x05ab\xc0\x00\x00", 3),
            Err(FormatError::BadPointer { .. })
        ));
        assert!(matches!(
            Name::parse(b"\x02a", 0),
            Err(FormatError::Truncated)
        ));
        assert!(matches!(
            Name::parse(b"\xc0", 0),
            Err(FormatError::Truncated)
        ));
    }

    #[test]
    fn compression_points_at_the_longest_written_suffix() {
        let mut c = Compressor::default();
        let mut out = vec![0; 12];
        c.write(&mut out, &name("www.Example.com"));
        assert_eq!(out.len(), 12 + 17);
        c.write(&mut out, &name("WWW.example.COM"));
        assert_eq!(&out[29..], b"\xc0\x0c");
        c.write(&mut out, &name("mail.example.com"));
        assert_eq!(&out[31..], b"\x04mail\xc0\x10");
        c.write(&mut out, &name("x.mail.example.com"));
        assert_eq!(&out[38..], b"\x01x\xc0\x1f");
        c.write(&mut out, &name("org"));
        assert_eq!(&out[42..], b"\x03org\x00");
        for start in [12, 29, 31, 38, 42] {
            assert!(Name::parse(&out, start).is_ok());
        }
        assert_eq!(
            Name::parse(&out, 38).unwrap().0.to_string(),
            "x.mail.Example.com."
        );
        c.truncate(31);
        let mut cut = out[..31].to_vec();
        c.write(&mut cut, &name("mail.example.com"));
        assert_eq!(&cut[31..], b"\x04mail\xc0\x10");
    }

    #[test]
    fn display_escapes_bytes_outside_hostnames() {
        let n = Name::parse(b"\x03a.b\x01\xff\x00", 0).unwrap().0;
        assert_eq!(n.to_string(), "a\\046b.\\255.");
        assert_eq!(n.labels().count(), 2);
        assert_eq!(n.hostname_key(), None);
        assert_eq!(Name::root().to_string(), ".");
    }
}
