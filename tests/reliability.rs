//! The LS through TS crashes, silent and lying TSes, and abusive clients.

mod support;

use std::io::Write;
use std::time::Instant;

use support::*;

const TS1: &str = "amazon.org 94.5.6.7 A\nrutgers.com 172.34.4.6 A\n";
const TS2: &str = "www.princeton.edu 128.1.1.4 A\n";

#[test]
fn smoke() {
    let ts = start_ts(TS1);
    let ls = start_ls_observed(&[ts.addr], ms(200), |_| {});
    assert_eq!(
        LineClient::connect(ls.addr()).ask("amazon.org"),
        "amazon.org 94.5.6.7 A"
    );
    let counts = ls.settled_snapshot();
    assert_eq!((counts.queries, counts.answered_total()), (1, 1));
}

#[test]
fn a_crashed_ts_is_not_waited_on() {
    let ls = start_ls(&[crashing_ts(2)], ms(5000));
    let mut client = LineClient::connect(ls.addr);
    assert_eq!(client.ask("a.com"), "a.com 9.9.9.9 A");
    assert_eq!(client.ask("b.com"), "b.com 9.9.9.9 A");
    let started = Instant::now();
    // The TS closed after its second answer: no TS is left to wait for.
    assert_eq!(client.ask("c.com"), "c.com - Error:HOST NOT FOUND");
    assert!(
        started.elapsed() < ms(2000),
        "waited {:?} on a crashed TS",
        started.elapsed()
    );
}

#[test]
fn a_silent_ts_is_not_down() {
    let ls = start_ls_observed(&[silent_ts()], ms(200), |_| {});
    let mut client = LineClient::connect(ls.addr());
    for name in ["a.com", "b.com"] {
        let started = Instant::now();
        assert_eq!(client.ask(name), format!("{name} - Error:HOST NOT FOUND"));
        assert!(
            started.elapsed() >= ms(200),
            "a silent TS was treated as down"
        );
    }
    drop(client);
    let counts = ls.settled_snapshot();
    assert_eq!(
        (counts.timed_out, counts.failed, counts.transitions),
        (2, 0, 0)
    );
}

#[test]
fn a_restarted_ts_is_used_again_by_live_sessions() {
    let ts1 = start_ts(TS1);
    let addr = ts1.addr;
    // The silent second TS paces the misses: each takes one timeout.
    let ls = start_ls_observed(&[addr, silent_ts()], ms(100), |_| {});
    let mut clients: Vec<LineClient> = (0..5).map(|_| LineClient::connect(ls.addr())).collect();
    for client in &mut clients {
        assert_eq!(client.ask("amazon.org"), "amazon.org 94.5.6.7 A");
    }
    ts1.stop();
    for client in &mut clients {
        assert_eq!(
            client.ask("amazon.org"),
            "amazon.org - Error:HOST NOT FOUND"
        );
    }
    let _ts1 = start_ts_at(addr, TS1);
    let restarted = Instant::now();
    for client in &mut clients {
        while client.ask("amazon.org") != "amazon.org 94.5.6.7 A" {
            assert!(
                restarted.elapsed() < ms(5000),
                "the restarted TS was not used again"
            );
        }
    }
    // At most one backoff step (under 1 s after an outage this short) plus
    // a session's next look, with room for a loaded machine.
    let waited = restarted.elapsed();
    assert!(
        waited < ms(2500),
        "sessions took {waited:?} to use the restarted TS"
    );
    drop(clients);
    // Five sessions saw the TS go and come back: one transition each way.
    assert_eq!(ls.settled_snapshot().transitions, 2);
}

#[test]
fn replies_from_a_lying_ts_are_dropped_and_counted() {
    let ls = start_ls_observed(&[lying_ts()], ms(2000), |_| {});
    let mut client = LineClient::connect(ls.addr());
    // Each query's true answer comes after four junk replies.
    assert_eq!(client.ask("a.com"), "a.com 7.7.7.7 A");
    assert_eq!(client.ask("b.com"), "b.com 7.7.7.7 A");
    drop(client);
    assert_eq!(ls.settled_snapshot().dropped_replies, 8);
}

#[test]
fn a_client_over_the_limit_is_told_the_server_is_busy() {
    let ts = start_ts(TS1);
    let ls = start_ls_observed(&[ts.addr], ms(3000), |o| o.max_clients = 2);
    let mut first = LineClient::connect(ls.addr());
    let mut second = LineClient::connect(ls.addr());
    assert_eq!(first.ask("amazon.org"), "amazon.org 94.5.6.7 A");
    // Both busy however slow the machine (an idle one would give way to
    // the newcomer): a query each that no TS answers before the deadline.
    first.send_raw(b"nothere.com\n");
    second.send_raw(b"nothere.com\n");
    let mut third = LineClient::connect(ls.addr());
    assert_eq!(third.recv(), "- Error:SERVER BUSY");
    assert_eq!(third.try_recv(), None);
    assert_eq!(first.recv(), "nothere.com - Error:HOST NOT FOUND");
    assert_eq!(second.recv(), "nothere.com - Error:HOST NOT FOUND");
    assert_eq!(first.ask("rutgers.com"), "rutgers.com 172.34.4.6 A");
    drop(first);
    assert!(ls.ls.stats().connections.wait_open_at_most(1, BOUND));
    let mut fourth = LineClient::connect(ls.addr());
    assert_eq!(fourth.ask("rutgers.com"), "rutgers.com 172.34.4.6 A");
    drop((second, fourth));
    assert_eq!(ls.settled_snapshot().refused, 1);
}

#[test]
fn an_idle_client_is_closed() {
    let ts = start_ts(TS1);
    let ls = start_ls_observed(&[ts.addr], ms(200), |o| o.idle_timeout = ms(300));
    let mut client = LineClient::connect(ls.addr());
    assert_eq!(client.ask("amazon.org"), "amazon.org 94.5.6.7 A");
    let started = Instant::now();
    assert_eq!(
        client.try_recv(),
        None,
        "the LS should close an idle client"
    );
    assert!(
        started.elapsed() >= ms(250),
        "closed after {:?}",
        started.elapsed()
    );
    assert_eq!(ls.settled_snapshot().idle_closed, 1);
}

#[test]
fn a_junk_flood_does_not_slow_a_well_behaved_client() {
    let ts = start_ts(TS1);
    let ls = start_ls_observed(&[ts.addr], ms(200), |_| {});
    const JUNK_LINES: usize = 8 * 20_000;
    let mut junk = LineClient::connect(ls.addr());
    // The flooder reads its error replies, so its worker keeps going.
    let drain = {
        let writer = junk.writer().try_clone().unwrap();
        std::thread::spawn(move || {
            let mut writer = writer;
            let giant = vec![b'z'; 1 << 20];
            let lines: String = (0..20_000).map(|i| format!("junk {i}!\n")).collect();
            for _ in 0..8 {
                writer.write_all(&giant).unwrap();
                writer.write_all(lines.as_bytes()).unwrap();
            }
        })
    };
    let mut client = LineClient::connect(ls.addr());
    let mut latencies: Vec<_> = (0..500)
        .map(|_| {
            let started = Instant::now();
            assert_eq!(client.ask("rutgers.com"), "rutgers.com 172.34.4.6 A");
            started.elapsed()
        })
        .collect();
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    assert!(p99 < ms(100), "p99 {p99:?} beside a junk flood");
    // Every junk line was answered: the flood really ran alongside.
    for _ in 0..JUNK_LINES {
        junk.recv();
    }
    drain.join().unwrap();
    drop((junk, client));
    let counts = ls.settled_snapshot();
    assert_eq!(counts.invalid, JUNK_LINES as u64);
}

#[test]
fn a_client_that_reads_no_replies_is_closed_after_the_idle_timeout() {
    let ts = start_ts(TS1);
    let ls = start_ls_observed(&[ts.addr], ms(200), |o| o.idle_timeout = ms(300));
    // Small socket buffers, so that the replies that fill them, and the
    // queries queued before the LS stops reading, are few: a loaded machine
    // gets through them well within the bound.
    let mut writer = connect_with_small_buffers(ls.addr());
    // Queries until the LS stops reading them: its worker is then blocked
    // writing replies this client never reads.
    writer.set_write_timeout(Some(ms(500))).unwrap();
    let batch = "rutgers.com\n".repeat(10_000);
    let blocked = (0..1000).any(|_| writer.write_all(batch.as_bytes()).is_err());
    assert!(blocked, "the LS kept reading a client that reads nothing");
    assert!(
        ls.ls.stats().connections.wait_open_at_most(0, BOUND),
        "the stalled client was not closed"
    );
    assert_eq!(ls.ls.snapshot().idle_closed, 1);
}

/// A connection to `addr` (IPv4) whose receive and send buffers are 4 KiB,
/// set before connecting so that the window it offers stays small.
fn connect_with_small_buffers(addr: std::net::SocketAddr) -> std::net::TcpStream {
    use std::os::fd::FromRawFd;
    let std::net::SocketAddr::V4(v4) = addr else {
        panic!("{addr} is not IPv4")
    };
    // SAFETY: plain socket calls on a descriptor this function owns until
    // it hands it to the TcpStream.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let size: libc::c_int = 4096;
        for option in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
            let set = libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                option,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
            assert_eq!(set, 0, "setsockopt: {}", std::io::Error::last_os_error());
        }
        let sin = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: v4.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*v4.ip()).to_be(),
            },
            sin_zero: [0; 8],
        };
        let connected = libc::connect(
            fd,
            (&sin as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        assert_eq!(connected, 0, "connect: {}", std::io::Error::last_os_error());
        std::net::TcpStream::from_raw_fd(fd)
    }
}

#[test]
fn counters_add_up_after_a_mixed_run() {
    let (ts1, ts2) = (start_ts(TS1), start_ts(TS2));
    let ls = start_ls_observed(&[ts1.addr, ts2.addr, lying_ts()], ms(150), |_| {});
    let mut client = LineClient::connect(ls.addr());
    for name in [
        "amazon.org",
        "www.princeton.edu",
        "",
        "not.here",
        "bad name",
        "rutgers.com",
    ] {
        client.ask(name);
    }
    drop(client);
    let counts = ls.settled_snapshot();
    assert_eq!(counts.queries, 6);
    assert_eq!(counts.invalid, 2);
    assert_eq!(
        counts.queries,
        counts.answered_total() + counts.misses() + counts.invalid + counts.abandoned
    );
    assert_eq!(counts.accepted, 1);
}
