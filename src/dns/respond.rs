//! Answering a client's DNS query, shared by every dnslb DNS front end:
//! [`accept_query`] checks a query and starts its response (ID, opcode, RD
//! and question echoed, an OPT for an OPT, the size the answer may take);
//! the TS fills that response from its table, the LS with [`answer`] from
//! an [`Resolution`]: what its TSes (or its cache) said. Pure functions, no I/O,
//! and nothing of the course protocol (the LS translates its TSes' lines).
//!
//! The LS's answers have RA = 0 and AA = 0. RA = 0: the LS is not a
//! recursive resolver; it asks only its own TSes and never follows a
//! referral or a CNAME to another server, so "recursion available" would
//! promise what it does not do (a stub resolver then knows to ask a real
//! resolver for names outside the TSes). AA = 0: the LS is not itself an
//! authority for any zone, and answers from its cache are not authoritative
//! data (RFC 1035 §4.1.1, RFC 2181 §5.4.1).

use super::{Edns, Header, Message, Question, Rcode, Record, RecordType};

/// The transport a query came by, which sets how large its answer may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// 512 bytes, or the size the query's OPT advertises up to
    /// [`super::EDNS_PAYLOAD`]; TC beyond it.
    Udp,
    /// 65535 bytes; TC never set.
    Tcp,
}

/// The records of a reply the LS passes on, section by section.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sections {
    /// The answer section: the chain from the question's name.
    pub answers: Vec<Record>,
    /// The authority section: the zone's NS (or SOA) records.
    pub authority: Vec<Record>,
    /// The additional section: addresses of names the other sections
    /// name (an MX target, a name server's glue).
    pub additional: Vec<Record>,
}

impl Sections {
    /// Every record, section after section.
    pub fn records(&self) -> impl Iterator<Item = &Record> {
        self.answers
            .iter()
            .chain(&self.authority)
            .chain(&self.additional)
    }

    /// Every record, mutably, section after section.
    pub fn records_mut(&mut self) -> impl Iterator<Item = &mut Record> {
        self.answers
            .iter_mut()
            .chain(&mut self.authority)
            .chain(&mut self.additional)
    }
}

/// What the TSes (or the cache) said about one question: the LS's answer,
/// and each TS reply once classified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// NOERROR with records for the question: the answer section's chain,
    /// with the authority and additional records that go with it, TTLs as
    /// sent.
    Answer(Sections),
    /// NOERROR without an answer from a server that delegates the name: the
    /// NS records of the zone cut in the authority section, their glue in
    /// the additional section (RFC 1034 §4.3.2). Passed on as it came; a
    /// positive answer for combining.
    Referral(Sections),
    /// The name does not exist, with the CNAME chain that led to it (a
    /// CNAME whose target does not exist) and the SOA record that says for
    /// how long (RFC 2308 §3), when the server sent one.
    NxDomain {
        chain: Vec<Record>,
        soa: Option<Record>,
    },
    /// The name exists without records of the type asked (NOERROR, no
    /// answer: RFC 2308 §2.2), with the SOA when the server sent one.
    NoData { soa: Option<Record> },
    /// The server does not answer for the name ("not mine").
    Refused,
    /// No usable answer: a server failure, another rcode, a truncated reply,
    /// or the deadline.
    ServFail,
}

impl Resolution {
    /// The response code this outcome is answered with.
    pub fn rcode(&self) -> Rcode {
        match self {
            Resolution::Answer(_) | Resolution::Referral(_) | Resolution::NoData { .. } => {
                Rcode::NOERROR
            }
            Resolution::NxDomain { .. } => Rcode::NXDOMAIN,
            Resolution::Refused => Rcode::REFUSED,
            Resolution::ServFail => Rcode::SERVFAIL,
        }
    }

    /// NXDOMAIN with no chain and no SOA: what course TSes' `NOT FOUND`
    /// means.
    pub fn nxdomain() -> Resolution {
        Resolution::NxDomain {
            chain: Vec::new(),
            soa: None,
        }
    }

    /// An answer of `records` in the answer section only.
    pub fn answer(records: Vec<Record>) -> Resolution {
        Resolution::Answer(Sections {
            answers: records,
            ..Sections::default()
        })
    }
}

/// A checked query with one question and the start of its response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    /// The question, as asked (case kept).
    pub question: Question,
    /// The response so far: ID, opcode and RD echoed, QR set, the question
    /// echoed, an OPT (version 0, payload [`super::EDNS_PAYLOAD`], DO
    /// copied) when the query had one; rcode NOERROR, no records, AA and RA
    /// clear.
    pub response: Message,
    /// The most bytes the response may take: 512 over UDP without EDNS,
    /// with it the advertised size but at most [`super::EDNS_PAYLOAD`]
    /// (RFC 9715), 65535 over TCP.
    pub limit: usize,
}

impl Checked {
    /// The response's bytes, truncated to [`limit`](Self::limit).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.response.to_bytes(self.limit)
    }
}

/// What to do with a query message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Accepted {
    /// A query to answer.
    Query(Checked),
    /// A query answered already with an error: FORMERR (it does not parse,
    /// or has other than one question), NOTIMP (an opcode other than
    /// QUERY) or BADVERS (EDNS version above 0). `problem` says what was
    /// wrong, for a log line; `None` for NOTIMP and BADVERS.
    Answered {
        bytes: Vec<u8>,
        problem: Option<String>,
    },
}

/// Checks a query message. `None` when it is dropped unanswered: shorter
/// than a header, or a response rather than a query.
///
/// ```
/// use dnslb::dns::respond::{accept_query, Accepted, Transport};
/// use dnslb::dns::{Message, Rcode};
/// // dig's query for www.example.com A, without EDNS.
/// let query = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\
///               \x03WWW\x07example\x03com\x00\x00\x01\x00\x01";
/// let Some(Accepted::Query(q)) = accept_query(query, Transport::Udp) else { panic!() };
/// assert_eq!((q.question.name.to_string().as_str(), q.limit), ("WWW.example.com.", 512));
/// // ID and RD echoed, QR set, the question echoed byte for byte.
/// assert_eq!(q.to_bytes(), [&b"\x12\x34\x81\x00\x00\x01\x00\x00\x00\x00\x00\x00"[..], &query[12..]].concat());
/// let Some(Accepted::Answered { bytes, .. }) = accept_query(&query[..20], Transport::Udp) else { panic!() };
/// assert_eq!(Message::parse(&bytes).unwrap().rcode, Rcode::FORMERR);
/// assert_eq!(accept_query(&query[..11], Transport::Udp), None);
/// ```
pub fn accept_query(bytes: &[u8], transport: Transport) -> Option<Accepted> {
    let header = Header::parse(bytes)?;
    if header.qr {
        return None;
    }
    let mut response = Message::response_to(&Message {
        header,
        ..Message::default()
    });
    if header.opcode != super::OPCODE_QUERY {
        response.rcode = Rcode::NOTIMP;
        return Some(Accepted::Answered {
            bytes: response.to_bytes(super::UDP_PLAIN_LIMIT),
            problem: None,
        });
    }
    let query = match Message::parse(bytes) {
        Ok(query) => query,
        Err(e) => {
            response.rcode = Rcode::FORMERR;
            return Some(Accepted::Answered {
                bytes: response.to_bytes(super::UDP_PLAIN_LIMIT),
                problem: Some(format!("FORMERR for query {}: {e}", header.id)),
            });
        }
    };
    let limit = match (transport, &query.edns) {
        (Transport::Tcp, _) => super::TCP_LIMIT,
        // The smaller of the client's size and the server's own
        // (RFC 9715): an answer never larger than what is advertised back,
        // so a short query cannot draw a large datagram.
        (Transport::Udp, Some(edns)) => edns.udp_limit().min(usize::from(super::EDNS_PAYLOAD)),
        (Transport::Udp, None) => super::UDP_PLAIN_LIMIT,
    };
    if let Some(edns) = &query.edns {
        response.edns = Some(Edns {
            payload: super::EDNS_PAYLOAD,
            version: 0,
            dnssec_ok: edns.dnssec_ok,
            options: Vec::new(),
        });
        if edns.version > 0 {
            response.rcode = Rcode::BADVERS;
            // Echoed, as NSD and Unbound do: the asker matches it.
            response.questions.clone_from(&query.questions);
            return Some(Accepted::Answered {
                bytes: response.to_bytes(limit),
                problem: None,
            });
        }
    }
    let [question] = &query.questions[..] else {
        response.rcode = Rcode::FORMERR;
        return Some(Accepted::Answered {
            bytes: response.to_bytes(limit),
            problem: Some(format!(
                "FORMERR for query {}: {} questions",
                header.id,
                query.questions.len()
            )),
        });
    };
    response.questions.push(question.clone());
    Some(Accepted::Query(Checked {
        question: question.clone(),
        response,
        limit,
    }))
}

/// The LS's answer to `query` from `outcome`: its rcode and its records,
/// section by section (see [`Resolution`]): for NXDOMAIN the CNAME chain in
/// the answer section, and for NXDOMAIN and NODATA the SOA in the authority
/// section when there is one (RFC 2308 §3); RA and AA clear (see the
/// module). Records owned by the question's name spell it as the question
/// does (their names are pointers to it). Over UDP an answer that does not fit loses its additional
/// records first, then (for a positive answer, where they are optional)
/// its authority records; past that it is cut to whole RRsets with TC set,
/// so the client asks again over TCP.
///
/// ```
/// use dnslb::dns::respond::{accept_query, answer, Accepted, Resolution, Transport};
/// use dnslb::dns::{Message, Record, Rcode};
/// let query = b"\x00\x07\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x01x\x00\x00\x01\x00\x01";
/// let Some(Accepted::Query(q)) = accept_query(query, Transport::Udp) else { panic!() };
/// let found = Resolution::answer(vec![Record::a(q.question.name.clone(), 42, [10, 0, 0, 1].into())]);
/// let m = Message::parse(&answer(&q, &found)).unwrap();
/// assert_eq!((m.header.id, m.header.rd, m.header.ra, m.rcode), (7, true, false, Rcode::NOERROR));
/// assert_eq!(m.answers[0].ttl, 42);
/// let m = Message::parse(&answer(&q, &Resolution::ServFail)).unwrap();
/// assert_eq!((m.rcode, m.answers.len()), (Rcode::SERVFAIL, 0));
/// ```
pub fn answer(query: &Checked, outcome: &Resolution) -> Vec<u8> {
    let mut response = query.response.clone();
    response.header.aa = false;
    response.header.ra = false;
    response.rcode = outcome.rcode();
    match outcome {
        Resolution::Answer(sections) | Resolution::Referral(sections) => {
            response.answers.clone_from(&sections.answers);
            response.authority.clone_from(&sections.authority);
            response.additional.clone_from(&sections.additional);
        }
        Resolution::NxDomain { chain, soa } => {
            response.answers.clone_from(chain);
            response.authority.extend(soa.iter().cloned());
        }
        Resolution::NoData { soa } => response.authority.extend(soa.iter().cloned()),
        Resolution::Refused | Resolution::ServFail => {}
    }
    let bytes = response.to_bytes(query.limit);
    if matches!(outcome, Resolution::Answer(_))
        && is_truncated(&bytes)
        && !response.authority.is_empty()
    {
        // The authority records of a positive answer are optional (RFC
        // 2181 §9): left out before the answer is cut.
        response.authority.clear();
        response.additional.clear();
        return response.to_bytes(query.limit);
    }
    bytes
}

/// Whether `bytes` (an answer) has TC set.
pub fn is_truncated(bytes: &[u8]) -> bool {
    Header::parse(bytes).is_some_and(|h| h.tc)
}

/// What a response told its client, as the metrics count responses: its
/// rcode, and for NOERROR whether it carried an answer, a referral, only
/// TC (ask again over TCP), or nothing (NODATA).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseKind {
    /// NOERROR with records in the answer section.
    Answer,
    /// NOERROR without an answer, not authoritative, NS records in the
    /// authority section: a delegation.
    Referral,
    /// NOERROR without an answer or a referral: the name exists without
    /// records of the type asked (RFC 2308 §2.2).
    NoData,
    /// NOERROR, TC set and no answer: the answer did not fit (or the rate
    /// limit's slip).
    Truncated,
    NxDomain,
    ServFail,
    Refused,
    FormErr,
    NotImp,
    /// Another rcode (BADVERS among them), or not a DNS message.
    Other,
}

impl ResponseKind {
    /// Every kind, in the order of their [`index`](Self::index).
    pub const ALL: [ResponseKind; 10] = [
        ResponseKind::Answer,
        ResponseKind::Referral,
        ResponseKind::NoData,
        ResponseKind::Truncated,
        ResponseKind::NxDomain,
        ResponseKind::ServFail,
        ResponseKind::Refused,
        ResponseKind::FormErr,
        ResponseKind::NotImp,
        ResponseKind::Other,
    ];

    /// The kind of the response `bytes`. Reads the header only, and parses
    /// the message only for a NOERROR without an answer that may be
    /// something else: a referral (not authoritative, authority records)
    /// or an extended rcode such as BADVERS (an OPT record).
    ///
    /// ```
    /// use dnslb::dns::respond::ResponseKind;
    /// // ID, flags QR RD, NOERROR; counts 1 0 0 0.
    /// let nodata = b"\x00\x01\x81\x00\x00\x01\x00\x00\x00\x00\x00\x00\x01x\x00\x00\x01\x00\x01";
    /// assert_eq!(ResponseKind::of(nodata), ResponseKind::NoData);
    /// let mut nxdomain = nodata.to_vec();
    /// nxdomain[3] = 3;
    /// assert_eq!(ResponseKind::of(&nxdomain).label(), "nxdomain");
    /// assert_eq!(ResponseKind::of(b"\x00"), ResponseKind::Other);
    /// ```
    pub fn of(bytes: &[u8]) -> ResponseKind {
        let Some(header) = Header::parse(bytes) else {
            return ResponseKind::Other;
        };
        let rcode = Rcode(u16::from(header.rcode));
        let mut parsed = None;
        if rcode == Rcode::NOERROR
            && header.ancount == 0
            && !header.tc
            && ((header.nscount > 0 && !header.aa) || header.arcount > 0)
        {
            parsed = Message::parse(bytes).ok();
        }
        match parsed.as_ref().map_or(rcode, |m| m.rcode) {
            Rcode::NOERROR if header.ancount > 0 => ResponseKind::Answer,
            Rcode::NOERROR if header.tc => ResponseKind::Truncated,
            Rcode::NOERROR if parsed.as_ref().is_some_and(delegates) => ResponseKind::Referral,
            Rcode::NOERROR => ResponseKind::NoData,
            Rcode::NXDOMAIN => ResponseKind::NxDomain,
            Rcode::SERVFAIL => ResponseKind::ServFail,
            Rcode::REFUSED => ResponseKind::Refused,
            Rcode::FORMERR => ResponseKind::FormErr,
            Rcode::NOTIMP => ResponseKind::NotImp,
            _ => ResponseKind::Other,
        }
    }

    /// Its position in [`ALL`](Self::ALL).
    pub fn index(self) -> usize {
        self as usize
    }

    /// How the metrics label it (`result="nxdomain"`).
    pub fn label(self) -> &'static str {
        match self {
            ResponseKind::Answer => "answer",
            ResponseKind::Referral => "referral",
            ResponseKind::NoData => "nodata",
            ResponseKind::Truncated => "truncated",
            ResponseKind::NxDomain => "nxdomain",
            ResponseKind::ServFail => "servfail",
            ResponseKind::Refused => "refused",
            ResponseKind::FormErr => "formerr",
            ResponseKind::NotImp => "notimp",
            ResponseKind::Other => "other",
        }
    }

    /// Whether its rcode is NOERROR.
    pub fn is_noerror(self) -> bool {
        matches!(
            self,
            ResponseKind::Answer
                | ResponseKind::Referral
                | ResponseKind::NoData
                | ResponseKind::Truncated
        )
    }
}

/// Whether a response without an answer delegates: not authoritative,
/// NS records in its authority section.
fn delegates(response: &Message) -> bool {
    !response.header.aa && response.authority.iter().any(|r| r.rtype == RecordType::NS)
}

/// The TTL of a TS's DNS answers when none is given (`dnslb ts --ttl`).
pub const DEFAULT_TTL: u32 = 300;

/// Whether `qtype` asks for a zone transfer (AXFR or IXFR). dnslb offers
/// none: a TS's zones are synthesized from its table or read from zone
/// files, and the LS relays one message per query, where a transfer is a
/// stream of them. Such a query is REFUSED, as NSD and BIND refuse a
/// transfer they do not provide.
///
/// ```
/// use dnslb::dns::{respond::is_zone_transfer, RecordType};
/// assert!(is_zone_transfer(RecordType::AXFR) && is_zone_transfer(RecordType::IXFR));
/// assert!(!is_zone_transfer(RecordType::SOA));
/// ```
pub fn is_zone_transfer(qtype: RecordType) -> bool {
    matches!(qtype, RecordType::AXFR | RecordType::IXFR)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::fixture::{a, soa};
    use crate::dns::{CLASS_IN, Name, RData, RecordType};

    fn query_bytes(
        name: &str,
        qtype: RecordType,
        edns: Option<(u16, u8, bool)>,
        rd: bool,
    ) -> Vec<u8> {
        let mut m = Message::default();
        m.header.id = 0xBEEF;
        m.header.rd = rd;
        m.questions.push(Question {
            name: Name::from_ascii(name).unwrap(),
            qtype,
            qclass: CLASS_IN,
        });
        m.edns = edns.map(|(payload, version, dnssec_ok)| Edns {
            payload,
            version,
            dnssec_ok,
            options: Vec::new(),
        });
        m.to_bytes(512)
    }

    fn accepted(bytes: &[u8], transport: Transport) -> Checked {
        match accept_query(bytes, transport) {
            Some(Accepted::Query(q)) => q,
            other => panic!("not a query: {other:?}"),
        }
    }

    fn many(owner: &str, n: u8) -> Vec<Record> {
        (0..n).map(|i| a(owner, 300, i)).collect()
    }

    #[test]
    fn id_rd_and_question_come_back_as_asked_with_ra_and_aa_clear() {
        for rd in [false, true] {
            let bytes = query_bytes("Mixed.Case.example", RecordType::A, None, rd);
            let q = accepted(&bytes, Transport::Udp);
            let outcome = Resolution::answer(many("mixed.case.example", 2));
            let out = answer(&q, &outcome);
            let m = Message::parse(&out).unwrap();
            assert_eq!(m.header.id, 0xBEEF);
            assert_eq!(m.header.rd, rd);
            assert!(m.header.qr && !m.header.ra && !m.header.aa);
            assert_eq!(&out[12..bytes.len()], &bytes[12..]);
            // Owner names are pointers to the question: the case asked.
            assert_eq!(m.answers, many("Mixed.Case.example", 2));
        }
    }

    #[test]
    fn each_outcome_has_its_rcode_and_negative_ones_carry_the_soa() {
        let q = accepted(
            &query_bytes("x.example.com", RecordType::A, None, true),
            Transport::Udp,
        );
        let cases = [
            (
                Resolution::NxDomain {
                    chain: Vec::new(),
                    soa: Some(soa(30, 10)),
                },
                Rcode::NXDOMAIN,
                1,
            ),
            (Resolution::nxdomain(), Rcode::NXDOMAIN, 0),
            (
                Resolution::NoData {
                    soa: Some(soa(30, 10)),
                },
                Rcode::NOERROR,
                1,
            ),
            (Resolution::Refused, Rcode::REFUSED, 0),
            (Resolution::ServFail, Rcode::SERVFAIL, 0),
        ];
        for (outcome, code, authority) in cases {
            let m = Message::parse(&answer(&q, &outcome)).unwrap();
            assert_eq!(m.rcode, code, "{outcome:?}");
            assert_eq!(m.authority.len(), authority, "{outcome:?}");
            assert!(m.answers.is_empty());
        }
    }

    #[test]
    fn each_response_is_counted_by_its_kind() {
        let q = accepted(
            &query_bytes("x.example.com", RecordType::A, None, true),
            Transport::Udp,
        );
        let ns = Record {
            name: Name::from_ascii("example.com").unwrap(),
            rtype: RecordType::NS,
            class: CLASS_IN,
            ttl: 300,
            data: RData::Name(Name::from_ascii("ns.example.com").unwrap()),
        };
        let referral = Sections {
            authority: vec![ns],
            ..Sections::default()
        };
        let cases = [
            (
                Resolution::answer(many("x.example.com", 1)),
                ResponseKind::Answer,
            ),
            (Resolution::Referral(referral), ResponseKind::Referral),
            // Not authoritative, an SOA in authority: NODATA, no referral.
            (
                Resolution::NoData {
                    soa: Some(soa(30, 10)),
                },
                ResponseKind::NoData,
            ),
            (Resolution::NoData { soa: None }, ResponseKind::NoData),
            (Resolution::nxdomain(), ResponseKind::NxDomain),
            (Resolution::Refused, ResponseKind::Refused),
            (Resolution::ServFail, ResponseKind::ServFail),
            // Too big for 512 bytes: TC, no answer.
            (
                Resolution::answer(many("x.example.com", 60)),
                ResponseKind::Truncated,
            ),
        ];
        for (outcome, kind) in cases {
            assert_eq!(ResponseKind::of(&answer(&q, &outcome)), kind, "{outcome:?}");
        }
        let Some(Accepted::Answered { bytes, .. }) = accept_query(&[0; 13], Transport::Udp) else {
            panic!("a header without its question is answered");
        };
        assert_eq!(ResponseKind::of(&bytes), ResponseKind::FormErr);
        // BADVERS: rcode 16, its high bits in the OPT record.
        let badvers = query_bytes("a.example", RecordType::A, Some((1232, 1, false)), true);
        let Some(Accepted::Answered { bytes, .. }) = accept_query(&badvers, Transport::Udp) else {
            panic!("EDNS version 1 is answered");
        };
        assert_eq!(Header::parse(&bytes).unwrap().rcode, 0);
        assert_eq!(ResponseKind::of(&bytes), ResponseKind::Other);
        // NODATA with an OPT: still NODATA.
        let edns = accepted(
            &query_bytes("x.example.com", RecordType::A, Some((1232, 0, false)), true),
            Transport::Udp,
        );
        let nodata = answer(&edns, &Resolution::NoData { soa: None });
        assert_eq!(ResponseKind::of(&nodata), ResponseKind::NoData);
        let labels: Vec<&str> = ResponseKind::ALL.iter().map(|k| k.label()).collect();
        assert_eq!(labels.len(), 10);
        for (i, kind) in ResponseKind::ALL.iter().enumerate() {
            assert_eq!(kind.index(), i);
            assert!(!labels[i + 1..].contains(&kind.label()), "{kind:?}");
        }
    }

    #[test]
    fn udp_answers_are_truncated_to_the_advertised_size_and_tcp_ones_never() {
        let big = Resolution::answer(many("big.example", 60));
        let plain = accepted(
            &query_bytes("big.example", RecordType::A, None, true),
            Transport::Udp,
        );
        let out = answer(&plain, &big);
        assert!(out.len() <= 512 && is_truncated(&out));
        assert!(Message::parse(&out).unwrap().answers.is_empty());
        let edns = query_bytes("big.example", RecordType::A, Some((1232, 0, true)), true);
        let roomy = accepted(&edns, Transport::Udp);
        assert_eq!(roomy.limit, 1232);
        let out = answer(&roomy, &big);
        let m = Message::parse(&out).unwrap();
        assert!(!m.header.tc);
        assert_eq!(m.answers.len(), 60);
        let opt = m.edns.unwrap();
        assert_eq!((opt.payload, opt.version, opt.dnssec_ok), (1232, 0, true));
        let tcp = accepted(
            &query_bytes("big.example", RecordType::A, None, true),
            Transport::Tcp,
        );
        let out = answer(&tcp, &big);
        assert!(!is_truncated(&out));
        assert!(Message::parse(&out).unwrap().edns.is_none());
    }

    #[test]
    fn a_client_size_above_the_servers_own_is_capped_at_1232() {
        for (advertised, limit) in [(65_535, 1232), (4096, 1232), (1232, 1232), (1000, 1000)] {
            let edns = query_bytes(
                "big.example",
                RecordType::A,
                Some((advertised, 0, false)),
                true,
            );
            assert_eq!(accepted(&edns, Transport::Udp).limit, limit, "{advertised}");
        }
        let edns = query_bytes("big.example", RecordType::A, Some((65_535, 0, false)), true);
        let out = answer(
            &accepted(&edns, Transport::Udp),
            &Resolution::answer(many("big.example", 100)),
        );
        assert!(out.len() <= 1232 && is_truncated(&out), "{}", out.len());
    }

    #[test]
    fn additional_records_go_first_then_a_positive_answers_authority_then_tc() {
        let q = accepted(
            &query_bytes("big.example", RecordType::A, None, true),
            Transport::Udp,
        );
        let ns = |i: u8| Record {
            name: Name::from_ascii("example").unwrap(),
            rtype: RecordType::NS,
            class: CLASS_IN,
            ttl: 60,
            data: RData::Name(Name::from_ascii(&format!("ns{i}.example")).unwrap()),
        };
        // 12 + 17 bytes of header and question, 16 bytes an A record.
        let sections = |answers: u8, servers: u8, glue: u8| {
            Resolution::Answer(Sections {
                answers: many("big.example", answers),
                authority: (0..servers).map(ns).collect(),
                additional: many("ns0.example", glue),
            })
        };
        let parse = |outcome: &Resolution| Message::parse(&answer(&q, outcome)).unwrap();
        // Everything fits.
        let m = parse(&sections(2, 2, 2));
        assert_eq!(
            (m.answers.len(), m.authority.len(), m.additional.len()),
            (2, 2, 2)
        );
        // The additional RRset does not fit: left out, no TC.
        let m = parse(&sections(20, 2, 20));
        assert!(!m.header.tc);
        assert_eq!(
            (m.answers.len(), m.authority.len(), m.additional.len()),
            (20, 2, 0)
        );
        // The authority RRset does not fit either: left out, no TC.
        let m = parse(&sections(29, 10, 5));
        assert!(!m.header.tc);
        assert_eq!(
            (m.answers.len(), m.authority.len(), m.additional.len()),
            (29, 0, 0)
        );
        // The answer does not fit: TC.
        let m = parse(&sections(40, 1, 1));
        assert!(m.header.tc);
        assert!(m.answers.is_empty());
        // A referral's NS records are its answer: TC when they do not fit.
        let Resolution::Answer(mut referral) = sections(0, 40, 0) else {
            unreachable!()
        };
        referral.authority = (0..40).map(ns).collect();
        let m = parse(&Resolution::Referral(referral));
        assert!(m.header.tc);
    }

    #[test]
    fn bad_queries_are_answered_or_dropped() {
        let good = query_bytes("a.example", RecordType::A, None, true);
        // A response: dropped.
        let mut response = good.clone();
        response[2] |= 0x80;
        assert_eq!(accept_query(&response, Transport::Udp), None);
        let rcode_of = |bytes: &[u8]| match accept_query(bytes, Transport::Udp) {
            Some(Accepted::Answered { bytes, .. }) => Message::parse(&bytes).unwrap().rcode,
            other => panic!("{other:?}"),
        };
        // Opcode 2 (STATUS): NOTIMP.
        let mut status = good.clone();
        status[2] |= 2 << 3;
        assert_eq!(rcode_of(&status), Rcode::NOTIMP);
        // Two questions: FORMERR.
        let mut two = good.clone();
        two[5] = 2;
        two.extend_from_slice(&good[12..]);
        assert_eq!(rcode_of(&two), Rcode::FORMERR);
        // EDNS version 1: BADVERS, the question echoed.
        let badvers = query_bytes("a.example", RecordType::A, Some((1232, 1, false)), true);
        assert_eq!(rcode_of(&badvers), Rcode::BADVERS);
        let Some(Accepted::Answered { bytes, .. }) = accept_query(&badvers, Transport::Udp) else {
            panic!()
        };
        let m = Message::parse(&bytes).unwrap();
        assert_eq!(m.questions, Message::parse(&badvers).unwrap().questions);
    }
}
