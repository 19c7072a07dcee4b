//! What a running load balancer reports about itself: open sessions, live
//! reader threads, datagrams moved and backend failures. Tests wait on these
//! instead of guessing with sleeps; the binary logs them when it stops.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::sync;

/// A handle on a load balancer's counters. Cloning gives another handle to
/// the same counters; pass one to [`run`](super::run) and keep the other.
#[derive(Clone, Default)]
pub struct LbStats(Arc<Inner>);

#[derive(Default)]
struct Inner {
    /// Bumped once per datagram, so kept out of the lock.
    forwarded: AtomicU64,
    relayed: AtomicU64,
    counts: Mutex<Counts>,
    changed: Condvar,
}

#[derive(Clone, Default)]
struct Counts {
    sessions: usize,
    readers: usize,
    failures: Vec<u64>,
    down: Vec<bool>,
}

/// The counters at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LbSnapshot {
    /// Client sessions open.
    pub sessions: usize,
    /// Reader threads alive (one per backend per session while it is open).
    pub readers: usize,
    /// Client datagrams sent on to a backend.
    pub forwarded: u64,
    /// Backend replies sent back to a client.
    pub relayed: u64,
    /// For each backend, how many times it was marked down.
    pub failures: Vec<u64>,
    /// For each backend, whether it is being skipped or retried now.
    pub down: Vec<bool>,
}

impl LbStats {
    /// Counters at zero.
    pub fn new() -> LbStats {
        LbStats::default()
    }

    /// The counters now.
    pub fn snapshot(&self) -> LbSnapshot {
        self.snapshot_of(&self.lock())
    }

    /// Waits until `done` holds for the counters, at most `timeout`; returns
    /// the snapshot that satisfied it, or `None` on timeout. Wakes on every
    /// change of sessions, readers and backend health (not on each datagram;
    /// those counters are read when the others change).
    pub fn wait_until(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&LbSnapshot) -> bool,
    ) -> Option<LbSnapshot> {
        let deadline = Instant::now() + timeout;
        let mut counts = self.lock();
        loop {
            let snapshot = self.snapshot_of(&counts);
            if done(&snapshot) {
                return Some(snapshot);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            counts = match self.0.changed.wait_timeout(counts, left) {
                Ok((counts, _)) => counts,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    pub(super) fn forwarded(&self) {
        self.0.forwarded.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn relayed(&self) {
        self.0.relayed.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn session_opened(&self) {
        self.update(|c| c.sessions += 1);
    }

    pub(super) fn session_closed(&self) {
        self.update(|c| c.sessions = c.sessions.saturating_sub(1));
    }

    pub(super) fn reader_started(&self) {
        self.update(|c| c.readers += 1);
    }

    pub(super) fn reader_ended(&self) {
        self.update(|c| c.readers = c.readers.saturating_sub(1));
    }

    /// Backend `backend` went down (`true`) or came back (`false`).
    pub(super) fn backend_down(&self, backend: usize, down: bool) {
        self.update(|c| {
            if c.down.len() <= backend {
                c.down.resize(backend + 1, false);
                c.failures.resize(backend + 1, 0);
            }
            if down {
                c.failures[backend] += 1;
            }
            c.down[backend] = down;
        });
    }

    fn update(&self, change: impl FnOnce(&mut Counts)) {
        change(&mut self.lock());
        self.0.changed.notify_all();
    }

    fn snapshot_of(&self, counts: &Counts) -> LbSnapshot {
        LbSnapshot {
            sessions: counts.sessions,
            readers: counts.readers,
            forwarded: self.0.forwarded.load(Ordering::Relaxed),
            relayed: self.0.relayed.load(Ordering::Relaxed),
            failures: counts.failures.clone(),
            down: counts.down.clone(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Counts> {
        // Updates are single assignments; a panic cannot leave them half done.
        sync::lock(&self.0.counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    #[test]
    fn wait_until_wakes_on_a_change_from_another_thread() {
        let stats = LbStats::new();
        let other = stats.clone();
        let opener = thread::spawn(move || other.session_opened());
        let seen = stats.wait_until(Duration::from_secs(5), |s| s.sessions == 1);
        assert_eq!(seen.map(|s| s.sessions), Some(1));
        opener.join().unwrap();
    }

    #[test]
    fn wait_until_gives_up_after_its_timeout() {
        let stats = LbStats::new();
        let started = Instant::now();
        assert!(
            stats
                .wait_until(Duration::from_millis(20), |s| s.sessions == 1)
                .is_none()
        );
        assert!(started.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn health_changes_are_counted_per_backend() {
        let stats = LbStats::new();
        stats.backend_down(2, true);
        stats.backend_down(2, false);
        stats.backend_down(2, true);
        let s = stats.snapshot();
        assert_eq!(s.failures, vec![0, 0, 2]);
        assert_eq!(s.down, vec![false, false, true]);
    }
}
