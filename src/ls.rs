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
//! - `setup`: the options and what all sessions share.

mod event;
mod health;
mod inflight;
mod link;
mod session;
mod setup;
mod stats;
mod worker;

pub use health::{BACKOFF_CAP, BACKOFF_START, Health};
pub use inflight::MAX_BACKENDS;
pub use session::{BARE_READ_GAP, TS_WRITE_BOUND};
use setup::Shared;
pub use setup::{BUSY_REPLY, Backend, CONNECT_TIMEOUT, DEFAULT_TIMEOUT, LsOptions};
pub use stats::{Snapshot, Stats};

use std::io;
use std::net::TcpListener;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crossbeam_channel::{RecvTimeoutError, Sender};

use crate::dns::cache::SharedCache;
use crate::framing::Framing;
use crate::log;
use crate::server::{ServeOptions, Shutdown, serve};

/// How often `-v` prints the counters.
const REPORT_EVERY: Duration = Duration::from_secs(10);

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
                cache: (options.cache > 0).then(|| SharedCache::new(options.cache)),
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
