//! What an LS is given (its TSes and options) and what all its sessions
//! share (the TSes' health and the counters).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::health::{BACKOFF_CAP, BACKOFF_START, Health};
use super::inflight::MAX_BACKENDS;
use super::policy::{Chooser, Policy, Seen};
use super::stats::Stats;
use crate::cidr::CidrList;
use crate::dns::cache::SharedCache;
use crate::dns::rrl::RateLimit;
use crate::framing::Framing;
use crate::random::{SplitMix64, random_seed};
use crate::trace::Tracer;
use crate::wire::{self, Dialect};

/// The per-query deadline when none is given (the course spec's 5 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a DNS query waits when none is given: dig and dnsperf give up
/// after 5 s, so the course's 5 s would answer after they stopped listening.
pub const DEFAULT_DNS_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a pool's member may take over a query before the next member
/// is asked, when none is given.
pub const DEFAULT_TRY_TIMEOUT: Duration = Duration::from_millis(500);

/// How often a pool's idle or down members are probed, when not given.
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(1);

/// How long the probe of a TS that is down, and the start-up check, wait for
/// a TS to accept a connection; a link to a TS believed up waits as long as a
/// query does, and never less.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Queries in flight per client when none is given. Each costs the LS
/// about 550 bytes until its reply is sent, so a client that sends queries
/// and reads no replies holds about 1 MB.
pub const DEFAULT_MAX_INFLIGHT: usize = 1024;

/// Clients connected at once when none is given (lowered at start to what
/// the descriptor limit allows).
pub const DEFAULT_MAX_CLIENTS: usize = 1024;

/// How long a client may send nothing before it is closed, when none is
/// given: below the TS's default (600 s), so that an LS closes its idle
/// sessions before their TSes do.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Clients connected at once from one address when none is given: a
/// quarter of [`DEFAULT_MAX_CLIENTS`], so that one host (or one NAT)
/// cannot hold every place.
pub const DEFAULT_MAX_CLIENTS_PER_IP: usize = 256;

/// The line sent to a client over `--max-clients` before it is closed.
pub const BUSY_REPLY: &str = wire::SERVER_BUSY;

/// One top-level server the LS forwards to.
#[derive(Clone, Debug)]
pub struct Backend {
    /// How logs name it: `ts1`, `ts2`, ...
    pub label: String,
    /// The host as given on the command line.
    pub host: String,
    /// Its addresses (a name may resolve to several); tried in order.
    pub addrs: Vec<SocketAddr>,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addrs.first() {
            Some(addr) => write!(f, "{} ({addr})", self.label),
            None => write!(f, "{} ({})", self.label, self.host),
        }
    }
}

/// What the LS speaks to its TSes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TsProtocol {
    /// The course's line protocol: a name out, `name ip A` back, or silence.
    #[default]
    Line,
    /// DNS over TCP (RFC 1035, RFC 7766): pipelined queries with random IDs,
    /// replies matched by ID and question.
    Dns,
}

impl std::str::FromStr for TsProtocol {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "line" => Ok(TsProtocol::Line),
            "dns" => Ok(TsProtocol::Dns),
            other => Err(format!(
                "unknown TS protocol {other:?}: expected line or dns"
            )),
        }
    }
}

/// How an LS behaves.
#[derive(Clone, Debug)]
pub struct LsOptions {
    /// The TSes queries are forwarded to (1 to [`MAX_BACKENDS`](super::inflight::MAX_BACKENDS)).
    pub backends: Vec<Backend>,
    /// How long a query waits for an answer.
    pub timeout: Duration,
    /// The miss line's format.
    pub dialect: Dialect,
    /// How clients delimit queries; `Auto` detects per connection.
    pub client_framing: Framing,
    /// How the LS delimits queries to TSes and their replies; `Auto` (the
    /// binary's default) learns it from each TS's first reply.
    pub ts_framing: Framing,
    /// What the LS speaks to its TSes.
    pub ts_protocol: TsProtocol,
    /// How long a DNS query waits for an answer before SERVFAIL.
    pub dns_timeout: Duration,
    /// Most entries in the answer cache (0: no cache).
    pub cache: usize,
    /// Seconds past its TTL a cached answer may still be served when no TS
    /// can answer (`--stale`, RFC 8767); 0: never.
    pub stale: u32,
    /// The limit on the DNS front end's UDP answers per network (`--rrl`);
    /// `None`: no limit.
    pub rrl: Option<RateLimit>,
    /// The clients the DNS front end answers (`--allow`); queries from
    /// elsewhere are dropped (UDP) or their connection closed (TCP).
    pub allow: CidrList,
    /// Most queries in flight per client; past it the LS stops reading that
    /// client until replies have gone out. Always 1 towards bare TSes.
    pub max_inflight: usize,
    /// Most clients connected at once (per front end); one more takes the
    /// place of the client idle the longest, or gets [`BUSY_REPLY`] when
    /// none is idle.
    pub max_clients: usize,
    /// Most clients connected at once from one address (per front end); one
    /// more takes the place of that address's longest-idle client, or gets
    /// [`BUSY_REPLY`].
    pub max_clients_per_ip: usize,
    /// How long a DNS-over-TCP client may take over one query message,
    /// from its first byte to its last, before it is closed.
    pub dns_tcp_message: Duration,
    /// A client that sends nothing for this long (with nothing in flight), or
    /// reads none of its replies for this long, is closed.
    pub idle_timeout: Duration,
    /// The pools of replicas (`--pool`), each a list of (index in
    /// `backends`, weight); a backend in no pool is a pool of one. A query
    /// goes to one member of each pool.
    pub pools: Vec<Vec<(usize, u32)>>,
    /// How a pool of several members picks the one a query goes to.
    pub policy: Policy,
    /// How long a pool's member may take over a query before the query
    /// also goes to the next member (`--try-timeout`; at most the query's
    /// deadline).
    pub try_timeout: Duration,
    /// How often the pools' members that are down or idle are probed
    /// (`--health-interval`; zero: never).
    pub health_interval: Duration,
    /// The name a DNS member's probe asks the SOA of (`--health-name`).
    pub health_name: String,
    /// Failed probes in a row that mark a member down (`--health-fails`).
    pub health_fails: u32,
    /// Good probes in a row that take a member back (`--health-rise`).
    pub health_rise: u32,
    /// Where every query's steps are written, one JSON line each
    /// (`--trace`); `None`: not traced.
    pub trace: Option<PathBuf>,
}

impl LsOptions {
    /// Options with the defaults: 5 s timeout (2 s for DNS queries), 2020
    /// dialect, auto-detected client framing, the line protocol with line
    /// framing towards the TSes, 1024 queries in flight per client, 1024
    /// clients and 256 per address, 300 s idle timeout, 5 s per DNS-over-TCP
    /// message, no cache; DNS clients from loopback and private ranges only,
    /// with no rate limit.
    pub fn new(backends: Vec<Backend>) -> LsOptions {
        LsOptions {
            backends,
            timeout: DEFAULT_TIMEOUT,
            dialect: Dialect::Y2020,
            client_framing: Framing::Auto,
            ts_framing: Framing::Line,
            ts_protocol: TsProtocol::Line,
            dns_timeout: DEFAULT_DNS_TIMEOUT,
            cache: 0,
            stale: 0,
            rrl: None,
            allow: CidrList::private(),
            max_inflight: DEFAULT_MAX_INFLIGHT,
            max_clients: DEFAULT_MAX_CLIENTS,
            max_clients_per_ip: DEFAULT_MAX_CLIENTS_PER_IP,
            dns_tcp_message: crate::framing::DNS_MESSAGE_BOUND,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            pools: Vec::new(),
            policy: Policy::default(),
            try_timeout: DEFAULT_TRY_TIMEOUT,
            health_interval: DEFAULT_HEALTH_INTERVAL,
            health_name: ".".to_string(),
            health_fails: 3,
            health_rise: 2,
            trace: None,
        }
    }

    /// Every pool, in the order queries are asked: each backend in no
    /// `--pool` a pool of one (in backend order), then the `--pool`s.
    pub fn all_pools(&self) -> Vec<Vec<(usize, u32)>> {
        let pooled: Vec<usize> = self.pools.iter().flatten().map(|&(ts, _)| ts).collect();
        let mut all: Vec<Vec<(usize, u32)>> = (0..self.backends.len())
            .filter(|ts| !pooled.contains(ts))
            .map(|ts| vec![(ts, 1)])
            .collect();
        all.extend(self.pools.iter().cloned());
        all
    }
}

/// One pool of replica TSes as the sessions share it.
pub struct Pool {
    /// Its members' indexes in [`Shared::backends`].
    pub members: Vec<usize>,
    /// How it picks a member; `None` for a pool of one.
    chooser: Option<Mutex<Chooser>>,
}

/// What the LS knows of each TS when it places queries in pools: queries in
/// flight from this LS and recent latency, and the queries each was sent.
pub struct Balance {
    pub outstanding: Vec<AtomicU64>,
    /// Recent answer time, microseconds (moving average, 1/8 weight).
    pub latency_us: Vec<AtomicU64>,
    /// Queries a pool sent to each member (first tries and retries).
    pub sent: Vec<AtomicU64>,
    /// Queries each member left unanswered past `--try-timeout`, given to
    /// the next member.
    pub timeouts: Vec<AtomicU64>,
    /// Queries each member was sent as a retry, after another timed out.
    pub retries: Vec<AtomicU64>,
    /// Per member, try timeouts since it last replied.
    pub strikes: Vec<AtomicU64>,
    /// Per member, until when (microseconds after `epoch`) the policies
    /// pass it over after a try timeout.
    pub backoff_until: Vec<AtomicU64>,
    /// Per member, when it last replied (microseconds after `epoch`).
    last_heard: Vec<AtomicU64>,
    /// Per member, marked down by the health checks.
    probe_down: Vec<AtomicBool>,
    /// Per member, the health checks' run of failed (negative) or good
    /// (positive) probes.
    probe_run: Vec<AtomicI64>,
    /// Members marked down or taken back by the health checks, in all.
    probe_transitions: AtomicU64,
    epoch: Instant,
}

/// Try timeouts in a row after which a member counts as down (lazy
/// health), until it replies again.
pub const STRIKES_DOWN: u64 = 3;

/// Queries in flight to a member that, with no reply from it for
/// [`STALL_SILENCE`], make it stalled: the policies offer it only when no
/// other live member is left, until it replies. A replica that stops is noticed
/// before the queries already given to it reach their try timeout, so
/// that at a high rate it does not collect a try timeout's worth of
/// queries (which hold the UDP front end's slots while they wait).
pub const STALL_QUEUE: u64 = 32;

/// See [`STALL_QUEUE`].
pub const STALL_SILENCE: Duration = Duration::from_millis(20);

impl Balance {
    pub fn new(count: usize) -> Balance {
        let zeros = || (0..count).map(|_| AtomicU64::new(0)).collect();
        Balance {
            outstanding: zeros(),
            latency_us: zeros(),
            sent: zeros(),
            timeouts: zeros(),
            retries: zeros(),
            strikes: zeros(),
            backoff_until: zeros(),
            last_heard: zeros(),
            probe_down: (0..count).map(|_| AtomicBool::new(false)).collect(),
            probe_run: (0..count).map(|_| AtomicI64::new(0)).collect(),
            probe_transitions: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// Notes that `ts` left a query unanswered past `--try-timeout` at
    /// `now`: it is passed over for a backoff that doubles with each such
    /// timeout in a row, from [`BACKOFF_START`] to [`BACKOFF_CAP`], with
    /// jitter.
    pub fn timed_out(&self, ts: usize, now: Instant) {
        self.timeouts[ts].fetch_add(1, Ordering::Relaxed);
        let strikes = self.strikes[ts].fetch_add(1, Ordering::Relaxed) + 1;
        let doubled = BACKOFF_START.saturating_mul(1 << (strikes - 1).min(16) as u32);
        let base = doubled.min(BACKOFF_CAP);
        // Jitter: up to a quarter less, so that sessions do not come back
        // in step.
        let mut jitter = SplitMix64::new(random_seed() ^ strikes);
        let cut = base.mul_f64((jitter.next_u64() % 1000) as f64 / 4000.0);
        let until = now.saturating_duration_since(self.epoch) + (base - cut);
        let micros = u64::try_from(until.as_micros()).unwrap_or(u64::MAX);
        self.backoff_until[ts].store(micros, Ordering::Relaxed);
    }

    fn micros(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_micros()).unwrap_or(u64::MAX)
    }

    /// Whether `ts` replied within `interval` before `now`.
    pub fn heard_within(&self, ts: usize, now: Instant, interval: Duration) -> bool {
        let heard = self.last_heard[ts].load(Ordering::Relaxed);
        let span = u64::try_from(interval.as_micros()).unwrap_or(u64::MAX);
        heard != 0 && self.micros(now).saturating_sub(heard) < span
    }

    /// Whether `ts` has [`STALL_QUEUE`] queries or more in flight and has
    /// not replied for [`STALL_SILENCE`] before `now`.
    pub fn stalled(&self, ts: usize, now: Instant) -> bool {
        self.outstanding[ts].load(Ordering::Relaxed) >= STALL_QUEUE
            && !self.heard_within(ts, now, STALL_SILENCE)
    }

    /// Up/down transitions the health checks made, over all members.
    pub fn probe_transitions(&self) -> u64 {
        self.probe_transitions.load(Ordering::Relaxed)
    }

    /// Whether the health checks hold `ts` down.
    pub fn probe_down(&self, ts: usize) -> bool {
        self.probe_down[ts].load(Ordering::Relaxed)
    }

    /// Notes a probe of `ts` (`alive` or not); returns `Some(up)` when it
    /// changed the member's state: `fails` failures in a row mark it down,
    /// `rise` good probes in a row take it back.
    pub fn probed(&self, ts: usize, alive: bool, fails: u32, rise: u32) -> Option<bool> {
        let run = self.probe_run[ts].load(Ordering::Relaxed);
        let run = match (alive, run) {
            (true, r) if r > 0 => r + 1,
            (true, _) => 1,
            (false, r) if r < 0 => r - 1,
            (false, _) => -1,
        };
        self.probe_run[ts].store(run, Ordering::Relaxed);
        if alive {
            // A good probe is a reply: a backoff after try timeouts ends.
            self.heard(ts, Instant::now());
        }
        let down = self.probe_down(ts);
        if !down && run <= -i64::from(fails.max(1)) {
            self.probe_down[ts].store(true, Ordering::Relaxed);
            self.probe_transitions.fetch_add(1, Ordering::Relaxed);
            return Some(false);
        }
        if down && run >= i64::from(rise.max(1)) {
            self.probe_down[ts].store(false, Ordering::Relaxed);
            self.probe_transitions.fetch_add(1, Ordering::Relaxed);
            return Some(true);
        }
        None
    }

    /// Notes that `ts` replied at `now`: its backoff ends.
    pub fn heard(&self, ts: usize, now: Instant) {
        let now = self.micros(now).max(1);
        // At most a store a millisecond: every session's replies land here.
        if now.saturating_sub(self.last_heard[ts].load(Ordering::Relaxed)) > 1000 {
            self.last_heard[ts].store(now, Ordering::Relaxed);
        }
        if self.strikes[ts].load(Ordering::Relaxed) != 0 {
            self.strikes[ts].store(0, Ordering::Relaxed);
            self.backoff_until[ts].store(0, Ordering::Relaxed);
        }
    }

    /// Whether the policies pass `ts` over at `now` (backed off).
    pub fn backed_off(&self, ts: usize, now: Instant) -> bool {
        let micros = u64::try_from(now.saturating_duration_since(self.epoch).as_micros())
            .unwrap_or(u64::MAX);
        micros < self.backoff_until[ts].load(Ordering::Relaxed)
    }

    /// Whether `ts` timed out [`STRIKES_DOWN`] times in a row, or the
    /// health checks hold it down.
    pub fn is_down(&self, ts: usize) -> bool {
        self.strikes[ts].load(Ordering::Relaxed) >= STRIKES_DOWN || self.probe_down(ts)
    }

    /// Notes that a pooled query to `ts` is no longer in flight, answered
    /// by it in `took` if `answered`.
    pub fn done(&self, ts: usize, answered: Option<Duration>) {
        let _ = self.outstanding[ts].fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            Some(n.saturating_sub(1))
        });
        if let Some(took) = answered {
            let sample = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
            let old = self.latency_us[ts].load(Ordering::Relaxed);
            let new = if old == 0 {
                sample
            } else {
                old - old / 8 + sample / 8
            };
            self.latency_us[ts].store(new, Ordering::Relaxed);
        }
    }
}

impl Pool {
    /// The pools of `options`, each member weighted, seeded for `random`.
    pub fn all(options: &LsOptions) -> Vec<Pool> {
        options
            .all_pools()
            .into_iter()
            .enumerate()
            .map(|(i, members)| {
                let weights: Vec<u32> = members.iter().map(|&(_, w)| w).collect();
                let seed = crate::random::random_seed() ^ i as u64;
                Pool {
                    chooser: (members.len() > 1)
                        .then(|| Mutex::new(Chooser::new(options.policy, &weights, seed))),
                    members: members.into_iter().map(|(ts, _)| ts).collect(),
                }
            })
            .collect()
    }

    /// The member (an index in [`Shared::backends`]) a query for `name`
    /// goes to, none of `tried` (bits by backend index); `None` once
    /// every member was tried.
    pub fn choose(
        &self,
        name: &str,
        tried: u64,
        health: &[Arc<Health>],
        balance: &Balance,
    ) -> Option<usize> {
        let Some(chooser) = &self.chooser else {
            let ts = self.members[0];
            return (tried & (1 << ts) == 0).then_some(ts);
        };
        let now = Instant::now();
        // On the stack: a pool has at most MAX_BACKENDS members.
        let mut seen = [Seen::default(); MAX_BACKENDS];
        let seen = &mut seen[..self.members.len()];
        for (seen, &ts) in seen.iter_mut().zip(&self.members) {
            *seen = Seen {
                live: health[ts].is_up() && !balance.backed_off(ts, now) && !balance.probe_down(ts),
                stalled: balance.stalled(ts, now),
                outstanding: balance.outstanding[ts].load(Ordering::Relaxed),
                latency_us: balance.latency_us[ts].load(Ordering::Relaxed),
            };
        }
        let mut member_tried = 0u64;
        for (m, &ts) in self.members.iter().enumerate() {
            if tried & (1 << ts) != 0 {
                member_tried |= 1 << m;
            }
        }
        let m = crate::sync::lock(chooser).choose(name, seen, member_tried)?;
        Some(self.members[m])
    }

    /// Whether the pool has several members (a policy picks among them).
    pub fn is_replicated(&self) -> bool {
        self.chooser.is_some()
    }
}

/// What every session of one LS shares.
pub struct Shared {
    pub backends: Vec<Backend>,
    pub health: Vec<Arc<Health>>,
    pub stats: Arc<Stats>,
    /// Answers kept for `--cache`, shared by every session and front end.
    pub cache: Option<SharedCache>,
    pub options: LsOptions,
    /// Every pool ([`LsOptions::all_pools`]).
    pub pools: Vec<Pool>,
    /// Per TS, what the pools' policies weigh.
    pub balance: Balance,
    /// Where the steps of every query are recorded (`--trace`).
    pub trace: Option<Tracer>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_mark_a_member_down_after_fails_and_back_after_rise() {
        let balance = Balance::new(1);
        assert_eq!(balance.probed(0, false, 3, 2), None);
        assert_eq!(balance.probed(0, false, 3, 2), None);
        assert_eq!(
            balance.probed(0, true, 3, 2),
            None,
            "a good probe breaks the run"
        );
        for _ in 0..2 {
            assert_eq!(balance.probed(0, false, 3, 2), None);
        }
        assert_eq!(balance.probed(0, false, 3, 2), Some(false));
        assert!(balance.is_down(0) && balance.probe_down(0));
        assert_eq!(balance.probed(0, true, 3, 2), None);
        assert_eq!(balance.probed(0, true, 3, 2), Some(true));
        assert!(!balance.is_down(0));
    }

    #[test]
    fn try_timeouts_back_a_member_off_until_it_replies() {
        let balance = Balance::new(1);
        let now = Instant::now();
        balance.timed_out(0, now);
        assert!(balance.backed_off(0, now + Duration::from_millis(70)));
        assert!(!balance.backed_off(0, now + BACKOFF_START));
        balance.timed_out(0, now);
        balance.timed_out(0, now);
        // 400 ms less at most a quarter, and down after 3 in a row.
        assert!(balance.backed_off(0, now + Duration::from_millis(299)));
        assert!(balance.is_down(0));
        balance.heard(0, Instant::now());
        assert!(!balance.backed_off(0, now) && !balance.is_down(0));
    }

    /// A balance whose clock started a second ago, as in an LS that has
    /// been running (its reply stamps are a millisecond apart at least).
    fn running(count: usize) -> Balance {
        let mut balance = Balance::new(count);
        balance.epoch = balance
            .epoch
            .checked_sub(Duration::from_secs(1))
            .expect("the monotonic clock is past one second");
        balance
    }

    #[test]
    fn a_member_with_queries_waiting_and_no_reply_is_stalled_until_it_replies() {
        let balance = running(1);
        balance.heard(0, Instant::now());
        let now = Instant::now();
        balance.outstanding[0].store(STALL_QUEUE - 1, Ordering::Relaxed);
        assert!(
            !balance.stalled(0, now + STALL_SILENCE * 10),
            "too few queries waiting"
        );
        balance.outstanding[0].store(STALL_QUEUE, Ordering::Relaxed);
        assert!(
            !balance.stalled(0, now),
            "it replied less than STALL_SILENCE ago"
        );
        let later = now + STALL_SILENCE * 2;
        assert!(balance.stalled(0, later));
        // A member that never replied, with the queue, is stalled too,
        // and a reply ends it.
        let fresh = running(1);
        fresh.outstanding[0].store(STALL_QUEUE, Ordering::Relaxed);
        assert!(fresh.stalled(0, Instant::now()));
        fresh.heard(0, Instant::now());
        assert!(!fresh.stalled(0, Instant::now()));
    }

    #[test]
    fn the_policies_pass_a_stalled_member_over_until_it_replies() {
        let mut options = LsOptions::new(Vec::new());
        options.pools = vec![vec![(0, 1), (1, 1)]];
        options.policy = Policy::RoundRobin;
        let pools = Pool::all(&options);
        let health = [Arc::new(Health::new("ts1")), Arc::new(Health::new("ts2"))];
        let balance = running(2);
        balance.heard(0, Instant::now());
        balance.heard(1, Instant::now());
        let pick = || pools[0].choose("a.example", 0, &health, &balance);
        let spread: Vec<_> = (0..4).map(|_| pick()).collect();
        assert_eq!(spread, [Some(0), Some(1), Some(0), Some(1)]);
        // ts1 has a queue and, for the chooser, no reply in the last
        // STALL_SILENCE: stamp its last reply far back.
        balance.outstanding[0].store(STALL_QUEUE, Ordering::Relaxed);
        balance.last_heard[0].store(1, Ordering::Relaxed);
        let spread: Vec<_> = (0..4).map(|_| pick()).collect();
        assert_eq!(spread, [Some(1); 4], "the stalled member is passed over");
        balance.heard(0, Instant::now());
        let spread: Vec<_> = (0..4).map(|_| pick()).collect();
        assert!(
            spread.contains(&Some(0)),
            "back once it replied: {spread:?}"
        );
    }
}
