//! The UDP ping system end to end on loopback: echo servers, the load
//! balancer, the ping client, the real binary and the lab's Python programs.

mod udp_support;

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use dnslb::udp::flood::{self, FloodOptions};
use dnslb::udp::loss::{Dropper, Loss};
use dnslb::udp::ping::{self, PingOptions, PingSummary};

use udp_support::*;

fn ping_through(target: std::net::SocketAddr, options: PingOptions) -> (PingSummary, String) {
    let mut out = Vec::new();
    let summary = ping::run(target, "target", options, &mut out).expect("ping runs");
    (summary, String::from_utf8(out).expect("UTF-8 output"))
}

#[test]
fn smoke() {
    let backends: Vec<_> = (0..3).map(|_| lossless_echo()).collect();
    let addrs: Vec<_> = backends.iter().map(|b| b.addr).collect();
    let (lb, stats) = load_balancer(&addrs, |_| {});
    let options = PingOptions {
        count: 3,
        ..PingOptions::default()
    };
    let (summary, out) = ping_through(lb.addr, options);
    assert_eq!((summary.transmitted, summary.received), (3, 3), "{out}");
    assert!(out.contains(" bytes from "), "{out}");
    assert!(
        out.contains("3 packets transmitted, 3 received, 0% packet loss"),
        "{out}"
    );
    // Counters are bumped after each send: read them once the LB has stopped.
    lb.stop_within(ms(2000));
    let counted = stats.snapshot();
    assert_eq!((counted.forwarded, counted.relayed), (3, 3));
}

#[test]
fn rotation_is_one_cycle_across_backends_and_clients() {
    let backends = [
        tagged_backend("A"),
        tagged_backend("B"),
        tagged_backend("C"),
    ];
    let (lb, _) = load_balancer(&backends, |_| {});
    let (one, two) = (Client::new(lb.addr), Client::new(lb.addr));
    let mut answered_by = Vec::new();
    // Clients interleave irregularly; the rotation must not care who sends.
    for (i, client) in [&one, &two, &two, &one, &one, &one, &two, &one, &two]
        .into_iter()
        .enumerate()
    {
        let reply = client.ask(&format!("m{i}"), ms(2000)).expect("a reply");
        let (tag, echoed) = reply.split_once(' ').expect("tagged reply");
        assert_eq!(echoed, format!("m{i}"), "the reply went to its sender");
        answered_by.push(tag.to_string());
    }
    assert_eq!(answered_by.join(""), "ABCABCABC");
}

#[test]
fn replies_reach_the_client_that_sent_the_request() {
    let backends: Vec<_> = (0..3).map(|_| lossless_echo()).collect();
    let addrs: Vec<_> = backends.iter().map(|b| b.addr).collect();
    let (lb, stats) = load_balancer(&addrs, |_| {});
    let clients = 4;
    let start = Arc::new(Barrier::new(clients));
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let start = Arc::clone(&start);
            let addr = lb.addr;
            thread::spawn(move || {
                let client = Client::new(addr);
                start.wait();
                let sent: HashSet<String> = (0..30).map(|i| format!("client{c} ping{i}")).collect();
                for message in &sent {
                    client.send(message);
                }
                let mut got = HashSet::new();
                while got.len() < sent.len() {
                    let reply = client.recv(ms(3000)).expect("every reply arrives");
                    assert!(got.insert(reply));
                }
                let expected: HashSet<String> = sent.iter().map(|m| m.to_uppercase()).collect();
                assert_eq!(got, expected, "client {c} got exactly its own replies");
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("client thread");
    }
    assert_eq!(stats.snapshot().sessions, clients);
}

#[test]
fn silent_backend_delays_nothing_else() {
    // A backend that never answers: its datagrams just queue up.
    let silent = loopback();
    let echoes = [lossless_echo(), lossless_echo()];
    let backends = [echoes[0].addr, silent.local_addr().unwrap(), echoes[1].addr];
    let (lb, _) = load_balancer(&backends, |_| {});
    let client = Client::new(lb.addr);
    let started = Instant::now();
    for i in 0..9 {
        client.send(&format!("ping {i}"));
    }
    let mut got = BTreeSet::new();
    while got.len() < 6 {
        let reply = client
            .recv(ms(2000))
            .expect("the live backends' replies arrive");
        got.insert(reply);
    }
    let elapsed = started.elapsed();
    // Datagrams 1, 4 and 7 went to the silent backend.
    let expected: BTreeSet<String> = [0, 2, 3, 5, 6, 8]
        .iter()
        .map(|i| format!("PING {i}"))
        .collect();
    assert_eq!(got, expected);
    // A serial balancer waits 1 s on the first silent datagram alone.
    assert!(elapsed < ms(900), "six replies took {elapsed:?}");
}

#[test]
fn dead_backend_is_skipped_then_retried_and_used_again_once_back() {
    let echoes = [lossless_echo(), lossless_echo()];
    let dead = dead_port();
    let (lb, stats) = load_balancer(&[echoes[0].addr, dead, echoes[1].addr], |o| {
        // Long enough that the six pings below finish before the retry,
        // even on a loaded machine.
        o.fail_timeout = ms(2000);
    });
    let client = Client::new(lb.addr);
    // The first round sends one datagram to the dead backend; its ICMP port
    // unreachable marks it down.
    assert!(client.ask("to server1", ms(2000)).is_some());
    client.send("to the dead one");
    assert_eq!(
        client.ask("to server3", ms(2000)).as_deref(),
        Some("TO SERVER3")
    );
    stats
        .wait_until(ms(2000), |s| s.failures.get(1) == Some(&1))
        .expect("the dead backend is marked down");
    // While it is skipped, every ping is answered by the live ones.
    for i in 0..6 {
        assert!(
            client.ask(&format!("skip {i}"), ms(1000)).is_some(),
            "ping {i} answered while the dead backend is skipped"
        );
    }
    // After the fail timeout it is retried (and refuses again).
    let retried = keep_pinging(&client, || stats.snapshot().failures.get(1) >= Some(&2));
    assert!(
        retried,
        "the dead backend was retried after its fail timeout"
    );
    // Once something listens there again, the next retry brings it back.
    let socket = std::net::UdpSocket::bind(dead).expect("rebind the dead port");
    let _revived = echo_server_on(socket, Loss::NONE, 1);
    let back = keep_pinging(&client, || stats.snapshot().down.get(1) == Some(&false));
    assert!(back, "the backend is used again once it answers");
}

/// Pings through `client` until `done` holds, for at most 5 s.
fn keep_pinging(client: &Client, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut i = 0;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        i += 1;
        let _ = client.ask(&format!("retry {i}"), ms(50));
    }
    done()
}

#[test]
fn expired_sessions_free_their_threads_and_sockets() {
    let backends: Vec<_> = (0..3).map(|_| lossless_echo()).collect();
    let addrs: Vec<_> = backends.iter().map(|b| b.addr).collect();
    let (lb, stats) = load_balancer(&addrs, |o| o.session_timeout = ms(400));
    let clients = [Client::new(lb.addr), Client::new(lb.addr)];
    for client in &clients {
        assert!(client.ask("hello", ms(2000)).is_some());
    }
    let opened = Instant::now();
    let s = stats.snapshot();
    assert_eq!((s.sessions, s.readers), (2, 6));
    let freed = stats
        .wait_until(ms(3000), |s| s.sessions == 0 && s.readers == 0)
        .expect("idle sessions expire and their readers end");
    assert_eq!(freed.readers, 0);
    assert!(opened.elapsed() >= ms(300), "expired before the timeout");
    // A client that comes back gets a new session.
    assert_eq!(clients[0].ask("again", ms(2000)).as_deref(), Some("AGAIN"));
    assert_eq!(stats.snapshot().sessions, 1);
}

#[test]
fn past_the_session_limit_new_clients_wait_for_an_expiry() {
    let echo = lossless_echo();
    let (lb, stats) = load_balancer(&[echo.addr], |o| {
        o.max_sessions = 1;
        o.session_timeout = ms(300);
    });
    let (first, second) = (Client::new(lb.addr), Client::new(lb.addr));
    assert!(first.ask("first", ms(2000)).is_some());
    assert_eq!(
        second.ask("second", ms(100)),
        None,
        "no room for a second session"
    );
    assert!(
        first.ask("first again", ms(2000)).is_some(),
        "the open session carries on"
    );
    stats
        .wait_until(ms(3000), |s| s.sessions == 0)
        .expect("the session expires");
    assert_eq!(second.ask("second", ms(2000)).as_deref(), Some("SECOND"));
}

#[test]
fn datagrams_up_to_64_kib_are_forwarded_whole() {
    let echo = lossless_echo();
    let (lb, _) = load_balancer(&[echo.addr], |_| {});
    let client = Client::new(lb.addr);
    // 65507 bytes: the largest UDP payload over IPv4.
    let sizes = [0, 1, 1472, 1473, 9000, 65_507];
    let mut buf = vec![0; 70_000];
    for size in sizes {
        let data: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
        client.socket.send(&data).expect("send");
        let len = client
            .recv_bytes(&mut buf, ms(2000))
            .expect("the echo comes back");
        assert_eq!(len, size);
        assert_eq!(
            buf[..len],
            data.to_ascii_uppercase()[..],
            "{size} bytes intact"
        );
    }
}

/// Which of `count` datagrams sent one by one to an echo server with `loss`
/// and `seed` come back, as documented by the drop rule.
fn kept(loss: Loss, seed: u64, count: usize) -> BTreeSet<usize> {
    let mut dropper = Dropper::new(loss, seed);
    (0..count).filter(|_| !dropper.drop_next()).collect()
}

/// Sends `count` numbered datagrams at once and collects the echoes until
/// `expected` have come and then 100 ms pass without another.
fn echoed(target: std::net::SocketAddr, count: usize, expected: usize) -> BTreeSet<usize> {
    let client = Client::new(target);
    for i in 0..count {
        client.send(&i.to_string());
    }
    let mut got = BTreeSet::new();
    while got.len() < expected {
        let reply = client.recv(ms(2000)).expect("an echo");
        got.insert(reply.parse().expect("a number"));
    }
    if let Some(extra) = client.recv(ms(100)) {
        panic!("unexpected extra echo {extra:?}");
    }
    got
}

#[test]
fn seed_makes_the_loss_pattern_reproducible() {
    let count = 33;
    let expected = kept(Loss::COURSE, 99, count);
    assert!((15..30).contains(&expected.len()), "a plausible 4/11 loss");
    // The same seed twice, once in-process and once through the binary's --seed.
    let server = echo_server(Loss::COURSE, 99);
    assert_eq!(echoed(server.addr, count, expected.len()), expected);
    let binary = dnslb_server(&[
        "udp-echo",
        "0",
        "--bind",
        "127.0.0.1",
        "--seed",
        "99",
        "--loss",
        "4/11",
    ]);
    let addr = binary.addr.expect("listening address");
    assert_eq!(echoed(addr, count, expected.len()), expected);
    // Another seed, another pattern.
    let other = kept(Loss::COURSE, 100, count);
    assert_ne!(other, expected);
    let server = echo_server(Loss::COURSE, 100);
    assert_eq!(echoed(server.addr, count, other.len()), other);
}

#[test]
fn ping_statistics_match_a_known_loss_pattern() {
    let seed = 7;
    let count = 11;
    let replied = kept(Loss::COURSE, seed, count);
    let server = echo_server(Loss::COURSE, seed);
    let options = PingOptions {
        count: count as u64,
        timeout: ms(250),
        interval: None,
        report_lost: true,
    };
    let (summary, out) = ping_through(server.addr, options);
    let lost = count - replied.len();
    assert_eq!(summary.received as usize, replied.len(), "{out}");
    assert_eq!(summary.transmitted as usize, count);
    assert_eq!(out.matches("no answer yet for seq=").count(), lost, "{out}");
    assert_eq!(out.matches(" bytes from ").count(), replied.len(), "{out}");
    for seq in &replied {
        assert!(
            out.contains(&format!(": seq={} time=", seq + 1)),
            "ping {} answered\n{out}",
            seq + 1
        );
    }
    let percent = lost as f64 * 100.0 / count as f64;
    let loss = format!("{percent:.4}");
    let loss = loss.trim_end_matches('0').trim_end_matches('.');
    assert!(
        out.contains(&format!(
            "{count} packets transmitted, {} received, {loss}% packet loss",
            replied.len()
        )),
        "{out}"
    );
    assert!(out.contains("rtt min/avg/max/mdev = "), "{out}");
}

#[test]
fn late_reply_is_reported_late_never_counted_for_the_next_ping() {
    // Holds the reply to ping 2 until ping 3 arrives, then sends both.
    let server = loopback();
    let addr = server.local_addr().unwrap();
    thread::spawn(move || {
        let mut buf = [0; 1024];
        let mut held = None;
        for _ in 0..3 {
            let Ok((len, peer)) = server.recv_from(&mut buf) else {
                return;
            };
            let reply = buf[..len].to_ascii_uppercase();
            match ping::reply_seq(&reply) {
                Some(2) => held = Some(reply),
                Some(3) => {
                    let _ = server.send_to(&held.take().unwrap(), peer);
                    let _ = server.send_to(&reply, peer);
                }
                _ => {
                    let _ = server.send_to(&reply, peer);
                }
            }
        }
    });
    let options = PingOptions {
        count: 3,
        timeout: ms(200),
        interval: None,
        report_lost: true,
    };
    let (summary, out) = ping_through(addr, options);
    let lines: Vec<&str> = out.lines().collect();
    let reply = |line: &str, seq: u64| {
        line.starts_with("15 bytes from ") && line.contains(&format!(": seq={seq} time="))
    };
    assert!(reply(lines[1], 1) && lines[1].ends_with(" ms"), "{out}");
    assert_eq!(lines[2], "no answer yet for seq=2", "{out}");
    assert!(
        reply(lines[3], 2) && lines[3].ends_with(" ms (late)"),
        "{out}"
    );
    assert!(reply(lines[4], 3) && lines[4].ends_with(" ms"), "{out}");
    assert_eq!((summary.received, summary.late), (2, 1), "{out}");
    assert!(
        out.contains("3 packets transmitted, 2 received, +1 late, 33.3333% packet loss"),
        "{out}"
    );
}

#[test]
fn flood_counts_every_echo_through_the_load_balancer() {
    let backends: Vec<_> = (0..3).map(|_| lossless_echo()).collect();
    let addrs: Vec<_> = backends.iter().map(|b| b.addr).collect();
    let (lb, stats) = load_balancer(&addrs, |_| {});
    let options = FloodOptions {
        count: 3000,
        window: 16,
        timeout: ms(1000),
        ..FloodOptions::default()
    };
    let report = flood::run(lb.addr, options).expect("flood runs");
    assert_eq!(report.sent, 3000);
    // Loopback may drop under a full socket buffer; a window of 16 should not.
    assert_eq!(report.received, 3000, "{report}");
    assert!(report.rate() > 0.0);
    // Counters are bumped after each send: read them once the LB has stopped.
    lb.stop_within(ms(2000));
    assert_eq!(stats.snapshot().relayed, 3000);
}

#[test]
fn flood_against_a_lossy_server_reports_progress_losses_and_a_rate_without_the_waits() {
    let echo = echo_server(Loss::COURSE, 7);
    let options = FloodOptions {
        count: 200,
        window: 8,
        timeout: ms(50),
        progress_every: Duration::ZERO,
    };
    let mut so_far = Vec::new();
    let report =
        flood::run_with_progress(echo.addr, options, |r| so_far.push(*r)).expect("flood runs");
    assert_eq!(report.sent, 200);
    assert_eq!(report.received + report.lost, 200, "{report}");
    assert!(report.lost > 0 && report.received > 0, "{report}");
    // Every loss costs one 50 ms wait, shared by those in flight.
    assert!(report.waiting >= ms(50), "{report}");
    assert!(report.waiting <= report.elapsed, "{report}");
    let wall_rate = report.received as f64 / report.elapsed.as_secs_f64();
    assert!(report.rate() > wall_rate, "{report}");
    // Progress came while the run went on, each report further along.
    assert!(so_far.len() > 1, "{} progress reports", so_far.len());
    for pair in so_far.windows(2) {
        assert!(pair[0].sent <= pair[1].sent && pair[0].received <= pair[1].received);
    }
    assert!(so_far[0].received + so_far[0].lost < 200);
}

#[test]
fn shutdown_stops_the_load_balancer_and_every_reader_promptly() {
    let echo = lossless_echo();
    let (lb, stats) = load_balancer(&[echo.addr, dead_port()], |_| {});
    let clients: Vec<_> = (0..5).map(|_| Client::new(lb.addr)).collect();
    for client in &clients {
        client.send("hi");
    }
    stats
        .wait_until(ms(2000), |s| s.sessions == 5)
        .expect("five sessions open");
    lb.stop_within(ms(2000));
    assert_eq!(stats.snapshot().readers, 0, "every reader thread ended");
}

// The real binary and the lab's Python programs.

#[test]
fn lab_python_client_works_through_dnslb_udp_lb_and_udp_echo() {
    let echoes: Vec<_> = (0..3)
        .map(|_| dnslb_server(&["udp-echo", "0", "--bind", "127.0.0.1", "--loss", "0"]))
        .collect();
    let mut args = vec![
        "udp-lb".to_string(),
        "0".into(),
        "--bind".into(),
        "127.0.0.1".into(),
    ];
    for echo in &echoes {
        let addr = echo.addr.unwrap();
        args.extend([addr.ip().to_string(), addr.port().to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let lb = dnslb_server(&args);
    let lb_addr = lb.addr.unwrap();
    let client = python(
        "UDPPingerClient.py",
        &["127.0.0.1", &lb_addr.port().to_string()],
        false,
    );
    let lines = client.read_all(Duration::from_secs(20));
    let received: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("Message Received"))
        .collect();
    assert_eq!(received.len(), 10, "{lines:#?}");
    for (i, line) in received.iter().enumerate() {
        assert!(
            line.starts_with(&format!("Message Received PING {} ", i + 1)),
            "{line}"
        );
    }
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("Round Trip Time"))
            .count(),
        10
    );
}

#[test]
fn dnslb_ping_works_against_the_lab_python_server() {
    let server = python("UDPPingerServer.py", &["0", "3"], true);
    let port = server.addr.unwrap().port().to_string();
    let (status, out) = dnslb_output(
        &["ping", "127.0.0.1", &port, "-W", "0.25", "-O"],
        Duration::from_secs(20),
    );
    let replies = out.matches(" bytes from ").count();
    let timeouts = out.matches("no answer yet for seq=").count();
    assert_eq!(replies + timeouts, 10, "{out}");
    assert!(replies > 0, "seed 3 answers some pings\n{out}");
    assert!(status.success(), "exit 0 when a reply came\n{out}");
    assert!(
        out.contains(&format!("10 packets transmitted, {replies} received")),
        "{out}"
    );
}

#[test]
fn lab_python_client_works_against_dnslb_udp_echo() {
    let echo = dnslb_server(&["udp-echo", "0", "--bind", "127.0.0.1", "--loss", "0"]);
    let port = echo.addr.unwrap().port().to_string();
    let client = python("UDPPingerClient.py", &["127.0.0.1", &port], false);
    let lines = client.read_all(Duration::from_secs(20));
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("Message Received PING "))
            .count(),
        10,
        "{lines:#?}"
    );
}

#[test]
fn dnslb_ping_exits_1_when_nothing_answers() {
    let port = dead_port().port().to_string();
    let (status, out) = dnslb_output(
        &[
            "ping",
            "127.0.0.1",
            &port,
            "--count",
            "2",
            "--timeout",
            "0.2",
        ],
        Duration::from_secs(10),
    );
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains("Destination port unreachable"), "{out}");
    assert!(out.contains("2 packets transmitted, 0 received"), "{out}");
}

#[test]
fn udp_servers_exit_0_promptly_on_sigterm() {
    let echo = dnslb_server(&["udp-echo", "0", "--bind", "127.0.0.1", "--loss", "0"]);
    let addr = echo.addr.unwrap();
    let lb = dnslb_server(&[
        "udp-lb",
        "0",
        "--bind",
        "127.0.0.1",
        &addr.ip().to_string(),
        &addr.port().to_string(),
    ]);
    let client = Client::new(lb.addr.unwrap());
    // A lossless echo and an answered ping: the session and its readers exist
    // when the signal comes.
    assert!(client.ask("open a session", ms(2000)).is_some());
    for mut server in [lb, echo] {
        let pid = server.child.id() as libc::pid_t;
        // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let status = server.wait_within(Duration::from_secs(5));
        assert!(status.success(), "exit status {status:?}");
    }
}

#[test]
fn bad_udp_command_lines_exit_2() {
    for args in [
        &["udp-lb", "0", "127.0.0.1"][..],
        &["udp-lb", "0", "127.0.0.1", "notaport"],
        &["udp-echo", "0", "--loss", "1.5"],
        &["udp-echo", "0", "--loss", "4/0"],
        &["ping", "127.0.0.1", "9", "--count", "0"],
        &["ping", "127.0.0.1", "9", "--timeout", "0"],
    ] {
        let (status, out) = dnslb_output(args, Duration::from_secs(10));
        assert_eq!(status.code(), Some(2), "{args:?}: {out}");
    }
}
