//! An iterative resolver (RFC 1034 §5.3.3), as the lecture draws the
//! local DNS server: asked a name it does not know, it asks a root server,
//! which refers it to a TLD server ("I don't know this name, but ask this
//! server"), which refers it to the name's authoritative server, which
//! answers. Everything learnt is cached with its TTL (NS sets and glue
//! too), so the next name in a known zone skips the root and the TLD.
//!
//! [`Resolver`] is a pure state machine for one question: [`Resolver::next`]
//! says which server to ask what (or gives the final [`Resolution`]),
//! [`Resolver::reply`] takes that server's response bytes (or its
//! silence). The clock and the shared [`Cache`] are passed in; `iterate.rs`
//! in the LS drives it over UDP and TCP.
//!
//! - **Referrals** are followed with their glue; an NS name that comes
//!   without glue is resolved first (a sub-resolution, from the cache or
//!   the root), names already being resolved are skipped (no loops).
//! - **CNAMEs** are followed across zones, at most [`MAX_CNAMES`].
//! - **Bounds**: at most [`MAX_REFERRALS`] referrals and [`MAX_QUERIES`]
//!   upstream queries per resolution; a referral must lead strictly deeper
//!   (a server that refers sideways or up is lame). SERVFAIL past a bound.
//! - **Bailiwick** (the defence against cache poisoning): only records at
//!   or under the zone of the server that sent them are kept, so a server
//!   for evil.com cannot teach the resolver about google.com; a response
//!   must come from the server asked, carry the query's ID and echo its
//!   question.
//! - **Servers**: a zone's servers are tried in order of measured latency;
//!   one that does not answer is left for the next and backed off,
//!   exponentially (`cache.rs`).

pub mod cache;

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

pub use cache::Cache;
use cache::Negative;

use crate::dns::respond::Sections;
use crate::dns::{
    CLASS_IN, Edns, Header, Message, Name, Question, RData, Rcode, Record, RecordType,
};
use crate::dns::{EDNS_PAYLOAD, Resolution};
use crate::random::SplitMix64;

/// Most CNAMEs followed in one resolution.
pub const MAX_CNAMES: u32 = 8;
/// Most referrals followed in one resolution.
pub const MAX_REFERRALS: u32 = 16;
/// Most upstream queries sent for one resolution, sub-resolutions included.
pub const MAX_QUERIES: u32 = 50;
/// Most NS names resolved inside one another.
const MAX_DEPTH: usize = 6;

/// Where resolution starts, and the port servers named by glue listen on.
#[derive(Clone, Debug)]
pub struct Config {
    /// The root servers' addresses.
    pub roots: Vec<SocketAddr>,
    /// The port every server learnt from glue or an A record is asked on.
    pub server_port: u16,
}

/// One upstream query the resolver wants sent.
#[derive(Clone, Debug)]
pub struct Query {
    /// The server to ask.
    pub server: SocketAddr,
    /// The query's ID.
    pub id: u16,
    /// The question asked.
    pub question: Question,
    /// The zone the server is asked as a server of (its bailiwick).
    pub zone: Name,
    /// The query message, to send over UDP (or TCP, length-prefixed).
    pub bytes: Vec<u8>,
}

/// What to do next for a resolution.
#[derive(Clone, Debug)]
pub enum Step {
    /// Send this query, then pass what came back to [`Resolver::reply`].
    Ask(Query),
    /// The resolution is over.
    Done(Resolution),
}

/// One name being resolved: the question's, or a name server's.
#[derive(Debug)]
struct Frame {
    qname: Name,
    qtype: RecordType,
    /// The CNAMEs followed so far, from the question's name.
    chain: Vec<Record>,
    /// The zone cut whose servers are being asked, and those tried.
    cut: Option<Name>,
    tried: HashSet<SocketAddr>,
    /// NS names of the cut that could not be resolved.
    dead: Vec<Name>,
    /// The answer, once a server gave a negative one.
    settled: Option<Resolution>,
}

impl Frame {
    fn new(qname: Name, qtype: RecordType) -> Frame {
        Frame {
            qname,
            qtype,
            chain: Vec::new(),
            cut: None,
            tried: HashSet::new(),
            dead: Vec::new(),
            settled: None,
        }
    }
}

/// One resolution of one question.
pub struct Resolver {
    config: Config,
    frames: Vec<Frame>,
    queries: u32,
    referrals: u32,
    cnames: u32,
    pending: Option<(Query, Instant)>,
    rng: SplitMix64,
    notes: Vec<String>,
}

/// Whether `name` is `zone` or under it, ignoring case.
pub fn is_under(name: &Name, zone: &Name) -> bool {
    let n: Vec<&[u8]> = name.labels().collect();
    let z: Vec<&[u8]> = zone.labels().collect();
    n.len() >= z.len()
        && n[n.len() - z.len()..]
            .iter()
            .zip(&z)
            .all(|(a, b)| a.eq_ignore_ascii_case(b))
}

/// `name` and its ancestors, most specific first, ending with the root.
fn ancestors(name: &Name) -> Vec<Name> {
    let wire = name.wire();
    let mut out = Vec::new();
    let mut at = 0;
    while let Ok((n, _)) = Name::parse(&wire[at..], 0) {
        out.push(n);
        if wire[at] == 0 {
            break;
        }
        at += usize::from(wire[at]) + 1;
    }
    out
}

fn shown(name: &Name) -> String {
    name.to_string()
}

impl Resolver {
    /// A resolution of `question`, its query IDs drawn from `seed`.
    pub fn new(config: Config, question: &Question, seed: u64) -> Resolver {
        Resolver {
            config,
            frames: vec![Frame::new(question.name.clone(), question.qtype)],
            queries: 0,
            referrals: 0,
            cnames: 0,
            pending: None,
            rng: SplitMix64::new(seed),
            notes: Vec::new(),
        }
    }

    /// The steps taken since the last call, as the lecture draws them
    /// (who was asked what, and what it said), for `-v`.
    pub fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    /// Upstream queries sent so far.
    pub fn queries(&self) -> u32 {
        self.queries
    }

    fn note(&mut self, text: String) {
        self.notes.push(text);
    }

    /// The next step at `now`: a query to send, or the resolution's end.
    pub fn next(&mut self, cache: &mut Cache, now: Instant) -> Step {
        loop {
            if let Some(done) = self.advance(cache, now) {
                match done {
                    Ok(query) => return Step::Ask(query),
                    Err(result) => {
                        if let Some(step) = self.finish_frame(cache, now, result) {
                            return step;
                        }
                    }
                }
            }
        }
    }

    /// Ends the top frame with `result`; the whole resolution's end when
    /// it was the question's own.
    fn finish_frame(&mut self, cache: &Cache, now: Instant, result: Resolution) -> Option<Step> {
        let frame = self.frames.pop().expect("a frame is being resolved");
        if self.frames.is_empty() {
            let mut chain = frame.chain;
            let done = match result {
                Resolution::Answer(mut sections) => {
                    chain.append(&mut sections.answers);
                    sections.answers = chain;
                    Resolution::Answer(sections)
                }
                Resolution::NxDomain {
                    chain: mut more,
                    soa,
                } => {
                    chain.append(&mut more);
                    Resolution::NxDomain { chain, soa }
                }
                Resolution::NoData { soa } if !chain.is_empty() => Resolution::Answer(Sections {
                    answers: chain,
                    authority: soa.into_iter().collect(),
                    additional: Vec::new(),
                }),
                other => other,
            };
            return Some(Step::Done(done));
        }
        // A name server's address: usable only if it is now in the cache.
        let parent = self.frames.last_mut().expect("a parent frame");
        if cache.get(now, &frame.qname, RecordType::A).is_none() {
            parent.dead.push(frame.qname.clone());
        }
        None
    }

    /// One move: `Some(Ok(query))` to send, `Some(Err(result))` when the
    /// top frame is over, `None` to look again.
    fn advance(&mut self, cache: &mut Cache, now: Instant) -> Option<Result<Query, Resolution>> {
        let depth = self.frames.len();
        let on_stack: Vec<Name> = self.frames.iter().map(|f| f.qname.clone()).collect();
        let frame = self.frames.last_mut().expect("a frame is being resolved");
        if let Some(settled) = frame.settled.take() {
            return Some(Err(settled));
        }
        let (qname, qtype) = (frame.qname.clone(), frame.qtype);
        if let Some(negative) = cache.get_negative(now, &qname, qtype) {
            return Some(Err(if negative.nx {
                Resolution::NxDomain {
                    chain: Vec::new(),
                    soa: negative.soa,
                }
            } else {
                Resolution::NoData { soa: negative.soa }
            }));
        }
        if let Some(records) = cache.get(now, &qname, qtype) {
            return Some(Err(Resolution::answer(records)));
        }
        if qtype != RecordType::CNAME
            && let Some(cname) = cache.get(now, &qname, RecordType::CNAME)
        {
            self.cnames += 1;
            if self.cnames > MAX_CNAMES {
                self.notes
                    .push(format!("more than {MAX_CNAMES} CNAMEs: SERVFAIL"));
                return Some(Err(Resolution::ServFail));
            }
            let RData::Name(target) = cname[0].data.clone() else {
                return Some(Err(Resolution::ServFail));
            };
            let frame = self.frames.last_mut().expect("a frame");
            frame.chain.extend(cname);
            frame.qname = target;
            frame.cut = None;
            return None;
        }
        // The closest zone cut the cache knows servers for.
        let mut cut = Name::root();
        let mut ns_names = None;
        for zone in ancestors(&qname) {
            if let Some(ns) = cache.get(now, &zone, RecordType::NS) {
                cut = zone;
                ns_names = Some(
                    ns.into_iter()
                        .filter_map(|r| match r.data {
                            RData::Name(n) => Some(n),
                            _ => None,
                        })
                        .collect::<Vec<_>>(),
                );
                break;
            }
        }
        let frame = self.frames.last_mut().expect("a frame");
        if frame.cut.as_ref().is_none_or(|c| !c.eq_ignore_case(&cut)) {
            frame.cut = Some(cut.clone());
            frame.tried.clear();
            frame.dead.clear();
        }
        let port = self.config.server_port;
        let mut servers: Vec<SocketAddr> = match &ns_names {
            None => self.config.roots.clone(),
            Some(names) => names
                .iter()
                .filter_map(|n| cache.get(now, n, RecordType::A))
                .flatten()
                .filter_map(|r| match r.data {
                    RData::A(ip) => Some(SocketAddr::new(IpAddr::V4(ip), port)),
                    _ => None,
                })
                .collect(),
        };
        let mut seen = HashSet::new();
        servers.retain(|s| !frame.tried.contains(s) && seen.insert(*s));
        servers.sort_by_key(|s| cache.rank(now, *s));
        if let Some(&server) = servers.first() {
            if self.queries >= MAX_QUERIES {
                self.notes
                    .push(format!("{MAX_QUERIES} queries sent: SERVFAIL"));
                return Some(Err(Resolution::ServFail));
            }
            self.queries += 1;
            let question = Question {
                name: qname.clone(),
                qtype,
                qclass: CLASS_IN,
            };
            let id = self.rng.next_u64() as u16;
            let message = Message {
                header: Header {
                    id,
                    ..Header::default()
                },
                questions: vec![question.clone()],
                edns: Some(Edns {
                    payload: EDNS_PAYLOAD,
                    version: 0,
                    dnssec_ok: false,
                    options: Vec::new(),
                }),
                ..Message::default()
            };
            let zone_shown = shown(&cut);
            self.notes.push(format!(
                "ask {server} (a server for {zone_shown}): {} {qtype}?",
                shown(&qname)
            ));
            let query = Query {
                server,
                id,
                question,
                zone: cut,
                bytes: message.to_bytes(512),
            };
            self.pending = Some((query.clone(), now));
            return Some(Ok(query));
        }
        // No address left: resolve an NS name that came without glue.
        if depth < MAX_DEPTH
            && let Some(names) = ns_names
        {
            let next = names.into_iter().find(|n| {
                cache.get(now, n, RecordType::A).is_none()
                    && !frame.dead.iter().any(|d| d.eq_ignore_case(n))
                    && !on_stack.iter().any(|s| s.eq_ignore_case(n))
            });
            if let Some(ns) = next {
                self.notes
                    .push(format!("no glue for {}: resolve it first", shown(&ns)));
                self.frames.push(Frame::new(ns, RecordType::A));
                return None;
            }
        }
        self.notes.push(format!(
            "no server of {} left to ask for {}: SERVFAIL",
            shown(&cut),
            shown(&qname)
        ));
        Some(Err(Resolution::ServFail))
    }

    /// Whether `bytes` from `from` answer the query in flight: from the
    /// server asked, a response with its ID and its question. Anything
    /// else is ignored (a spoofed or late datagram).
    pub fn accepts(&self, from: SocketAddr, bytes: &[u8]) -> bool {
        let Some((query, _)) = &self.pending else {
            return false;
        };
        if from != query.server {
            return false;
        }
        match Message::parse(bytes) {
            Ok(m) => {
                m.header.qr
                    && m.header.id == query.id
                    && m.questions.len() == 1
                    && m.questions[0].same_as(&query.question)
            }
            Err(_) => false,
        }
    }

    /// What the server asked sent back at `now` (`None`: nothing in time).
    pub fn reply(
        &mut self,
        cache: &mut Cache,
        now: Instant,
        bytes: Option<&[u8]>,
        timeout: Duration,
    ) {
        let Some((query, sent)) = self.pending.take() else {
            return;
        };
        let server = query.server;
        let frame = self.frames.last_mut().expect("a frame");
        frame.tried.insert(server);
        let Some(bytes) = bytes else {
            cache.timed_out(now, server, timeout);
            self.note(format!("{server}: no answer in time, backed off"));
            return;
        };
        let message = match Message::parse(bytes) {
            Ok(m)
                if m.header.qr
                    && m.header.id == query.id
                    && m.questions.len() == 1
                    && m.questions[0].same_as(&query.question) =>
            {
                m
            }
            _ => {
                self.note(format!(
                    "{server}: a response that does not match the query"
                ));
                return;
            }
        };
        cache.answered(server, now.saturating_duration_since(sent));
        if message.header.tc {
            self.note(format!("{server}: truncated"));
            return;
        }
        if message.rcode != Rcode::NOERROR && message.rcode != Rcode::NXDOMAIN {
            self.note(format!("{server}: denied ({})", message.rcode));
            return;
        }
        let zone = &query.zone;
        let qname = query.question.name.clone();
        let qtype = query.question.qtype;
        let in_zone = |r: &&Record| is_under(&r.name, zone) && r.class == CLASS_IN;
        // The answer section: every in-bailiwick RRset is cached, and the
        // chain from the question's name is followed through it.
        let mut dropped = 0;
        for set in rrsets(&message.answers) {
            if set.iter().all(|r| in_zone(&r)) {
                cache.put(now, set);
            } else {
                dropped += set.len();
            }
        }
        let mut chain = Vec::new();
        let mut name = qname.clone();
        let mut found = false;
        for _ in 0..=MAX_CNAMES {
            let here: Vec<&Record> = message
                .answers
                .iter()
                .filter(|r| r.name.eq_ignore_case(&name) && in_zone(r))
                .collect();
            if here.iter().any(|r| r.rtype == qtype) {
                found = true;
                break;
            }
            if qtype == RecordType::ANY && !here.is_empty() {
                // Every type the name has: not one RRset the cache can
                // hand back, so the frame is settled with them.
                let mut answers = std::mem::take(&mut chain);
                answers.extend(here.into_iter().cloned());
                self.frames.last_mut().expect("a frame").settled =
                    Some(Resolution::answer(answers));
                found = true;
                break;
            }
            match here.iter().find(|r| r.rtype == RecordType::CNAME) {
                Some(r) => {
                    chain.push((*r).clone());
                    let RData::Name(target) = &r.data else { break };
                    name = target.clone();
                }
                None => break,
            }
        }
        let soa = message
            .authority
            .iter()
            .filter(in_zone)
            .find(|r| r.rtype == RecordType::SOA && is_under(&name, &r.name))
            .cloned();
        if dropped > 0 {
            self.note(format!(
                "{server}: {dropped} record(s) outside {} refused (not its bailiwick)",
                shown(zone)
            ));
        }
        let frame = self.frames.last_mut().expect("a frame");
        if message.rcode == Rcode::NXDOMAIN {
            self.notes
                .push(format!("{server}: NXDOMAIN {}", shown(&name)));
            cache.put_negative(
                now,
                &name,
                qtype,
                Negative {
                    nx: true,
                    soa: soa.clone(),
                },
            );
            // The chain's CNAMEs are in the cache; the frame's lookup
            // would follow them, so it is settled here with them.
            frame.settled = Some(Resolution::NxDomain { chain, soa });
            return;
        }
        if found {
            self.notes
                .push(format!("{server}: answered {} {qtype}", shown(&name)));
            return;
        }
        if !chain.is_empty() {
            self.notes
                .push(format!("{server}: CNAME, to {}", shown(&name)));
            return;
        }
        // No answer: a referral, or NODATA.
        let ns: Vec<Record> = message
            .authority
            .iter()
            .filter(|r| r.rtype == RecordType::NS && r.class == CLASS_IN)
            .cloned()
            .collect();
        if let Some(first) = ns.first() {
            let child = first.name.clone();
            let deeper = is_under(&child, zone)
                && !child.eq_ignore_case(zone)
                && is_under(&qname, &child)
                && ns.iter().all(|r| r.name.eq_ignore_case(&child));
            if deeper && soa.is_none() {
                self.referrals += 1;
                if self.referrals > MAX_REFERRALS {
                    self.notes
                        .push(format!("more than {MAX_REFERRALS} referrals: SERVFAIL"));
                    frame.settled = Some(Resolution::ServFail);
                    return;
                }
                let targets: Vec<Name> = ns
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::Name(n) => Some(n.clone()),
                        _ => None,
                    })
                    .collect();
                let mut glue = 0;
                for set in rrsets(&message.additional) {
                    let owner = &set[0].name;
                    if set[0].rtype == RecordType::A
                        && is_under(owner, zone)
                        && targets.iter().any(|t| t.eq_ignore_case(owner))
                    {
                        glue += 1;
                        cache.put(now, set);
                    }
                }
                let names: Vec<String> = targets.iter().map(shown).collect();
                cache.put(now, ns);
                self.notes.push(format!(
                    "{server}: referral to {} ({}; glue for {glue})",
                    shown(&child),
                    names.join(" ")
                ));
                return;
            }
            if soa.is_none() {
                self.notes.push(format!(
                    "{server}: referral to {} is not below {}: lame",
                    shown(&child),
                    shown(zone)
                ));
                return;
            }
        }
        if message.header.aa || soa.is_some() {
            self.notes.push(format!(
                "{server}: no {qtype} for {} (NODATA)",
                shown(&name)
            ));
            // ANY's negative entry would read as NXDOMAIN's: not kept.
            if qtype != RecordType::ANY {
                cache.put_negative(
                    now,
                    &name,
                    qtype,
                    Negative {
                        nx: false,
                        soa: soa.clone(),
                    },
                );
            }
            frame.settled = Some(Resolution::NoData { soa });
            return;
        }
        self.notes
            .push(format!("{server}: neither answer nor referral: lame"));
    }
}

/// The records grouped into RRsets: consecutive or not, by name
/// (ignoring case) and type, in order of first appearance.
fn rrsets(records: &[Record]) -> Vec<Vec<Record>> {
    let mut sets: Vec<Vec<Record>> = Vec::new();
    for r in records {
        match sets
            .iter_mut()
            .find(|s| s[0].rtype == r.rtype && s[0].name.eq_ignore_case(&r.name))
        {
            Some(set) => set.push(r.clone()),
            None => sets.push(vec![r.clone()]),
        }
    }
    sets
}

#[cfg(test)]
mod tests;
