//! The LS's DNS front end (RFC 1035): queries over UDP and TCP go through
//! the same sessions, links and matching as course queries (`worker.rs`).
//! This file holds what both transports share (what a query message
//! becomes, what a session's answer becomes) and TCP.
//!
//! - **TCP** (RFC 7766): a connection is a client, exactly like a course
//!   client: a worker, a reader that submits each length-prefixed query to
//!   the session, a link per TS. Queries may be pipelined; each answer
//!   goes back as soon as its query is settled (RFC 7766 §6.2.1.1), so a
//!   query waiting for its deadline holds up no other.
//! - **UDP**: a fixed pool of sessions (`dns_udp.rs`), each answering
//!   its queries as they settle.
//!
//! What a session's TSes said becomes the response here: an answer or a
//! referral as the TS sent it (a course TS's line becomes one A record),
//! NXDOMAIN when every TS said the name does not exist (with the first DNS
//! TS's SOA and CNAME chain), REFUSED when every TS refused (or at once, for
//! a class other than IN), SERVFAIL at the deadline (`--dns-timeout`) or
//! when no TS could be asked.
//!
//! Only sources in `--allow` are answered ([`admits`]); UDP answers pass
//! the rate limit (`--rrl`, `dns::rrl`) on their way out.

use std::fmt::Write as _;
use std::io::{self, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crossbeam_channel::Sender;

use super::course_dns;
use super::decode::{Relayed, cached_outcome};
use super::event::Event;
use super::inflight::{Outcome, Release, Settled};
use super::session::{Locked, Request};
use super::setup::{Shared, TsProtocol};
use super::stats::{Frontend, Reply};
use super::worker::{self, Front, Replies, Unserved};
use crate::dns::respond::{self, Accepted, ResponseKind, Transport};
use crate::dns::{self, Resolution};
use crate::framing::{Timed, read_length_prefixed_timed, write_length_prefixed};
use crate::log;
use crate::server::Activity;
use crate::shutdown::Shutdown;
use crate::trace::{self, Query, Step};
use crate::wire;

/// How one DNS query is to be answered: its checked form, and over UDP
/// where it came from.
pub(super) struct Ask {
    query: respond::Checked,
    pub(super) peer: Option<SocketAddr>,
}

/// What the front end does with one query message: answer it at once (a
/// malformed query, a cache hit), or hand it to a session.
pub(super) enum Take {
    Answer(Vec<u8>, Outcome, Option<Query>),
    Ask(Box<Request<Ask>>),
    Drop,
}

/// Checks one query message and says what to do with it; `client`: who
/// sent it, for the trace (`--trace`).
pub(super) fn take(
    bytes: &[u8],
    transport: Transport,
    peer: Option<SocketAddr>,
    shared: &Shared,
    client: Option<SocketAddr>,
) -> Take {
    let frontend = match transport {
        Transport::Udp => trace::Frontend::DnsUdp,
        Transport::Tcp => trace::Frontend::DnsTcp,
    };
    let arrive = |name: &str| {
        shared
            .trace
            .as_ref()
            .map(|t| t.arrive(name, frontend, client))
    };
    let query = match respond::accept_query(bytes, transport) {
        None => return Take::Drop,
        Some(Accepted::Answered { bytes, problem }) => {
            if let Some(problem) = problem {
                log::info(format_args!("ls dns: {problem}"));
            }
            return Take::Answer(bytes, Outcome::Invalid, arrive(""));
        }
        Some(Accepted::Query(query)) => query,
    };
    let trace = shared
        .trace
        .as_ref()
        .and_then(|_| arrive(&asked_name(&query)));
    if query.question.qclass != dns::CLASS_IN || respond::is_zone_transfer(query.question.qtype) {
        // The TSes hold only the Internet class (CH `version.bind` and the
        // like), and a zone transfer is a stream of messages where the LS
        // relays one: refused at once, whatever the TSes speak.
        return Take::Answer(
            respond::answer(&query, &Resolution::Refused),
            Outcome::Refused,
            trace,
        );
    }
    if let Some(cache) = &shared.cache {
        let hit = cache.get(&query.question, std::time::Instant::now());
        let said = if hit.is_some() { "hit" } else { "miss" };
        trace::step(&shared.trace, &trace, Step::Cache(said));
        if let Some(hit) = hit {
            let outcome = cached_outcome(&hit);
            return Take::Answer(respond::answer(&query, &hit), outcome, trace);
        }
    }
    let name = asked_name(&query);
    let key = match query.question.name.hostname_key() {
        Some(key) => key,
        // Not a hostname: no course TS can hold it.
        None if shared.options.ts_protocol == TsProtocol::Line => {
            return Take::Answer(
                respond::answer(&query, &Resolution::Refused),
                Outcome::Refused,
                trace,
            );
        }
        None => name.to_ascii_lowercase(),
    };
    Take::Ask(Box::new(Request {
        name,
        key,
        question: Some(query.question.clone()),
        tag: Ask { query, peer },
        trace,
    }))
}

/// The name `query` asks, as its client spelt it, without the final dot.
fn asked_name(query: &respond::Checked) -> String {
    // Spelt out once, in a string of the right size, without its final dot.
    let mut name = String::with_capacity(query.question.name.wire().len());
    let _ = write!(name, "{}", query.question.name);
    name.pop();
    name
}

/// The response to a settled query, and the outcome to count it under.
pub(super) fn response(settled: Settled<Relayed, Ask>) -> (Vec<u8>, Outcome) {
    let query = &settled.tag.query;
    let outcome = match settled.answer {
        Some(Relayed::Made(bytes)) => return (bytes, settled.outcome),
        Some(Relayed::Dns(outcome)) => outcome,
        Some(Relayed::Wire(relay)) => match relay.for_client(&query.response, query.limit) {
            Ok(bytes) => return (bytes, settled.outcome),
            Err(relay) => relay.outcome(),
        },
        Some(Relayed::Line(line)) => wire::parse_reply(line.as_bytes())
            .ok()
            .and_then(|reply| {
                course_dns::line_outcome(&query.question, &reply, course_dns::LINE_ANSWER_TTL)
            })
            .unwrap_or(Resolution::ServFail),
        None => match settled.outcome {
            Outcome::NotFound => Resolution::nxdomain(),
            Outcome::Refused => Resolution::Refused,
            _ => Resolution::ServFail,
        },
    };
    (respond::answer(query, &outcome), settled.outcome)
}

/// What a response says, as the counters file it.
pub(super) fn said(bytes: &[u8]) -> Reply {
    Reply::Dns(ResponseKind::of(bytes))
}

/// With `-v`, logs a response (the per-query line of the course front end
/// says which TS answered; this one says what the client got).
pub(super) fn log_response(bytes: &[u8]) {
    if log::verbose()
        && let Ok(response) = dns::Message::parse(bytes)
        && let Some(question) = response.questions.first()
    {
        log::info(format_args!(
            "ls dns: {} type {}: {}, {} answer records{}",
            question.name,
            question.qtype,
            response.rcode,
            response.answers.len(),
            if response.header.tc {
                ", truncated"
            } else {
                ""
            }
        ));
    }
}

/// Serves one DNS-over-TCP connection until the client is done and every
/// query has its answer, or the client is gone or idle.
///
/// # Errors
/// The connection's errors; `TimedOut` when it was idle.
pub(super) fn serve_tcp_client(
    client: TcpStream,
    activity: Activity,
    shared: &Arc<Shared>,
    shutdown: &Shutdown,
) -> io::Result<()> {
    let front = TcpAnswers {
        replies: Replies::new(&client, &shared.stats, Frontend::DnsTcp, activity.clone())
            .traced(shared.trace.as_ref()),
    };
    // Who the trace says asked (`--trace`).
    let peer = shared.trace.as_ref().and_then(|_| client.peer_addr().ok());
    let (reading, shutdown) = (Arc::clone(shared), shutdown.clone());
    let timeout = shared.options.dns_timeout;
    worker::serve_connection(
        &client,
        shared,
        timeout,
        // RFC 7766 §6.2.1.1: pipelined answers may leave out of order.
        Release::AsSettled,
        front,
        move |stream, session, events| {
            read_tcp_client(
                stream, &session, &activity, &reading, &shutdown, &events, peer,
            )
        },
    )
    .map_err(|unserved| match unserved {
        // A DNS client has no busy line: it sees the connection close.
        Unserved::NoReader(e) | Unserved::Failed(e) => e,
    })
}

/// Reads length-prefixed queries and submits each, until the client closes,
/// or takes longer than `--dns-tcp-message` over one message (its queries
/// so far are still answered). Between messages the worker's idle timeout
/// applies. Once the worker has closed the session, what is still read is
/// counted as received and abandoned (as the course reader does).
fn read_tcp_client(
    stream: TcpStream,
    session: &Locked<Option<Ask>>,
    activity: &Activity,
    shared: &Shared,
    shutdown: &Shutdown,
    events: &Sender<Event>,
    peer: Option<SocketAddr>,
) -> Event {
    let mut reader = BufReader::new(stream);
    let bound = shared.options.dns_tcp_message;
    loop {
        let message = match read_length_prefixed_timed(&mut reader, None, bound) {
            Ok(Timed::Message(message)) => message,
            // A message cut short by the shutdown is not a query.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && shutdown.is_triggered() => {
                return Event::ClientClosed;
            }
            Ok(Timed::End | Timed::Idle) => return Event::ClientClosed,
            Ok(Timed::Slow) => {
                log::info(format_args!(
                    "ls dns: closing a tcp client whose message took over {bound:?}"
                ));
                return Event::ClientClosed;
            }
            Err(e) => return Event::ClientFailed(e),
        };
        let mut s = session.lock_with_room();
        if let Some(closed) = s.closed_since() {
            // The worker is gone: what the client had sent is counted as
            // received and abandoned (for a bounded time), not answered.
            if respond::accept_query(&message, Transport::Tcp).is_some() {
                worker::count_abandoned(&s);
            }
            if closed.elapsed() >= worker::UNANSWERED_COUNT_BOUND {
                return Event::ClientClosed;
            }
            continue;
        }
        let taken = take(&message, Transport::Tcp, None, shared, peer);
        if !matches!(taken, Take::Drop) {
            activity.received(1);
        }
        let wake = match taken {
            Take::Drop => continue,
            Take::Answer(bytes, outcome, trace) => {
                s.submit_made(outcome, Relayed::Made(bytes), None, None, trace)
            }
            Take::Ask(request) => s.submit(Request {
                name: request.name,
                key: request.key,
                question: request.question,
                tag: Some(request.tag),
                trace: request.trace,
            }),
        };
        if reader.buffer().is_empty() {
            s.flush_links();
        }
        drop(s);
        if wake {
            let _ = events.send(Event::Submitted);
        }
    }
}

/// Answers on a TCP connection: each length-prefixed, as its query settles.
struct TcpAnswers<'a> {
    replies: Replies<'a>,
}

impl Front for TcpAnswers<'_> {
    type Tag = Option<Ask>;
    const FRONTEND: Frontend = Frontend::DnsTcp;
    const IDLE_CLOSES: bool = true;

    fn reply(&mut self, settled: Settled<Relayed, Option<Ask>>) -> io::Result<()> {
        let trace = settled.trace;
        let (bytes, outcome) = match settled.tag {
            Some(ask) => response(Settled {
                name: settled.name,
                outcome: settled.outcome,
                answer: settled.answer,
                took: settled.took,
                tag: ask,
                trace: None,
            }),
            None => match settled.answer {
                Some(Relayed::Made(bytes)) => (bytes, settled.outcome),
                _ => {
                    self.replies.skip();
                    return Ok(());
                }
            },
        };
        log_response(&bytes);
        self.replies.push(outcome, said(&bytes), trace, |out| {
            write_length_prefixed(out, &bytes)
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        self.replies.flush()
    }
}

/// Whether the DNS front end answers `peer` (`--allow`); a source left
/// out is counted, and logged with `-v`.
pub(super) fn admits(shared: &Shared, peer: SocketAddr) -> bool {
    if shared.options.allow.contains(peer.ip()) {
        return true;
    }
    shared.stats.dns.not_allowed.fetch_add(1, Ordering::Relaxed);
    log::info(format_args!("ls dns: {peer} is not allowed (--allow)"));
    false
}
