//! The fan-out engine of one client session: its links to every TS, the
//! queries in flight, and the matching of TS replies to them.
//!
//! The engine knows nothing of how queries arrive or where replies go: a
//! front end [`submit`](Engine::submit)s queries, feeds it the [`Event`]s of
//! its channel, calls [`expire`](Engine::expire) and
//! [`maintain_links`](Engine::maintain_links) when
//! [`next_wakeup`](Engine::next_wakeup) comes, and takes finished replies, in
//! submission order, from [`pop_ready`](Engine::pop_ready).
//!
//! Matching: each query has a bit per TS it was sent to and a bit per TS that
//! replied to it. A reply from TS `t` for name `n` belongs to the oldest query
//! in flight for `n` that `t` was asked and has not yet replied to (a TS
//! answers its queries in order). If that query is already answered, the reply
//! is a second answer and is dropped; if there is none, the reply is late or
//! unasked and is dropped. Queries time out in submission order, since they
//! share one timeout, so the oldest unanswered query has the earliest deadline.

use std::collections::{HashMap, VecDeque};
use std::io::{BufWriter, Write};
use std::net::{Shutdown as Direction, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};

use super::health::{PROBE_IN_USE, RECHECK};
use super::link::{self, Event, LinkHandle, LinkOptions, LinkThread};
use super::{BUSY_REPLY, Shared};
use crate::framing::{Frame, write_message};
use crate::log;
use crate::wire::{self, Query, Reply};

/// Events buffered per session before link threads wait for the session: a TS
/// that floods replies is slowed down, not buffered without bound. A bounded
/// channel allocates its slots up front, so this is per-client memory.
const EVENT_QUEUE: usize = 256;

/// Most TSes one LS forwards to (a query keeps one bit per TS).
pub const MAX_BACKENDS: usize = 64;

/// How a query ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// TS number `ts` answered.
    Answered { ts: usize },
    /// No TS answered before the deadline.
    TimedOut,
    /// Every TS asked answered `NOT FOUND` or went down.
    NotFound,
    /// No TS was up to ask.
    AllDown,
    /// The query was not a valid hostname.
    Invalid,
    /// No TS answered, and a TS could not be asked for want of the LS's own
    /// descriptors or threads: the LS cannot tell it is a miss.
    Busy,
}

/// One query in flight.
struct Pending {
    /// `None` for an invalid query, whose reply is known at once.
    query: Option<Query>,
    started: Instant,
    deadline: Instant,
    /// TSes the query was sent (or queued for a connecting link) to.
    asked: u64,
    /// TSes that replied to it, positively or not.
    replied: u64,
    /// TSes that replied `NOT FOUND`.
    denied: u64,
    /// TSes that could not be asked for want of the LS's own resources.
    starved: u64,
    /// Set once the query has its reply.
    done: Option<(Outcome, String)>,
}

impl Pending {
    fn waiting_on(&self) -> u64 {
        self.asked & !self.replied
    }
}

enum LinkState {
    Up {
        generation: u64,
        writer: BufWriter<TcpStream>,
        dirty: bool,
        handle: LinkHandle,
    },
    Connecting {
        generation: u64,
        handle: LinkHandle,
    },
    Down {
        check_at: Instant,
    },
}

/// One client session's fan-out to every TS.
pub struct Engine {
    shared: Arc<Shared>,
    links: Vec<LinkState>,
    threads: Vec<LinkThread>,
    next_generation: u64,
    events_tx: Sender<Event>,
    events: Receiver<Event>,
    inflight: VecDeque<Pending>,
    /// Sequence number of `inflight[0]`.
    first_seq: u64,
    /// Sequence numbers in flight per lookup key, oldest first.
    by_key: HashMap<String, VecDeque<u64>>,
    /// When the client last sent a query.
    last_submit: Instant,
    /// Links down for want of the LS's own descriptors or threads (not the
    /// TS's fault): a query that cannot be sent on one is not a miss.
    starved: u64,
}

impl Engine {
    /// A session that starts connecting to every TS the shared health allows.
    pub(super) fn new(shared: Arc<Shared>) -> Engine {
        let (events_tx, events) = crossbeam_channel::bounded(EVENT_QUEUE);
        let now = Instant::now();
        let links = shared
            .backends
            .iter()
            .map(|_| LinkState::Down { check_at: now })
            .collect();
        let mut engine = Engine {
            shared,
            links,
            threads: Vec::new(),
            next_generation: 0,
            events_tx,
            events,
            inflight: VecDeque::new(),
            first_seq: 0,
            by_key: HashMap::new(),
            last_submit: now,
            starved: 0,
        };
        engine.maintain_links(now);
        engine
    }

    /// The channel the front end waits on and passes to [`handle`](Self::handle).
    pub fn events(&self) -> &Receiver<Event> {
        &self.events
    }

    /// Queries submitted and not yet taken by [`pop_ready`](Self::pop_ready).
    pub fn in_flight(&self) -> usize {
        self.inflight.len()
    }

    /// Adds a query (or, for an invalid one, its error) at the end of the line.
    pub fn submit(&mut self, query: Result<Query, wire::QueryError>) {
        let now = Instant::now();
        self.last_submit = now;
        self.shared.stats.queries.fetch_add(1, Ordering::Relaxed);
        let mut pending = Pending {
            query: None,
            started: now,
            deadline: now + self.shared.options.timeout,
            asked: 0,
            replied: 0,
            denied: 0,
            starved: 0,
            done: None,
        };
        let query = match query {
            Ok(query) => query,
            Err(e) => {
                log::info(format_args!("ls: invalid query: {e}"));
                pending.done = Some((Outcome::Invalid, e.reply()));
                self.record(&pending);
                self.inflight.push_back(pending);
                return;
            }
        };
        for ts in 0..self.links.len() {
            let asked = match &mut self.links[ts] {
                LinkState::Up { writer, dirty, .. } => {
                    *dirty = true;
                    match write_message(
                        writer,
                        query.name.as_bytes(),
                        self.shared.options.ts_framing,
                    ) {
                        Ok(()) => true,
                        Err(e) => {
                            self.link_failed(ts, &format!("send failed: {e}"));
                            false
                        }
                    }
                }
                // Sent when the link comes up.
                LinkState::Connecting { .. } => true,
                LinkState::Down { .. } => {
                    pending.starved |= self.starved & (1 << ts);
                    false
                }
            };
            if asked {
                pending.asked |= 1 << ts;
            }
        }
        let seq = self.first_seq + self.inflight.len() as u64;
        self.by_key
            .entry(query.key.clone())
            .or_default()
            .push_back(seq);
        pending.query = Some(query);
        self.inflight.push_back(pending);
        self.settle_if_nobody_left(seq);
    }

    /// Acts on one event from the channel.
    pub fn handle(&mut self, event: Event) {
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
                        Some(stream) => self.link_up(ts, generation, stream, handle),
                        None => self.link_down(ts, "connection already closed"),
                    }
                }
            }
            Event::Reply {
                ts,
                generation,
                frame,
            } => {
                if matches!(self.links[ts], LinkState::Up { generation: g, .. } if g == generation)
                {
                    self.reply(ts, frame);
                }
            }
            Event::Down {
                ts,
                generation,
                why,
            } => {
                let current = match self.links[ts] {
                    LinkState::Up { generation: g, .. }
                    | LinkState::Connecting { generation: g, .. } => g == generation,
                    LinkState::Down { .. } => false,
                };
                if current {
                    self.link_down(ts, &why);
                }
            }
            Event::Starved {
                ts,
                generation,
                why,
            } => {
                if matches!(self.links[ts], LinkState::Connecting { generation: g, .. } if g == generation)
                {
                    self.link_starved(ts, &why);
                }
            }
        }
    }

    /// Times out every query whose deadline is not after `now`.
    pub fn expire(&mut self, now: Instant) {
        for index in 0..self.inflight.len() {
            let pending = &self.inflight[index];
            if pending.deadline > now {
                break;
            }
            if pending.done.is_none() {
                self.settle(index, Outcome::TimedOut, None);
            }
        }
    }

    /// Starts connecting the links that are down, where the shared health
    /// allows it now.
    pub fn maintain_links(&mut self, now: Instant) {
        let in_use = !self.inflight.is_empty() || now < self.last_submit + PROBE_IN_USE;
        for ts in 0..self.links.len() {
            let LinkState::Down { check_at } = self.links[ts] else {
                continue;
            };
            if check_at > now {
                continue;
            }
            let health = &self.shared.health[ts];
            let Some(attempt) = health.begin_attempt(now, in_use) else {
                // Down by the shared record: a miss is the TS's, not a shortage.
                self.starved &= !(1 << ts);
                self.links[ts] = LinkState::Down {
                    check_at: health.next_check(now),
                };
                continue;
            };
            let generation = self.next_generation;
            self.next_generation += 1;
            let options = LinkOptions {
                write_timeout: self.shared.options.timeout,
                framing: self.shared.options.ts_framing,
            };
            let spawned = link::spawn(
                ts,
                generation,
                &self.shared.backends[ts],
                Arc::clone(health),
                attempt,
                options,
                self.events_tx.clone(),
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
                    self.link_starved(ts, &format!("cannot start a link thread: {e}"));
                }
            }
        }
    }

    /// When the front end must call [`expire`](Self::expire) and
    /// [`maintain_links`](Self::maintain_links) next, if ever.
    pub fn next_wakeup(&self) -> Option<Instant> {
        let deadline = self
            .inflight
            .iter()
            .find(|p| p.done.is_none())
            .map(|p| p.deadline);
        let recheck = self
            .links
            .iter()
            .filter_map(|link| match link {
                LinkState::Down { check_at } => Some(*check_at),
                _ => None,
            })
            .min();
        match (deadline, recheck) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The oldest query's reply, once it has one.
    pub fn pop_ready(&mut self) -> Option<String> {
        self.inflight.front()?.done.as_ref()?;
        let pending = self.inflight.pop_front()?;
        self.first_seq += 1;
        if let Some(query) = &pending.query
            && let Some(seqs) = self.by_key.get_mut(&query.key)
        {
            seqs.pop_front();
            if seqs.is_empty() {
                self.by_key.remove(&query.key);
            }
        }
        pending.done.map(|(_, text)| text)
    }

    /// Sends the queries buffered for each TS.
    pub fn flush_links(&mut self) {
        for ts in 0..self.links.len() {
            if let LinkState::Up { writer, dirty, .. } = &mut self.links[ts]
                && *dirty
            {
                *dirty = false;
                if let Err(e) = writer.flush() {
                    self.link_failed(ts, &format!("send failed: {e}"));
                }
            }
        }
    }

    fn link_up(&mut self, ts: usize, generation: u64, stream: TcpStream, handle: LinkHandle) {
        self.starved &= !(1 << ts);
        let mut writer = BufWriter::new(stream);
        // Queries submitted while the link was connecting; those settled
        // meanwhile are not sent, and no longer count as asked.
        let framing = self.shared.options.ts_framing;
        let bit = 1 << ts;
        let mut result = Ok(());
        for pending in &mut self.inflight {
            if pending.asked & bit == 0 {
                continue;
            }
            match (&pending.done, &pending.query) {
                (None, Some(query)) => {
                    result = result
                        .and_then(|()| write_message(&mut writer, query.name.as_bytes(), framing));
                }
                _ => pending.asked &= !bit,
            }
        }
        self.links[ts] = LinkState::Up {
            generation,
            writer,
            dirty: true,
            handle,
        };
        if let Err(e) = result {
            self.link_failed(ts, &format!("send failed: {e}"));
        }
    }

    /// A write to TS `ts` failed (it stopped reading, or the connection
    /// broke): this session's connection is no use any more. Only this
    /// session gives it up; the link thread reports nothing more, and a
    /// broken connection is news for the TS's health only if the other
    /// sessions see it too.
    fn link_failed(&mut self, ts: usize, why: &str) {
        if let LinkState::Up { handle, .. } = &self.links[ts] {
            handle.close();
        }
        self.link_down(ts, why);
    }

    fn link_down(&mut self, ts: usize, why: &str) {
        self.starved &= !(1 << ts);
        if let LinkState::Up { writer, .. } = &self.links[ts] {
            let _ = writer.get_ref().shutdown(Direction::Both);
        }
        log::info(format_args!(
            "ls: session lost {}: {why}",
            self.shared.backends[ts]
        ));
        let now = Instant::now();
        self.links[ts] = LinkState::Down {
            check_at: self.shared.health[ts].next_check(now),
        };
        // Nothing more will come from this connection: no query waits on it,
        // answered or not, so the next connection's replies match only the
        // queries sent on it. (`denied` stays: it tells NOT FOUND from down.)
        let bit = 1 << ts;
        for index in 0..self.inflight.len() {
            let pending = &mut self.inflight[index];
            let was_waiting = pending.waiting_on() & bit != 0;
            pending.asked &= !bit;
            pending.replied &= !bit;
            if was_waiting {
                self.settle_if_nobody_left(self.first_seq + index as u64);
            }
        }
    }

    /// The link to TS `ts` could not be made for want of the LS's own
    /// descriptors or threads. The TS's shared health is left alone; this
    /// session tries again after a pause, and the queries that were waiting
    /// on it cannot end as misses.
    fn link_starved(&mut self, ts: usize, why: &str) {
        log::info(format_args!(
            "ls: a session cannot reach {}: {why} (the LS is short of resources; the TS is not marked down)",
            self.shared.backends[ts]
        ));
        let bit = 1 << ts;
        self.starved |= bit;
        self.links[ts] = LinkState::Down {
            check_at: Instant::now() + RECHECK,
        };
        for index in 0..self.inflight.len() {
            let pending = &mut self.inflight[index];
            if pending.waiting_on() & bit != 0 {
                pending.asked &= !bit;
                pending.starved |= bit;
                self.settle_if_nobody_left(self.first_seq + index as u64);
            }
        }
    }

    fn reply(&mut self, ts: usize, frame: Frame) {
        let backend = &self.shared.backends[ts];
        let reply = match frame {
            Frame::TooLong => Err("an over-long line".to_string()),
            Frame::Message(bytes) => wire::parse_reply(&bytes)
                .map(|reply| (reply, bytes))
                .map_err(|e| e.to_string()),
        };
        let (reply, bytes) = match reply {
            Ok(parsed) => parsed,
            Err(why) => {
                self.shared
                    .stats
                    .dropped_replies
                    .fetch_add(1, Ordering::Relaxed);
                log::info(format_args!(
                    "ls: dropped an invalid reply from {backend}: {why}"
                ));
                return;
            }
        };
        let bit = 1 << ts;
        let key = wire::name_key(reply.name());
        let owner = self.by_key.get(&key).and_then(|seqs| {
            seqs.iter()
                .map(|seq| (seq - self.first_seq) as usize)
                .find(|&index| self.inflight[index].waiting_on() & bit != 0)
        });
        let Some(index) = owner else {
            if let Reply::NotFound(_) = reply {
                // The query was settled by another TS's answer and has left.
                return;
            }
            self.shared
                .stats
                .dropped_replies
                .fetch_add(1, Ordering::Relaxed);
            log::info(format_args!(
                "ls: dropped a reply from {backend} for {:?}: late, or for a name not asked",
                reply.name()
            ));
            return;
        };
        let pending = &mut self.inflight[index];
        pending.replied |= bit;
        if pending.done.is_some() {
            if let Reply::Answer(_) = reply {
                self.shared
                    .stats
                    .dropped_replies
                    .fetch_add(1, Ordering::Relaxed);
                log::info(format_args!(
                    "ls: dropped a second answer from {backend} for {:?}",
                    reply.name()
                ));
            }
            return;
        }
        match reply {
            Reply::Answer(_) => {
                // The bytes parsed as an answer, so they are UTF-8.
                let line = String::from_utf8_lossy(&bytes).trim().to_string();
                self.settle(index, Outcome::Answered { ts }, Some(line));
            }
            Reply::NotFound(_) => {
                pending.denied |= bit;
                self.settle_if_nobody_left(self.first_seq + index as u64);
            }
        }
    }

    /// Settles query `seq` as a miss when no TS it waits on is left.
    fn settle_if_nobody_left(&mut self, seq: u64) {
        let index = (seq - self.first_seq) as usize;
        let pending = &self.inflight[index];
        if pending.done.is_none() && pending.waiting_on() == 0 {
            let outcome = if pending.denied != 0 {
                Outcome::NotFound
            } else {
                Outcome::AllDown
            };
            self.settle(index, outcome, None);
        }
    }

    /// Gives query `index` its outcome and reply (the miss line when `line` is `None`).
    /// A miss on a query some TS could not be asked (the LS's own shortage)
    /// is [`Outcome::Busy`] instead, with the busy line.
    fn settle(&mut self, index: usize, outcome: Outcome, line: Option<String>) {
        let dialect = self.shared.options.dialect;
        let pending = &mut self.inflight[index];
        let name = pending.query.as_ref().map_or("", |q| q.name.as_str());
        let miss = matches!(
            outcome,
            Outcome::TimedOut | Outcome::NotFound | Outcome::AllDown
        );
        let (outcome, line) = if miss && pending.starved != 0 {
            (Outcome::Busy, Some(BUSY_REPLY.to_string()))
        } else {
            (outcome, line)
        };
        let line = line.unwrap_or_else(|| wire::miss_line(name, dialect));
        pending.done = Some((outcome, line));
        let pending = &self.inflight[index];
        self.record(pending);
    }

    /// Counts a settled query and logs it with `-v`: the spec's "track which TS responded".
    fn record(&self, pending: &Pending) {
        let stats = &self.shared.stats;
        let Some((outcome, _)) = &pending.done else {
            return;
        };
        match outcome {
            // Release: a snapshot that sees the outcome sees its query counted.
            Outcome::Answered { ts } => stats.answered[*ts].fetch_add(1, Ordering::Release),
            Outcome::TimedOut => stats.timed_out.fetch_add(1, Ordering::Release),
            Outcome::NotFound => stats.not_found.fetch_add(1, Ordering::Release),
            Outcome::AllDown => stats.all_down.fetch_add(1, Ordering::Release),
            Outcome::Invalid => stats.invalid.fetch_add(1, Ordering::Release),
            Outcome::Busy => stats.busy.fetch_add(1, Ordering::Release),
        };
        if !log::verbose() {
            return;
        }
        let Some(query) = &pending.query else { return };
        let (name, ms) = (
            &query.name,
            pending.started.elapsed().as_secs_f64() * 1000.0,
        );
        match outcome {
            Outcome::Answered { ts } => {
                log::info(format_args!(
                    "ls: {name} answered by {} in {ms:.1} ms",
                    self.shared.backends[*ts]
                ));
            }
            Outcome::TimedOut => log::info(format_args!(
                "ls: {name} not found: no TS answered within {ms:.1} ms"
            )),
            Outcome::NotFound => log::info(format_args!(
                "ls: {name} not found: every TS said so ({ms:.1} ms)"
            )),
            Outcome::AllDown => log::info(format_args!(
                "ls: {name} not found: every TS is down ({ms:.1} ms)"
            )),
            Outcome::Busy => log::info(format_args!(
                "ls: {name} not answered: the LS could not ask every TS ({ms:.1} ms)"
            )),
            Outcome::Invalid => {}
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let abandoned = self.inflight.iter().filter(|p| p.done.is_none()).count();
        self.shared
            .stats
            .abandoned
            .fetch_add(abandoned as u64, Ordering::Release);
        // Closing first, so that the link threads do not take the ends of
        // their connections for news about the TSes.
        for thread in &self.threads {
            thread.begin_close();
        }
        for link in &self.links {
            if let LinkState::Up { writer, .. } = link {
                let _ = writer.get_ref().shutdown(Direction::Both);
            }
        }
        // Dropping the receiver frees any link thread blocked on a full queue.
        drop(std::mem::replace(
            &mut self.events,
            crossbeam_channel::never(),
        ));
        for thread in self.threads.drain(..) {
            thread.join();
        }
    }
}
