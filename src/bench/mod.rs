//! The bench tool: drives any server speaking the dnslb protocol (an LS or a
//! TS) with many clients at once and checks every reply.
//!
//! Each client is a thread with its own TCP connection (TCP_NODELAY) sending
//! a fixed number of queries. With a pipeline of 1 a client sends a query and
//! waits for its reply before the next, as `dnslb client` and the course
//! programs do. With a pipeline of `W` a writer thread keeps up to `W`
//! queries outstanding while the client's own thread reads the replies, which
//! must come back in query order; each query's latency runs from the write
//! that carried it to the read that returned its reply.
//!
//! A benchmark that does not check answers measures nothing, so every reply
//! is classified by [`check_reply`]: a hit (an answer for the name asked,
//! with the expected IP when the names file gives one), a miss line for the
//! name asked, an error line, or a **wrong** reply (an answer or miss line
//! for another name, a different IP, an answer for a name no TS holds, or
//! text that is none of these). [`Report::is_clean`] is what the exit code
//! reports.
//!
//! A reply that does not come within the reply timeout counts as a timeout
//! (a TS is silent on names it does not hold, so against a TS a miss is a
//! timeout). If that reply comes later, it is recognised by name as the late
//! reply to a query that timed out, counted as late and dropped, so it is
//! never judged as the reply to the query being waited on.
//!
//! Memory stays bounded: each client keeps one latency sample (8 bytes) per
//! query and at most [`WRONG_EXAMPLES`] examples of wrong replies; query
//! names are computed from their index, never stored per query.
//!
//! # Layout
//! - `names`: the names file and the workload of every client.
//! - `drive`: client threads, writer threads and their credit window.
//! - `judge`: [`check_reply`] and each client's tally.
//! - `report`: [`percentile`], progress and the [`Report`].

mod drive;
mod judge;
mod names;
mod report;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use drive::CONNECT_TIMEOUT;
pub use judge::{Verdict, WRONG_EXAMPLES, check_reply};
pub use names::{Entry, Expect, Names};
pub use report::{Report, percentile};

use crate::framing::Framing;
use names::Workload;

/// How long each reply may take when no `--timeout` is given.
pub const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// How a bench run drives the server.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Concurrent clients, each with its own connection.
    pub clients: usize,
    /// Queries each client sends.
    pub queries: usize,
    /// Fraction (0 to 1) of each client's queries that ask for a made-up
    /// name no TS holds.
    pub miss_ratio: f64,
    /// Queries kept outstanding per connection (1: one at a time).
    pub pipeline: usize,
    /// `Line` (dnslb's protocol) or `Bare` (the course programs' framing:
    /// one write per query without newline, each reply one read).
    pub framing: Framing,
    /// How long a client waits for a reply before counting a timeout.
    pub reply_timeout: Duration,
    /// Print progress on stderr once per second.
    pub progress: bool,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            clients: 1,
            queries: 1000,
            miss_ratio: 0.0,
            pipeline: 1,
            framing: Framing::Line,
            reply_timeout: DEFAULT_REPLY_TIMEOUT,
            progress: false,
        }
    }
}

/// Runs the bench against the server at `addrs` (the first that accepts)
/// and reports what every client counted.
pub fn run(addrs: &[SocketAddr], names: Names, options: &BenchOptions) -> Report {
    let workload = Arc::new(Workload::new(names, options.queries, options.miss_ratio));
    let (tally, elapsed) = drive::clients(addrs, &workload, options);
    Report::new(list(addrs), options, elapsed, tally)
}

/// `addrs` as one line of text.
fn list(addrs: &[SocketAddr]) -> String {
    let all: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    all.join(", ")
}
