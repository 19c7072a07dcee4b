//! What every TCP server role shares: the shutdown signal and the
//! thread-per-connection accept loop.
//!
//! A server takes an already bound listener (port 0 in tests) and a
//! [`Shutdown`]. Triggering the shutdown wakes the blocking `accept` by
//! connecting to the listener's own address, and ends the reads of every open
//! connection with `shutdown(Read)`, so each handler finishes the message it
//! is working on, sees end of stream and returns. [`serve`] returns once every
//! handler has.

use std::collections::HashMap;
use std::io;
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, Shutdown as Direction, SocketAddr, TcpListener, TcpStream,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;

use crossbeam_channel::RecvTimeoutError;
use std::time::Duration;

use crate::log;

type Waker = Box<dyn FnOnce() + Send>;

/// A stop signal shared by servers and whoever stops them (Ctrl-C, a test).
/// Cloning gives another handle to the same signal.
#[derive(Clone, Default)]
pub struct Shutdown(Arc<Inner>);

#[derive(Default)]
struct Inner {
    triggered: AtomicBool,
    wakers: Mutex<Wakers>,
}

#[derive(Default)]
struct Wakers {
    next_id: u64,
    pending: HashMap<u64, Waker>,
}

impl Shutdown {
    /// A signal not yet triggered.
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Whether [`trigger`](Self::trigger) was called.
    pub fn is_triggered(&self) -> bool {
        self.0.triggered.load(Ordering::SeqCst)
    }

    /// Triggers the signal and runs every registered waker, once.
    pub fn trigger(&self) {
        let wakers = {
            let mut wakers = self.lock();
            self.0.triggered.store(true, Ordering::SeqCst);
            std::mem::take(&mut wakers.pending)
        };
        for waker in wakers.into_values() {
            waker();
        }
    }

    /// Runs `waker` when the signal is triggered (at once if it already was),
    /// unless the returned guard is dropped first.
    pub fn on_trigger(&self, waker: impl FnOnce() + Send + 'static) -> WakerGuard {
        let mut wakers = self.lock();
        if self.is_triggered() {
            drop(wakers);
            waker();
            return WakerGuard {
                shutdown: self.clone(),
                id: None,
            };
        }
        let id = wakers.next_id;
        wakers.next_id += 1;
        wakers.pending.insert(id, Box::new(waker));
        WakerGuard {
            shutdown: self.clone(),
            id: Some(id),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Wakers> {
        // A waker never panics while the lock is held, so poisoning cannot
        // leave the map half-updated.
        self.0.wakers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Keeps a waker registered; dropping it unregisters the waker.
#[must_use = "dropping the guard unregisters the waker"]
pub struct WakerGuard {
    shutdown: Shutdown,
    id: Option<u64>,
}

impl Drop for WakerGuard {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.shutdown.lock().pending.remove(&id);
        }
    }
}

/// The address to connect to in order to reach a listener bound to `addr`
/// (an all-interfaces bind is reached on loopback).
pub fn reachable_addr(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

/// Accepts connections until `shutdown` triggers, running `handler` on its
/// own thread for each.
///
/// When `shutdown` triggers, accepting stops and every connection's reads end
/// (its handler sees end of stream once it has consumed what the peer already
/// sent). Handlers then get `grace` to finish; connections still open after
/// it are shut down in both directions, which ends a handler blocked writing
/// to a peer that does not read. Returns when every handler has returned.
///
/// `role` names the server in logs and thread names.
///
/// # Errors
/// When the listener's address cannot be read.
pub fn serve<H>(
    listener: TcpListener,
    shutdown: &Shutdown,
    role: &str,
    grace: Duration,
    handler: H,
) -> io::Result<()>
where
    H: Fn(TcpStream) + Send + Sync + 'static,
{
    let wake_addr = reachable_addr(listener.local_addr()?);
    let open = Connections::default();
    let _on_trigger = {
        let open = open.clone();
        shutdown.on_trigger(move || {
            open.shutdown_all(Direction::Read);
            let _ = TcpStream::connect_timeout(&wake_addr, Duration::from_secs(1));
        })
    };
    let handler = Arc::new(handler);
    // Each handler thread holds a sender; the channel disconnects when the last ends.
    let (running, all_done) = crossbeam_channel::bounded::<()>(0);
    for conn in listener.incoming() {
        if shutdown.is_triggered() {
            break;
        }
        let stream = match conn {
            Ok(stream) => stream,
            Err(e) => {
                log::warn(format_args!("{role}: accept failed: {e}"));
                // Out of file descriptors or a similar condition: back off
                // rather than spin on an accept that keeps failing.
                thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let peer = stream
            .peer_addr()
            .map_or_else(|_| "unknown peer".to_string(), |a| a.to_string());
        let tracked = match open.track(&stream) {
            Ok(tracked) => tracked,
            Err(e) => {
                log::warn(format_args!("{role}: dropping connection from {peer}: {e}"));
                continue;
            }
        };
        if shutdown.is_triggered() {
            // Triggered between accept and track: this one was not woken.
            let _ = stream.shutdown(Direction::Read);
        }
        let handler = Arc::clone(&handler);
        let running = running.clone();
        let spawned = thread::Builder::new()
            .name(format!("{role} {peer}"))
            .spawn(move || {
                let _running = running;
                let _tracked = tracked;
                handler(stream);
            });
        if let Err(e) = spawned {
            log::warn(format_args!(
                "{role}: cannot start a thread for {peer}: {e}"
            ));
        }
    }
    drop(running);
    if let Err(RecvTimeoutError::Timeout) = all_done.recv_timeout(grace) {
        log::warn(format_args!(
            "{role}: closing connections still busy after {grace:?}"
        ));
        open.shutdown_all(Direction::Both);
        let _ = all_done.recv();
    }
    Ok(())
}

/// The open connections of one server, so that shutdown can reach them.
#[derive(Clone, Default)]
struct Connections(Arc<Mutex<ConnectionMap>>);

#[derive(Default)]
struct ConnectionMap {
    next_id: u64,
    streams: HashMap<u64, TcpStream>,
}

impl Connections {
    fn lock(&self) -> MutexGuard<'_, ConnectionMap> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a duplicate of `stream` until the returned guard drops.
    fn track(&self, stream: &TcpStream) -> io::Result<Tracked> {
        let clone = stream.try_clone()?;
        let mut map = self.lock();
        let id = map.next_id;
        map.next_id += 1;
        map.streams.insert(id, clone);
        Ok(Tracked {
            connections: self.clone(),
            id,
        })
    }

    fn shutdown_all(&self, direction: Direction) {
        for stream in self.lock().streams.values() {
            let _ = stream.shutdown(direction);
        }
    }
}

/// Unregisters its connection when dropped.
struct Tracked {
    connections: Connections,
    id: u64,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.connections.lock().streams.remove(&self.id);
    }
}
