//! The DNS message format (RFC 1035 §4): what `dig`, resolvers and
//! authoritative servers send. Pure functions on byte slices, no I/O, so
//! every DNS front end (the TS's authoritative server, a DNS-speaking LS)
//! reads and writes messages the same way.
//!
//! A message is a 12-byte header followed by four sections:
//!
//! ```text
//! +---------------------+
//! |        Header       |  ID, flags (QR OPCODE AA TC RD RA Z AD CD RCODE), 4 counts
//! +---------------------+
//! |       Question      |  the name, type and class asked for
//! +---------------------+
//! |        Answer       |  resource records answering the question
//! +---------------------+
//! |      Authority      |  records pointing toward an authority (NS, SOA)
//! +---------------------+
//! |      Additional     |  further records, and the EDNS OPT pseudo-record
//! +---------------------+
//! ```
//!
//! - [`name`]: domain names, with compression pointers (RFC 1035 §4.1.4).
//! - [`message`]: the header, questions, resource records, EDNS0 (RFC 6891),
//!   parsing whole messages and writing them with truncation to a size.
//! - [`respond`]: checking a client's query and answering it, shared by the
//!   TS and the LS.
//! - [`upstream`]: the LS's side of a DNS connection to a TS: query IDs,
//!   matching replies, classifying them, and combining the TSes' replies.
//! - [`cache`]: the LS's cache of answers, positive and negative.
//! - [`rrl`]: response-rate limiting for the UDP front ends.
//!
//! Nothing here knows the course protocol: the LS translates its course
//! TSes' lines into these types, and the TS its table.
//!
//! docs/PROTOCOL.md describes the messages the TS sends and accepts.

pub mod cache;
mod error;
#[cfg(test)]
mod fixture;
pub mod message;
pub mod name;
pub mod respond;
pub mod rrl;
pub mod upstream;

pub use error::FormatError;
pub use message::{Edns, Header, Message, Question, RData, Record};
pub use name::Name;
pub use respond::Resolution;

use std::fmt;

/// A resource record type (RFC 1035 §3.2.2, RFC 3596, RFC 6891), any
/// value a message may carry; the ones dnslb names are constants.
///
/// ```
/// use dnslb::dns::RecordType;
/// assert_eq!(RecordType::AAAA.to_string(), "AAAA");
/// assert_eq!(RecordType(65).to_string(), "TYPE65");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordType(pub u16);

impl RecordType {
    /// An IPv4 address.
    pub const A: RecordType = RecordType(1);
    /// An authoritative name server.
    pub const NS: RecordType = RecordType(2);
    /// The canonical name of an alias.
    pub const CNAME: RecordType = RecordType(5);
    /// The start of a zone of authority.
    pub const SOA: RecordType = RecordType(6);
    /// A domain name pointer.
    pub const PTR: RecordType = RecordType(12);
    /// A mail exchange.
    pub const MX: RecordType = RecordType(15);
    /// Text strings.
    pub const TXT: RecordType = RecordType(16);
    /// An IPv6 address.
    pub const AAAA: RecordType = RecordType(28);
    /// The EDNS pseudo-record (RFC 6891).
    pub const OPT: RecordType = RecordType(41);
    /// The query type `*`: every type the name has (RFC 1035 §3.2.3).
    pub const ANY: RecordType = RecordType(255);
    /// An incremental zone transfer (RFC 1995), a query type only.
    pub const IXFR: RecordType = RecordType(251);
    /// A whole zone transfer (RFC 5936), a query type only.
    pub const AXFR: RecordType = RecordType(252);

    const NAMES: [(RecordType, &'static str); 12] = [
        (RecordType::A, "A"),
        (RecordType::NS, "NS"),
        (RecordType::CNAME, "CNAME"),
        (RecordType::SOA, "SOA"),
        (RecordType::PTR, "PTR"),
        (RecordType::MX, "MX"),
        (RecordType::TXT, "TXT"),
        (RecordType::AAAA, "AAAA"),
        (RecordType::OPT, "OPT"),
        (RecordType::ANY, "ANY"),
        (RecordType::IXFR, "IXFR"),
        (RecordType::AXFR, "AXFR"),
    ];
}

impl fmt::Display for RecordType {
    /// The type's mnemonic, or `TYPE<n>` (RFC 3597 §5) for one without.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match RecordType::NAMES.iter().find(|(t, _)| t == self) {
            Some((_, name)) => f.write_str(name),
            None => write!(f, "TYPE{}", self.0),
        }
    }
}

/// A response code (RFC 1035 §4.1.1; values above 15 need EDNS, RFC 6891
/// §6.1.3), any value a message may carry; the ones dnslb names are
/// constants.
///
/// ```
/// use dnslb::dns::Rcode;
/// assert_eq!(Rcode::NXDOMAIN.to_string(), "NXDOMAIN");
/// assert_eq!(Rcode(11).to_string(), "RCODE11");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rcode(pub u16);

impl Rcode {
    /// No error.
    pub const NOERROR: Rcode = Rcode(0);
    /// The server could not interpret the query.
    pub const FORMERR: Rcode = Rcode(1);
    /// The server could not process the query.
    pub const SERVFAIL: Rcode = Rcode(2);
    /// The name does not exist (meaningful from an authoritative server).
    pub const NXDOMAIN: Rcode = Rcode(3);
    /// The server does not support this kind of query.
    pub const NOTIMP: Rcode = Rcode(4);
    /// The server refuses to answer (for example, a zone it does not serve).
    pub const REFUSED: Rcode = Rcode(5);
    /// The query's EDNS version is not supported (extended rcode, needs an OPT).
    pub const BADVERS: Rcode = Rcode(16);

    const NAMES: [(Rcode, &'static str); 7] = [
        (Rcode::NOERROR, "NOERROR"),
        (Rcode::FORMERR, "FORMERR"),
        (Rcode::SERVFAIL, "SERVFAIL"),
        (Rcode::NXDOMAIN, "NXDOMAIN"),
        (Rcode::NOTIMP, "NOTIMP"),
        (Rcode::REFUSED, "REFUSED"),
        (Rcode::BADVERS, "BADVERS"),
    ];
}

impl fmt::Display for Rcode {
    /// The code's mnemonic as dig prints it, or `RCODE<n>` for one without.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Rcode::NAMES.iter().find(|(r, _)| r == self) {
            Some((_, name)) => f.write_str(name),
            None => write!(f, "RCODE{}", self.0),
        }
    }
}

/// The Internet class (RFC 1035 §3.2.4).
pub const CLASS_IN: u16 = 1;

/// The standard query opcode; others get [`Rcode::NOTIMP`] from the TS.
pub const OPCODE_QUERY: u8 = 0;

/// Largest message over UDP without EDNS (RFC 1035 §4.2.1).
pub const UDP_PLAIN_LIMIT: usize = 512;

/// The UDP payload size a dnslb server advertises in its OPT: the value the
/// DNS Flag Day 2020 settled on, which avoids IP fragmentation on common paths.
pub const EDNS_PAYLOAD: u16 = 1232;

/// Largest message over TCP: the two-byte length prefix's maximum (RFC 1035 §4.2.2).
pub const TCP_LIMIT: usize = 65_535;
