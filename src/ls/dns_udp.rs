//! The DNS front end over UDP: a fixed pool of [`UDP_SESSIONS`] sessions, each with a
//! receiving thread (all block in `recv_from` on the one socket, and the
//! kernel gives each datagram to one), its worker and its links. The
//! receiving thread answers what needs no TS at once (a malformed query,
//! a cache hit) and hands every other query to its session, which
//! answers each as it settles. A flood from many addresses
//! therefore costs no thread and no memory beyond the pool's: a session
//! holds at most `--max-inflight` queries, and a query that finds its
//! session full is dropped (and counted), as an overloaded DNS server
//! drops datagrams. So is one whose source (its /24, or /56 for IPv6)
//! already holds its share of the pool ([`SHARE_OF_SLOTS`]): one source
//! cannot fill the pool for everyone. A session per client address, as
//! the UDP lab's load balancer has, would give a flood of spoofed
//! addresses a thread each.
//!
//! What a query message becomes, and what a session's answer becomes, is
//! `dns_front.rs`'s, shared with TCP.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Instant;

use crossbeam_channel::Sender;

use super::decode::Relayed;
use super::dns_front::{Ask, Take, admits, log_response, response, said, take};
use super::event::Event;
use super::inflight::{Outcome, Release, Settled};
use super::session::{Locked, Session};
use super::setup::Shared;
use super::stats::Frontend;
use super::worker::{self, EVENT_QUEUE, Front};
use crate::dns::respond::Transport;
use crate::dns::rrl::{self, Limiter, Verdict};
use crate::log;
use crate::net::datagram::{RECV_BUFFER, Received, recv_datagram, wake_on_trigger};
use crate::shutdown::Shutdown;
use crate::sync::{self, lock};
use crate::trace::{self, Lane, Query, Step, Tracer};

/// Sessions that serve the UDP front end's queries.
pub const UDP_SESSIONS: usize = 2;

/// A source holds at most this fraction (1/N) of the UDP front end's
/// in-flight slots (`UDP_SESSIONS` × `--max-inflight`), at least one.
const SHARE_OF_SLOTS: usize = 8;

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
    trace: &Option<Query>,
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
            shared
                .stats
                .count_reply(Frontend::DnsUdp, said(bytes), outcome);
            trace::step(&shared.trace, trace, Step::Write);
        }
        Err(e) => {
            shared.stats.abandoned.fetch_add(1, Ordering::Release);
            log::info(format_args!("ls dns: cannot answer {peer}: {e}"));
        }
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
    /// Its number in the trace's lanes (`--trace`).
    lane: Option<u32>,
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
        let lane = shared.trace.as_ref().map(Tracer::session);
        let session = Arc::new(Locked::new(Session::new(
            Arc::clone(shared),
            shared.options.dns_timeout,
            // Datagrams have no order: each answer leaves once settled.
            Release::AsSettled,
            events_tx.clone(),
            Frontend::DnsUdp,
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
                    if let Some(n) = lane {
                        Lane::Worker(n).enter();
                    }
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
            lane,
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
    if let Some(n) = pooled.lane {
        Lane::Udp(n).enter();
    }
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
        match take(&buf[..len], Transport::Udp, Some(peer), shared, Some(peer)) {
            Take::Drop => log::info(format_args!("ls dns: dropped {len} bytes from {peer}")),
            Take::Answer(bytes, outcome, trace) => {
                shared.stats.count_query(Frontend::DnsUdp);
                let (term, ts) = (outcome.term(), None);
                trace::step(&shared.trace, &trace, Step::Settle { outcome: term, ts });
                send_udp(socket, shared, limiter, &bytes, &outcome, peer, &trace);
            }
            Take::Ask(request) => {
                let mut s = pooled.session.lock();
                let dropped = Step::Settle {
                    outcome: "dropped",
                    ts: None,
                };
                if s.is_full() {
                    // Overloaded: the client will ask again.
                    shared.stats.dns.dropped.fetch_add(1, Ordering::Relaxed);
                    trace::step(&shared.trace, &request.trace, dropped);
                    continue;
                }
                if !lock(shares).take(source_of(peer.ip())) {
                    shared.stats.dns.over_share.fetch_add(1, Ordering::Relaxed);
                    trace::step(&shared.trace, &request.trace, dropped);
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
    const FRONTEND: Frontend = Frontend::DnsUdp;
    const IDLE_CLOSES: bool = false;

    fn reply(&mut self, mut settled: Settled<Relayed, Ask>) -> io::Result<()> {
        let Some(peer) = settled.tag.peer else {
            return Ok(());
        };
        lock(self.shares).give_back(source_of(peer.ip()));
        let trace = settled.trace.take();
        let (bytes, outcome) = response(settled);
        send_udp(
            self.socket,
            self.shared,
            self.limiter,
            &bytes,
            &outcome,
            peer,
            &trace,
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
