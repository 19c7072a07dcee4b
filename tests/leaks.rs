//! Clients that vanish leave nothing behind in the LS: no thread, no file
//! descriptor. Alone in its test binary, so that the process's thread and
//! descriptor counts are the LS's (the TSes run as separate processes).

mod support;

use std::io::Write;
use std::net::{Shutdown, TcpStream};

use support::*;

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn abrupt_disconnects_leak_no_threads_or_descriptors() {
    let (ts1, ts2) = course_tses();
    let ls = start_ls_observed(&[ts1.addr, ts2.addr], ms(200), |_| {});
    // One full session first, so that lazily created resources exist.
    assert_eq!(
        LineClient::connect(ls.addr()).ask("amazon.org"),
        "amazon.org 94.5.6.7 A"
    );
    assert!(ls.ls.stats().connections.wait_open_at_most(0, BOUND));
    let (threads_before, fds_before) = (threads(), fds());

    for cycle in 0..1000 {
        let mut stream = TcpStream::connect(ls.addr()).unwrap();
        match cycle % 4 {
            // A query in flight (a miss, so it waits for its deadline).
            0 => stream.write_all(b"nothinghere.com\n").unwrap(),
            // Replies left unread: closing then resets the connection.
            1 => {
                stream
                    .write_all(b"amazon.org\nrutgers.com\nwww.princeton.edu\n")
                    .unwrap();
                stream.set_read_timeout(Some(BOUND)).unwrap();
                let _ = std::io::Read::read(&mut stream, &mut [0u8; 1]);
            }
            // Half a query, then gone.
            2 => stream.write_all(b"amaz").unwrap(),
            // Says nothing at all; closes its sending side first.
            _ => stream.shutdown(Shutdown::Write).unwrap(),
        }
        drop(stream);
    }

    assert!(
        ls.ls.stats().connections.wait_open_at_most(0, BOUND),
        "sessions still open"
    );
    assert_eq!(threads(), threads_before, "threads left behind");
    assert_eq!(fds(), fds_before, "file descriptors left behind");
    let counts = ls.ls.snapshot();
    assert_eq!(counts.accepted, 1001);
    assert_eq!(
        counts.queries,
        counts.answered_total() + counts.misses() + counts.invalid + counts.abandoned
    );
}
