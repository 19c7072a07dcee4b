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

use engine::Engine;
pub use health::{BACKOFF_CAP, BACKOFF_START, Health};
pub use stats::{Snapshot, Stats};

use std::fmt;
use std::io::{self, BufWriter, Write};
use std::net::{Shutdown as Direction, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Select, Sender};

use crate::framing::{Frame, Framing, MessageReader, is_timeout, write_message};
use crate::log;
use crate::net::connect_any;
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

    /// Tries every TS once and logs those that cannot be reached (see
    /// [`check_backends`]).
    pub fn check_backends(&self) -> Vec<String> {
        check_backends(&self.shared.backends)
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
        let served = serve(listener, shutdown, &serve_options, move |client| {
            if let Err(e) = serve_client(client, &shared) {
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

/// Descriptors one client costs the LS with `backends` TSes: its socket, the
/// client reader's and the shutdown registry's duplicates, and per TS a
/// connection and its writing duplicate.
///
/// ```
/// assert_eq!(dnslb::ls::descriptors_per_client(2), 7);
/// ```
pub fn descriptors_per_client(backends: usize) -> usize {
    3 + 2 * backends
}

/// Tries to connect to every TS once (all at once, [`CONNECT_TIMEOUT`]
/// each) and logs one line for each that cannot be reached. The LS starts
/// anyway: a TS may come later. Returns the labels of the unreachable ones.
pub fn check_backends(backends: &[Backend]) -> Vec<String> {
    thread::scope(|scope| {
        let tries: Vec<_> = backends
            .iter()
            .map(|backend| {
                let try_one = move || connect_any(&backend.addrs, CONNECT_TIMEOUT).map(drop);
                (backend, thread::Builder::new().spawn_scoped(scope, try_one))
            })
            .collect();
        let mut unreachable = Vec::new();
        for (backend, handle) in tries {
            let tried = match handle {
                Ok(handle) => handle
                    .join()
                    .unwrap_or_else(|_| Err(io::Error::other("the connection attempt panicked"))),
                // No thread to spare: try it here.
                Err(_) => connect_any(&backend.addrs, CONNECT_TIMEOUT).map(drop),
            };
            if let Err(e) = tried {
                log::warn(format_args!(
                    "ls: {backend} is not reachable: {e}; starting anyway"
                ));
                unreachable.push(backend.label.clone());
            }
        }
        unreachable
    })
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
fn serve_client(client: TcpStream, shared: &Arc<Shared>) -> io::Result<()> {
    client.set_nodelay(true)?;
    let options = &shared.options;
    // A client that reads none of its replies for the idle timeout is
    // closed like one that sends nothing.
    client.set_write_timeout(Some(options.idle_timeout))?;
    let (queries_tx, queries) = crossbeam_channel::bounded(QUERY_QUEUE);
    let reader = client
        .try_clone()
        .and_then(|stream| spawn_client_reader(stream, options.client_framing, queries_tx));
    let reader = match reader {
        Ok(reader) => reader,
        Err(e) => {
            // No descriptor or thread to serve it with: say so, not a
            // silent close.
            // Counted as refused, not accepted.
            let connections = &shared.stats.connections;
            connections.accepted.fetch_sub(1, Ordering::Relaxed);
            connections.refused.fetch_add(1, Ordering::Relaxed);
            log::warn(format_args!("ls: refusing a client: {e}"));
            let _ = (&client).write_all(format!("{BUSY_REPLY}\n").as_bytes());
            let _ = client.shutdown(Direction::Both);
            return Ok(());
        }
    };
    let mut engine = Engine::new(Arc::clone(shared));
    let mut out = BufWriter::new(&client);
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
    drop(queries);
    let _ = reader.join();
    drop(engine);
    result
}

/// The worker's loop; returns when the client is done, and an error when it
/// is gone or idle (`TimedOut`, also for a write that timed out).
fn relay(
    engine: &mut Engine,
    queries: &Receiver<Incoming>,
    out: &mut BufWriter<&TcpStream>,
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
        engine.expire(now);
        engine.maintain_links(now);
        while let Some(reply) = engine.pop_ready() {
            write_message(out, reply.as_bytes(), framing)?;
            last_activity = now;
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
                out.flush()?;
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

/// Reads and parses the client's messages until it closes; blocks while the
/// worker has its fill of queries in flight, which stops reading the socket.
fn spawn_client_reader(
    stream: TcpStream,
    framing: Framing,
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
