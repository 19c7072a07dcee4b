//! Whole DNS messages (RFC 1035 §4.1): the header, the question section,
//! resource records, the EDNS0 OPT pseudo-record (RFC 6891), and writing a
//! message with name compression and truncation to a size limit.

use std::net::Ipv4Addr;

use super::error::FormatError;
use super::name::{Compressor, Name};
use super::{CLASS_IN, Rcode, RecordType};

/// The fixed 12-byte header (RFC 1035 §4.1.1).
///
/// ```
/// use dnslb::dns::Header;
/// // ID 0xABCD, RD set, one question: what `dig` sends.
/// let h = Header::parse(b"\xab\xcd\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00").unwrap();
/// assert_eq!((h.id, h.qr, h.opcode, h.rd, h.qdcount), (0xABCD, false, 0, true, 1));
/// assert_eq!(h.to_bytes(), *b"\xab\xcd\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00");
/// assert!(Header::parse(b"\xab\xcd\x01").is_none());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// Chosen by the asker, copied into the answer.
    pub id: u16,
    /// Set in responses.
    pub qr: bool,
    /// The kind of query (4 bits): 0 is a standard query.
    pub opcode: u8,
    /// Authoritative answer.
    pub aa: bool,
    /// Truncated: the answer did not fit; ask again over TCP.
    pub tc: bool,
    /// Recursion desired (copied into the answer).
    pub rd: bool,
    /// Recursion available.
    pub ra: bool,
    /// The reserved Z bit.
    pub z: bool,
    /// Authentic data (RFC 4035).
    pub ad: bool,
    /// Checking disabled (RFC 4035).
    pub cd: bool,
    /// The low 4 bits of the response code.
    pub rcode: u8,
    /// Number of questions.
    pub qdcount: u16,
    /// Number of answer records.
    pub ancount: u16,
    /// Number of authority records.
    pub nscount: u16,
    /// Number of additional records (the OPT included).
    pub arcount: u16,
}

/// Length of the header.
pub const HEADER_LEN: usize = 12;

impl Header {
    /// The header at the start of `message`, or `None` when it is shorter
    /// than 12 bytes.
    pub fn parse(message: &[u8]) -> Option<Header> {
        let h: &[u8; HEADER_LEN] = message.get(..HEADER_LEN)?.try_into().ok()?;
        let count = |i: usize| u16::from_be_bytes([h[i], h[i + 1]]);
        Some(Header {
            id: count(0),
            qr: h[2] & 0x80 != 0,
            opcode: (h[2] >> 3) & 0x0F,
            aa: h[2] & 0x04 != 0,
            tc: h[2] & 0x02 != 0,
            rd: h[2] & 0x01 != 0,
            ra: h[3] & 0x80 != 0,
            z: h[3] & 0x40 != 0,
            ad: h[3] & 0x20 != 0,
            cd: h[3] & 0x10 != 0,
            rcode: h[3] & 0x0F,
            qdcount: count(4),
            ancount: count(6),
            nscount: count(8),
            arcount: count(10),
        })
    }

    /// The header's 12 bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let bit = |set: bool, mask: u8| if set { mask } else { 0 };
        let flags0 = bit(self.qr, 0x80)
            | ((self.opcode & 0x0F) << 3)
            | bit(self.aa, 0x04)
            | bit(self.tc, 0x02)
            | bit(self.rd, 0x01);
        let flags1 = bit(self.ra, 0x80)
            | bit(self.z, 0x40)
            | bit(self.ad, 0x20)
            | bit(self.cd, 0x10)
            | (self.rcode & 0x0F);
        let [i0, i1] = self.id.to_be_bytes();
        let [q0, q1] = self.qdcount.to_be_bytes();
        let [a0, a1] = self.ancount.to_be_bytes();
        let [n0, n1] = self.nscount.to_be_bytes();
        let [r0, r1] = self.arcount.to_be_bytes();
        [i0, i1, flags0, flags1, q0, q1, a0, a1, n0, n1, r0, r1]
    }
}

/// A question: the name, type and class asked for (RFC 1035 §4.1.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Question {
    /// The name asked for, case kept.
    pub name: Name,
    /// The record type asked for.
    pub qtype: RecordType,
    /// The class, normally [`CLASS_IN`].
    pub qclass: u16,
}

impl Question {
    /// Whether `other` asks the same: the same name ignoring case, type and
    /// class (how an answer is matched to the question it answers).
    ///
    /// ```
    /// use dnslb::dns::{Name, Question, RecordType, CLASS_IN};
    /// let q = |name, qtype| Question { name: Name::from_ascii(name).unwrap(), qtype, qclass: CLASS_IN };
    /// assert!(q("www.Example.com", RecordType::A).same_as(&q("WWW.example.com.", RecordType::A)));
    /// assert!(!q("www.example.com", RecordType::A).same_as(&q("www.example.com", RecordType::AAAA)));
    /// ```
    pub fn same_as(&self, other: &Question) -> bool {
        self.qtype == other.qtype
            && self.qclass == other.qclass
            && self.name.eq_ignore_case(&other.name)
    }
}

/// A resource record (RFC 1035 §4.1.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The owner name.
    pub name: Name,
    /// The record's type.
    pub rtype: RecordType,
    /// The record's class, normally [`CLASS_IN`].
    pub class: u16,
    /// Seconds the record may be cached.
    pub ttl: u32,
    /// The type-specific data.
    pub data: RData,
}

impl Record {
    /// An A record of class IN.
    pub fn a(name: Name, ttl: u32, ip: Ipv4Addr) -> Record {
        Record {
            name,
            rtype: RecordType::A,
            class: CLASS_IN,
            ttl,
            data: RData::A(ip),
        }
    }
}

/// A record's data. The types whose data holds names that may be
/// compressed (RFC 3597 §4) are parsed, so they can be written into another
/// message; every other type is kept as opaque bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RData {
    /// An A record's address.
    A(Ipv4Addr),
    /// The one name of an NS, CNAME or PTR record.
    Name(Name),
    /// An MX record.
    Mx { preference: u16, exchange: Name },
    /// An SOA record (its `minimum` is the negative-caching TTL, RFC 2308).
    Soa {
        mname: Name,
        rname: Name,
        serial: u32,
        refresh: u32,
        retry: u32,
        expire: u32,
        minimum: u32,
    },
    /// Any other type's data, as sent.
    Other(Vec<u8>),
}

/// The EDNS0 OPT pseudo-record's fields (RFC 6891 §6.1.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edns {
    /// The largest UDP payload the sender can receive (values under 512 mean 512).
    pub payload: u16,
    /// The EDNS version; dnslb speaks version 0.
    pub version: u8,
    /// DNSSEC OK: the sender wants DNSSEC records.
    pub dnssec_ok: bool,
    /// The options, as sent: (code, length, data) triples, checked to fill
    /// the record's data exactly.
    pub options: Vec<u8>,
}

impl Edns {
    /// The size a UDP answer to this sender may take: the advertised
    /// payload, at least 512 (RFC 6891 §6.2.3, §6.2.5).
    pub fn udp_limit(&self) -> usize {
        usize::from(self.payload).max(super::UDP_PLAIN_LIMIT)
    }
}

/// A parsed message. The OPT record is taken out of the additional section
/// into [`edns`](Self::edns), and its extended rcode bits joined with the
/// header's into [`rcode`](Self::rcode).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    /// The header; its counts are ignored when writing (the sections' lengths are used).
    pub header: Header,
    /// The full response code (12 bits with EDNS, 4 without); see [`Rcode`].
    pub rcode: Rcode,
    /// The question section.
    pub questions: Vec<Question>,
    /// The answer section.
    pub answers: Vec<Record>,
    /// The authority section.
    pub authority: Vec<Record>,
    /// The additional section, without the OPT record.
    pub additional: Vec<Record>,
    /// The OPT record's fields, when the message has one.
    pub edns: Option<Edns>,
}

/// Reads fixed-size fields, failing with [`FormatError::Truncated`] past the end.
struct Cursor<'a> {
    message: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], FormatError> {
        let bytes = self
            .message
            .get(self.pos..self.pos + n)
            .ok_or(FormatError::Truncated)?;
        self.pos += n;
        Ok(bytes)
    }

    fn u16(&mut self) -> Result<u16, FormatError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, FormatError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn name(&mut self) -> Result<Name, FormatError> {
        let (name, end) = Name::parse(self.message, self.pos)?;
        self.pos = end;
        Ok(name)
    }
}

impl Message {
    /// Parses a whole message. Bytes after the last record are ignored.
    ///
    /// ```
    /// use dnslb::dns::{Message, RecordType};
    /// // dig's query for www.example.com A, with an OPT advertising 1232 bytes.
    /// let query = b"\x12\x34\x01\x20\x00\x01\x00\x00\x00\x00\x00\x01\
    ///               \x03www\x07example\x03com\x00\x00\x01\x00\x01\
    ///               \x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00";
    /// let m = Message::parse(query).unwrap();
    /// assert_eq!(m.header.id, 0x1234);
    /// assert_eq!(m.questions[0].name.to_string(), "www.example.com.");
    /// assert_eq!(m.questions[0].qtype, RecordType::A);
    /// assert_eq!(m.edns.unwrap().payload, 1232);
    /// assert!(m.additional.is_empty());
    /// assert!(Message::parse(&query[..20]).is_err());
    /// ```
    ///
    /// # Errors
    /// The first [`FormatError`] found.
    pub fn parse(message: &[u8]) -> Result<Message, FormatError> {
        let header = Header::parse(message).ok_or(FormatError::ShortHeader)?;
        let mut cursor = Cursor {
            message,
            pos: HEADER_LEN,
        };
        let mut questions = Vec::new();
        for _ in 0..header.qdcount {
            let name = cursor.name()?;
            questions.push(Question {
                name,
                qtype: RecordType(cursor.u16()?),
                qclass: cursor.u16()?,
            });
        }
        let mut parsed = Message {
            header,
            rcode: Rcode(u16::from(header.rcode)),
            questions,
            ..Message::default()
        };
        for (count, section) in [
            (header.ancount, 0),
            (header.nscount, 1),
            (header.arcount, 2),
        ] {
            for _ in 0..count {
                let record = read_record(&mut cursor)?;
                if record.rtype != RecordType::OPT {
                    match section {
                        0 => parsed.answers.push(record),
                        1 => parsed.authority.push(record),
                        _ => parsed.additional.push(record),
                    }
                    continue;
                }
                if section != 2 || record.name != Name::root() {
                    return Err(FormatError::MisplacedOpt);
                }
                if parsed.edns.is_some() {
                    return Err(FormatError::DuplicateOpt);
                }
                let RData::Other(options) = record.data else {
                    unreachable!("OPT data is read as opaque bytes")
                };
                let [extended, version, flags, _] = record.ttl.to_be_bytes();
                parsed.rcode.0 |= u16::from(extended) << 4;
                parsed.edns = Some(Edns {
                    payload: record.class,
                    version,
                    dnssec_ok: flags & 0x80 != 0,
                    options,
                });
            }
        }
        Ok(parsed)
    }

    /// A response to `query`: same ID, opcode and RD bit, QR set, the
    /// question echoed, no records and no EDNS yet.
    ///
    /// ```
    /// use dnslb::dns::{Message, Name, Question, Rcode, RecordType, CLASS_IN};
    /// let mut query = Message::default();
    /// query.header.id = 7;
    /// query.header.rd = true;
    /// query.questions.push(Question { name: Name::from_ascii("a.com").unwrap(), qtype: RecordType::A, qclass: CLASS_IN });
    /// let mut response = Message::response_to(&query);
    /// response.rcode = Rcode::NXDOMAIN;
    /// let bytes = response.to_bytes(512);
    /// assert_eq!(&bytes[..4], b"\x00\x07\x81\x03");
    /// assert_eq!(Message::parse(&bytes).unwrap().questions, query.questions);
    /// ```
    pub fn response_to(query: &Message) -> Message {
        Message {
            header: Header {
                id: query.header.id,
                qr: true,
                opcode: query.header.opcode,
                rd: query.header.rd,
                ..Header::default()
            },
            questions: query.questions.clone(),
            ..Message::default()
        }
    }

    /// The message's bytes, at most `limit` long (at least 512 is sensible;
    /// the header, the questions and the OPT are always written).
    ///
    /// Names are compressed (RFC 1035 §4.1.4). Records are added RRset by
    /// RRset (consecutive records of the same name, type and class, RFC 2181
    /// §5): an answer or authority RRset that does not fit is left out with
    /// everything after it, and TC is set; an additional RRset that does not
    /// fit is left out without TC (RFC 2181 §9). An RRset is never split.
    ///
    /// ```
    /// use dnslb::dns::{Message, Name, Question, Record, RecordType, CLASS_IN};
    /// let name = Name::from_ascii("big.example").unwrap();
    /// let mut m = Message::default();
    /// m.header.qr = true;
    /// m.questions.push(Question { name: name.clone(), qtype: RecordType::A, qclass: CLASS_IN });
    /// for i in 0..40 {
    ///     m.answers.push(Record::a(name.clone(), 300, [10, 0, 0, i].into()));
    /// }
    /// // Each A record takes 16 bytes: its name is a pointer to the question.
    /// assert_eq!(m.to_bytes(65535).len(), 12 + 17 + 40 * 16);
    /// let cut = Message::parse(&m.to_bytes(512)).unwrap();
    /// assert!(cut.header.tc);
    /// assert!(cut.answers.is_empty());
    /// ```
    pub fn to_bytes(&self, limit: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(512.min(limit));
        let mut header = self.header;
        header.rcode = (self.rcode.0 & 0x0F) as u8;
        out.extend_from_slice(&header.to_bytes());
        let mut names = Compressor::default();
        for q in &self.questions {
            names.write(&mut out, &q.name);
            out.extend_from_slice(&q.qtype.0.to_be_bytes());
            out.extend_from_slice(&q.qclass.to_be_bytes());
        }
        let opt = self.edns.as_ref().map(|edns| self.opt_bytes(edns));
        let reserved = opt.as_ref().map_or(0, Vec::len);
        let mut counts = [0u16; 3];
        let mut truncated = false;
        let sections = [&self.answers, &self.authority, &self.additional];
        for (index, records) in sections.into_iter().enumerate() {
            if truncated {
                break;
            }
            for set in records.chunk_by(same_rrset) {
                let mark = out.len();
                for record in set {
                    write_record(&mut out, &mut names, record);
                }
                if out.len() + reserved > limit {
                    out.truncate(mark);
                    names.truncate(mark);
                    truncated = index < 2;
                    break;
                }
                counts[index] += set.len() as u16;
            }
        }
        if let Some(opt) = opt {
            out.extend_from_slice(&opt);
        }
        header.tc |= truncated;
        header.qdcount = self.questions.len() as u16;
        header.ancount = counts[0];
        header.nscount = counts[1];
        header.arcount = counts[2] + u16::from(self.edns.is_some());
        out[..HEADER_LEN].copy_from_slice(&header.to_bytes());
        out
    }

    /// The OPT record for `edns`, carrying the high bits of the rcode.
    /// The OPT record this message carries for `edns`, as written.
    pub fn opt_bytes(&self, edns: &Edns) -> Vec<u8> {
        let mut opt = vec![0];
        opt.extend_from_slice(&RecordType::OPT.0.to_be_bytes());
        opt.extend_from_slice(&edns.payload.to_be_bytes());
        let extended = (self.rcode.0 >> 4) as u8;
        let flags = if edns.dnssec_ok { 0x80 } else { 0 };
        opt.extend_from_slice(&[extended, edns.version, flags, 0]);
        opt.extend_from_slice(&(edns.options.len() as u16).to_be_bytes());
        opt.extend_from_slice(&edns.options);
        opt
    }
}

/// Whether two neighbouring records belong to one RRset.
fn same_rrset(a: &Record, b: &Record) -> bool {
    a.rtype == b.rtype && a.class == b.class && a.name.eq_ignore_case(&b.name)
}

fn read_record(cursor: &mut Cursor<'_>) -> Result<Record, FormatError> {
    let name = cursor.name()?;
    let rtype = RecordType(cursor.u16()?);
    let class = cursor.u16()?;
    let ttl = cursor.u32()?;
    let len = usize::from(cursor.u16()?);
    let start = cursor.pos;
    let end = start + len;
    if end > cursor.message.len() {
        return Err(FormatError::Truncated);
    }
    let bad = FormatError::RData {
        rtype: rtype.0,
        at: start,
    };
    // Names inside the data may point anywhere before them, but must end
    // exactly where the data does.
    let mut inner = Cursor {
        message: &cursor.message[..end],
        pos: start,
    };
    let data = match rtype {
        RecordType::A => {
            let b = inner.take(4).map_err(|_| bad.clone())?;
            RData::A(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
        }
        RecordType::NS | RecordType::CNAME | RecordType::PTR => {
            RData::Name(inner.name().map_err(|e| rdata_error(e, &bad))?)
        }
        RecordType::MX => RData::Mx {
            preference: inner.u16().map_err(|_| bad.clone())?,
            exchange: inner.name().map_err(|e| rdata_error(e, &bad))?,
        },
        RecordType::SOA => {
            let mname = inner.name().map_err(|e| rdata_error(e, &bad))?;
            let rname = inner.name().map_err(|e| rdata_error(e, &bad))?;
            let mut number = || inner.u32().map_err(|_| bad.clone());
            RData::Soa {
                mname,
                rname,
                serial: number()?,
                refresh: number()?,
                retry: number()?,
                expire: number()?,
                minimum: number()?,
            }
        }
        RecordType::OPT => {
            check_options(&cursor.message[start..end]).map_err(|_| bad.clone())?;
            inner.pos = end;
            RData::Other(cursor.message[start..end].to_vec())
        }
        _ => {
            inner.pos = end;
            RData::Other(cursor.message[start..end].to_vec())
        }
    };
    if inner.pos != end {
        return Err(bad);
    }
    cursor.pos = end;
    Ok(Record {
        name,
        rtype,
        class,
        // The OPT's TTL field holds flags, not a time.
        ttl: if rtype == RecordType::OPT {
            ttl
        } else {
            received_ttl(ttl)
        },
        data,
    })
}

/// A TTL as received: one with the top bit set (2^31 and above) counts as
/// 0 (RFC 2181 §8), so it is relayed as 0 and never cached.
///
/// ```
/// use dnslb::dns::message::received_ttl;
/// assert_eq!(received_ttl(86_400), 86_400);
/// assert_eq!(received_ttl(0x7FFF_FFFF), 0x7FFF_FFFF);
/// assert_eq!(received_ttl(0x8000_0000), 0);
/// assert_eq!(received_ttl(u32::MAX), 0);
/// ```
pub fn received_ttl(ttl: u32) -> u32 {
    if ttl & 0x8000_0000 == 0 { ttl } else { 0 }
}

/// A name inside record data that runs past the data is the data's fault;
/// pointer and label errors keep their own kind.
fn rdata_error(error: FormatError, bad: &FormatError) -> FormatError {
    match error {
        FormatError::Truncated => bad.clone(),
        other => other,
    }
}

/// Checks that EDNS options, (code, length, data) triples, fill `data` exactly.
fn check_options(mut data: &[u8]) -> Result<(), ()> {
    while !data.is_empty() {
        let [_, _, l0, l1, rest @ ..] = data else {
            return Err(());
        };
        let len = usize::from(u16::from_be_bytes([*l0, *l1]));
        data = rest.get(len..).ok_or(())?;
    }
    Ok(())
}

fn write_record(out: &mut Vec<u8>, names: &mut Compressor, record: &Record) {
    names.write(out, &record.name);
    out.extend_from_slice(&record.rtype.0.to_be_bytes());
    out.extend_from_slice(&record.class.to_be_bytes());
    out.extend_from_slice(&record.ttl.to_be_bytes());
    let len_at = out.len();
    out.extend_from_slice(&[0, 0]);
    match &record.data {
        RData::A(ip) => out.extend_from_slice(&ip.octets()),
        RData::Name(name) => names.write(out, name),
        RData::Mx {
            preference,
            exchange,
        } => {
            out.extend_from_slice(&preference.to_be_bytes());
            names.write(out, exchange);
        }
        RData::Soa {
            mname,
            rname,
            serial,
            refresh,
            retry,
            expire,
            minimum,
        } => {
            names.write(out, mname);
            names.write(out, rname);
            for n in [serial, refresh, retry, expire, minimum] {
                out.extend_from_slice(&n.to_be_bytes());
            }
        }
        RData::Other(bytes) => out.extend_from_slice(bytes),
    }
    let len = (out.len() - len_at - 2) as u16;
    out[len_at..len_at + 2].copy_from_slice(&len.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::Rcode;
    use crate::dns::fixture::{name, question};

    #[test]
    fn every_record_kind_survives_a_round_trip_with_compression() {
        let mut m = Message::default();
        m.header.id = 0xBEEF;
        m.header.qr = true;
        m.header.aa = true;
        m.questions.push(question("www.example.com"));
        m.answers.push(Record {
            name: name("www.example.com"),
            rtype: RecordType::CNAME,
            class: CLASS_IN,
            ttl: 60,
            data: RData::Name(name("web.example.com")),
        });
        m.answers
            .push(Record::a(name("web.example.com"), 60, [1, 2, 3, 4].into()));
        m.authority.push(Record {
            name: name("example.com"),
            rtype: RecordType::SOA,
            class: CLASS_IN,
            ttl: 3600,
            data: RData::Soa {
                mname: name("ns1.example.com"),
                rname: name("hostmaster.example.com"),
                serial: 1,
                refresh: 2,
                retry: 3,
                expire: 4,
                minimum: 5,
            },
        });
        m.additional.push(Record {
            name: name("example.com"),
            rtype: RecordType::MX,
            class: CLASS_IN,
            ttl: 1,
            data: RData::Mx {
                preference: 10,
                exchange: name("mail.example.com"),
            },
        });
        m.additional.push(Record {
            name: name("example.com"),
            rtype: RecordType::TXT,
            class: CLASS_IN,
            ttl: 1,
            data: RData::Other(b"\x02hi".to_vec()),
        });
        m.edns = Some(Edns {
            payload: 4096,
            version: 0,
            dnssec_ok: true,
            options: b"\x00\x0a\x00\x02ab".to_vec(),
        });
        m.rcode = Rcode::BADVERS;
        let bytes = m.to_bytes(65535);
        let mut back = Message::parse(&bytes).unwrap();
        assert_eq!(back.header.arcount, 3);
        back.header = m.header;
        assert_eq!(back, m);
        // The CNAME's owner is a pointer to the question.
        assert_eq!(&bytes[33..35], b"\xc0\x0c");
    }

    #[test]
    fn opt_records_are_checked() {
        let m = Message {
            edns: Some(Edns {
                payload: 512,
                version: 0,
                dnssec_ok: false,
                options: Vec::new(),
            }),
            ..Message::default()
        };
        let one = m.to_bytes(512);
        // A second OPT.
        let mut two = one.clone();
        two[11] = 2;
        two.extend_from_slice(&one[12..]);
        assert_eq!(Message::parse(&two), Err(FormatError::DuplicateOpt));
        // The OPT in the answer section.
        let mut answer = one.clone();
        answer[7] = 1;
        answer[11] = 0;
        assert_eq!(Message::parse(&answer), Err(FormatError::MisplacedOpt));
        // Options that do not fill the data.
        let mut bad = one.clone();
        bad.truncate(bad.len() - 2);
        bad.extend_from_slice(b"\x00\x03\x00\x0a\x00\x05ab");
        assert!(matches!(
            Message::parse(&bad),
            Err(FormatError::RData { rtype: 41, .. })
        ));
    }

    #[test]
    fn records_must_fill_their_data_exactly() {
        let mut m = Message::default();
        m.answers
            .push(Record::a(name("a.b"), 1, [1, 1, 1, 1].into()));
        let good = m.to_bytes(512);
        assert!(Message::parse(&good).is_ok());
        // RDLENGTH 5 with one more byte.
        let mut long = good.clone();
        let at = long.len() - 5;
        long[at] = 5;
        long.push(0);
        assert!(matches!(
            Message::parse(&long),
            Err(FormatError::RData { rtype: 1, .. })
        ));
        // RDLENGTH past the end.
        let mut short = good.clone();
        short.pop();
        assert_eq!(Message::parse(&short), Err(FormatError::Truncated));
        // A CNAME whose name runs past its data.
        let mut c = Message::default();
        c.answers.push(Record {
            name: name("a.b"),
            rtype: RecordType::CNAME,
            class: CLASS_IN,
            ttl: 1,
            data: RData::Name(name("c.d")),
        });
        let mut bytes = c.to_bytes(512);
        let at = bytes.len() - 6;
        bytes[at] = 4;
        assert!(matches!(
            Message::parse(&bytes),
            Err(FormatError::RData { rtype: 5, .. })
        ));
    }

    #[test]
    fn truncation_keeps_whole_rrsets_and_drops_additional_without_tc() {
        let mut m = Message::default();
        m.questions.push(question("a.example"));
        for i in 0..10 {
            m.answers
                .push(Record::a(name("a.example"), 1, [10, 0, 0, i].into()));
        }
        for i in 0..30 {
            m.answers
                .push(Record::a(name("b.example"), 1, [10, 0, 1, i].into()));
        }
        for i in 0..30 {
            m.additional
                .push(Record::a(name("c.example"), 1, [10, 0, 2, i].into()));
        }
        m.edns = Some(Edns {
            payload: 512,
            version: 0,
            dnssec_ok: false,
            options: Vec::new(),
        });
        let cut = Message::parse(&m.to_bytes(512)).unwrap();
        assert!(cut.header.tc);
        assert_eq!(cut.answers.len(), 10);
        assert!(cut.additional.is_empty());
        assert!(cut.edns.is_some());
        let roomy = Message::parse(&m.to_bytes(1000)).unwrap();
        assert!(!roomy.header.tc);
        assert_eq!((roomy.answers.len(), roomy.additional.len()), (40, 0));
        let all = m.to_bytes(65535);
        assert!(all.len() > 1000);
        assert_eq!(Message::parse(&all).unwrap().additional.len(), 30);
        assert!(m.to_bytes(512).len() <= 512);
    }

    #[test]
    fn ttls_with_the_top_bit_set_are_read_as_zero() {
        let mut m = Message::default();
        m.answers
            .push(Record::a(name("a.b"), 0x8000_0000, [1, 1, 1, 1].into()));
        m.answers
            .push(Record::a(name("a.b"), u32::MAX, [1, 1, 1, 2].into()));
        m.answers
            .push(Record::a(name("a.b"), 0x7FFF_FFFF, [1, 1, 1, 3].into()));
        // An extended rcode of 128 or more sets the OPT's top TTL bit.
        m.rcode = Rcode(0x800);
        m.edns = Some(Edns {
            payload: 512,
            version: 0,
            dnssec_ok: false,
            options: Vec::new(),
        });
        let back = Message::parse(&m.to_bytes(512)).unwrap();
        let ttls: Vec<u32> = back.answers.iter().map(|r| r.ttl).collect();
        assert_eq!(ttls, [0, 0, 0x7FFF_FFFF]);
        assert_eq!(back.rcode, Rcode(0x800));
    }

    #[test]
    fn trailing_bytes_are_ignored_and_a_short_header_is_refused() {
        let mut m = Message::default();
        m.questions.push(question("x"));
        let mut bytes = m.to_bytes(512);
        bytes.extend_from_slice(b"junk");
        assert_eq!(Message::parse(&bytes).unwrap().questions.len(), 1);
        assert_eq!(Message::parse(&[0; 11]), Err(FormatError::ShortHeader));
    }
}
