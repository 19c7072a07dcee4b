//! The load-balancing server (LS).
//!
//! One worker thread per client connection (`ls/worker.rs` tells its story,
//! step by step against the course's select() loop). The worker's client
//! reader writes each query to every TS (one member of each `--pool`) as
//! it arrives; one link thread per TS connection reads the replies into the
//! worker's channel; the worker waits on that channel until the earliest
//! deadline and writes exactly one reply per query: course replies strictly
//! in query order, DNS answers as they settle. So a client may send many
//! queries without waiting (pipelining).
//!
//! - `worker`: a connection's life: the worker, the client reader, the
//!   replies on their way out. The front ends beside it: `course_front`,
//!   `dns_front` (with TCP) and `dns_udp`; [`FrontEnd`] lists what
//!   [`Ls::run`] serves.
//! - `session`: one client's links to the TSes and queries in flight, under
//!   the lock both threads share (`session/links`: the link state machine;
//!   `session/conn`: a link that is up, and its pacing).
//! - `decode`: what a TS's reply says; `course_dns`: a course reply in DNS
//!   terms.
//! - `inflight`: the matching and deadline rules, a plain data structure;
//!   `policy`: which member of a pool of replicas a query goes to.
//! - `link`: the link threads; `event`: what they tell the worker.
//! - `health`: what the whole LS knows about each TS; `stats`: counters.
//! - `setup`: the options and what all sessions share.

mod course_dns;
mod course_front;
mod decode;
mod dns_front;
mod dns_udp;
mod event;
mod health;
mod inflight;
pub mod iterative;
mod link;
mod observe;
mod policy;
mod probe;
mod session;
mod setup;
mod stats;
mod worker;

pub use health::{BACKOFF_CAP, BACKOFF_START, Health};
pub use inflight::MAX_BACKENDS;
pub use policy::Policy;
pub use session::{BARE_READ_GAP, TS_WRITE_BOUND};
pub use setup::{
    BUSY_REPLY, Backend, CONNECT_TIMEOUT, DEFAULT_DNS_TIMEOUT, DEFAULT_HEALTH_INTERVAL,
    DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CLIENTS, DEFAULT_MAX_CLIENTS_PER_IP, DEFAULT_MAX_INFLIGHT,
    DEFAULT_TIMEOUT, DEFAULT_TRY_TIMEOUT, LsOptions, TsProtocol,
};
use setup::{Balance, Pool, Shared};
pub use stats::{Frontend, MemberCounts, Snapshot, Stats};

use std::io;
use std::net::TcpListener;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crossbeam_channel::{RecvTimeoutError, Sender};

use crate::dns::{self, cache::SharedCache};
use crate::framing::Framing;
use crate::log;
use crate::net::DnsSockets;
use crate::net::connect_any;
use crate::server::{ServeOptions, serve, serve_each};
use crate::shutdown::Shutdown;
use crate::trace::Tracer;
use crate::web::{self, metrics::Metrics};

/// How often `-v` prints the counters.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// After a shutdown, connections get their query deadline and this much
/// more to finish what they received.
pub const SHUTDOWN_SLACK: Duration = Duration::from_millis(500);

/// A way clients reach the LS, with its sockets: [`Ls::run`] serves a list
/// of them through the same sessions, TSes and cache.
pub enum FrontEnd {
    /// The course protocol over TCP: a hostname a line, a reply line each,
    /// in order.
    Course(TcpListener),
    /// DNS (RFC 1035) over UDP and TCP.
    Dns(DnsSockets),
}

impl FrontEnd {
    /// The name of the thread that serves it, when it has one of its own.
    fn thread_name(front: &FrontEnd) -> &'static str {
        match front {
            FrontEnd::Course(_) => "ls course",
            FrontEnd::Dns(_) => "ls dns tcp",
        }
    }
}

/// A load-balancing server, ready to [`run`](Ls::run).
pub struct Ls {
    shared: Arc<Shared>,
}

impl Ls {
    /// An LS with `options`.
    ///
    /// # Errors
    /// When there is no TS or more than [`MAX_BACKENDS`], a bad pool,
    /// `stale` without a cache, or a `trace` file that cannot be created.
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
        if options.stale > 0 && options.cache == 0 {
            return Err("--stale serves from the cache: it needs --cache".to_string());
        }
        let mut pooled = 0u64;
        for pool in &options.pools {
            for &(ts, weight) in pool {
                if ts >= count || pooled & (1 << ts) != 0 || weight == 0 {
                    return Err(format!(
                        "a pool's members must be distinct TSes with a weight of at least 1, not {pool:?}"
                    ));
                }
                pooled |= 1 << ts;
            }
            if pool.is_empty() {
                return Err("a pool needs at least one member".to_string());
            }
        }
        let labels = options.backends.iter().map(|b| b.label.clone()).collect();
        let trace = match &options.trace {
            Some(path) => Some(Tracer::create(path, labels).map_err(|e| {
                format!(
                    "--trace {}: cannot write the trace there: {e}",
                    path.display()
                )
            })?),
            None => None,
        };
        Ok(Ls {
            shared: Arc::new(Shared {
                trace,
                health: options
                    .backends
                    .iter()
                    .map(|b| Arc::new(Health::new(&b.to_string())))
                    .collect(),
                backends: options.backends.clone(),
                stats: Arc::new(Stats::new(count)),
                cache: (options.cache > 0).then(|| {
                    let cache = SharedCache::new(options.cache);
                    cache.keep_stale(options.stale);
                    cache
                }),
                pools: Pool::all(&options),
                balance: Balance::new(count),
                options,
            }),
        })
    }

    /// The counters now, with the pools' members'.
    fn snapshot_of(shared: &Shared) -> Snapshot {
        let mut snapshot = shared
            .stats
            .snapshot(&shared.health, shared.balance.probe_transitions());
        let now = std::time::Instant::now();
        let balance = &shared.balance;
        let get = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        snapshot.pools = shared
            .pools
            .iter()
            .filter(|p| p.is_replicated())
            .map(|pool| {
                pool.members
                    .iter()
                    .map(|&ts| MemberCounts {
                        label: shared.backends[ts].label.clone(),
                        sent: get(&balance.sent[ts]),
                        answered: snapshot.answered.get(ts).copied().unwrap_or(0),
                        timeouts: get(&balance.timeouts[ts]),
                        retries: get(&balance.retries[ts]),
                        health: if !shared.health[ts].is_up() || balance.is_down(ts) {
                            "down"
                        } else if balance.backed_off(ts, now) {
                            "backed-off"
                        } else {
                            "up"
                        },
                    })
                    .collect()
            })
            .collect();
        snapshot
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
        Self::snapshot_of(&self.shared)
    }

    /// Every metric now, for the web endpoint (the same counters).
    pub fn metrics(&self) -> Metrics {
        observe::metrics(&self.shared)
    }

    /// A source of fresh metrics for [`web::serve`](crate::web::serve).
    pub fn metrics_source(&self) -> web::Source {
        let shared = Arc::clone(&self.shared);
        Arc::new(move || observe::metrics(&shared))
    }

    /// Serves clients on every front end in `fronts` until `shutdown`
    /// triggers; returns when every worker has answered the queries it
    /// received and closed. A front end that fails stops the LS. Prints
    /// the counters on stderr when it stops (and every 10 s with `-v`).
    ///
    /// # Errors
    /// When a socket's address cannot be read or a front end's thread
    /// cannot start.
    pub fn run(&self, fronts: Vec<FrontEnd>, shutdown: &Shutdown) -> io::Result<()> {
        let reporter = self.start_reporter();
        self.announce_pools();
        let (stop_health, health_stops) = crossbeam_channel::bounded::<()>(0);
        let health = ReporterGuard {
            thread: probe::spawn(&self.shared, health_stops),
            stop: Some(stop_health),
        };
        for front in &fronts {
            self.announce(front);
        }
        // What the course port tells a client that sends it DNS.
        let dns_port = fronts.iter().find_map(|front| match front {
            FrontEnd::Dns(sockets) => sockets.tcp.local_addr().ok().map(|addr| addr.port()),
            FrontEnd::Course(_) => None,
        });
        let served = serve_each(
            fronts,
            FrontEnd::thread_name,
            |front| self.serve(front, dns_port, shutdown),
            shutdown,
        );
        drop(health);
        drop(reporter);
        log::warn(format_args!("ls: {}", self.snapshot()));
        if let Some(tracer) = &self.shared.trace {
            match tracer.finish() {
                Ok(t) => log::warn(format_args!(
                    "trace: {} events written, {} dropped",
                    t.written, t.dropped
                )),
                Err(e) => log::warn(format_args!("trace: writing the trace failed: {e}")),
            }
        }
        served
    }

    /// Serves one front end until `shutdown` triggers; `dns_port`: the DNS
    /// front end's, if there is one.
    fn serve(&self, front: FrontEnd, dns_port: Option<u16>, shutdown: &Shutdown) -> io::Result<()> {
        match front {
            FrontEnd::Course(listener) => self.serve_course(listener, dns_port, shutdown),
            FrontEnd::Dns(sockets) => self.serve_dns(sockets, shutdown),
        }
    }

    /// A front end's start-up lines (stderr).
    fn announce(&self, front: &FrontEnd) {
        match front {
            FrontEnd::Course(_) => {}
            FrontEnd::Dns(_) => self.announce_dns(),
        }
    }

    /// The DNS front end's start-up lines (stderr): whom it answers, its
    /// rate limit, and what course TSes mean for names they do not hold.
    fn announce_dns(&self) {
        let options = &self.shared.options;
        log::warn(format_args!(
            "ls dns: answering clients in {} only (--allow)",
            options.allow
        ));
        if let Some(limit) = options.rrl {
            log::warn(format_args!("ls dns: {}", dns::rrl::describe(limit)));
        }
        if options.ts_protocol == TsProtocol::Line {
            log::warn(format_args!(
                "ls dns: course TSes (--ts-protocol line) are silent on names they do not hold: \
                 such a DNS query is SERVFAIL after --dns-timeout ({:?}) unless the TSes run \
                 with --answer-misses",
                options.dns_timeout
            ));
        }
    }

    /// The course protocol's accept loop.
    fn serve_course(
        &self,
        listener: TcpListener,
        dns_port: Option<u16>,
        shutdown: &Shutdown,
    ) -> io::Result<()> {
        let options = &self.shared.options;
        let serve_options = ServeOptions {
            // A worker answers what it already received within one timeout.
            grace: options.timeout + SHUTDOWN_SLACK,
            max_connections: options.max_clients,
            max_per_source: options.max_clients_per_ip,
            busy_reply: BUSY_REPLY,
            stats: Arc::clone(&self.shared.stats.connections),
            ..ServeOptions::new("ls", Duration::ZERO)
        };
        let shared = Arc::clone(&self.shared);
        let stopping = shutdown.clone();
        serve(
            listener,
            shutdown,
            &serve_options,
            move |client, activity| {
                let served =
                    course_front::serve_client(client, activity, &shared, dns_port, &stopping);
                if let Err(e) = served {
                    log::info(format_args!("ls: client connection ended: {e}"));
                }
            },
        )
    }

    /// The DNS front end: UDP on a thread of its own, TCP on this one.
    fn serve_dns(&self, sockets: DnsSockets, shutdown: &Shutdown) -> io::Result<()> {
        let DnsSockets { udp, tcp } = sockets;
        thread::scope(|scope| {
            let udp_side = thread::Builder::new()
                .name("ls dns udp".into())
                .spawn_scoped(scope, || {
                    dns_udp::serve_udp(udp, &self.shared, shutdown)
                        .inspect_err(|_| shutdown.trigger())
                })?;
            let tcp_side = self
                .serve_dns_tcp(tcp, shutdown)
                .inspect_err(|_| shutdown.trigger());
            let udp_side = udp_side
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("a DNS thread panicked")));
            tcp_side.and(udp_side)
        })
    }

    /// The DNS-over-TCP accept loop: a connection is a client like any.
    fn serve_dns_tcp(&self, listener: TcpListener, shutdown: &Shutdown) -> io::Result<()> {
        let options = &self.shared.options;
        let serve_options = ServeOptions {
            grace: options.dns_timeout + SHUTDOWN_SLACK,
            max_connections: options.max_clients,
            max_per_source: options.max_clients_per_ip,
            stats: Arc::clone(&self.shared.stats.dns_connections),
            ..ServeOptions::new("ls dns", Duration::ZERO)
        };
        let shared = Arc::clone(&self.shared);
        let stopping = shutdown.clone();
        serve(
            listener,
            shutdown,
            &serve_options,
            move |client, activity| {
                // A source `--allow` leaves out: closed unread, as dnsdist does.
                if let Ok(peer) = client.peer_addr()
                    && !dns_front::admits(&shared, peer)
                {
                    return;
                }
                if let Err(e) = dns_front::serve_tcp_client(client, activity, &shared, &stopping) {
                    log::info(format_args!("ls dns: tcp connection ended: {e}"));
                }
            },
        )
    }

    /// The LS's pools of several replicas and their members (stderr).
    fn announce_pools(&self) {
        let shared = &self.shared;
        for (i, pool) in shared
            .pools
            .iter()
            .filter(|p| p.is_replicated())
            .enumerate()
        {
            let members: Vec<String> = pool
                .members
                .iter()
                .map(|&ts| {
                    let weight = shared
                        .options
                        .all_pools()
                        .iter()
                        .flatten()
                        .find(|m| m.0 == ts)
                        .map_or(1, |m| m.1);
                    format!("{} weight {weight}", shared.backends[ts])
                })
                .collect();
            log::warn(format_args!(
                "ls: pool {} ({}, try timeout {:?}, health checks every {:?}): {}",
                i + 1,
                shared.options.policy,
                shared.options.try_timeout,
                shared.options.health_interval,
                members.join(", ")
            ));
        }
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
                    log::info(format_args!("ls: {}", Ls::snapshot_of(&shared)));
                }
            })
            .ok()?;
        Some(ReporterGuard {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

/// Stops the reporter (or health) thread when dropped.
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
    ls.run(vec![FrontEnd::Course(listener)], shutdown)
}
