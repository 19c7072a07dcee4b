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
use std::thread::{self, JoinHandle};
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

    /// Ends the reads of `stream` when the signal is triggered: its reader
    /// sees end of stream once the bytes already received are consumed.
    /// Writes still work, so the reply in progress reaches the peer.
    ///
    /// # Errors
    /// When the socket cannot be duplicated (out of file descriptors).
    pub fn end_reads_on_trigger(&self, stream: &TcpStream) -> io::Result<WakerGuard> {
        let stream = stream.try_clone()?;
        Ok(self.on_trigger(move || {
            let _ = stream.shutdown(Direction::Read);
        }))
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
/// own thread for each; returns when every handler has returned.
///
/// `role` names the server in logs and thread names.
///
/// # Errors
/// When the listener's address cannot be read.
pub fn serve<H>(
    listener: TcpListener,
    shutdown: &Shutdown,
    role: &str,
    handler: H,
) -> io::Result<()>
where
    H: Fn(TcpStream) + Send + Sync + 'static,
{
    let wake_addr = reachable_addr(listener.local_addr()?);
    let _wake_accept = shutdown.on_trigger(move || {
        let _ = TcpStream::connect_timeout(&wake_addr, Duration::from_secs(1));
    });
    let handler = Arc::new(handler);
    let mut handlers: Vec<JoinHandle<()>> = Vec::new();
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
        let reads_end = match shutdown.end_reads_on_trigger(&stream) {
            Ok(guard) => guard,
            Err(e) => {
                log::warn(format_args!("{role}: dropping connection from {peer}: {e}"));
                continue;
            }
        };
        let handler = Arc::clone(&handler);
        let spawned = thread::Builder::new()
            .name(format!("{role} {peer}"))
            .spawn(move || {
                let _reads_end = reads_end;
                handler(stream);
            });
        handlers.retain(|h| !h.is_finished());
        match spawned {
            Ok(handle) => handlers.push(handle),
            Err(e) => log::warn(format_args!(
                "{role}: cannot start a thread for {peer}: {e}"
            )),
        }
    }
    for handle in handlers {
        let _ = handle.join();
    }
    Ok(())
}
