//! The load-balancing server (LS).
//!
//! One worker thread per client connection. Each worker has a reader thread
//! for its client socket, which parses queries and hands them over a bounded
//! channel, and an `Engine` (`ls/engine.rs`) whose link threads (one per TS) feed replies
//! into another channel. The worker waits on both channels with the earliest
//! deadline as timeout, so a client may send many queries without waiting
//! (pipelining): each is fanned out as it arrives and the replies are written
//! strictly in query order, exactly one per query.

mod engine;
mod health;
mod link;
mod stats;

pub use engine::MAX_BACKENDS;

use engine::{Engine, Outcome};
pub use health::{BACKOFF_CAP, BACKOFF_START, Health};
pub use stats::{Snapshot, Stats};

use std::fmt;
use std::io::{self, Write};
use std::net::{Shutdown as Direction, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Select, Sender};

use crate::framing::{Frame, Framing, MessageReader, is_timeout, write_message};
use crate::log;
use crate::server::{ServeOptions, Shutdown, serve};
use crate::wire::{self, Dialect, Query, QueryError};

/// The per-query deadline when none is given (the course spec's 5 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a link waits for a TS to accept its connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The line sent to a client over `--max-clients` before it is closed.
pub const BUSY_REPLY: &str = "- Error:SERVER BUSY";

/// Queries parsed ahead of the worker; past this the client reader waits.
const QUERY_QUEUE: usize = 64;

/// The client reader parses one message at a time; it needs little stack.
const CLIENT_READER_STACK: usize = 64 * 1024;

/// TS events the worker takes in one go before looking at deadlines.
const EVENT_DRAIN: usize = 256;

/// A write to the client blocked for this long or more postpones the
/// deadlines (shorter waits are the cost of writing, not a stalled client).
const STALL_NOTICE: Duration = Duration::from_millis(5);

/// Longest a finished worker goes on counting the queries it leaves
/// unanswered (see `count_unanswered`).
const UNANSWERED_COUNT_BOUND: Duration = Duration::from_secs(1);

/// How often `-v` prints the counters.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// One top-level server the LS forwards to.
#[derive(Clone, Debug)]
pub struct Backend {
    /// How logs name it: `ts1`, `ts2`, ...
    pub label: String,
    /// The host as given on the command line.
    pub host: String,
    /// Its addresses (a name may resolve to several); tried in order.
    pub addrs: Vec<SocketAddr>,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addrs.first() {
            Some(addr) => write!(f, "{} ({addr})", self.label),
            None => write!(f, "{} ({})", self.label, self.host),
        }
    }
}

/// How an LS behaves.
#[derive(Clone, Debug)]
pub struct LsOptions {
    /// The TSes every query is forwarded to (1 to [`MAX_BACKENDS`]).
    pub backends: Vec<Backend>,
    /// How long a query waits for an answer.
    pub timeout: Duration,
    /// The miss line's format.
    pub dialect: Dialect,
    /// How clients delimit queries; `Auto` detects per connection.
    pub client_framing: Framing,
    /// How the LS delimits queries to TSes and their replies.
    pub ts_framing: Framing,
    /// Most queries in flight per client; past it the LS stops reading that
    /// client until replies have gone out. Always 1 towards bare TSes.
    pub max_inflight: usize,
    /// Most clients connected at once; one more gets [`BUSY_REPLY`].
    pub max_clients: usize,
    /// A client that sends nothing for this long (with nothing in flight), or
    /// reads none of its replies for this long, is closed.
    pub idle_timeout: Duration,
}

impl LsOptions {
    /// Options with the defaults: 5 s timeout, 2020 dialect, auto-detected
    /// client framing, line framing towards the TSes, 4096 queries in flight
    /// per client, 1024 clients, 300 s idle timeout.
    pub fn new(backends: Vec<Backend>) -> LsOptions {
        LsOptions {
            backends,
            timeout: DEFAULT_TIMEOUT,
            dialect: Dialect::Y2020,
            client_framing: Framing::Auto,
            ts_framing: Framing::Line,
            max_inflight: 4096,
            max_clients: 1024,
            idle_timeout: Duration::from_secs(300),
        }
    }
}

/// What every session of one LS shares.
struct Shared {
    backends: Vec<Backend>,
    health: Vec<Arc<Health>>,
    stats: Arc<Stats>,
    options: LsOptions,
}

/// A load-balancing server, ready to [`run`](Ls::run).
pub struct Ls {
    shared: Arc<Shared>,
}

impl Ls {
    /// An LS with `options`.
    ///
    /// # Errors
    /// When there is no TS or more than [`MAX_BACKENDS`].
    pub fn new(mut options: LsOptions) -> Result<Ls, String> {
        let count = options.backends.len();
        if options.ts_framing == Framing::Bare {
            // A bare TS reads one message per recv(): queries sent back to
            // back would arrive as one.
            options.max_inflight = 1;
        }
        if count == 0 || count > MAX_BACKENDS {
            return Err(format!(
                "an LS forwards to 1 to {MAX_BACKENDS} TSes, not {count}"
            ));
        }
        Ok(Ls {
            shared: Arc::new(Shared {
                health: options
                    .backends
                    .iter()
                    .map(|b| Arc::new(Health::new(&b.to_string())))
                    .collect(),
                backends: options.backends.clone(),
                stats: Arc::new(Stats::new(count)),
                options,
            }),
        })
    }

    /// The live counters.
    pub fn stats(&self) -> Arc<Stats> {
        Arc::clone(&self.shared.stats)
    }

    /// The counters now.
    pub fn snapshot(&self) -> Snapshot {
        self.shared.stats.snapshot(&self.shared.health)
    }

    /// Serves clients on `listener` until `shutdown` triggers; returns when
    /// every worker has answered the queries it received and closed. Prints
    /// the counters on stderr when it stops (and every 10 s with `-v`).
    ///
    /// # Errors
    /// When the listener's address cannot be read.
    pub fn run(&self, listener: TcpListener, shutdown: &Shutdown) -> io::Result<()> {
        let options = &self.shared.options;
        let serve_options = ServeOptions {
            // A worker answers what it already received within one timeout.
            grace: options.timeout + Duration::from_millis(500),
            max_connections: options.max_clients,
            busy_reply: BUSY_REPLY,
            stats: Arc::clone(&self.shared.stats.connections),
            ..ServeOptions::new("ls", Duration::ZERO)
        };
        let reporter = self.start_reporter();
        let shared = Arc::clone(&self.shared);
        let stopping = shutdown.clone();
        let served = serve(listener, shutdown, &serve_options, move |client| {
            if let Err(e) = serve_client(client, &shared, &stopping) {
                log::info(format_args!("ls: client connection ended: {e}"));
            }
        });
        drop(reporter);
        log::warn(format_args!("ls: {}", self.snapshot()));
        served
    }

    /// With `-v`, prints the counters every 10 s until the returned guard drops.
    fn start_reporter(&self) -> Option<ReporterGuard> {
        if !log::verbose() {
            return None;
        }
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let shared = Arc::clone(&self.shared);
        let thread = thread::Builder::new()
            .name("ls stats".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(REPORT_EVERY) {
                    log::info(format_args!(
                        "ls: {}",
                        shared.stats.snapshot(&shared.health)
                    ));
                }
            })
            .ok()?;
        Some(ReporterGuard {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

/// Stops the reporter thread when dropped.
struct ReporterGuard {
    stop: Option<Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Drop for ReporterGuard {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Serves clients on `listener` with `options` until `shutdown` triggers.
///
/// # Errors
/// When the options are invalid or the listener's address cannot be read.
pub fn run(listener: TcpListener, options: LsOptions, shutdown: &Shutdown) -> io::Result<()> {
    let ls = Ls::new(options).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    ls.run(listener, shutdown)
}

/// What the client reader hands the worker.
enum Incoming {
    /// A message, parsed, with the connection's framing as detected.
    Query(Result<Query, QueryError>, Framing),
    /// The connection failed (reset by the client, say): nobody is left to
    /// read replies. A clean end of stream is the channel disconnecting.
    Failed(io::Error),
}

/// The worker: fans out each query as it arrives and writes the replies in
/// order, until the client has closed and every query has its reply.
fn serve_client(client: TcpStream, shared: &Arc<Shared>, shutdown: &Shutdown) -> io::Result<()> {
    client.set_nodelay(true)?;
    let options = &shared.options;
    // A client that reads none of its replies for the idle timeout is
    // closed like one that sends nothing.
    client.set_write_timeout(Some(options.idle_timeout))?;
    let (queries_tx, queries) = crossbeam_channel::bounded(QUERY_QUEUE);
    let reader = spawn_client_reader(
        client.try_clone()?,
        options.client_framing,
        shutdown.clone(),
        queries_tx,
    )?;
    let mut engine = Engine::new(Arc::clone(shared));
    let mut out = Replies::new(&client, &shared.stats);
    let result = relay(&mut engine, &queries, &mut out, options);
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
    // Ends the client reader, whatever state the client left it in.
    let _ = client.shutdown(Direction::Both);
    drop(engine);
    count_unanswered(&queries, &shared.stats);
    drop(queries);
    let _ = reader.join();
    result
}

/// Counts as received and abandoned the queries the worker will never
/// answer: those queued for it and those still in the client's socket (the
/// reader goes on reading what had arrived, after the shutdown too). Bounded
/// in time: a client that keeps sending is not followed for ever.
fn count_unanswered(queries: &Receiver<Incoming>, stats: &Stats) {
    let until = Instant::now() + UNANSWERED_COUNT_BOUND;
    let mut unanswered = 0;
    while let Ok(Incoming::Query(..)) = queries.recv_deadline(until) {
        unanswered += 1;
    }
    if unanswered > 0 {
        stats.queries.fetch_add(unanswered, Ordering::Relaxed);
        stats.abandoned.fetch_add(unanswered, Ordering::Relaxed);
        log::info(format_args!(
            "ls: {unanswered} queries received from a client were left unanswered"
        ));
    }
}

/// The worker's loop; returns when the client is done, and an error when it
/// is gone or idle (`TimedOut`, also for a write that timed out).
fn relay(
    engine: &mut Engine,
    queries: &Receiver<Incoming>,
    out: &mut Replies,
    options: &LsOptions,
) -> io::Result<()> {
    let events = engine.events().clone();
    // Built once: index 0 is the TS events, index 1 the client's queries,
    // offered only while the client is under its in-flight cap.
    const QUERIES: usize = 1;
    let mut events_only = Select::new();
    events_only.recv(&events);
    let mut events_and_queries = events_only.clone();
    events_and_queries.recv(queries);
    let mut framing = Framing::Line;
    let mut client_open = true;
    let mut last_activity = Instant::now();
    loop {
        let now = Instant::now();
        // Replies already received settle their queries before any deadline
        // up to `now` is called (bounded: a flooding TS cannot hold the loop).
        for event in events.try_iter().take(EVENT_DRAIN) {
            engine.handle(event);
        }
        engine.expire(now);
        engine.maintain_links(now);
        let mut writing = None;
        while let Some((outcome, reply)) = engine.pop_ready() {
            writing.get_or_insert_with(Instant::now);
            out.push(outcome, &reply, framing)?;
        }
        if let Some(writing) = writing {
            last_activity = now;
            // A client that stops reading blocks these writes; the replies
            // the TSes send meanwhile wait unread, so the time blocked does
            // not count against the deadlines.
            let blocked = writing.elapsed();
            if blocked >= STALL_NOTICE {
                engine.postpone_deadlines(blocked);
            }
        }
        let idle = engine.in_flight() == 0;
        if !client_open && idle {
            return out.flush();
        }
        let accepting = client_open && engine.in_flight() < options.max_inflight;
        let select = if accepting {
            &mut events_and_queries
        } else {
            &mut events_only
        };
        let op = match select.try_select() {
            Ok(op) => op,
            Err(_) => {
                // Nothing ready: send what is buffered before blocking.
                engine.flush_links();
                let flushing = Instant::now();
                out.flush()?;
                let blocked = flushing.elapsed();
                if blocked >= STALL_NOTICE {
                    engine.postpone_deadlines(blocked);
                    continue;
                }
                let idle_deadline =
                    (idle && client_open).then(|| last_activity + options.idle_timeout);
                let wake = [engine.next_wakeup(), idle_deadline]
                    .into_iter()
                    .flatten()
                    .min();
                let selected = match wake {
                    Some(wake) => select.select_deadline(wake),
                    None => Ok(select.select()),
                };
                match selected {
                    Ok(op) => op,
                    Err(_) => {
                        if idle_deadline.is_some_and(|d| Instant::now() >= d) {
                            return Err(io::ErrorKind::TimedOut.into());
                        }
                        continue;
                    }
                }
            }
        };
        if op.index() == QUERIES {
            match op.recv(queries) {
                Ok(Incoming::Query(query, detected)) => {
                    framing = detected;
                    engine.submit(query);
                    last_activity = Instant::now();
                }
                Ok(Incoming::Failed(e)) => return Err(e),
                Err(_) => client_open = false,
            }
        } else if let Ok(event) = op.recv(&events) {
            engine.handle(event);
        }
    }
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

/// Reads and parses the client's messages until it closes; blocks while the
/// worker has its fill of queries in flight, which stops reading the socket.
fn spawn_client_reader(
    stream: TcpStream,
    framing: Framing,
    shutdown: Shutdown,
    queries: Sender<Incoming>,
) -> io::Result<thread::JoinHandle<()>> {
    thread::Builder::new()
        .name("ls client reader".into())
        .stack_size(CLIENT_READER_STACK)
        .spawn(move || {
            let mut reader = MessageReader::new(stream, framing, wire::MAX_MESSAGE_LEN);
            loop {
                let incoming = match reader.next_frame() {
                    Ok(Some(Frame::TooLong)) => {
                        Incoming::Query(Err(QueryError::TooLong), reader.framing())
                    }
                    Ok(Some(Frame::Message(_)))
                        if reader.last_was_cut() && shutdown.is_triggered() =>
                    {
                        // The shutdown cut this line short: it is not a query.
                        log::info(format_args!(
                            "ls: ignoring a line cut short by the shutdown"
                        ));
                        return;
                    }
                    Ok(Some(Frame::Message(message))) => {
                        Incoming::Query(wire::parse_query(&message), reader.framing())
                    }
                    Ok(None) => return,
                    Err(e) => Incoming::Failed(e),
                };
                let failed = matches!(incoming, Incoming::Failed(_));
                if queries.send(incoming).is_err() || failed {
                    return;
                }
            }
        })
}
