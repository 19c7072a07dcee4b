//! What the whole LS knows about each TS: up or down, since when, and when the
//! next connection attempt is due.
//!
//! Every client session has its own connection to every TS, but they share one
//! [`Health`] per TS. While a TS is down, only one session at a time may try
//! to connect to it (the probe), on an exponential backoff with jitter, so a
//! dead TS is not hammered by every session; when the probe succeeds, every
//! session reconnects. While clients are sending queries, a probe is also due
//! one second after the last, whatever the backoff: a TS that comes back is
//! used again within about a second, and a dead one still sees at most one
//! attempt a second from the whole LS. Transitions are logged once, here, not
//! once per session.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::framing::Framing;
use crate::log;
use crate::random::{SplitMix64, random_seed};
use crate::sync;

/// First wait after a TS goes down.
pub const BACKOFF_START: Duration = Duration::from_millis(100);

/// Longest wait between connection attempts to a TS that stays down.
pub const BACKOFF_CAP: Duration = Duration::from_secs(5);

/// Longest wait between probes while sessions have queries to send.
pub const PROBE_IN_USE: Duration = Duration::from_secs(1);

/// How often a session with a link down looks at the shared record again,
/// at most: bounds how long a session takes to notice that another one
/// reconnected.
pub const RECHECK: Duration = Duration::from_millis(250);

/// The shared health record of one TS.
pub struct Health {
    label: String,
    state: Mutex<State>,
    transitions: AtomicU64,
    /// The TS has said `NOT FOUND` since it last came up (it runs with
    /// `--answer-misses`), so its silence past a deadline is a fault.
    answers_misses: AtomicBool,
    /// How the TS frames its replies, as a session learnt it
    /// (`--ts-framing auto`), so that later sessions need not learn it.
    framing: Mutex<Option<Framing>>,
}

struct State {
    up: bool,
    since: Instant,
    /// Failed probes since the TS went down.
    failures: u32,
    next_attempt: Instant,
    /// When the last probe was handed out.
    last_probe: Instant,
    probing: bool,
    jitter: SplitMix64,
}

/// Permission to connect, from [`Health::begin_attempt`]: either free (the
/// TS is believed up) or the single probe of a TS that is down. Report the
/// outcome with [`Health::connected`] or [`Health::failed`]; a probe dropped
/// unreported (its holder gave up, or unwound from a panic) is released, so
/// the next session may probe.
#[derive(Debug)]
#[must_use = "dropping an attempt gives up the permission"]
pub struct Attempt {
    /// The record whose probe this is; `None` for a free attempt, or once
    /// the probe was reported or released.
    probe: Option<Arc<Health>>,
}

impl Attempt {
    /// Whether this attempt holds the probe of a TS that is down.
    pub fn is_probe(&self) -> bool {
        self.probe.is_some()
    }

    /// Gives the probe back to `state` (already locked); the guard is then spent.
    fn settle(&mut self, state: &mut State) -> bool {
        let was_probe = self.probe.take().is_some();
        if was_probe {
            state.probing = false;
        }
        was_probe
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if let Some(health) = self.probe.take() {
            health.lock().probing = false;
        }
    }
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("label", &self.label)
            .finish()
    }
}

impl Health {
    /// A record for the TS called `label`, believed up until a connection fails.
    pub fn new(label: &str) -> Health {
        let now = Instant::now();
        Health {
            label: label.to_string(),
            state: Mutex::new(State {
                up: true,
                since: now,
                failures: 0,
                next_attempt: now,
                last_probe: now,
                probing: false,
                jitter: SplitMix64::new(random_seed()),
            }),
            transitions: AtomicU64::new(0),
            answers_misses: AtomicBool::new(false),
            framing: Mutex::new(None),
        }
    }

    /// Whether the TS answers misses, so that silence from it is a fault.
    pub fn answers_misses(&self) -> bool {
        self.answers_misses.load(Ordering::Relaxed)
    }

    /// How the TS frames its replies, if a session has learnt it since the
    /// TS last came up.
    pub fn framing(&self) -> Option<Framing> {
        *sync::lock(&self.framing)
    }

    /// A session learnt how the TS frames its replies. Forgotten when it
    /// goes down: the TS that comes back may be another program.
    pub fn learn_framing(&self, framing: Framing) {
        *sync::lock(&self.framing) = Some(framing);
    }

    /// The TS said `NOT FOUND`. Forgotten when it goes down: the TS that
    /// comes back may be run without `--answer-misses`.
    pub fn learn_answers_misses(&self) {
        if !self.answers_misses() {
            self.answers_misses.store(true, Ordering::Relaxed);
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        sync::lock(&self.state)
    }

    /// Whether the TS is believed up.
    pub fn is_up(&self) -> bool {
        self.lock().up
    }

    /// Up/down transitions so far.
    pub fn transitions(&self) -> u64 {
        self.transitions.load(Ordering::Relaxed)
    }

    /// Whether the caller may connect now, and how. `in_use`: the caller
    /// has queries to send, so waiting out a long backoff would cost answers.
    pub fn begin_attempt(self: &Arc<Self>, now: Instant, in_use: bool) -> Option<Attempt> {
        let mut state = self.lock();
        let due = now >= state.next_attempt || (in_use && now >= state.last_probe + PROBE_IN_USE);
        if state.up {
            Some(Attempt { probe: None })
        } else if !state.probing && due {
            state.probing = true;
            state.last_probe = now;
            Some(Attempt {
                probe: Some(Arc::clone(self)),
            })
        } else {
            None
        }
    }

    /// When a session whose link is down should call [`begin_attempt`](Self::begin_attempt) again.
    pub fn next_check(&self, now: Instant) -> Instant {
        let state = self.lock();
        if state.up {
            now
        } else if state.probing {
            // Another session's probe is out: look again once it may be back.
            now + RECHECK
        } else {
            state.next_attempt.clamp(now, now + RECHECK)
        }
    }

    /// A connection succeeded.
    pub fn connected(&self, mut attempt: Attempt) {
        let mut state = self.lock();
        attempt.settle(&mut state);
        if !state.up {
            let down_for = state.since.elapsed();
            state.up = true;
            state.since = Instant::now();
            state.failures = 0;
            self.transitions.fetch_add(1, Ordering::Relaxed);
            log::warn(format_args!(
                "ls: {} is up again after {down_for:.1?}",
                self.label
            ));
        }
    }

    /// A connection attempt failed, or an established connection was lost.
    /// `attempt` is `None` for a lost connection.
    pub fn failed(&self, attempt: Option<Attempt>, why: &str) {
        self.failed_at(Instant::now(), attempt, why);
    }

    fn failed_at(&self, now: Instant, attempt: Option<Attempt>, why: &str) {
        let mut state = self.lock();
        let probed = attempt.is_some_and(|mut attempt| attempt.settle(&mut state));
        if state.up {
            state.up = false;
            state.since = now;
            state.failures = 1;
            self.answers_misses.store(false, Ordering::Relaxed);
            *sync::lock(&self.framing) = None;
            self.transitions.fetch_add(1, Ordering::Relaxed);
            log::warn(format_args!("ls: {} is down: {why}", self.label));
        } else if probed {
            state.failures = state.failures.saturating_add(1);
        } else {
            // Another session's news about a TS already known to be down.
            return;
        }
        let wait = backoff(state.failures, &mut state.jitter);
        state.next_attempt = now + wait;
    }
}

/// The wait after `failures` consecutive failures: 100 ms doubling up to
/// 5 s, each drawn between 75 % and 100 % of that (jitter spreads the probes
/// of several LSes).
fn backoff(failures: u32, jitter: &mut SplitMix64) -> Duration {
    let exponent = failures.saturating_sub(1).min(16);
    let full = BACKOFF_START.saturating_mul(1 << exponent).min(BACKOFF_CAP);
    let fraction = 0.75 + 0.25 * (jitter.next_u64() as f64 / u64::MAX as f64);
    full.mul_f64(fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_100ms_to_a_5s_cap_with_jitter() {
        let mut jitter = SplitMix64::new(7);
        let waits: Vec<Duration> = (1..=10).map(|n| backoff(n, &mut jitter)).collect();
        assert!(waits[0] >= Duration::from_millis(75) && waits[0] <= BACKOFF_START);
        assert!(waits[3] >= Duration::from_millis(600) && waits[3] <= Duration::from_millis(800));
        assert!(waits[9] >= Duration::from_millis(3750) && waits[9] <= BACKOFF_CAP);
    }

    /// Whether `attempt` is the probe (`Some(true)`), free (`Some(false)`) or refused (`None`).
    fn kind(attempt: &Option<Attempt>) -> Option<bool> {
        attempt.as_ref().map(Attempt::is_probe)
    }

    #[test]
    fn only_one_probe_at_a_time_while_down() {
        let health = Arc::new(Health::new("ts1"));
        let free = health.begin_attempt(Instant::now(), false);
        assert_eq!(kind(&free), Some(false));
        health.failed(free, "refused");
        assert!(!health.is_up());
        let later = Instant::now() + BACKOFF_CAP;
        assert!(
            health.begin_attempt(Instant::now(), false).is_none(),
            "backoff not over"
        );
        let probe = health.begin_attempt(later, false);
        assert_eq!(kind(&probe), Some(true));
        assert!(
            health.begin_attempt(later, true).is_none(),
            "a probe is already out"
        );
        // The other sessions do not spin while the probe is out.
        let now = Instant::now();
        assert!(health.next_check(now) >= now + RECHECK);
        health.connected(probe.expect("probe"));
        assert!(health.is_up());
        assert_eq!(health.transitions(), 2);
    }

    #[test]
    fn a_probe_is_released_when_its_holder_unwinds() {
        let health = Arc::new(Health::new("ts1"));
        health.failed(None, "connection closed");
        let later = Instant::now() + BACKOFF_CAP;
        let holder = Arc::clone(&health);
        let unwound = std::panic::catch_unwind(move || {
            let _probe = holder.begin_attempt(later, false).expect("probe granted");
            panic!("the probing thread fails before reporting");
        });
        assert!(unwound.is_err());
        // Not stuck "probing": the next session gets the probe.
        assert_eq!(kind(&health.begin_attempt(later, false)), Some(true));
        // Dropping it unreported releases it too, without a transition.
        assert_eq!(kind(&health.begin_attempt(later, false)), Some(true));
        assert_eq!(health.transitions(), 1);
        assert!(!health.is_up());
    }

    #[test]
    fn news_from_many_sessions_is_one_transition() {
        let health = Health::new("ts1");
        for _ in 0..50 {
            health.failed(None, "connection closed");
        }
        assert_eq!(health.transitions(), 1);
        // The first probe comes after the first backoff step, not the fiftieth.
        assert!(health.next_check(Instant::now()) <= Instant::now() + BACKOFF_START);
    }
}

#[cfg(test)]
mod in_use {
    use super::*;

    #[test]
    fn sessions_in_use_probe_every_second_whatever_the_backoff() {
        let health = Arc::new(Health::new("ts1"));
        let start = Instant::now();
        health.failed_at(start, None, "connection closed");
        // Ten failed probes: the backoff is at its 5 s cap.
        for n in 1..=10u32 {
            let at = start + BACKOFF_CAP * n;
            let probe = health.begin_attempt(at, false);
            assert!(probe.as_ref().is_some_and(Attempt::is_probe));
            health.failed_at(at, probe, "refused");
        }
        let last = start + BACKOFF_CAP * 10;
        let soon = last + PROBE_IN_USE + Duration::from_millis(10);
        assert!(
            health.begin_attempt(soon, false).is_none(),
            "idle: the backoff holds"
        );
        assert!(
            health
                .begin_attempt(soon, true)
                .is_some_and(|a| a.is_probe()),
            "in use: one a second"
        );
    }
}
