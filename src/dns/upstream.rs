//! The LS's side of a DNS connection to a TS, with no I/O: the table of
//! queries in flight on one TCP connection, what a TS's reply says, and how
//! the replies of all TSes combine into the LS's answer.
//!
//! **Queries.** Over TCP many queries share one connection and replies may
//! come in any order (RFC 7766 §6.2.1.1), so each query gets an ID not in
//! use on that connection, drawn at random ([`Upstream::send`]), and a reply
//! is taken only when its ID is in flight *and* its question is the one
//! asked (name ignoring case, type, class: RFC 5452 §9.1). Queries go out
//! with RD = 0: a TS is an authoritative server, and the LS does not ask it
//! (or anything else) to recurse. They carry no OPT record: over TCP the
//! answer's size is bounded by the length prefix, not by an EDNS payload
//! size (RFC 6891 §6.2.5 concerns UDP), and the LS does not ask for DNSSEC
//! records, so an OPT would only add bytes.
//!
//! **Replies.** [`classify`] turns a reply into an [`Resolution`]. Only what
//! the zone that answered may speak for is kept ([`Bailiwick`]): the answer
//! section's chain from the question's name (the name, then each CNAME
//! target inside the zone), the zone's NS and SOA records, and the
//! addresses of the names those records name. A TS cannot slip records for
//! other names into the LS's answers, its course replies or its cache, and
//! the cache keeps everything under the name asked.
//!
//! **Combining** the replies of all TSes is not done here: the LS's
//! in-flight rules (`ls/inflight.rs`) settle DNS and course queries alike.
//!
//! IDs come from [`SplitMix64`], dnslb's one generator ([`crate::random`]).

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;

use super::message::{HEADER_LEN, Header};
use super::respond::{Resolution, Sections};
use super::{FormatError, Message, Name, Question, RData, Rcode, Record, RecordType};
use crate::random::SplitMix64;

/// Most queries in flight on one connection. A quarter of the 65536 IDs, so
/// a random ID is free at least three times in four and finding one takes
/// a few draws at most on average.
pub const MAX_OUTSTANDING: usize = 16_384;

/// The queries in flight on one connection to a TS, each with the caller's
/// `tag` (what the LS needs to route the reply: a session, a query number).
#[derive(Debug)]
pub struct Upstream<T> {
    pending: HashMap<u16, Asked<T>>,
    rng: SplitMix64,
    max: usize,
}

#[derive(Debug)]
struct Asked<T> {
    question: Question,
    tag: T,
}

/// The connection already has as many queries in flight as allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

impl fmt::Display for Full {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("too many queries in flight on the connection")
    }
}

impl std::error::Error for Full {}

/// Why a message from a TS was not taken as a reply (the LS drops it and
/// counts it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejected {
    /// The bytes are not a DNS message.
    Malformed(FormatError),
    /// QR is clear: a query, not a response.
    NotAResponse { id: u16 },
    /// No query with this ID is in flight (never sent, answered already, or
    /// given up).
    UnknownId { id: u16 },
    /// A query with this ID is in flight but asked something else; it stays
    /// in flight.
    WrongQuestion { id: u16, asked: Question },
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejected::Malformed(e) => write!(f, "malformed reply: {e}"),
            Rejected::NotAResponse { id } => write!(f, "message {id} is a query, not a reply"),
            Rejected::UnknownId { id } => write!(f, "reply {id} matches no query in flight"),
            Rejected::WrongQuestion { id, asked } => write!(
                f,
                "reply {id} does not answer the question asked ({} type {})",
                asked.name, asked.qtype
            ),
        }
    }
}

impl std::error::Error for Rejected {}

/// A reply matched to its query.
#[derive(Debug, PartialEq, Eq)]
pub struct MatchedReply<T> {
    /// The ID it was matched by (free again now).
    pub id: u16,
    /// The question as it was sent.
    pub question: Question,
    /// The tag given to [`Upstream::send`].
    pub tag: T,
    /// The reply's response code, for counters and log lines.
    pub rcode: Rcode,
    /// Whether the reply had TC set (never expected over TCP; classified as
    /// a failure).
    pub truncated: bool,
    /// What the reply says.
    pub outcome: Resolution,
}

impl<T> Upstream<T> {
    /// An empty table whose IDs are drawn from a generator seeded with
    /// `seed` (see [`seed_for`]), allowing `max_outstanding` queries in
    /// flight (at least 1, at most [`MAX_OUTSTANDING`]).
    pub fn new(seed: u64, max_outstanding: usize) -> Upstream<T> {
        Upstream {
            pending: HashMap::new(),
            rng: SplitMix64::new(seed),
            max: max_outstanding.clamp(1, MAX_OUTSTANDING),
        }
    }

    /// Registers a query for `question` and returns its ID and its message
    /// bytes (without the TCP length prefix).
    ///
    /// ```
    /// use dnslb::dns::upstream::Upstream;
    /// use dnslb::dns::{Message, Name, Question, RecordType, CLASS_IN};
    /// let mut link = Upstream::new(1, 100);
    /// let q = Question { name: Name::from_ascii("www.example.com").unwrap(), qtype: RecordType::A, qclass: CLASS_IN };
    /// let (id, bytes) = link.send(&q, "first").unwrap();
    /// let sent = Message::parse(&bytes).unwrap();
    /// assert_eq!((sent.header.id, sent.header.rd, sent.questions), (id, false, vec![q]));
    /// assert_eq!(link.len(), 1);
    /// ```
    ///
    /// # Errors
    /// [`Full`] when the table already holds its maximum.
    pub fn send(&mut self, question: &Question, tag: T) -> Result<(u16, Vec<u8>), Full> {
        if self.pending.len() >= self.max {
            return Err(Full);
        }
        let id = loop {
            // The table is at most a quarter full: each draw is free with
            // probability 3/4 or more.
            let id = (self.rng.next_u64() >> 48) as u16;
            if !self.pending.contains_key(&id) {
                break id;
            }
        };
        self.pending.insert(
            id,
            Asked {
                question: question.clone(),
                tag,
            },
        );
        Ok((id, query_bytes(id, question)))
    }

    /// Matches a message from the TS to the query it answers, which leaves
    /// the table, and classifies it.
    ///
    /// # Errors
    /// [`Rejected`] when it is not a reply to a query in flight; the table
    /// is unchanged.
    pub fn receive(&mut self, bytes: &[u8]) -> Result<MatchedReply<T>, Rejected> {
        let message = Message::parse(bytes).map_err(Rejected::Malformed)?;
        let id = message.header.id;
        if !message.header.qr {
            return Err(Rejected::NotAResponse { id });
        }
        let pending = self.pending.get(&id).ok_or(Rejected::UnknownId { id })?;
        match &message.questions[..] {
            [question] if question.same_as(&pending.question) => {}
            _ => {
                return Err(Rejected::WrongQuestion {
                    id,
                    asked: pending.question.clone(),
                });
            }
        }
        let Asked { question, tag } = self.pending.remove(&id).expect("found just above");
        Ok(MatchedReply {
            id,
            outcome: classify(&question, &message),
            question,
            tag,
            rcode: message.rcode,
            truncated: message.header.tc,
        })
    }

    /// Matches a reply whose bytes can go to the client as they are
    /// ([`relayable`] to the question asked), without decoding its records:
    /// the query leaves the table and its question and tag come back with
    /// the bytes. Any other message comes back as it was, the table
    /// unchanged, for [`receive`](Self::receive).
    ///
    /// # Errors
    /// The bytes, when they are not a relayable reply to a query in flight.
    pub fn receive_relayable(&mut self, bytes: Vec<u8>) -> Result<(Question, T, Relay), Vec<u8>> {
        let Some(&[i0, i1]) = bytes.get(..2) else {
            return Err(bytes);
        };
        let id = u16::from_be_bytes([i0, i1]);
        match self.pending.get(&id) {
            Some(pending) if relayable(&bytes, &pending.question) => {}
            _ => return Err(bytes),
        }
        let Asked { question, tag } = self.pending.remove(&id).expect("found just above");
        Ok((question, tag, Relay(bytes)))
    }

    /// Forgets the queries whose tag `keep` rejects (their deadline
    /// passed): their IDs are free again, and a reply to one later is
    /// [`Rejected::UnknownId`].
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        self.pending.retain(|_, p| keep(&p.tag));
    }

    /// Queries in flight.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether no query is in flight.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

/// A seed for one connection's IDs: the process's hash keys (random per
/// process), the time and the TS's address, so that connections and runs
/// draw different IDs.
pub fn seed_for(addr: SocketAddr) -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(crate::random::random_seed());
    if let Ok(since) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(since.as_nanos());
    }
    std::hash::Hash::hash(&addr, &mut hasher);
    hasher.finish()
}

/// The query message for `question` with `id`: opcode QUERY, RD = 0, one
/// question, no OPT (see the module).
pub fn query_bytes(id: u16, question: &Question) -> Vec<u8> {
    // Written directly (every query to a TS is one): the header, then the
    // one name, which has nothing before it to be compressed against.
    let header = super::Header {
        id,
        qdcount: 1,
        ..super::Header::default()
    };
    let name = question.name.wire();
    let mut query = Vec::with_capacity(super::message::HEADER_LEN + name.len() + 4);
    query.extend_from_slice(&header.to_bytes());
    query.extend_from_slice(name);
    query.extend_from_slice(&question.qtype.0.to_be_bytes());
    query.extend_from_slice(&question.qclass.to_be_bytes());
    query
}

/// What a TS's reply to `question` says. Only records the answering zone
/// may speak for are kept (see [`Bailiwick`]): the chain from the
/// question's name, the zone's NS and SOA records, and the addresses of
/// names those records name.
///
/// - TC set: [`Resolution::ServFail`] (a reply cut short is not an answer).
/// - NOERROR with records on the chain from the question's name (the
///   records owned by the name, then by each CNAME target inside the zone
///   that answered, in that order; records for other names are dropped):
///   [`Resolution::Answer`], with the authority section's NS and SOA records
///   for the names on the chain, and the additional section's A and AAAA
///   records for names those records and the answer name (an MX target, a
///   name server).
/// - NOERROR with no such record: a referral (AA clear, NS records in the
///   authority section for the name or above it, and no SOA: the name is
///   delegated, RFC 1034 §4.3.2)
///   is [`Resolution::Referral`], with the NS records and their glue;
///   otherwise [`Resolution::NoData`], with the authority section's SOA if
///   any.
/// - NXDOMAIN: [`Resolution::NxDomain`], with the chain that led to the
///   missing name (a CNAME whose target does not exist) and the SOA if any.
///   REFUSED: [`Resolution::Refused`]. Any other rcode: [`Resolution::ServFail`].
pub fn classify(question: &Question, reply: &Message) -> Resolution {
    if reply.header.tc {
        return Resolution::ServFail;
    }
    let zone = Bailiwick::of(question, reply);
    let chain = answer_chain(question, &reply.answers, &zone);
    let authority = zone.authority(question, &chain, &reply.authority);
    let soa = authority
        .iter()
        .find(|r| r.rtype == RecordType::SOA)
        .cloned();
    match reply.rcode {
        Rcode::NOERROR if !chain.is_empty() => {
            let additional = zone.additional(&chain, &authority, &reply.additional);
            Resolution::Answer(Sections {
                answers: chain,
                authority,
                additional,
            })
        }
        Rcode::NOERROR
            if !reply.header.aa
                && soa.is_none()
                && authority.iter().any(|r| r.rtype == RecordType::NS) =>
        {
            let additional = zone.additional(&chain, &authority, &reply.additional);
            Resolution::Referral(Sections {
                answers: Vec::new(),
                authority,
                additional,
            })
        }
        Rcode::NOERROR => Resolution::NoData { soa },
        Rcode::NXDOMAIN => Resolution::NxDomain { chain, soa },
        Rcode::REFUSED => Resolution::Refused,
        _ => Resolution::ServFail,
    }
}

/// A TS's reply that [`relayable`] passed, as it came: what [`classify`]
/// would make of it is all of it, so the LS may relay the bytes themselves
/// with the client's ID, flags and question name ([`Relay::for_client`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Relay(Vec<u8>);

impl Relay {
    /// What the reply says, decoded as any reply is (for a client it cannot
    /// be relayed to as it is).
    pub fn outcome(&self) -> Resolution {
        match Message::parse(&self.0) {
            Ok(message) => match message.questions.first() {
                Some(question) => classify(question, &message),
                None => Resolution::ServFail,
            },
            Err(_) => Resolution::ServFail,
        }
    }

    /// The reply as the LS's answer to a client whose response so far is
    /// `response` (ID, opcode, RD, its question as asked, its OPT) and
    /// whose limit is `limit`: the client's ID and flags (QR, its opcode and
    /// RD; AA, TC, RA, Z, AD and CD clear, rcode NOERROR, as
    /// [`super::respond::answer`] sets them), its question name's bytes
    /// (the records' owners point at it, so they spell it as the client
    /// did), the TS's records, and the client's OPT when it sent one.
    ///
    /// # Errors
    /// The reply back when it is no answer to that question or does not
    /// fit `limit`: it is then decoded and answered as any other.
    pub fn for_client(self, response: &Message, limit: usize) -> Result<Vec<u8>, Relay> {
        let mut bytes = self.0;
        let [question] = &response.questions[..] else {
            return Err(Relay(bytes));
        };
        let wire = question.name.wire();
        let end = HEADER_LEN + wire.len();
        let opt = response.edns.as_ref().map(|edns| response.opt_bytes(edns));
        if !asks(&bytes, question)
            || response.rcode != Rcode::NOERROR
            || bytes.len() + opt.as_ref().map_or(0, Vec::len) > limit
        {
            return Err(Relay(bytes));
        }
        let Some(ts) = Header::parse(&bytes) else {
            return Err(Relay(bytes));
        };
        let header = Header {
            id: response.header.id,
            qr: true,
            opcode: response.header.opcode,
            rd: response.header.rd,
            qdcount: 1,
            ancount: ts.ancount,
            nscount: 0,
            arcount: u16::from(opt.is_some()),
            ..Header::default()
        };
        bytes[..HEADER_LEN].copy_from_slice(&header.to_bytes());
        bytes[HEADER_LEN..end].copy_from_slice(wire);
        if let Some(opt) = opt {
            bytes.extend_from_slice(&opt);
        }
        Ok(bytes)
    }
}

/// Whether a TS's reply `bytes` to `question` can be relayed as it is, with
/// nothing [`classify`] or the LS's encoder would change but the ID, flags,
/// question case and OPT: a response to a standard query, without TC,
/// NOERROR, the question itself (name ignoring case, uncompressed; type;
/// class IN), one answer record or more and no other section, each answer
/// owned by a pointer to the question's name, of the type asked, class IN,
/// a TTL below 2^31 (the LS reads a larger one as 0), and for A and AAAA
/// only (4 and 16 bytes of data: nothing inside to check or decompress),
/// and nothing after the last record. Strict: anything else is decoded.
pub fn relayable(bytes: &[u8], question: &Question) -> bool {
    let data_len: usize = match question.qtype {
        RecordType::A => 4,
        RecordType::AAAA => 16,
        _ => return false,
    };
    let Some(h) = Header::parse(bytes) else {
        return false;
    };
    if !h.qr
        || h.opcode != super::OPCODE_QUERY
        || h.tc
        || h.rcode != 0
        || h.qdcount != 1
        || h.ancount == 0
        || h.nscount != 0
        || h.arcount != 0
        || question.qclass != super::CLASS_IN
    {
        return false;
    }
    let wire = question.name.wire();
    let end = HEADER_LEN + wire.len();
    // Not the root: its records would have no owner to point at.
    if wire.len() < 2 {
        return false;
    }
    if !asks(bytes, question) {
        return false;
    }
    let [t0, t1] = question.qtype.0.to_be_bytes();
    let [c0, c1] = question.qclass.to_be_bytes();
    let mut pos = end + 4;
    let [r0, r1] = (data_len as u16).to_be_bytes();
    for _ in 0..h.ancount {
        match bytes.get(pos..pos + 12) {
            Some(&[0xC0, 0x0C, a0, a1, b0, b1, ttl, _, _, _, l0, l1])
                if [a0, a1, b0, b1] == [t0, t1, c0, c1]
                    && ttl & 0x80 == 0
                    && [l0, l1] == [r0, r1] => {}
            _ => return false,
        }
        pos += 12 + data_len;
    }
    pos == bytes.len()
}

/// Whether the message `bytes` begins, after its header, with `question`
/// uncompressed: its name (ignoring case), type and class.
fn asks(bytes: &[u8], question: &Question) -> bool {
    let wire = question.name.wire();
    let end = HEADER_LEN + wire.len();
    let [t0, t1] = question.qtype.0.to_be_bytes();
    let [c0, c1] = question.qclass.to_be_bytes();
    bytes
        .get(HEADER_LEN..end)
        .is_some_and(|name| name.eq_ignore_ascii_case(wire))
        && bytes.get(end..end + 4) == Some(&[t0, t1, c0, c1][..])
}

/// The zone a TS's reply speaks for: the deepest owner of an NS or SOA
/// record in its authority section that is the question's name or above
/// it, but never above the name's top-level domain (a server claiming the
/// root would speak for every name); without one, the top-level domain
/// (in the course's model a TS is a top-level server). A record is in
/// bailiwick when its owner is the zone or below it.
///
/// ```text
/// cn.evil.test. CNAME google.com.   kept: in test.
/// google.com.   A     6.6.6.6       dropped: google.com. is not in test.
/// ```
#[derive(Debug)]
pub struct Bailiwick {
    /// The zone's labels, most specific first.
    labels: Vec<Vec<u8>>,
}

impl Bailiwick {
    /// The zone `reply` to `question` speaks for.
    pub fn of(question: &Question, reply: &Message) -> Bailiwick {
        let qname: Vec<&[u8]> = question.name.labels().collect();
        let floor = qname.len().min(1);
        let depth = reply
            .authority
            .iter()
            .filter(|r| matches!(r.rtype, RecordType::NS | RecordType::SOA))
            .filter(|r| under(&question.name, &r.name))
            .map(|r| r.name.labels().count())
            .max()
            .unwrap_or(floor)
            .max(floor);
        Bailiwick {
            labels: qname[qname.len() - depth..]
                .iter()
                .map(|l| l.to_ascii_lowercase())
                .collect(),
        }
    }

    /// Whether `name` is the zone or below it.
    pub fn holds(&self, name: &Name) -> bool {
        let labels: Vec<&[u8]> = name.labels().collect();
        labels.len() >= self.labels.len()
            && labels[labels.len() - self.labels.len()..]
                .iter()
                .zip(&self.labels)
                .all(|(a, b)| a.eq_ignore_ascii_case(b))
    }

    /// The NS and SOA records of `authority` owned by the question's name,
    /// a name on `chain`, or a name above one of them, inside the top-level
    /// domain.
    fn authority(
        &self,
        question: &Question,
        chain: &[Record],
        authority: &[Record],
    ) -> Vec<Record> {
        let tld = Bailiwick {
            labels: self.labels.last().into_iter().cloned().collect(),
        };
        authority
            .iter()
            .filter(|r| {
                matches!(r.rtype, RecordType::NS | RecordType::SOA) && r.class == question.qclass
            })
            .filter(|r| tld.holds(&r.name))
            .filter(|r| {
                under(&question.name, &r.name) || chain.iter().any(|c| under(&c.name, &r.name))
            })
            .cloned()
            .collect()
    }

    /// The A and AAAA records of `additional` for names that the NS and MX
    /// records of `answers` and `authority` name, inside the zone.
    fn additional(
        &self,
        answers: &[Record],
        authority: &[Record],
        additional: &[Record],
    ) -> Vec<Record> {
        let named: Vec<&Name> = answers
            .iter()
            .chain(authority)
            .filter_map(|r| match &r.data {
                RData::Name(target) if r.rtype == RecordType::NS => Some(target),
                RData::Mx { exchange, .. } => Some(exchange),
                _ => None,
            })
            .collect();
        additional
            .iter()
            .filter(|r| matches!(r.rtype, RecordType::A | RecordType::AAAA))
            .filter(|r| self.holds(&r.name) && named.iter().any(|n| n.eq_ignore_case(&r.name)))
            .cloned()
            .collect()
    }
}

/// Whether `name` is `apex` or below it, ignoring case.
fn under(name: &Name, apex: &Name) -> bool {
    let name: Vec<&[u8]> = name.labels().collect();
    let apex: Vec<&[u8]> = apex.labels().collect();
    name.len() >= apex.len()
        && name[name.len() - apex.len()..]
            .iter()
            .zip(&apex)
            .all(|(a, b)| a.eq_ignore_ascii_case(b))
}

/// The records of `answers` on the chain from the question's name: those
/// of the type asked (any type for `*`) or CNAMEs, owned by the name, then
/// by the CNAME's target while it is inside `zone`, and so on; each name
/// visited once (a CNAME loop ends).
fn answer_chain(question: &Question, answers: &[Record], zone: &Bailiwick) -> Vec<Record> {
    let wanted = |r: &Record| {
        r.class == question.qclass
            && (r.rtype == question.qtype
                || r.rtype == RecordType::CNAME
                || question.qtype == RecordType::ANY)
    };
    let mut kept = Vec::new();
    let mut visited: Vec<Name> = Vec::new();
    let mut owner = question.name.clone();
    loop {
        if visited.iter().any(|v| v.eq_ignore_case(&owner)) || !zone.holds(&owner) {
            break;
        }
        let here: Vec<&Record> = answers
            .iter()
            .filter(|r| r.name.eq_ignore_case(&owner) && wanted(r))
            .collect();
        kept.extend(here.iter().map(|r| (*r).clone()));
        let next = here.iter().find_map(|r| match &r.data {
            RData::Name(target)
                if r.rtype == RecordType::CNAME && question.qtype != RecordType::CNAME =>
            {
                Some(target.clone())
            }
            _ => None,
        });
        visited.push(owner);
        match next {
            Some(target) => owner = target,
            None => break,
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::CLASS_IN;
    use crate::dns::fixture::{a, name, question_of, soa};
    use crate::dns::respond::{self, Accepted, Checked, Transport, accept_query};

    #[test]
    fn a_query_is_the_message_with_its_one_question() {
        for (id, text, qtype) in [
            (7, "www.Example.com", RecordType::A),
            (65535, ".", RecordType::AAAA),
        ] {
            let q = Question {
                name: name(text),
                qtype,
                qclass: CLASS_IN,
            };
            let mut message = Message::default();
            message.header.id = id;
            message.questions.push(q.clone());
            assert_eq!(query_bytes(id, &q), message.to_bytes(crate::dns::TCP_LIMIT));
        }
    }

    /// A TS's reply to `id` about `q` with `rcode` and `answers`.
    fn reply(id: u16, q: &Question, code: Rcode, answers: Vec<Record>) -> Message {
        let mut m = Message::default();
        m.header.id = id;
        m.header.qr = true;
        m.header.aa = true;
        m.rcode = code;
        m.questions.push(q.clone());
        m.answers = answers;
        m
    }

    #[test]
    fn replies_out_of_order_reach_their_own_queries() {
        let mut link = Upstream::new(7, 100);
        let names = ["one.example", "two.example", "three.example"];
        let sent: Vec<(u16, Question)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let q = question_of(n, RecordType::A);
                (link.send(&q, i).unwrap().0, q)
            })
            .collect();
        for (i, (id, q)) in sent.iter().enumerate().rev() {
            let bytes =
                reply(*id, q, Rcode::NOERROR, vec![a(names[i], 60, i as u8)]).to_bytes(65535);
            let m = link.receive(&bytes).unwrap();
            assert_eq!((m.id, m.tag), (*id, i));
            assert_eq!(
                m.outcome,
                Resolution::answer(vec![a(names[i], 60, i as u8)])
            );
        }
        assert!(link.is_empty());
        // A second reply to an ID already answered matches nothing.
        let (id, q) = &sent[0];
        let again = reply(*id, q, Rcode::NOERROR, Vec::new()).to_bytes(65535);
        assert_eq!(link.receive(&again), Err(Rejected::UnknownId { id: *id }));
    }

    #[test]
    fn the_question_is_matched_ignoring_case_and_a_wrong_one_is_rejected() {
        let mut link = Upstream::new(3, 10);
        let q = question_of("WWW.Example.com", RecordType::A);
        let (id, _) = link.send(&q, ()).unwrap();
        for wrong in [
            question_of("www.example.org", RecordType::A),
            question_of("www.example.com", RecordType::AAAA),
        ] {
            let bytes = reply(id, &wrong, Rcode::NOERROR, Vec::new()).to_bytes(512);
            assert_eq!(
                link.receive(&bytes),
                Err(Rejected::WrongQuestion {
                    id,
                    asked: q.clone()
                })
            );
        }
        let mut none = reply(id, &q, Rcode::NOERROR, Vec::new());
        none.questions.clear();
        assert!(matches!(
            link.receive(&none.to_bytes(512)),
            Err(Rejected::WrongQuestion { .. })
        ));
        assert_eq!(link.len(), 1, "the query stays in flight");
        let lower = question_of("www.example.COM.", RecordType::A);
        let bytes = reply(id, &lower, Rcode::NXDOMAIN, Vec::new()).to_bytes(512);
        let m = link.receive(&bytes).unwrap();
        assert_eq!(
            (m.rcode, m.outcome),
            (Rcode::NXDOMAIN, Resolution::nxdomain())
        );
    }

    #[test]
    fn ids_in_flight_are_never_handed_out_twice() {
        let mut link = Upstream::new(11, MAX_OUTSTANDING);
        let q = question_of("a.example", RecordType::A);
        let mut seen = std::collections::HashSet::new();
        for i in 0..MAX_OUTSTANDING {
            let (id, _) = link.send(&q, i).unwrap();
            assert!(seen.insert(id), "ID {id} handed out twice");
        }
        assert_eq!(link.send(&q, 0), Err(Full));
        // A freed ID leaves room for one more, never an ID still in flight.
        let freed = *seen.iter().next().unwrap();
        let answer = reply(freed, &q, Rcode::NXDOMAIN, vec![]).to_bytes(65535);
        let freed_tag = link.receive(&answer).unwrap().tag;
        seen.remove(&freed);
        let (id, _) = link.send(&q, freed_tag).unwrap();
        assert!(!seen.contains(&id));
        // Queries given up (their deadline passed) free their IDs.
        link.retain(|&tag| tag >= MAX_OUTSTANDING / 2);
        assert_eq!(link.len(), MAX_OUTSTANDING / 2);
        link.retain(|_| false);
        assert!(link.is_empty());
    }

    #[test]
    fn ids_are_spread_and_differ_between_seeds() {
        let ids = |seed| {
            let mut link = Upstream::new(seed, 100);
            let q = question_of("a.example", RecordType::A);
            (0..50)
                .map(|_| link.send(&q, ()).unwrap().0)
                .collect::<Vec<u16>>()
        };
        assert_ne!(ids(1), ids(2));
        assert_ne!(ids(1), (0..50).collect::<Vec<u16>>());
        assert_ne!(
            seed_for("127.0.0.1:1".parse().unwrap()),
            seed_for("127.0.0.1:2".parse().unwrap())
        );
    }

    #[test]
    fn queries_and_junk_from_a_ts_are_rejected() {
        let mut link = Upstream::new(5, 10);
        let q = question_of("a.example", RecordType::A);
        let (id, bytes) = link.send(&q, ()).unwrap();
        assert_eq!(link.receive(&bytes), Err(Rejected::NotAResponse { id }));
        assert!(matches!(
            link.receive(&bytes[..14]),
            Err(Rejected::Malformed(_))
        ));
        assert_eq!(link.len(), 1);
    }

    #[test]
    fn replies_are_classified() {
        let q = question_of("www.example.com", RecordType::A);
        let mut with_soa = reply(1, &q, Rcode::NXDOMAIN, Vec::new());
        with_soa.authority.push(soa(3600, 30));
        assert_eq!(
            classify(&q, &with_soa),
            Resolution::NxDomain {
                chain: Vec::new(),
                soa: Some(soa(3600, 30))
            }
        );
        with_soa.rcode = Rcode::NOERROR;
        assert_eq!(
            classify(&q, &with_soa),
            Resolution::NoData {
                soa: Some(soa(3600, 30))
            }
        );
        let empty = reply(1, &q, Rcode::NOERROR, Vec::new());
        assert_eq!(classify(&q, &empty), Resolution::NoData { soa: None });
        let mut referral = empty.clone();
        referral.header.aa = false;
        referral.authority.push(Record {
            name: name("example.com"),
            rtype: RecordType::NS,
            class: CLASS_IN,
            ttl: 60,
            data: RData::Name(name("ns.elsewhere.net")),
        });
        assert_eq!(
            classify(&q, &referral),
            Resolution::Referral(Sections {
                authority: referral.authority.clone(),
                ..Sections::default()
            })
        );
        // From the zone's own authority, NS without a SOA is no delegation.
        referral.header.aa = true;
        assert_eq!(classify(&q, &referral), Resolution::NoData { soa: None });
        assert_eq!(
            classify(&q, &reply(1, &q, Rcode::REFUSED, Vec::new())),
            Resolution::Refused
        );
        for code in [Rcode::SERVFAIL, Rcode::FORMERR, Rcode::NOTIMP] {
            assert_eq!(
                classify(&q, &reply(1, &q, code, Vec::new())),
                Resolution::ServFail
            );
        }
        let mut cut = reply(1, &q, Rcode::NOERROR, vec![a("www.example.com", 60, 1)]);
        cut.header.tc = true;
        assert_eq!(classify(&q, &cut), Resolution::ServFail);
    }

    #[test]
    fn only_the_chain_from_the_question_is_kept() {
        let q = question_of("www.example.com", RecordType::A);
        let cname = |from: &str, to: &str| Record {
            name: name(from),
            rtype: RecordType::CNAME,
            class: CLASS_IN,
            ttl: 60,
            data: RData::Name(name(to)),
        };
        let answers = vec![
            a("evil.example.net", 60, 66),
            cname("WWW.example.com", "web.example.com"),
            a("web.example.com", 60, 1),
            a("web.example.com", 60, 2),
            cname("web.example.com", "www.example.com"),
        ];
        let m = reply(1, &q, Rcode::NOERROR, answers);
        assert_eq!(
            classify(&q, &m),
            Resolution::answer(vec![
                cname("WWW.example.com", "web.example.com"),
                a("web.example.com", 60, 1),
                a("web.example.com", 60, 2),
                cname("web.example.com", "www.example.com"),
            ])
        );
        let only_evil = reply(1, &q, Rcode::NOERROR, vec![a("evil.example.net", 60, 66)]);
        assert_eq!(classify(&q, &only_evil), Resolution::NoData { soa: None });
    }
    fn cname(from: &str, to: &str) -> Record {
        Record {
            name: name(from),
            rtype: RecordType::CNAME,
            class: CLASS_IN,
            ttl: 60,
            data: RData::Name(name(to)),
        }
    }

    fn ns(zone: &str, server: &str) -> Record {
        Record {
            name: name(zone),
            rtype: RecordType::NS,
            class: CLASS_IN,
            ttl: 600,
            data: RData::Name(name(server)),
        }
    }

    #[test]
    fn a_cname_is_followed_only_inside_the_zone_that_answered() {
        let q = question_of("cn.evil.test", RecordType::A);
        let answers = vec![cname("cn.evil.test", "google.com"), a("google.com", 60, 6)];
        let m = reply(1, &q, Rcode::NOERROR, answers);
        assert_eq!(
            classify(&q, &m),
            Resolution::answer(vec![cname("cn.evil.test", "google.com")])
        );
        // Claiming the root as its zone widens nothing: the floor is the TLD.
        let mut root = m.clone();
        root.authority.push(ns(".", "ns.evil.test"));
        assert_eq!(
            classify(&q, &root),
            Resolution::answer(vec![cname("cn.evil.test", "google.com")])
        );
        // The zone's NS narrows the bailiwick to the zone.
        let q = question_of("www.example.test", RecordType::A);
        let mut m = reply(
            1,
            &q,
            Rcode::NOERROR,
            vec![
                cname("www.example.test", "web.example.test"),
                cname("web.example.test", "cdn.other.test"),
                a("cdn.other.test", 60, 1),
            ],
        );
        m.authority.push(ns("example.test", "ns1.example.test"));
        let Resolution::Answer(sections) = classify(&q, &m) else {
            panic!()
        };
        assert_eq!(
            sections.answers,
            [
                cname("www.example.test", "web.example.test"),
                cname("web.example.test", "cdn.other.test")
            ]
        );
        assert_eq!(sections.authority, [ns("example.test", "ns1.example.test")]);
        // Without it, other.test is inside test.: the chain goes on.
        m.authority.clear();
        let Resolution::Answer(sections) = classify(&q, &m) else {
            panic!()
        };
        assert_eq!(sections.answers.len(), 3);
    }

    #[test]
    fn authority_and_additional_records_that_go_with_the_answer_are_kept() {
        let q = question_of("example.test", RecordType::MX);
        let mx = Record {
            name: name("example.test"),
            rtype: RecordType::MX,
            class: CLASS_IN,
            ttl: 60,
            data: RData::Mx {
                preference: 10,
                exchange: name("mail.example.test"),
            },
        };
        let mut m = reply(1, &q, Rcode::NOERROR, vec![mx.clone()]);
        m.authority.push(ns("example.test", "ns1.example.test"));
        m.authority.push(ns("elsewhere.test", "ns1.example.test"));
        m.additional.push(a("mail.example.test", 60, 25));
        m.additional.push(a("ns1.example.test", 60, 53));
        m.additional.push(a("unrelated.example.test", 60, 66));
        m.additional.push(a("mail.example.test.evil.net", 60, 66));
        assert_eq!(
            classify(&q, &m),
            Resolution::Answer(Sections {
                answers: vec![mx],
                authority: vec![ns("example.test", "ns1.example.test")],
                additional: vec![
                    a("mail.example.test", 60, 25),
                    a("ns1.example.test", 60, 53)
                ],
            })
        );
    }

    #[test]
    fn a_referral_keeps_its_cut_and_glue_inside_it() {
        let q = question_of("www.sub.example.test", RecordType::A);
        let mut m = reply(1, &q, Rcode::NOERROR, Vec::new());
        m.header.aa = false;
        m.authority
            .push(ns("sub.example.test", "ns1.sub.example.test"));
        m.authority.push(ns("sub.example.test", "ns.other.net"));
        m.additional.push(a("ns1.sub.example.test", 60, 1));
        m.additional.push(a("ns.other.net", 60, 66));
        assert_eq!(
            classify(&q, &m),
            Resolution::Referral(Sections {
                answers: Vec::new(),
                authority: m.authority.clone(),
                additional: vec![a("ns1.sub.example.test", 60, 1)],
            })
        );
        // NS records for another name are not a referral for this one.
        let mut other = reply(1, &q, Rcode::NOERROR, Vec::new());
        other.authority.push(ns("google.com", "ns.evil.test"));
        assert_eq!(classify(&q, &other), Resolution::NoData { soa: None });
    }

    #[test]
    fn nxdomain_keeps_the_cname_that_led_to_it_and_the_soa() {
        let q = question_of("alias.example.com", RecordType::A);
        let mut m = reply(
            1,
            &q,
            Rcode::NXDOMAIN,
            vec![cname("alias.example.com", "gone.example.com")],
        );
        m.authority.push(soa(3600, 30));
        assert_eq!(
            classify(&q, &m),
            Resolution::NxDomain {
                chain: vec![cname("alias.example.com", "gone.example.com")],
                soa: Some(soa(3600, 30)),
            }
        );
    }

    /// A client's query for `q` (its case kept) with ID 0x4242, RD, and
    /// an OPT of `edns` (payload, DO) when given, checked as the front end
    /// checks it.
    fn client(q: &Question, edns: Option<(u16, bool)>, transport: Transport) -> Checked {
        let mut m = Message::default();
        m.header.id = 0x4242;
        m.header.rd = true;
        m.questions.push(q.clone());
        m.edns = edns.map(|(payload, dnssec_ok)| super::super::Edns {
            payload,
            version: 0,
            dnssec_ok,
            options: Vec::new(),
        });
        match accept_query(&m.to_bytes(512), transport) {
            Some(Accepted::Query(checked)) => checked,
            other => panic!("{other:?}"),
        }
    }

    fn aaaa(owner: &str, ttl: u32, last: u8) -> Record {
        let mut data = [0u8; 16];
        data[0] = 0xfd;
        data[15] = last;
        Record {
            name: name(owner),
            rtype: RecordType::AAAA,
            class: CLASS_IN,
            ttl,
            data: RData::Other(data.to_vec()),
        }
    }

    #[test]
    fn a_relayed_answer_is_byte_for_byte_the_decoded_one() {
        let asked_a = question_of("WwW.Example.COM", RecordType::A);
        let asked_aaaa = question_of("v6.EXAMPLE.com", RecordType::AAAA);
        let cases = [
            (
                &asked_a,
                "www.example.com",
                vec![a("www.example.com", 300, 1)],
                None,
                Transport::Udp,
            ),
            (
                &asked_a,
                "WWW.EXAMPLE.COM",
                vec![
                    a("www.example.com", 0x7FFF_FFFF, 1),
                    a("www.example.com", 5, 2),
                    a("www.example.com", 5, 3),
                ],
                Some((4096, false)),
                Transport::Udp,
            ),
            (
                &asked_a,
                "WwW.Example.COM",
                vec![a("www.example.com", 60, 9)],
                Some((512, true)),
                Transport::Udp,
            ),
            (
                &asked_a,
                "www.example.com",
                vec![a("www.example.com", 60, 9)],
                Some((1232, false)),
                Transport::Tcp,
            ),
            (
                &asked_aaaa,
                "v6.example.com",
                vec![aaaa("v6.example.com", 60, 1), aaaa("v6.example.com", 60, 2)],
                None,
                Transport::Tcp,
            ),
        ];
        for (asked, spelt, answers, edns, transport) in cases {
            let query = client(asked, edns, transport);
            let mut sent = asked.clone();
            sent.name = name(spelt);
            let mut from_ts = reply(0x0101, &sent, Rcode::NOERROR, answers);
            // What the LS clears whatever the TS said.
            from_ts.header.ra = true;
            from_ts.header.ad = true;
            from_ts.header.cd = true;
            let bytes = from_ts.to_bytes(65_535);
            assert!(relayable(&bytes, asked), "{spelt}: {bytes:?}");
            let decoded =
                respond::answer(&query, &classify(asked, &Message::parse(&bytes).unwrap()));
            let relayed = Relay(bytes.clone()).for_client(&query.response, query.limit);
            assert_eq!(relayed.unwrap(), decoded, "{spelt} {edns:?} {transport:?}");
            let own = classify(&sent, &Message::parse(&bytes).unwrap());
            assert_eq!(Relay(bytes).outcome(), own);
        }
    }

    #[test]
    fn only_a_plain_answer_to_the_question_is_relayable() {
        let q = question_of("www.example.com", RecordType::A);
        let plain = || reply(7, &q, Rcode::NOERROR, vec![a("www.example.com", 60, 1)]);
        assert!(relayable(&plain().to_bytes(65_535), &q));
        type Change = fn(&mut Message);
        let changed: [(&str, Change); 11] = [
            ("TTL of 2^31", |m| m.answers[0].ttl = 0x8000_0000),
            ("another name", |m| {
                m.questions[0].name = name("ww.example.com")
            }),
            ("another type", |m| m.questions[0].qtype = RecordType::AAAA),
            ("TC", |m| m.header.tc = true),
            ("a query", |m| m.header.qr = false),
            ("NXDOMAIN", |m| m.rcode = Rcode::NXDOMAIN),
            ("an authority record", |m| m.authority.push(soa(60, 60))),
            ("an additional record", |m| {
                m.additional.push(a("ns.example.com", 60, 2))
            }),
            ("another owner", |m| {
                m.answers.push(a("xx.example.com", 60, 2))
            }),
            ("a CNAME", |m| {
                m.answers[0] = Record {
                    name: name("www.example.com"),
                    rtype: RecordType::CNAME,
                    class: CLASS_IN,
                    ttl: 60,
                    data: RData::Name(name("web.example.com")),
                };
                m.answers.push(a("web.example.com", 60, 1));
            }),
            ("no answer", |m| m.answers.clear()),
        ];
        for (what, change) in changed {
            let mut m = plain();
            change(&mut m);
            assert!(!relayable(&m.to_bytes(65_535), &q), "{what}");
        }
        let mut trailing = plain().to_bytes(65_535);
        trailing.push(0);
        assert!(!relayable(&trailing, &q), "a byte after the records");
        assert!(!relayable(
            &plain().to_bytes(65_535),
            &question_of("www.example.com", RecordType::MX)
        ));
    }

    #[test]
    fn an_answer_too_large_for_the_client_is_not_relayed() {
        let q = question_of("big.example.com", RecordType::A);
        let answers = (1..=40).map(|i| a("big.example.com", 60, i)).collect();
        let bytes = reply(7, &q, Rcode::NOERROR, answers).to_bytes(65_535);
        assert!(bytes.len() > 512 && relayable(&bytes, &q));
        let udp = client(&q, None, Transport::Udp);
        let back = Relay(bytes.clone())
            .for_client(&udp.response, udp.limit)
            .unwrap_err();
        assert_eq!(back, Relay(bytes.clone()), "given back untouched");
        let tcp = client(&q, None, Transport::Tcp);
        assert!(Relay(bytes).for_client(&tcp.response, tcp.limit).is_ok());
    }
}
