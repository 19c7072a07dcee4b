//! The load-balancing server (LS).
//!
//! One worker thread per client connection (`ls/worker.rs` tells its story,
//! step by step against the course's select() loop). The worker's client
//! reader writes each query to every TS as it arrives; one link thread per
//! TS connection reads the replies into the worker's channel; the worker
//! waits on that channel until the earliest deadline and writes the replies
//! strictly in query order, exactly one per query, so a client may send
//! many queries without waiting (pipelining).
//!
//! - `worker`: the worker, the client reader, the replies on their way out.
//! - `session`: one client's links to the TSes and queries in flight, under
//!   the lock both threads share.
//! - `inflight`: the matching and deadline rules, a plain data structure.
//! - `link`: the link threads; `event`: what they tell the worker.
//! - `health`: what the whole LS knows about each TS; `stats`: counters.

mod event;
mod health;
mod inflight;
mod link;
mod session;
mod stats;
mod worker;

pub use health::{BACKOFF_CAP, BACKOFF_START, Health};
pub use inflight::MAX_BACKENDS;
pub use session::{BARE_READ_GAP, TS_WRITE_BOUND};
pub use stats::{Snapshot, Stats};

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crossbeam_channel::{RecvTimeoutError, Sender};

use crate::framing::Framing;
use crate::log;
use crate::server::{ServeOptions, Shutdown, serve};
use crate::wire::Dialect;

/// The per-query deadline when none is given (the course spec's 5 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a link waits for a TS to accept its connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The line sent to a client over `--max-clients` before it is closed.
pub const BUSY_REPLY: &str = "- Error:SERVER BUSY";

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
            if let Err(e) = worker::serve_client(client, &shared, &stopping) {
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
