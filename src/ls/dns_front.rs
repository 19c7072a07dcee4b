//! The LS's DNS front end (RFC 1035): queries over UDP and TCP go through
//! the same sessions, links and matching as course queries (`worker.rs`).
//!
//! - **TCP** (RFC 7766): a connection is a client, exactly like a course
//!   client: a worker, a reader that submits each length-prefixed query to
//!   the session, a link per TS. Queries may be pipelined; answers go back
//!   in query order (which RFC 7766 allows, and which keeps the worker one
//!   loop for both protocols).
//! - **UDP**: a fixed pool of [`UDP_SESSIONS`] sessions, each with a
//!   receiving thread (all block in `recv_from` on the one socket, and the
//!   kernel gives each datagram to one), its worker and its links. The
//!   receiving thread answers what needs no TS at once (a malformed query,
//!   a cache hit) and hands every other query to its session. A flood from many addresses
//!   therefore costs no thread and no memory beyond the pool's: a session
//!   holds at most `--max-inflight` queries, and a query that finds its
//!   session full is dropped (and counted), as an overloaded DNS server
//!   drops datagrams. A session per client address, as the UDP lab's load
//!   balancer has, would give a flood of spoofed addresses a thread each.
//!
//! What a session's TSes said becomes the response here: an answer or a
//! referral as the TS sent it (a course TS's line becomes one A record),
//! NXDOMAIN when every TS said the name does not exist (with the first DNS
//! TS's SOA and CNAME chain), REFUSED when every TS refused, SERVFAIL at
//! the deadline (`--dns-timeout`) or when no TS could be asked.

use std::io::{self, BufReader};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;

use crossbeam_channel::Sender;

use super::event::Event;
use super::inflight::{Outcome, Settled};
use super::session::{Answer, Locked, Request, Session, cached_outcome};
use super::setup::{Shared, TsProtocol};
use super::worker::{self, Front, Replies, Unserved};
use crate::dns::respond::{self, Accepted, Outcome as DnsOutcome, Transport};
use crate::dns::{self, rcode};
use crate::framing::{read_length_prefixed, write_length_prefixed};
use crate::log;
use crate::shutdown::Shutdown;
use crate::udp::{Received, recv_datagram, wake_on_trigger};
use crate::wire;

/// Sessions that serve the UDP front end's queries.
pub const UDP_SESSIONS: usize = 2;

/// Largest UDP datagram the front end reads.
const UDP_BUFFER: usize = 65_535;

/// Events buffered per session (see `worker.rs`).
const EVENT_QUEUE: usize = 256;

/// How one DNS query is to be answered: its checked form, and over UDP
/// where it came from.
pub(super) struct Ask {
    query: respond::Query,
    peer: Option<SocketAddr>,
}

/// What the front end does with one query message: answer it at once (a
/// malformed query, a cache hit), or hand it to a session.
enum Take {
    Answer(Vec<u8>, Outcome),
    Ask(Box<Request<Ask>>),
    Drop,
}

/// Checks one query message and says what to do with it.
fn take(bytes: &[u8], transport: Transport, peer: Option<SocketAddr>, shared: &Shared) -> Take {
    let query = match respond::accept_query(bytes, transport) {
        None => return Take::Drop,
        Some(Accepted::Answered { bytes, problem }) => {
            if let Some(problem) = problem {
                log::info(format_args!("ls dns: {problem}"));
            }
            return Take::Answer(bytes, Outcome::Invalid);
        }
        Some(Accepted::Query(query)) => query,
    };
    if let Some(hit) = shared
        .cache
        .as_ref()
        .and_then(|cache| cache.get(&query.question, std::time::Instant::now()))
    {
        return Take::Answer(respond::answer(&query, &hit), cached_outcome(&hit));
    }
    let name = query.question.name.to_string();
    let name = name.trim_end_matches('.').to_string();
    let key = match query.question.name.hostname_key() {
        Some(key) => key,
        // Not a hostname: no course TS can hold it.
        None if shared.options.ts_protocol == TsProtocol::Line => {
            return Take::Answer(
                respond::answer(&query, &DnsOutcome::Refused),
                Outcome::Refused,
            );
        }
        None => name.to_ascii_lowercase(),
    };
    Take::Ask(Box::new(Request {
        name,
        key,
        question: Some(query.question.clone()),
        tag: Ask { query, peer },
    }))
}

/// The response to a settled query, and the outcome to count it under.
fn response(settled: Settled<Answer, Ask>) -> (Vec<u8>, Outcome) {
    let query = &settled.tag.query;
    let outcome = match settled.answer {
        Some(Answer::Made(bytes)) => return (bytes, settled.outcome),
        Some(Answer::Dns(outcome)) => outcome,
        Some(Answer::Line(line)) => wire::parse_reply(line.as_bytes())
            .ok()
            .and_then(|reply| {
                respond::line_outcome(&query.question, &reply, respond::LINE_ANSWER_TTL)
            })
            .unwrap_or(DnsOutcome::ServFail),
        None => match settled.outcome {
            Outcome::NotFound => DnsOutcome::nxdomain(),
            Outcome::Refused => DnsOutcome::Refused,
            _ => DnsOutcome::ServFail,
        },
    };
    (respond::answer(query, &outcome), settled.outcome)
}

/// Counts a response by its rcode, and with `-v` logs it (the per-query
/// line of the course front end says which TS answered; this one says
/// what the client got).
fn count_rcode(shared: &Shared, bytes: &[u8]) {
    let rcode = dns::Header::parse(bytes).map_or(rcode::SERVFAIL, |h| u16::from(h.rcode));
    shared.stats.dns.count(rcode);
    if log::verbose()
        && let Ok(response) = dns::Message::parse(bytes)
        && let Some(question) = response.questions.first()
    {
        log::info(format_args!(
            "ls dns: {} type {}: {}, {} answer records{}",
            question.name,
            question.qtype,
            rcode_name(response.rcode),
            response.answers.len(),
            if response.header.tc {
                ", truncated"
            } else {
                ""
            }
        ));
    }
}

/// How dig names a response code.
fn rcode_name(rcode: u16) -> &'static str {
    match rcode {
        rcode::NOERROR => "NOERROR",
        rcode::FORMERR => "FORMERR",
        rcode::SERVFAIL => "SERVFAIL",
        rcode::NXDOMAIN => "NXDOMAIN",
        rcode::NOTIMP => "NOTIMP",
        rcode::REFUSED => "REFUSED",
        rcode::BADVERS => "BADVERS",
        _ => "another rcode",
    }
}

/// Serves one DNS-over-TCP connection until the client is done and every
/// query has its answer, or the client is gone or idle.
///
/// # Errors
/// The connection's errors; `TimedOut` when it was idle.
pub(super) fn serve_tcp_client(
    client: TcpStream,
    shared: &Arc<Shared>,
    shutdown: &Shutdown,
) -> io::Result<()> {
    let front = TcpAnswers {
        replies: Replies::new(&client, &shared.stats),
        shared,
    };
    let (reading, shutdown) = (Arc::clone(shared), shutdown.clone());
    let timeout = shared.options.dns_timeout;
    worker::serve_connection(
        &client,
        shared,
        timeout,
        front,
        move |stream, session, events| {
            read_tcp_client(stream, &session, &reading, &shutdown, &events)
        },
    )
    .map_err(|unserved| match unserved {
        // A DNS client has no busy line: it sees the connection close.
        Unserved::NoReader(e) | Unserved::Failed(e) => e,
    })
}

/// Reads length-prefixed queries and submits each, until the client closes.
fn read_tcp_client(
    stream: TcpStream,
    session: &Locked<Option<Ask>>,
    shared: &Shared,
    shutdown: &Shutdown,
    events: &Sender<Event>,
) -> Event {
    let mut reader = BufReader::new(stream);
    loop {
        let message = match read_length_prefixed(&mut reader) {
            Ok(Some(message)) => message,
            // A message cut short by the shutdown is not a query.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && shutdown.is_triggered() => {
                return Event::ClientClosed;
            }
            Ok(None) => return Event::ClientClosed,
            Err(e) => return Event::ClientFailed(e),
        };
        let mut s = session.lock_with_room();
        if s.closed_since().is_some() {
            // The worker is gone: what is still read is not answered.
            shared.stats.queries.fetch_add(1, Ordering::Relaxed);
            shared.stats.abandoned.fetch_add(1, Ordering::Release);
            return Event::ClientClosed;
        }
        let wake = match take(&message, Transport::Tcp, None, shared) {
            Take::Drop => continue,
            Take::Answer(bytes, outcome) => s.submit_made(outcome, Answer::Made(bytes), None, None),
            Take::Ask(request) => s.submit(Request {
                name: request.name,
                key: request.key,
                question: request.question,
                tag: Some(request.tag),
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

/// Answers on a TCP connection: each length-prefixed, in query order.
struct TcpAnswers<'a> {
    replies: Replies<'a>,
    shared: &'a Shared,
}

impl Front for TcpAnswers<'_> {
    type Tag = Option<Ask>;
    const IDLE_CLOSES: bool = true;

    fn reply(
        &mut self,
        settled: Settled<Answer, Option<Ask>>,
        _: crate::framing::Framing,
    ) -> io::Result<()> {
        let (bytes, outcome) = match settled.tag {
            Some(ask) => response(Settled {
                name: settled.name,
                outcome: settled.outcome,
                answer: settled.answer,
                took: settled.took,
                tag: ask,
            }),
            None => match settled.answer {
                Some(Answer::Made(bytes)) => (bytes, settled.outcome),
                _ => return Ok(()),
            },
        };
        count_rcode(self.shared, &bytes);
        self.replies
            .push(outcome, |out| write_length_prefixed(out, &bytes))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.replies.flush()
    }
}

/// One UDP session of the pool: its lock, the sender of its worker's
/// channel, and its worker.
struct Pooled {
    session: Arc<Locked<Ask>>,
    events: Sender<Event>,
    worker: thread::JoinHandle<()>,
}

/// Serves DNS over UDP on `socket` until `shutdown` triggers, then lets
/// the pool's sessions answer what they hold.
///
/// # Errors
/// When the socket fails, or a session's threads cannot be started.
pub(super) fn serve_udp(
    socket: UdpSocket,
    shared: &Arc<Shared>,
    shutdown: &Shutdown,
) -> io::Result<()> {
    let socket = Arc::new(socket);
    // One wake-up datagram per receiving thread: each takes one and stops.
    let _wakes = (0..UDP_SESSIONS)
        .map(|_| wake_on_trigger(&socket, shutdown))
        .collect::<io::Result<Vec<_>>>()?;
    let mut pool = Vec::with_capacity(UDP_SESSIONS);
    for n in 0..UDP_SESSIONS {
        let (events_tx, events) = crossbeam_channel::bounded(EVENT_QUEUE);
        let session = Arc::new(Locked::new(Session::new(
            Arc::clone(shared),
            shared.options.dns_timeout,
            events_tx.clone(),
        )));
        let worker = {
            let (session, socket, shared) = (
                Arc::clone(&session),
                Arc::clone(&socket),
                Arc::clone(shared),
            );
            thread::Builder::new()
                .name(format!("ls dns udp {n}"))
                .spawn(move || {
                    let mut front = UdpAnswers {
                        socket: &socket,
                        shared: &shared,
                    };
                    if let Err(e) = worker::work(&session, &events, &mut front, &shared) {
                        log::warn(format_args!("ls dns: a UDP session ended: {e}"));
                    }
                    worker::close(&session, events);
                })?
        };
        pool.push(Pooled {
            session,
            events: events_tx,
            worker,
        });
    }
    // A receiving thread per session, all blocking in `recv_from` on the
    // one socket: the kernel hands each datagram to one of them, so
    // receiving and handing over run on every core.
    let received = thread::scope(|scope| {
        let receivers: Vec<_> = pool
            .iter()
            .map(|pooled| {
                let socket = &socket;
                scope.spawn(move || receive_udp(socket, pooled, shared, shutdown))
            })
            .collect();
        let mut result = Ok(());
        for receiver in receivers {
            let received = receiver
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("a UDP receiver panicked")));
            result = result.and(received);
        }
        result
    });
    for pooled in &pool {
        let _ = pooled.events.send(Event::ClientClosed);
    }
    for pooled in pool {
        let _ = pooled.worker.join();
    }
    received
}

/// A receiving loop: answers at once what needs no TS, hands the rest to
/// its session.
fn receive_udp(
    socket: &UdpSocket,
    pooled: &Pooled,
    shared: &Shared,
    shutdown: &Shutdown,
) -> io::Result<()> {
    let mut buf = vec![0; UDP_BUFFER];
    while !shutdown.is_triggered() {
        let Received::Datagram(len, peer) = recv_datagram(socket, &mut buf, "ls dns")? else {
            continue;
        };
        if shutdown.is_triggered() {
            break;
        }
        match take(&buf[..len], Transport::Udp, Some(peer), shared) {
            Take::Drop => log::info(format_args!("ls dns: dropped {len} bytes from {peer}")),
            Take::Answer(bytes, outcome) => {
                shared.stats.queries.fetch_add(1, Ordering::Relaxed);
                shared.stats.count(&outcome);
                count_rcode(shared, &bytes);
                if let Err(e) = socket.send_to(&bytes, peer) {
                    log::info(format_args!("ls dns: cannot answer {peer}: {e}"));
                }
            }
            Take::Ask(request) => {
                let mut s = pooled.session.lock();
                if s.is_full() {
                    // Overloaded: the client will ask again.
                    shared.stats.dns.dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let wake = s.submit(*request);
                s.flush_links();
                drop(s);
                if wake {
                    let _ = pooled.events.send(Event::Submitted);
                }
            }
        }
    }
    Ok(())
}

/// Answers on the UDP socket, each to the address that asked.
struct UdpAnswers<'a> {
    socket: &'a UdpSocket,
    shared: &'a Shared,
}

impl Front for UdpAnswers<'_> {
    type Tag = Ask;
    const IDLE_CLOSES: bool = false;

    fn reply(
        &mut self,
        settled: Settled<Answer, Ask>,
        _: crate::framing::Framing,
    ) -> io::Result<()> {
        let Some(peer) = settled.tag.peer else {
            return Ok(());
        };
        let (bytes, outcome) = response(settled);
        count_rcode(self.shared, &bytes);
        self.shared.stats.count(&outcome);
        if let Err(e) = self.socket.send_to(&bytes, peer) {
            log::info(format_args!("ls dns: cannot answer {peer}: {e}"));
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
