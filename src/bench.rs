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

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Write};
use std::net::{Ipv4Addr, Shutdown as Direction, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::RecvTimeoutError;

use crate::framing::{Frame, Framing, MessageReader, is_timeout};
use crate::net::connect_any;
use crate::wire;

/// How long each reply may take when no `--timeout` is given.
pub const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a client waits for the server to accept its connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Examples of wrong replies kept per client (and printed per run).
pub const WRONG_EXAMPLES: usize = 10;

/// Timed-out queries remembered per client, to recognise their late replies.
const MAX_OVERDUE: usize = 1024;

/// Longest reply kept; longer ones are wrong.
const MAX_REPLY_LEN: usize = 4096;

/// Client threads only format names and parse replies; they need little stack.
const CLIENT_STACK: usize = 128 * 1024;

/// How often progress is printed when it is printed.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// The names used when no names file is given: the course's two TS tables
/// (data/PROJ2-DNSTS1.txt and data/PROJ2-DNSTS2.txt), built in.
const COURSE_TABLES: &str = concat!(
    include_str!("../data/PROJ2-DNSTS1.txt"),
    "\n",
    include_str!("../data/PROJ2-DNSTS2.txt"),
);

/// What the bench knows about the right reply to a name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// The names file gives this address: an answer must carry it.
    Ip(Ipv4Addr),
    /// A plain hostname: any answer for it (or a miss) is accepted.
    Unknown,
    /// A name the bench made up (`miss-<client>-<n>.invalid`): no TS holds
    /// it, so the only right reply is a miss.
    Absent,
}

/// One name of the workload and what is expected for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The hostname sent.
    pub name: String,
    /// The right reply, as far as known.
    pub expect: Expect,
}

/// The names a bench run asks for (misses aside).
#[derive(Clone, Debug, Default)]
pub struct Names {
    entries: Vec<Entry>,
}

/// What is wrong with a names file.
#[derive(Debug)]
pub enum NamesError {
    /// The file could not be read.
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// Line `line` (counted from 1) is neither a hostname nor a table record.
    Line {
        path: PathBuf,
        line: usize,
        problem: String,
    },
    /// The file holds no names.
    Empty { path: PathBuf },
}

impl fmt::Display for NamesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NamesError::Io { path, error } => write!(f, "cannot read {}: {error}", path.display()),
            NamesError::Line {
                path,
                line,
                problem,
            } => write!(f, "{}:{line}: {problem}", path.display()),
            NamesError::Empty { path } => write!(f, "{}: no names in the file", path.display()),
        }
    }
}

impl std::error::Error for NamesError {}

impl Names {
    /// The course's four names with their addresses (see `data/`).
    pub fn course() -> Names {
        Names::parse(COURSE_TABLES.as_bytes()).expect("the built-in course tables parse")
    }

    /// Loads a names file: a TS table file (`name ip A` per line, so every
    /// answer can be checked against its address) or a plain list of
    /// hostnames, one per line; the two may be mixed. Blank lines and `#`
    /// comments are ignored.
    ///
    /// # Errors
    /// [`NamesError`] naming the file (and line) that is unreadable, malformed or empty.
    pub fn load(path: &Path) -> Result<Names, NamesError> {
        let bytes = std::fs::read(path).map_err(|error| NamesError::Io {
            path: path.to_path_buf(),
            error,
        })?;
        let names = Names::parse(&bytes).map_err(|(line, problem)| NamesError::Line {
            path: path.to_path_buf(),
            line,
            problem,
        })?;
        if names.is_empty() {
            return Err(NamesError::Empty {
                path: path.to_path_buf(),
            });
        }
        Ok(names)
    }

    /// Parses a names file's text (see [`Names::load`]).
    ///
    /// ```
    /// use dnslb::bench::{Expect, Names};
    /// let names = Names::parse(b"# TS1\nAmazon.org 94.5.6.7 A\n\nwww.example.com\n").unwrap();
    /// assert_eq!(names.entries()[0].expect, Expect::Ip("94.5.6.7".parse().unwrap()));
    /// assert_eq!(names.entries()[1].expect, Expect::Unknown);
    /// assert_eq!(Names::parse(b"a.com\nb.com 1.2.3 A").unwrap_err().0, 2);
    /// ```
    ///
    /// # Errors
    /// The first malformed line's number (from 1) and what is wrong with it;
    /// a name listed twice with different addresses is malformed, because
    /// either address could then be the right answer.
    pub fn parse(text: &[u8]) -> Result<Names, (usize, String)> {
        let mut entries = Vec::new();
        let mut seen: std::collections::HashMap<String, (Ipv4Addr, usize)> =
            std::collections::HashMap::new();
        for (index, raw) in text.split(|&b| b == b'\n').enumerate() {
            let number = index + 1;
            let line =
                std::str::from_utf8(raw).map_err(|_| (number, "not valid UTF-8".to_string()))?;
            let content = line.split('#').next().unwrap_or("").trim();
            if content.is_empty() {
                continue;
            }
            if !content.contains(char::is_whitespace) {
                if !wire::is_hostname(content) {
                    return Err((number, format!("{content:?} is not a valid hostname")));
                }
                entries.push(Entry {
                    name: content.to_string(),
                    expect: Expect::Unknown,
                });
                continue;
            }
            let answer = wire::parse_answer(content.as_bytes()).map_err(|_| {
                (
                    number,
                    format!("expected a hostname or `hostname ip A`, found {content:?}"),
                )
            })?;
            let key = wire::name_key(&answer.name);
            if let Some(&(ip, first)) = seen.get(&key) {
                if ip != answer.ip {
                    return Err((
                        number,
                        format!(
                            "{} is listed with {} here and with {ip} on line {first}",
                            answer.name, answer.ip
                        ),
                    ));
                }
            } else {
                seen.insert(key, (answer.ip, number));
            }
            entries.push(Entry {
                name: answer.name,
                expect: Expect::Ip(answer.ip),
            });
        }
        Ok(Names { entries })
    }

    /// The names, in file order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Number of names.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no names.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// How one reply was judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// An answer for the name asked (with the expected address, when known).
    Hit,
    /// A miss line for the name asked.
    Miss,
    /// An error line (`- Error:...`, `<name> - Error:INVALID HOSTNAME`, ...).
    Error,
    /// Not a right reply to this query; the text says why.
    Wrong(&'static str),
}

/// Miss lines accepted, by their ending after `<name>`: the LS's 2020 and 2022
/// misses and a TS's negative answer (`<name> - NOT FOUND`).
const MISS_ENDINGS: [&str; 3] = [" - Error:HOST NOT FOUND", " - TIMED OUT", " - NOT FOUND"];

/// Judges `reply` (one reply message, without line ending) to the query
/// `asked`. Names compare ignoring case and a final dot, as lookups do.
///
/// ```
/// use dnslb::bench::{check_reply, Expect, Verdict};
/// let ip = Expect::Ip("46.1.3.7".parse().unwrap());
/// assert_eq!(check_reply("google.site", ip, b"Google.site 46.1.3.7 A"), Verdict::Hit);
/// assert_eq!(check_reply("x.com", Expect::Unknown, b"x.com - Error:HOST NOT FOUND"), Verdict::Miss);
/// assert!(matches!(check_reply("google.site", ip, b"amazon.org 46.1.3.7 A"), Verdict::Wrong(_)));
/// assert!(matches!(check_reply("google.site", ip, b"google.site 1.1.1.1 A"), Verdict::Wrong(_)));
/// ```
pub fn check_reply(asked: &str, expect: Expect, reply: &[u8]) -> Verdict {
    match shape(reply) {
        Shape::Answer { name, ip } => {
            if !same_name(name, asked) {
                Verdict::Wrong("answer for another name")
            } else {
                match expect {
                    Expect::Absent => Verdict::Wrong("answer for a name no TS holds"),
                    Expect::Ip(right) if right != ip => {
                        Verdict::Wrong("address differs from the names file")
                    }
                    _ => Verdict::Hit,
                }
            }
        }
        Shape::Miss { name } if same_name(name, asked) => Verdict::Miss,
        Shape::Miss { .. } => Verdict::Wrong("miss line for another name"),
        Shape::ErrorLine => Verdict::Error,
        Shape::Other(why) => Verdict::Wrong(why),
    }
}

/// What kind of line a reply is, whatever was asked.
enum Shape<'a> {
    /// `name ip A` or `name ip A IN`.
    Answer { name: &'a str, ip: Ipv4Addr },
    /// `<name> - Error:HOST NOT FOUND` and the other [`MISS_ENDINGS`].
    Miss { name: &'a str },
    /// `- Error:...` or `<text> - Error:...`.
    ErrorLine,
    /// Anything else, and why it is none of the above.
    Other(&'static str),
}

fn shape(reply: &[u8]) -> Shape<'_> {
    let Ok(text) = std::str::from_utf8(reply) else {
        return Shape::Other("reply is not UTF-8");
    };
    let text = text.trim();
    let mut fields = [""; 4];
    let mut count = 0;
    for field in text.split_ascii_whitespace() {
        if count == fields.len() {
            count += 1;
            break;
        }
        fields[count] = field;
        count += 1;
    }
    let shaped_as_answer = matches!((count, fields[2], fields[3]), (3, "A", _) | (4, "A", "IN"));
    if shaped_as_answer
        && wire::is_hostname(fields[0])
        && let Ok(ip) = fields[1].parse::<Ipv4Addr>()
    {
        return Shape::Answer {
            name: fields[0],
            ip,
        };
    }
    for ending in MISS_ENDINGS {
        if let Some(name) = text.strip_suffix(ending) {
            return Shape::Miss { name: name.trim() };
        }
    }
    if text.starts_with("- Error:") || text.contains(" - Error:") {
        return Shape::ErrorLine;
    }
    Shape::Other("not an answer, a miss or an error line")
}

/// The name an answer or a miss line is about.
fn subject(reply: &[u8]) -> Option<&str> {
    match shape(reply) {
        Shape::Answer { name, .. } | Shape::Miss { name } => Some(name),
        Shape::ErrorLine | Shape::Other(_) => None,
    }
}

/// Whether two hostnames are the same name (ignoring case and a final dot).
fn same_name(a: &str, b: &str) -> bool {
    let a = a.strip_suffix('.').unwrap_or(a);
    let b = b.strip_suffix('.').unwrap_or(b);
    a.eq_ignore_ascii_case(b)
}

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

/// The queries of a run, computed from (client, index) so none is stored.
struct Workload {
    names: Names,
    queries: usize,
    miss_ratio: f64,
}

impl Workload {
    /// Whether query `j` asks for a made-up name: spread evenly, exactly
    /// `floor(queries × ratio)` per client.
    fn is_miss(&self, j: usize) -> bool {
        self.names.is_empty()
            || ((j + 1) as f64 * self.miss_ratio).floor() > (j as f64 * self.miss_ratio).floor()
    }

    /// The name client `c` sends as its query `j`, and what is expected for it.
    fn query(&self, c: usize, j: usize) -> (Cow<'_, str>, Expect) {
        if self.is_miss(j) {
            return (Cow::Owned(format!("miss-{c}-{j}.invalid")), Expect::Absent);
        }
        let entry = &self.names.entries[(c * self.queries + j) % self.names.len()];
        (Cow::Borrowed(&entry.name), entry.expect)
    }
}

/// What one client counted.
#[derive(Debug, Default)]
struct Tally {
    hits: u64,
    misses: u64,
    /// Misses for names the names file gives an address for.
    known_misses: u64,
    errors: u64,
    wrong: u64,
    timeouts: u64,
    /// Replies that came after their query timed out.
    late: u64,
    /// Names of the queries that timed out and whose reply may still come,
    /// oldest first (at most [`MAX_OVERDUE`]).
    overdue: VecDeque<String>,
    /// Latency of every reply received, in nanoseconds.
    latencies: Vec<u64>,
    examples: Vec<String>,
    failures: Vec<String>,
}

impl Tally {
    fn record(&mut self, asked: &str, expect: Expect, reply: &[u8], latency: Duration) {
        self.latencies
            .push(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX));
        match check_reply(asked, expect, reply) {
            Verdict::Hit => self.hits += 1,
            Verdict::Miss => {
                self.misses += 1;
                if matches!(expect, Expect::Ip(_)) {
                    self.known_misses += 1;
                }
            }
            Verdict::Error => self.errors += 1,
            Verdict::Wrong(why) => {
                let got = String::from_utf8_lossy(reply);
                self.wrong(format!("asked {asked:?}, got {:?}: {why}", got.trim()));
            }
        }
    }

    /// Counts a timeout on `asked`; its reply may still come.
    fn timed_out(&mut self, asked: &str) {
        self.timeouts += 1;
        if self.overdue.len() == MAX_OVERDUE {
            self.overdue.pop_front();
        }
        self.overdue.push_back(asked.to_string());
    }

    /// Whether `reply`, read while waiting for `asked`, is the late reply to
    /// a query that timed out: then it is counted as late and dropped, and
    /// the queries overdue before that one are forgotten (replies come in
    /// order, so theirs never will). Matched by name, as the LS matches TS
    /// answers.
    fn take_late(&mut self, asked: &str, reply: &[u8]) -> bool {
        if self.overdue.is_empty() {
            return false;
        }
        let Some(name) = subject(reply) else {
            return false;
        };
        if same_name(name, asked) {
            return false;
        }
        match self.overdue.iter().position(|n| same_name(n, name)) {
            Some(at) => {
                self.overdue.drain(..=at);
                self.late += 1;
                true
            }
            None => false,
        }
    }

    fn wrong(&mut self, example: String) {
        self.wrong += 1;
        if self.examples.len() < WRONG_EXAMPLES {
            self.examples.push(example);
        }
    }

    /// Replies received plus timeouts: the queries that were dealt with.
    /// Counts what reading the reply to `asked` (sent at `sent`) by client
    /// `c` gave; false when the connection is lost.
    fn judge(&mut self, read: Read, c: usize, asked: &str, expect: Expect, sent: Instant) -> bool {
        match read {
            Read::Reply(reply) => self.record(asked, expect, &reply, sent.elapsed()),
            Read::TimedOut => self.timed_out(asked),
            Read::Lost(why) => {
                let done = self.done();
                self.failures
                    .push(format!("client {c}: after {done} replies: {why}"));
                return false;
            }
        }
        true
    }

    fn done(&self) -> u64 {
        self.hits + self.misses + self.errors + self.wrong + self.timeouts
    }

    fn merge(&mut self, other: Tally) {
        self.hits += other.hits;
        self.misses += other.misses;
        self.known_misses += other.known_misses;
        self.errors += other.errors;
        self.wrong += other.wrong;
        self.timeouts += other.timeouts;
        self.late += other.late;
        self.latencies.extend(other.latencies);
        for example in other.examples {
            if self.examples.len() < WRONG_EXAMPLES {
                self.examples.push(example);
            }
        }
        self.failures.extend(other.failures);
    }
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
    /// Wrong replies (see [`check_reply`]).
    pub wrong: u64,
    /// Queries whose reply did not come within the reply timeout.
    pub timeouts: u64,
    /// Replies that came after their query had timed out (dropped, not judged).
    pub late: u64,
    /// Queries never answered because a connection failed or closed.
    pub unanswered: u64,
    /// Latency percentiles p50, p90, p99 and the maximum, when any reply came.
    pub latency: Option<[Duration; 4]>,
    /// Up to [`WRONG_EXAMPLES`] wrong replies, described.
    pub wrong_examples: Vec<String>,
    /// Connections that could not be made or were lost, described.
    pub failures: Vec<String>,
}

impl Report {
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

/// Runs the bench against the server at `addrs` (the first that accepts)
/// and reports what every client counted.
pub fn run(addrs: &[SocketAddr], names: Names, options: &BenchOptions) -> Report {
    let workload = Arc::new(Workload {
        names,
        queries: options.queries,
        miss_ratio: options.miss_ratio.clamp(0.0, 1.0),
    });
    let progress = Arc::new(AtomicU64::new(0));
    // Every client connects and reports ready; all start together with the
    // clock when `go` is dropped.
    let (ready_tx, ready) = crossbeam_channel::unbounded::<()>();
    let (go, go_rx) = crossbeam_channel::bounded::<()>(0);
    let mut clients = Vec::with_capacity(options.clients);
    let mut tally = Tally::default();
    for c in 0..options.clients {
        let (workload, progress) = (Arc::clone(&workload), Arc::clone(&progress));
        let (ready_tx, go_rx) = (ready_tx.clone(), go_rx.clone());
        let (addrs, options) = (addrs.to_vec(), options.clone());
        let spawned = thread::Builder::new()
            .name(format!("bench client {c}"))
            .stack_size(CLIENT_STACK)
            .spawn(move || {
                let stream = connect_any(&addrs, CONNECT_TIMEOUT);
                let _ = ready_tx.send(());
                let _ = go_rx.recv();
                let mut tally = Tally {
                    latencies: Vec::with_capacity(options.queries),
                    ..Tally::default()
                };
                match stream {
                    Ok(stream) => drive(c, stream, &workload, &options, &progress, &mut tally),
                    Err(e) => tally.failures.push(format!(
                        "client {c}: cannot connect to {}: {e}",
                        list(&addrs)
                    )),
                }
                tally
            });
        match spawned {
            Ok(handle) => clients.push(handle),
            Err(e) => tally
                .failures
                .push(format!("cannot start client thread {c}: {e}")),
        }
    }
    drop(ready_tx);
    for _ in 0..clients.len() {
        if ready.recv().is_err() {
            break;
        }
    }
    let started = Instant::now();
    drop(go);
    let ticker = options
        .progress
        .then(|| start_progress(Arc::clone(&progress), started, options));
    for handle in clients {
        match handle.join() {
            Ok(client) => tally.merge(client),
            Err(_) => tally.failures.push("a client thread panicked".to_string()),
        }
    }
    let elapsed = started.elapsed();
    if let Some((stop, thread)) = ticker {
        drop(stop);
        let _ = thread.join();
    }
    let mut latencies = std::mem::take(&mut tally.latencies);
    latencies.sort_unstable();
    let at = |p| Duration::from_nanos(percentile(&latencies, p).unwrap_or(0));
    let total = (options.clients * options.queries) as u64;
    Report {
        target: list(addrs),
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

fn list(addrs: &[SocketAddr]) -> String {
    let all: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    all.join(", ")
}

/// Prints `done/total, rate` on stderr every second until the returned
/// sender is dropped.
fn start_progress(
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

/// One client's run on its connection.
fn drive(
    c: usize,
    stream: TcpStream,
    workload: &Arc<Workload>,
    options: &BenchOptions,
    progress: &Arc<AtomicU64>,
    tally: &mut Tally,
) {
    let reader = stream
        .set_nodelay(true)
        .and_then(|()| stream.set_read_timeout(Some(options.reply_timeout)))
        .and_then(|()| stream.try_clone());
    let reader = match reader {
        Ok(clone) => MessageReader::new(clone, options.framing, MAX_REPLY_LEN),
        Err(e) => {
            tally
                .failures
                .push(format!("client {c}: cannot set up its connection: {e}"));
            return;
        }
    };
    if options.pipeline <= 1 || options.framing == Framing::Bare {
        one_at_a_time(c, stream, reader, workload, options, progress, tally);
    } else {
        pipelined(c, stream, reader, workload, options, progress, tally);
    }
}

/// What reading one reply gave.
enum Read {
    Reply(Vec<u8>),
    TimedOut,
    /// The connection is unusable; the text says why.
    Lost(String),
}

fn read_reply(reader: &mut MessageReader, options: &BenchOptions) -> Read {
    match reader.next_frame() {
        Ok(Some(Frame::Message(bytes))) => Read::Reply(bytes),
        // Over the limit: certainly not a reply to a hostname query.
        Ok(Some(Frame::TooLong)) => Read::Reply(b"(over-long reply)".to_vec()),
        Ok(None) => Read::Lost("the server closed the connection".to_string()),
        Err(e) if is_timeout(&e) => Read::TimedOut,
        Err(e) => Read::Lost(format!(
            "reading a reply failed: {e} (reply timeout {:?})",
            options.reply_timeout
        )),
    }
}

/// The reply to `asked`, skipping late replies to queries that timed out.
fn next_reply(
    reader: &mut MessageReader,
    options: &BenchOptions,
    asked: &str,
    tally: &mut Tally,
) -> Read {
    loop {
        match read_reply(reader, options) {
            Read::Reply(reply) if tally.take_late(asked, &reply) => {}
            other => return other,
        }
    }
}

/// Send a query, wait for its reply, repeat.
fn one_at_a_time(
    c: usize,
    mut stream: TcpStream,
    mut reader: MessageReader,
    workload: &Workload,
    options: &BenchOptions,
    progress: &AtomicU64,
    tally: &mut Tally,
) {
    let mut message = Vec::with_capacity(64);
    for j in 0..options.queries {
        let (name, expect) = workload.query(c, j);
        message.clear();
        message.extend_from_slice(name.as_bytes());
        if options.framing != Framing::Bare {
            message.push(b'\n');
        }
        let sent = Instant::now();
        if let Err(e) = stream.write_all(&message) {
            tally
                .failures
                .push(format!("client {c}: sending query {} failed: {e}", j + 1));
            return;
        }
        let read = next_reply(&mut reader, options, &name, tally);
        if !tally.judge(read, c, &name, expect, sent) {
            return;
        }
        progress.fetch_add(1, Ordering::Relaxed);
    }
}

/// A writer thread keeps up to `pipeline` queries outstanding; this thread
/// reads the replies, in query order, and returns a credit for each.
fn pipelined(
    c: usize,
    stream: TcpStream,
    mut reader: MessageReader,
    workload: &Arc<Workload>,
    options: &BenchOptions,
    progress: &AtomicU64,
    tally: &mut Tally,
) {
    let window = options.pipeline;
    let (credit_tx, credit_rx) = crossbeam_channel::bounded::<()>(window);
    for _ in 0..window {
        credit_tx
            .send(())
            .expect("the credit channel holds the whole window");
    }
    // Bounded by the window: at most `window` queries are ever outstanding.
    let (sent_tx, sent_rx) = crossbeam_channel::unbounded::<(usize, Instant)>();
    let writer_stream = match stream.try_clone() {
        Ok(clone) => clone,
        Err(e) => {
            tally
                .failures
                .push(format!("client {c}: cannot set up its connection: {e}"));
            return;
        }
    };
    let writer = {
        let workload = Arc::clone(workload);
        let queries = options.queries;
        thread::Builder::new()
            .name(format!("bench writer {c}"))
            .stack_size(CLIENT_STACK)
            .spawn(move || {
                write_queries(c, writer_stream, &workload, queries, &credit_rx, &sent_tx)
            })
    };
    let writer = match writer {
        Ok(handle) => handle,
        Err(e) => {
            tally
                .failures
                .push(format!("client {c}: cannot start its writer thread: {e}"));
            return;
        }
    };
    // Ends when the writer has sent everything and every reply was read.
    while let Ok((j, sent)) = sent_rx.recv() {
        let (name, expect) = workload.query(c, j);
        let read = next_reply(&mut reader, options, &name, tally);
        if !tally.judge(read, c, &name, expect, sent) {
            break;
        }
        progress.fetch_add(1, Ordering::Relaxed);
        // Never blocks: credits in the channel plus queries outstanding is the window.
        let _ = credit_tx.try_send(());
    }
    // Ends a writer still blocked on a credit or on a write.
    drop(credit_tx);
    let _ = stream.shutdown(Direction::Both);
    match writer.join() {
        Ok(Ok(())) => {}
        Ok(Err(why)) => tally.failures.push(why),
        Err(_) => tally
            .failures
            .push(format!("client {c}: its writer thread panicked")),
    }
}

/// Writes client `c`'s queries, each once a credit is available, in batches
/// of as many as there are credits; announces each on `sent` before writing it.
fn write_queries(
    c: usize,
    mut stream: TcpStream,
    workload: &Workload,
    queries: usize,
    credits: &crossbeam_channel::Receiver<()>,
    sent: &crossbeam_channel::Sender<(usize, Instant)>,
) -> Result<(), String> {
    let mut batch = Vec::with_capacity(4096);
    let mut j = 0;
    while j < queries {
        if credits.recv().is_err() {
            // The reader stopped; it reports why.
            return Ok(());
        }
        let mut end = j + 1;
        while end < queries && credits.try_recv().is_ok() {
            end += 1;
        }
        batch.clear();
        let now = Instant::now();
        for k in j..end {
            let (name, _) = workload.query(c, k);
            batch.extend_from_slice(name.as_bytes());
            batch.push(b'\n');
            if sent.send((k, now)).is_err() {
                return Ok(());
            }
        }
        if let Err(e) = stream.write_all(&batch) {
            let _ = stream.shutdown(Direction::Both);
            return Err(format!(
                "client {c}: sending queries {}..{} failed: {e}",
                j + 1,
                end
            ));
        }
        j = end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Expect {
        Expect::Ip(text.parse().unwrap())
    }

    #[test]
    fn answers_are_hits_only_for_the_name_and_address_expected() {
        let expect = ip("1.2.3.4");
        assert_eq!(
            check_reply("a.com", expect, b"a.com 1.2.3.4 A"),
            Verdict::Hit
        );
        assert_eq!(
            check_reply("A.com.", expect, b"a.COM 1.2.3.4 A IN\r"),
            Verdict::Hit
        );
        assert_eq!(
            check_reply("a.com", Expect::Unknown, b"a.com 9.9.9.9 A"),
            Verdict::Hit
        );
        assert_eq!(
            check_reply("a.com", expect, b"b.com 1.2.3.4 A"),
            Verdict::Wrong("answer for another name")
        );
        assert_eq!(
            check_reply("a.com", expect, b"a.com 1.2.3.5 A"),
            Verdict::Wrong("address differs from the names file")
        );
        assert_eq!(
            check_reply(
                "miss-0-1.invalid",
                Expect::Absent,
                b"miss-0-1.invalid 1.2.3.4 A"
            ),
            Verdict::Wrong("answer for a name no TS holds")
        );
    }

    #[test]
    fn miss_lines_count_only_for_the_name_asked() {
        for line in [
            "a.com - Error:HOST NOT FOUND",
            "A.com - TIMED OUT",
            "a.com. - NOT FOUND",
        ] {
            assert_eq!(
                check_reply("a.com", Expect::Absent, line.as_bytes()),
                Verdict::Miss,
                "{line}"
            );
        }
        assert_eq!(
            check_reply("a.com", Expect::Absent, b"b.com - Error:HOST NOT FOUND"),
            Verdict::Wrong("miss line for another name")
        );
    }

    #[test]
    fn error_lines_and_garbage_are_told_apart() {
        assert_eq!(
            check_reply("a.com", Expect::Unknown, b"- Error:EMPTY QUERY"),
            Verdict::Error
        );
        assert_eq!(
            check_reply("a.com", Expect::Unknown, b"a.com - Error:INVALID HOSTNAME"),
            Verdict::Error
        );
        for garbage in [
            &b""[..],
            b"a.com",
            b"a.com 1.2.3 A",
            b"a.com 1.2.3.4 MX",
            b"\xff",
        ] {
            assert!(
                matches!(
                    check_reply("a.com", Expect::Unknown, garbage),
                    Verdict::Wrong(_)
                ),
                "{garbage:?}"
            );
        }
    }

    #[test]
    fn late_replies_are_recognised_by_name_and_dropped_once() {
        let mut tally = Tally::default();
        assert!(!tally.take_late("b.com", b"a.com 1.2.3.4 A"));
        tally.timed_out("a.com");
        tally.timed_out("x.com");
        // The reply to the query asked is never late.
        assert!(!tally.take_late("a.com", b"a.com 1.2.3.4 A"));
        assert!(tally.take_late("c.com", b"x.com - Error:HOST NOT FOUND"));
        // x.com's reply came, so a.com's never will: both are forgotten.
        assert!(!tally.take_late("c.com", b"a.com 1.2.3.4 A"));
        assert!(!tally.take_late("c.com", b"- Error:EMPTY QUERY"));
        assert_eq!((tally.timeouts, tally.late), (2, 1));
    }

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

    #[test]
    fn miss_ratio_gives_exactly_that_share_of_misses() {
        for (ratio, queries, misses) in [(0.0, 100, 0), (0.1, 100, 10), (0.5, 7, 3), (1.0, 5, 5)] {
            let workload = Workload {
                names: Names::course(),
                queries,
                miss_ratio: ratio,
            };
            let counted = (0..queries).filter(|&j| workload.is_miss(j)).count();
            assert_eq!(counted, misses, "ratio {ratio} over {queries}");
        }
    }

    #[test]
    fn queries_cycle_through_the_names_and_misses_are_made_up() {
        let workload = Workload {
            names: Names::course(),
            queries: 10,
            miss_ratio: 0.5,
        };
        let (name, expect) = workload.query(3, 1);
        assert_eq!(
            (name.as_ref(), expect),
            ("miss-3-1.invalid", Expect::Absent)
        );
        assert!(wire::is_hostname(&name));
        let (name, expect) = workload.query(0, 0);
        assert_eq!(name, "amazon.org");
        assert_eq!(expect, ip("94.5.6.7"));
    }

    #[test]
    fn names_file_rejects_conflicting_addresses_and_garbage() {
        let (line, problem) =
            Names::parse(b"a.com 1.1.1.1 A\nb.com\nA.COM 2.2.2.2 A\n").unwrap_err();
        assert_eq!(line, 3);
        assert!(problem.contains("line 1"), "{problem}");
        assert!(Names::parse(b"a.com 1.1.1.1 A\na.com 1.1.1.1 A\n").is_ok());
        assert_eq!(Names::parse(b"bad name!").unwrap_err().0, 1);
        assert_eq!(Names::parse(b"ok.com\nx..y").unwrap_err().0, 2);
        assert_eq!(Names::course().len(), 4);
    }
}
