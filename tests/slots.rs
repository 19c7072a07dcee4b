//! Connection places: a full server closes its longest-idle connection to
//! serve a newcomer (course LS, LS DNS-TCP, TS, TS DNS-TCP), a client is
//! idle again once its queries are answered, whatever their outcome (an
//! answer, the cache's, an invalid query, a timeout), one address
//! holds at most `--max-clients-per-ip`, and a DNS-over-TCP peer that
//! trickles a message is closed once the message takes longer than its
//! bound.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::os::fd::FromRawFd;
use std::thread;
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use dnslb::server::EVICTABLE_AFTER;
use dnslb::ts::TsOptions;
use dnslb::ts::dns::DnsOptions;
use support::dns::*;
use support::*;

const TS1: &str = "amazon.org 94.5.6.7 A\nrutgers.com 172.34.4.6 A\n";

/// Lets connections that have just been accepted or answered become
/// evictable: the condition is time itself (with a margin for a loaded
/// machine, where a worker may mark its reply sent a little after the
/// client has read it).
fn wait_until_evictable() {
    thread::sleep(EVICTABLE_AFTER + ms(500));
}

/// Whether the server closed `stream` (end of stream or reset) within the
/// bound, reading and discarding anything it sends first.
fn closed_by_server(stream: &mut TcpStream) -> bool {
    stream.set_read_timeout(Some(BOUND)).unwrap();
    let mut buf = [0; 512];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// Sends `name` on `stream` and reads one reply line; `None` when the
/// server closed the connection instead.
fn ask_on(stream: &TcpStream, name: &str) -> Option<String> {
    let mut writer = stream;
    writer.write_all(format!("{name}\n").as_bytes()).ok()?;
    reply_on(stream)
}

/// Reads one reply line from `stream`; `None` when the server closed it.
fn reply_on(stream: &TcpStream) -> Option<String> {
    stream.set_read_timeout(Some(BOUND)).unwrap();
    let mut line = String::new();
    match BufReader::new(stream).read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim_end().to_string()),
    }
}

/// A TCP connection to `to` from the loopback address `source` (any of
/// 127.0.0.0/8), standing for a second client host.
fn connect_from(source: Ipv4Addr, to: SocketAddr) -> TcpStream {
    let sockaddr = |addr: SocketAddrV4| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*addr.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    let SocketAddr::V4(to) = to else {
        panic!("an IPv4 server address")
    };
    let (from, to) = (sockaddr(SocketAddrV4::new(source, 0)), sockaddr(to));
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: a fresh socket is owned by the TcpStream at once; the
    // addresses are valid sockaddr_in values of `len` bytes.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let stream = TcpStream::from_raw_fd(fd);
        let bound = libc::bind(fd, (&raw const from).cast(), len);
        assert_eq!(bound, 0, "bind: {}", std::io::Error::last_os_error());
        let connected = libc::connect(fd, (&raw const to).cast(), len);
        assert_eq!(connected, 0, "connect: {}", std::io::Error::last_os_error());
        stream
    }
}

#[test]
fn smoke() {
    let ts = start_ts(TS1);
    let ls = start_ls_observed(&[ts.addr], ms(500), |o| o.max_clients = 1);
    let mut client = LineClient::connect(ls.addr());
    assert_eq!(client.ask("amazon.org"), "amazon.org 94.5.6.7 A");
}

#[test]
fn a_full_ls_closes_its_longest_idle_client_to_serve_a_new_one() {
    let ts = start_ts(TS1);
    let ls = start_ls_observed(&[ts.addr], ms(500), |o| o.max_clients = 2);
    // Both places taken by clients that never send anything.
    let mut oldest = TcpStream::connect(ls.addr()).unwrap();
    let newer = TcpStream::connect(ls.addr()).unwrap();
    wait_until_evictable();
    let mut newcomer = LineClient::connect(ls.addr());
    assert_eq!(newcomer.ask("amazon.org"), "amazon.org 94.5.6.7 A");
    assert!(
        closed_by_server(&mut oldest),
        "the longest-idle client is closed"
    );
    assert_eq!(
        ask_on(&newer, "rutgers.com").as_deref(),
        Some("rutgers.com 172.34.4.6 A"),
        "the other one is still served"
    );
    let evicted = &ls.ls.stats().connections.evicted;
    assert_eq!(evicted.load(std::sync::atomic::Ordering::Relaxed), 1);
    drop((newer, newcomer));
    let counts = ls.settled_snapshot();
    assert_eq!((counts.accepted, counts.refused), (3, 0), "{counts}");
}

#[test]
fn a_full_ls_keeps_a_client_whose_query_is_in_flight() {
    let ts = start_ts(TS1);
    // The silent TS keeps a miss in flight for the whole timeout.
    let ls = start_ls_observed(&[ts.addr, silent_ts()], ms(3000), |o| o.max_clients = 1);
    let mut waiting = LineClient::connect(ls.addr());
    waiting.send("nothing.here");
    wait_until_evictable();
    let mut newcomer = LineClient::connect(ls.addr());
    assert_eq!(newcomer.recv(), "- Error:SERVER BUSY");
    assert_eq!(waiting.recv(), "nothing.here - Error:HOST NOT FOUND");
}

#[test]
fn one_address_holds_at_most_max_clients_per_ip() {
    let ts = start_ts(TS1);
    let ls = start_ls_observed(&[ts.addr], ms(3000), |o| o.max_clients_per_ip = 2);
    let here = Ipv4Addr::LOCALHOST;
    let first = connect_from(here, ls.addr());
    let second = connect_from(here, ls.addr());
    assert_eq!(
        ask_on(&first, "amazon.org").as_deref(),
        Some("amazon.org 94.5.6.7 A")
    );
    // Both busy, however slow the machine: each has a query in flight that
    // no TS answers until the LS's 3 s deadline.
    for mut stream in [&first, &second] {
        stream.write_all(b"nothere.com\n").unwrap();
    }
    // A third from the same address: busy.
    let third = connect_from(here, ls.addr());
    assert_eq!(
        ask_on(&third, "amazon.org").as_deref(),
        Some("- Error:SERVER BUSY")
    );
    // Another address still gets in.
    let elsewhere = connect_from(Ipv4Addr::new(127, 0, 0, 2), ls.addr());
    assert_eq!(
        ask_on(&elsewhere, "amazon.org").as_deref(),
        Some("amazon.org 94.5.6.7 A")
    );
    for stream in [&first, &second] {
        assert_eq!(
            reply_on(stream).as_deref(),
            Some("nothere.com - Error:HOST NOT FOUND")
        );
    }
    // The two misses settle at the same deadline, their connections idle
    // from the same moment; the first is then left idle (the wait is that
    // idle period) while the second is used once more, so the first has
    // been idle the longer by far when both are idle enough to give way.
    thread::sleep(EVICTABLE_AFTER / 2);
    assert_eq!(
        ask_on(&second, "amazon.org").as_deref(),
        Some("amazon.org 94.5.6.7 A")
    );
    wait_until_evictable();
    // A newcomer from the address takes the place of its connection idle
    // the longest: the first.
    let fourth = connect_from(here, ls.addr());
    assert_eq!(
        ask_on(&fourth, "rutgers.com").as_deref(),
        Some("rutgers.com 172.34.4.6 A")
    );
    assert_eq!(
        ls.ls
            .stats()
            .connections
            .evicted
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(ask_on(&first, "rutgers.com"), None, "the first gave way");
    assert_eq!(
        ask_on(&second, "rutgers.com").as_deref(),
        Some("rutgers.com 172.34.4.6 A")
    );
    assert_eq!(
        ask_on(&elsewhere, "rutgers.com").as_deref(),
        Some("rutgers.com 172.34.4.6 A")
    );
}

#[test]
fn a_course_client_gives_way_once_its_queries_are_answered_however_they_ended() {
    let ts = start_ts(TS1);
    // The silent TS lets a miss time out; the cache answers a name asked
    // again.
    let ls = start_ls_observed(&[ts.addr, silent_ts()], ms(300), |o| {
        o.max_clients = 1;
        o.cache = 16;
    });
    let used = TcpStream::connect(ls.addr()).unwrap();
    for (query, reply) in [
        ("amazon.org", "amazon.org 94.5.6.7 A"),
        ("amazon.org", "amazon.org 94.5.6.7 A"),
        ("a b", "a b - Error:INVALID HOSTNAME"),
        ("", "- Error:EMPTY QUERY"),
        ("nothere.com", "nothere.com - Error:HOST NOT FOUND"),
    ] {
        assert_eq!(ask_on(&used, query).as_deref(), Some(reply));
    }
    // Pipelined, the same: every one answered before the connection is idle.
    let mut writer = &used;
    writer
        .write_all(b"amazon.org\na b\nnothere.com\namazon.org\n")
        .unwrap();
    let mut replies = BufReader::new(&used);
    for reply in [
        "amazon.org 94.5.6.7 A",
        "a b - Error:INVALID HOSTNAME",
        "nothere.com - Error:HOST NOT FOUND",
        "amazon.org 94.5.6.7 A",
    ] {
        let mut line = String::new();
        replies.read_line(&mut line).unwrap();
        assert_eq!(line.trim_end(), reply);
    }
    wait_until_evictable();
    let mut newcomer = LineClient::connect(ls.addr());
    assert_eq!(newcomer.ask("rutgers.com"), "rutgers.com 172.34.4.6 A");
    assert_eq!(
        ask_on(&used, "amazon.org"),
        None,
        "the idle client gave way"
    );
    drop(newcomer);
    let counts = ls.settled_snapshot();
    assert_eq!(
        (
            counts.cached,
            counts.invalid,
            counts.timed_out,
            counts.refused
        ),
        (3, 3, 2, 0),
        "{counts}"
    );
}

#[test]
fn a_dns_tcp_client_gives_way_once_its_queries_are_answered_however_they_ended() {
    let ts = start_ts(TS1);
    let ls = DnsLs::start(&[ts.addr], |o| {
        o.max_clients = 1;
        o.cache = 16;
        o.dns_timeout = ms(300);
    });
    let mut used = tcp_connect(ls.dns);
    let amazon = query(1, "amazon.org.", RecordType::A);
    let mut chaos = query(2, "version.bind.", RecordType::TXT);
    chaos.queries[0].set_query_class(hickory_proto::rr::DNSClass::CH);
    let mut response = query(3, "amazon.org.", RecordType::A);
    response.metadata.message_type = hickory_proto::op::MessageType::Response;
    let cut = &amazon.to_vec().unwrap()[..20];
    // Answered, from the cache, malformed, refused, a response (dropped,
    // never a query), a name no TS holds (SERVFAIL at the deadline).
    let sent = [
        framed(&amazon),
        framed(&amazon),
        framed_bytes(cut),
        framed(&chaos),
        framed(&response),
        framed(&query(4, "nothere.com.", RecordType::A)),
    ];
    for message in &sent {
        used.write_all(message).unwrap();
    }
    let mut rcodes: Vec<ResponseCode> = (0..5)
        .map(|_| tcp_read(&mut used).metadata.response_code)
        .collect();
    rcodes.sort_by_key(|code| u16::from(*code));
    use ResponseCode::{FormErr, NoError, Refused, ServFail};
    assert_eq!(rcodes, [NoError, NoError, FormErr, ServFail, Refused]);
    wait_until_evictable();
    let answer = tcp_ask(ls.dns, &query(9, "rutgers.com.", RecordType::A));
    assert_eq!(addresses(&answer), [Ipv4Addr::new(172, 34, 4, 6)]);
    assert!(closed_by_server(&mut used), "the idle client gave way");
}

#[test]
fn a_full_ts_closes_its_longest_idle_connection_to_serve_a_new_one() {
    let options = TsOptions {
        max_clients: 2,
        ..TsOptions::default()
    };
    let ts = start_ts_with(TS1, options);
    let mut oldest = TcpStream::connect(ts.addr).unwrap();
    let newer = TcpStream::connect(ts.addr).unwrap();
    wait_until_evictable();
    let mut newcomer = LineClient::connect(ts.addr);
    assert_eq!(newcomer.ask("amazon.org"), "amazon.org 94.5.6.7 A");
    assert!(closed_by_server(&mut oldest));
    assert_eq!(
        ask_on(&newer, "amazon.org").as_deref(),
        Some("amazon.org 94.5.6.7 A")
    );
}

#[test]
fn a_full_ts_dns_port_closes_a_silent_connection_to_serve_a_new_one() {
    let options = DnsOptions {
        max_connections: 1,
        ..DnsOptions::default()
    };
    let ts = DnsTs::start_with("www.example.com 10.0.0.1 A\n", options);
    let mut silent = TcpStream::connect(ts.addr).unwrap();
    wait_until_evictable();
    let answer = tcp_ask(ts.addr, &query(7, "www.example.com.", RecordType::A));
    assert_eq!(addresses(&answer), [Ipv4Addr::new(10, 0, 0, 1)]);
    assert!(closed_by_server(&mut silent));
}

#[test]
fn a_full_ls_dns_port_closes_a_silent_connection_to_serve_a_new_one() {
    let ts = start_ts(TS1);
    let ls = DnsLs::start(&[ts.addr], |o| o.max_clients = 1);
    let mut silent = TcpStream::connect(ls.dns).unwrap();
    wait_until_evictable();
    let answer = tcp_ask(ls.dns, &query(7, "amazon.org.", RecordType::A));
    assert_eq!(addresses(&answer), [Ipv4Addr::new(94, 5, 6, 7)]);
    assert!(closed_by_server(&mut silent));
}

/// Sends a 65,535-byte DNS message one byte every 50 ms on its own thread,
/// until the server closes the connection (or the bound passes).
fn trickle(server: SocketAddr) -> (TcpStream, thread::JoinHandle<()>) {
    let stream = TcpStream::connect(server).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let started = Instant::now();
    let sender = thread::spawn(move || {
        let mut bytes = [0xff_u8, 0xff].into_iter().chain(std::iter::repeat(0));
        while started.elapsed() < BOUND {
            let byte = bytes.next().unwrap();
            if writer.write_all(&[byte]).is_err() {
                return;
            }
            // The trickler's pace, not a wait for something.
            thread::sleep(ms(50));
        }
    });
    (stream, sender)
}

#[test]
fn a_trickling_sender_on_the_ts_dns_port_is_closed_after_the_message_bound() {
    let options = DnsOptions {
        max_connections: 1,
        tcp_message: ms(300),
        ..DnsOptions::default()
    };
    let ts = DnsTs::start_with("www.example.com 10.0.0.1 A\n", options);
    let started = Instant::now();
    let (mut stream, sender) = trickle(ts.addr);
    // Well before the 10 s idle timeout, though a byte comes every 50 ms.
    assert!(closed_by_server(&mut stream), "the trickler is closed");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(started.elapsed() >= ms(300), "{:?}", started.elapsed());
    let answer = tcp_ask(ts.addr, &query(7, "www.example.com.", RecordType::A));
    assert_eq!(addresses(&answer), [Ipv4Addr::new(10, 0, 0, 1)]);
    drop(stream);
    sender.join().unwrap();
}

#[test]
fn a_trickling_sender_on_the_ls_dns_port_is_closed_after_the_message_bound() {
    let ts = start_ts(TS1);
    let ls = DnsLs::start(&[ts.addr], |o| o.dns_tcp_message = ms(300));
    let started = Instant::now();
    let (mut stream, sender) = trickle(ls.dns);
    assert!(closed_by_server(&mut stream), "the trickler is closed");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let answer = tcp_ask(ls.dns, &query(7, "amazon.org.", RecordType::A));
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    assert_eq!(addresses(&answer), [Ipv4Addr::new(94, 5, 6, 7)]);
    drop(stream);
    sender.join().unwrap();
}
