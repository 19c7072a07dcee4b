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
//! | `conn.sendall(reply)` | the worker writes the settled replies, strictly in query order |
//!
//! So a query crosses one thread boundary on its way to the TSes (none:
//! the reader writes it itself) and one on the way back (link thread to
//! worker). The reader waits for room when the client has `--max-inflight`
//! queries in flight (TCP then holds the client back); the worker gives the
//! room back as replies leave. Health, limits and counters live elsewhere
//! and are called from here by name.

use std::io::{self, Write};
use std::net::{Shutdown as Direction, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::event::Event;
use super::inflight::{Outcome, Settled};
use super::session::{Locked, Session};
use super::setup::Shared;
use super::stats::Stats;
use crate::framing::{Frame, Framing, MessageReader, is_timeout, write_message};
use crate::log;
use crate::server::Shutdown;
use crate::wire::{self, QueryError};

/// Events buffered per session before link threads wait for the worker: a
/// TS that floods replies is slowed down, not buffered without bound. A
/// bounded channel allocates its slots up front, so this is per-client
/// memory.
const EVENT_QUEUE: usize = 256;

/// The client reader parses one message at a time; it needs little stack.
const CLIENT_READER_STACK: usize = 64 * 1024;

/// A write to the client blocked for this long or more postpones the
/// deadlines (shorter waits are the cost of writing, not a stalled client).
const STALL_NOTICE: Duration = Duration::from_millis(5);

/// Longest a closed session's reader goes on counting the queries the
/// client had sent (see [`read_client`]).
const UNANSWERED_COUNT_BOUND: Duration = Duration::from_secs(1);

/// Serves one client connection until the client is done and every query
/// has its reply, or the client is gone or idle.
///
/// # Errors
/// The client connection's errors; `TimedOut` when it was idle.
pub(super) fn serve_client(
    client: TcpStream,
    shared: &Arc<Shared>,
    shutdown: &Shutdown,
) -> io::Result<()> {
    client.set_nodelay(true)?;
    let options = &shared.options;
    // A client that reads none of its replies for the idle timeout is
    // closed like one that sends nothing.
    client.set_write_timeout(Some(options.idle_timeout))?;
    let (events_tx, events) = crossbeam_channel::bounded(EVENT_QUEUE);
    let session = Arc::new(Locked::new(Session::new(
        Arc::clone(shared),
        events_tx.clone(),
    )));
    let reader = spawn_client_reader(
        client.try_clone()?,
        Arc::clone(&session),
        options.client_framing,
        shutdown.clone(),
        events_tx,
    );
    let reader = match reader {
        Ok(reader) => reader,
        Err(e) => {
            close(&session, events);
            return Err(e);
        }
    };
    let mut replies = Replies::new(&client, &shared.stats);
    let result = work(&session, &events, &mut replies, shared);
    drop(replies);
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
    result
}

/// Closes the session and joins its link threads.
fn close(session: &Locked, events: Receiver<Event>) {
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
fn work(
    session: &Locked,
    events: &Receiver<Event>,
    replies: &mut Replies,
    shared: &Shared,
) -> io::Result<()> {
    let options = &shared.options;
    let mut client_open = true;
    let mut last_write = Instant::now();
    let mut received = None;
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
        s.maintain_links(now);
        s.flush_links();
        let ready: Vec<Settled<String>> = std::iter::from_fn(|| s.pop_ready()).collect();
        let (in_flight, wake, framing) = (s.in_flight(), s.next_wakeup(), s.client_framing());
        drop(s);

        if !ready.is_empty() {
            session.made_room();
            let writing = Instant::now();
            for settled in ready {
                record(&settled, shared);
                let reply = settled
                    .answer
                    .unwrap_or_else(|| wire::miss_line(&settled.name, options.dialect));
                replies.push(settled.outcome, &reply, framing)?;
            }
            if events.is_empty() {
                replies.flush()?;
            }
            last_write = Instant::now();
            // A client that stops reading blocks these writes; the replies
            // the TSes send meanwhile wait unread, so the time blocked does
            // not count against the deadlines.
            let blocked = writing.elapsed();
            if blocked >= STALL_NOTICE {
                session.lock().postpone_deadlines(blocked);
            }
        }
        if !client_open && in_flight == 0 {
            return replies.flush();
        }
        if !events.is_empty() {
            continue;
        }
        replies.flush()?;
        // Queries the reader submits meanwhile have later deadlines than
        // this wait's end (it is capped at one timeout), so the wait never
        // sleeps through one; the reader wakes it only for what is due now.
        let idle_since = |s: &Session| last_write.max(s.last_submit());
        let idle_deadline = (in_flight == 0 && client_open)
            .then(|| idle_since(&session.lock()) + options.idle_timeout);
        let cap = Instant::now() + options.timeout;
        let wait_until = [wake, idle_deadline]
            .into_iter()
            .flatten()
            .fold(cap, Instant::min);
        match events.recv_deadline(wait_until) {
            Ok(event) => received = Some(event),
            Err(RecvTimeoutError::Timeout) => {
                let s = session.lock();
                if client_open
                    && s.in_flight() == 0
                    && Instant::now() >= idle_since(&s) + options.idle_timeout
                {
                    return Err(io::ErrorKind::TimedOut.into());
                }
            }
            // The session holds a sender: the channel cannot disconnect.
            Err(RecvTimeoutError::Disconnected) => return replies.flush(),
        }
    }
}

/// Logs a settled query with `-v`: the spec's "track which TS responded".
fn record(settled: &Settled<String>, shared: &Shared) {
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
        Outcome::Refused => log::info(format_args!("ls: {name} refused by every TS ({ms:.1} ms)")),
        Outcome::AllDown => log::info(format_args!(
            "ls: {name} not found: every TS is down ({ms:.1} ms)"
        )),
        Outcome::Busy => log::info(format_args!(
            "ls: {name} not answered: the LS could not ask every TS ({ms:.1} ms)"
        )),
        Outcome::Invalid => {}
    }
}

/// Starts the client reader (see [`read_client`]).
fn spawn_client_reader(
    stream: TcpStream,
    session: Arc<Locked>,
    framing: Framing,
    shutdown: Shutdown,
    events: Sender<Event>,
) -> io::Result<thread::JoinHandle<()>> {
    thread::Builder::new()
        .name("ls client reader".into())
        .stack_size(CLIENT_READER_STACK)
        .spawn(move || {
            let mut reader = MessageReader::new(stream, framing, wire::MAX_MESSAGE_LEN);
            let end = read_client(&mut reader, &session, &shutdown, &events);
            let _ = events.send(end);
        })
}

/// Reads and parses the client's messages and submits each to the session,
/// until the client closes (or the connection fails). Waits for room while
/// the session has its fill of queries in flight, which stops reading the
/// socket. Once the worker has closed the session, what is still read (for
/// at most [`UNANSWERED_COUNT_BOUND`]) is counted as received and abandoned.
fn read_client(
    reader: &mut MessageReader,
    session: &Locked,
    shutdown: &Shutdown,
    events: &Sender<Event>,
) -> Event {
    loop {
        let query = match reader.next_frame() {
            Ok(Some(Frame::TooLong)) => Err(QueryError::TooLong),
            Ok(Some(Frame::Message(_))) if reader.last_was_cut() && shutdown.is_triggered() => {
                // The shutdown cut this line short: it is not a query.
                log::info(format_args!(
                    "ls: ignoring a line cut short by the shutdown"
                ));
                return Event::ClientClosed;
            }
            Ok(Some(Frame::Message(message))) => wire::parse_query(&message),
            Ok(None) => return Event::ClientClosed,
            Err(e) => return Event::ClientFailed(e),
        };
        let mut s = session.lock_with_room();
        if let Some(closed) = s.closed_since() {
            drop(s);
            count_abandoned(session);
            if closed.elapsed() >= UNANSWERED_COUNT_BOUND {
                return Event::ClientClosed;
            }
            continue;
        }
        s.set_client_framing(reader.framing());
        let wake = s.submit(query);
        if !reader.has_buffered_message() {
            s.flush_links();
        }
        drop(s);
        if wake {
            let _ = events.send(Event::Submitted);
        }
    }
}

/// Counts a query the closed session will never answer.
fn count_abandoned(session: &Locked) {
    let s = session.lock();
    let stats = s.stats();
    stats.queries.fetch_add(1, Ordering::Relaxed);
    stats.abandoned.fetch_add(1, Ordering::Relaxed);
}

/// The worker's replies on their way to its client. A reply is counted
/// (answered, miss, invalid) once its last byte is sent; one that a failed
/// write cuts off is counted as abandoned, so the counters never claim a
/// reply the client did not get.
struct Replies<'a> {
    client: &'a TcpStream,
    stats: &'a Stats,
    bytes: Vec<u8>,
    /// Where each buffered reply ends in `bytes`, and how its query ended.
    ends: Vec<(usize, Outcome)>,
}

impl<'a> Replies<'a> {
    /// Replies are sent once this many bytes are buffered, or on `flush`.
    const BATCH: usize = 8 * 1024;

    fn new(client: &'a TcpStream, stats: &'a Stats) -> Replies<'a> {
        Replies {
            client,
            stats,
            bytes: Vec::with_capacity(Self::BATCH),
            ends: Vec::new(),
        }
    }

    fn push(&mut self, outcome: Outcome, reply: &str, framing: Framing) -> io::Result<()> {
        write_message(&mut self.bytes, reply.as_bytes(), framing)?;
        self.ends.push((self.bytes.len(), outcome));
        if self.bytes.len() >= Self::BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
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
        let delivered = self.ends.partition_point(|(end, _)| *end <= sent);
        for (_, outcome) in &self.ends[..delivered] {
            self.stats.count(outcome);
        }
        let lost = (self.ends.len() - delivered) as u64;
        self.stats.abandoned.fetch_add(lost, Ordering::Relaxed);
        self.bytes.clear();
        self.ends.clear();
        result
    }
}

impl Drop for Replies<'_> {
    fn drop(&mut self) {
        // Replies never sent: the worker ended on another error.
        let lost = self.ends.len() as u64;
        self.stats.abandoned.fetch_add(lost, Ordering::Relaxed);
    }
}
