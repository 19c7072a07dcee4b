//! Differential check of dnslb's DNS message parser against hickory-proto's,
//! shared by `tests/dns_differential.rs` and the `dns` fuzz target.
//!
//! Both parse the same bytes. They must agree on accept or reject, and on
//! what an accepted message holds (ID, flags, rcode, questions, record
//! counts, names, A addresses, TTLs, EDNS fields), except where the two
//! legitimately differ:
//!
//! - UPDATE messages (opcode 5): hickory accepts records with empty data
//!   there (RFC 2136 prerequisites); dnslb parses every opcode alike, and
//!   its TS answers UPDATE with NOTIMP before parsing.
//! - Records of the types dnslb keeps as opaque bytes (everything but A,
//!   NS, CNAME, SOA, PTR, MX and OPT): hickory checks their data (an AAAA
//!   of 16 bytes, TXT strings, no empty data, SIG and TSIG only at the end
//!   of the additional section); dnslb accepts any bytes.
//! - EDNS options: hickory decodes the contents of the options it knows
//!   (client subnet, cookies, ...); dnslb checks only that the options'
//!   (code, length) framing fills the OPT's data.
//! - An OPT whose data ends inside an option (a code without its length, or
//!   a length beyond the data): hickory ignores the partial option, dnslb
//!   rejects the message, as RFC 6891 §6.1.2 lays options out whole.
#![allow(dead_code)]

use dnslb::dns::{self, FormatError, RData};
use hickory_proto::op::Message as HMessage;
use hickory_proto::rr::RData as HRData;

/// What comparing the two parsers on one input found.
#[derive(Debug)]
pub enum Verdict {
    /// Both accepted (with the same content).
    BothAccept,
    /// Both rejected.
    BothReject,
    /// They differ in one of the documented ways.
    Excused(&'static str),
    /// They differ in an undocumented way.
    Disagree(String),
}

/// Parses `bytes` with both parsers and compares.
pub fn compare(bytes: &[u8]) -> Verdict {
    let ours = dns::Message::parse(bytes);
    let theirs = HMessage::from_vec(bytes);
    if dns::Header::parse(bytes).is_some_and(|h| h.opcode == 5) {
        return Verdict::Excused("UPDATE opcode");
    }
    match (ours, theirs) {
        (Err(_), Err(_)) => Verdict::BothReject,
        (Err(FormatError::RData { rtype: 41, .. }), Ok(h)) if h.edns.is_some() => {
            Verdict::Excused("a partial EDNS option")
        }
        (Err(e), Ok(_)) => Verdict::Disagree(format!("dnslb rejects ({e}), hickory accepts")),
        (Ok(m), Err(e)) => {
            if has_opaque_records(&m) {
                Verdict::Excused("records of a type dnslb keeps opaque")
            } else if m.edns.as_ref().is_some_and(|e| !e.options.is_empty()) {
                Verdict::Excused("EDNS option contents")
            } else {
                Verdict::Disagree(format!("dnslb accepts, hickory rejects ({e})"))
            }
        }
        (Ok(m), Ok(h)) => match same_content(&m, &h) {
            Ok(()) => Verdict::BothAccept,
            Err(difference) => Verdict::Disagree(difference),
        },
    }
}

fn has_opaque_records(m: &dns::Message) -> bool {
    [&m.answers, &m.authority, &m.additional]
        .iter()
        .flat_map(|section| section.iter())
        .any(|r| matches!(r.data, RData::Other(_)))
}

fn same_labels(ours: &dns::Name, theirs: &hickory_proto::rr::Name) -> bool {
    ours.labels().eq(theirs.iter())
}

fn same_content(m: &dns::Message, h: &HMessage) -> Result<(), String> {
    let meta = &h.metadata;
    let check = |what: &str, same: bool| {
        if same {
            Ok(())
        } else {
            Err(format!("{what} differs"))
        }
    };
    check("id", m.header.id == meta.id)?;
    check("opcode", m.header.opcode == u8::from(meta.op_code))?;
    check(
        "flags",
        (
            m.header.qr,
            m.header.aa,
            m.header.tc,
            m.header.rd,
            m.header.ra,
            m.header.ad,
            m.header.cd,
        ) == (
            meta.message_type == hickory_proto::op::MessageType::Response,
            meta.authoritative,
            meta.truncation,
            meta.recursion_desired,
            meta.recursion_available,
            meta.authentic_data,
            meta.checking_disabled,
        ),
    )?;
    check("rcode", m.rcode.0 == u16::from(meta.response_code))?;
    check("question count", m.questions.len() == h.queries.len())?;
    for (q, hq) in m.questions.iter().zip(&h.queries) {
        check("question name", same_labels(&q.name, hq.name()))?;
        check("question type", q.qtype.0 == u16::from(hq.query_type()))?;
    }
    let sections = [
        (&m.answers, &h.answers),
        (&m.authority, &h.authorities),
        (&m.additional, &h.additionals),
    ];
    for (ours, theirs) in sections {
        check("record count", ours.len() == theirs.len())?;
        for (r, hr) in ours.iter().zip(theirs) {
            check("owner name", same_labels(&r.name, &hr.name))?;
            check("type", r.rtype.0 == u16::from(hr.record_type()))?;
            // dnslb reads a TTL with the top bit set as 0 (RFC 2181 §8).
            check("ttl", r.ttl == dnslb::dns::message::received_ttl(hr.ttl))?;
            match (&r.data, &hr.data) {
                (RData::A(ip), HRData::A(a)) => check("address", *ip == a.0)?,
                (RData::Name(n), HRData::CNAME(c)) => check("cname", same_labels(n, &c.0))?,
                (RData::Name(n), HRData::NS(c)) => check("ns", same_labels(n, &c.0))?,
                (RData::Name(n), HRData::PTR(c)) => check("ptr", same_labels(n, &c.0))?,
                (
                    RData::Mx {
                        preference,
                        exchange,
                    },
                    HRData::MX(mx),
                ) => check(
                    "mx",
                    *preference == mx.preference && same_labels(exchange, &mx.exchange),
                )?,
                (
                    RData::Soa {
                        mname,
                        serial,
                        minimum,
                        ..
                    },
                    HRData::SOA(soa),
                ) => check(
                    "soa",
                    same_labels(mname, &soa.mname)
                        && *serial == soa.serial
                        && *minimum == soa.minimum,
                )?,
                _ => {}
            }
        }
    }
    match (&m.edns, &h.edns) {
        (None, None) => Ok(()),
        (Some(e), Some(he)) => check(
            "edns",
            e.version == he.version()
                && e.dnssec_ok == he.flags().dnssec_ok
                && e.payload.max(512) == he.max_payload(),
        ),
        _ => Err("edns presence differs".into()),
    }
}
