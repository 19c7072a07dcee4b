//! Pools of replica TSes (`--pool`, `--policy`): a query goes to one member
//! of each pool and the answers combine across pools as across TSes; with
//! no pool every TS is asked, as before.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hickory_proto::rr::RecordType;

use dnslb::ls::{LsOptions, Policy, TsProtocol};
use support::dns::*;
use support::*;

/// A course TS answering every name with `ip`, counting the queries it
/// is sent.
fn counting_ts(ip: &'static str) -> (SocketAddr, Arc<AtomicU64>) {
    let count = Arc::new(AtomicU64::new(0));
    let seen = Arc::clone(&count);
    let addr = fake_server(move |stream| {
        let mut writer = stream.try_clone().unwrap();
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { return };
            seen.fetch_add(1, Ordering::SeqCst);
            let _ = writer.write_all(format!("{} {ip} A\n", line.trim()).as_bytes());
        }
    });
    (addr, count)
}

/// The pool of backends `members` (indexes), each of weight 1.
fn pool(members: &[usize]) -> Vec<(usize, u32)> {
    members.iter().map(|&ts| (ts, 1)).collect()
}

#[test]
fn a_pool_sends_each_query_to_one_member_and_roundrobin_alternates() {
    let (a, sent_a) = counting_ts("10.0.0.1");
    let (b, sent_b) = counting_ts("10.0.0.2");
    let ls = DnsLs::start(&[a, b], |o: &mut LsOptions| {
        o.pools = vec![pool(&[0, 1])];
        o.policy = Policy::RoundRobin;
    });
    let mut client = LineClient::connect(ls.course());
    let replies: Vec<String> = (0..10)
        .map(|i| client.ask(&format!("h{i}.example")))
        .collect();
    for (i, reply) in replies.iter().enumerate() {
        let ip = if i % 2 == 0 { "10.0.0.1" } else { "10.0.0.2" };
        assert_eq!(reply, &format!("h{i}.example {ip} A"));
    }
    let snapshot = ls.stop();
    assert_eq!(snapshot.answered, [5, 5]);
    assert_eq!(sent_a.load(Ordering::SeqCst), 5);
    assert_eq!(sent_b.load(Ordering::SeqCst), 5);
}

#[test]
fn pools_and_single_tses_mix_and_combine_as_tses_do() {
    // ts1 alone holds one name; the pool (ts2, ts3) holds another.
    let single = start_ts("only.single 10.1.0.1 A\n");
    let table = "in.pool 10.2.0.1 A\n";
    let (r1, r2) = (start_ts(table), start_ts(table));
    let ls = DnsLs::start(&[single.addr, r1.addr, r2.addr], |o: &mut LsOptions| {
        o.pools = vec![pool(&[1, 2])];
        o.policy = Policy::First;
        o.timeout = ms(300);
    });
    let mut client = LineClient::connect(ls.course());
    for _ in 0..3 {
        assert_eq!(client.ask("only.single"), "only.single 10.1.0.1 A");
        assert_eq!(client.ask("in.pool"), "in.pool 10.2.0.1 A");
    }
    assert_eq!(client.ask("nowhere"), "nowhere - Error:HOST NOT FOUND");
    let snapshot = ls.stop();
    // `first`: the secondary is never asked while the primary is up.
    assert_eq!(snapshot.answered, [3, 3, 0]);
}

#[test]
fn a_pool_of_dns_tses_answers_dns_clients_one_member_a_query() {
    let table = "www.example.com 10.0.0.1 A\n";
    let (r1, r2) = (DnsTs::start(table), DnsTs::start(table));
    let ls = DnsLs::start(&[r1.addr, r2.addr], |o: &mut LsOptions| {
        o.ts_protocol = TsProtocol::Dns;
        o.pools = vec![pool(&[0, 1])];
        o.policy = Policy::RoundRobin;
    });
    for id in 0..8 {
        let reply = udp_ask(ls.dns, &query(id, "www.example.com.", RecordType::A));
        assert_eq!(
            addresses(&reply),
            ["10.0.0.1".parse::<std::net::Ipv4Addr>().unwrap()]
        );
    }
    let missing = udp_ask(ls.dns, &query(99, "nope.example.com.", RecordType::A));
    assert_eq!(rcode(&missing), 3, "NXDOMAIN from the one member asked");
    let snapshot = ls.stop();
    assert_eq!(snapshot.answered, [4, 4]);
}

#[test]
fn chash_sends_a_name_always_to_the_same_member() {
    let (a, _) = counting_ts("10.0.0.1");
    let (b, _) = counting_ts("10.0.0.2");
    let (c, _) = counting_ts("10.0.0.3");
    let ls = DnsLs::start(&[a, b, c], |o: &mut LsOptions| {
        o.pools = vec![pool(&[0, 1, 2])];
        o.policy = Policy::Chash;
    });
    let mut client = LineClient::connect(ls.course());
    assert!(ls.snapshot().pools[0].iter().all(|m| m.health == "up"));
    let mut ip = |name: &str| client.ask(name).split(' ').nth(1).unwrap().to_string();
    let mut members = std::collections::HashSet::new();
    for i in 0..30 {
        let name = format!("n{i}.example");
        let first = ip(&name);
        for _ in 0..3 {
            assert_eq!(ip(&name.to_uppercase()), first, "{name}");
        }
        members.insert(first);
    }
    assert_eq!(members.len(), 3, "the names spread over every member");
}

#[test]
fn the_binary_takes_pools_and_refuses_bad_ones_with_exit_2() {
    let (a, sent_a) = counting_ts("10.0.0.1");
    let (b, sent_b) = counting_ts("10.0.0.2");
    let members = format!("{a},{b}@1");
    let (ls, log) =
        spawn_server_bin_stderr(&["ls", "0", "--pool", &members, "--policy", "roundrobin"]);
    let announced = log.recv_timeout(BOUND).unwrap();
    assert!(
        announced.contains(
            "pool 1 (roundrobin, try timeout 500ms, health checks every 1s): ts1 (127.0.0.1:"
        ),
        "{announced}"
    );
    let mut client = LineClient::connect(ls.addr);
    for i in 0..4 {
        assert!(client.ask(&format!("x{i}")).ends_with(" A"));
    }
    assert_eq!(sent_a.load(Ordering::SeqCst), 2);
    assert_eq!(sent_b.load(Ordering::SeqCst), 2);
    for bad in [
        vec!["ls", "0", "--pool", "127.0.0.1"],
        vec!["ls", "0", "--pool", "127.0.0.1:53@0"],
        vec!["ls", "0", "--pool", "127.0.0.1:53", "--policy", "fastest"],
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_dnslb"))
            .args(&bad)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{bad:?}");
        assert!(!output.stderr.is_empty());
    }
}

/// A TS that takes connections and reads queries, and never answers.
fn frozen_ts() -> SocketAddr {
    fake_server(|stream| {
        for line in BufReader::new(stream).lines() {
            if line.is_err() {
                return;
            }
        }
    })
}

#[test]
fn a_frozen_replica_costs_each_query_at_most_the_try_timeout_and_loses_none() {
    let (good, sent_good) = counting_ts("10.0.0.1");
    let frozen = frozen_ts();
    let ls = DnsLs::start(&[frozen, good], |o: &mut LsOptions| {
        o.pools = vec![pool(&[0, 1])];
        o.policy = Policy::RoundRobin;
        o.try_timeout = ms(100);
    });
    let mut client = LineClient::connect(ls.course());
    for i in 0..6 {
        let started = std::time::Instant::now();
        assert_eq!(client.ask(&format!("f{i}")), format!("f{i} 10.0.0.1 A"));
        let took = started.elapsed();
        assert!(took < ms(100) + ms(400), "query {i} took {took:?}");
    }
    // Each query went to the live one once: first, or after the frozen one.
    assert_eq!(sent_good.load(Ordering::SeqCst), 6);
    let snapshot = ls.stop();
    assert_eq!(snapshot.answered, [0, 6]);
    assert_eq!(snapshot.timed_out, 0);
    // The counters show the pool: the frozen member's timeouts, the
    // retries they cost the live one.
    let [frozen, live] = &snapshot.pools[0][..] else {
        panic!("{:?}", snapshot.pools)
    };
    assert!(frozen.timeouts >= 1 && frozen.answered == 0, "{frozen:?}");
    assert_eq!(live.retries, frozen.timeouts);
    assert_eq!(live.sent, 6);
    let line = snapshot.to_string();
    assert!(line.contains("; pool 1: ts1 "), "{line}");
    assert!(
        line.contains("ts2 up sent 6, answered 6, timeouts 0, retries "),
        "{line}"
    );
}

#[test]
fn a_pool_of_dns_tses_fails_over_from_a_frozen_one() {
    let table = "www.example.com 10.0.0.1 A\n";
    let good = DnsTs::start(table);
    let frozen = fake_server(|mut stream| {
        let _ = std::io::copy(&mut stream, &mut std::io::sink());
    });
    let ls = DnsLs::start(&[frozen, good.addr], |o: &mut LsOptions| {
        o.ts_protocol = TsProtocol::Dns;
        o.pools = vec![pool(&[0, 1])];
        o.policy = Policy::First;
        o.try_timeout = ms(100);
    });
    for id in 0..3 {
        let started = std::time::Instant::now();
        let reply = udp_ask(ls.dns, &query(id, "www.example.com.", RecordType::A));
        assert_eq!(rcode(&reply), 0);
        assert!(started.elapsed() < ms(600), "{:?}", started.elapsed());
    }
    let missing = udp_ask(ls.dns, &query(9, "nope.example.com.", RecordType::A));
    assert_eq!(rcode(&missing), 3, "the next member's NXDOMAIN is final");
    assert_eq!(ls.stop().answered, [0, 3]);
}

#[test]
fn servfail_or_refused_from_a_replica_moves_the_query_on() {
    let table = "www.example.com 10.0.0.1 A\n";
    let good = DnsTs::start(table);
    for code in [
        hickory_proto::op::ResponseCode::ServFail,
        hickory_proto::op::ResponseCode::Refused,
    ] {
        let bad = rcode_ts(code);
        let ls = DnsLs::start(&[bad, good.addr], |o: &mut LsOptions| {
            o.ts_protocol = TsProtocol::Dns;
            o.pools = vec![pool(&[0, 1])];
            o.policy = Policy::First;
            o.try_timeout = ms(1500);
        });
        let started = std::time::Instant::now();
        let reply = udp_ask(ls.dns, &query(1, "www.example.com.", RecordType::A));
        assert_eq!(rcode(&reply), 0, "{code:?}");
        assert!(
            started.elapsed() < ms(1000),
            "moved on at once, not at the try timeout"
        );
        assert_eq!(ls.stop().answered, [0, 1]);
    }
}

#[test]
fn a_member_that_timed_out_is_backed_off_and_the_next_queries_skip_it() {
    let (good, _) = counting_ts("10.0.0.1");
    let (frozen_count, frozen) = {
        let count = Arc::new(AtomicU64::new(0));
        let seen = Arc::clone(&count);
        let addr = fake_server(move |stream| {
            for line in BufReader::new(stream).lines() {
                if line.is_err() {
                    return;
                }
                seen.fetch_add(1, Ordering::SeqCst);
            }
        });
        (count, addr)
    };
    let ls = DnsLs::start(&[frozen, good], |o: &mut LsOptions| {
        o.pools = vec![pool(&[0, 1])];
        o.policy = Policy::First;
        o.try_timeout = ms(100);
    });
    let mut client = LineClient::connect(ls.course());
    let started = std::time::Instant::now();
    assert_eq!(client.ask("b0"), "b0 10.0.0.1 A");
    assert!(
        started.elapsed() >= ms(100),
        "the first query waited for the frozen one"
    );
    // Backed off (at least 75 ms): `first` passes it over meanwhile.
    let started = std::time::Instant::now();
    assert_eq!(client.ask("b1"), "b1 10.0.0.1 A");
    assert!(started.elapsed() < ms(75), "{:?}", started.elapsed());
    assert_eq!(frozen_count.load(Ordering::SeqCst), 1);
}

#[test]
fn a_pool_of_silent_course_tses_tries_each_member_on_a_miss_then_answers_it_at_the_deadline() {
    let table = "in.pool 10.2.0.1 A\n";
    let (r1, r2) = (start_ts(table), start_ts(table));
    let ls = DnsLs::start(&[r1.addr, r2.addr], |o: &mut LsOptions| {
        o.pools = vec![pool(&[0, 1])];
        o.policy = Policy::First;
        o.timeout = ms(600);
        o.try_timeout = ms(150);
    });
    let mut client = LineClient::connect(ls.course());
    let started = std::time::Instant::now();
    assert_eq!(client.ask("nowhere"), "nowhere - Error:HOST NOT FOUND");
    assert!(
        started.elapsed() >= ms(600),
        "a miss waits for the deadline"
    );
    // Both members were given the miss, and backed off for it.
    let snapshot = ls.snapshot();
    let members = &snapshot.pools[0];
    assert_eq!(members[0].timeouts + members[1].timeouts, 2, "{members:?}");
    assert_eq!(members[1].retries, 1, "{members:?}");
    // The names they hold are still answered.
    assert_eq!(client.ask("in.pool"), "in.pool 10.2.0.1 A");
}

#[test]
fn a_member_that_drops_its_connections_moves_the_query_on_before_the_try_timeout() {
    let (good, _) = counting_ts("10.0.0.1");
    // Reads a query, then closes the connection without answering.
    let dropping = fake_server(|stream| {
        let mut line = String::new();
        let _ = BufReader::new(&stream).read_line(&mut line);
    });
    let ls = DnsLs::start(&[dropping, good], |o: &mut LsOptions| {
        o.pools = vec![pool(&[0, 1])];
        o.policy = Policy::First;
        o.try_timeout = ms(3000);
    });
    let mut client = LineClient::connect(ls.course());
    let started = std::time::Instant::now();
    assert_eq!(client.ask("d0"), "d0 10.0.0.1 A");
    assert!(started.elapsed() < ms(2000), "{:?}", started.elapsed());
    let snapshot = ls.stop();
    assert_eq!(snapshot.answered, [0, 1]);
    assert_eq!(snapshot.pools[0][1].retries, 1);
}

#[test]
fn an_idle_frozen_dns_replica_is_marked_down_by_health_checks_and_taken_back_when_it_answers() {
    let frozen = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let toggle = Arc::clone(&frozen);
    let flaky = fake_dns_ts(move |query, stream| {
        if !toggle.load(Ordering::SeqCst) {
            write_message(
                stream,
                &reply_to(query, hickory_proto::op::ResponseCode::Refused, |_| {}),
            );
        }
    });
    let good = rcode_ts(hickory_proto::op::ResponseCode::Refused);
    let members = format!("{flaky},{good}");
    let (ls, log) = spawn_server_bin_stderr(&[
        "ls",
        "0",
        "--ts-protocol",
        "dns",
        "--pool",
        &members,
        "--health-interval",
        "0.1",
    ]);
    let wait_for = |what: &str| {
        let deadline = std::time::Instant::now() + BOUND;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = log
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no {what:?} line"));
            if line.contains("ls: health: ") {
                return line;
            }
        }
    };
    // No query is sent: the probes alone find it.
    let started = std::time::Instant::now();
    let down = wait_for("marked down");
    assert!(
        down.contains("ts1 (") && down.contains("marked down (3 probe(s) in a row failed)"),
        "{down}"
    );
    assert!(started.elapsed() < ms(2000), "{:?}", started.elapsed());
    frozen.store(false, Ordering::SeqCst);
    let up = wait_for("back up");
    assert!(
        up.contains("ts1 (") && up.contains("back up (2 probe(s) in a row answered)"),
        "{up}"
    );
    // Both changes count as the TS's up/down transitions.
    ls.signal(libc::SIGINT);
    let counters = line_containing(&log, "TS up/down transitions");
    assert!(counters.contains("TS up/down transitions 2;"), "{counters}");
}
