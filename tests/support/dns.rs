//! DNS test helpers, built on hickory-proto (an independent implementation):
//! queries made and answers parsed by hickory over UDP and TCP, a TS's DNS
//! side and an LS with its DNS front end in-process, fake DNS TSes, and the
//! binary started with its DNS port read. Every wait is bounded.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use crossbeam_channel::Receiver;
use hickory_proto::op::{Edns, Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

use super::{BOUND, Running, Server, backends, capture_stderr, fake_server};
use dnslb::ls::{FrontEnd, Ls, LsOptions, Snapshot};
use dnslb::net::DnsSockets as Sockets;
use dnslb::shutdown::Shutdown;
use dnslb::table;
use dnslb::ts::dns::{self as ts_dns, DnsOptions};

/// A TS's DNS side running in-process; stopped and joined on drop.
pub struct DnsTs {
    pub addr: SocketAddr,
    pub shutdown: Shutdown,
    pub thread: Option<JoinHandle<()>>,
}

impl DnsTs {
    /// Serves `table` (table-file text) with the default options.
    pub fn start(table: &str) -> DnsTs {
        DnsTs::start_with(table, DnsOptions::default())
    }

    pub fn start_with(table: &str, options: DnsOptions) -> DnsTs {
        dnslb::log::to_test_harness();
        let table = Arc::new(table::parse(table.as_bytes()).unwrap());
        let sockets = loopback_sockets();
        let addr = sockets.local_addr().unwrap();
        assert_eq!(sockets.tcp.local_addr().unwrap(), addr);
        let shutdown = Shutdown::new();
        let handle = shutdown.clone();
        let thread = thread::spawn(move || ts_dns::run(sockets, table, options, &handle).unwrap());
        DnsTs {
            addr,
            shutdown,
            thread: Some(thread),
        }
    }
}

impl Drop for DnsTs {
    fn drop(&mut self) {
        self.shutdown.trigger();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// UDP and TCP sockets on one free port of 127.0.0.1.
pub fn loopback_sockets() -> Sockets {
    Sockets::bind(&["127.0.0.1:0".parse().unwrap()]).unwrap()
}

/// An LS serving the course protocol and DNS in-process, with its
/// counters at hand; stopped on drop.
pub struct DnsLs {
    /// The course protocol's address.
    pub server: Server,
    /// The DNS address (UDP and TCP).
    pub dns: SocketAddr,
    pub ls: Arc<Ls>,
}

impl DnsLs {
    /// An LS forwarding to `ts`, its options adjusted by `tweak`.
    pub fn start(ts: &[SocketAddr], tweak: impl FnOnce(&mut LsOptions)) -> DnsLs {
        let mut options = LsOptions::new(backends(ts));
        tweak(&mut options);
        let ls = Arc::new(Ls::new(options).unwrap());
        let sockets = loopback_sockets();
        let dns = sockets.local_addr().unwrap();
        let runner = Arc::clone(&ls);
        let server = super::spawn_server(move |listener, shutdown| {
            runner
                .run(
                    vec![FrontEnd::Course(listener), FrontEnd::Dns(sockets)],
                    &shutdown,
                )
                .unwrap();
        });
        DnsLs { server, dns, ls }
    }

    /// The course protocol's address.
    pub fn course(&self) -> SocketAddr {
        self.server.addr
    }

    pub fn snapshot(&self) -> Snapshot {
        self.ls.snapshot()
    }

    /// Stops the LS and returns its counters as it prints them at exit.
    /// A response is counted once written, which may be just after its
    /// client read it: counters read after stopping miss none.
    pub fn stop(self) -> Snapshot {
        let DnsLs { server, ls, .. } = self;
        server.stop();
        ls.snapshot()
    }
}

/// A query for `name` and `qtype` with `id` and RD set, as a stub resolver sends it.
pub fn query(id: u16, name: &str, qtype: RecordType) -> Message {
    let mut message = Message::query();
    message.metadata.id = id;
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    message
}

/// `message` with an OPT record.
pub fn with_edns(mut message: Message, payload: u16, version: u8, dnssec_ok: bool) -> Message {
    let mut edns = Edns::new();
    edns.set_max_payload(payload);
    edns.set_version(version);
    edns.set_dnssec_ok(dnssec_ok);
    message.set_edns(edns);
    message
}

/// A UDP socket on 127.0.0.1 that waits at most [`BOUND`] for a datagram.
pub fn udp_client() -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(BOUND)).unwrap();
    socket
}

/// Reads one datagram from `socket` (bounded).
pub fn udp_recv(socket: &UdpSocket) -> Vec<u8> {
    let mut buf = vec![0; 65_536];
    let (len, _) = socket
        .recv_from(&mut buf)
        .expect("an answer within the bound");
    buf.truncate(len);
    buf
}

/// Sends `bytes` in one datagram to `server` and returns the raw answer.
pub fn udp_raw(server: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let socket = udp_client();
    socket.send_to(bytes, server).unwrap();
    udp_recv(&socket)
}

/// Asks `server` over UDP; the answer parsed by hickory.
pub fn udp_ask(server: SocketAddr, message: &Message) -> Message {
    Message::from_vec(&udp_raw(server, &message.to_vec().unwrap())).unwrap()
}

/// A TCP connection to `server` with Nagle off and a bounded read.
pub fn tcp_connect(server: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(server).unwrap();
    stream.set_read_timeout(Some(BOUND)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// `message` with its two-byte length prefix (RFC 1035 §4.2.2).
pub fn framed(message: &Message) -> Vec<u8> {
    framed_bytes(&message.to_vec().unwrap())
}

/// `bytes` with a two-byte length prefix.
pub fn framed_bytes(bytes: &[u8]) -> Vec<u8> {
    let mut out = u16::try_from(bytes.len()).unwrap().to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

/// One length-prefixed message, or `None` when the stream ends first.
pub fn read_framed(stream: &mut impl Read) -> Option<Vec<u8>> {
    let mut len = [0; 2];
    stream.read_exact(&mut len).ok()?;
    let mut bytes = vec![0; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut bytes).ok()?;
    Some(bytes)
}

/// Reads one length-prefixed answer, parsed by hickory.
pub fn tcp_read(stream: &mut TcpStream) -> Message {
    let bytes = read_framed(stream).expect("an answer within the bound");
    Message::from_vec(&bytes).unwrap()
}

/// Asks over a new TCP connection; the answer parsed by hickory.
pub fn tcp_ask(server: SocketAddr, message: &Message) -> Message {
    let mut stream = tcp_connect(server);
    stream.write_all(&framed(message)).unwrap();
    tcp_read(&mut stream)
}

/// The addresses of an answer's A records, in order.
pub fn addresses(message: &Message) -> Vec<Ipv4Addr> {
    message
        .answers
        .iter()
        .map(|record| match &record.data {
            RData::A(a) => a.0,
            other => panic!("not an A record: {other:?}"),
        })
        .collect()
}

pub fn rcode(message: &Message) -> u16 {
    u16::from(message.metadata.response_code)
}

/// The response to `query` (a TS's view): its ID and question, AA set,
/// `code`, and whatever `build` adds.
pub fn reply_to(query: &Message, code: ResponseCode, build: impl FnOnce(&mut Message)) -> Message {
    let mut reply = Message::new(
        query.metadata.id,
        MessageType::Response,
        query.metadata.op_code,
    );
    reply.metadata.authoritative = true;
    reply.metadata.response_code = code;
    for q in &query.queries {
        reply.add_query(q.clone());
    }
    build(&mut reply);
    reply
}

/// A fake DNS-over-TCP server: for each connection, reads length-prefixed
/// queries (parsed by hickory) and hands each with the stream to `answer`,
/// which writes what it wants.
pub fn fake_dns_ts(
    answer: impl Fn(&Message, &mut TcpStream) + Send + Sync + 'static,
) -> SocketAddr {
    fake_server(move |mut stream| {
        while let Some(bytes) = read_framed(&mut stream) {
            let Ok(query) = Message::from_vec(&bytes) else {
                return;
            };
            answer(&query, &mut stream);
        }
    })
}

/// Writes `message` length-prefixed; a closed peer is not an error here.
pub fn write_message(stream: &mut TcpStream, message: &Message) {
    let _ = stream.write_all(&framed(message));
}

/// A fake DNS TS that answers every query with `code` and nothing else.
pub fn rcode_ts(code: ResponseCode) -> SocketAddr {
    fake_dns_ts(move |query, stream| write_message(stream, &reply_to(query, code, |_| {})))
}

/// Starts `dnslb <args> --dns-port 0` and reads its two `listening on`
/// lines (bounded): the course address, then the DNS one. Its stderr lines
/// come on the channel (and go to the test's capture).
pub fn spawn_dns_bin(args: &[&str]) -> (Running, SocketAddr, Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dnslb"))
        .args(args)
        .args(["--bind", "127.0.0.1", "--dns-port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = capture_stderr(&mut child);
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = crossbeam_channel::bounded(2);
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.try_send(line);
        }
    });
    let addr = || -> SocketAddr {
        let line = rx.recv_timeout(BOUND).expect("a listening line");
        line.strip_prefix("listening on ")
            .map(|rest| rest.trim_end_matches(" (dns udp+tcp)"))
            .unwrap_or_else(|| panic!("unexpected line {line:?}"))
            .parse()
            .unwrap()
    };
    let (course, dns) = (addr(), addr());
    (
        Running {
            child,
            addr: course,
        },
        dns,
        log,
    )
}

/// A fake authoritative DNS TS: `answer` makes the reply to each query
/// (see [`reply_to`] and the record makers below). The counter counts the
/// queries it was sent, so a test can tell a cache hit from a query asked
/// again.
pub fn fake_authority(
    answer: impl Fn(&Message) -> Message + Send + Sync + 'static,
) -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&asked);
    let addr = fake_dns_ts(move |query, stream| {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        write_message(stream, &answer(query));
    });
    (addr, asked)
}

/// The name asked in `query`, in lower case without the final dot.
pub fn asked(query: &Message) -> String {
    let name = query.queries[0].name().to_ascii().to_ascii_lowercase();
    name.trim_end_matches('.').to_string()
}

/// A hickory name from text.
pub fn hname(text: &str) -> Name {
    Name::from_ascii(text).unwrap()
}

/// An A record.
pub fn a_record(owner: &str, ttl: u32, ip: Ipv4Addr) -> hickory_proto::rr::Record {
    hickory_proto::rr::Record::from_rdata(hname(owner), ttl, RData::A(ip.into()))
}

/// A CNAME record.
pub fn cname_record(owner: &str, ttl: u32, target: &str) -> hickory_proto::rr::Record {
    let target = hickory_proto::rr::rdata::CNAME(hname(target));
    hickory_proto::rr::Record::from_rdata(hname(owner), ttl, RData::CNAME(target))
}

/// An NS record.
pub fn ns_record(zone: &str, ttl: u32, server: &str) -> hickory_proto::rr::Record {
    let server = hickory_proto::rr::rdata::NS(hname(server));
    hickory_proto::rr::Record::from_rdata(hname(zone), ttl, RData::NS(server))
}

/// An MX record.
pub fn mx_record(owner: &str, ttl: u32, exchange: &str) -> hickory_proto::rr::Record {
    let mx = hickory_proto::rr::rdata::MX::new(10, hname(exchange));
    hickory_proto::rr::Record::from_rdata(hname(owner), ttl, RData::MX(mx))
}

/// The SOA record of `zone` with `ttl` and MINIMUM `minimum` (the
/// negative-caching TTL is the smaller of the two, RFC 2308 §5).
pub fn soa_record(zone: &str, ttl: u32, minimum: u32) -> hickory_proto::rr::Record {
    let soa = hickory_proto::rr::rdata::SOA::new(
        hname(&format!("ns1.{zone}")),
        hname(&format!("hostmaster.{zone}")),
        2_026_010_101,
        3600,
        600,
        86_400,
        minimum,
    );
    hickory_proto::rr::Record::from_rdata(hname(zone), ttl, RData::SOA(soa))
}

/// Sends a DNS query over TCP (as `dig +tcp -p <course port>` does) to a
/// course port, once in one write and once with its length written
/// first: each connection is closed within the bound, unanswered, and
/// the server logs the line `sent DNS to the course port; <hint>`.
pub fn dns_to_the_course_port_is_closed(course: SocketAddr, log: &Receiver<String>, hint: &str) {
    let framed = framed(&query(7, "amazon.org.", RecordType::A));
    for split in [framed.len(), 2] {
        let mut stream = tcp_connect(course);
        let (first, rest) = framed.split_at(split);
        stream.write_all(first).unwrap();
        // Nagle is off: the length leaves on its own, as some clients send it.
        let _ = stream.write_all(rest);
        let mut got = Vec::new();
        match stream.read_to_end(&mut got) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("not closed within the bound: {e} (got {got:?})"),
        }
        assert_eq!(got, b"", "unanswered");
        let line = super::line_containing(log, "sent DNS to the course port");
        assert!(
            line.ends_with(&format!("sent DNS to the course port; {hint}")),
            "{line}"
        );
    }
}
