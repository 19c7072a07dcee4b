//! The recording side of `--trace`: the LS's threads hand each step of a
//! query to a [`Tracer`], which passes it through a bounded channel to one
//! writer thread that formats it as a JSON line and writes it.
//!
//! A step never waits: when the channel is full (the writer cannot keep
//! up) the step is dropped and counted. Off (no `--trace`), the LS holds
//! no tracer, and each step is one `Option` checked.
//!
//! The line format, the contract with `dnslb trace` and
//! `scripts/select_ls.py --trace` (docs/OBSERVE.md, "Traces"):
//!
//! ```text
//! {"t_us":1234,"thread":"worker-3","query":17,"name":"www.google.com","event":"send","ts":"ts1"}
//! ```
//!
//! keys in that order, then the event's own keys.

use std::cell::Cell;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::web::metrics::json_escape_into;

use crate::sync::lock;

/// Steps held between the LS's threads and the writer; past it, steps are
/// dropped and counted.
pub const CAPACITY: usize = 16 * 1024;

/// The writer flushes what it wrote at least this often while steps come,
/// and once the channel has been idle this long.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Which thread did a step, as the trace names it: `N` is the number of
/// the session (a client connection, or one of the DNS UDP front end's
/// sessions) the thread serves, unique in the LS for the whole run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    /// `reader-N`: the client reader of connection N.
    Reader(u32),
    /// `worker-N`: the worker of session N.
    Worker(u32),
    /// `udp-N`: the receiving thread of DNS UDP session N.
    Udp(u32),
    /// `link-N-ts1`: the link thread of session N to the TS with that
    /// label (the index in the LS's backends).
    Link(u32, usize),
    /// `ls`: a thread no session owns.
    Other,
}

impl Lane {
    /// The link thread of this lane's session to TS `ts`.
    pub fn link(self, ts: usize) -> Lane {
        match self {
            Lane::Reader(n) | Lane::Worker(n) | Lane::Udp(n) | Lane::Link(n, _) => {
                Lane::Link(n, ts)
            }
            Lane::Other => Lane::Other,
        }
    }

    /// The lane the current thread was given with [`Lane::enter`];
    /// [`Lane::Other`] when none.
    pub fn current() -> Lane {
        LANE.with(Cell::get)
    }

    /// Names the current thread `self` for the steps it records from now on.
    pub fn enter(self) {
        LANE.with(|lane| lane.set(self));
    }

    fn write(self, out: &mut String, labels: &[String]) {
        let (prefix, n) = match self {
            Lane::Reader(n) => ("reader-", n),
            Lane::Worker(n) => ("worker-", n),
            Lane::Udp(n) => ("udp-", n),
            Lane::Link(n, ts) => {
                out.push_str("link-");
                push_number(out, u64::from(n));
                out.push('-');
                escape_label(out, labels, ts);
                return;
            }
            Lane::Other => {
                out.push_str("ls");
                return;
            }
        };
        out.push_str(prefix);
        push_number(out, u64::from(n));
    }
}

thread_local! {
    static LANE: Cell<Lane> = const { Cell::new(Lane::Other) };
}

/// The front end a query arrived on, named in the trace as in the
/// metrics' `frontend` label.
pub use crate::ls::Frontend;

/// One step of a query (the `event` key and the keys that go with it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// `arrive`: the LS has read the query.
    Arrive {
        frontend: Frontend,
        client: Option<SocketAddr>,
    },
    /// `cache`: the cache was asked (`hit`, `miss`, or `stale` when an
    /// expired entry answers a query no TS answered).
    Cache(&'static str),
    /// `send`: the query was written to TS `ts` (an index in the backends).
    Send(usize),
    /// `retry`: a pool's query moves to its member `ts` (a `send` to it
    /// follows).
    Retry(usize),
    /// `reply`: TS `ts`'s reply for the query was read.
    Reply(usize),
    /// `settle`: the query's outcome is decided, answered by TS `ts` when
    /// a TS answered.
    Settle {
        outcome: &'static str,
        ts: Option<usize>,
    },
    /// `write`: the reply was written to the client.
    Write,
}

/// A query being traced: its id, its name as received, when it arrived,
/// and what the session notes of it for its `settle` step. One pointer
/// (`Option<Query>` costs the LS's per-query records 8 bytes when tracing
/// is off); cheap to clone.
#[derive(Clone, Debug)]
pub struct Query(Arc<Traced>);

#[derive(Debug)]
struct Traced {
    id: u64,
    name: Arc<str>,
    at_us: u64,
    /// When the session took it in (ns since the tracer started; 0: not
    /// yet), to the nanosecond so that its settling is timed to the
    /// microsecond.
    submitted_ns: AtomicU64,
    /// Its `settle` step is recorded.
    settled: AtomicBool,
}

impl Query {
    /// Its id, unique in the LS for the whole run.
    pub fn id(&self) -> u64 {
        self.0.id
    }

    /// When it arrived, in microseconds since the LS started.
    pub fn at_us(&self) -> u64 {
        self.0.at_us
    }

    /// Notes when the session took the query in (`t_ns`, from
    /// [`Tracer::ns_at`]), which its settling is timed from.
    pub fn submitted(&self, t_ns: u64) {
        self.0.submitted_ns.store(t_ns.max(1), Ordering::Relaxed);
    }

    /// When, in microseconds since the LS started, the query settled,
    /// `took` after the session took it in (after its arrival if that was
    /// never noted).
    pub fn settled_at_us(&self, took: Duration) -> u64 {
        let took = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        match self.0.submitted_ns.load(Ordering::Relaxed) {
            0 => self.0.at_us.saturating_add(took / 1000),
            ns => ns.saturating_add(took) / 1000,
        }
    }

    /// Notes that its `settle` step is recorded; returns whether it was
    /// already.
    pub fn settle_recorded(&self) -> bool {
        self.0.settled.swap(true, Ordering::Relaxed)
    }
}

/// One line of the trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub t_us: u64,
    pub lane: Lane,
    pub query: u64,
    pub name: Arc<str>,
    pub step: Step,
}

enum Message {
    Record(Record),
    Stop,
}

/// What a trace came to, once its writer has finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Totals {
    pub written: u64,
    pub dropped: u64,
}

/// Where the LS's threads record their steps: the clock they share, the
/// ids it hands out and the channel to its writer thread.
pub struct Tracer {
    epoch: Instant,
    steps: Sender<Message>,
    next_query: AtomicU64,
    next_session: AtomicU32,
    dropped: AtomicU64,
    writer: Mutex<Option<JoinHandle<io::Result<u64>>>>,
}

impl Tracer {
    /// A tracer writing to the file at `path` (created or truncated), its
    /// TSes named by `labels` (`ts1`, `ts2`, ... by backend index).
    ///
    /// # Errors
    /// When the file cannot be created, or the writer thread cannot start.
    pub fn create(path: &Path, labels: Vec<String>) -> io::Result<Tracer> {
        let file = File::create(path)?;
        Tracer::to_writer(file, labels, CAPACITY)
    }

    /// A tracer writing to `out` through a channel of `capacity` steps.
    ///
    /// # Errors
    /// When the writer thread cannot start.
    pub fn to_writer(
        out: impl Write + Send + 'static,
        labels: Vec<String>,
        capacity: usize,
    ) -> io::Result<Tracer> {
        let (steps, received) = crossbeam_channel::bounded(capacity);
        let writer = thread::Builder::new()
            .name("ls trace".into())
            .spawn(move || write_lines(&received, out, &labels))?;
        Ok(Tracer {
            epoch: Instant::now(),
            steps,
            next_query: AtomicU64::new(1),
            next_session: AtomicU32::new(1),
            dropped: AtomicU64::new(0),
            writer: Mutex::new(Some(writer)),
        })
    }

    /// A fresh session number, for the lanes of its threads.
    pub fn session(&self) -> u32 {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }

    /// Microseconds from the tracer's start to `at`.
    pub fn us_at(&self, at: Instant) -> u64 {
        self.ns_at(at) / 1000
    }

    /// Nanoseconds from the tracer's start to `at`.
    pub fn ns_at(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Microseconds since the tracer started.
    pub fn now_us(&self) -> u64 {
        self.us_at(Instant::now())
    }

    /// A query for `name` has arrived on `frontend` from `client`: records
    /// its `arrive` step on the current thread's lane and returns it.
    pub fn arrive(&self, name: &str, frontend: Frontend, client: Option<SocketAddr>) -> Query {
        let query = Query(Arc::new(Traced {
            id: self.next_query.fetch_add(1, Ordering::Relaxed),
            name: Arc::from(name),
            at_us: self.now_us(),
            submitted_ns: AtomicU64::new(0),
            settled: AtomicBool::new(false),
        }));
        let arrive = Step::Arrive { frontend, client };
        self.step_at(&query, Lane::current(), query.at_us(), arrive);
        query
    }

    /// Records `step` of `query`, now, on the current thread's lane.
    pub fn step(&self, query: &Query, step: Step) {
        self.step_at(query, Lane::current(), self.now_us(), step);
    }

    /// Records `step` of `query` as `lane`'s at `t_us`. Never waits: a
    /// step the writer has no room for is dropped and counted.
    pub fn step_at(&self, query: &Query, lane: Lane, t_us: u64, step: Step) {
        let record = Record {
            t_us,
            lane,
            query: query.0.id,
            name: Arc::clone(&query.0.name),
            step,
        };
        if self.steps.try_send(Message::Record(record)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Steps dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Lets the writer write what it holds, flush and stop; returns what
    /// was written and dropped. Steps recorded later are dropped. Later
    /// calls return the same counts of writes as zero.
    ///
    /// # Errors
    /// The writer's: the file could not be written.
    pub fn finish(&self) -> io::Result<Totals> {
        let Some(writer) = lock(&self.writer).take() else {
            return Ok(Totals {
                written: 0,
                dropped: self.dropped(),
            });
        };
        // Waits for room: the writer is draining the channel. A writer that
        // failed has dropped its end, and the send returns at once.
        let _ = self.steps.send(Message::Stop);
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the trace writer panicked")))?;
        Ok(Totals {
            written,
            dropped: self.dropped(),
        })
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// Records `step` of `query` on the current thread's lane, now, when the
/// LS traces (`tracer`) and traces this query: the one check a step costs
/// when tracing is off.
#[inline]
pub fn step(tracer: &Option<Tracer>, query: &Option<Query>, step: Step) {
    if let (Some(tracer), Some(query)) = (tracer, query) {
        tracer.step(query, step);
    }
}

/// The writer thread: formats and writes each step until told to stop,
/// flushing at least every [`FLUSH_EVERY`]. Returns the lines written.
fn write_lines(steps: &Receiver<Message>, out: impl Write, labels: &[String]) -> io::Result<u64> {
    let mut out = BufWriter::with_capacity(64 * 1024, out);
    let mut line = String::with_capacity(256);
    let (mut written, mut unflushed) = (0u64, false);
    let mut flushed_at = Instant::now();
    loop {
        match steps.recv_timeout(FLUSH_EVERY) {
            Ok(Message::Record(record)) => {
                line.clear();
                format_line(&mut line, &record, labels);
                out.write_all(line.as_bytes())?;
                written += 1;
                unflushed = true;
                // The clock, every 256 lines: a steady stream is flushed
                // at least every FLUSH_EVERY too.
                if written % 256 == 0 && flushed_at.elapsed() >= FLUSH_EVERY {
                    out.flush()?;
                    (flushed_at, unflushed) = (Instant::now(), false);
                }
            }
            Ok(Message::Stop) | Err(RecvTimeoutError::Disconnected) => {
                out.flush()?;
                return Ok(written);
            }
            Err(RecvTimeoutError::Timeout) => {
                if unflushed {
                    out.flush()?;
                    (flushed_at, unflushed) = (Instant::now(), false);
                }
            }
        }
    }
}

/// Appends TS `ts`'s label, escaped (`ts1` for 0 when the LS gave none).
fn escape_label(out: &mut String, labels: &[String], ts: usize) {
    match labels.get(ts) {
        Some(label) => json_escape_into(out, label),
        None => {
            out.push_str("ts");
            push_number(out, ts as u64 + 1);
        }
    }
}

/// Appends `n` in decimal (the writer formats every number this way: a
/// `write!` each costs more than the rest of a line).
fn push_number(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.push_str(std::str::from_utf8(&digits[at..]).expect("ASCII digits"));
}

/// Appends `record` to `out` as one JSON line, newline included.
///
/// ```
/// use std::sync::Arc;
/// use dnslb::trace::{Lane, Step, record::{Record, format_line}};
///
/// let record = Record {
///     t_us: 1234,
///     lane: Lane::Worker(3),
///     query: 17,
///     name: Arc::from("www.google.com"),
///     step: Step::Send(0),
/// };
/// let mut line = String::new();
/// format_line(&mut line, &record, &["ts1".to_string()]);
/// assert_eq!(
///     line,
///     "{\"t_us\":1234,\"thread\":\"worker-3\",\"query\":17,\"name\":\"www.google.com\",\"event\":\"send\",\"ts\":\"ts1\"}\n"
/// );
/// ```
pub fn format_line(out: &mut String, record: &Record, labels: &[String]) {
    out.push_str("{\"t_us\":");
    push_number(out, record.t_us);
    out.push_str(",\"thread\":\"");
    record.lane.write(out, labels);
    out.push_str("\",\"query\":");
    push_number(out, record.query);
    out.push_str(",\"name\":\"");
    json_escape_into(out, &record.name);
    out.push_str("\",\"event\":\"");
    let ts = |out: &mut String, ts: usize| {
        out.push_str(",\"ts\":\"");
        escape_label(out, labels, ts);
        out.push('"');
    };
    match &record.step {
        Step::Arrive { frontend, client } => {
            let _ = write!(out, "arrive\",\"frontend\":\"{}\"", frontend.label());
            if let Some(client) = client {
                let _ = write!(out, ",\"client\":\"{client}\"");
            }
        }
        Step::Cache(outcome) => {
            out.push_str("cache\",\"outcome\":\"");
            json_escape_into(out, outcome);
            out.push('"');
        }
        Step::Send(n) => {
            out.push_str("send\"");
            ts(out, *n);
        }
        Step::Retry(n) => {
            out.push_str("retry\"");
            ts(out, *n);
        }
        Step::Reply(n) => {
            out.push_str("reply\"");
            ts(out, *n);
        }
        Step::Settle { outcome, ts: by } => {
            out.push_str("settle\",\"outcome\":\"");
            json_escape_into(out, outcome);
            out.push('"');
            if let Some(n) = by {
                ts(out, *n);
            }
        }
        Step::Write => out.push_str("write\""),
    }
    out.push_str("}\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(lane: Lane, name: &str, step: Step) -> String {
        let record = Record {
            t_us: 5,
            lane,
            query: 2,
            name: Arc::from(name),
            step,
        };
        let mut out = String::new();
        format_line(&mut out, &record, &["ts1".to_string(), "ts2".to_string()]);
        out
    }

    #[test]
    fn smoke() {
        assert_eq!(
            line(Lane::Reader(1), "a.com", Step::Write),
            "{\"t_us\":5,\"thread\":\"reader-1\",\"query\":2,\"name\":\"a.com\",\"event\":\"write\"}\n"
        );
    }

    #[test]
    fn every_event_has_its_keys_after_the_common_ones() {
        let client = Some("127.0.0.1:4000".parse().expect("an address"));
        let arrive = Step::Arrive {
            frontend: Frontend::DnsUdp,
            client,
        };
        assert!(line(Lane::Udp(4), "x", arrive).ends_with(
            "\"thread\":\"udp-4\",\"query\":2,\"name\":\"x\",\"event\":\"arrive\",\"frontend\":\"dns_udp\",\"client\":\"127.0.0.1:4000\"}\n"
        ));
        assert!(
            line(Lane::Link(3, 1), "x", Step::Reply(1))
                .ends_with("\"thread\":\"link-3-ts2\",\"query\":2,\"name\":\"x\",\"event\":\"reply\",\"ts\":\"ts2\"}\n")
        );
        let settle = Step::Settle {
            outcome: "answer",
            ts: Some(0),
        };
        assert!(
            line(Lane::Worker(3), "x", settle)
                .ends_with("\"event\":\"settle\",\"outcome\":\"answer\",\"ts\":\"ts1\"}\n")
        );
        let timeout = Step::Settle {
            outcome: "timeout",
            ts: None,
        };
        assert!(line(Lane::Worker(3), "x", timeout).ends_with("\"outcome\":\"timeout\"}\n"));
        assert!(
            line(Lane::Worker(3), "x", Step::Retry(1))
                .ends_with("\"event\":\"retry\",\"ts\":\"ts2\"}\n")
        );
        assert!(
            line(Lane::Reader(3), "x", Step::Cache("hit"))
                .ends_with("\"event\":\"cache\",\"outcome\":\"hit\"}\n")
        );
        assert!(line(Lane::Other, "x", Step::Send(7)).contains("\"thread\":\"ls\""));
        assert!(line(Lane::Other, "x", Step::Send(7)).ends_with("\"ts\":\"ts8\"}\n"));
    }

    #[test]
    fn odd_names_are_escaped_into_valid_json_strings() {
        let odd = "we\"ird\\na\tme\r\n\u{0}\u{1f}\u{7f}é😀";
        let out = line(Lane::Worker(1), odd, Step::Write);
        assert!(
            out.contains(r#""name":"we\"ird\\na\tme\r\n\u0000\u001f\u007fé😀","#),
            "{out}"
        );
        // One line: no raw control character survives.
        assert_eq!(out.matches('\n').count(), 1);
        assert!(out.chars().all(|c| c == '\n' || u32::from(c) >= 0x20));
    }

    /// A writer that takes nothing until `open` is sent (or dropped).
    struct Gated {
        open: Receiver<()>,
        out: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Gated {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let _ = self.open.recv();
            lock(&self.out).extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            let _ = self.open.recv();
            Ok(())
        }
    }

    #[test]
    fn a_full_channel_drops_and_counts_steps_instead_of_waiting() {
        let (open, gate) = crossbeam_channel::unbounded();
        let out = Arc::new(Mutex::new(Vec::new()));
        let gated = Gated {
            open: gate,
            out: Arc::clone(&out),
        };
        // Writes go through a 64 KiB buffer: the writer blocks only once it
        // flushes, which it does 100 ms after its first line.
        let tracer = Arc::new(Tracer::to_writer(gated, vec!["ts1".into()], 4).expect("a tracer"));
        let (done_tx, done) = crossbeam_channel::bounded(1);
        let recording = Arc::clone(&tracer);
        // Dropped before the tracer, whose drop waits for its writer, even
        // when an assertion below fails.
        let open = open;
        thread::spawn(move || {
            let query = recording.arrive("a.com", Frontend::Course, None);
            // Once the writer is blocked on the gate, 4 fit and every later
            // step is dropped. Bounded, should the writer never block.
            let bound = Instant::now() + Duration::from_secs(10);
            while recording.dropped() < 100 && Instant::now() < bound {
                recording.step(&query, Step::Send(0));
            }
            let _ = done_tx.send(());
        });
        done.recv_timeout(Duration::from_secs(10))
            .expect("recording steps never waits for the writer");
        assert!(tracer.dropped() >= 100, "{}", tracer.dropped());
        drop(open);
        let totals = tracer.finish().expect("the writer's totals");
        assert!(totals.dropped >= 100);
        let text = String::from_utf8(lock(&out).clone()).expect("UTF-8");
        assert_eq!(text.lines().count() as u64, totals.written);
        assert!(text.starts_with("{\"t_us\":"));
    }

    #[test]
    fn finish_writes_every_step_recorded_before_it() {
        let out = Arc::new(Mutex::new(Vec::new()));
        struct Shared(Arc<Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
                lock(&self.0).extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let tracer = Tracer::to_writer(Shared(Arc::clone(&out)), vec![], 64).expect("a tracer");
        Lane::Worker(9).enter();
        let query = tracer.arrive("b.org", Frontend::DnsTcp, None);
        tracer.step(&query, Step::Write);
        let totals = tracer.finish().expect("totals");
        assert_eq!(
            totals,
            Totals {
                written: 2,
                dropped: 0
            }
        );
        let text = String::from_utf8(lock(&out).clone()).expect("UTF-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].contains("\"thread\":\"worker-9\",\"query\":1,\"name\":\"b.org\",\"event\":\"arrive\",\"frontend\":\"dns_tcp\"}"));
        assert!(lines[1].contains("\"event\":\"write\""));
        // Recorded after the writer stopped: dropped, not waited for.
        tracer.step(&query, Step::Write);
        assert_eq!(tracer.dropped(), 1);
    }

    #[test]
    fn numbers_are_written_whole_from_zero_to_the_largest() {
        for n in [0, 7, 10, 1234, u64::MAX] {
            let mut out = String::new();
            push_number(&mut out, n);
            assert_eq!(out, n.to_string());
        }
        let mut out = String::new();
        escape_label(&mut out, &[], 11);
        assert_eq!(out, "ts12");
    }

    #[test]
    fn a_query_settles_took_after_its_submission_to_the_microsecond() {
        let tracer = Tracer::to_writer(io::sink(), vec![], 8).expect("a tracer");
        let query = tracer.arrive("a", Frontend::Course, None);
        let arrived = query.at_us();
        assert_eq!(query.settled_at_us(Duration::from_micros(5)), arrived + 5);
        query.submitted(1_500);
        // 1.5 µs + 2.6 µs: 4.1 µs, not 1 + 2.
        assert_eq!(query.settled_at_us(Duration::from_nanos(2_600)), 4);
        assert!(!query.settle_recorded());
        assert!(query.settle_recorded(), "once");
    }

    #[test]
    fn lanes_of_a_session_name_its_links() {
        assert_eq!(Lane::Worker(3).link(0), Lane::Link(3, 0));
        assert_eq!(Lane::Udp(2).link(1), Lane::Link(2, 1));
        assert_eq!(Lane::Other.link(1), Lane::Other);
    }
}
