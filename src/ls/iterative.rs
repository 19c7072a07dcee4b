//! The LS as a local DNS server that resolves iteratively (`--root`): both
//! front ends (the course protocol and DNS over UDP and TCP) hand each
//! question to a fixed pool of resolver threads, which walk the hierarchy
//! from the root servers with [`crate::resolve`], sharing one cache.
//!
//! - **The pool**: [`RESOLVERS`] threads take questions from one bounded
//!   channel ([`QUEUE`] places). A question that finds the channel full is
//!   dropped and counted (a UDP flood costs no thread and no memory); the
//!   course and TCP clients then get their miss line or SERVFAIL.
//! - **Upstream**: each resolution has its own UDP socket (a port the OS
//!   picks at random) and every query a random ID; a server that does not
//!   answer within `--try-timeout` is left for the next; a truncated answer
//!   is asked again over TCP. The whole resolution has `--dns-timeout`.
//! - **Answers** carry RA (recursion available) and never AA. Course
//!   clients get the first A record, or the miss line at once on NXDOMAIN.
//! - With `-v`, every step is logged as the lecture draws it: which server
//!   was asked what, and whether it answered, referred or denied.
//! - [`Counts`]: each front end's queries and replies, for the web
//!   endpoint (`--web`), as the forwarding LS counts them.

use std::io::{self, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use super::stats::{CourseReply, FrontCounts, Frontend, Reply};
use crate::cidr::CidrList;
use crate::dns::respond::{self, Accepted, Checked, ResponseKind, Transport};
use crate::dns::{CLASS_IN, Name, Question, RData, RecordType, Resolution, TCP_LIMIT};
use crate::framing::{
    DNS_MESSAGE_BOUND, Frame, Framing, MessageReader, Timed, read_length_prefixed,
    read_length_prefixed_timed, write_length_prefixed, write_message,
};
use crate::log;
use crate::net::DnsSockets;
use crate::net::datagram::{RECV_BUFFER, Received, recv_datagram, wake_on_trigger};
use crate::random::{SplitMix64, random_seed};
use crate::resolve::{Cache, Config, Resolver, Step};
use crate::server::{Activity, ConnectionStats, ServeOptions, serve, serve_each};
use crate::shutdown::Shutdown;
use crate::sync::lock;
use crate::web::metrics::{Kind, Metrics, labels};
use crate::wire::{self, Dialect, Found, QueryError};

/// Resolver threads.
pub const RESOLVERS: usize = 16;

/// Questions waiting for a resolver before new ones are dropped.
pub const QUEUE: usize = 256;

/// How long one server has to answer when none is given.
pub const DEFAULT_TRY_TIMEOUT: Duration = Duration::from_millis(500);

/// The port name servers are asked on when none is given.
pub const DEFAULT_SERVER_PORT: u16 = 53;

/// How an iterative LS behaves.
#[derive(Clone, Debug)]
pub struct IterativeOptions {
    /// The root servers, and the port servers learnt from glue listen on.
    pub config: Config,
    /// How long one server has to answer before the next is asked.
    pub try_timeout: Duration,
    /// How long a whole resolution may take before SERVFAIL (or the miss line).
    pub deadline: Duration,
    /// The course miss line's format.
    pub dialect: Dialect,
    /// How course clients delimit queries; `Auto` detects per connection.
    pub framing: Framing,
    /// The DNS clients answered; others are dropped.
    pub allow: CidrList,
    /// Most TCP clients at once, per front end; one more is closed at once
    /// (a course client after the busy line).
    pub max_clients: usize,
}

/// Parses `--root`: IPv4 addresses separated by commas, each `IP` (asked
/// on `port`) or `IP:PORT`.
///
/// ```
/// use dnslb::ls::iterative::parse_roots;
/// let roots = parse_roots("127.0.0.2,127.0.0.3:5301", 53).unwrap();
/// assert_eq!(roots, ["127.0.0.2:53".parse().unwrap(), "127.0.0.3:5301".parse().unwrap()]);
/// assert!(parse_roots("a.root", 53).unwrap_err().contains("a.root"));
/// assert!(parse_roots("", 53).is_err());
/// assert!(parse_roots("::1", 53).unwrap_err().contains("IPv4"));
/// ```
///
/// # Errors
/// Naming the first entry that is not an address.
pub fn parse_roots(text: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    let mut roots = Vec::new();
    for item in text.split(',').map(str::trim) {
        if let Ok(addr) = item.parse::<SocketAddr>() {
            roots.push(addr);
        } else if let Ok(ip) = item.parse::<std::net::IpAddr>() {
            roots.push(SocketAddr::new(ip, port));
        } else {
            return Err(format!(
                "--root {item:?}: not an IP address or IP:PORT (give the root servers' addresses, e.g. 127.0.0.2)"
            ));
        }
    }
    if let Some(v6) = roots.iter().find(|r| r.is_ipv6()) {
        return Err(format!(
            "--root {v6}: the resolver asks name servers over IPv4 only; give IPv4 addresses"
        ));
    }
    if roots.is_empty() {
        return Err("--root: no address given".to_string());
    }
    Ok(roots)
}

/// One question for the pool, and what to do with its answer.
struct Job {
    question: Question,
    respond: Box<dyn FnOnce(Resolution) + Send>,
}

/// What the iterative LS's front ends received and answered, and its
/// resolver pool's work, as the web endpoint reads them.
#[derive(Default)]
pub struct Counts {
    /// Per front end, in the order of [`Frontend::ALL`].
    fronts: [FrontCounts; Frontend::ALL.len()],
    course_clients: Arc<ConnectionStats>,
    dns_clients: Arc<ConnectionStats>,
    /// The resolver pool, once [`run_counted`] started it.
    pool: OnceLock<Arc<Pool>>,
}

impl Counts {
    fn front(&self, front: Frontend) -> &FrontCounts {
        &self.fronts[front as usize]
    }

    /// Every metric now (docs/OBSERVE.md).
    pub fn metrics(&self) -> Metrics {
        let mut m = Metrics::new("ls");
        let fronts = self.fronts.each_ref().map(FrontCounts::snapshot);
        super::observe::add_fronts(&mut m, &fronts);
        let pool = |read: fn(&Pool) -> &AtomicU64| {
            self.pool
                .get()
                .map_or(0.0, |pool| read(pool).load(Ordering::Relaxed) as f64)
        };
        m.add_one(
            "dnslb_resolutions_total",
            "Questions the resolver pool resolved from the root servers.",
            Kind::Counter,
            pool(|p| &p.resolved),
        );
        m.add_one(
            "dnslb_dropped_questions_total",
            "Questions dropped because the resolver pool's queue was full.",
            Kind::Counter,
            pool(|p| &p.dropped),
        );
        let open = |front: Frontend, clients: &ConnectionStats| {
            (
                labels(&[("frontend", front.label())]),
                clients.open() as f64,
            )
        };
        m.add(
            "dnslb_clients",
            "Client connections open, by front end (UDP has none).",
            Kind::Gauge,
            vec![
                open(Frontend::Course, &self.course_clients),
                open(Frontend::DnsTcp, &self.dns_clients),
            ],
        );
        crate::web::add_process(&mut m);
        m
    }
}

/// The resolver pool and its shared cache.
pub struct Pool {
    jobs: Sender<Job>,
    /// Questions dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Resolutions done.
    pub resolved: AtomicU64,
}

impl Pool {
    /// Starts [`RESOLVERS`] threads resolving with `options`.
    pub fn start(options: &IterativeOptions) -> Arc<Pool> {
        let (jobs, queue) = crossbeam_channel::bounded::<Job>(QUEUE);
        let pool = Arc::new(Pool {
            jobs,
            dropped: AtomicU64::new(0),
            resolved: AtomicU64::new(0),
        });
        let cache = Arc::new(Mutex::new(Cache::new()));
        for n in 0..RESOLVERS {
            let (queue, cache, options) = (queue.clone(), Arc::clone(&cache), options.clone());
            let pool = Arc::downgrade(&pool);
            thread::Builder::new()
                .name(format!("resolver-{n}"))
                .spawn(move || serve_jobs(&queue, &cache, &options, &pool))
                .expect("spawn a resolver thread");
        }
        pool
    }

    /// Hands `question` to a resolver; `respond` gets its resolution.
    /// `false` (and `respond` dropped) when the queue is full.
    fn submit(&self, question: Question, respond: Box<dyn FnOnce(Resolution) + Send>) -> bool {
        match self.jobs.try_send(Job { question, respond }) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Resolves `question`, waiting at most `wait`; SERVFAIL when the queue
    /// is full or the wait ends.
    pub fn resolve(&self, question: Question, wait: Duration) -> Resolution {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let respond = Box::new(move |result| {
            let _ = tx.send(result);
        });
        if !self.submit(question, respond) {
            return Resolution::ServFail;
        }
        rx.recv_timeout(wait).unwrap_or(Resolution::ServFail)
    }
}

fn serve_jobs(
    queue: &Receiver<Job>,
    cache: &Mutex<Cache>,
    options: &IterativeOptions,
    pool: &std::sync::Weak<Pool>,
) {
    let mut seeds = SplitMix64::new(random_seed());
    while let Ok(job) = queue.recv() {
        let result = resolve(&job.question, cache, options, seeds.next_u64());
        if let Some(pool) = pool.upgrade() {
            pool.resolved.fetch_add(1, Ordering::Relaxed);
        }
        (job.respond)(result);
    }
}

/// Resolves `question` over the network: the [`Resolver`]'s queries go out
/// over UDP (TCP when an answer comes truncated).
pub fn resolve(
    question: &Question,
    cache: &Mutex<Cache>,
    options: &IterativeOptions,
    seed: u64,
) -> Resolution {
    let start = Instant::now();
    let end = start + options.deadline;
    let mut resolver = Resolver::new(options.config.clone(), question, seed);
    let socket = match UdpSocket::bind(("0.0.0.0", 0)) {
        Ok(socket) => socket,
        Err(e) => {
            log::warn(format_args!("ls: resolve: cannot open a UDP socket: {e}"));
            return Resolution::ServFail;
        }
    };
    let asked = question.name.to_string();
    let result = loop {
        let step = resolver.next(&mut lock(cache), Instant::now());
        show(&asked, &mut resolver);
        let query = match step {
            Step::Done(result) => break result,
            Step::Ask(query) => query,
        };
        if Instant::now() >= end {
            log::info(format_args!("ls: resolve {asked}: deadline: SERVFAIL"));
            break Resolution::ServFail;
        }
        let try_end = (Instant::now() + options.try_timeout).min(end);
        let reply = exchange(&socket, &resolver, &query.server, &query.bytes, try_end);
        resolver.reply(
            &mut lock(cache),
            Instant::now(),
            reply.as_deref(),
            options.try_timeout,
        );
        show(&asked, &mut resolver);
    };
    if log::verbose() {
        log::info(format_args!(
            "ls: resolve {asked}: {} after {} queries in {} ms",
            result.rcode(),
            resolver.queries(),
            start.elapsed().as_millis()
        ));
    }
    result
}

fn show(asked: &str, resolver: &mut Resolver) {
    for note in resolver.take_notes() {
        if log::verbose() {
            log::info(format_args!("ls: resolve {asked}: {note}"));
        }
    }
}

/// Sends `bytes` to `server` and waits until `until` for the response the
/// resolver accepts (others are ignored); asks again over TCP when it is
/// truncated.
fn exchange(
    socket: &UdpSocket,
    resolver: &Resolver,
    server: &SocketAddr,
    bytes: &[u8],
    until: Instant,
) -> Option<Vec<u8>> {
    socket.send_to(bytes, server).ok()?;
    let mut buf = [0u8; 4096];
    loop {
        let left = until.checked_duration_since(Instant::now())?;
        if left.is_zero() {
            return None;
        }
        socket.set_read_timeout(Some(left)).ok()?;
        let (n, from) = match socket.recv_from(&mut buf) {
            Ok(got) => got,
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => return None,
            Err(_) => return None,
        };
        let reply = &buf[..n];
        if !resolver.accepts(from, reply) {
            continue;
        }
        if !respond::is_truncated(reply) {
            return Some(reply.to_vec());
        }
        return over_tcp(server, bytes, until).or_else(|| Some(reply.to_vec()));
    }
}

fn over_tcp(server: &SocketAddr, bytes: &[u8], until: Instant) -> Option<Vec<u8>> {
    let left = until.checked_duration_since(Instant::now())?;
    let mut stream = TcpStream::connect_timeout(server, left.max(Duration::from_millis(1))).ok()?;
    let left = until.checked_duration_since(Instant::now())?;
    stream
        .set_read_timeout(Some(left.max(Duration::from_millis(1))))
        .ok()?;
    write_length_prefixed(&mut stream, bytes).ok()?;
    read_length_prefixed(&mut stream).ok()?
}

/// The DNS response to `query` from `result`, with RA set.
fn dns_answer(query: &Checked, result: &Resolution) -> Vec<u8> {
    let mut bytes = respond::answer(query, result);
    if bytes.len() > 3 {
        bytes[3] |= 0x80;
    }
    bytes
}

/// Serves `course` and, with `dns`, DNS over UDP and TCP, each through
/// the resolver pool, until `shutdown` triggers. The TCP front ends use
/// the accept loop every dnslb server uses (`server::serve`: connection
/// limit, idle connections giving way, handlers joined at shutdown).
///
/// # Errors
/// A front end's accept or socket errors.
pub fn run(
    options: IterativeOptions,
    course: TcpListener,
    dns: Option<DnsSockets>,
    shutdown: &Shutdown,
) -> io::Result<()> {
    run_counted(options, course, dns, &Arc::default(), shutdown)
}

/// Like [`run`], counting into `counts` (which the web endpoint reads).
///
/// # Errors
/// As [`run`].
pub fn run_counted(
    options: IterativeOptions,
    course: TcpListener,
    dns: Option<DnsSockets>,
    counts: &Arc<Counts>,
    shutdown: &Shutdown,
) -> io::Result<()> {
    let pool = Pool::start(&options);
    let _ = counts.pool.set(Arc::clone(&pool));
    let options = Arc::new(options);
    let mut fronts = vec![Front::Course(course)];
    if let Some(DnsSockets { udp, tcp }) = dns {
        fronts.push(Front::DnsTcp(tcp));
        fronts.push(Front::DnsUdp(udp));
    }
    let served = serve_each(
        fronts,
        Front::thread_name,
        |front| front.serve(&pool, &options, counts, shutdown),
        shutdown,
    );
    log::info(format_args!(
        "ls: stopped: {} resolutions, {} questions dropped (queue full)",
        pool.resolved.load(Ordering::Relaxed),
        pool.dropped.load(Ordering::Relaxed)
    ));
    served
}

/// A way clients reach the iterative LS.
enum Front {
    Course(TcpListener),
    DnsTcp(TcpListener),
    DnsUdp(UdpSocket),
}

impl Front {
    fn thread_name(front: &Front) -> &'static str {
        match front {
            Front::Course(_) => "ls course",
            Front::DnsTcp(_) => "ls dns tcp",
            Front::DnsUdp(_) => "ls dns udp",
        }
    }

    /// Serves this front end until `shutdown` triggers.
    fn serve(
        self,
        pool: &Arc<Pool>,
        options: &Arc<IterativeOptions>,
        counts: &Arc<Counts>,
        shutdown: &Shutdown,
    ) -> io::Result<()> {
        let grace = options.deadline + crate::ls::SHUTDOWN_SLACK;
        let (pool, options, counts) = (Arc::clone(pool), Arc::clone(options), Arc::clone(counts));
        match self {
            Front::Course(listener) => {
                let serve_options = ServeOptions {
                    max_connections: options.max_clients,
                    busy_reply: wire::SERVER_BUSY,
                    stats: Arc::clone(&counts.course_clients),
                    ..ServeOptions::new("ls", grace)
                };
                serve(
                    listener,
                    shutdown,
                    &serve_options,
                    move |stream, activity| {
                        let counts = counts.front(Frontend::Course);
                        if let Err(e) = serve_course(stream, &activity, &pool, &options, counts) {
                            log::info(format_args!("ls: course client: {e}"));
                        }
                    },
                )
            }
            Front::DnsTcp(listener) => {
                let serve_options = ServeOptions {
                    max_connections: options.max_clients,
                    stats: Arc::clone(&counts.dns_clients),
                    ..ServeOptions::new("ls dns", grace)
                };
                serve(
                    listener,
                    shutdown,
                    &serve_options,
                    move |stream, activity| {
                        // A source `--allow` leaves out: closed unread.
                        if stream
                            .peer_addr()
                            .is_ok_and(|peer| options.allow.contains(peer.ip()))
                        {
                            let counts = counts.front(Frontend::DnsTcp);
                            serve_dns_tcp(stream, &activity, &pool, &options, counts);
                        }
                    },
                )
            }
            Front::DnsUdp(socket) => {
                let _wake = wake_on_trigger(&socket, shutdown)?;
                serve_udp(&Arc::new(socket), &pool, &options, &counts, shutdown)
            }
        }
    }
}

/// One course client: a hostname a message (a line, or one bare message
/// per read, `--framing`), its reply back in the same framing, in order.
fn serve_course(
    stream: TcpStream,
    activity: &Activity,
    pool: &Pool,
    options: &IterativeOptions,
    counts: &FrontCounts,
) -> io::Result<()> {
    stream.set_read_timeout(Some(crate::ls::DEFAULT_IDLE_TIMEOUT))?;
    let mut writer = stream.try_clone()?;
    let mut reader = MessageReader::new(stream, options.framing, wire::MAX_MESSAGE_LEN);
    while let Some(frame) = reader.next_frame()? {
        activity.received(1);
        counts.count_query();
        let (reply, said) = match frame {
            Frame::TooLong => (QueryError::TooLong.reply(), CourseReply::Invalid),
            Frame::Message(bytes) => match wire::parse_query(&bytes) {
                Err(e) => (e.reply(), CourseReply::Invalid),
                Ok(query) => course_reply(&query.name, pool, options),
            },
        };
        write_message(&mut writer, reply.as_bytes(), reader.framing())?;
        counts.count_reply(Reply::Course(said));
        activity.answered(1);
    }
    Ok(())
}

/// The course reply for `name`: its first A record, or the miss line.
fn course_reply(name: &str, pool: &Pool, options: &IterativeOptions) -> (String, CourseReply) {
    let miss = || {
        (
            wire::miss_line(name, options.dialect),
            CourseReply::NotFound,
        )
    };
    let Ok(qname) = Name::from_ascii(name) else {
        return miss();
    };
    let question = Question {
        name: qname,
        qtype: RecordType::A,
        qclass: CLASS_IN,
    };
    let result = pool.resolve(question, options.deadline + Duration::from_millis(100));
    if let Resolution::Answer(sections) = &result
        && let Some(ip) = sections.answers.iter().find_map(|r| match r.data {
            RData::A(ip) if r.rtype == RecordType::A => Some(ip),
            _ => None,
        })
    {
        let found = Found {
            name: name.to_string(),
            ip,
        };
        return (found.line(options.dialect), CourseReply::Answer);
    }
    miss()
}

/// One DNS-over-TCP client: a length-prefixed query, its answer, in order.
fn serve_dns_tcp(
    stream: TcpStream,
    activity: &Activity,
    pool: &Pool,
    options: &IterativeOptions,
    counts: &FrontCounts,
) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let idle = Some(crate::ls::DEFAULT_IDLE_TIMEOUT);
    // A message must come whole within the bound (slow senders hold no slot).
    while let Ok(Timed::Message(bytes)) =
        read_length_prefixed_timed(&mut reader, idle, DNS_MESSAGE_BOUND)
    {
        activity.received(1);
        let Some(accepted) = respond::accept_query(&bytes, Transport::Tcp) else {
            return;
        };
        counts.count_query();
        let answer = match accepted {
            Accepted::Answered { bytes, .. } => bytes,
            Accepted::Query(query) => {
                let result = if query.question.qclass == CLASS_IN {
                    pool.resolve(
                        query.question.clone(),
                        options.deadline + Duration::from_millis(100),
                    )
                } else {
                    Resolution::Refused
                };
                dns_answer(&query, &result)
            }
        };
        debug_assert!(answer.len() <= TCP_LIMIT);
        if write_length_prefixed(&mut writer, &answer).is_err() {
            return;
        }
        counts.count_reply(Reply::Dns(ResponseKind::of(&answer)));
        activity.answered(1);
    }
}

/// The DNS UDP front end: one reader; each query goes to the pool, whose
/// resolver sends the answer itself.
fn serve_udp(
    socket: &Arc<UdpSocket>,
    pool: &Pool,
    options: &IterativeOptions,
    counts: &Arc<Counts>,
    shutdown: &Shutdown,
) -> io::Result<()> {
    let mut buf = vec![0u8; RECV_BUFFER];
    let front = counts.front(Frontend::DnsUdp);
    // Counts a response once sent.
    let send = |socket: &UdpSocket, bytes: &[u8], peer, front: &FrontCounts| {
        if socket.send_to(bytes, peer).is_ok() {
            front.count_reply(Reply::Dns(ResponseKind::of(bytes)));
        }
    };
    loop {
        let received = recv_datagram(socket, &mut buf, "ls dns")?;
        if shutdown.is_triggered() {
            return Ok(());
        }
        let Received::Datagram(n, peer) = received else {
            continue;
        };
        if !options.allow.contains(peer.ip()) {
            continue;
        }
        let Some(accepted) = respond::accept_query(&buf[..n], Transport::Udp) else {
            continue;
        };
        front.count_query();
        let query = match accepted {
            Accepted::Answered { bytes, .. } => {
                send(socket, &bytes, peer, front);
                continue;
            }
            Accepted::Query(query) => query,
        };
        if query.question.qclass != CLASS_IN {
            send(
                socket,
                &dns_answer(&query, &Resolution::Refused),
                peer,
                front,
            );
            continue;
        }
        let (out, counts) = (Arc::clone(socket), Arc::clone(counts));
        let question = query.question.clone();
        pool.submit(
            question,
            Box::new(move |result| {
                let front = counts.front(Frontend::DnsUdp);
                send(&out, &dns_answer(&query, &result), peer, front);
            }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_questions_and_counts_them() {
        // A root that never answers keeps every resolver busy.
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let options = IterativeOptions {
            config: Config {
                roots: vec![silent.local_addr().unwrap()],
                server_port: 53,
            },
            try_timeout: Duration::from_millis(500),
            deadline: Duration::from_millis(500),
            dialect: Dialect::Y2020,
            framing: Framing::Auto,
            allow: CidrList::private(),
            max_clients: 4,
        };
        let pool = Pool::start(&options);
        let question = Question {
            name: Name::from_ascii("a.test").unwrap(),
            qtype: RecordType::A,
            qclass: CLASS_IN,
        };
        let extra = 20;
        let accepted = (0..RESOLVERS + QUEUE + extra)
            .filter(|_| pool.submit(question.clone(), Box::new(|_| {})))
            .count();
        assert!(accepted < RESOLVERS + QUEUE + extra);
        let dropped = pool.dropped.load(Ordering::Relaxed);
        assert_eq!(dropped as usize, RESOLVERS + QUEUE + extra - accepted);
        // A caller waiting on a full pool gets SERVFAIL at once.
        assert_eq!(
            pool.resolve(question, Duration::from_secs(5)),
            Resolution::ServFail
        );
        drop(silent);
    }
}
