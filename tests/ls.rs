//! The LS and TS working together, in-process on loopback.

mod support;

use std::time::Instant;

use dnslb::framing::Framing;
use dnslb::ts::TsOptions;
use dnslb::wire::Dialect;
use support::*;

const TS1: &str = "amazon.org 94.5.6.7 A\nrutgers.com 172.34.4.6 A\n";
const TS2: &str = "www.princeton.edu 128.1.1.4 A\nGoogle.Site 46.1.3.7 A\n";

#[test]
fn smoke() {
    let (ts1, ts2) = (start_ts(TS1), start_ts(TS2));
    let ls = start_ls(&[ts1.addr, ts2.addr], ms(200));
    let mut client = LineClient::connect(ls.addr);
    assert_eq!(client.ask("rutgers.com"), "rutgers.com 172.34.4.6 A");
    assert_eq!(
        client.ask("www.princeton.edu"),
        "www.princeton.edu 128.1.1.4 A"
    );
    assert_eq!(
        client.ask("nothinghere.com"),
        "nothinghere.com - Error:HOST NOT FOUND"
    );
}

#[test]
fn dialect_2022_answers_with_in_and_misses_with_timed_out() {
    let options = TsOptions {
        dialect: Dialect::Y2022,
        ..TsOptions::default()
    };
    let (ts1, ts2) = (start_ts_with(TS1, options), start_ts_with(TS2, options));
    let ls = start_ls_with(&[ts1.addr, ts2.addr], ms(200), |o| {
        o.dialect = Dialect::Y2022
    });
    let mut client = LineClient::connect(ls.addr);
    assert_eq!(client.ask("amazon.org"), "amazon.org 94.5.6.7 A IN");
    assert_eq!(client.ask("google.site"), "Google.Site 46.1.3.7 A IN");
    assert_eq!(client.ask("nothinghere.com"), "nothinghere.com - TIMED OUT");
}

#[test]
fn lookup_is_case_insensitive_and_answers_with_table_spelling() {
    let (ts1, ts2) = (start_ts(TS1), start_ts(TS2));
    let ls = start_ls(&[ts1.addr, ts2.addr], ms(200));
    let mut client = LineClient::connect(ls.addr);
    assert_eq!(client.ask("GOOGLE.site"), "Google.Site 46.1.3.7 A");
    assert_eq!(client.ask("  AMAZON.ORG\r"), "amazon.org 94.5.6.7 A");
    // The miss line repeats the query as sent, trimmed.
    assert_eq!(
        client.ask(" NoThing.com "),
        "NoThing.com - Error:HOST NOT FOUND"
    );
}

#[test]
fn ts_stays_silent_on_names_it_does_not_hold() {
    let ts = start_ts(TS1);
    let mut direct = LineClient::connect(ts.addr);
    direct.send("www.princeton.edu");
    direct.send("not.here");
    direct.send("rutgers.com");
    // Had the TS answered either miss, that answer would come first.
    assert_eq!(direct.recv(), "rutgers.com 172.34.4.6 A");
    direct.finish_sending();
    assert_eq!(direct.try_recv(), None);
}

#[test]
fn ts_answers_a_name_with_several_addresses_in_turn() {
    let ts = start_ts("rr.com 10.0.0.1 A\nRR.com 10.0.0.2 A\nsolo.com 10.0.0.9 A\n");
    let mut direct = LineClient::connect(ts.addr);
    let answers: Vec<String> = (0..4).map(|_| direct.ask("rr.com")).collect();
    assert_eq!(
        answers,
        [
            "rr.com 10.0.0.1 A",
            "RR.com 10.0.0.2 A",
            "rr.com 10.0.0.1 A",
            "RR.com 10.0.0.2 A"
        ]
    );
    assert_eq!(direct.ask("Solo.com"), "solo.com 10.0.0.9 A");
    assert_eq!(direct.ask("Solo.com"), "solo.com 10.0.0.9 A");
}

#[test]
fn miss_is_answered_at_the_timeout() {
    let ts = start_ts(TS1);
    let ls = start_ls(&[ts.addr], ms(200));
    let mut client = LineClient::connect(ls.addr);
    let started = Instant::now();
    assert_eq!(
        client.ask("nothinghere.com"),
        "nothinghere.com - Error:HOST NOT FOUND"
    );
    let waited = started.elapsed();
    assert!(
        waited >= ms(200),
        "answered the miss early, after {waited:?}"
    );
    assert!(
        waited < ms(2000),
        "answered the miss late, after {waited:?}"
    );
}

#[test]
fn late_reply_is_not_relayed_to_next_query() {
    // The lagging TS answers "a.com" only when "b.com" arrives, while the LS
    // waits for b.com; and answers "b.com" while it waits for "c.com".
    let ts = lagging_ts();
    let ls = start_ls(&[ts], ms(150));
    let mut client = LineClient::connect(ls.addr);
    assert_eq!(client.ask("a.com"), "a.com - Error:HOST NOT FOUND");
    assert_eq!(client.ask("b.com"), "b.com - Error:HOST NOT FOUND");
    assert_eq!(client.ask("c.com"), "c.com - Error:HOST NOT FOUND");
}

#[test]
fn overlapping_tables_give_exactly_one_reply_per_query() {
    let shared = "dup.com 1.1.1.1 A\n";
    let ts1 = start_ts(&format!("{shared}one.com 1.0.0.1 A\n"));
    let ts2 = start_ts(&format!("{shared}two.com 2.0.0.2 A\n"));
    let ls = start_ls(&[ts1.addr, ts2.addr], ms(200));
    let mut client = LineClient::connect(ls.addr);
    for _ in 0..20 {
        client.send("dup.com");
        client.send("two.com");
        client.send("one.com");
    }
    client.finish_sending();
    for _ in 0..20 {
        assert_eq!(client.recv(), "dup.com 1.1.1.1 A");
        assert_eq!(client.recv(), "two.com 2.0.0.2 A");
        assert_eq!(client.recv(), "one.com 1.0.0.1 A");
    }
    assert_eq!(client.try_recv(), None, "a second reply was relayed");
}

#[test]
fn fifty_concurrent_clients_get_their_own_answers() {
    const CLIENTS: usize = 50;
    const QUERIES: usize = 200;
    let table = |ts: usize| -> String {
        (0..100)
            .map(|i| format!("host{i}.ts{ts}.test 10.{ts}.0.{i} A\n"))
            .collect()
    };
    let (ts1, ts2) = (start_ts(&table(1)), start_ts(&table(2)));
    let ls = start_ls(&[ts1.addr, ts2.addr], ms(2000));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let addr = ls.addr;
            std::thread::spawn(move || {
                let mut client = LineClient::connect(addr);
                for q in 0..QUERIES {
                    let (ts, i) = (1 + (c + q) % 2, (c * 7 + q) % 100);
                    let name = format!("host{i}.ts{ts}.test");
                    assert_eq!(client.ask(&name), format!("{name} 10.{ts}.0.{i} A"));
                }
            })
        })
        .collect();
    for client in clients {
        client.join().expect("every client got its own answers");
    }
}

#[test]
fn hostile_lines_are_each_answered_and_the_connection_survives() {
    let ts = start_ts(TS1);
    let ls = start_ls(&[ts.addr], ms(200));
    let mut client = LineClient::connect(ls.addr);
    // The LS reads the long line as it streams, so this write completes.
    let mut hostile = vec![b'x'; 200 * 1024];
    hostile.extend_from_slice(b"\n\xff\xfe.com\n\n   \r\nbad name!\nrutgers.com\n");
    client.send_raw(&hostile);
    assert_eq!(client.recv(), "- Error:QUERY TOO LONG");
    assert_eq!(client.recv(), "- Error:INVALID UTF-8");
    assert_eq!(client.recv(), "- Error:EMPTY QUERY");
    assert_eq!(client.recv(), "- Error:EMPTY QUERY");
    assert_eq!(client.recv(), "bad name! - Error:INVALID HOSTNAME");
    assert_eq!(client.recv(), "rutgers.com 172.34.4.6 A");
    assert_eq!(client.ask("amazon.org"), "amazon.org 94.5.6.7 A");
}

#[test]
fn unreachable_ts_does_not_stop_the_ls() {
    let ts = start_ts(TS1);
    let ls = start_ls(&[closed_port(), ts.addr], ms(200));
    let mut client = LineClient::connect(ls.addr);
    assert_eq!(client.ask("amazon.org"), "amazon.org 94.5.6.7 A");
    assert_eq!(
        client.ask("www.princeton.edu"),
        "www.princeton.edu - Error:HOST NOT FOUND"
    );
}

#[test]
fn miss_is_immediate_when_every_ts_is_down() {
    let ls = start_ls(&[closed_port(), closed_port()], ms(5000));
    let mut client = LineClient::connect(ls.addr);
    let started = Instant::now();
    assert_eq!(
        client.ask("amazon.org"),
        "amazon.org - Error:HOST NOT FOUND"
    );
    assert!(
        started.elapsed() < ms(2000),
        "waited {:?} for TSes that are down",
        started.elapsed()
    );
}

#[test]
fn ts_that_closes_mid_session_stops_being_waited_on() {
    // Accepts, reads one query, then closes without answering.
    let ts = fake_server(|stream| {
        let mut byte = [0u8; 1];
        let _ = std::io::Read::read(&mut &stream, &mut byte);
    });
    let ls = start_ls(&[ts], ms(5000));
    let mut client = LineClient::connect(ls.addr);
    let started = Instant::now();
    assert_eq!(client.ask("a.com"), "a.com - Error:HOST NOT FOUND");
    assert_eq!(client.ask("b.com"), "b.com - Error:HOST NOT FOUND");
    assert!(
        started.elapsed() < ms(2000),
        "waited {:?} on a closed TS",
        started.elapsed()
    );
}

#[test]
fn any_number_of_tses_is_supported() {
    let servers: Vec<_> = (1..=3)
        .map(|i| start_ts(&format!("only{i}.com 10.0.0.{i} A\n")))
        .collect();
    let addrs: Vec<_> = servers.iter().map(|s| s.addr).collect();
    let ls = start_ls(&addrs, ms(200));
    let mut client = LineClient::connect(ls.addr);
    for i in 1..=3 {
        assert_eq!(
            client.ask(&format!("only{i}.com")),
            format!("only{i}.com 10.0.0.{i} A")
        );
    }
    let single = start_ls(&addrs[..1], ms(200));
    assert_eq!(
        LineClient::connect(single.addr).ask("only1.com"),
        "only1.com 10.0.0.1 A"
    );
}

#[test]
fn course_style_client_gets_bare_replies() {
    let (ts1, ts2) = (start_ts(TS1), start_ts(TS2));
    let ls = start_ls(&[ts1.addr, ts2.addr], ms(200));
    let mut client = BareClient::connect(ls.addr);
    assert_eq!(
        client.ask("www.princeton.edu"),
        "www.princeton.edu 128.1.1.4 A"
    );
    assert_eq!(
        client.ask("nothinghere.com"),
        "nothinghere.com - Error:HOST NOT FOUND"
    );
    assert_eq!(client.ask("amazon.org"), "amazon.org 94.5.6.7 A");
}

#[test]
fn course_style_ts_servers_work_behind_the_ls() {
    // TS1 answers every name asked but one; TS2 holds none of them, so its
    // silence never costs an answer even when it reads two queries in one
    // recv() (docs/PROTOCOL.md, framing).
    let ts1 = course_ts(&[
        ("amazon.org", "94.5.6.7"),
        ("www.princeton.edu", "128.1.1.4"),
    ]);
    let ts2 = course_ts(&[("other.org", "1.1.1.1")]);
    let ls = start_ls_with(&[ts1, ts2], ms(200), |o| o.ts_framing = Framing::Bare);
    let mut client = LineClient::connect(ls.addr);
    assert_eq!(
        client.ask("www.princeton.edu"),
        "www.princeton.edu 128.1.1.4 A"
    );
    assert_eq!(
        client.ask("nothinghere.com"),
        "nothinghere.com - Error:HOST NOT FOUND"
    );
    assert_eq!(client.ask("Amazon.org"), "amazon.org 94.5.6.7 A");
}

#[test]
fn dnslb_ts_answers_a_course_style_ls() {
    let ts = start_ts(TS2);
    let mut course_ls = BareClient::connect(ts.addr);
    assert_eq!(course_ls.ask("google.site"), "Google.Site 46.1.3.7 A");
    assert_eq!(
        course_ls.ask("www.princeton.edu"),
        "www.princeton.edu 128.1.1.4 A"
    );
}

#[test]
fn shutdown_answers_the_query_in_flight_then_closes() {
    let ts = start_ts(TS1);
    let ls = start_ls(&[ts.addr], ms(300));
    let mut client = LineClient::connect(ls.addr);
    assert_eq!(client.ask("amazon.org"), "amazon.org 94.5.6.7 A");
    client.send("nothinghere.com");
    let idle = LineClient::connect(ls.addr);
    // The miss takes 300 ms; stop the LS while it waits.
    let stopper = std::thread::spawn(move || ls.stop());
    assert_eq!(client.recv(), "nothinghere.com - Error:HOST NOT FOUND");
    stopper.join().unwrap();
    assert_eq!(client.try_recv(), None);
    drop(idle);
}

#[test]
fn shutdown_is_prompt_even_with_a_client_that_never_reads() {
    let ts = start_ts(TS1);
    let ls = start_ls(&[ts.addr], ms(200));
    let client = LineClient::connect(ls.addr);
    // Queries until the LS stops reading them: its worker is then blocked
    // writing replies this client never reads.
    let mut writer = client.writer().try_clone().unwrap();
    writer.set_write_timeout(Some(ms(500))).unwrap();
    let batch = "amazon.org\n".repeat(10_000);
    let blocked =
        (0..1000).any(|_| std::io::Write::write_all(&mut writer, batch.as_bytes()).is_err());
    assert!(blocked, "the LS kept reading a client that reads nothing");
    let started = Instant::now();
    ls.stop();
    assert!(
        started.elapsed() < ms(3000),
        "stopping took {:?}",
        started.elapsed()
    );
}

#[test]
fn auto_framing_never_merges_bare_queries_sent_back_to_back() {
    // A fast course-style TS answers at once, so the LS sends the next query
    // while the dnslb TS (auto framing) is still deciding what its peer
    // sends: the two reads must stay two queries.
    let fast = course_ts(&[("www.princeton.edu", "128.1.1.4")]);
    let dnslb_ts = start_ts("rutgers.com 172.34.4.6 A\namazon.org 94.5.6.7 A\n");
    let ls = start_ls_with(&[fast, dnslb_ts.addr], ms(2000), |o| {
        o.ts_framing = Framing::Bare;
    });
    for run in 0..30 {
        // A new session each run: a new connection to detect on.
        let mut client = LineClient::connect(ls.addr);
        for name in ["www.princeton.edu", "rutgers.com"] {
            let reply = client.ask(name);
            assert!(reply.starts_with(&format!("{name} ")), "run {run}: {reply}");
            assert!(!reply.contains("NOT FOUND"), "run {run}: {reply}");
        }
    }
}

#[test]
fn a_ts_slow_to_complete_the_handshake_still_gets_the_first_query() {
    use std::io::{BufRead, BufReader, Write};
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;
    use std::thread;

    // TS1's accept queue holds one connection (backlog 0) and is full: the
    // SYN of the LS's link is dropped, and only its retransmission, about
    // 1 s later, connects. Meanwhile the client's first query waits on
    // that link; no other TS holds the name.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    // SAFETY: listen(2) on a socket this test owns, to shorten its backlog.
    let rc = unsafe { libc::listen(listener.as_raw_fd(), 0) };
    assert_eq!(rc, 0, "listen: {}", std::io::Error::last_os_error());
    let slow_ts = listener.local_addr().unwrap();
    let filler = TcpStream::connect(slow_ts).unwrap();
    thread::spawn(move || {
        // The fault: the TS takes 300 ms to accept; nothing waits on this.
        thread::sleep(ms(300));
        for stream in listener.incoming().flatten() {
            thread::spawn(move || {
                let mut writer = stream.try_clone().unwrap();
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { return };
                    if line.trim() == "amazon.org" {
                        let _ = writer.write_all(b"amazon.org 94.5.6.7 A\n");
                    }
                }
            });
        }
    });
    let ts2 = start_ts(TS2);
    let ls = start_ls(&[slow_ts, ts2.addr], ms(4000));
    let mut client = LineClient::connect(ls.addr);
    let started = Instant::now();
    assert_eq!(client.ask("amazon.org"), "amazon.org 94.5.6.7 A");
    // Otherwise the query did not wait on a connecting link.
    assert!(
        started.elapsed() >= ms(500),
        "answered in {:?}: the handshake was not slow",
        started.elapsed()
    );
    drop(filler);
}
