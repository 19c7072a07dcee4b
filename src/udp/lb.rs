//! The UDP load balancer: hands each client datagram to the next backend in
//! one global round-robin rotation, and relays each backend reply to the
//! client that sent the request.
//!
//! One front thread receives every client datagram on the front socket. It
//! finds the client's session (`lb/session.rs`: keyed by the client's
//! address, opened on its first datagram), picks the next usable backend of
//! the rotation (`lb/health.rs`) and sends the datagram on the session's
//! socket for that backend. It never waits for a reply: each session socket has a reader
//! thread that relays replies as they come. A lost datagram or a silent
//! backend therefore delays nothing else.
//!
//! Sessions idle (no datagram either way) for the session timeout are closed
//! by the front thread, which sets its receive timeout to the earliest
//! possible expiry so it wakes for it even when no datagram comes (a session
//! may outlive the timeout by a sixteenth of it, see `Balancer::arm`). At most
//! [`LbOptions::max_sessions`] sessions are open: while that many are, a
//! datagram from a new client is dropped (the transition is logged) and
//! clients with a session carry on; the new client gets one as soon as a
//! session expires.

mod health;
mod session;
mod stats;

pub use stats::{LbSnapshot, LbStats};

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use self::health::Health;
use self::session::{Session, Shared};
use crate::log;
use crate::net::datagram::{RECV_BUFFER, Received, is_unreachable, recv_datagram, wake_on_trigger};
use crate::shutdown::Shutdown;
use crate::udp::text;

/// How long a session may stay idle when no timeout is given.
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a backend that refused a datagram is skipped when no fail
/// timeout is given (nginx's `fail_timeout` default).
pub const DEFAULT_FAIL_TIMEOUT: Duration = Duration::from_secs(10);

/// How many sessions may be open at once when no limit is given. Each holds
/// a socket and a thread per backend (with 3 backends: 3 file descriptors,
/// about 200 KiB of memory at most).
pub const DEFAULT_MAX_SESSIONS: usize = 4096;

/// One backend ("ping server") the load balancer forwards to.
#[derive(Clone, Debug)]
pub struct Backend {
    /// How logs name it: `server1`, `server2`, ...
    pub label: String,
    /// Where datagrams go.
    pub addr: SocketAddr,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.label, self.addr)
    }
}

/// How a load balancer behaves.
#[derive(Clone, Debug)]
pub struct LbOptions {
    /// The backends, in rotation order.
    pub backends: Vec<Backend>,
    /// A session idle this long is closed and its threads and sockets freed.
    pub session_timeout: Duration,
    /// How long a backend that refused a datagram is skipped.
    pub fail_timeout: Duration,
    /// The most sessions open at once.
    pub max_sessions: usize,
}

impl LbOptions {
    /// Options with the defaults: 60 s session timeout, 10 s fail timeout,
    /// 4096 sessions.
    pub fn new(backends: Vec<Backend>) -> LbOptions {
        LbOptions {
            backends,
            session_timeout: DEFAULT_SESSION_TIMEOUT,
            fail_timeout: DEFAULT_FAIL_TIMEOUT,
            max_sessions: DEFAULT_MAX_SESSIONS,
        }
    }
}

/// Balances datagrams arriving on `socket` until `shutdown` triggers, then
/// closes every session; returns once every reader thread has ended.
/// `stats` receives the counters.
///
/// # Errors
/// `InvalidInput` without backends or with a zero session timeout;
/// otherwise when the front socket fails in a way that would make every
/// later receive fail too.
pub fn run(
    socket: UdpSocket,
    options: LbOptions,
    stats: &LbStats,
    shutdown: &Shutdown,
) -> io::Result<()> {
    if options.backends.is_empty() || options.session_timeout.is_zero() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the load balancer needs at least one backend and a session timeout above 0",
        ));
    }
    let _wake = wake_on_trigger(&socket, shutdown)?;
    // Readers hold a sender each; `recv` below fails once all have ended.
    let (done, readers_ended) = crossbeam_channel::bounded::<()>(0);
    let shared = Arc::new(Shared {
        front: socket,
        health: Health::new(options.backends, options.fail_timeout, stats.clone()),
        stats: stats.clone(),
        epoch: Instant::now(),
        session_timeout: options.session_timeout,
    });
    let mut balancer = Balancer {
        shared: Arc::clone(&shared),
        done,
        sessions: HashMap::new(),
        max_sessions: options.max_sessions,
        next: 0,
        next_sweep: None,
        armed: None,
        slack: (options.session_timeout / 16).max(Duration::from_millis(1)),
        full: false,
        open_failing: false,
    };
    let result = balancer.serve(shutdown);
    drop(balancer);
    let _ = readers_ended.recv();
    let s = stats.snapshot();
    log::warn(format_args!(
        "udp-lb: datagrams forwarded {}, replies relayed {}; backends marked down {} times",
        s.forwarded,
        s.relayed,
        s.failures.iter().sum::<u64>()
    ));
    result
}

/// The front thread's state.
struct Balancer {
    shared: Arc<Shared>,
    done: Sender<()>,
    sessions: HashMap<SocketAddr, Session>,
    max_sessions: usize,
    /// The rotation: the backend the next datagram goes to, if usable.
    next: usize,
    /// No session can expire before this; `None` without sessions.
    next_sweep: Option<Instant>,
    /// The front socket's receive timeout (`None`: blocks until a datagram).
    armed: Option<Duration>,
    /// How far the receive timeout may be off before it is set again.
    slack: Duration,
    /// Whether new clients are being turned away (for logging transitions).
    full: bool,
    /// Whether opening sessions is failing (for logging transitions).
    open_failing: bool,
}

impl Balancer {
    fn serve(&mut self, shutdown: &Shutdown) -> io::Result<()> {
        let mut buf = vec![0; RECV_BUFFER];
        while !shutdown.is_triggered() {
            let mut now = Instant::now();
            if self.next_sweep.is_some_and(|at| at <= now) {
                self.sweep(now);
            }
            self.arm(now)?;
            let Received::Datagram(len, client) =
                recv_datagram(&self.shared.front, &mut buf, "udp-lb")?
            else {
                continue;
            };
            if shutdown.is_triggered() {
                break;
            }
            now = Instant::now();
            self.forward(client, &buf[..len], now);
        }
        Ok(())
    }

    /// Sets the front socket's receive timeout so that `recv` returns by the
    /// next expiry even if no datagram comes. Setting it on every datagram
    /// cost roughly a third of the throughput, so a timeout up to `slack`
    /// longer than wanted is left alone (sessions then expire at most `slack`
    /// late). One shorter than wanted is always replaced: kept, it would wake
    /// the thread again and again before the expiry, a polling loop.
    fn arm(&mut self, now: Instant) -> io::Result<()> {
        let wanted = self.next_sweep.map(|at| {
            at.saturating_duration_since(now)
                .max(Duration::from_millis(1))
        });
        if must_rearm(self.armed, wanted, self.slack) {
            self.shared.front.set_read_timeout(wanted)?;
            self.armed = wanted;
        }
        Ok(())
    }

    /// Sends `data` from `client` to the next usable backend.
    fn forward(&mut self, client: SocketAddr, data: &[u8], now: Instant) {
        if !self.open_session(client, now) {
            return;
        }
        let Some(session) = self.sessions.get(&client) else {
            return;
        };
        session.touch(now);
        let backends = self.shared.health.backends().len();
        // A refused send did not leave: give the datagram to the next backend.
        for _ in 0..backends {
            let backend = pick(&self.shared.health, &mut self.next, now);
            let label = &self.shared.health.backends()[backend];
            match session.send(backend, data) {
                Ok(()) => {
                    self.shared.stats.forwarded();
                    log::info(format_args!(
                        "udp-lb: {client} -> {label}: {:?}",
                        text(&data[..data.len().min(80)])
                    ));
                    return;
                }
                Err(e) if is_unreachable(&e) => self.shared.health.failed(backend, &e, now),
                Err(e) => {
                    log::info(format_args!(
                        "udp-lb: cannot forward {client}'s datagram to {label}: {e}"
                    ));
                    return;
                }
            }
        }
        log::info(format_args!(
            "udp-lb: dropped {client}'s datagram: every backend refused it"
        ));
    }

    /// Whether `client` has a session, opening one if there is room.
    fn open_session(&mut self, client: SocketAddr, now: Instant) -> bool {
        let open = self.sessions.len();
        match self.sessions.entry(client) {
            Entry::Occupied(_) => true,
            Entry::Vacant(entry) => {
                if open >= self.max_sessions {
                    if !self.full {
                        self.full = true;
                        log::warn(format_args!(
                            "udp-lb: {open} sessions open, the maximum: dropping datagrams from new clients until one expires"
                        ));
                    }
                    return false;
                }
                match Session::open(client, &self.shared, &self.done, now) {
                    Ok(session) => {
                        if self.open_failing {
                            self.open_failing = false;
                            log::warn(format_args!("udp-lb: sessions open again"));
                        }
                        log::info(format_args!("udp-lb: new session for {client}"));
                        let expiry = session.expires_at();
                        self.next_sweep = Some(self.next_sweep.map_or(expiry, |at| at.min(expiry)));
                        entry.insert(session);
                        true
                    }
                    Err(e) => {
                        if !self.open_failing {
                            self.open_failing = true;
                            log::warn(format_args!(
                                "udp-lb: cannot open a session for {client} ({e}); dropping datagrams from new clients until sessions open again"
                            ));
                        }
                        false
                    }
                }
            }
        }
    }

    /// Closes the sessions idle for the session timeout; notes when the next
    /// one can expire.
    fn sweep(&mut self, now: Instant) {
        let mut next: Option<Instant> = None;
        self.sessions.retain(|client, session| {
            let expiry = session.expires_at();
            if expiry <= now {
                log::info(format_args!("udp-lb: session for {client} expired"));
                false
            } else {
                next = Some(next.map_or(expiry, |at| at.min(expiry)));
                true
            }
        });
        self.next_sweep = next;
        if self.full && self.sessions.len() < self.max_sessions {
            self.full = false;
            log::warn(format_args!(
                "udp-lb: sessions expired: new clients are served again"
            ));
        }
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        for (_, session) in self.sessions.drain() {
            session.close();
        }
    }
}

/// The next usable backend of the rotation, advancing it. When every
/// backend is being skipped the datagram goes to the next one anyway:
/// dropping it would help no one, and it doubles as a retry.
fn pick(health: &Health, next: &mut usize, now: Instant) -> usize {
    let count = health.backends().len();
    for step in 0..count {
        let backend = (*next + step) % count;
        if health.usable(backend, now) {
            *next = (backend + 1) % count;
            return backend;
        }
    }
    let backend = *next % count;
    *next = (backend + 1) % count;
    backend
}

/// Whether a receive timeout of `armed` must be replaced by `wanted` (see
/// `arm`): when it would fire early, or more than `slack` late.
fn must_rearm(armed: Option<Duration>, wanted: Option<Duration>, slack: Duration) -> bool {
    match (armed, wanted) {
        (None, None) => false,
        (Some(armed), Some(wanted)) => armed < wanted || armed - wanted > slack,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(count: u16) -> Health {
        let backends = (1..=count)
            .map(|i| Backend {
                label: format!("server{i}"),
                addr: ([127, 0, 0, 1], 2525 + i).into(),
            })
            .collect();
        Health::new(backends, Duration::from_secs(10), LbStats::new())
    }

    fn rotation(health: &Health, next: &mut usize, now: Instant, n: usize) -> Vec<usize> {
        (0..n).map(|_| pick(health, next, now)).collect()
    }

    #[test]
    fn rotation_is_cyclic_and_skips_down_backends() {
        let health = health(3);
        let now = Instant::now();
        let mut next = 0;
        assert_eq!(rotation(&health, &mut next, now, 4), [0, 1, 2, 0]);
        health.failed(2, &io::ErrorKind::ConnectionRefused.into(), now);
        assert_eq!(rotation(&health, &mut next, now, 4), [1, 0, 1, 0]);
        let later = now + Duration::from_secs(10);
        assert_eq!(rotation(&health, &mut next, later, 3), [1, 2, 0]);
    }

    #[test]
    fn with_every_backend_down_the_rotation_goes_on() {
        let health = health(2);
        let now = Instant::now();
        for backend in 0..2 {
            health.failed(backend, &io::ErrorKind::ConnectionRefused.into(), now);
        }
        let mut next = 1;
        assert_eq!(rotation(&health, &mut next, now, 3), [1, 0, 1]);
    }
}

#[cfg(test)]
mod rearm {
    use super::*;

    fn ms(n: u64) -> Option<Duration> {
        Some(Duration::from_millis(n))
    }

    #[test]
    fn a_timeout_that_would_fire_early_is_always_replaced() {
        let slack = Duration::from_millis(3750);
        // Kept, a 1 ms timeout would wake the thread a hundred times first.
        assert!(must_rearm(ms(1), ms(100), slack));
        // Firing late within the slack is tolerated, beyond it is not.
        assert!(!must_rearm(ms(3000), ms(100), slack));
        assert!(must_rearm(ms(5000), ms(100), slack));
        assert!(must_rearm(None, ms(100), slack));
        assert!(must_rearm(ms(100), None, slack));
        assert!(!must_rearm(None, None, slack));
    }
}
