//! Passive health: which backends the rotation skips.
//!
//! UDP has no connection to lose, so a backend's death shows only as an ICMP
//! port unreachable, which Linux reports as "connection refused" on the next
//! `send` or `recv` of a *connected* UDP socket. Every session's socket to a
//! backend is connected, so whichever socket hears the refusal first marks
//! the backend down for everyone. A down backend is skipped for the fail
//! timeout (10 s by default, like nginx's `fail_timeout`), then retried with
//! the next datagram its turn brings; any reply marks it up again, another
//! refusal puts it back down. Each transition is logged once.

use std::io;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{Backend, LbStats};
use crate::log;
use crate::sync::lock;

/// The health of every backend, shared by the front thread and the readers.
pub(super) struct Health {
    backends: Vec<Backend>,
    states: Vec<BackendHealth>,
    fail_timeout: Duration,
    stats: LbStats,
}

struct BackendHealth {
    /// `true` while `state` is `Up`: the per-datagram checks read only this.
    up: AtomicBool,
    state: Mutex<State>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Up,
    /// Skipped until `until`.
    Down {
        until: Instant,
    },
    /// The skip window ended and datagrams go to it again; no reply yet.
    Retrying,
}

impl Health {
    /// Every backend up.
    pub(super) fn new(backends: Vec<Backend>, fail_timeout: Duration, stats: LbStats) -> Health {
        let states = backends
            .iter()
            .map(|_| BackendHealth {
                up: AtomicBool::new(true),
                state: Mutex::new(State::Up),
            })
            .collect();
        Health {
            backends,
            states,
            fail_timeout,
            stats,
        }
    }

    /// The backends, in rotation order.
    pub(super) fn backends(&self) -> &[Backend] {
        &self.backends
    }

    /// Whether the rotation may send to `backend` at `now`. A backend whose
    /// skip window has passed becomes `Retrying` and is usable.
    pub(super) fn usable(&self, backend: usize, now: Instant) -> bool {
        let health = &self.states[backend];
        if health.up.load(Ordering::Relaxed) {
            return true;
        }
        let mut state = lock(&health.state);
        match *state {
            State::Up | State::Retrying => true,
            State::Down { until } if now >= until => {
                *state = State::Retrying;
                log::warn(format_args!(
                    "udp-lb: retrying {} after {} s",
                    self.backends[backend],
                    self.fail_timeout.as_secs_f64()
                ));
                true
            }
            State::Down { .. } => false,
        }
    }

    /// `backend` refused a datagram (`error`): skip it for the fail timeout,
    /// unless it is already being skipped.
    pub(super) fn failed(&self, backend: usize, error: &io::Error, now: Instant) {
        let health = &self.states[backend];
        let mut state = lock(&health.state);
        let was = *state;
        if let State::Down { .. } = was {
            // Other sessions' sockets report the same refusal: one is enough.
            return;
        }
        *state = State::Down {
            until: now + self.fail_timeout,
        };
        health.up.store(false, Ordering::Relaxed);
        drop(state);
        let verb = if was == State::Retrying {
            "is still down"
        } else {
            "is down"
        };
        log::warn(format_args!(
            "udp-lb: {} {verb} ({error}); skipping it for {} s",
            self.backends[backend],
            self.fail_timeout.as_secs_f64()
        ));
        self.stats.backend_down(backend, true);
    }

    /// `backend` sent a reply: it is up.
    pub(super) fn replied(&self, backend: usize) {
        let health = &self.states[backend];
        if health.up.load(Ordering::Relaxed) {
            return;
        }
        let mut state = lock(&health.state);
        if *state == State::Up {
            return;
        }
        *state = State::Up;
        health.up.store(true, Ordering::Relaxed);
        drop(state);
        log::warn(format_args!(
            "udp-lb: {} is up again",
            self.backends[backend]
        ));
        self.stats.backend_down(backend, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(fail_timeout: Duration) -> (Health, LbStats) {
        let backends = (1..=2)
            .map(|i| Backend {
                label: format!("server{i}"),
                addr: ([127, 0, 0, 1], 2525 + i).into(),
            })
            .collect();
        let stats = LbStats::new();
        (Health::new(backends, fail_timeout, stats.clone()), stats)
    }

    fn refused() -> io::Error {
        io::Error::from(io::ErrorKind::ConnectionRefused)
    }

    #[test]
    fn a_refused_backend_is_skipped_for_the_fail_timeout_then_retried() {
        let (health, stats) = health(Duration::from_secs(10));
        let t0 = Instant::now();
        health.failed(1, &refused(), t0);
        assert!(health.usable(0, t0));
        assert!(!health.usable(1, t0 + Duration::from_secs(9)));
        assert!(health.usable(1, t0 + Duration::from_secs(10)));
        assert_eq!(stats.snapshot().down, vec![false, true]);
        health.replied(1);
        assert_eq!(stats.snapshot().down, vec![false, false]);
        assert!(health.usable(1, t0));
    }

    #[test]
    fn repeated_refusals_while_down_count_once() {
        let (health, stats) = health(Duration::from_secs(10));
        let t0 = Instant::now();
        health.failed(0, &refused(), t0);
        health.failed(0, &refused(), t0 + Duration::from_secs(1));
        assert_eq!(stats.snapshot().failures, vec![1]);
        // The window is not extended by the second report.
        assert!(health.usable(0, t0 + Duration::from_secs(10)));
        health.failed(0, &refused(), t0 + Duration::from_secs(10));
        assert_eq!(stats.snapshot().failures, vec![2]);
    }
}
