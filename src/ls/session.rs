//! One client session's fan-out: its connection to every TS and the queries
//! it has in flight.
//!
//! The session sits behind a mutex shared by the two threads that serve the
//! client (see `worker.rs`): the client reader [`submit`](Session::submit)s
//! each query and writes it to every TS itself, and the worker feeds the
//! session the news of its link threads ([`handle`](Session::handle)),
//! calls deadlines ([`expire`](Session::expire)) and takes the replies, in
//! order ([`pop_ready`](Session::pop_ready)). Which reply belongs to which
//! query is decided by [`InFlight`]; this module does the I/O around it.
//!
//! No call blocks for long while holding the lock: a write to a TS blocks at
//! most [`TS_WRITE_BOUND`], and writes to the client happen outside it.

use std::io::{self, BufWriter, Write};
use std::net::{Shutdown as Direction, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use super::event::Event;
use super::health::PROBE_IN_USE;
use super::inflight::{InFlight, Matched, Said, Settled};
use super::link::{self, LinkHandle, LinkOptions, LinkThread};
use super::setup::Shared;
use crate::framing::{Frame, Framing, is_timeout, write_message};
use crate::log;
use crate::sync::lock;
use crate::wire::{self, Query, QueryError, Reply};

/// Longest a session's write to a TS may block. A TS whose socket takes no
/// more queries for this long has stopped reading (hung, or cut off by the
/// network): it is given up at once instead of holding up the client and
/// its other TSes until the query deadline.
pub const TS_WRITE_BOUND: Duration = Duration::from_millis(20);

/// How long the LS leaves a bare TS (one message per `recv()`) to read a
/// query before sending it the next, unless it has replied meanwhile: two
/// queries that reach it before its read would arrive as one.
pub const BARE_READ_GAP: Duration = Duration::from_millis(5);

/// A session as its two threads share it, with the condition the client
/// reader waits on while the session has its fill of queries in flight
/// (the credits of its backpressure: the worker gives them back as replies
/// leave).
pub struct Locked {
    session: Mutex<Session>,
    room: Condvar,
}

impl Locked {
    pub fn new(session: Session) -> Locked {
        Locked {
            session: Mutex::new(session),
            room: Condvar::new(),
        }
    }

    /// The session.
    pub fn lock(&self) -> MutexGuard<'_, Session> {
        lock(&self.session)
    }

    /// The session, once it has room for one more query (or is closed).
    /// Queries written but not yet sent to the TSes go out before waiting.
    pub fn lock_with_room(&self) -> MutexGuard<'_, Session> {
        let mut session = self.lock();
        while session.is_full() && !session.is_closed() {
            session.flush_links();
            session = self.room.wait(session).unwrap_or_else(|e| e.into_inner());
        }
        session
    }

    /// Wakes the client reader if it waits for room.
    pub fn made_room(&self) {
        self.room.notify_one();
    }

    /// Wakes the client reader for good (the session is closed).
    pub fn wake_all(&self) {
        self.room.notify_all();
    }
}

/// Spacing of the queries written to a bare TS (see [`BARE_READ_GAP`]).
#[derive(Default)]
struct Pace {
    /// Until when the next query must wait: set by a write, cleared by a
    /// reply (the TS has read). Always `None` for line TSes.
    quiet_until: Option<Instant>,
    /// The query waiting for `quiet_until`.
    held: Option<u64>,
}

impl Pace {
    /// A query was written to the TS at `now`.
    fn wrote(&mut self, now: Instant, framing: Framing) {
        if framing == Framing::Bare {
            self.quiet_until = Some(now + BARE_READ_GAP);
        }
    }

    fn holds(&self, now: Instant) -> bool {
        self.quiet_until.is_some_and(|t| now < t)
    }
}

enum LinkState {
    Up {
        generation: u64,
        writer: BufWriter<TcpStream>,
        dirty: bool,
        handle: LinkHandle,
        pace: Pace,
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
pub struct Session {
    shared: Arc<Shared>,
    inflight: InFlight<String>,
    links: Vec<LinkState>,
    threads: Vec<LinkThread>,
    next_generation: u64,
    events: Sender<Event>,
    /// When the client last sent a query.
    last_submit: Instant,
    /// When the worker closed the session; `None` while it serves.
    closed: Option<Instant>,
    /// How the client delimits its messages, as its reader found out.
    client_framing: Framing,
}

impl Session {
    /// A session that starts connecting to every TS the shared health
    /// allows; its link threads report to `events`.
    pub(super) fn new(shared: Arc<Shared>, events: Sender<Event>) -> Session {
        let now = Instant::now();
        let links = shared
            .backends
            .iter()
            .map(|_| LinkState::Down { check_at: now })
            .collect();
        let mut session = Session {
            inflight: InFlight::new(shared.options.timeout),
            shared,
            links,
            threads: Vec::new(),
            next_generation: 0,
            events,
            last_submit: now,
            closed: None,
            client_framing: Framing::Line,
        };
        session.maintain_links(now);
        session
    }

    /// Queries submitted and not yet taken by [`pop_ready`](Self::pop_ready).
    pub fn in_flight(&self) -> usize {
        self.inflight.len()
    }

    fn is_full(&self) -> bool {
        self.inflight.len() >= self.shared.options.max_inflight
    }

    /// Since when the session is closed, if it is.
    pub fn closed_since(&self) -> Option<Instant> {
        self.closed
    }

    fn is_closed(&self) -> bool {
        self.closed.is_some()
    }

    /// When the client last sent a query.
    pub fn last_submit(&self) -> Instant {
        self.last_submit
    }

    /// How the client's replies are to be framed (its queries' framing).
    pub fn client_framing(&self) -> Framing {
        self.client_framing
    }

    /// Records the client's framing, once its reader has detected it.
    pub fn set_client_framing(&mut self, framing: Framing) {
        self.client_framing = framing;
    }

    /// The LS's counters.
    pub fn stats(&self) -> &super::stats::Stats {
        &self.shared.stats
    }

    /// Adds a query (or, for an invalid one, its error) at the end of the
    /// line and writes it to every TS that is up. Returns whether the worker
    /// must act now: the reply is ready at once, or a write was held back.
    pub fn submit(&mut self, query: Result<Query, QueryError>) -> bool {
        let now = Instant::now();
        self.last_submit = now;
        self.shared.stats.queries.fetch_add(1, Ordering::Relaxed);
        let query = match query {
            Ok(query) => query,
            Err(e) => {
                log::info(format_args!("ls: invalid query: {e}"));
                self.inflight.submit_invalid(e.reply(), (), now);
                return true;
            }
        };
        let framing = self.shared.options.ts_framing;
        let seq = self.inflight.next_seq();
        let mut asked = 0;
        let mut held = false;
        for ts in 0..self.links.len() {
            let sent = match &mut self.links[ts] {
                LinkState::Up { pace, .. } if pace.holds(now) => {
                    pace.held = Some(seq);
                    held = true;
                    Ok(())
                }
                LinkState::Up {
                    writer,
                    dirty,
                    pace,
                    ..
                } => {
                    *dirty = true;
                    pace.wrote(now, framing);
                    write_message(writer, query.name.as_bytes(), framing)
                }
                // Sent when the link comes up.
                LinkState::Connecting { .. } => Ok(()),
                LinkState::Down { .. } => continue,
            };
            match sent {
                Ok(()) => asked |= 1 << ts,
                Err(e) => self.send_failed(ts, &e),
            }
        }
        self.inflight
            .submit(&query.name, &query.key, asked, 0, (), now);
        held || asked == 0
    }

    /// Acts on one piece of news from a link thread (client events are the
    /// worker's).
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
            Event::Submitted | Event::ClientClosed | Event::ClientFailed(_) => {}
        }
    }

    /// Times out every query whose deadline is not after `now`. Handle every
    /// event already received first: a reply that arrived in time is then
    /// never turned into a miss.
    ///
    /// A TS known to answer misses (it has said `NOT FOUND`) that left a
    /// query unanswered past its deadline has stopped answering (hung, or
    /// cut off by the network with no reset): it is marked down like a TS
    /// whose connection failed.
    pub fn expire(&mut self, now: Instant) {
        let silent = self.inflight.expire(now);
        for ts in 0..self.links.len() {
            if silent & (1 << ts) != 0 && self.shared.health[ts].answers_misses() {
                self.link_stalled(
                    ts,
                    "left a query unanswered past its deadline, though it answers misses",
                );
            }
        }
    }

    /// Moves every deadline `by` later: the session could not take replies
    /// for that long (its client was not reading), and time in which the
    /// LS could not listen does not count against the TSes.
    pub fn postpone_deadlines(&mut self, by: Duration) {
        self.inflight.postpone(by);
    }

    /// Starts connecting the links that are down, where the shared health
    /// allows it now, and sends the queries held back for bare TSes.
    pub fn maintain_links(&mut self, now: Instant) {
        self.release_held(now);
        let in_use = !self.inflight.is_empty() || now < self.last_submit + PROBE_IN_USE;
        for ts in 0..self.links.len() {
            let LinkState::Down { check_at } = self.links[ts] else {
                continue;
            };
            if check_at > now || self.is_closed() {
                continue;
            }
            let health = &self.shared.health[ts];
            let Some(attempt) = health.begin_attempt(now, in_use) else {
                self.links[ts] = LinkState::Down {
                    check_at: health.next_check(now),
                };
                continue;
            };
            let generation = self.next_generation;
            self.next_generation += 1;
            let options = LinkOptions {
                write_timeout: TS_WRITE_BOUND,
                framing: self.shared.options.ts_framing,
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
                    log::warn(format_args!("ls: cannot start a link thread: {e}"));
                    health.failed(Some(attempt), "no thread to connect with");
                    self.links[ts] = LinkState::Down {
                        check_at: health.next_check(now),
                    };
                }
            }
        }
    }

    /// Writes the queries held back for bare TSes whose gap has passed; a
    /// query settled meanwhile is not sent and no longer counts as asked.
    fn release_held(&mut self, now: Instant) {
        let framing = self.shared.options.ts_framing;
        for ts in 0..self.links.len() {
            let LinkState::Up {
                writer,
                dirty,
                pace,
                ..
            } = &mut self.links[ts]
            else {
                continue;
            };
            if pace.holds(now) {
                continue;
            }
            let Some(seq) = pace.held.take() else {
                continue;
            };
            let Some(name) = self.inflight.waiting_for(seq, ts) else {
                self.inflight.unask(seq, ts);
                continue;
            };
            *dirty = true;
            pace.wrote(now, framing);
            if let Err(e) = write_message(writer, name.as_bytes(), framing) {
                self.send_failed(ts, &e);
            }
        }
    }

    /// When the worker must call [`expire`](Self::expire) and
    /// [`maintain_links`](Self::maintain_links) next, if ever.
    pub fn next_wakeup(&self) -> Option<Instant> {
        let recheck = self.links.iter().filter_map(|link| match link {
            LinkState::Down { check_at } => Some(*check_at),
            LinkState::Up {
                pace:
                    Pace {
                        quiet_until,
                        held: Some(_),
                    },
                ..
            } => *quiet_until,
            _ => None,
        });
        recheck.chain(self.inflight.next_deadline()).min()
    }

    /// The oldest query's reply, once it has one. The caller counts it
    /// ([`Stats::count`](super::stats::Stats::count)) once the reply has reached
    /// the client; a reply that never does is abandoned.
    pub fn pop_ready(&mut self) -> Option<Settled<String>> {
        self.inflight.pop_ready()
    }

    /// Sends the queries buffered for each TS.
    pub fn flush_links(&mut self) {
        for ts in 0..self.links.len() {
            if let LinkState::Up { writer, dirty, .. } = &mut self.links[ts]
                && *dirty
            {
                *dirty = false;
                if let Err(e) = writer.flush() {
                    self.send_failed(ts, &e);
                }
            }
        }
    }

    /// Ends the session: the queries still in flight (settled or not) are
    /// counted as abandoned, every TS connection is closed, and the link
    /// threads are returned for the caller to join once it no longer holds
    /// the lock. Later submissions are the caller's to count.
    pub fn close(&mut self) -> Vec<LinkThread> {
        self.closed = Some(Instant::now());
        // Settled or not, these replies never reached the client.
        let abandoned = self.inflight.clear() as u64;
        self.shared
            .stats
            .abandoned
            .fetch_add(abandoned, Ordering::Relaxed);
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
        std::mem::take(&mut self.threads)
    }

    fn link_up(&mut self, ts: usize, generation: u64, stream: TcpStream, handle: LinkHandle) {
        let mut writer = BufWriter::new(stream);
        // Queries submitted while the link was connecting; those settled
        // meanwhile are not sent and no longer count as asked.
        let framing = self.shared.options.ts_framing;
        let mut result = Ok(());
        for seq in self.inflight.asked_of(ts) {
            if let Some(name) = self.inflight.waiting_for(seq, ts) {
                result = result.and_then(|()| write_message(&mut writer, name.as_bytes(), framing));
            }
        }
        let mut pace = Pace::default();
        pace.wrote(Instant::now(), framing);
        self.links[ts] = LinkState::Up {
            generation,
            writer,
            dirty: true,
            handle,
            pace,
        };
        if let Err(e) = result {
            self.send_failed(ts, &e);
        }
    }

    /// A write to TS `ts` failed. One that timed out means the TS stopped
    /// reading: that is news for the whole LS (every session would block on
    /// it in turn), so the shared record marks it down. Any other failure is
    /// this session's connection only.
    fn send_failed(&mut self, ts: usize, e: &io::Error) {
        if is_timeout(e) {
            self.link_stalled(
                ts,
                &format!(
                    "stopped reading queries (a write did not complete within {TS_WRITE_BOUND:?})"
                ),
            );
        } else {
            self.link_failed(ts, &format!("send failed: {e}"));
        }
    }

    /// TS `ts` is unavailable although its connection may look open: marked
    /// down for every session, and this session's connection is given up.
    fn link_stalled(&mut self, ts: usize, why: &str) {
        self.shared.health[ts].failed(None, why);
        self.link_failed(ts, why);
    }

    /// This session's connection to TS `ts` is no use any more (a write
    /// failed, or the TS stalled): it is given up, connecting or not. The
    /// link thread reports nothing more; a broken connection is news for the
    /// TS's health only if the other sessions see it too.
    fn link_failed(&mut self, ts: usize, why: &str) {
        if let LinkState::Up { handle, .. } | LinkState::Connecting { handle, .. } = &self.links[ts]
        {
            handle.close();
        }
        self.link_down(ts, why);
    }

    fn link_down(&mut self, ts: usize, why: &str) {
        if let LinkState::Up { writer, .. } = &self.links[ts] {
            let _ = writer.get_ref().shutdown(Direction::Both);
        }
        log::info(format_args!(
            "ls: session lost {}: {why}",
            self.shared.backends[ts]
        ));
        self.links[ts] = LinkState::Down {
            check_at: self.shared.health[ts].next_check(Instant::now()),
        };
        self.inflight.forget_ts(ts, Instant::now());
    }

    fn reply(&mut self, ts: usize, frame: Frame) {
        let backend = &self.shared.backends[ts];
        let parsed = match frame {
            Frame::TooLong => Err("an over-long line".to_string()),
            Frame::Message(bytes) => wire::parse_reply(&bytes)
                .map(|reply| (reply, bytes))
                .map_err(|e| e.to_string()),
        };
        let (reply, bytes) = match parsed {
            Ok(parsed) => parsed,
            Err(why) => {
                self.count_dropped();
                log::info(format_args!(
                    "ls: dropped an invalid reply from {backend}: {why}"
                ));
                return;
            }
        };
        if let LinkState::Up { pace, .. } = &mut self.links[ts] {
            // The TS has read what it was sent.
            pace.quiet_until = None;
        }
        let key = wire::name_key(reply.name());
        let said = match reply {
            // The bytes parsed as an answer, so they are UTF-8.
            Reply::Answer(_) => Said::Answer(String::from_utf8_lossy(&bytes).trim().to_string()),
            Reply::NotFound(_) => {
                // From now on, silence from this TS means trouble, not a miss.
                self.shared.health[ts].learn_answers_misses();
                Said::NotFound
            }
        };
        let why = match self.inflight.reply(ts, &key, said, Instant::now()) {
            Matched::Answered(_) | Matched::Denied(_) | Matched::Stale => return,
            Matched::Second => "a second answer",
            Matched::Unmatched => "late, or for a name not asked",
        };
        self.count_dropped();
        log::info(format_args!(
            "ls: dropped a reply from {} for {key:?}: {why}",
            self.shared.backends[ts]
        ));
    }

    fn count_dropped(&self) {
        self.shared
            .stats
            .dropped_replies
            .fetch_add(1, Ordering::Relaxed);
    }
}
