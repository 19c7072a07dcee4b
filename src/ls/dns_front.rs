//! The LS's DNS front end (RFC 1035): queries over UDP and TCP go through
//! the same sessions, links and matching as course queries (`worker.rs`).
//!
//! - **TCP** (RFC 7766): a connection is a client, exactly like a course
//!   client: a worker, a reader that submits each length-prefixed query to
//!   the session, a link per TS. Queries may be pipelined; each answer
//!   goes back as soon as its query is settled (RFC 7766 §6.2.1.1), so a
//!   query waiting for its deadline holds up no other.
//! - **UDP**: a fixed pool of [`UDP_SESSIONS`] sessions, each with a
//!   receiving thread (all block in `recv_from` on the one socket, and the
//!   kernel gives each datagram to one), its worker and its links. The
//!   receiving thread answers what needs no TS at once (a malformed query,
//!   a cache hit) and hands every other query to its session, which
//!   answers each as it settles. A flood from many addresses
//!   therefore costs no thread and no memory beyond the pool's: a session
//!   holds at most `--max-inflight` queries, and a query that finds its
//!   session full is dropped (and counted), as an overloaded DNS server
//!   drops datagrams. So is one whose source (its /24, or /56 for IPv6)
//!   already holds its share of the pool ([`SHARE_OF_SLOTS`]): one source
//!   cannot fill the pool for everyone. A session per client address, as
//!   the UDP lab's load balancer has, would give a flood of spoofed
//!   addresses a thread each.
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

use std::collections::HashMap;
use std::io::{self, BufReader};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Instant;

use crossbeam_channel::Sender;

use super::course_dns;
use super::decode::{Relayed, cached_outcome};
use super::event::Event;
use super::inflight::{Outcome, Release, Settled};
use super::session::{Locked, Request, Session};
use super::setup::{Shared, TsProtocol};
use super::worker::{self, Front, Replies, Unserved};
use crate::dns::respond::{self, Accepted, Transport};
use crate::dns::rrl::{self, Limiter, Verdict};
use crate::dns::{self, Rcode, Resolution};
use crate::framing::{Timed, read_length_prefixed_timed, write_length_prefixed};
use crate::log;
use crate::net::datagram::{RECV_BUFFER, Received, recv_datagram, wake_on_trigger};
use crate::server::Activity;
use crate::shutdown::Shutdown;
use crate::sync::{self, lock};
use crate::wire;

/// Sessions that serve the UDP front end's queries.
pub const UDP_SESSIONS: usize = 2;

/// A source holds at most this fraction (1/N) of the UDP front end's
/// in-flight slots (`UDP_SESSIONS` × `--max-inflight`), at least one.
const SHARE_OF_SLOTS: usize = 8;

/// Events buffered per session (see `worker.rs`).
const EVENT_QUEUE: usize = 256;

/// How one DNS query is to be answered: its checked form, and over UDP
/// where it came from.
pub(super) struct Ask {
    query: respond::Checked,
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
    if query.question.qclass != dns::CLASS_IN {
        // The TSes hold only the Internet class (CH `version.bind` and the
        // like): refused at once, whatever the TSes speak.
        return Take::Answer(
            respond::answer(&query, &Resolution::Refused),
            Outcome::Refused,
        );
    }
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
                respond::answer(&query, &Resolution::Refused),
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
fn response(settled: Settled<Relayed, Ask>) -> (Vec<u8>, Outcome) {
    let query = &settled.tag.query;
    let outcome = match settled.answer {
        Some(Relayed::Made(bytes)) => return (bytes, settled.outcome),
        Some(Relayed::Dns(outcome)) => outcome,
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

/// A response's rcode, as the counters file it.
fn rcode_of(bytes: &[u8]) -> Rcode {
    dns::Header::parse(bytes).map_or(Rcode::SERVFAIL, |h| Rcode(u16::from(h.rcode)))
}

/// Sends a UDP response to `peer` through the rate limit, if there is one
/// (sent, dropped, or sent as its truncated stand-in: the slip), and counts
/// it (by `outcome` and by its rcode) once sent; one the socket would not
/// take, or the rate limit dropped, is abandoned.
fn send_udp(
    socket: &UdpSocket,
    shared: &Shared,
    limiter: Option<&Mutex<Limiter>>,
    bytes: &[u8],
    outcome: &Outcome,
    peer: SocketAddr,
) {
    let verdict = limiter.map_or(Verdict::Send, |limiter| {
        sync::lock(limiter).check(peer.ip(), Instant::now())
    });
    let slip;
    let bytes = match verdict {
        Verdict::Send => bytes,
        Verdict::Drop => {
            let stats = &shared.stats;
            stats.dns.rate_limited.fetch_add(1, Ordering::Relaxed);
            stats.abandoned.fetch_add(1, Ordering::Release);
            return;
        }
        Verdict::Slip => {
            shared.stats.dns.slipped.fetch_add(1, Ordering::Relaxed);
            slip = rrl::slip_response(bytes);
            &slip
        }
    };
    log_response(bytes);
    match socket.send_to(bytes, peer) {
        Ok(_) => {
            shared.stats.count(outcome);
            shared.stats.dns.count(rcode_of(bytes));
        }
        Err(e) => {
            shared.stats.abandoned.fetch_add(1, Ordering::Release);
            log::info(format_args!("ls dns: cannot answer {peer}: {e}"));
        }
    }
}

/// With `-v`, logs a response (the per-query line of the course front end
/// says which TS answered; this one says what the client got).
fn log_response(bytes: &[u8]) {
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
        replies: Replies::new(&client, &shared.stats, activity.clone()),
    };
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
            read_tcp_client(stream, &session, &activity, &reading, &shutdown, &events)
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
        let taken = take(&message, Transport::Tcp, None, shared);
        if !matches!(taken, Take::Drop) {
            activity.received(1);
        }
        let wake = match taken {
            Take::Drop => continue,
            Take::Answer(bytes, outcome) => {
                s.submit_made(outcome, Relayed::Made(bytes), None, None)
            }
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

/// Answers on a TCP connection: each length-prefixed, as its query settles.
struct TcpAnswers<'a> {
    replies: Replies<'a>,
}

impl Front for TcpAnswers<'_> {
    type Tag = Option<Ask>;
    const IDLE_CLOSES: bool = true;

    fn reply(&mut self, settled: Settled<Relayed, Option<Ask>>) -> io::Result<()> {
        let (bytes, outcome) = match settled.tag {
            Some(ask) => response(Settled {
                name: settled.name,
                outcome: settled.outcome,
                answer: settled.answer,
                took: settled.took,
                tag: ask,
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
        self.replies.push(outcome, Some(rcode_of(&bytes)), |out| {
            write_length_prefixed(out, &bytes)
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        self.replies.flush()
    }
}

/// What a client's share of the UDP slots is counted by: its address's
/// /24 for IPv4 (also when mapped into IPv6), its /56 for IPv6 (an end
/// site's assignment, RFC 6177; the prefixes BIND and NSD limit response
/// rates by). One host cannot take a neighbour's share by changing ports,
/// or addresses within its network.
fn source_of(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4) & 0xffff_ff00)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => source_of(IpAddr::V4(v4)),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & (!0u128 << 72))),
        },
    }
}

/// How many queries each source holds in the UDP pool, against a cap: the
/// pool is shared by every client, so one source flooding it (misses that
/// wait for their deadline, from any number of ports) cannot take every
/// slot. Memory is bounded by the pool: a source is kept only while it
/// holds a query.
struct Shares {
    cap: usize,
    held: HashMap<IpAddr, usize>,
}

impl Shares {
    /// Each source holding at most `cap` queries (at least one).
    fn new(cap: usize) -> Shares {
        Shares {
            cap: cap.max(1),
            held: HashMap::new(),
        }
    }

    /// Takes a slot for a query from `source`; `false` when it already
    /// holds its share.
    fn take(&mut self, source: IpAddr) -> bool {
        let held = self.held.entry(source).or_insert(0);
        if *held >= self.cap {
            return false;
        }
        *held += 1;
        true
    }

    /// Gives back a slot `source` took (its query has left).
    fn give_back(&mut self, source: IpAddr) {
        if let Some(held) = self.held.get_mut(&source) {
            *held -= 1;
            if *held == 0 {
                self.held.remove(&source);
            }
        }
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
    let limiter = shared
        .options
        .rrl
        .map(|limit| Arc::new(Mutex::new(Limiter::new(limit))));
    // One wake-up datagram per receiving thread: each takes one and stops.
    let _wakes = (0..UDP_SESSIONS)
        .map(|_| wake_on_trigger(&socket, shutdown))
        .collect::<io::Result<Vec<_>>>()?;
    let slots = UDP_SESSIONS * shared.options.max_inflight;
    let shares = Arc::new(Mutex::new(Shares::new(slots / SHARE_OF_SLOTS)));
    let mut pool = Vec::with_capacity(UDP_SESSIONS);
    for n in 0..UDP_SESSIONS {
        let (events_tx, events) = crossbeam_channel::bounded(EVENT_QUEUE);
        let session = Arc::new(Locked::new(Session::new(
            Arc::clone(shared),
            shared.options.dns_timeout,
            // Datagrams have no order: each answer leaves once settled.
            Release::AsSettled,
            events_tx.clone(),
        )));
        let worker = {
            let (session, socket, shared, limiter, shares) = (
                Arc::clone(&session),
                Arc::clone(&socket),
                Arc::clone(shared),
                limiter.clone(),
                Arc::clone(&shares),
            );
            thread::Builder::new()
                .name(format!("ls dns udp {n}"))
                .spawn(move || {
                    let mut front = UdpAnswers {
                        socket: &socket,
                        shared: &shared,
                        limiter: limiter.as_deref(),
                        shares: &shares,
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
                let (socket, limiter, shares) = (&socket, limiter.as_deref(), &*shares);
                scope.spawn(move || receive_udp(socket, pooled, limiter, shares, shared, shutdown))
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
/// its session, unless the session is full or the query's source already
/// holds its share of the pool (then it is dropped and counted: the client
/// will ask again).
fn receive_udp(
    socket: &UdpSocket,
    pooled: &Pooled,
    limiter: Option<&Mutex<Limiter>>,
    shares: &Mutex<Shares>,
    shared: &Shared,
    shutdown: &Shutdown,
) -> io::Result<()> {
    let mut buf = vec![0; RECV_BUFFER];
    while !shutdown.is_triggered() {
        let Received::Datagram(len, peer) = recv_datagram(socket, &mut buf, "ls dns")? else {
            continue;
        };
        if shutdown.is_triggered() {
            break;
        }
        if !admits(shared, peer) {
            continue;
        }
        match take(&buf[..len], Transport::Udp, Some(peer), shared) {
            Take::Drop => log::info(format_args!("ls dns: dropped {len} bytes from {peer}")),
            Take::Answer(bytes, outcome) => {
                shared.stats.queries.fetch_add(1, Ordering::Relaxed);
                send_udp(socket, shared, limiter, &bytes, &outcome, peer);
            }
            Take::Ask(request) => {
                let mut s = pooled.session.lock();
                if s.is_full() {
                    // Overloaded: the client will ask again.
                    shared.stats.dns.dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                if !lock(shares).take(source_of(peer.ip())) {
                    shared.stats.dns.over_share.fetch_add(1, Ordering::Relaxed);
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

/// Answers on the UDP socket, each to the address that asked, giving its
/// source's slot back.
struct UdpAnswers<'a> {
    socket: &'a UdpSocket,
    shared: &'a Shared,
    limiter: Option<&'a Mutex<Limiter>>,
    shares: &'a Mutex<Shares>,
}

impl Front for UdpAnswers<'_> {
    type Tag = Ask;
    const IDLE_CLOSES: bool = false;

    fn reply(&mut self, settled: Settled<Relayed, Ask>) -> io::Result<()> {
        let Some(peer) = settled.tag.peer else {
            return Ok(());
        };
        lock(self.shares).give_back(source_of(peer.ip()));
        let (bytes, outcome) = response(settled);
        send_udp(
            self.socket,
            self.shared,
            self.limiter,
            &bytes,
            &outcome,
            peer,
        );
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_source_is_its_ipv4_slash_24_or_ipv6_slash_56() {
        assert_eq!(source_of(ip("192.0.2.77")), ip("192.0.2.0"));
        assert_eq!(source_of(ip("::ffff:192.0.2.77")), ip("192.0.2.0"));
        assert_eq!(
            source_of(ip("2001:db8:aa:bbcc:1:2:3:4")),
            ip("2001:db8:aa:bb00::")
        );
    }

    #[test]
    fn a_source_holds_at_most_its_share_and_gets_slots_back() {
        let mut shares = Shares::new(2);
        let (a, b) = (ip("192.0.2.0"), ip("198.51.100.0"));
        assert!(shares.take(a) && shares.take(a));
        assert!(!shares.take(a), "over its share");
        assert!(shares.take(b), "another source is not held back");
        shares.give_back(a);
        assert!(shares.take(a));
        for _ in 0..2 {
            shares.give_back(a);
        }
        shares.give_back(b);
        assert!(
            shares.held.is_empty(),
            "sources holding nothing are forgotten"
        );
        // A pool too small to divide still lets every source ask.
        assert!(Shares::new(0).take(a));
    }
}
