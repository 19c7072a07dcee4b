//! The figures of a bench run: progress while it runs, then the [`Report`]
//! (throughput, latency percentiles, what the replies were) built from the
//! clients' tallies and printed by `dnslb bench`.

use std::fmt;
use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::RecvTimeoutError;

use super::BenchOptions;
use super::judge::Tally;
use crate::framing::Framing;

/// How often progress is printed when it is printed.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// The nearest-rank `p`-th percentile (0 < p ≤ 100) of an ascending slice,
/// `None` when it is empty.
///
/// ```
/// use dnslb::bench::percentile;
/// let sorted: Vec<u64> = (1..=100).collect();
/// assert_eq!(percentile(&sorted, 50.0), Some(50));
/// assert_eq!(percentile(&sorted, 99.0), Some(99));
/// assert_eq!(percentile(&sorted, 100.0), Some(100));
/// assert_eq!(percentile(&[], 50.0), None);
/// ```
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The outcome of a bench run.
#[derive(Debug)]
pub struct Report {
    /// The server driven.
    pub target: String,
    /// The options of the run.
    pub options: BenchOptions,
    /// From the moment every client was connected to the last reply.
    pub elapsed: Duration,
    /// Answers for the name asked, with the right address when known.
    pub hits: u64,
    /// Miss lines for the name asked.
    pub misses: u64,
    /// Misses for names the names file gives an address for.
    pub known_misses: u64,
    /// Error lines.
    pub errors: u64,
    /// Wrong replies (see [`check_reply`](super::check_reply)).
    pub wrong: u64,
    /// Queries whose reply did not come within the reply timeout.
    pub timeouts: u64,
    /// Replies that came after their query had timed out (dropped, not judged).
    pub late: u64,
    /// Queries never answered because a connection failed or closed.
    pub unanswered: u64,
    /// Latency percentiles p50, p90, p99 and the maximum, when any reply came.
    pub latency: Option<[Duration; 4]>,
    /// Up to [`WRONG_EXAMPLES`](super::WRONG_EXAMPLES) wrong replies, described.
    pub wrong_examples: Vec<String>,
    /// Connections that could not be made or were lost, described.
    pub failures: Vec<String>,
}

impl Report {
    /// The report on `target` from what every client counted in `tally`,
    /// over `elapsed`.
    pub(super) fn new(
        target: String,
        options: &BenchOptions,
        elapsed: Duration,
        mut tally: Tally,
    ) -> Report {
        let mut latencies = std::mem::take(&mut tally.latencies);
        latencies.sort_unstable();
        let at = |p| Duration::from_nanos(percentile(&latencies, p).unwrap_or(0));
        let total = (options.clients * options.queries) as u64;
        Report {
            target,
            options: options.clone(),
            elapsed,
            hits: tally.hits,
            misses: tally.misses,
            known_misses: tally.known_misses,
            errors: tally.errors,
            wrong: tally.wrong,
            timeouts: tally.timeouts,
            late: tally.late,
            unanswered: total.saturating_sub(tally.done()),
            latency: (!latencies.is_empty()).then(|| [at(50.0), at(90.0), at(99.0), at(100.0)]),
            wrong_examples: tally.examples,
            failures: tally.failures,
        }
    }

    /// Queries the run was to send.
    pub fn total(&self) -> u64 {
        (self.options.clients * self.options.queries) as u64
    }

    /// Queries answered or timed out per second of the run.
    pub fn queries_per_second(&self) -> f64 {
        let done = self.total() - self.unanswered;
        done as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// No wrong reply and no connection failure: every query was asked and
    /// every reply received was right. Timeouts, misses and error lines are
    /// counted but do not make a run unclean.
    pub fn is_clean(&self) -> bool {
        self.wrong == 0 && self.failures.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.options;
        let framing = if o.framing == Framing::Bare {
            "bare"
        } else {
            "line"
        };
        writeln!(
            f,
            "target      {} ({framing} framing, pipeline {})",
            self.target, o.pipeline
        )?;
        writeln!(f, "clients     {} x {} queries", o.clients, o.queries)?;
        writeln!(f, "queries     {}", self.total())?;
        writeln!(f, "elapsed     {:.3} s", self.elapsed.as_secs_f64())?;
        writeln!(f, "throughput  {:.0} queries/s", self.queries_per_second())?;
        match self.latency {
            Some([p50, p90, p99, max]) => writeln!(
                f,
                "latency ms  p50 {:.3} p90 {:.3} p99 {:.3} max {:.3}",
                millis(p50),
                millis(p90),
                millis(p99),
                millis(max)
            )?,
            None => writeln!(f, "latency ms  n/a (no reply)")?,
        }
        writeln!(f, "hits        {}", self.hits)?;
        writeln!(
            f,
            "misses      {} ({} for names with a known answer)",
            self.misses, self.known_misses
        )?;
        writeln!(f, "timeouts    {}", self.timeouts)?;
        writeln!(f, "late        {}", self.late)?;
        writeln!(f, "errors      {}", self.errors)?;
        writeln!(f, "unanswered  {}", self.unanswered)?;
        writeln!(f, "wrong       {}", self.wrong)?;
        for example in &self.wrong_examples {
            writeln!(f, "wrong reply: {example}")?;
        }
        for failure in &self.failures {
            writeln!(f, "failure: {failure}")?;
        }
        Ok(())
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Prints `done/total, rate` on stderr every second until the returned
/// sender is dropped.
pub(super) fn start_progress(
    done: Arc<AtomicU64>,
    started: Instant,
    options: &BenchOptions,
) -> (crossbeam_channel::Sender<()>, thread::JoinHandle<()>) {
    let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
    let total = options.clients * options.queries;
    let thread = thread::spawn(move || {
        let mut printed = false;
        while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(PROGRESS_EVERY) {
            let n = done.load(Ordering::Relaxed);
            let rate = n as f64 / started.elapsed().as_secs_f64();
            let _ = write!(
                io::stderr(),
                "\rdnslb bench: {n}/{total} queries, {rate:.0} queries/s   "
            );
            printed = true;
        }
        if printed {
            let _ = writeln!(io::stderr());
        }
    });
    (stop, thread)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        assert_eq!(percentile(&[7], 50.0), Some(7));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[1, 2, 3, 4], 50.0), Some(2));
        assert_eq!(percentile(&[1, 2, 3, 4], 75.1), Some(4));
        assert_eq!(percentile(&[1, 2, 3, 4], 0.0), Some(1));
        let many: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentile(&many, 90.0), Some(900));
        assert_eq!(percentile(&many, 99.0), Some(990));
    }
}
