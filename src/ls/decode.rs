//! What a TS's reply means to a session, in either protocol: a course TS's
//! answer line or `NOT FOUND`, a DNS TS's response, each turned into what
//! the in-flight rules take ([`Said`]); and what the cache keeps of a
//! reply. Plain functions: no session, no socket.

use super::course_dns;
use super::inflight::{Outcome, Said};
use crate::dns::upstream::Relay;
use crate::dns::{Question, Resolution};
use crate::wire::{self, Reply, ReplyError};

/// What a front end relays to its client for one query: what its TSes
/// said, or a reply it made itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Relayed {
    /// A course TS's answer line, as it came (without line ending).
    Line(String),
    /// A DNS TS's answer (records, a referral, "the name exists without
    /// that type"), its NXDOMAIN for a miss, or the cache's answer.
    Dns(Resolution),
    /// A DNS TS's answer whose bytes go to a DNS client as they are, with
    /// the client's ID, flags and question name.
    Wire(Relay),
    /// A reply the front end made itself (an error line, a FORMERR
    /// response, an answer from the cache), relayed in its turn.
    Made(Vec<u8>),
}

/// How a cache hit counts: an answer (or a referral), or a miss (a cached
/// NXDOMAIN or NODATA).
pub fn cached_outcome(hit: &Resolution) -> Outcome {
    match hit {
        Resolution::Answer(_) | Resolution::Referral(_) => Outcome::Cached,
        _ => Outcome::CachedMiss,
    }
}

/// What the cache keeps of a course TS's answer line to `question`: its A
/// record, owned by the name as the TS spelt it, so that a course client's
/// hit gets the line an uncached query would.
pub fn line_kept(question: &Question, line: &str) -> Option<Resolution> {
    let reply = wire::parse_reply(line.as_bytes()).ok()?;
    let mut outcome = course_dns::line_outcome(question, &reply, course_dns::LINE_ANSWER_TTL)?;
    if let Resolution::Answer(sections) = &mut outcome {
        let spelt = crate::dns::Name::from_ascii(reply.name()).ok()?;
        for record in &mut sections.answers {
            record.name = spelt.clone();
        }
    }
    Some(outcome)
}

/// What a DNS TS's response (matched to its query) says.
pub fn dns_said(outcome: Resolution) -> Said<Relayed> {
    match outcome {
        outcome @ Resolution::NxDomain { .. } => Said::Negative(Relayed::Dns(outcome)),
        Resolution::Refused => Said::Refused,
        Resolution::ServFail => Said::Failed,
        outcome => Said::Answer(Relayed::Dns(outcome)),
    }
}

/// What a course TS's reply line `bytes` says, and the key of the name it
/// is for.
///
/// # Errors
/// When the line is no reply.
pub fn line_said(bytes: &[u8]) -> Result<(String, Said<Relayed>), ReplyError> {
    let reply = wire::parse_reply(bytes)?;
    let key = wire::name_key(reply.name());
    let said = match reply {
        // The bytes parsed as an answer, so they are UTF-8.
        Reply::Found(_) => Said::Answer(Relayed::Line(
            std::str::from_utf8(bytes)
                .map_err(|_| ReplyError::NotUtf8)?
                .trim()
                .to_string(),
        )),
        Reply::NotFound(_) => Said::NotFound,
    };
    Ok((key, said))
}
