//! Peers that stop reading: a TS whose socket takes no more queries, a client
//! that pauses, a TS that answers misses and then goes silent. None of them
//! may hold up a session or turn an answer that came in time into a miss.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::thread;
use std::time::{Duration, Instant};

use dnslb::ts::TsOptions;
use support::*;

/// `count` distinct names of about 200 bytes, so that a few thousand queries
/// fill socket buffers.
fn long_names(count: usize) -> Vec<String> {
    let label = "abcdefghij".repeat(6);
    (0..count)
        .map(|i| format!("n{i}.{label}.{label}.{label}.example.com"))
        .collect()
}

fn table_of(names: &[String]) -> String {
    names
        .iter()
        .enumerate()
        .map(|(i, name)| format!("{name} 10.0.{}.{} A\n", i / 250, i % 250))
        .collect()
}

/// Caps a socket's receive buffer at `size` bytes, so that a peer writing
/// to it blocks once that much is unread.
fn shrink_receive_buffer(fd: i32, size: libc::c_int) {
    // SAFETY: a valid descriptor and a correctly sized option value.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt(SO_RCVBUF)");
}

/// A TS that accepts connections and never reads from them.
fn never_reading_ts() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    shrink_receive_buffer(listener.as_raw_fd(), 4096);
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    addr
}

/// Sends `count` queries cycling through `names` on `client`'s connection
/// from a thread of its own; returns the names in the order sent.
fn send_in_background(client: &LineClient, names: &[String], count: usize) -> Vec<String> {
    let order: Vec<String> = names.iter().cycle().take(count).cloned().collect();
    let mut writer = client.writer().try_clone().unwrap();
    let batch: Vec<u8> = order
        .iter()
        .flat_map(|n| format!("{n}\n").into_bytes())
        .collect();
    thread::spawn(move || {
        let _ = writer.write_all(&batch);
    });
    order
}

#[test]
fn smoke() {
    let names = long_names(3);
    let ts = start_ts(&table_of(&names));
    let ls = start_ls(&[ts.addr], ms(500));
    let mut client = LineClient::connect(ls.addr);
    assert!(client.ask(&names[1]).starts_with(&names[1]));
}

#[test]
fn a_ts_that_never_reads_costs_no_answer_and_stalls_no_session() {
    let names = long_names(200);
    let live = start_ts(&table_of(&names));
    let ls = start_ls_observed(&[never_reading_ts(), live.addr], ms(2000), |_| {});
    let client = LineClient::connect(ls.addr());
    // About 4 MB of queries: far more than the stuck TS's buffers hold.
    let order = send_in_background(&client, &names, 20_000);
    let mut replies = BufReader::new(client.writer().try_clone().unwrap());
    let mut longest_gap = Duration::ZERO;
    let mut last = Instant::now();
    for (i, name) in order.iter().enumerate() {
        let mut line = String::new();
        replies.read_line(&mut line).unwrap();
        longest_gap = longest_gap.max(last.elapsed());
        last = Instant::now();
        assert!(
            line.starts_with(&format!("{name} 10.0.")),
            "reply {i}: {line:?}"
        );
    }
    drop((client, replies));
    assert!(
        longest_gap < ms(1000),
        "a session stalled {longest_gap:?} on a TS that does not read"
    );
    let counts = ls.settled_snapshot();
    assert_eq!(counts.misses(), 0);
    assert!(
        counts.transitions >= 1,
        "the stuck TS was never marked down"
    );
}

#[test]
fn a_client_that_pauses_gets_every_answer_that_came_in_time() {
    let names = long_names(200);
    let ts = start_ts(&table_of(&names));
    let timeout = ms(600);
    let ls = start_ls_observed(&[ts.addr], timeout, |_| {});
    let client = LineClient::connect(ls.addr());
    shrink_receive_buffer(client.writer().as_raw_fd(), 64 * 1024);
    let order = send_in_background(&client, &names, 20_000);
    let mut replies = BufReader::new(client.writer().try_clone().unwrap());
    for (i, name) in order.iter().enumerate() {
        if i == 100 {
            // The fault under test: the client stops reading for more than
            // the timeout while the TS keeps answering.
            thread::sleep(timeout * 3);
        }
        let mut line = String::new();
        replies.read_line(&mut line).unwrap();
        assert!(
            line.starts_with(&format!("{name} 10.0.")),
            "reply {i}: {line:?}"
        );
    }
    drop((client, replies));
    assert_eq!(ls.settled_snapshot().misses(), 0);
}

/// A TS that answers its first query `NOT FOUND`, as `--answer-misses`
/// does, then reads on and never answers again (hung, or cut off).
fn answers_misses_then_goes_silent() -> SocketAddr {
    fake_server(|stream| {
        let mut writer = stream.try_clone().unwrap();
        let mut lines = BufReader::new(stream).lines();
        if let Some(Ok(line)) = lines.next() {
            let _ = writer.write_all(format!("{} - NOT FOUND\n", line.trim()).as_bytes());
        }
        for _ in lines {}
    })
}

#[test]
fn a_ts_that_answers_misses_and_goes_silent_is_taken_out_of_use() {
    let live = start_ts_with(
        "www.princeton.edu 128.1.1.4 A\n",
        TsOptions {
            answer_misses: true,
            ..TsOptions::default()
        },
    );
    let timeout = ms(1000);
    let ls = start_ls_observed(
        &[answers_misses_then_goes_silent(), live.addr],
        timeout,
        |_| {},
    );
    let mut client = LineClient::connect(ls.addr());
    // Both TSes say NOT FOUND: a miss at once.
    assert_eq!(client.ask("a.com"), "a.com - Error:HOST NOT FOUND");
    // The first TS is silent now: this miss takes the whole timeout, and
    // the silence of a TS that answers misses takes it out of use.
    let started = Instant::now();
    assert_eq!(client.ask("b.com"), "b.com - Error:HOST NOT FOUND");
    assert!(started.elapsed() >= timeout);
    assert_eq!(ls.ls.snapshot().transitions, 1, "the silent TS is not down");
    // Not asked any more: the live TS's word settles a miss at once.
    let started = Instant::now();
    assert_eq!(client.ask("c.com"), "c.com - Error:HOST NOT FOUND");
    assert!(
        started.elapsed() < timeout,
        "still waiting on the silent TS"
    );
    assert_eq!(
        client.ask("www.princeton.edu"),
        "www.princeton.edu 128.1.1.4 A"
    );
}
