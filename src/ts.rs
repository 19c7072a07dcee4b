//! The top-level server (TS): answers `hostname` queries from the A records
//! of its [`Zone`] (read from its table) and stays silent on names it does
//! not hold, as the course spec requires (or, with `--answer-misses`, says
//! `<name> - NOT FOUND`).
//!
//! With `--dns-port`, the TS also answers real DNS queries ([`dns`]).
//!
//! One thread per connection (see [`crate::server::serve`]); the zone is
//! loaded once and shared read-only. Replies are buffered and sent when the
//! queries already received are all answered, so a pipelining LS gets many
//! replies per write.

pub mod dns;

use std::io::{self, BufWriter, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::dns::{RData, RecordType};
use crate::framing::{Frame, Framing, MessageReader, write_message};
use crate::log;
use crate::net::DnsSockets;
use crate::server::{Activity, ConnectionStats, ServeOptions, serve, serve_each};
use crate::shutdown::Shutdown;
use crate::web::metrics::{Kind, Metrics, labels};
use crate::wire::{self, Dialect};
use crate::zone::{Entry, Zone};

/// How long connections get to finish after shutdown: a TS answers at once.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Connections served at once when none is given.
pub const DEFAULT_MAX_CLIENTS: usize = 4096;

/// How long a connection may send nothing before it is closed, when none is
/// given: above the LS's default idle timeout (300 s), so that an LS closes
/// its idle sessions before their TSes do.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// Descriptors one connection costs a TS: its socket, the reader's and the
/// shutdown registry's duplicates.
pub const DESCRIPTORS_PER_CONNECTION: usize = 3;

/// How a TS answers.
#[derive(Clone, Copy, Debug)]
pub struct TsOptions {
    /// The answer format.
    pub dialect: Dialect,
    /// How queries are delimited; `Auto` detects per connection.
    pub framing: Framing,
    /// Reply `<name> - NOT FOUND` to names not in the table instead of
    /// staying silent.
    pub answer_misses: bool,
    /// Most connections at once; one more takes the place of the
    /// longest-idle one, or is closed at once when none is idle.
    pub max_clients: usize,
    /// Most connections at once from one address (see
    /// [`ServeOptions::max_per_source`]).
    pub max_clients_per_ip: usize,
    /// A connection that sends nothing for this long is closed.
    pub idle_timeout: Duration,
}

impl Default for TsOptions {
    fn default() -> Self {
        TsOptions {
            dialect: Dialect::Y2020,
            framing: Framing::Auto,
            answer_misses: false,
            max_clients: DEFAULT_MAX_CLIENTS,
            max_clients_per_ip: usize::MAX,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// What happened to the course protocol's queries: each is answered, not
/// in the table (silence, or `NOT FOUND` with `--answer-misses`) or invalid;
/// and to the DNS side's ([`dns::DnsCounts`]). The connections are counted
/// too.
#[derive(Default)]
pub struct Counts {
    answered: AtomicU64,
    not_in_table: AtomicU64,
    invalid: AtomicU64,
    connections: Arc<ConnectionStats>,
    /// The DNS side's (`--dns-port`).
    pub dns: Arc<dns::DnsCounts>,
}

impl Counts {
    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Every TS metric now, for the web endpoint (docs/OBSERVE.md).
    pub fn metrics(&self) -> Metrics {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed) as f64;
        let mut m = Metrics::new("ts");
        let by =
            |protocol: &str, result: &str| labels(&[("protocol", protocol), ("result", result)]);
        let mut queries = vec![
            (by("course", "answered"), get(&self.answered)),
            (by("course", "not_in_table"), get(&self.not_in_table)),
            (by("course", "invalid"), get(&self.invalid)),
        ];
        for (protocol, counts) in ["dns_udp", "dns_tcp"].iter().zip(self.dns.by_result()) {
            let results = dns::DnsCounts::results().into_iter().zip(counts);
            queries.extend(results.map(|(result, n)| (by(protocol, result), n as f64)));
        }
        m.add(
            "dnslb_ts_queries_total",
            "Queries, by protocol and what the TS made of them.",
            Kind::Counter,
            queries,
        );
        let open = |frontend: &str, connections: &ConnectionStats| {
            (labels(&[("frontend", frontend)]), connections.open() as f64)
        };
        m.add(
            "dnslb_clients",
            "Connections open, by front end (UDP has none).",
            Kind::Gauge,
            vec![
                open("course", &self.connections),
                open("dns_tcp", &self.dns.connections),
            ],
        );
        crate::web::add_process(&mut m);
        m
    }
}

/// Serves `table` on `listener` until `shutdown` triggers, then logs its
/// counters: `ts: queries 12 = answered 9 + not in table 2 + invalid 1;
/// connections accepted 2, turned away 0`.
///
/// # Errors
/// When the listener's address cannot be read.
fn serve_course(
    listener: TcpListener,
    table: Arc<Zone>,
    options: TsOptions,
    dns_port: Option<u16>,
    counts: Arc<Counts>,
    shutdown: &Shutdown,
) -> io::Result<()> {
    let serve_options = ServeOptions {
        max_connections: options.max_clients,
        max_per_source: options.max_clients_per_ip,
        stats: Arc::clone(&counts.connections),
        ..ServeOptions::new("ts", SHUTDOWN_GRACE)
    };
    let handler_counts = Arc::clone(&counts);
    let served = serve(
        listener,
        shutdown,
        &serve_options,
        move |stream, activity| {
            let answered = answer_connection(
                stream,
                &activity,
                &table,
                options,
                dns_port,
                &handler_counts,
            );
            if let Err(e) = answered {
                log::info(format_args!("ts: connection ended: {e}"));
            }
        },
    );
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let (answered, not_in_table, invalid) = (
        get(&counts.answered),
        get(&counts.not_in_table),
        get(&counts.invalid),
    );
    log::warn(format_args!(
        "ts: queries {} = answered {answered} + not in table {not_in_table} + invalid {invalid}; \
         connections accepted {}, turned away {}",
        answered + not_in_table + invalid,
        get(&serve_options.stats.accepted),
        get(&serve_options.stats.refused),
    ));
    served
}

/// A way clients reach the TS, with its sockets: [`run`] serves a list of
/// them from the one zone.
pub enum FrontEnd {
    /// The course protocol over TCP.
    Course(TcpListener),
    /// DNS (RFC 1035) over UDP and TCP ([`dns`]), with its options.
    Dns(DnsSockets, dns::DnsOptions),
}

/// Serves `table` on every front end in `fronts` until `shutdown`
/// triggers. Should one fail, the whole TS stops.
///
/// # Errors
/// Any front end's error.
pub fn run(
    fronts: Vec<FrontEnd>,
    table: Arc<Zone>,
    options: TsOptions,
    shutdown: &Shutdown,
) -> io::Result<()> {
    run_counted(fronts, table, options, Arc::default(), shutdown)
}

/// Like [`run`], counting the queries into `counts` (which the web
/// endpoint reads).
///
/// # Errors
/// Any front end's error.
pub fn run_counted(
    fronts: Vec<FrontEnd>,
    table: Arc<Zone>,
    options: TsOptions,
    counts: Arc<Counts>,
    shutdown: &Shutdown,
) -> io::Result<()> {
    let name = |front: &FrontEnd| match front {
        FrontEnd::Course(_) => "ts course",
        FrontEnd::Dns(..) => "ts dns",
    };
    // What the course port tells a client that sends it DNS.
    let dns_port = fronts.iter().find_map(|front| match front {
        FrontEnd::Dns(sockets, _) => sockets.tcp.local_addr().ok().map(|addr| addr.port()),
        FrontEnd::Course(_) => None,
    });
    let serve_one = |front| match front {
        FrontEnd::Course(listener) => serve_course(
            listener,
            Arc::clone(&table),
            options,
            dns_port,
            Arc::clone(&counts),
            shutdown,
        ),
        FrontEnd::Dns(sockets, dns_options) => dns::run_counted(
            sockets,
            Arc::clone(&table),
            dns_options,
            Arc::clone(&counts.dns),
            shutdown,
        ),
    };
    serve_each(fronts, name, serve_one, shutdown)
}

/// Answers one course connection's queries until the peer closes; one
/// that sends DNS instead is closed at once, pointed at `dns_port`.
fn answer_connection(
    stream: TcpStream,
    activity: &Activity,
    table: &Zone,
    options: TsOptions,
    dns_port: Option<u16>,
    counts: &Counts,
) -> io::Result<()> {
    stream.set_nodelay(true)?;
    // An idle connection ends with a timed-out read; so does one whose
    // peer stops reading replies for as long.
    stream.set_read_timeout(Some(options.idle_timeout))?;
    stream.set_write_timeout(Some(options.idle_timeout))?;
    let mut reader =
        MessageReader::new(stream.try_clone()?, options.framing, wire::MAX_MESSAGE_LEN);
    if reader.sent_dns_instead("ts", dns_port)? {
        Counts::add(&counts.invalid);
        return Ok(());
    }
    let mut out = BufWriter::new(stream);
    // Queries read whose replies (or silence) have not been flushed.
    let mut unanswered = 0;
    while let Some(frame) = reader.next_frame()? {
        activity.received(1);
        unanswered += 1;
        if let Some(reply) = reply_to(frame, table, options, counts) {
            write_message(&mut out, reply.as_bytes(), reader.framing())?;
        }
        if !reader.has_buffered_message() {
            out.flush()?;
            activity.answered(unanswered);
            unanswered = 0;
        }
    }
    out.flush()
}

/// The reply to one query, or `None` for silence.
fn reply_to(frame: Frame, table: &Zone, options: TsOptions, counts: &Counts) -> Option<String> {
    let Frame::Message(message) = frame else {
        Counts::add(&counts.invalid);
        log::info(format_args!("ts: ignoring an over-long query"));
        return None;
    };
    let query = match wire::parse_query(&message) {
        Ok(query) => query,
        Err(e) => {
            Counts::add(&counts.invalid);
            log::info(format_args!("ts: ignoring a query: {e}"));
            return None;
        }
    };
    let addresses = table
        .node(&query.key)
        .and_then(|node| node.rrset(RecordType::A));
    match addresses.and_then(|set| course_answer(set.next_entry())) {
        Some(answer) => {
            Counts::add(&counts.answered);
            let line = answer.line(options.dialect);
            log::info(format_args!("ts: {} -> {line}", query.name));
            Some(line)
        }
        None if options.answer_misses => {
            Counts::add(&counts.not_in_table);
            log::info(format_args!("ts: {} not in table", query.name));
            Some(wire::not_found_line(&query.name))
        }
        None => {
            Counts::add(&counts.not_in_table);
            log::info(format_args!(
                "ts: {} not in table, staying silent",
                query.name
            ));
            None
        }
    }
}

/// The course answer an A record gives: its address, under its owner name
/// as the table spelt it.
fn course_answer(entry: &Entry) -> Option<wire::Found> {
    match entry.record.data {
        RData::A(ip) => Some(wire::Found {
            name: entry.spelt.clone(),
            ip,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table;

    #[test]
    fn course_answers_take_turns_and_keep_each_lines_spelling() {
        let zone = table::parse(b"rr.com 10.0.0.1 A\nRR.com. 10.0.0.2 A").unwrap();
        let set = zone.node("rr.com").unwrap().rrset(RecordType::A).unwrap();
        let line = || {
            course_answer(set.next_entry())
                .unwrap()
                .line(Dialect::Y2020)
        };
        assert_eq!(line(), "rr.com 10.0.0.1 A");
        assert_eq!(line(), "RR.com. 10.0.0.2 A");
        assert_eq!(line(), "rr.com 10.0.0.1 A");
    }
}
