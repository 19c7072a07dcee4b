//! One client session's fan-out: its connection to every TS and the queries
//! it has in flight.
//!
//! The session sits behind a mutex shared by the two threads that serve the
//! client (see `worker.rs`): the client reader [`submit`](Session::submit)s
//! each query and writes it to every TS itself, and the worker feeds the
//! session the news of its link threads ([`handle`](Session::handle)),
//! calls deadlines ([`expire`](Session::expire)) and takes the replies, in
//! the order the front end chose ([`pop_ready`](Session::pop_ready)).
//! Which reply belongs to which query is decided by [`InFlight`]; the
//! links to the TSes, their states and the writes on them are
//! [`links`]' (and [`conn`]'s, for a link that is up); what a reply says
//! is `decode`'s. This module ties them together: [`submit`](Session::submit)
//! is where a query's TSes are chosen.
//!
//! No call blocks for long while holding the lock: a write to a TS blocks at
//! most [`TS_WRITE_BOUND`], and writes to the client happen outside it.

mod conn;
mod links;

pub use conn::BARE_READ_GAP;
pub use links::TS_WRITE_BOUND;

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use super::decode::{self, Relayed, cached_outcome, line_kept};
use super::event::Event;
use super::inflight::{Fit, InFlight, Outcome, Release, Said, Settled};
use super::link::LinkThread;
use super::setup::Shared;
use super::stats::Frontend;
use crate::dns::{Question, Resolution};
use crate::framing::Frame;
use crate::log;
use crate::sync::lock;
use crate::trace::{self, Lane, Query, Step, Tracer};
use links::{Asked, Links, Queries, Tagged, trace_step};

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
    /// Its trace, when the LS traces (`--trace`).
    pub trace: Option<Query>,
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

/// One client session's fan-out to every TS. `T` is what the front end
/// tags each query with.
pub struct Session<T = ()> {
    shared: Arc<Shared>,
    /// The front end whose queries it serves.
    front: Frontend,
    inflight: Queries<T>,
    links: Links,
    /// When the worker closed the session; `None` while it serves.
    closed: Option<Instant>,
    /// The client reader waits for room.
    reader_waits: bool,
    /// Queries sent to a member of a pool of several, by when the member
    /// must have answered (`--try-timeout`), earliest first.
    tries: VecDeque<Try>,
}

/// A query's try at one member of a pool.
struct Try {
    at: Instant,
    seq: u64,
    pool: usize,
    ts: usize,
    /// The members tried so far (bits by TS).
    tried: u64,
}

impl<T> Session<T> {
    /// A session that starts connecting to every TS the shared health
    /// allows, whose queries wait `timeout` and leave in `release` order;
    /// its link threads report to `events`; its queries are counted as
    /// `front`'s.
    pub(super) fn new(
        shared: Arc<Shared>,
        timeout: Duration,
        release: Release,
        events: Sender<Event>,
        front: Frontend,
    ) -> Session<T> {
        let now = Instant::now();
        let mut session = Session {
            inflight: InFlight::new(timeout, release),
            links: Links::new(Arc::clone(&shared), events, now),
            shared,
            front,
            closed: None,
            reader_waits: false,
            tries: VecDeque::new(),
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
        self.links.last_submit
    }

    /// The LS's counters.
    pub fn stats(&self) -> &super::stats::Stats {
        &self.shared.stats
    }

    /// Where the LS records each query's steps, when it traces (`--trace`).
    pub fn tracer(&self) -> Option<&Tracer> {
        self.shared.trace.as_ref()
    }

    /// Counts one message received from the session's client(s).
    pub fn count_query(&self) {
        self.shared.stats.count_query(self.front);
    }

    /// Adds a query at the end of the line and writes it to every TS that
    /// is up. Returns whether the worker must act now: the reply is ready at
    /// once (no TS to ask), a write was held back, a newline is due after a
    /// bare write, or the query is the session's only try at a pool's
    /// member (the worker's wait must end at its `--try-timeout`).
    pub fn submit(&mut self, request: Request<T>) -> bool {
        let now = Instant::now();
        self.links.last_submit = now;
        self.count_query();
        let seq = self.inflight.next_seq();
        let (mut asked, mut starved, mut due) = (0, 0, false);
        let mut failed = Vec::new();
        let mut pooled = 0u64;
        let shared = &self.shared;
        // Which TSes a query goes to: one member of each pool (a TS given
        // alone is a pool of one), the next the policy offers where a link
        // cannot take the query.
        let try_timeout = self.try_timeout();
        // The worker's wait, planned without a try, must end earlier now.
        let first_try = self.tries.is_empty();
        for (index, pool) in shared.pools.iter().enumerate() {
            let (mut tried, mut short) = (0u64, 0u64);
            while let Some(ts) = pool.choose(&request.name, tried, &shared.health, &shared.balance)
            {
                tried |= 1 << ts;
                let question = request.question.as_ref();
                match (self.links).ask(ts, seq, &request.name, question, now, &mut self.inflight) {
                    Asked::Yes { due: now_due } => {
                        asked |= 1 << ts;
                        due |= now_due;
                        trace::step(&shared.trace, &request.trace, Step::Send(ts));
                    }
                    Asked::No { starved: s } => {
                        short |= u64::from(s) << ts;
                        continue;
                    }
                    // Asked all the same: a connection the TS closed under
                    // the write is replaced and the query sent again (see
                    // `send_failed`), once the query is in flight.
                    Asked::Failed(e) => {
                        asked |= 1 << ts;
                        failed.push((ts, e));
                        trace::step(&shared.trace, &request.trace, Step::Send(ts));
                    }
                }
                if pool.is_replicated() {
                    pooled |= 1 << ts;
                    shared.balance.outstanding[ts].fetch_add(1, Ordering::Relaxed);
                    shared.balance.sent[ts].fetch_add(1, Ordering::Relaxed);
                    if let Some(after) = try_timeout {
                        self.tries.push_back(Try {
                            at: now + after,
                            seq,
                            pool: index,
                            ts,
                            tried,
                        });
                    }
                }
                short = 0;
                break;
            }
            // A member the LS could not ask for want of its own resources
            // makes the query's miss uncertain only if no member was asked.
            starved |= short;
        }
        let tag = Tagged {
            question: request.question,
            front: request.tag,
            pooled,
            trace: request.trace,
        };
        if let (Some(tracer), Some(query)) = (&shared.trace, &tag.trace) {
            // Its settling is timed from here (`took`).
            query.submitted(tracer.ns_at(now));
        }
        let seq = (self.inflight).submit(&request.name, &request.key, asked, starved, tag, now);
        self.trace_settled_at_once(seq);
        self.shared.stats.count_asked(asked);
        for (ts, e) in failed {
            self.links.send_failed(ts, &e, &mut self.inflight);
        }
        self.take_moved();
        due || asked == 0 || (first_try && !self.tries.is_empty())
    }

    /// Adds a query whose reply the front end already made (`Invalid`: an
    /// error reply; `Cached`: an answer from the cache): it leaves in its
    /// turn.
    pub fn submit_made(
        &mut self,
        outcome: Outcome,
        reply: Relayed,
        question: Option<Question>,
        tag: T,
        trace: Option<Query>,
    ) -> bool {
        self.links.last_submit = Instant::now();
        self.count_query();
        self.trace_settled_made(&trace, outcome);
        let tag = Tagged {
            question,
            front: tag,
            pooled: 0,
            trace,
        };
        self.inflight
            .submit_settled("", outcome, reply, tag, self.links.last_submit);
        true
    }

    /// The cache's answer to `question`, TTLs counted down, if it has one
    /// (see [`cached_outcome`] for how it counts); a `cache` step of
    /// `trace`.
    pub fn cached(&self, question: &Question, trace: &Option<Query>) -> Option<Resolution> {
        let hit = self.shared.cache.as_ref()?.get(question, Instant::now());
        let said = if hit.is_some() { "hit" } else { "miss" };
        trace::step(&self.shared.trace, trace, Step::Cache(said));
        hit
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
        trace: Option<Query>,
    ) -> bool {
        self.links.last_submit = Instant::now();
        self.count_query();
        let outcome = cached_outcome(&hit);
        self.trace_settled_made(&trace, outcome);
        let tag = Tagged {
            question: Some(question),
            front: tag,
            pooled: 0,
            trace,
        };
        self.inflight.submit_settled(
            name,
            outcome,
            Relayed::Dns(hit),
            tag,
            self.links.last_submit,
        );
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
        // Every pool must have said so: one member heard is the pool's word.
        let every_pool = self
            .shared
            .pools
            .iter()
            .all(|pool| pool.members.iter().any(|&ts| heard & (1 << ts) != 0));
        let kept = match (outcome, answer) {
            (Outcome::Answered { .. }, Some(Relayed::Dns(outcome))) => outcome.clone(),
            (Outcome::Answered { .. }, Some(Relayed::Line(line))) => {
                let Some(outcome) = line_kept(question, line) else {
                    return;
                };
                outcome
            }
            (Outcome::NotFound, _) if !every_pool => return,
            (Outcome::NotFound, Some(Relayed::Dns(outcome))) => outcome.clone(),
            (Outcome::NotFound, _) => Resolution::nxdomain(),
            _ => return,
        };
        cache.insert(question, &kept, Instant::now());
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
        self.fail_over(now);
        self.take_moved();
        if silent == 0 {
            return;
        }
        self.links.free_ids(&self.inflight);
        for ts in 0..self.links.len() {
            if silent & (1 << ts) != 0 && self.shared.health[ts].answers_misses() {
                self.links.link_stalled(
                    ts,
                    "left a query unanswered past its deadline, though it answers misses",
                    &mut self.inflight,
                );
            }
        }
        self.take_moved();
    }

    /// Times the tries of the queries the links moved to another member
    /// of their pool (a link went down).
    fn take_moved(&mut self) {
        if self.links.moved.is_empty() {
            return;
        }
        let now = Instant::now();
        for (seq, pool, ts, tried) in std::mem::take(&mut self.links.moved) {
            self.time_try(
                now,
                Try {
                    at: now,
                    seq,
                    pool,
                    ts,
                    tried,
                },
            );
        }
    }

    /// Starts timing `try_` (asked at `now`) against the try timeout, when
    /// that falls before the query's deadline.
    fn time_try(&mut self, now: Instant, try_: Try) {
        if let Some(after) = self.try_timeout() {
            self.tries.push_back(Try {
                at: now + after,
                ..try_
            });
        }
    }

    /// How long a pool's member may take over a query before the next is
    /// asked; `None` when that is not before the query's deadline.
    fn try_timeout(&self) -> Option<Duration> {
        let after = self.shared.options.try_timeout;
        (after < self.inflight.timeout()).then_some(after)
    }

    /// Gives each query whose member of a pool has not answered within
    /// `--try-timeout` to the pool's next member, while there is one it
    /// has not tried.
    fn fail_over(&mut self, now: Instant) {
        let shared = Arc::clone(&self.shared);
        while self.tries.front().is_some_and(|t| t.at <= now) {
            let Some(Try {
                seq,
                pool,
                ts: from,
                tried,
                ..
            }) = self.tries.pop_front()
            else {
                break;
            };
            if self.inflight.unsettled_name(seq).is_none() {
                continue;
            }
            shared.balance.timed_out(from, now);
            self.try_next(
                seq,
                pool,
                from,
                tried,
                now,
                "did not answer within the try timeout",
            );
        }
    }

    /// Asks query `seq` of the next member of pool `pool` that it has not
    /// tried (`tried`, bits by TS), giving up `from`; `why` is what `from`
    /// did, for the log. Returns whether a member was asked.
    fn try_next(
        &mut self,
        seq: u64,
        pool: usize,
        from: usize,
        mut tried: u64,
        now: Instant,
        why: &str,
    ) -> bool {
        let shared = Arc::clone(&self.shared);
        let Some(name) = self.inflight.unsettled_name(seq).map(str::to_string) else {
            return false;
        };
        let question = self.inflight.tag(seq).and_then(|t| t.question.clone());
        let members = &shared.pools[pool];
        while let Some(ts) = members.choose(&name, tried, &shared.health, &shared.balance) {
            tried |= 1 << ts;
            let asked =
                (self.links).ask(ts, seq, &name, question.as_ref(), now, &mut self.inflight);
            let failed = match asked {
                Asked::No { .. } => continue,
                Asked::Yes { .. } => None,
                Asked::Failed(e) => Some(e),
            };
            (self.links).handed_over(seq, from, ts, &name, why, &mut self.inflight);
            trace_step(&shared, &self.inflight, seq, Step::Retry(ts));
            trace_step(&shared, &self.inflight, seq, Step::Send(ts));
            self.time_try(
                now,
                Try {
                    at: now,
                    seq,
                    pool,
                    ts,
                    tried,
                },
            );
            if let Some(e) = failed {
                self.links.send_failed(ts, &e, &mut self.inflight);
            }
            return true;
        }
        false
    }

    /// Moves every deadline `by` later: the session could not take replies
    /// for that long (its client was not reading), and time in which the
    /// LS could not listen does not count against the TSes.
    pub fn postpone_deadlines(&mut self, by: Duration) {
        self.inflight.postpone(by);
    }

    /// Acts on one piece of news from a link thread (client events are the
    /// worker's).
    pub fn handle(&mut self, event: Event) {
        if let Some((ts, frame, read_at)) = self.links.handle(event, &mut self.inflight) {
            self.reply(ts, frame, read_at);
        }
        self.take_moved();
    }

    /// Starts connecting the links that are down, where the shared health
    /// allows it now, and sends the queries held back for bare TSes.
    pub fn maintain_links(&mut self, now: Instant) {
        self.links.maintain_links(now, &mut self.inflight);
        self.take_moved();
    }

    /// When the worker must call [`expire`](Self::expire) and
    /// [`maintain_links`](Self::maintain_links) next, if ever.
    pub fn next_wakeup(&self) -> Option<Instant> {
        let retry = self.tries.front().map(|t| t.at);
        self.links
            .next_wakeup(&self.inflight)
            .into_iter()
            .chain(retry)
            .min()
    }

    /// Sends the queries buffered for each TS.
    pub fn flush_links(&mut self) {
        self.links.flush_links(&mut self.inflight);
        self.take_moved();
    }

    /// The next reply ready, in the session's release order. The caller
    /// counts it ([`Stats::count`](super::stats::Stats::count)) once the
    /// reply has reached the client; a reply that never does is abandoned.
    pub fn pop_ready(&mut self) -> Option<Settled<Relayed, T>> {
        let mut settled = self.inflight.pop_ready()?;
        self.balance_done(settled.tag.pooled, settled.outcome, settled.took);
        self.shared.stats.count_took(&settled.outcome, settled.took);
        let stale = self.serve_stale(&mut settled);
        self.trace_settled(&settled, stale);
        Some(Settled {
            name: settled.name,
            outcome: settled.outcome,
            answer: settled.answer,
            took: settled.took,
            tag: settled.tag.front,
            trace: settled.tag.trace,
        })
    }

    /// Records the `settle` step of a query settled as it was submitted
    /// (no TS to ask), on the submitting thread's lane.
    fn trace_settled_at_once(&mut self, seq: u64) {
        if self.shared.trace.is_none() {
            return;
        }
        let Some((outcome, ..)) = self.inflight.settled(seq) else {
            return;
        };
        let step = Step::Settle {
            outcome: outcome.term(),
            ts: outcome.answered_by(),
        };
        trace_step(&self.shared, &self.inflight, seq, step);
        if let Some(query) = self.inflight.tag(seq).and_then(|t| t.trace.as_ref()) {
            query.settle_recorded();
        }
    }

    /// Records the `settle` step of a query whose reply the front end made
    /// (`outcome`), on the submitting thread's lane.
    fn trace_settled_made(&self, trace: &Option<Query>, outcome: Outcome) {
        if let (Some(tracer), Some(query)) = (&self.shared.trace, trace) {
            let (outcome, ts) = (outcome.term(), None);
            tracer.step(query, Step::Settle { outcome, ts });
            query.settle_recorded();
        }
    }

    /// Records the `settle` step of a query the worker takes, when it was
    /// settled (its outcome's time, on the worker's lane), or a `cache`
    /// `stale` step and its settling as `stale` now.
    fn trace_settled(&self, settled: &Settled<Relayed, Tagged<T>>, stale: bool) {
        let (Some(tracer), Some(query)) = (&self.shared.trace, &settled.tag.trace) else {
            return;
        };
        if stale {
            tracer.step(query, Step::Cache("stale"));
            let (outcome, ts) = ("stale", None);
            tracer.step(query, Step::Settle { outcome, ts });
        } else if !query.settle_recorded() {
            let t_us = query.settled_at_us(settled.took);
            let step = Step::Settle {
                outcome: settled.outcome.term(),
                ts: settled.outcome.answered_by(),
            };
            tracer.step_at(query, Lane::current(), t_us, step);
        }
    }

    /// Records the `reply` step of query `seq` from TS `ts`, on the lane of
    /// the link that read it, when it read it.
    fn trace_reply(&self, seq: u64, ts: usize, read_at: Option<Instant>) {
        let Some(tracer) = &self.shared.trace else {
            return;
        };
        if let Some(query) = self.inflight.tag(seq).and_then(|t| t.trace.as_ref()) {
            let t_us = read_at.map_or_else(|| tracer.now_us(), |at| tracer.us_at(at));
            tracer.step_at(query, Lane::current().link(ts), t_us, Step::Reply(ts));
        }
    }

    /// With `--stale`: a query no TS could answer (its deadline passed, or
    /// no TS that could answer it was up) is answered from the cache's
    /// entry for it expired at most that long ago, TTLs 30 (RFC 8767).
    /// Returns whether it did.
    fn serve_stale(&self, settled: &mut Settled<Relayed, Tagged<T>>) -> bool {
        if self.shared.options.stale == 0
            || !matches!(
                settled.outcome,
                Outcome::TimedOut | Outcome::AllDown | Outcome::Failed | Outcome::Busy
            )
        {
            return false;
        }
        let (Some(cache), Some(question)) = (&self.shared.cache, &settled.tag.question) else {
            return false;
        };
        let Some(hit) = cache.get_stale(question, Instant::now()) else {
            return false;
        };
        settled.outcome = cached_outcome(&hit);
        settled.answer = Some(Relayed::Dns(hit));
        self.shared.stats.count_stale(self.front);
        true
    }

    /// Ends the session: the queries still in flight (settled or not) are
    /// counted as abandoned, every TS connection is closed, and the link
    /// threads are returned for the caller to join once it no longer holds
    /// the lock. Later submissions are the caller's to count.
    pub fn close(&mut self) -> Vec<LinkThread> {
        self.closed = Some(Instant::now());
        // Settled or not, these replies never reached the client.
        let pooled: Vec<u64> = self.inflight.tags().map(|tag| tag.pooled).collect();
        for pooled in pooled {
            self.balance_done(pooled, Outcome::TimedOut, Duration::ZERO);
        }
        let abandoned = self.inflight.clear() as u64;
        self.shared
            .stats
            .abandoned
            .fetch_add(abandoned, Ordering::Release);
        self.links.close_links()
    }

    /// Notes that the pooled members of a query (`pooled`, bits by TS) no
    /// longer have it in flight; the one that answered it took `took`.
    fn balance_done(&self, pooled: u64, outcome: Outcome, took: Duration) {
        let mut bits = pooled;
        while bits != 0 {
            let ts = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let answered = (outcome == Outcome::Answered { ts }).then_some(took);
            self.shared.balance.done(ts, answered);
        }
    }

    fn reply(&mut self, ts: usize, frame: Frame, read_at: Option<Instant>) {
        let Frame::Message(bytes) = frame else {
            self.dropped(ts, "an over-long line");
            return;
        };
        let Some(conn) = self.links.replied(ts, &mut self.inflight) else {
            return;
        };
        let now = Instant::now();
        if let Some(upstream) = &mut conn.upstream {
            // A DNS client with no cache to fill: an answer that can go to
            // it as it came is not decoded.
            let relays = self.front != Frontend::Course && self.shared.cache.is_none();
            let relayed = if relays {
                upstream.receive_relayable(bytes)
            } else {
                Err(bytes)
            };
            let (question, tag, said) = match relayed {
                Ok((question, tag, relay)) => (question, tag, Said::Answer(Relayed::Wire(relay))),
                Err(bytes) => match upstream.receive(&bytes) {
                    Ok(m) => (m.question, m.tag, decode::dns_said(m.outcome)),
                    Err(rejected) => {
                        self.dropped(ts, &rejected.to_string());
                        return;
                    }
                },
            };
            if matches!(said, Said::Failed | Said::Refused) {
                self.move_on(tag, ts);
            } else {
                self.shared.balance.heard(ts, now);
            }
            // A DNS TS answers every query: its silence is a fault.
            self.shared.health[ts].learn_answers_misses();
            let name = || question.name.to_string();
            self.settle_reply(ts, name, read_at, now, |inflight, now| {
                inflight.reply_to(tag, ts, said, now)
            });
            return;
        }
        let (key, said) = match decode::line_said(&bytes) {
            Ok(decoded) => decoded,
            Err(e) => {
                self.dropped(ts, &e.to_string());
                return;
            }
        };
        if said == Said::NotFound {
            // From now on, silence from this TS means trouble, not a miss.
            self.shared.health[ts].learn_answers_misses();
        }
        self.shared.balance.heard(ts, now);
        self.settle_reply(
            ts,
            || key.clone(),
            read_at,
            now,
            |inflight, now| inflight.reply(ts, &key, said, now),
        );
    }

    /// Gives query `seq` to the next member of `ts`'s pool, if `ts` is in
    /// a pool of several and one is left untried: `ts` said SERVFAIL or
    /// REFUSED, which a replica should not.
    fn move_on(&mut self, seq: u64, ts: usize) {
        let Some(pool) = self
            .shared
            .pools
            .iter()
            .position(|p| p.is_replicated() && p.members.contains(&ts))
        else {
            return;
        };
        let tried = self.inflight.asked(seq);
        self.try_next(seq, pool, ts, tried, Instant::now(), "failed or refused it");
    }

    /// Hands a reply to the in-flight rules; counts and logs one they drop
    /// (the reply was about `name`, only spelt out then).
    fn settle_reply(
        &mut self,
        ts: usize,
        name: impl FnOnce() -> String,
        read_at: Option<Instant>,
        now: Instant,
        apply: impl FnOnce(&mut Queries<T>, Instant) -> Fit,
    ) {
        let why = match apply(&mut self.inflight, now) {
            Fit::Answered(seq) | Fit::Denied(seq) => {
                self.trace_reply(seq, ts, read_at);
                self.keep(seq);
                return;
            }
            Fit::Stale => return,
            Fit::Second => "a second answer",
            Fit::Unmatched => "late, or for a name not asked",
        };
        self.dropped(ts, &format!("{why} ({:?})", name()));
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
