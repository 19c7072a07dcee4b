//! The stop signal every server shares, TCP and UDP alike: Ctrl-C, SIGTERM
//! or a test triggers it, and each server's wakers end its blocking calls
//! (a connection to its own listener, a datagram to its own socket).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::sync;

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
        sync::lock(&self.0.wakers)
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
