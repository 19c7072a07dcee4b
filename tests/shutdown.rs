//! What a shutdown does to what clients already sent: a line cut short is
//! never a query, and every query that reached the LS is answered or
//! counted as abandoned.

mod support;

use std::io::Write;
use std::os::fd::AsRawFd;
use std::time::Instant;

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
