//! What a shutdown, or a client that stops reading, does to what clients
//! already sent: a line cut short is never a query, every query that
//! reached the LS is answered or counted as abandoned, and the counters add
//! up with nothing left in flight.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use hickory_proto::rr::RecordType;
use support::dns::{DnsLs, framed, query};
use support::*;

const TS1: &str = "amazon.org 94.5.6.7 A\n";

#[test]
fn smoke() {
    let ts = start_ts(TS1);
    let ls = start_ls_observed(&[ts.addr], ms(300), |_| {});
    let mut client = LineClient::connect(ls.addr());
    assert_eq!(client.ask("amazon.org"), "amazon.org 94.5.6.7 A");
    ls.server.shutdown.trigger();
    assert_eq!(client.try_recv(), None);
}

#[test]
fn a_line_cut_by_the_shutdown_is_not_a_query() {
    let ts = start_ts(TS1);
    let ls = start_ls_observed(&[ts.addr], ms(300), |_| {});
    let mut client = LineClient::connect(ls.addr());
    // One write: once amazon.org is answered, the LS has read `b.co` too.
    client.send_raw(b"amazon.org\nb.co");
    assert_eq!(client.recv(), "amazon.org 94.5.6.7 A");
    ls.server.shutdown.trigger();
    // The rest of the line, after the signal: the LS has stopped reading,
    // or (should the bytes beat the reader to its wake-up) reads a whole
    // query `b.com`. Never the fragment `b.co`.
    let _ = client.writer().write_all(b"m\n");
    let after = client.try_recv();
    assert!(
        after.is_none() || after.as_deref() == Some("b.com - Error:HOST NOT FOUND"),
        "a fragment was answered: {after:?}"
    );
    assert_eq!(client.try_recv(), None);
}

/// Waits (bounded) until every byte written on `stream` has been taken in
/// by its peer's socket.
fn wait_until_delivered(stream: &std::net::TcpStream) {
    let started = Instant::now();
    loop {
        let mut unsent: libc::c_int = 0;
        // SAFETY: a valid descriptor and an int-sized out value.
        let rc = unsafe { libc::ioctl(stream.as_raw_fd(), libc::TIOCOUTQ, &mut unsent) };
        assert_eq!(rc, 0, "ioctl(TIOCOUTQ)");
        if unsent == 0 {
            return;
        }
        assert!(started.elapsed() < BOUND, "{unsent} bytes never delivered");
        std::thread::sleep(ms(1));
    }
}

#[test]
fn queries_left_unanswered_at_shutdown_are_counted_as_abandoned() {
    // A silent TS makes every query wait for the whole timeout, and four in
    // flight at a time means most of the thousand cannot be answered within
    // the grace period.
    let ls = start_ls_observed(&[silent_ts()], ms(200), |o| o.max_inflight = 4);
    let mut client = LineClient::connect(ls.addr());
    let sent = 1000;
    client.send_raw("nothing.here\n".repeat(sent).as_bytes());
    wait_until_delivered(client.writer());
    ls.server.shutdown.trigger();
    let mut replies = 0;
    while let Some(reply) = client.try_recv() {
        assert_eq!(reply, "nothing.here - Error:HOST NOT FOUND");
        replies += 1;
    }
    let counts = ls.settled_snapshot();
    let settled = counts.answered_total() + counts.misses() + counts.invalid;
    assert_eq!(replies, settled, "replies sent are the queries settled");
    assert!(counts.abandoned > 0, "{counts}");
    assert_eq!(counts.queries, sent as u64, "{counts}");
    assert_eq!(counts.queries, settled + counts.abandoned, "{counts}");
}

/// A course TS that reads `held` queries, says so on the first channel,
/// and answers them (and any later ones at once) only when the second
/// channel's sender is dropped: the test decides when the LS gets answers.
fn holding_ts(held: usize) -> (SocketAddr, Receiver<()>, Sender<()>) {
    let (got, got_them) = crossbeam_channel::bounded(1);
    let (release, released) = crossbeam_channel::bounded::<()>(0);
    let addr = fake_server(move |stream| {
        let mut writer = stream.try_clone().unwrap();
        let mut lines = BufReader::new(stream).lines().map_while(Result::ok);
        let names: Vec<String> = lines.by_ref().take(held).collect();
        if names.len() < held {
            return;
        }
        let _ = got.try_send(());
        let _ = released.recv_timeout(BOUND);
        for name in names.into_iter().chain(lines) {
            if writer
                .write_all(format!("{name} 10.0.0.1 A\n").as_bytes())
                .is_err()
            {
                return;
            }
        }
    });
    (addr, got_them, release)
}

/// `count` DNS queries for one name, length-prefixed, back to back.
fn pipelined_queries(count: u16) -> Vec<u8> {
    (0..count)
        .flat_map(|id| framed(&query(id, "www.example.com.", RecordType::A)))
        .collect()
}

#[test]
fn answers_to_a_dns_client_gone_leave_nothing_in_flight_and_count_no_rcode() {
    let sent = 2000;
    let (ts, got_them, release) = holding_ts(sent);
    let ls = DnsLs::start(&[ts], |o| o.dns_timeout = Duration::from_secs(3));
    let mut client = TcpStream::connect(ls.dns).unwrap();
    client.write_all(&pipelined_queries(sent as u16)).unwrap();
    got_them
        .recv_timeout(BOUND)
        .expect("every query reached the TS");
    // The client leaves without reading; the LS stops with every query in
    // flight, and the answers come only then: the first write reaches a
    // closed socket, the next ones fail.
    drop(client);
    ls.server.shutdown.trigger();
    drop(release);
    let counts = ls.stop();
    assert_eq!(counts.queries, sent as u64, "{counts}");
    assert_eq!(counts.in_flight, 0, "{counts}");
    assert_eq!(counts.queries, counts.settled(), "{counts}");
    assert!(counts.abandoned > 0, "{counts}");
    let by_rcode: u64 = counts.dns[..5].iter().sum();
    assert_eq!(
        by_rcode,
        counts.answered_total() + counts.misses() + counts.invalid + counts.busy,
        "DNS responses counted are those written: {counts}"
    );
}

#[test]
fn replies_to_a_course_client_gone_leave_nothing_in_flight() {
    let sent = 2000;
    let (ts, got_them, release) = holding_ts(sent);
    let ls = start_ls_observed(&[ts], Duration::from_secs(3), |_| {});
    // Long names: a worker's batch of replies spans several writes.
    let name = format!("{}.example.com", "a".repeat(60));
    let mut client = TcpStream::connect(ls.addr()).unwrap();
    client
        .write_all(format!("{name}\n").repeat(sent).as_bytes())
        .unwrap();
    got_them
        .recv_timeout(BOUND)
        .expect("every query reached the TS");
    drop(client);
    ls.server.shutdown.trigger();
    drop(release);
    let LsServer { server, ls } = ls;
    server.stop();
    let counts = ls.snapshot();
    assert_eq!(counts.queries, sent as u64, "{counts}");
    assert_eq!(counts.in_flight, 0, "{counts}");
    assert_eq!(counts.queries, counts.settled(), "{counts}");
    assert!(counts.abandoned > 0, "{counts}");
}

#[test]
fn dns_queries_left_unread_when_a_connection_ends_are_counted_as_abandoned() {
    // Eight in flight at a time: most queries wait in the LS's socket.
    let (sent, room) = (1000, 8);
    let (ts, got_them, release) = holding_ts(room);
    let ls = DnsLs::start(&[ts], |o| {
        o.max_inflight = room;
        o.dns_timeout = Duration::from_secs(3);
    });
    let mut client = TcpStream::connect(ls.dns).unwrap();
    client.write_all(&pipelined_queries(sent as u16)).unwrap();
    wait_until_delivered(&client);
    got_them
        .recv_timeout(BOUND)
        .expect("the first queries reached the TS");
    // Gone without reading: the LS's writes fail, and the connection ends
    // with the rest of the queries read but never answered.
    drop(client);
    drop(release);
    let counts = ls.stop();
    assert_eq!(counts.queries, sent as u64, "{counts}");
    assert_eq!(counts.in_flight, 0, "{counts}");
    assert_eq!(counts.queries, counts.settled(), "{counts}");
    // Writes the kernel takes before the client's reset arrives count as
    // answered; the rest (most) must be abandoned, not lost from the sum.
    assert!(counts.abandoned >= (sent / 2) as u64, "{counts}");
}
