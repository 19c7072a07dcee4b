//! The TS's DNS side: an authoritative server for its table, over UDP and
//! TCP on one port number, beside the course protocol.
//!
//! [`answer_query`] decides the answer to one query message with no I/O: the
//! TS is a top-level server, authoritative for the top-level zones of its
//! table's names and for the zones of its zone files ([`authority`]), and
//! refusing the rest. The rest of the module only
//! carries bytes. UDP is one thread blocking in `recv_from`,
//! answering each datagram in turn (an answer is a table lookup: no
//! datagram waits on another), woken for shutdown by a datagram to its own
//! socket. TCP (RFC 7766) is [`serve`]'s thread per connection: queries
//! framed by a two-byte length, answered in order, many per connection and
//! pipelined, the connection closed after an idle timeout or when a message
//! takes longer than [`DnsOptions::tcp_message`] from its first byte to its
//! last; when every place is taken, the connection idle the longest makes
//! room for a new one.

pub mod authority;

use std::io::{self, BufReader, BufWriter, Write};
use std::net::{TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

pub use crate::dns::respond::Transport;
use crate::dns::respond::{Accepted, Checked, ResponseKind, accept_query, is_zone_transfer};
use crate::dns::{self, Header, Name, RData, Rcode, Record, RecordType};
use crate::framing::{self, Timed, read_length_prefixed_timed, write_length_prefixed};
use crate::log;
use crate::net::DnsSockets;
use crate::net::datagram::{RECV_BUFFER, Received, recv_datagram, wake_on_trigger};
use crate::server::{Activity, ConnectionStats, ServeOptions, serve};
use crate::shutdown::Shutdown;
use crate::zone::Zone;

use crate::dns::respond::DEFAULT_TTL;
use crate::dns::rrl::{self, Limiter, RateLimit, Verdict};

/// How long a TCP connection may stay silent before the TS closes it
/// (RFC 7766 §6.2.3 asks servers for a timeout of seconds, not minutes).
pub const DEFAULT_TCP_IDLE: Duration = Duration::from_secs(10);

/// How the DNS side answers.
#[derive(Clone, Copy, Debug)]
pub struct DnsOptions {
    /// The TTL of every answer record.
    pub ttl: u32,
    /// How long a TCP connection may stay silent before it is closed.
    pub tcp_idle: Duration,
    /// How long one TCP message may take, from its first byte to its last.
    pub tcp_message: Duration,
    /// Most TCP connections open at once; one more takes the place of the
    /// longest-idle one, or is closed at once when none is idle.
    pub max_connections: usize,
    /// Most TCP connections open at once from one address (see
    /// [`ServeOptions::max_per_source`]).
    pub max_per_source: usize,
    /// The limit on UDP answers per network (`--rrl`); `None`: no limit.
    pub rrl: Option<RateLimit>,
}

impl Default for DnsOptions {
    fn default() -> Self {
        DnsOptions {
            ttl: DEFAULT_TTL,
            tcp_idle: DEFAULT_TCP_IDLE,
            tcp_message: framing::DNS_MESSAGE_BOUND,
            max_connections: 1024,
            max_per_source: usize::MAX,
            rrl: None,
        }
    }
}

/// What the DNS side made of the queries it received, per transport: the
/// kind of each answer ([`ResponseKind`], counted as the answer is made,
/// before it is sent), or why none was sent; and its TCP connections.
#[derive(Default)]
pub struct DnsCounts {
    udp: [AtomicU64; RESULTS],
    tcp: [AtomicU64; RESULTS],
    /// TCP connections accepted, turned away, open.
    pub connections: Arc<ConnectionStats>,
}

/// Where the counts of messages answered with nothing go, after each
/// [`ResponseKind`]'s: not a query (shorter than a header, or a response),
/// or an answer the rate limit (`--rrl`) dropped.
const DROPPED: usize = ResponseKind::ALL.len();
const RATE_LIMITED: usize = DROPPED + 1;
const RESULTS: usize = RATE_LIMITED + 1;

impl DnsCounts {
    fn count(&self, transport: Transport, result: usize) {
        let counts = match transport {
            Transport::Udp => &self.udp,
            Transport::Tcp => &self.tcp,
        };
        counts[result].fetch_add(1, Ordering::Relaxed);
    }

    fn count_answer(&self, transport: Transport, answer: &[u8]) {
        self.count(transport, ResponseKind::of(answer).index());
    }

    /// The results counted, in the order of [`by_result`](Self::by_result).
    pub fn results() -> Vec<&'static str> {
        let mut results: Vec<&str> = ResponseKind::ALL.iter().map(|k| k.label()).collect();
        results.extend(["dropped", "rate_limited"]);
        results
    }

    /// The counts now, by result: over UDP, then over TCP.
    pub fn by_result(&self) -> [Vec<u64>; 2] {
        let read = |counts: &[AtomicU64; RESULTS]| -> Vec<u64> {
            counts.iter().map(|c| c.load(Ordering::Relaxed)).collect()
        };
        [read(&self.udp), read(&self.tcp)]
    }

    /// The counters line: `queries 5 = answer 3 + ... + rate_limited 0
    /// (udp 4, tcp 1); tcp connections accepted 1, turned away 0`.
    pub fn line(&self) -> String {
        let [udp, tcp] = self.by_result();
        let terms: Vec<String> = Self::results()
            .iter()
            .zip(udp.iter().zip(&tcp))
            .map(|(result, (u, t))| format!("{result} {}", u + t))
            .collect();
        let (udp, tcp) = (udp.iter().sum::<u64>(), tcp.iter().sum::<u64>());
        format!(
            "queries {} = {} (udp {udp}, tcp {tcp}); tcp connections accepted {}, turned away {}",
            udp + tcp,
            terms.join(" + "),
            self.connections.accepted.load(Ordering::Relaxed),
            self.connections.refused.load(Ordering::Relaxed),
        )
    }
}

/// The answer to one query message, or `None` when it is dropped (shorter
/// than a header, or a response rather than a query).
///
/// The TS is authoritative (AA) for the top-level zones of its table's
/// names ([`Zone::serves_zone`]): a zone's apex has a synthesized SOA and
/// NS ([`SERVER_NAME`], [`SOA_TIMERS`]), a table name its A records, and a
/// negative answer (NXDOMAIN, or NODATA for a name that exists without
/// records of the type asked) the zone's SOA in its authority section. The
/// root, names under other zones, classes other than IN and zone transfers
/// ([`is_zone_transfer`]) are REFUSED. A name in a zone read from a zone
/// file is answered from it, as [`authority`] describes (the most specific
/// zone wins).
///
/// ```
/// use dnslb::dns::{Message, Rcode};
/// use dnslb::table;
/// use dnslb::ts::dns::{answer_query, Transport};
/// let table = table::parse(b"www.example.com 10.0.0.1 A").unwrap();
/// let query = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\
///               \x03WWW\x07example\x03com\x00\x00\x01\x00\x01";
/// let answer = answer_query(query, &table, 300, Transport::Udp).unwrap();
/// // ID echoed, QR AA RD set, NOERROR, one question, one answer.
/// assert_eq!(&answer[..12], b"\x12\x34\x85\x00\x00\x01\x00\x01\x00\x00\x00\x00");
/// // The question echoed byte for byte, then the answer: a pointer to it.
/// assert_eq!(&answer[12..33], &query[12..]);
/// assert_eq!(&answer[33..], b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x01\x2c\x00\x04\x0a\x00\x00\x01");
/// // A name under `com.`, which the TS serves: NXDOMAIN with com.'s SOA.
/// let miss = b"\x00\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x01x\x03com\x00\x00\x01\x00\x01";
/// let m = Message::parse(&answer_query(miss, &table, 300, Transport::Udp).unwrap()).unwrap();
/// assert_eq!((m.rcode, m.header.aa, m.authority[0].name.to_string().as_str()), (Rcode::NXDOMAIN, true, "com."));
/// // A name under `org.`, which it does not: REFUSED.
/// let foreign = b"\x00\x02\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x01x\x03org\x00\x00\x01\x00\x01";
/// let m = Message::parse(&answer_query(foreign, &table, 300, Transport::Udp).unwrap()).unwrap();
/// assert_eq!((m.rcode, m.header.aa, m.authority.len()), (Rcode::REFUSED, false, 0));
/// assert_eq!(answer_query(&query[..11], &table, 300, Transport::Udp), None);
/// ```
pub fn answer_query(query: &[u8], table: &Zone, ttl: u32, transport: Transport) -> Option<Vec<u8>> {
    let Checked {
        question,
        mut response,
        limit,
    } = match accept_query(query, transport)? {
        Accepted::Query(query) => query,
        Accepted::Answered { bytes, problem } => {
            if let Some(problem) = problem {
                log::info(format_args!("ts dns: {problem}"));
            }
            return Some(bytes);
        }
    };
    let question = &question;
    let zone = zone_of(&question.name, table);
    // No table name lies in a zone file's zone (see `Zone::add_file_zone`).
    let file = table.file_zone_of(&crate::zone::key(&question.name));
    match zone {
        _ if is_zone_transfer(question.qtype) => response.rcode = Rcode::REFUSED,
        _ if file.is_some() && question.qclass == dns::CLASS_IN => {
            authority::fill(&mut response, question, table);
        }
        Some(zone) if question.qclass == dns::CLASS_IN => {
            response.header.aa = true;
            fill(&mut response, question, &zone, table, ttl);
        }
        // Another class, the root, or a name under no zone this TS serves.
        _ => response.rcode = Rcode::REFUSED,
    }
    let bytes = response.to_bytes(limit);
    log::info(format_args!(
        "ts dns: {} type {} -> rcode {}, {} address(es){}",
        question.name,
        question.qtype,
        response.rcode,
        response.answers.len(),
        if Header::parse(&bytes).is_some_and(|h| h.tc) {
            ", truncated"
        } else {
            ""
        }
    ));
    Some(bytes)
}

/// The start-up line naming the zones the TS answers for (the top-level
/// zones of its table's names, then those read from zone files), so that a
/// REFUSED for another zone comes as no surprise.
///
/// ```
/// use dnslb::{table, zonefile};
/// use dnslb::ts::dns::zones_line;
/// let mut zone = table::parse(b"amazon.org 10.0.0.1 A\nrutgers.com 10.0.0.2 A").unwrap();
/// assert_eq!(zones_line(&zone),
///     "authoritative for com., org. (the top-level zones of the table's names); the root and other zones are REFUSED");
/// let file = zonefile::parse(b"$ORIGIN example.net.\n@ 3600 IN SOA ns hm 1 2 3 4 5\n@ 3600 IN NS ns\nns 3600 IN A 192.0.2.1\n").unwrap();
/// zone.add_file_zone(file.apex_key(), file.to_zone()).unwrap();
/// assert_eq!(zones_line(&zone),
///     "authoritative for com., org. (the top-level zones of the table's names), example.net. (zone files); the root and other zones are REFUSED");
/// ```
pub fn zones_line(zone: &Zone) -> String {
    let dotted =
        |zones: Vec<&str>| -> Vec<String> { zones.iter().map(|z| format!("{z}.")).collect() };
    let mut parts = Vec::new();
    let table = dotted(zone.zones());
    if !table.is_empty() {
        parts.push(format!(
            "{} (the top-level zones of the table's names)",
            table.join(", ")
        ));
    }
    let files = zone.file_zones();
    let root_served = files.contains(&"");
    let files: Vec<String> = files
        .iter()
        .map(|z| {
            if z.is_empty() {
                ".".to_string()
            } else {
                format!("{z}.")
            }
        })
        .collect();
    if !files.is_empty() {
        parts.push(format!("{} (zone files)", files.join(", ")));
    }
    let refused = if root_served {
        ""
    } else {
        "; the root and other zones are REFUSED"
    };
    if parts.is_empty() {
        return "authoritative for no zone; every name is REFUSED".to_string();
    }
    format!("authoritative for {}{refused}", parts.join(", "))
}

/// The name the synthesized NS and SOA records give as the zones' server:
/// a TS does not know the name or address it is reached by, and is reached
/// by configuration (a forwarder, a stub zone, an LS), not by delegation;
/// `.invalid` (RFC 6761) says that no address is to be looked up.
pub const SERVER_NAME: &str = "ts.dnslb.invalid.";

/// The synthesized SOA's serial, refresh, retry and expire (its minimum,
/// the negative-caching TTL, is the answers' TTL).
pub const SOA_TIMERS: [u32; 4] = [1, 3600, 600, 604_800];

/// The top-level zone `name` falls in, spelt as asked, when the TS serves
/// it; `None` for the root and for names under no zone it serves.
fn zone_of(name: &Name, table: &Zone) -> Option<Name> {
    let last = name.labels().last()?;
    let label = std::str::from_utf8(last).ok()?;
    if !table.serves_zone(label) {
        return None;
    }
    Name::from_ascii(label).ok()
}

/// The synthesized SOA record of `zone`, owned by `owner`, with `ttl`
/// as its TTL and its minimum.
fn soa(owner: Name, zone: &Name, ttl: u32) -> Record {
    let [serial, refresh, retry, expire] = SOA_TIMERS;
    let hostmaster = Name::from_ascii(&format!("hostmaster.{zone}"))
        .expect("a one-label zone under a short label stays a valid name");
    Record {
        name: owner,
        rtype: RecordType::SOA,
        class: dns::CLASS_IN,
        ttl,
        data: RData::Soa {
            mname: server_name(),
            rname: hostmaster,
            serial,
            refresh,
            retry,
            expire,
            minimum: ttl,
        },
    }
}

fn server_name() -> Name {
    Name::from_ascii(SERVER_NAME).expect("a valid name")
}

/// Fills an authoritative answer for a question in `zone`: at the zone's
/// apex its SOA and NS; a name's RRsets of the type asked; NODATA (NOERROR, the SOA
/// in authority) for a name that exists without records of the type asked;
/// NXDOMAIN with the SOA for a name that does not exist (RFC 2308 §3, the
/// SOA's TTL the lesser of its own and its minimum).
fn fill(
    response: &mut dns::Message,
    question: &dns::Question,
    zone: &Name,
    table: &Zone,
    ttl: u32,
) {
    let apex = question.name.labels().count() == 1;
    let key = question.name.hostname_key();
    if apex && matches!(question.qtype, RecordType::SOA | RecordType::ANY) {
        response.answers.push(soa(question.name.clone(), zone, ttl));
    }
    if apex && matches!(question.qtype, RecordType::NS | RecordType::ANY) {
        response.answers.push(Record {
            name: question.name.clone(),
            rtype: RecordType::NS,
            class: dns::CLASS_IN,
            ttl,
            data: RData::Name(server_name()),
        });
    }
    let node = key.as_deref().and_then(|key| table.node(key));
    for set in node.iter().flat_map(|node| node.rrsets()) {
        if question.qtype != set.rtype() && question.qtype != RecordType::ANY {
            continue;
        }
        // Owner names point at the question: its case, two bytes each.
        response
            .answers
            .extend(set.rotate().into_iter().map(|entry| Record {
                name: question.name.clone(),
                ttl,
                ..entry.record.clone()
            }));
    }
    if response.answers.is_empty() {
        let exists = apex || key.is_some_and(|key| table.name_exists(&key));
        if !exists {
            response.rcode = Rcode::NXDOMAIN;
        }
        let soa = soa(zone.clone(), zone, ttl);
        let negative_ttl = match soa.data {
            RData::Soa { minimum, .. } => soa.ttl.min(minimum),
            _ => soa.ttl,
        };
        response.authority.push(Record {
            ttl: negative_ttl,
            ..soa
        });
    }
}

/// Serves `table` over DNS on `sockets` until `shutdown` triggers; returns
/// once the UDP thread and every TCP connection have ended.
///
/// # Errors
/// When a socket's address cannot be read, or receiving UDP fails for a
/// reason other than a timeout or an ICMP error about an earlier answer.
pub fn run(
    sockets: DnsSockets,
    table: Arc<Zone>,
    options: DnsOptions,
    shutdown: &Shutdown,
) -> io::Result<()> {
    run_counted(sockets, table, options, Arc::default(), shutdown)
}

/// Like [`run`], counting the queries into `counts` (which the web
/// endpoint reads); logs their counters line when it stops.
///
/// # Errors
/// As [`run`].
pub fn run_counted(
    sockets: DnsSockets,
    table: Arc<Zone>,
    options: DnsOptions,
    counts: Arc<DnsCounts>,
    shutdown: &Shutdown,
) -> io::Result<()> {
    let DnsSockets { udp, tcp } = sockets;
    let udp_table = Arc::clone(&table);
    let udp_shutdown = shutdown.clone();
    let _wake = wake_on_trigger(&udp, shutdown)?;
    log::warn(format_args!("ts dns: {}", zones_line(&table)));
    if let Some(limit) = options.rrl {
        log::warn(format_args!("ts dns: {}", rrl::describe(limit)));
    }
    let udp_counts = Arc::clone(&counts);
    let udp_thread = thread::Builder::new()
        .name("ts dns udp".into())
        .spawn(move || serve_udp(&udp, &udp_table, options, &udp_counts, &udp_shutdown))?;
    let serve_options = ServeOptions {
        max_connections: options.max_connections,
        max_per_source: options.max_per_source,
        stats: Arc::clone(&counts.connections),
        ..ServeOptions::new("ts dns", super::SHUTDOWN_GRACE)
    };
    let tcp_counts = Arc::clone(&counts);
    let tcp_result = serve(tcp, shutdown, &serve_options, move |stream, activity| {
        if let Err(e) = answer_tcp(stream, &activity, &table, options, &tcp_counts) {
            log::info(format_args!("ts dns: tcp connection ended: {e}"));
        }
    });
    let udp_result = udp_thread
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the UDP thread panicked")));
    log::warn(format_args!("ts dns: {}", counts.line()));
    tcp_result.and(udp_result)
}

fn serve_udp(
    socket: &UdpSocket,
    table: &Zone,
    options: DnsOptions,
    counts: &DnsCounts,
    shutdown: &Shutdown,
) -> io::Result<()> {
    let mut limiter = options.rrl.map(Limiter::new);
    let served = answer_udp(
        socket,
        table,
        options.ttl,
        limiter.as_mut(),
        counts,
        shutdown,
    );
    if let Some(limiter) = limiter {
        log::warn(format_args!(
            "ts dns: rate limit: {} UDP answers dropped, {} sent truncated",
            limiter.dropped(),
            limiter.slipped()
        ));
    }
    served
}

/// Answers each datagram in turn, through `limiter` when there is one.
fn answer_udp(
    socket: &UdpSocket,
    table: &Zone,
    ttl: u32,
    mut limiter: Option<&mut Limiter>,
    counts: &DnsCounts,
    shutdown: &Shutdown,
) -> io::Result<()> {
    let mut buf = vec![0; RECV_BUFFER];
    while !shutdown.is_triggered() {
        let Received::Datagram(len, peer) = recv_datagram(socket, &mut buf, "ts dns")? else {
            continue;
        };
        if shutdown.is_triggered() {
            break;
        }
        let Some(answer) = answer_query(&buf[..len], table, ttl, Transport::Udp) else {
            counts.count(Transport::Udp, DROPPED);
            log::info(format_args!("ts dns: dropped {len} bytes from {peer}"));
            continue;
        };
        let verdict = limiter.as_deref_mut().map_or(Verdict::Send, |limiter| {
            limiter.check(peer.ip(), Instant::now())
        });
        let answer = match verdict {
            Verdict::Send => answer,
            Verdict::Slip => rrl::slip_response(&answer),
            Verdict::Drop => {
                counts.count(Transport::Udp, RATE_LIMITED);
                continue;
            }
        };
        counts.count_answer(Transport::Udp, &answer);
        if let Err(e) = socket.send_to(&answer, peer) {
            log::info(format_args!("ts dns: cannot answer {peer}: {e}"));
        }
    }
    Ok(())
}

/// Answers the queries of one TCP connection in order, flushing whenever
/// no further query is already buffered, until the peer closes, goes
/// silent for `tcp_idle`, takes longer than `tcp_message` over one
/// message, or the server shuts down.
fn answer_tcp(
    stream: TcpStream,
    activity: &Activity,
    table: &Zone,
    options: DnsOptions,
    counts: &DnsCounts,
) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = BufWriter::new(stream);
    // Queries read whose answers have not been flushed.
    let mut unanswered = 0;
    loop {
        let read =
            read_length_prefixed_timed(&mut reader, Some(options.tcp_idle), options.tcp_message);
        let query = match read? {
            Timed::Message(query) => query,
            Timed::End => break,
            Timed::Idle => {
                log::info(format_args!(
                    "ts dns: closing a tcp connection idle for {:?}",
                    options.tcp_idle
                ));
                break;
            }
            Timed::Slow => {
                log::info(format_args!(
                    "ts dns: closing a tcp connection whose message took over {:?}",
                    options.tcp_message
                ));
                break;
            }
        };
        activity.received(1);
        unanswered += 1;
        match answer_query(&query, table, options.ttl, Transport::Tcp) {
            Some(answer) => {
                counts.count_answer(Transport::Tcp, &answer);
                write_length_prefixed(&mut out, &answer)?;
            }
            None => counts.count(Transport::Tcp, DROPPED),
        }
        if !holds_whole_message(reader.buffer()) {
            out.flush()?;
            activity.answered(unanswered);
            unanswered = 0;
        }
    }
    out.flush()
}

/// Whether `buffered` starts with a whole length-prefixed message, which
/// can be answered before the answers so far are sent.
fn holds_whole_message(buffered: &[u8]) -> bool {
    match buffered {
        [l0, l1, rest @ ..] => rest.len() >= usize::from(u16::from_be_bytes([*l0, *l1])),
        _ => false,
    }
}
