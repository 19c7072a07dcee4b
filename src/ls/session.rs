//! One client session's fan-out: its connection to every TS and the queries
//! it has in flight.
//!
//! The session sits behind a mutex shared by the two threads that serve the
//! client (see `worker.rs`): the client reader [`submit`](Session::submit)s
//! each query and writes it to every TS itself, and the worker feeds the
//! session the news of its link threads ([`handle`](Session::handle)),
//! calls deadlines ([`expire`](Session::expire)) and takes the replies, in
//! the order the front end chose ([`pop_ready`](Session::pop_ready)).
//! Which reply belongs to which query is decided by [`InFlight`]; this
//! module does the I/O around it.
//!
//! No call blocks for long while holding the lock: a write to a TS blocks at
//! most [`TS_WRITE_BOUND`], and writes to the client happen outside it.

use std::collections::VecDeque;
use std::io::{self, BufWriter, Write};
use std::net::{Shutdown as Direction, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use super::course_dns;
use super::event::Event;
use super::health::{Health, PROBE_IN_USE, RECHECK};
use super::inflight::{InFlight, Matched, Outcome, Release, Said, Settled};
use super::link::{self, LinkHandle, LinkOptions, LinkThread, PROBE_DELAY};
use super::setup::Shared;
use super::setup::{CONNECT_TIMEOUT, TsProtocol};
use crate::dns::upstream::{self, Upstream};
use crate::dns::{Question, Resolution};
use crate::framing::{Frame, Framing, is_timeout, write_length_prefixed, write_message};
use crate::log;
use crate::sync::lock;
use crate::wire::{self, Reply};

/// Longest a session's write to a TS may block. A TS whose socket takes no
/// more queries for this long has stopped reading (hung, or cut off by the
/// network): it is given up at once instead of holding up the client and
/// its other TSes until the query deadline.
pub const TS_WRITE_BOUND: Duration = Duration::from_millis(20);

/// How long the LS leaves a bare TS (one message per `recv()`) to read a
/// query before sending it the next, unless it has replied meanwhile: two
/// queries that reach it before its read would arrive as one. It is paid
/// only after a query the TS stayed silent on (a miss), and a course
/// program on a busy machine may take tens of milliseconds to be scheduled.
pub const BARE_READ_GAP: Duration = Duration::from_millis(50);

/// What a session's TSes said, as its front end gets it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// A course TS's answer line, as it came (without line ending).
    Line(String),
    /// A DNS TS's answer (records, a referral, "the name exists without
    /// that type"), its NXDOMAIN for a miss, or the cache's answer.
    Dns(Resolution),
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
fn line_kept(question: &Question, line: &str) -> Option<Resolution> {
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

/// A query as a front end hands it to its session.
pub struct Request<T> {
    /// The name as the client asked it.
    pub name: String,
    /// What a course TS's reply for it is matched by: the name's key.
    pub key: String,
    /// What a DNS TS is asked; `None` for a name DNS cannot carry (a DNS
    /// TS is then not asked).
    pub question: Option<Question>,
    /// What the front end needs back with the reply (who asked, how).
    pub tag: T,
}

/// A query's tag inside the session: the front end's, and the question a
/// DNS TS is asked (for a link that comes up after the query).
struct Tagged<T> {
    question: Option<Question>,
    front: T,
}

/// A session as its two threads share it, with the condition the client
/// reader waits on while the session has its fill of queries in flight
/// (the credits of its backpressure: the worker gives them back as replies
/// leave).
pub struct Locked<T = ()> {
    session: Mutex<Session<T>>,
    room: Condvar,
}

impl<T> Locked<T> {
    pub fn new(session: Session<T>) -> Locked<T> {
        Locked {
            session: Mutex::new(session),
            room: Condvar::new(),
        }
    }

    /// The session.
    pub fn lock(&self) -> MutexGuard<'_, Session<T>> {
        lock(&self.session)
    }

    /// The session, once it has room for one more query (or is closed).
    /// Queries written but not yet sent to the TSes go out before waiting.
    pub fn lock_with_room(&self) -> MutexGuard<'_, Session<T>> {
        self.wait_for_room(self.lock())
    }

    /// `session` (locked), once it has room for one more query (or is
    /// closed); the lock is let go while waiting.
    pub fn wait_for_room<'a>(
        &'a self,
        mut session: MutexGuard<'a, Session<T>>,
    ) -> MutexGuard<'a, Session<T>> {
        while session.is_full() && !session.is_closed() {
            session.flush_links();
            session.reader_waits = true;
            session = self.room.wait(session).unwrap_or_else(|e| e.into_inner());
            session.reader_waits = false;
        }
        session
    }

    /// Wakes the client reader; call it after taking replies from a session
    /// whose [`reader_waits`](Session::reader_waits) (a wake-up nobody waits
    /// for still costs a system call).
    pub fn made_room(&self) {
        self.room.notify_one();
    }

    /// Wakes the client reader for good (the session is closed).
    pub fn wake_all(&self) {
        self.room.notify_all();
    }
}

/// Spacing of the queries written to a bare TS (see [`BARE_READ_GAP`]), or
/// to a TS whose framing is not known yet (see [`PROBE_DELAY`]).
#[derive(Default)]
struct Pace {
    /// Until when the next query must wait: set by a write, cleared by a
    /// reply (the TS has read). Always `None` for line TSes.
    quiet_until: Option<Instant>,
    /// When the query last written without newline gets its newline, if
    /// no reply came by then (framing not known yet).
    probe_at: Option<Instant>,
    /// The queries waiting for `quiet_until`, oldest first.
    held: VecDeque<u64>,
}

impl Pace {
    /// A query was written to the TS at `now`.
    fn wrote(&mut self, now: Instant, framing: Framing) {
        match framing {
            Framing::Line => {}
            Framing::Bare => self.quiet_until = Some(now + BARE_READ_GAP),
            Framing::Auto => {
                // The next query waits for this one's newline, and a gap.
                self.probe_at = Some(now + PROBE_DELAY);
                self.quiet_until = self.probe_at;
            }
        }
    }

    fn holds(&self, now: Instant) -> bool {
        self.quiet_until.is_some_and(|t| now < t)
    }
}

/// A link that is up: where this session writes to the TS.
struct Conn {
    generation: u64,
    /// How queries are written: `Auto` until the link has learnt the TS's
    /// framing (queries then go bare, each ended by a newline after
    /// [`PROBE_DELAY`] if no reply came).
    framing: Framing,
    /// The TS's shared record, where a framing learnt is kept.
    health: Arc<Health>,
    writer: BufWriter<TcpStream>,
    /// Written to since the last flush.
    dirty: bool,
    handle: LinkHandle,
    pace: Pace,
    /// The DNS queries in flight on the connection, by ID (DNS TSes only).
    upstream: Option<Upstream<u64>>,
}

impl Conn {
    /// Sends what was written.
    fn flush(&mut self) -> io::Result<()> {
        self.dirty = false;
        self.writer.flush()
    }

    /// Whether a query must wait in [`Pace::held`] rather than go now.
    fn must_hold(&self, now: Instant) -> bool {
        !self.pace.held.is_empty() || self.pace.holds(now)
    }

    /// Takes up what the link learnt of the TS's framing, while it is not
    /// known. A TS found to read lines gets at once the newline its last
    /// query still waits for, and no more spacing.
    fn take_learnt(&mut self) -> io::Result<()> {
        if self.framing != Framing::Auto {
            return Ok(());
        }
        self.framing = self.handle.learnt_framing();
        if self.framing != Framing::Auto {
            self.health.learn_framing(self.framing);
        }
        match self.framing {
            Framing::Line => {
                self.pace.quiet_until = None;
                if self.pace.probe_at.take().is_some() {
                    self.dirty = true;
                    self.writer.write_all(b"\n")?;
                }
            }
            Framing::Bare => self.pace.probe_at = None,
            Framing::Auto => {}
        }
        Ok(())
    }

    /// Ends the last query with its newline (see [`LinkHandle::probe`]); the
    /// next query then waits [`BARE_READ_GAP`], so that a bare TS reads the
    /// newline alone.
    fn send_probe(&mut self, now: Instant) -> io::Result<()> {
        self.pace.probe_at = None;
        let writer = &mut self.writer;
        let sent = self.handle.probe(|| {
            writer.write_all(b"\n")?;
            writer.flush()
        })?;
        self.dirty = false;
        self.pace.quiet_until = sent.then(|| now + BARE_READ_GAP);
        self.take_learnt()
    }

    /// Writes query `seq` to the TS: its name to a course TS, its question
    /// under a fresh ID to a DNS TS. `Ok(false)`: not sent (a DNS
    /// connection with every ID in use).
    fn send(&mut self, seq: u64, name: &str, question: Option<&Question>) -> io::Result<bool> {
        self.dirty = true;
        match &mut self.upstream {
            None => {
                self.take_learnt()?;
                let framing = self.framing;
                self.pace.wrote(Instant::now(), framing);
                let written = if framing == Framing::Line {
                    Framing::Line
                } else {
                    Framing::Bare
                };
                write_message(&mut self.writer, name.as_bytes(), written)?;
            }
            Some(upstream) => {
                let Some(Ok((_, query))) = question.map(|q| upstream.send(q, seq)) else {
                    return Ok(false);
                };
                write_length_prefixed(&mut self.writer, &query)?;
            }
        }
        Ok(true)
    }
}

enum LinkState {
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

/// One client session's fan-out to every TS. `T` is what the front end
/// tags each query with.
pub struct Session<T = ()> {
    shared: Arc<Shared>,
    inflight: InFlight<Answer, Tagged<T>>,
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
    /// The client reader waits for room.
    reader_waits: bool,
    /// Links down for want of the LS's own descriptors or threads (not the
    /// TS's fault): a query that cannot be sent on one is not a miss.
    starved: u64,
    /// Per TS, connections it closed with queries unanswered since it last
    /// replied.
    closes: Vec<u32>,
}

impl<T> Session<T> {
    /// A session that starts connecting to every TS the shared health
    /// allows, whose queries wait `timeout` and leave in `release` order;
    /// its link threads report to `events`.
    pub(super) fn new(
        shared: Arc<Shared>,
        timeout: Duration,
        release: Release,
        events: Sender<Event>,
    ) -> Session<T> {
        let now = Instant::now();
        let shared_backends = shared.backends.len();
        let links = shared
            .backends
            .iter()
            .map(|_| LinkState::Down { check_at: now })
            .collect();
        let mut session = Session {
            inflight: InFlight::new(timeout, release),
            shared,
            links,
            threads: Vec::new(),
            next_generation: 0,
            events,
            last_submit: now,
            closed: None,
            client_framing: Framing::Line,
            reader_waits: false,
            starved: 0,
            closes: vec![0; shared_backends],
        };
        session.maintain_links(now);
        session
    }

    /// Queries submitted and not yet taken by [`pop_ready`](Self::pop_ready).
    pub fn in_flight(&self) -> usize {
        self.inflight.len()
    }

    /// Whether the session holds its fill of queries (`--max-inflight`).
    pub fn is_full(&self) -> bool {
        self.inflight.len() >= self.shared.options.max_inflight
    }

    /// Since when the session is closed, if it is.
    pub fn closed_since(&self) -> Option<Instant> {
        self.closed
    }

    fn is_closed(&self) -> bool {
        self.closed.is_some()
    }

    /// How long each of this session's queries waits for an answer.
    pub fn timeout(&self) -> Duration {
        self.inflight.timeout()
    }

    /// Whether the client reader waits for room (see [`Locked::made_room`]).
    pub fn reader_waits(&self) -> bool {
        self.reader_waits
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

    /// Adds a query at the end of the line and writes it to every TS that
    /// is up. Returns whether the worker must act now: the reply is ready at
    /// once (no TS to ask), a write was held back, or a newline is due
    /// after a bare write.
    pub fn submit(&mut self, request: Request<T>) -> bool {
        let now = Instant::now();
        self.last_submit = now;
        self.shared.stats.queries.fetch_add(1, Ordering::Relaxed);
        let seq = self.inflight.next_seq();
        let mut asked = 0;
        let mut failed = Vec::new();
        let mut starved = 0;
        let mut held = false;
        for ts in 0..self.links.len() {
            if matches!(self.links[ts], LinkState::Idle) {
                self.connect(ts, now);
            }
            let sent = match &mut self.links[ts] {
                LinkState::Up(conn) if conn.must_hold(now) => {
                    conn.pace.held.push_back(seq);
                    held = true;
                    Ok(true)
                }
                LinkState::Up(conn) => {
                    let sent = conn.send(seq, &request.name, request.question.as_ref());
                    // The newline that may follow it is the worker's to send.
                    held |= conn.pace.probe_at.is_some();
                    sent
                }
                // Sent when the link comes up.
                LinkState::Connecting { .. } => Ok(true),
                LinkState::Down { .. } | LinkState::Idle => {
                    starved |= self.starved & (1 << ts);
                    Ok(false)
                }
            };
            match sent {
                Ok(true) => asked |= 1 << ts,
                Ok(false) => {}
                // Asked all the same: a connection the TS closed under the
                // write is replaced and the query sent again (see
                // `send_failed`), once the query is in flight.
                Err(e) => {
                    asked |= 1 << ts;
                    failed.push((ts, e));
                }
            }
        }
        let tag = Tagged {
            question: request.question,
            front: request.tag,
        };
        self.inflight
            .submit(&request.name, &request.key, asked, starved, tag, now);
        self.shared.stats.count_asked(asked);
        for (ts, e) in failed {
            self.send_failed(ts, &e);
        }
        held || asked == 0
    }

    /// Adds a query whose reply the front end already made (`Invalid`: an
    /// error reply; `Cached`: an answer from the cache): it leaves in its
    /// turn.
    pub fn submit_made(
        &mut self,
        outcome: Outcome,
        reply: Answer,
        question: Option<Question>,
        tag: T,
    ) -> bool {
        self.last_submit = Instant::now();
        self.shared.stats.queries.fetch_add(1, Ordering::Relaxed);
        let tag = Tagged {
            question,
            front: tag,
        };
        self.inflight
            .submit_settled("", outcome, reply, tag, self.last_submit);
        true
    }

    /// The cache's answer to `question`, TTLs counted down, if it has one
    /// (see [`cached_outcome`] for how it counts).
    pub fn cached(&self, question: &Question) -> Option<Resolution> {
        self.shared.cache.as_ref()?.get(question, Instant::now())
    }

    /// Adds a query for `name` (as the client spelt it) answered from the
    /// cache with `hit`: it leaves in its turn, its reply made as a TS's
    /// answer or miss would be.
    pub fn submit_cached(
        &mut self,
        name: &str,
        hit: Resolution,
        question: Question,
        tag: T,
    ) -> bool {
        self.last_submit = Instant::now();
        self.shared.stats.queries.fetch_add(1, Ordering::Relaxed);
        let tag = Tagged {
            question: Some(question),
            front: tag,
        };
        let outcome = cached_outcome(&hit);
        self.inflight
            .submit_settled(name, outcome, Answer::Dns(hit), tag, self.last_submit);
        true
    }

    /// Keeps query `seq`'s answer in the cache (when there is one), once a
    /// reply has settled it: a TS's answer, or a miss every TS said (each
    /// said NXDOMAIN, `NOT FOUND` or REFUSED). A miss while some TS was
    /// down, not asked, silent or failing is answered but not kept: that
    /// TS may hold the name.
    fn keep(&self, seq: u64) {
        let Some(cache) = &self.shared.cache else {
            return;
        };
        let (
            Some((outcome, answer, heard)),
            Some(Tagged {
                question: Some(question),
                ..
            }),
        ) = (self.inflight.settled(seq), self.inflight.tag(seq))
        else {
            return;
        };
        let every_ts = ((1u128 << self.links.len()) - 1) as u64;
        let kept = match (outcome, answer) {
            (Outcome::Answered { .. }, Some(Answer::Dns(outcome))) => outcome.clone(),
            (Outcome::Answered { .. }, Some(Answer::Line(line))) => {
                let Some(outcome) = line_kept(question, line) else {
                    return;
                };
                outcome
            }
            (Outcome::NotFound, _) if heard & every_ts != every_ts => return,
            (Outcome::NotFound, Some(Answer::Dns(outcome))) => outcome.clone(),
            (Outcome::NotFound, _) => Resolution::nxdomain(),
            _ => return,
        };
        cache.insert(question, &kept, Instant::now());
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
                if matches!(&self.links[ts], LinkState::Up(conn) if conn.generation == generation) {
                    self.reply(ts, frame);
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
                    self.link_down(ts, &why);
                }
            }
            Event::Closed { ts, generation } => {
                if matches!(&self.links[ts], LinkState::Up(conn) if conn.generation == generation) {
                    self.link_closed(ts);
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
        let silent = self.shared.stats.expire(&mut self.inflight, now);
        if silent == 0 {
            return;
        }
        for link in &mut self.links {
            if let LinkState::Up(Conn {
                upstream: Some(upstream),
                ..
            }) = link
            {
                // The queries given up free their IDs on the connection.
                let inflight = &self.inflight;
                upstream.retain(|&seq| inflight.is_waiting(seq));
            }
        }
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
        for ts in 0..self.links.len() {
            let LinkState::Down { check_at } = self.links[ts] else {
                continue;
            };
            if check_at <= now && !self.is_closed() {
                self.connect(ts, now);
            }
        }
    }

    /// Starts connecting to TS `ts`, if the shared health allows it now.
    fn connect(&mut self, ts: usize, now: Instant) {
        let in_use = !self.inflight.is_empty() || now < self.last_submit + PROBE_IN_USE;
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
            self.inflight.timeout().max(CONNECT_TIMEOUT)
        };
        let options = LinkOptions {
            connect_timeout,
            write_timeout: TS_WRITE_BOUND,
            framing,
            protocol: self.shared.options.ts_protocol,
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
                self.link_starved(ts, &format!("cannot start a link thread: {e}"));
            }
        }
    }

    /// Sends the newlines due to queries sent bare to TSes whose framing is
    /// not known yet, and the queries held back whose gap has passed; a
    /// query settled meanwhile is not sent and no longer counts as asked.
    fn release_held(&mut self, now: Instant) {
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
                match (self.inflight.waiting_for(seq, ts), self.inflight.tag(seq)) {
                    (Some(name), Some(tag)) => {
                        result = conn.send(seq, name, tag.question.as_ref()).map(|_| ());
                    }
                    _ => self.inflight.unask(seq, ts),
                }
            }
            if result.is_ok() && conn.dirty {
                result = conn.flush();
            }
            if let Err(e) = result {
                self.send_failed(ts, &e);
            }
        }
    }

    /// When the worker must call [`expire`](Self::expire) and
    /// [`maintain_links`](Self::maintain_links) next, if ever.
    pub fn next_wakeup(&self) -> Option<Instant> {
        let recheck = self.links.iter().filter_map(|link| match link {
            LinkState::Down { check_at } => Some(*check_at),
            LinkState::Up(Conn { pace, .. }) => {
                let held = (!pace.held.is_empty()).then_some(pace.quiet_until);
                [pace.probe_at, held.flatten()].into_iter().flatten().min()
            }
            _ => None,
        });
        recheck.chain(self.inflight.next_deadline()).min()
    }

    /// The next reply ready, in the session's release order. The caller
    /// counts it ([`Stats::count`](super::stats::Stats::count)) once the
    /// reply has reached the client; a reply that never does is abandoned.
    pub fn pop_ready(&mut self) -> Option<Settled<Answer, T>> {
        let settled = self.inflight.pop_ready()?;
        self.shared.stats.count_took(&settled.outcome, settled.took);
        Some(Settled {
            name: settled.name,
            outcome: settled.outcome,
            answer: settled.answer,
            took: settled.took,
            tag: settled.tag.front,
        })
    }

    /// Sends the queries buffered for each TS.
    pub fn flush_links(&mut self) {
        for ts in 0..self.links.len() {
            if let LinkState::Up(conn) = &mut self.links[ts]
                && conn.dirty
                && let Err(e) = conn.flush()
            {
                self.send_failed(ts, &e);
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
            .fetch_add(abandoned, Ordering::Release);
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

    fn link_up(&mut self, ts: usize, generation: u64, stream: TcpStream, handle: LinkHandle) {
        self.starved &= !(1 << ts);
        let options = &self.shared.options;
        let upstream = (options.ts_protocol == TsProtocol::Dns).then(|| {
            let seed = stream.peer_addr().map_or(0, upstream::seed_for);
            Upstream::new(seed, options.max_inflight)
        });
        let framing = match options.ts_protocol {
            TsProtocol::Line => handle.learnt_framing(),
            TsProtocol::Dns => Framing::Line,
        };
        let mut conn = Conn {
            generation,
            framing,
            health: Arc::clone(&self.shared.health[ts]),
            writer: BufWriter::new(stream),
            dirty: false,
            handle,
            pace: Pace::default(),
            upstream,
        };
        // Queries submitted while the link was connecting (the first only,
        // to a TS that may read one message per recv(); the others are held
        // back); those settled meanwhile are not sent and no longer count
        // as asked.
        let mut result = Ok(true);
        let now = Instant::now();
        for seq in self.inflight.asked_of(ts) {
            if let (Some(name), Some(tag)) =
                (self.inflight.waiting_for(seq, ts), self.inflight.tag(seq))
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
            // Broken pipe, reset: the TS closed the connection, as it may
            // (an idle timeout, a restart).
            log::info(format_args!(
                "ls: session lost {}: send failed: {e}",
                self.shared.backends[ts]
            ));
            if let LinkState::Up(Conn { handle, .. }) = &self.links[ts] {
                handle.close();
            }
            self.link_closed(ts);
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
        match &self.links[ts] {
            LinkState::Up(Conn { handle, .. }) | LinkState::Connecting { handle, .. } => {
                handle.close();
            }
            LinkState::Down { .. } | LinkState::Idle => {}
        }
        self.link_down(ts, why);
    }

    /// TS `ts` closed this session's connection. With queries waiting on it,
    /// that is a fault (a crash, a restart): the TS is marked down. With
    /// none, it is a TS closing an idle connection: the session connects
    /// again at once, and the TS stays up for everyone.
    fn link_closed(&mut self, ts: usize) {
        let unanswered = !self.inflight.asked_of(ts).is_empty();
        if unanswered && self.closes[ts] > 0 {
            // Closed again before answering anything: not a TS to rely on.
            let why = "closed its connections with queries unanswered";
            self.shared.health[ts].failed(None, why);
            self.link_down(ts, why);
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
        if !self.is_closed() {
            self.connect(ts, now);
        }
    }

    /// The link to TS `ts` could not be made for want of the LS's own
    /// descriptors or threads. The TS's shared health is left alone; this
    /// session tries again after a pause, and the queries that were waiting
    /// on it cannot end as misses.
    fn link_starved(&mut self, ts: usize, why: &str) {
        log::warn(format_args!(
            "ls: a session cannot reach {}: {why} (the LS is short of resources; the TS is not marked down)",
            self.shared.backends[ts]
        ));
        self.starved |= 1 << ts;
        self.links[ts] = LinkState::Down {
            check_at: Instant::now() + RECHECK,
        };
        self.inflight.starve_ts(ts, Instant::now());
    }

    fn link_down(&mut self, ts: usize, why: &str) {
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
        self.inflight.forget_ts(ts, Instant::now());
    }

    fn reply(&mut self, ts: usize, frame: Frame) {
        let Frame::Message(bytes) = frame else {
            self.dropped(ts, "an over-long line");
            return;
        };
        let LinkState::Up(conn) = &mut self.links[ts] else {
            return;
        };
        // The TS has read what it was sent.
        conn.pace.quiet_until = None;
        if let Err(e) = conn.take_learnt() {
            self.send_failed(ts, &e);
        }
        let LinkState::Up(conn) = &mut self.links[ts] else {
            return;
        };
        self.closes[ts] = 0;
        if let Some(upstream) = &mut conn.upstream {
            match upstream.receive(&bytes) {
                Ok(matched) => {
                    let said = match matched.outcome {
                        outcome @ Resolution::NxDomain { .. } => {
                            Said::Negative(Answer::Dns(outcome))
                        }
                        Resolution::Refused => Said::Refused,
                        Resolution::ServFail => Said::Failed,
                        outcome => Said::Answer(Answer::Dns(outcome)),
                    };
                    // A DNS TS answers every query: its silence is a fault.
                    self.shared.health[ts].learn_answers_misses();
                    let name = matched.question.name.to_string();
                    self.settle_reply(ts, &name, |inflight, now| {
                        inflight.reply_to(matched.tag, ts, said, now)
                    });
                }
                Err(rejected) => self.dropped(ts, &rejected.to_string()),
            }
            return;
        }
        let reply = match wire::parse_reply(&bytes) {
            Ok(reply) => reply,
            Err(e) => {
                self.dropped(ts, &e.to_string());
                return;
            }
        };
        let key = wire::name_key(reply.name());
        let said = match reply {
            // The bytes parsed as an answer, so they are UTF-8.
            Reply::Found(_) => Said::Answer(Answer::Line(
                String::from_utf8_lossy(&bytes).trim().to_string(),
            )),
            Reply::NotFound(_) => {
                // From now on, silence from this TS means trouble, not a miss.
                self.shared.health[ts].learn_answers_misses();
                Said::NotFound
            }
        };
        self.settle_reply(ts, &key, |inflight, now| {
            inflight.reply(ts, &key, said, now)
        });
    }

    /// Hands a reply to the in-flight rules; counts and logs one they drop.
    fn settle_reply(
        &mut self,
        ts: usize,
        name: &str,
        apply: impl FnOnce(&mut InFlight<Answer, Tagged<T>>, Instant) -> Matched,
    ) {
        let why = match apply(&mut self.inflight, Instant::now()) {
            Matched::Answered(seq) | Matched::Denied(seq) => {
                self.keep(seq);
                return;
            }
            Matched::Stale => return,
            Matched::Second => "a second answer",
            Matched::Unmatched => "late, or for a name not asked",
        };
        self.dropped(ts, &format!("{why} ({name:?})"));
    }

    /// Counts and logs a TS reply that is dropped.
    fn dropped(&self, ts: usize, why: &str) {
        self.count_dropped();
        log::info(format_args!(
            "ls: dropped a reply from {}: {why}",
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
