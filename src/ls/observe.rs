//! The LS's counters and its TSes' health as [`Metrics`] for the web
//! endpoint (`--web`), read from the same atomics as the counters line.

use super::setup::Shared;
use super::stats::{FrontSnapshot, Frontend, RESPONSE_BUCKETS};
use crate::web::metrics::{Kind, Metrics, Sample, Value, cumulative, labels};

/// Adds each front end's queries and replies (by what they said) from
/// `fronts`, in the order of [`Frontend::ALL`].
pub fn add_fronts(m: &mut Metrics, fronts: &[FrontSnapshot]) {
    let n = |v: u64| v as f64;
    let fronts = || Frontend::ALL.iter().zip(fronts);
    m.add(
        "dnslb_queries_total",
        "Messages received (valid or not), by front end.",
        Kind::Counter,
        fronts()
            .map(|(f, c)| (labels(&[("frontend", f.label())]), n(c.queries)))
            .collect(),
    );
    m.add(
        "dnslb_responses_total",
        "Replies that reached their client, by front end and what they said.",
        Kind::Counter,
        fronts()
            .flat_map(|(f, c)| {
                f.results().into_iter().zip(c.replies).map(|(result, v)| {
                    (labels(&[("frontend", f.label()), ("result", result)]), n(v))
                })
            })
            .collect(),
    );
}

/// Every LS metric now (docs/OBSERVE.md lists them).
pub fn metrics(shared: &Shared) -> Metrics {
    let stats = &shared.stats;
    let s = stats.snapshot(&shared.health, shared.balance.probe_transitions());
    let mut m = Metrics::new("ls");
    let n = |v: u64| v as f64;
    let fronts = || Frontend::ALL.iter().zip(&s.fronts);
    let front = |f: &Frontend| labels(&[("frontend", f.label())]);
    add_fronts(&mut m, &s.fronts);
    m.add(
        "dnslb_outcomes_total",
        "Replies that reached their client, by how their query ended (the counters line's terms).",
        Kind::Counter,
        [
            ("answered", s.answered.iter().sum()),
            ("cached", s.cached),
            ("timeout", s.timed_out),
            ("not_found", s.not_found),
            ("failed", s.failed),
            ("invalid", s.invalid),
            ("busy", s.busy),
        ]
        .iter()
        .map(|&(outcome, v)| (labels(&[("outcome", outcome)]), n(v)))
        .collect(),
    );
    m.add(
        "dnslb_stale_answers_total",
        "Replies served from expired cache entries (--stale), by front end.",
        Kind::Counter,
        fronts().map(|(f, c)| (front(f), n(c.stale))).collect(),
    );
    let [noerror, nxdomain, servfail, refused, other, ..] = s.dns;
    m.add(
        "dnslb_dns_responses_total",
        "DNS responses written, by response code.",
        Kind::Counter,
        [
            ("noerror", noerror),
            ("nxdomain", nxdomain),
            ("servfail", servfail),
            ("refused", refused),
            ("other", other),
        ]
        .iter()
        .map(|&(rcode, v)| (labels(&[("rcode", rcode)]), n(v)))
        .collect(),
    );
    m.add_one(
        "dnslb_abandoned_total",
        "Queries whose reply never reached their client.",
        Kind::Counter,
        n(s.abandoned),
    );
    m.add_one(
        "dnslb_dropped_replies_total",
        "TS replies dropped: invalid, late, second, or for a name not asked.",
        Kind::Counter,
        n(s.dropped_replies),
    );
    let per_backend = |value: &dyn Fn(usize) -> f64| {
        shared
            .backends
            .iter()
            .enumerate()
            .map(|(ts, b)| (labels(&[("backend", &b.label)]), value(ts)))
            .collect::<Vec<_>>()
    };
    let counts = |ts: usize| stats.backends.get(ts);
    let read = |ts: usize, f: &dyn Fn(&super::stats::BackendCounts) -> u64| {
        counts(ts).map_or(0.0, |c| f(c) as f64)
    };
    use std::sync::atomic::Ordering::Relaxed;
    m.add(
        "dnslb_backend_queries_total",
        "Queries asked of each TS.",
        Kind::Counter,
        per_backend(&|ts| read(ts, &|c| c.asked.load(Relaxed))),
    );
    m.add(
        "dnslb_backend_answers_total",
        "Answers from each TS that reached their client.",
        Kind::Counter,
        per_backend(&|ts| n(s.answered.get(ts).copied().unwrap_or(0))),
    );
    m.add(
        "dnslb_backend_timeouts_total",
        "Queries still waiting on each TS when their deadline passed.",
        Kind::Counter,
        per_backend(&|ts| read(ts, &|c| c.timeouts.load(Relaxed))),
    );
    m.add(
        "dnslb_backend_up",
        "Whether each TS is believed up (1) or down (0).",
        Kind::Gauge,
        per_backend(&|ts| f64::from(u8::from(shared.health[ts].is_up()))),
    );
    let histograms = shared
        .backends
        .iter()
        .zip(&stats.backends)
        .map(|(b, c)| {
            let (buckets, sum) = c.response.read();
            Sample {
                labels: labels(&[("backend", &b.label)]),
                value: Value::Histogram {
                    buckets: cumulative(&RESPONSE_BUCKETS, &buckets),
                    sum,
                },
            }
        })
        .collect();
    m.push(
        "dnslb_backend_response_seconds",
        "From a query's arrival to the answer of the TS that answered it first.",
        Kind::Histogram,
        histograms,
    );
    let hits = stats.cache_hits.load(Relaxed);
    // Cache misses are replied to as not found, like a TS's.
    let cached_misses = hits.saturating_sub(s.cached);
    let through_tses = s.answered.iter().sum::<u64>()
        + s.timed_out
        + s.failed
        + s.busy
        + s.not_found.saturating_sub(cached_misses);
    let cache_on = shared.cache.is_some();
    m.add_one(
        "dnslb_cache_hits_total",
        "Replies made from the cache (answers and misses).",
        Kind::Counter,
        n(hits),
    );
    m.add_one(
        "dnslb_cache_misses_total",
        "Replies made through the TSes while the cache is on (0 without --cache).",
        Kind::Counter,
        if cache_on { n(through_tses) } else { 0.0 },
    );
    m.add_one(
        "dnslb_cache_entries",
        "Entries in the cache.",
        Kind::Gauge,
        shared.cache.as_ref().map_or(0, |c| c.len()) as f64,
    );
    m.add(
        "dnslb_clients",
        "Client connections open, by front end (UDP has none).",
        Kind::Gauge,
        [
            (Frontend::Course, &stats.connections),
            (Frontend::DnsTcp, &stats.dns_connections),
        ]
        .iter()
        .map(|(f, c)| (front(f), c.open() as f64))
        .collect(),
    );
    m.add_one(
        "dnslb_inflight",
        "Queries received and not yet settled.",
        Kind::Gauge,
        n(s.in_flight),
    );
    m.add_one(
        "dnslb_trace_dropped_total",
        "Trace steps dropped because the trace writer could not keep up (--trace).",
        Kind::Counter,
        shared.trace.as_ref().map_or(0, |t| t.dropped()) as f64,
    );
    crate::web::add_process(&mut m);
    m
}
