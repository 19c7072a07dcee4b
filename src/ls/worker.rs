//! The story of one client connection: the file to read first.
//!
//! The course's select() LS (`scripts/select_ls.py`) serves a client with one
//! thread and this loop: read a query line; `sendall()` it to every TS;
//! `select()` on the TS sockets until an answer for the name or the
//! deadline; write the reply; repeat. dnslb does the same steps with one
//! thread per blocking wait instead of one `select()`, so that a client may
//! have many queries in flight (pipelining):
//!
//! | select_ls.py | dnslb |
//! |---|---|
//! | `conn.recv()`, split lines | the **client reader** thread blocks in `read()` on the client socket and parses each line (`wire::parse_query`) |
//! | `link.sock.sendall(name)` to every TS | the client reader, under the session's lock, [`Session::submit`]s the query: it joins the queries in flight and is written to every TS at once |
//! | `select([ts sockets], timeout=deadline - now)` | one **link thread** per TS blocks in `read()` on its socket and sends each reply line as an [`Event`] into the worker's channel; the **worker** blocks in `recv_deadline` on that one channel until the earliest deadline |
//! | `recv()`, `matching_answer()` | the worker hands each reply to the session, which matches it to the oldest query for that name the TS was asked (`inflight.rs`) |
//! | deadline passed: `HOST NOT FOUND` | the worker calls [`Session::expire`] once the replies already received are matched |
//! | `conn.sendall(reply)` | the worker writes the settled replies, strictly in query order (DNS answers: each as it settles) |
//!
//! So a query crosses one thread boundary on its way to the TSes (none:
//! the reader writes it itself) and one on the way back (link thread to
//! worker). The reader waits for room when the client has `--max-inflight`
//! queries in flight (TCP then holds the client back); the worker gives the
//! room back as replies leave. Health, limits and counters live elsewhere
//! and are called from here by name.
//!
//! What is protocol lives in the front ends beside this file: each hands
//! [`serve_connection`] its client reader (how queries are read, parsed
//! and submitted) and its [`Front`] (how replies are written):
//! `course_front.rs` for the course protocol, `dns_front.rs` for DNS.

use std::io::{self, Write};
use std::net::{Shutdown as Direction, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::decode::Relayed;
use super::event::Event;
use super::inflight::{Outcome, Release, Settled};
use super::session::{Locked, Session};
use super::setup::Shared;
use super::stats::{Frontend, Reply, Stats};
use crate::framing::is_timeout;
use crate::log;
use crate::server::Activity;
use crate::trace::{Lane, Query, Step, Tracer};

/// Where a worker's replies go: its client, in the client's protocol.
pub(super) trait Front {
    /// What the front end tags each query with, to answer it.
    type Tag;
    /// Which front end it is, as the counters name it.
    const FRONTEND: Frontend;
    /// Whether a client that sends nothing for the idle timeout is closed
    /// (a connection is; the UDP front end's sessions are not).
    const IDLE_CLOSES: bool;
    /// Sends (or buffers) one settled query's reply; an error ends the
    /// worker.
    fn reply(&mut self, settled: Settled<Relayed, Self::Tag>) -> io::Result<()>;
    /// Sends what is buffered.
    fn flush(&mut self) -> io::Result<()>;
}

/// Events buffered per session before link threads wait for the worker: a
/// TS that floods replies is slowed down, not buffered without bound. A
/// bounded channel allocates its slots up front, so this is per-client
/// memory. The UDP front end's sessions use it too.
pub(super) const EVENT_QUEUE: usize = 256;

/// The client reader parses one message at a time; it needs little stack.
const CLIENT_READER_STACK: usize = 64 * 1024;

/// A write to the client blocked for this long or more postpones the
/// deadlines (shorter waits are the cost of writing, not a stalled client).
const STALL_NOTICE: Duration = Duration::from_millis(5);

/// Most settled replies the worker takes from its session at once.
const WRITE_BATCH: usize = 256;

/// Longest a closed session's reader goes on counting the queries the
/// client had sent.
pub(super) const UNANSWERED_COUNT_BOUND: Duration = Duration::from_secs(1);

/// Why [`serve_connection`] ended without serving the client to the end.
pub(super) enum Unserved {
    /// No descriptor or thread for its reader: nothing was read.
    NoReader(io::Error),
    /// The connection failed, or was idle (`TimedOut`).
    Failed(io::Error),
}

/// The life of one client connection, whatever its protocol: a session
/// whose queries wait `timeout` and leave in `release` order, a reader
/// thread running `read` (it submits the client's queries and returns how
/// the stream ended), the worker loop writing replies through `front`, then
/// closing it all down.
///
/// # Errors
/// See [`Unserved`].
pub(super) fn serve_connection<F: Front>(
    client: &TcpStream,
    shared: &Arc<Shared>,
    timeout: Duration,
    release: Release,
    mut front: F,
    read: impl FnOnce(TcpStream, Arc<Locked<F::Tag>>, Sender<Event>) -> Event + Send + 'static,
) -> Result<(), Unserved>
where
    F::Tag: Send + 'static,
{
    let options = &shared.options;
    let set_up = client.set_nodelay(true).and_then(|()| {
        // A client that reads none of its replies for the idle timeout is
        // closed like one that sends nothing.
        client.set_write_timeout(Some(options.idle_timeout))
    });
    set_up.map_err(Unserved::Failed)?;
    // The lanes of a traced connection: this thread is its worker.
    let lane = shared.trace.as_ref().map(Tracer::session);
    if let Some(n) = lane {
        Lane::Worker(n).enter();
    }
    let (events_tx, events) = crossbeam_channel::bounded(EVENT_QUEUE);
    let session = Arc::new(Locked::new(Session::new(
        Arc::clone(shared),
        timeout,
        release,
        events_tx.clone(),
        F::FRONTEND,
    )));
    let reader = client.try_clone().and_then(|stream| {
        let session = Arc::clone(&session);
        thread::Builder::new()
            .name("ls client reader".into())
            .stack_size(CLIENT_READER_STACK)
            .spawn(move || {
                if let Some(n) = lane {
                    Lane::Reader(n).enter();
                }
                let end = read(stream, session, events_tx.clone());
                let _ = events_tx.send(end);
            })
    });
    let reader = match reader {
        Ok(reader) => reader,
        Err(e) => {
            close(&session, events);
            return Err(Unserved::NoReader(e));
        }
    };
    let result = work(&session, &events, &mut front, shared);
    drop(front);
    if let Err(e) = &result
        && is_timeout(e)
    {
        // Sent nothing, or read none of its replies, for the idle timeout.
        shared.stats.idle_closed.fetch_add(1, Ordering::Relaxed);
        log::info(format_args!(
            "ls: closing a client idle for {:?}",
            options.idle_timeout
        ));
    }
    // Ends the client reader once it has counted what it still reads.
    let _ = client.shutdown(Direction::Both);
    close(&session, events);
    let _ = reader.join();
    result.map_err(Unserved::Failed)
}

/// Closes the session and joins its link threads.
pub(super) fn close<T>(session: &Locked<T>, events: Receiver<Event>) {
    let threads = session.lock().close();
    session.wake_all();
    // Dropping the receiver frees any link thread blocked on a full queue.
    drop(events);
    for thread in threads {
        thread.join();
    }
}

/// The worker's loop: take the news, call the deadlines, write the replies,
/// wait. Returns when the client is done, and an error when it is gone or
/// idle (`TimedOut`, also for a write that timed out).
pub(super) fn work<F: Front>(
    session: &Locked<F::Tag>,
    events: &Receiver<Event>,
    front: &mut F,
    shared: &Shared,
) -> io::Result<()> {
    let options = &shared.options;
    let mut client_open = true;
    let mut last_write = Instant::now();
    let mut received = None;
    let timeout = session.lock().timeout();
    loop {
        // Every event already received is handled before any deadline is
        // called: a reply that came in time is never turned into a miss.
        let mut s = session.lock();
        let now = Instant::now();
        let news = received.take().into_iter();
        for event in news.chain(events.try_iter().take(EVENT_QUEUE)) {
            match event {
                Event::ClientClosed => client_open = false,
                Event::ClientFailed(e) => return Err(e),
                event => s.handle(event),
            }
        }
        s.expire(now);
        // The worker's own writes to the TSes (a held query, the queries of
        // a link that came up) are sent as they are written; the reader
        // sends its own batches.
        s.maintain_links(now);
        // At most a batch: replies taken out of the session no longer
        // count against `--max-inflight`, so while a client that does not
        // read blocks the write, only this many wait outside the count.
        let ready: Vec<Settled<Relayed, F::Tag>> = std::iter::from_fn(|| s.pop_ready())
            .take(WRITE_BATCH)
            .collect();
        let more_ready = ready.len() == WRITE_BATCH;
        let (in_flight, wake) = (s.in_flight(), s.next_wakeup());
        let (reader_waits, last_submit) = (s.reader_waits(), s.last_submit());
        drop(s);

        if !ready.is_empty() {
            if reader_waits {
                session.made_room();
            }
            write_to_client(session, || {
                let mut ready = ready.into_iter();
                let written = ready.by_ref().try_for_each(|settled| {
                    record(&settled, shared);
                    front.reply(settled)
                });
                if written.is_err() {
                    // Taken from the session, never handed to the client.
                    let lost = ready.len() as u64;
                    shared.stats.abandoned.fetch_add(lost, Ordering::Release);
                }
                written?;
                if events.is_empty() && !more_ready {
                    front.flush()?;
                }
                Ok(())
            })?;
            last_write = Instant::now();
        }
        if !client_open && in_flight == 0 {
            return front.flush();
        }
        if more_ready || !events.is_empty() || write_to_client(session, || front.flush())? {
            continue;
        }
        // Queries the reader submits meanwhile have later deadlines than
        // this wait's end (it is capped at one timeout), so the wait never
        // sleeps through one; the reader wakes it only for what is due now.
        let idle_since = |last_submit: Instant| last_write.max(last_submit);
        let idle_deadline = (F::IDLE_CLOSES && in_flight == 0 && client_open)
            .then(|| idle_since(last_submit) + options.idle_timeout);
        let cap = Instant::now() + timeout;
        let wait_until = [wake, idle_deadline]
            .into_iter()
            .flatten()
            .fold(cap, Instant::min);
        match events.recv_deadline(wait_until) {
            Ok(event) => received = Some(event),
            Err(RecvTimeoutError::Timeout) => {
                let s = session.lock();
                if idle_deadline.is_some()
                    && s.in_flight() == 0
                    && Instant::now() >= idle_since(s.last_submit()) + options.idle_timeout
                {
                    return Err(io::ErrorKind::TimedOut.into());
                }
            }
            // The session holds a sender: the channel cannot disconnect.
            Err(RecvTimeoutError::Disconnected) => return front.flush(),
        }
    }
}

/// Runs a write to the client. A client that stops reading blocks it, and
/// the replies the TSes send meanwhile wait unread, so the time it blocked
/// does not count against the deadlines: returns whether it did.
fn write_to_client<T>(
    session: &Locked<T>,
    write: impl FnOnce() -> io::Result<()>,
) -> io::Result<bool> {
    let started = Instant::now();
    write()?;
    let blocked = started.elapsed();
    let stalled = blocked >= STALL_NOTICE;
    if stalled {
        session.lock().postpone_deadlines(blocked);
    }
    Ok(stalled)
}

/// Logs a settled query with `-v`: the spec's "track which TS responded".
fn record<T>(settled: &Settled<Relayed, T>, shared: &Shared) {
    if !log::verbose() {
        return;
    }
    let (name, ms) = (&settled.name, settled.took.as_secs_f64() * 1000.0);
    match settled.outcome {
        Outcome::Answered { ts } => log::info(format_args!(
            "ls: {name} answered by {} in {ms:.1} ms",
            shared.backends[ts]
        )),
        Outcome::TimedOut => log::info(format_args!(
            "ls: {name} not found: no TS answered within {ms:.1} ms"
        )),
        Outcome::NotFound => log::info(format_args!(
            "ls: {name} not found: every TS said so ({ms:.1} ms)"
        )),
        Outcome::Failed => log::info(format_args!(
            "ls: {name} not answered: a TS failed ({ms:.1} ms)"
        )),
        Outcome::Refused => log::info(format_args!("ls: {name} refused by every TS ({ms:.1} ms)")),
        Outcome::AllDown => log::info(format_args!(
            "ls: {name} not found: every TS is down ({ms:.1} ms)"
        )),
        Outcome::Busy => log::info(format_args!(
            "ls: {name} not answered: the LS could not ask every TS ({ms:.1} ms)"
        )),
        Outcome::Cached => log::info(format_args!("ls: {name} answered from the cache")),
        Outcome::CachedMiss => log::info(format_args!("ls: {name} not found, from the cache")),
        Outcome::Invalid => {}
    }
}

/// Counts a query the closed session will never answer.
pub(super) fn count_abandoned<T>(s: &Session<T>) {
    s.count_query();
    s.stats().abandoned.fetch_add(1, Ordering::Release);
}

/// The worker's replies on their way to its client. A reply is counted
/// (answered, miss, invalid, and under its front end by what it said) once its last
/// byte is sent; one that a failed write cuts off is counted as abandoned,
/// so the counters never claim a reply the client did not get.
pub(super) struct Replies<'a> {
    client: &'a TcpStream,
    stats: &'a Stats,
    front: Frontend,
    /// Records each reply's `write` step once it is sent (`--trace`).
    tracer: Option<&'a Tracer>,
    /// Told of each reply once it is sent (or lost): the client is busy
    /// until then.
    activity: Activity,
    bytes: Vec<u8>,
    /// Where each buffered reply ends in `bytes`, how its query ended,
    /// what it says, and its query's trace.
    ends: Vec<(usize, Outcome, Reply, Option<Query>)>,
}

impl<'a> Replies<'a> {
    /// Replies are sent once this many bytes are buffered, or on `flush`.
    const BATCH: usize = 8 * 1024;

    /// Replies to `client` from `front`, counted in `stats`.
    pub(super) fn new(
        client: &'a TcpStream,
        stats: &'a Stats,
        front: Frontend,
        activity: Activity,
    ) -> Replies<'a> {
        Replies {
            client,
            stats,
            front,
            tracer: None,
            activity,
            bytes: Vec::with_capacity(Self::BATCH),
            ends: Vec::new(),
        }
    }

    /// The same, recording each reply's `write` step with `tracer`.
    pub(super) fn traced(mut self, tracer: Option<&'a Tracer>) -> Replies<'a> {
        self.tracer = tracer;
        self
    }

    /// Adds one reply, which says `reply`, framed as `frame` writes it;
    /// `trace`: its query's.
    pub(super) fn push(
        &mut self,
        outcome: Outcome,
        reply: Reply,
        trace: Option<Query>,
        frame: impl FnOnce(&mut Vec<u8>) -> io::Result<()>,
    ) -> io::Result<()> {
        frame(&mut self.bytes)?;
        self.ends.push((self.bytes.len(), outcome, reply, trace));
        if self.bytes.len() >= Self::BATCH {
            self.flush()?;
        }
        Ok(())
    }

    pub(super) fn flush(&mut self) -> io::Result<()> {
        if self.bytes.is_empty() {
            return Ok(());
        }
        let mut sent = 0;
        let result = loop {
            if sent == self.bytes.len() {
                break Ok(());
            }
            match self.client.write(&self.bytes[sent..]) {
                Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        let delivered = self.ends.partition_point(|(end, ..)| *end <= sent);
        for (_, outcome, reply, trace) in &self.ends[..delivered] {
            self.stats.count_reply(self.front, *reply, outcome);
            if let (Some(tracer), Some(query)) = (self.tracer, trace) {
                tracer.step(query, Step::Write);
            }
        }
        let lost = (self.ends.len() - delivered) as u64;
        self.stats.abandoned.fetch_add(lost, Ordering::Release);
        self.activity.answered(self.ends.len());
        self.bytes.clear();
        self.ends.clear();
        result
    }

    /// A query settled with nothing to send: answered all the same.
    pub(super) fn skip(&self) {
        self.activity.answered(1);
    }
}

impl Drop for Replies<'_> {
    fn drop(&mut self) {
        // Replies never sent: the worker ended on another error.
        let lost = self.ends.len() as u64;
        self.stats.abandoned.fetch_add(lost, Ordering::Release);
    }
}
