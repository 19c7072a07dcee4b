//! One client's session: a connected UDP socket per backend, and a reader
//! thread per socket that relays the backend's replies to that client
//! through the front socket.
//!
//! Giving each client its own sockets is what routes replies: a reply that
//! arrives on a session's socket can only be for that session's client, so
//! no request has to be matched to its reply and nothing waits for one.
//! Connected sockets also hear ICMP port unreachable, which feeds
//! [`Health`](super::health).
//!
//! Only the front thread opens, uses and closes sessions. Closing sets a flag
//! and wakes each reader ([`wake_connected`]); a reader also wakes once per
//! session timeout on its own, so it ends even if the wake-up could not be
//! sent.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use super::LbStats;
use super::health::Health;
use crate::framing::is_timeout;
use crate::log;
use crate::net::datagram::{RECV_BUFFER, is_unreachable, unspecified};
use crate::udp::{text, wake_connected};

/// Reader threads only move bytes (their buffer is on the heap); they need
/// little stack.
const READER_STACK: usize = 64 * 1024;

/// What every session and reader shares with the front thread.
pub(super) struct Shared {
    /// The socket clients talk to; readers send replies through it.
    pub front: UdpSocket,
    pub health: Health,
    pub stats: LbStats,
    /// Activity times are kept as nanoseconds since this instant.
    pub epoch: Instant,
    pub session_timeout: Duration,
}

impl Shared {
    fn since_epoch(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }
}

/// What the front thread and a session's readers both see.
struct State {
    closed: AtomicBool,
    /// Last datagram in either direction, in nanoseconds since `Shared::epoch`.
    last_active: AtomicU64,
}

/// One client's session.
pub(super) struct Session {
    client: SocketAddr,
    /// One per backend; `None` where the socket could not be connected.
    links: Vec<Option<Arc<UdpSocket>>>,
    state: Arc<State>,
    shared: Arc<Shared>,
    /// Whether [`LbStats`] counts it (only once fully open).
    counted: bool,
}

impl Session {
    /// Opens a socket per backend and starts its reader. A backend whose
    /// address cannot be connected to is marked down and left out.
    ///
    /// `done` is held by each reader until it ends, so whoever keeps the
    /// receiving end learns from the channel when every reader has ended.
    ///
    /// # Errors
    /// When a socket cannot be opened or a thread started (out of file
    /// descriptors or memory): the session is not opened.
    pub(super) fn open(
        client: SocketAddr,
        shared: &Arc<Shared>,
        done: &Sender<()>,
        now: Instant,
    ) -> io::Result<Session> {
        let mut session = Session {
            client,
            links: Vec::with_capacity(shared.health.backends().len()),
            state: Arc::new(State {
                closed: AtomicBool::new(false),
                last_active: AtomicU64::new(shared.since_epoch(now)),
            }),
            shared: Arc::clone(shared),
            counted: false,
        };
        for backend in 0..shared.health.backends().len() {
            match session.open_link(backend, done, now) {
                Ok(link) => session.links.push(link),
                Err(e) => {
                    session.close();
                    return Err(e);
                }
            }
        }
        shared.stats.session_opened();
        session.counted = true;
        Ok(session)
    }

    fn open_link(
        &self,
        backend: usize,
        done: &Sender<()>,
        now: Instant,
    ) -> io::Result<Option<Arc<UdpSocket>>> {
        let addr = self.shared.health.backends()[backend].addr;
        let link = UdpSocket::bind(unspecified(addr))?;
        if let Err(e) = link.connect(addr) {
            // No route to it: a backend problem, not this session's.
            self.shared.health.failed(backend, &e, now);
            return Ok(None);
        }
        link.set_read_timeout(Some(self.shared.session_timeout))?;
        let link = Arc::new(link);
        let reader = Reader {
            link: Arc::clone(&link),
            backend,
            client: self.client,
            state: Arc::clone(&self.state),
            shared: Arc::clone(&self.shared),
            _done: done.clone(),
        };
        self.shared.stats.reader_started();
        let spawned = thread::Builder::new()
            .name(format!("udp-lb reader {}", self.client))
            .stack_size(READER_STACK)
            .spawn(move || reader.relay());
        // On failure the closure, and the reader in it, was dropped unrun.
        spawned?;
        Ok(Some(link))
    }

    /// Sends `data` to `backend`.
    ///
    /// # Errors
    /// The socket's error; [`is_unreachable`] ones mean the datagram was not
    /// sent because the backend refused an earlier one.
    pub(super) fn send(&self, backend: usize, data: &[u8]) -> io::Result<()> {
        match &self.links[backend] {
            Some(link) => link.send(data).map(drop),
            None => Err(io::Error::new(
                io::ErrorKind::HostUnreachable,
                "no socket could be connected to it",
            )),
        }
    }

    /// Records activity at `now`.
    pub(super) fn touch(&self, now: Instant) {
        touch(&self.state, &self.shared, now);
    }

    /// When the session expires unless there is activity before.
    pub(super) fn expires_at(&self) -> Instant {
        let last = self.state.last_active.load(Ordering::Relaxed);
        self.shared.epoch + Duration::from_nanos(last) + self.shared.session_timeout
    }

    /// Stops the readers and releases the sockets once they have ended.
    pub(super) fn close(self) {
        drop(self);
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.state.closed.store(true, Ordering::SeqCst);
        for link in self.links.iter().flatten() {
            if let Err(e) = wake_connected(link) {
                log::info(format_args!(
                    "udp-lb: cannot wake a reader of {} ({e}); it ends within {} s",
                    self.client,
                    self.shared.session_timeout.as_secs_f64()
                ));
            }
        }
        if self.counted {
            self.shared.stats.session_closed();
        }
    }
}

fn touch(state: &State, shared: &Shared, now: Instant) {
    state
        .last_active
        .store(shared.since_epoch(now), Ordering::Relaxed);
}

/// A reader thread's belongings.
struct Reader {
    link: Arc<UdpSocket>,
    backend: usize,
    client: SocketAddr,
    state: Arc<State>,
    shared: Arc<Shared>,
    /// Dropped when the reader ends; see [`Session::open`].
    _done: Sender<()>,
}

impl Reader {
    /// Relays the backend's replies to the client until the session closes.
    fn relay(self) {
        let backend = &self.shared.health.backends()[self.backend];
        let mut buf = vec![0; RECV_BUFFER];
        while !self.state.closed.load(Ordering::SeqCst) {
            let len = match self.link.recv(&mut buf) {
                Ok(len) => len,
                Err(e) if is_unreachable(&e) => {
                    self.shared.health.failed(self.backend, &e, Instant::now());
                    continue;
                }
                Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn(format_args!(
                        "udp-lb: stopped relaying {backend}'s replies to {}: {e}",
                        self.client
                    ));
                    break;
                }
            };
            if self.state.closed.load(Ordering::SeqCst) {
                break;
            }
            if len == buf.len() {
                log::info(format_args!(
                    "udp-lb: dropped a truncated reply from {backend}"
                ));
                continue;
            }
            self.shared.health.replied(self.backend);
            touch(&self.state, &self.shared, Instant::now());
            match self.shared.front.send_to(&buf[..len], self.client) {
                Ok(_) => {
                    self.shared.stats.relayed();
                    log::info(format_args!(
                        "udp-lb: {backend} -> {}: {:?}",
                        self.client,
                        text(&buf[..len.min(80)])
                    ));
                }
                Err(e) => log::info(format_args!(
                    "udp-lb: cannot relay {backend}'s reply to {}: {e}",
                    self.client
                )),
            }
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.shared.stats.reader_ended();
    }
}
