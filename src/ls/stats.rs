//! The LS's counters: what happened to every query, every TS reply and every
//! client connection. Printed when the LS stops, and every 10 s with `-v`.
//!
//! They add up: `queries = answered + misses + invalid + busy + abandoned +
//! in-flight`, where busy queries are those the LS could not ask every TS
//! for (its own shortage of descriptors or threads), abandoned queries are
//! those received whose reply never reached the client (still in flight
//! when it vanished, cut off by a failed write, or read after its worker
//! ended), and in-flight queries are those not yet settled when the
//! counters were read (0 once the LS has stopped). The DNS responses are
//! counted by rcode once written, like the outcomes.
//!
//! Each front end (course, DNS over UDP, DNS over TCP) counts its own
//! queries, stale answers and replies by what they said ([`Reply`]): the
//! queries above are the sum over the front ends, read from the same
//! atomics, so the two never disagree; and every reply the outcomes count
//! is counted once under its front end too.
//!
//! A client turned away at connect (`--max-clients` reached, or no
//! descriptor or thread for it) is told `- Error:SERVER BUSY` and counted
//! once, as a busy client (`clients ... busy`); it sent no query the LS read.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::health::Health;
use super::inflight::{InFlight, Outcome};
use crate::dns::respond::ResponseKind;
use crate::server::ConnectionStats;

/// Live counters, updated by every session.
#[derive(Default)]
pub struct Stats {
    /// Per front end ([`Frontend`]): client messages received (valid or
    /// not), answers from expired cache entries, replies by what they said.
    pub fronts: [FrontCounts; Frontend::ALL.len()],
    /// Queries answered, per TS.
    pub answered: Vec<AtomicU64>,
    /// Queries answered from the cache.
    pub cached: AtomicU64,
    /// Misses because no TS answered before the deadline.
    pub timed_out: AtomicU64,
    /// Misses because every TS asked said `NOT FOUND` (or went down).
    pub not_found: AtomicU64,
    /// Misses because no TS could answer: none was up, every TS asked went
    /// down, or one failed (a DNS TS's SERVFAIL) and none answered.
    pub failed: AtomicU64,
    /// Messages that were not a valid hostname.
    pub invalid: AtomicU64,
    /// Queries answered `- Error:SERVER BUSY`: no TS answered and one could
    /// not be asked for want of the LS's own descriptors or threads.
    pub busy: AtomicU64,
    /// Queries whose client left before they were answered.
    pub abandoned: AtomicU64,
    /// TS replies dropped: invalid, over-long, late, second, or for a name not asked.
    pub dropped_replies: AtomicU64,
    /// Clients closed for sending nothing for the idle timeout.
    pub idle_closed: AtomicU64,
    /// Client connections accepted, refused, open.
    pub connections: Arc<ConnectionStats>,
    /// The DNS-over-TCP front end's connections (not in `connections`,
    /// which counts course clients).
    pub dns_connections: Arc<ConnectionStats>,
    /// The DNS front end's responses.
    pub dns: DnsCounts,
    /// Per TS: queries asked of it, left unanswered past their deadline,
    /// and how long its answers took.
    pub backends: Vec<BackendCounts>,
    /// Replies made from the cache (answers and misses), counted as written.
    pub cache_hits: AtomicU64,
}

/// The LS's front ends, as the metrics label them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frontend {
    /// The course protocol.
    Course,
    /// DNS over UDP.
    DnsUdp,
    /// DNS over TCP.
    DnsTcp,
}

impl Frontend {
    /// Every front end, in the order of `Stats::fronts`.
    pub const ALL: [Frontend; 3] = [Frontend::Course, Frontend::DnsUdp, Frontend::DnsTcp];

    /// How the metrics label it (`frontend="dns_udp"`).
    pub fn label(self) -> &'static str {
        match self {
            Frontend::Course => "course",
            Frontend::DnsUdp => "dns_udp",
            Frontend::DnsTcp => "dns_tcp",
        }
    }

    /// The results its replies are counted under, in the order of
    /// [`FrontCounts::replies`] (see [`Reply::index`]).
    pub fn results(self) -> Vec<&'static str> {
        match self {
            Frontend::Course => CourseReply::ALL.iter().map(|r| r.label()).collect(),
            Frontend::DnsUdp | Frontend::DnsTcp => {
                ResponseKind::ALL.iter().map(|k| k.label()).collect()
            }
        }
    }
}

/// What a course reply told its client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CourseReply {
    /// An address line (from a TS or the cache).
    Answer,
    /// `HOST NOT FOUND`: every TS said so, none answered in time, none was
    /// up, or one failed.
    NotFound,
    /// `- Error:SERVER BUSY`: the LS could not ask every TS.
    Busy,
    /// The error line for a message that is not a hostname.
    Invalid,
}

impl CourseReply {
    const ALL: [CourseReply; 4] = [
        CourseReply::Answer,
        CourseReply::NotFound,
        CourseReply::Busy,
        CourseReply::Invalid,
    ];

    fn label(self) -> &'static str {
        match self {
            CourseReply::Answer => "answer",
            CourseReply::NotFound => "not_found",
            CourseReply::Busy => "busy",
            CourseReply::Invalid => "invalid",
        }
    }
}

/// What one reply told its client: a course line, or a DNS response (by
/// its rcode, and for NOERROR what it carried).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    Course(CourseReply),
    Dns(ResponseKind),
}

impl Reply {
    /// Its position in its front end's [`results`](Frontend::results).
    pub fn index(self) -> usize {
        match self {
            Reply::Course(reply) => reply as usize,
            Reply::Dns(kind) => kind.index(),
        }
    }
}

/// One front end's counters.
#[derive(Default)]
pub struct FrontCounts {
    /// Client messages received (valid or not).
    pub queries: AtomicU64,
    /// Queries answered from an expired cache entry (`--stale`) because no
    /// TS could answer in time; among the cache's answers.
    pub stale: AtomicU64,
    /// Replies that reached their client, by [`Reply::index`].
    pub replies: [AtomicU64; ResponseKind::ALL.len()],
}

impl FrontCounts {
    /// Counts one message received.
    pub fn count_query(&self) {
        self.queries.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one reply that reached its client.
    pub fn count_reply(&self, reply: Reply) {
        self.replies[reply.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// The counts now (each read with Acquire).
    pub fn snapshot(&self) -> FrontSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Acquire);
        FrontSnapshot {
            queries: get(&self.queries),
            stale: get(&self.stale),
            replies: self.replies.each_ref().map(get),
        }
    }
}

/// What one TS was asked and how it answered.
#[derive(Default)]
pub struct BackendCounts {
    /// Queries asked of the TS (sent, or to be sent once its link is up).
    pub asked: AtomicU64,
    /// Queries still waiting on the TS when their deadline passed.
    pub timeouts: AtomicU64,
    /// From a query's arrival to its answer, for the queries this TS
    /// answered first.
    pub response: Histogram,
}

/// Upper bounds (seconds) of the response-time histogram's buckets.
pub const RESPONSE_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A fixed-bucket histogram of durations ([`RESPONSE_BUCKETS`]), lock-free.
#[derive(Default)]
pub struct Histogram {
    /// Per bucket (not cumulative); the last one is past every bound.
    buckets: [AtomicU64; RESPONSE_BUCKETS.len() + 1],
    sum_us: AtomicU64,
}

impl Histogram {
    /// Records one duration.
    pub fn record(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        let bucket = RESPONSE_BUCKETS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(RESPONSE_BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.sum_us.fetch_add(micros, Ordering::Relaxed);
    }

    /// The counts per bucket (not cumulative, the last past every bound)
    /// and the sum in seconds.
    pub fn read(&self) -> (Vec<u64>, f64) {
        let counts = self
            .buckets
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        (counts, self.sum_us.load(Ordering::Relaxed) as f64 / 1e6)
    }
}

/// The UDP queries the DNS front end dropped unasked, by reason, and
/// what its limits turned away. (Its responses are counted by front end,
/// [`FrontCounts::replies`].)
#[derive(Default)]
pub struct DnsCounts {
    /// UDP queries dropped because their session was full.
    pub dropped: AtomicU64,
    /// UDP queries dropped because their source already held its share of
    /// the UDP front end's queries in flight.
    pub over_share: AtomicU64,
    /// UDP answers the rate limit (`--rrl`) dropped, and sent truncated.
    pub rate_limited: AtomicU64,
    pub slipped: AtomicU64,
    /// Queries (UDP) and connections (TCP) from sources `--allow` leaves out.
    pub not_allowed: AtomicU64,
}

impl Stats {
    /// Zeroed counters for `backends` TSes.
    pub fn new(backends: usize) -> Stats {
        Stats {
            answered: (0..backends).map(|_| AtomicU64::new(0)).collect(),
            backends: (0..backends).map(|_| BackendCounts::default()).collect(),
            ..Stats::default()
        }
    }

    /// Counts one message received by `front`.
    pub fn count_query(&self, front: Frontend) {
        self.fronts[front as usize].count_query();
    }

    /// Counts one query of `front` answered from an expired cache entry.
    pub fn count_stale(&self, front: Frontend) {
        self.fronts[front as usize]
            .stale
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one query asked of each TS in `asked` (a bit each).
    pub fn count_asked(&self, asked: u64) {
        for (ts, counts) in self.backends.iter().enumerate() {
            if asked & (1 << ts) != 0 {
                counts.asked.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Records how long a settled query took, against the TS that
    /// answered it.
    pub fn count_took(&self, outcome: &Outcome, took: Duration) {
        if let Outcome::Answered { ts } = outcome
            && let Some(counts) = self.backends.get(*ts)
        {
            counts.response.record(took);
        }
    }

    /// Times out the queries of `inflight` whose deadline is not after
    /// `now` (see [`InFlight::expire`]), counting for each TS the queries
    /// that were still waiting on it. Returns what `expire` returns.
    pub fn expire<A, T>(&self, inflight: &mut InFlight<A, T>, now: Instant) -> u64 {
        // Counted as each query is settled: no list of the queries waiting
        // on each TS.
        inflight.expire_each(now, |waiting| {
            let mut bits = waiting;
            while bits != 0 {
                let ts = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                if let Some(counts) = self.backends.get(ts) {
                    counts.timeouts.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    }

    /// Counts a query whose reply reached its client through `front`:
    /// what it said, and how it ended (`outcome`).
    pub fn count_reply(&self, front: Frontend, reply: Reply, outcome: &Outcome) {
        // Before the outcome (Release): a snapshot that sees the outcome
        // sees the reply counted.
        self.fronts[front as usize].count_reply(reply);
        self.count(outcome);
    }

    /// Counts a query whose reply reached its client.
    fn count(&self, outcome: &Outcome) {
        if matches!(outcome, Outcome::Cached | Outcome::CachedMiss) {
            self.cache_hits.fetch_add(1, Ordering::Relaxed);
        }
        let counter = match outcome {
            Outcome::Answered { ts } => &self.answered[*ts],
            Outcome::TimedOut => &self.timed_out,
            // A DNS TS's REFUSED is its way of saying "not mine".
            Outcome::NotFound | Outcome::Refused | Outcome::CachedMiss => &self.not_found,
            Outcome::AllDown | Outcome::Failed => &self.failed,
            Outcome::Busy => &self.busy,
            Outcome::Cached => &self.cached,
            Outcome::Invalid => &self.invalid,
        };
        // Release: a snapshot that sees the outcome sees its query counted.
        counter.fetch_add(1, Ordering::Release);
    }

    /// The counters now, with the TSes' up/down transitions: those of
    /// their connections (`health`) and `probed` more made by the health
    /// checks.
    pub fn snapshot(&self, health: &[Arc<Health>], probed: u64) -> Snapshot {
        // Outcomes first (Acquire, paired with their Release increments),
        // then the queries: every outcome read has its query counted, so
        // the queries not yet settled are the difference.
        let get = |c: &AtomicU64| c.load(Ordering::Acquire);
        let mut snapshot = Snapshot {
            answered: self.answered.iter().map(get).collect(),
            cached: get(&self.cached),
            dns_limits: [
                &self.dns.rate_limited,
                &self.dns.slipped,
                &self.dns.not_allowed,
            ]
            .map(|c| c.load(Ordering::Relaxed)),
            timed_out: get(&self.timed_out),
            not_found: get(&self.not_found),
            failed: get(&self.failed),
            invalid: get(&self.invalid),
            busy: get(&self.busy),
            abandoned: get(&self.abandoned),
            dropped_replies: get(&self.dropped_replies),
            accepted: get(&self.connections.accepted),
            refused: get(&self.connections.refused),
            idle_closed: get(&self.idle_closed),
            transitions: health.iter().map(|h| h.transitions()).sum::<u64>() + probed,
            ..Snapshot::default()
        };
        snapshot.fronts = self.fronts.each_ref().map(FrontCounts::snapshot);
        snapshot.queries = snapshot.fronts.iter().map(|f| f.queries).sum();
        snapshot.stale = snapshot.fronts.iter().map(|f| f.stale).sum();
        let dns = |kind: ResponseKind| -> u64 {
            [Frontend::DnsUdp, Frontend::DnsTcp]
                .iter()
                .map(|&f| snapshot.fronts[f as usize].replies[kind.index()])
                .sum()
        };
        let of_kinds = |which: &dyn Fn(ResponseKind) -> bool| -> u64 {
            ResponseKind::ALL
                .iter()
                .filter(|&&k| which(k))
                .map(|&k| dns(k))
                .sum()
        };
        snapshot.dns = [
            of_kinds(&|k| k.is_noerror()),
            dns(ResponseKind::NxDomain),
            dns(ResponseKind::ServFail),
            dns(ResponseKind::Refused),
            of_kinds(&|k| {
                matches!(
                    k,
                    ResponseKind::FormErr | ResponseKind::NotImp | ResponseKind::Other
                )
            }),
            self.dns.dropped.load(Ordering::Relaxed),
            self.dns.over_share.load(Ordering::Relaxed),
        ];
        snapshot.in_flight = snapshot.queries.saturating_sub(snapshot.settled());
        snapshot
    }
}

/// The counters at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Queries received by every front end.
    pub queries: u64,
    pub answered: Vec<u64>,
    pub cached: u64,
    /// Of the cache's answers, those served stale (`--stale`).
    pub stale: u64,
    /// DNS responses written: NOERROR, NXDOMAIN, SERVFAIL, REFUSED, other;
    /// and UDP queries dropped: their session full, their source over its
    /// share.
    pub dns: [u64; 7],
    /// DNS UDP answers rate-limited (dropped, sent truncated), and queries
    /// or connections from sources not allowed.
    pub dns_limits: [u64; 3],
    pub timed_out: u64,
    pub not_found: u64,
    pub failed: u64,
    pub invalid: u64,
    pub busy: u64,
    pub abandoned: u64,
    /// Queries received and not yet settled or abandoned.
    pub in_flight: u64,
    pub dropped_replies: u64,
    pub accepted: u64,
    /// Clients turned away with `- Error:SERVER BUSY` (shown as `busy`).
    pub refused: u64,
    pub idle_closed: u64,
    pub transitions: u64,
    /// The pools of several replicas (`--pool`), each its members'
    /// counters; empty without one.
    pub pools: Vec<Vec<MemberCounts>>,
    /// Each front end's counters, in the order of [`Frontend::ALL`].
    pub fronts: [FrontSnapshot; Frontend::ALL.len()],
}

/// One front end's counters at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FrontSnapshot {
    pub queries: u64,
    pub stale: u64,
    /// Replies by [`Reply::index`] (see [`Frontend::results`]).
    pub replies: [u64; ResponseKind::ALL.len()],
}

impl FrontSnapshot {
    /// Replies that reached their client.
    pub fn replied(&self) -> u64 {
        self.replies.iter().sum()
    }
}

/// One pool member's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberCounts {
    /// How logs name it (`ts2`).
    pub label: String,
    /// Queries sent to it, retries included.
    pub sent: u64,
    /// Queries it answered first (the client got its answer).
    pub answered: u64,
    /// Queries it left unanswered past `--try-timeout`.
    pub timeouts: u64,
    /// Queries it was sent after another member timed out or failed.
    pub retries: u64,
    /// `up`, `backed-off` (after a try timeout) or `down` (the link is
    /// down, or timed out 3 times in a row).
    pub health: &'static str,
}

impl Snapshot {
    /// Answers from every TS.
    /// Answers from every TS and from the cache.
    pub fn answered_total(&self) -> u64 {
        self.answered.iter().sum::<u64>() + self.cached
    }

    /// Misses of every kind.
    pub fn misses(&self) -> u64 {
        self.timed_out + self.not_found + self.failed
    }

    /// Queries that have their reply, or whose client left.
    pub fn settled(&self) -> u64 {
        self.answered_total() + self.misses() + self.invalid + self.busy + self.abandoned
    }
}

impl fmt::Display for Snapshot {
    /// ```
    /// use dnslb::ls::Snapshot;
    /// let s = Snapshot { queries: 9, answered: vec![3, 2], timed_out: 1, invalid: 1, in_flight: 2,
    ///     ..Snapshot::default() };
    /// assert_eq!(s.to_string(), "queries 9 = answered 5 (ts1 3, ts2 2) + misses 1 (timeout 1, \
    ///     not-found 0, failed 0) + invalid 1 + busy 0 + abandoned 0 + in-flight 2; \
    ///     dropped TS replies 0; clients accepted 0, busy 0, idle-closed 0; TS up/down transitions 0");
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut per_ts: Vec<String> = self
            .answered
            .iter()
            .enumerate()
            .map(|(i, n)| format!("ts{} {n}", i + 1))
            .collect();
        if self.cached > 0 {
            per_ts.push(format!("cache {}", self.cached));
        }
        if self.stale > 0 {
            per_ts.push(format!("stale {}", self.stale));
        }
        write!(
            f,
            "queries {} = answered {} ({}) + misses {} (timeout {}, not-found {}, failed {}) + invalid {} + busy {} + abandoned {} + in-flight {}; \
             dropped TS replies {}; clients accepted {}, busy {}, idle-closed {}; TS up/down transitions {}",
            self.queries,
            self.answered_total(),
            per_ts.join(", "),
            self.misses(),
            self.timed_out,
            self.not_found,
            self.failed,
            self.invalid,
            self.busy,
            self.abandoned,
            self.in_flight,
            self.dropped_replies,
            self.accepted,
            self.refused,
            self.idle_closed,
            self.transitions
        )?;
        if self.dns.iter().any(|&n| n > 0) {
            let [
                noerror,
                nxdomain,
                servfail,
                refused,
                other,
                full,
                over_share,
            ] = self.dns;
            write!(
                f,
                "; DNS responses: noerror {noerror}, nxdomain {nxdomain}, servfail {servfail}, \
                 refused {refused}, other {other}; UDP queries dropped {} (session full {full}, \
                 source over its share {over_share})",
                full + over_share
            )?;
        }
        if self.dns_limits.iter().any(|&n| n > 0) {
            let [limited, slipped, not_allowed] = self.dns_limits;
            write!(
                f,
                "; DNS rate-limited {limited}, sent truncated {slipped}, not allowed {not_allowed}"
            )?;
        }
        for (i, members) in self.pools.iter().enumerate() {
            let members: Vec<String> = members
                .iter()
                .map(|m| {
                    format!(
                        "{} {} sent {}, answered {}, timeouts {}, retries {}",
                        m.label, m.health, m.sent, m.answered, m.timeouts, m.retries
                    )
                })
                .collect();
            write!(f, "; pool {}: {}", i + 1, members.join("; "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ls::inflight::{Release, Said};

    #[test]
    fn each_ts_counts_the_queries_it_left_waiting_past_their_deadline() {
        let stats = Stats::new(2);
        let mut inflight: InFlight<&str> = InFlight::new(Duration::from_secs(1), Release::InOrder);
        let t = Instant::now();
        for name in ["a", "b", "c"] {
            inflight.submit(name, name, 0b11, 0, (), t);
            stats.count_asked(0b11);
        }
        // ts1 answers a; ts2 says b is not its; nobody answers c.
        inflight.reply(0, "a", Said::Answer("1.1.1.1"), t);
        inflight.reply(1, "b", Said::NotFound, t);
        assert_eq!(stats.expire(&mut inflight, t), 0, "not yet due");
        stats.expire(&mut inflight, t + Duration::from_secs(1));
        let get = |ts: usize, c: fn(&BackendCounts) -> &AtomicU64| {
            c(&stats.backends[ts]).load(Ordering::Relaxed)
        };
        assert_eq!((get(0, |c| &c.asked), get(1, |c| &c.asked)), (3, 3));
        // ts1 left b and c waiting; ts2 left c (a was settled by ts1).
        assert_eq!((get(0, |c| &c.timeouts), get(1, |c| &c.timeouts)), (2, 1));
    }

    #[test]
    fn response_times_fall_in_their_buckets() {
        let stats = Stats::new(1);
        stats.count_took(&Outcome::Answered { ts: 0 }, Duration::from_micros(400));
        stats.count_took(&Outcome::Answered { ts: 0 }, Duration::from_millis(3));
        stats.count_took(&Outcome::Answered { ts: 0 }, Duration::from_secs(60));
        stats.count_took(&Outcome::TimedOut, Duration::from_secs(1));
        let (counts, sum) = stats.backends[0].response.read();
        assert_eq!(counts[0], 1);
        assert_eq!(counts[3], 1, "3 ms is at most 5 ms");
        assert_eq!(counts[RESPONSE_BUCKETS.len()], 1, "past every bound");
        assert_eq!(counts.iter().sum::<u64>(), 3);
        assert!((sum - 60.0034).abs() < 1e-9, "{sum}");
    }
}
