//! A session's links to its TSes: each link's state (up, connecting,
//! down, idle) and the transitions that the link threads' news and failed
//! writes cause. A link that is up writes through its [`Conn`].
//!
//! A link goes `Down` → `Connecting` (when the TS's shared health allows
//! an attempt) → `Up` (queries asked meanwhile are sent) → `Down` (the TS
//! failed or stalled), or `Idle` (the TS closed a connection nothing was
//! waiting on: connected again when the next query needs it).

use std::io;
use std::net::{Shutdown as Direction, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use super::conn::Conn;
use crate::dns::Question;
use crate::framing::Frame;
use crate::framing::{Framing, is_timeout};
use crate::log;
use crate::ls::decode::Relayed;
use crate::ls::event::Event;
use crate::ls::health::{PROBE_IN_USE, RECHECK};
use crate::ls::inflight::InFlight;
use crate::ls::link::{self, LinkHandle, LinkOptions, LinkThread};
use crate::ls::setup::CONNECT_TIMEOUT;
use crate::ls::setup::Shared;
use crate::trace::{self, Query, Step};

/// Longest a session's write to a TS may block. A TS whose socket takes no
/// more queries for this long has stopped reading (hung, or cut off by the
/// network): it is given up at once instead of holding up the client and
/// its other TSes until the query deadline.
pub const TS_WRITE_BOUND: Duration = Duration::from_millis(20);

pub(super) enum LinkState {
    Up(Conn),
    Connecting {
        generation: u64,
        handle: LinkHandle,
    },
    Down {
        check_at: Instant,
    },
    /// The TS closed an idle connection: connected again when a query
    /// needs it (connecting at once could reach a TS that is shutting
    /// down, whose listener still takes connections for a moment).
    Idle,
}

/// What became of a query written to one TS ([`Links::ask`]).
pub(super) enum Asked {
    /// Sent, or sent when the link comes up. `due`: the worker must act
    /// now (the write was held back, or a newline is due after it).
    Yes { due: bool },
    /// Not sent: the link is down (`starved`: for want of the LS's own
    /// descriptors or threads), or a DNS connection has every ID in use.
    No { starved: bool },
    /// The write failed.
    Failed(io::Error),
}

/// The queries in flight as a session holds them.
pub(super) type Queries<T> = InFlight<Relayed, Tagged<T>>;

/// A query's tag inside the session: the front end's, and the question a
/// DNS TS is asked (for a link that comes up after the query).
pub(super) struct Tagged<T> {
    pub(super) question: Option<Question>,
    pub(super) front: T,
    /// The members of replicated pools it was sent to (bits by TS).
    pub(super) pooled: u64,
    /// Its trace (`--trace`).
    pub(super) trace: Option<Query>,
}

/// Records `step` of query `seq` on the current thread's lane, when the LS
/// traces it.
pub(super) fn trace_step<T>(shared: &Shared, inflight: &Queries<T>, seq: u64, step: Step) {
    if shared.trace.is_some()
        && let Some(tagged) = inflight.tag(seq)
    {
        trace::step(&shared.trace, &tagged.trace, step);
    }
}

/// One session's links, one per TS.
pub(super) struct Links {
    shared: Arc<Shared>,
    links: Vec<LinkState>,
    threads: Vec<LinkThread>,
    next_generation: u64,
    events: Sender<Event>,
    /// When the client last sent a query: links stay in use a while after
    /// ([`PROBE_IN_USE`]).
    pub(super) last_submit: Instant,
    /// The session is closed: no link connects again.
    closed: bool,
    /// Links down for want of the LS's own descriptors or threads (not the
    /// TS's fault): a query that cannot be sent on one is not a miss.
    starved: u64,
    /// Per TS, connections it closed with queries unanswered since it last
    /// replied.
    closes: Vec<u32>,
    /// Queries moved to another member of their pool when a link went
    /// down: (seq, pool, member now asked, members tried), for the session
    /// to time their new try.
    pub(super) moved: Vec<(u64, usize, usize, u64)>,
}

impl Links {
    /// A link per TS, each down until the session first maintains them;
    /// their threads report to `events`.
    pub(super) fn new(shared: Arc<Shared>, events: Sender<Event>, now: Instant) -> Links {
        Links {
            links: shared
                .backends
                .iter()
                .map(|_| LinkState::Down { check_at: now })
                .collect(),
            closes: vec![0; shared.backends.len()],
            shared,
            threads: Vec::new(),
            next_generation: 0,
            events,
            last_submit: now,
            closed: false,
            starved: 0,
            moved: Vec::new(),
        }
    }

    /// How many TSes (one link each).
    pub(super) fn len(&self) -> usize {
        self.links.len()
    }

    /// Writes query `seq` for `name` (`question` to a DNS TS) to TS `ts`,
    /// connecting first a link that is idle.
    pub(super) fn ask<T>(
        &mut self,
        ts: usize,
        seq: u64,
        name: &str,
        question: Option<&Question>,
        now: Instant,
        inflight: &mut Queries<T>,
    ) -> Asked {
        if matches!(self.links[ts], LinkState::Idle) {
            self.connect(ts, now, inflight);
        }
        let (sent, due) = match &mut self.links[ts] {
            LinkState::Up(conn) if conn.must_hold(now) => {
                conn.pace.held.push_back(seq);
                (Ok(true), true)
            }
            LinkState::Up(conn) => {
                let sent = conn.send(seq, name, question);
                // The newline that may follow it is the worker's to send.
                (sent, conn.pace.probe_at.is_some())
            }
            // Sent when the link comes up.
            LinkState::Connecting { .. } => (Ok(true), false),
            LinkState::Down { .. } | LinkState::Idle => {
                let starved = self.starved & (1 << ts) != 0;
                return Asked::No { starved };
            }
        };
        match sent {
            Ok(true) => Asked::Yes { due },
            Ok(false) => Asked::No { starved: false },
            Err(e) => Asked::Failed(e),
        }
    }

    /// Acts on one piece of news from a link thread (client events are the
    /// worker's). A reply on a link that is current is returned, for the
    /// session to decode and settle.
    pub(super) fn handle<T>(
        &mut self,
        event: Event,
        inflight: &mut Queries<T>,
    ) -> Option<(usize, Frame, Option<Instant>)> {
        match event {
            Event::Connected { ts, generation } => {
                if let LinkState::Connecting {
                    generation: g,
                    handle,
                } = &self.links[ts]
                    && *g == generation
                {
                    let handle = handle.clone();
                    match handle.take_writer() {
                        Some(stream) => self.link_up(ts, generation, stream, handle, inflight),
                        None => self.link_down(ts, "connection already closed", inflight),
                    }
                }
            }
            Event::Reply {
                ts,
                generation,
                frame,
                read_at,
            } => {
                if matches!(&self.links[ts], LinkState::Up(conn) if conn.generation == generation) {
                    return Some((ts, frame, read_at));
                }
            }
            Event::Down {
                ts,
                generation,
                why,
            } => {
                let current = match &self.links[ts] {
                    LinkState::Up(conn) => conn.generation == generation,
                    LinkState::Connecting { generation: g, .. } => *g == generation,
                    LinkState::Down { .. } | LinkState::Idle => false,
                };
                if current {
                    self.link_down(ts, &why, inflight);
                }
            }
            Event::Closed { ts, generation } => {
                if matches!(&self.links[ts], LinkState::Up(conn) if conn.generation == generation) {
                    self.link_closed(ts, inflight);
                }
            }
            Event::Starved {
                ts,
                generation,
                why,
            } => {
                if matches!(self.links[ts], LinkState::Connecting { generation: g, .. } if g == generation)
                {
                    self.link_starved(ts, &why, inflight);
                }
            }
            Event::Submitted | Event::ClientClosed | Event::ClientFailed(_) => {}
        }
        None
    }

    /// Starts connecting the links that are down, where the shared health
    /// allows it now, and sends the queries held back for bare TSes.
    pub(super) fn maintain_links<T>(&mut self, now: Instant, inflight: &mut Queries<T>) {
        self.release_held(now, inflight);
        for ts in 0..self.links.len() {
            let LinkState::Down { check_at } = self.links[ts] else {
                continue;
            };
            if check_at <= now && !self.closed {
                self.connect(ts, now, inflight);
            }
        }
    }

    /// Starts connecting to TS `ts`, if the shared health allows it now.
    fn connect<T>(&mut self, ts: usize, now: Instant, inflight: &mut Queries<T>) {
        let in_use = !inflight.is_empty() || now < self.last_submit + PROBE_IN_USE;
        let health = &self.shared.health[ts];
        let Some(attempt) = health.begin_attempt(now, in_use) else {
            // Down by the shared record: a miss is the TS's, not a shortage.
            self.starved &= !(1 << ts);
            self.links[ts] = LinkState::Down {
                check_at: health.next_check(now),
            };
            return;
        };
        let generation = self.next_generation;
        self.next_generation += 1;
        // A framing another session learnt need not be learnt again.
        let framing = match self.shared.options.ts_framing {
            Framing::Auto => health.framing().unwrap_or(Framing::Auto),
            framing => framing,
        };
        // A TS believed up is given as long as a query waits: the queries
        // submitted meanwhile wait on this connection, and a handshake
        // slowed by a lost SYN (retransmitted after 1 s) is no miss. The
        // probe of a TS that is down gives up sooner, so that a TS coming
        // back is used again within about a second.
        let connect_timeout = if attempt.is_probe() {
            CONNECT_TIMEOUT
        } else {
            inflight.timeout().max(CONNECT_TIMEOUT)
        };
        let options = LinkOptions {
            connect_timeout,
            write_timeout: TS_WRITE_BOUND,
            framing,
            protocol: self.shared.options.ts_protocol,
            timed: self.shared.trace.is_some(),
        };
        let spawned = link::spawn(
            ts,
            generation,
            &self.shared.backends[ts],
            Arc::clone(health),
            attempt,
            options,
            self.events.clone(),
        );
        match spawned {
            Ok(thread) => {
                self.links[ts] = LinkState::Connecting {
                    generation,
                    handle: thread.handle(),
                };
                self.threads.retain(|t| !t.is_finished());
                self.threads.push(thread);
            }
            Err(e) => {
                // The LS's own shortage, not news about the TS: the
                // attempt (and a probe) was dropped unreported.
                self.link_starved(ts, &format!("cannot start a link thread: {e}"), inflight);
            }
        }
    }

    /// Sends the newlines due to queries sent bare to TSes whose framing is
    /// not known yet, and the queries held back whose gap has passed; a
    /// query settled meanwhile is not sent and no longer counts as asked.
    fn release_held<T>(&mut self, now: Instant, inflight: &mut Queries<T>) {
        for ts in 0..self.links.len() {
            let LinkState::Up(conn) = &mut self.links[ts] else {
                continue;
            };
            let mut result = conn.take_learnt();
            if result.is_ok() && conn.pace.probe_at.is_some_and(|t| t <= now) {
                result = conn.send_probe(now);
            }
            while result.is_ok() && !conn.pace.holds(now) {
                let Some(seq) = conn.pace.held.pop_front() else {
                    break;
                };
                match (inflight.waiting_for(seq, ts), inflight.tag(seq)) {
                    (Some(name), Some(tag)) => {
                        result = conn.send(seq, name, tag.question.as_ref()).map(|_| ());
                    }
                    _ => inflight.unask(seq, ts),
                }
            }
            if result.is_ok() && conn.dirty {
                result = conn.flush();
            }
            if let Err(e) = result {
                self.send_failed(ts, &e, inflight);
            }
        }
    }

    /// The earliest of the links' rechecks, their held queries and
    /// newlines, and the deadlines of `inflight`, if any.
    pub(super) fn next_wakeup<T>(&self, inflight: &Queries<T>) -> Option<Instant> {
        let recheck = self.links.iter().filter_map(|link| match link {
            LinkState::Down { check_at } => Some(*check_at),
            LinkState::Up(Conn { pace, .. }) => {
                let held = (!pace.held.is_empty()).then_some(pace.quiet_until);
                [pace.probe_at, held.flatten()].into_iter().flatten().min()
            }
            _ => None,
        });
        recheck.chain(inflight.next_deadline()).min()
    }

    /// Sends the queries buffered for each TS.
    pub(super) fn flush_links<T>(&mut self, inflight: &mut Queries<T>) {
        for ts in 0..self.links.len() {
            if let LinkState::Up(conn) = &mut self.links[ts]
                && conn.dirty
                && let Err(e) = conn.flush()
            {
                self.send_failed(ts, &e, inflight);
            }
        }
    }

    fn link_up<T>(
        &mut self,
        ts: usize,
        generation: u64,
        stream: TcpStream,
        handle: LinkHandle,
        inflight: &mut Queries<T>,
    ) {
        self.starved &= !(1 << ts);
        let options = &self.shared.options;
        let health = Arc::clone(&self.shared.health[ts]);
        let (protocol, max_inflight) = (options.ts_protocol, options.max_inflight);
        let mut conn = Conn::new(generation, stream, handle, health, protocol, max_inflight);
        // Queries submitted while the link was connecting (the first only,
        // to a TS that may read one message per recv(); the others are held
        // back); those settled meanwhile are not sent and no longer count
        // as asked.
        let mut result = Ok(true);
        let now = Instant::now();
        for seq in inflight.asked_of(ts) {
            if let (Some(name), Some(tag)) = (inflight.waiting_for(seq, ts), inflight.tag(seq))
                && result.is_ok()
            {
                if conn.must_hold(now) {
                    conn.pace.held.push_back(seq);
                } else {
                    result = conn.send(seq, name, tag.question.as_ref());
                }
            }
        }
        let result = result.and_then(|_| conn.flush());
        self.links[ts] = LinkState::Up(conn);
        if let Err(e) = result {
            self.send_failed(ts, &e, inflight);
        }
    }

    /// A write to TS `ts` failed. One that timed out means the TS stopped
    /// reading: that is news for the whole LS (every session would block on
    /// it in turn), so the shared record marks it down. Any other failure is
    /// this session's connection only.
    pub(super) fn send_failed<T>(&mut self, ts: usize, e: &io::Error, inflight: &mut Queries<T>) {
        if is_timeout(e) {
            self.link_stalled(
                ts,
                &format!(
                    "stopped reading queries (a write did not complete within {TS_WRITE_BOUND:?})"
                ),
                inflight,
            );
        } else if let LinkState::Up(conn) = &mut self.links[ts] {
            // Broken pipe, reset: the TS closed the connection, as it may
            // (an idle timeout, a restart, a cap on queries per connection
            // as NSD's `tcp-query-count`). The answers it wrote before
            // closing are in the socket already, ahead of the close: the
            // link is replaced when the reader has read them and reports
            // the end (`link_closed`), so that those answers count and the
            // queries after them are asked again on a new connection.
            log::info(format_args!(
                "ls: {} closed the connection under a write: {e}",
                self.shared.backends[ts]
            ));
            conn.closing = true;
            let _ = conn.writer.get_ref().shutdown(Direction::Both);
        }
    }

    /// TS `ts` is unavailable although its connection may look open: marked
    /// down for every session, and this session's connection is given up.
    pub(super) fn link_stalled<T>(&mut self, ts: usize, why: &str, inflight: &mut Queries<T>) {
        self.shared.health[ts].failed(None, why);
        self.link_failed(ts, why, inflight);
    }

    /// This session's connection to TS `ts` is no use any more (a write
    /// failed, or the TS stalled): it is given up, connecting or not. The
    /// link thread reports nothing more; a broken connection is news for the
    /// TS's health only if the other sessions see it too.
    fn link_failed<T>(&mut self, ts: usize, why: &str, inflight: &mut Queries<T>) {
        match &self.links[ts] {
            LinkState::Up(Conn { handle, .. }) | LinkState::Connecting { handle, .. } => {
                handle.close();
            }
            LinkState::Down { .. } | LinkState::Idle => {}
        }
        self.link_down(ts, why, inflight);
    }

    /// TS `ts` closed this session's connection. With queries waiting on it,
    /// that is a fault (a crash, a restart): the TS is marked down. With
    /// none, it is a TS closing an idle connection: the link is idle until
    /// the next query needs it, and the TS stays up for everyone.
    fn link_closed<T>(&mut self, ts: usize, inflight: &mut Queries<T>) {
        let unanswered = !inflight.asked_of(ts).is_empty();
        if unanswered && self.closes[ts] > 0 {
            // Closed again before answering anything: not a TS to rely on.
            let why = "closed its connections with queries unanswered";
            self.shared.health[ts].failed(None, why);
            self.link_down(ts, why, inflight);
            return;
        }
        log::info(format_args!(
            "ls: {} closed its connection",
            self.shared.backends[ts]
        ));
        if let LinkState::Up(conn) = &self.links[ts] {
            let _ = conn.writer.get_ref().shutdown(Direction::Both);
        }
        if !unanswered {
            self.links[ts] = LinkState::Idle;
            return;
        }
        // A TS may close a connection while a query is on its way (RFC 7766
        // §6.2.3): the queries it was asked stay asked, and a new
        // connection sends them again (`link_up`), once.
        self.closes[ts] += 1;
        let now = Instant::now();
        self.links[ts] = LinkState::Down { check_at: now };
        if !self.closed {
            self.connect(ts, now, inflight);
        }
    }

    /// The link to TS `ts` could not be made for want of the LS's own
    /// descriptors or threads. The TS's shared health is left alone; this
    /// session tries again after a pause, and the queries that were waiting
    /// on it cannot end as misses.
    fn link_starved<T>(&mut self, ts: usize, why: &str, inflight: &mut Queries<T>) {
        log::warn(format_args!(
            "ls: a session cannot reach {}: {why} (the LS is short of resources; the TS is not marked down)",
            self.shared.backends[ts]
        ));
        self.starved |= 1 << ts;
        self.links[ts] = LinkState::Down {
            check_at: Instant::now() + RECHECK,
        };
        inflight.starve_ts(ts, Instant::now());
    }

    fn link_down<T>(&mut self, ts: usize, why: &str, inflight: &mut Queries<T>) {
        self.starved &= !(1 << ts);
        if let LinkState::Up(conn) = &self.links[ts] {
            let _ = conn.writer.get_ref().shutdown(Direction::Both);
        }
        log::info(format_args!(
            "ls: session lost {}: {why}",
            self.shared.backends[ts]
        ));
        self.links[ts] = LinkState::Down {
            check_at: self.shared.health[ts].next_check(Instant::now()),
        };
        self.move_on(ts, inflight);
        inflight.forget_ts(ts, Instant::now());
    }

    /// Records that query `seq`, given up by `from` (`why`: what it did,
    /// for the log), has been asked of `ts`, a member of the same pool.
    pub(super) fn handed_over<T>(
        &self,
        seq: u64,
        from: usize,
        ts: usize,
        name: &str,
        why: &str,
        inflight: &mut Queries<T>,
    ) {
        inflight.fail_over(seq, from, ts);
        if let Some(tag) = inflight.tag_mut(seq) {
            tag.pooled |= 1 << ts;
        }
        let balance = &self.shared.balance;
        balance.outstanding[ts].fetch_add(1, Ordering::Relaxed);
        balance.sent[ts].fetch_add(1, Ordering::Relaxed);
        balance.retries[ts].fetch_add(1, Ordering::Relaxed);
        let backends = &self.shared.backends;
        log::info(format_args!(
            "ls: {name:?}: {} {why}; asking {}",
            backends[from], backends[ts]
        ));
    }

    /// Gives each query waiting on `from`, a member of a pool of several
    /// whose link just went down, to the next member of the pool it has
    /// not tried, if there is one.
    fn move_on<T>(&mut self, from: usize, inflight: &mut Queries<T>) {
        if self.closed {
            return;
        }
        let shared = Arc::clone(&self.shared);
        let Some(pool) = shared
            .pools
            .iter()
            .position(|p| p.is_replicated() && p.members.contains(&from))
        else {
            return;
        };
        let now = Instant::now();
        let mut failed = Vec::new();
        for seq in inflight.asked_of(from) {
            let Some(name) = inflight.unsettled_name(seq).map(str::to_string) else {
                continue;
            };
            let question = inflight.tag(seq).and_then(|t| t.question.clone());
            let mut tried = inflight.asked(seq);
            while let Some(ts) =
                shared.pools[pool].choose(&name, tried, &shared.health, &shared.balance)
            {
                tried |= 1 << ts;
                match self.ask(ts, seq, &name, question.as_ref(), now, inflight) {
                    Asked::No { .. } => continue,
                    Asked::Yes { .. } => {}
                    Asked::Failed(e) => failed.push((ts, e)),
                }
                trace_step(&shared, inflight, seq, Step::Retry(ts));
                trace_step(&shared, inflight, seq, Step::Send(ts));
                self.handed_over(seq, from, ts, &name, "lost", inflight);
                self.moved.push((seq, pool, ts, tried));
                break;
            }
        }
        for (ts, e) in failed {
            self.send_failed(ts, &e, inflight);
        }
    }

    /// TS `ts` replied on its link: it has read what it was sent, and may
    /// have shown how it frames. The connection, if the link is still up.
    pub(super) fn replied<T>(&mut self, ts: usize, inflight: &mut Queries<T>) -> Option<&mut Conn> {
        let LinkState::Up(conn) = &mut self.links[ts] else {
            return None;
        };
        if let Err(e) = conn.heard() {
            self.send_failed(ts, &e, inflight);
        }
        match &mut self.links[ts] {
            LinkState::Up(conn) => {
                self.closes[ts] = 0;
                Some(conn)
            }
            _ => None,
        }
    }

    /// Frees on each DNS connection the IDs of the queries no longer
    /// waiting (given up at their deadline).
    pub(super) fn free_ids<T>(&mut self, inflight: &Queries<T>) {
        for link in &mut self.links {
            if let LinkState::Up(Conn {
                upstream: Some(upstream),
                ..
            }) = link
            {
                upstream.retain(|&seq| inflight.is_waiting(seq));
            }
        }
    }

    /// Closes every link, and returns their threads for the caller to join
    /// once it no longer holds the lock.
    pub(super) fn close_links(&mut self) -> Vec<LinkThread> {
        self.closed = true;
        // Closing first, so that the link threads do not take the ends of
        // their connections for news about the TSes.
        for thread in &self.threads {
            thread.begin_close();
        }
        for link in &self.links {
            if let LinkState::Up(conn) = link {
                let _ = conn.writer.get_ref().shutdown(Direction::Both);
            }
        }
        std::mem::take(&mut self.threads)
    }
}
