//! The four roles on four hosts: TS1, TS2, the LS and the clients each run in
//! a network namespace of their own, joined by a bridge in a fifth namespace
//! (the switch), so nothing touches the machine's own network. TS1's switch
//! port is cut under load (its packets vanish: no RST, no FIN), then mended.
//!
//! The servers are the real binary, started with `ip netns exec`. The load
//! comes from this process: a thread that enters the clients' namespace
//! (`setns`) opens the connections, so every query crosses the bridge, and
//! the test measures each query's latency itself.
//!
//! Needs root and `ip netns`; without them the test prints why and skips.
//! The tests take turns, and take ten seconds or so in all: each says what
//! it is doing as it goes, on stderr past the harness's capture
//! ([`progress`]); `-- --nocapture` adds the figures of every run. The
//! figures taken under load are read from /proc by threads that enter the
//! namespaces: `ip netns exec` and `ss` took seconds under load, and the
//! partition lasted as long as they did.
//! Namespace names carry this process's id and a count, so concurrent runs
//! and tests never meet; every namespace is deleted when the test ends,
//! however it ends.

mod support;

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown as Direction, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use dnslb::bench::{Expect, Verdict, check_reply};
use support::*;

/// Every namespace of this test starts with this; a run adds its process id.
const PREFIX: &str = "dnslbh-";

/// The hosts' subnet (inside the namespaces only).
const SUBNET: &str = "10.231.77";

/// How long any `ip` command may take (namespace changes wait for the
/// kernel to finish tearing down earlier namespaces).
const COMMAND_BOUND: Duration = Duration::from_secs(30);

/// How long a load client waits for one reply before calling it lost: above
/// the LS's 5 s deadline, so a stall shows as the latency it really was.
const REPLY_TIMEOUT: Duration = Duration::from_secs(12);

/// The longest a query may take, TS1 partitioned or not.
const MAX_STALL: Duration = Duration::from_secs(1);

/// How long the course client may take for the sample: one of its names is
/// a miss, which takes the LS's whole timeout, on a loaded machine.
const SAMPLE_BOUND: Duration = Duration::from_secs(30);

/// How long the LS may take to mark TS1 down once it is cut off under load
/// (its writes to TS1 must fill the connection's send buffer first).
const DETECT_BOUND: Duration = Duration::from_secs(10);

/// How long the load runs with TS1 cut off after the LS marked it down: a
/// probe's connection attempt (the LS gives it 1 s) fails within it, so the
/// load runs through the LS probing a TS that does not answer.
const HELD_DOWN: Duration = Duration::from_millis(1500);

/// How long after the link is mended TS1 must answer again (the LS promises
/// about a second; the rest is slack for a loaded machine).
const RECOVERY: Duration = Duration::from_millis(2500);

/// The names TS2 holds (data/PROJ2-DNSTS2.txt): the load asks only these.
const TS2_NAMES: [(&str, &str); 2] = [
    ("www.princeton.edu", "128.1.1.4"),
    ("google.site", "46.1.3.7"),
];

/// A name only TS1 holds, to tell when the LS uses TS1 again.
const TS1_NAME: (&str, &str) = ("amazon.org", "94.5.6.7");

#[test]
fn smoke() {
    let Some(hosts) = Hosts::start(&[], &[]) else {
        return;
    };
    let client = hosts.connect_client();
    let mut reader = BufReader::new(client.try_clone().unwrap());
    for (name, ip) in [TS1_NAME, TS2_NAMES[0]] {
        (&client).write_all(format!("{name}\n").as_bytes()).unwrap();
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert_eq!(line, format!("{name} {ip} A\n"));
    }
}

#[test]
fn a_partitioned_ts_costs_no_misses_and_no_stalls_and_the_sample_survives() {
    // The sample's miss waits for the LS's timeout: 2 s rather than 5 s. A
    // query of the load must be answered within 1 s anyway (MAX_STALL).
    let Some(hosts) = Hosts::start(&[], &["--timeout", "2"]) else {
        return;
    };
    let mut failures = Vec::new();
    // An LS that has served a while: it has heard TS1 answer, so it knows
    // TS1 reads lines and sends it every query at once (until then it
    // spaces its queries to TS1 as for a course TS that reads bare names).
    if let Err(why) = hosts.wait_for_ts1() {
        failures.push(why);
    }

    let sequential = hosts.partition_under_load(Load::Sequential { clients: 16 });
    failures.extend(sequential.failures("16 sequential clients"));
    match hosts.wait_for_ts1() {
        Ok(took) => eprintln!("hosts: TS1 answered again {took:?} after the link was mended"),
        Err(why) => failures.push(why),
    }

    let pipelined = hosts.partition_under_load(Load::Pipelined {
        clients: 4,
        window: 64,
    });
    failures.extend(pipelined.failures("4 pipelined clients, 64 in flight"));
    match hosts.wait_for_ts1() {
        Ok(took) => eprintln!("hosts: TS1 answered again {took:?} after the link was mended"),
        Err(why) => failures.push(why),
    }

    if let Err(why) = hosts.resolve_the_sample() {
        failures.push(why);
    }
    hosts.print_ls_log();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_partitioned_ts_that_answers_misses_stops_being_waited_for() {
    let Some(hosts) = Hosts::start(&["--answer-misses"], &["--timeout", "1"]) else {
        return;
    };
    let client = hosts.connect_client();
    client.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    let mut reader = BufReader::new(&client);
    let mut ask = |name: &str| {
        let sent = Instant::now();
        (&client).write_all(format!("{name}\n").as_bytes()).unwrap();
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        (line.trim_end().to_string(), sent.elapsed())
    };
    let miss = "nothinghere.com";
    let miss_line = format!("{miss} - Error:HOST NOT FOUND");
    // Both TSes say NOT FOUND: the miss is answered without the deadline.
    let (reply, took) = ask(miss);
    assert_eq!((reply.as_str(), took < ms(500)), (miss_line.as_str(), true));

    progress(format_args!("20 misses with TS1 cut off"));
    hosts.set_ts1_port("down");
    // TS1 now leaves misses unanswered: one deadline (or a few) may pass
    // before the LS stops waiting for it; then misses are quick again.
    let mut waited = Vec::new();
    for _ in 0..20 {
        let (reply, took) = ask(miss);
        assert_eq!(reply, miss_line);
        if took >= ms(500) {
            waited.push(took);
        }
    }
    let (reply, took) = ask(TS2_NAMES[0].0);
    hosts.set_ts1_port("up");
    eprintln!(
        "hosts: with TS1 cut off, {} of 20 misses waited: {waited:?}",
        waited.len()
    );
    assert!(
        waited.len() <= 3,
        "{} of 20 misses waited for the deadline of a partitioned TS: {waited:?}",
        waited.len()
    );
    assert_eq!(reply, format!("{} {} A", TS2_NAMES[0].0, TS2_NAMES[0].1));
    assert!(took < MAX_STALL, "an answer from TS2 took {took:?}");
    let took = hosts.wait_for_ts1().unwrap_or_else(|why| panic!("{why}"));
    eprintln!("hosts: TS1 answered again {took:?} after the link was mended");
}

/// Says what a test is doing now, straight to stderr: the test harness
/// captures `eprintln!` (shown only for a failing test), and a run that is
/// silent for a minute looks hung.
fn progress(what: std::fmt::Arguments<'_>) {
    let _ = std::io::stderr().write_all(format!("hosts: {what}\n").as_bytes());
}

/// The four hosts and the switch, with TS1, TS2 and the LS running. Dropping
/// it stops the servers, then deletes the namespaces (and with them every
/// link and the bridge).
struct Hosts {
    ts1: Running,
    ts2: Running,
    ls: Running,
    ls_log: Receiver<String>,
    net: Net,
    /// Held until the namespaces are gone (fields drop in order): the
    /// kernel serialises namespace changes, and one test's teardown would
    /// stall another's `ip` commands.
    _alone: MutexGuard<'static, ()>,
}

/// Taken by each test for as long as its hosts exist.
static ALONE: Mutex<()> = Mutex::new(());

/// The namespaces of one run; deleted on drop.
struct Net {
    /// The switch: the bridge `br0` and one port per host, named after it.
    switch: String,
    ts1: String,
    ts2: String,
    ls: String,
    client: String,
}

impl Net {
    fn all(&self) -> [&str; 5] {
        [&self.switch, &self.ts1, &self.ts2, &self.ls, &self.client]
    }

    /// The address of the host whose namespace is `ns`.
    fn addr(&self, ns: &str) -> String {
        let host = self.all().iter().position(|&n| n == ns).unwrap();
        format!("{SUBNET}.{host}")
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let started = Instant::now();
        for ns in self.all() {
            // The servers in it were stopped first; this cannot hang, and a
            // failure here must not hide the test's own outcome.
            if let Err(why) = ip(&["netns", "del", ns]) {
                eprintln!("hosts: cannot delete namespace {ns}: {why}");
            }
        }
        progress(format_args!(
            "namespaces deleted in {:?}",
            started.elapsed()
        ));
    }
}

impl Hosts {
    /// Builds the network and starts the servers (with `ts_args` and
    /// `ls_args` added to their command lines), or says why it cannot (not
    /// root, no `ip netns`) and returns `None`.
    fn start(ts_args: &[&str], ls_args: &[&str]) -> Option<Hosts> {
        // SAFETY: geteuid(2) has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("hosts: skipped: network namespaces need root");
            return None;
        }
        let alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
        let started = Instant::now();
        progress(format_args!("building four hosts and a switch"));
        remove_leftovers();
        static RUNS: AtomicU64 = AtomicU64::new(0);
        let run = format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            RUNS.fetch_add(1, Ordering::Relaxed)
        );
        let name = |role: &str| format!("{run}-{role}");
        if let Err(why) = ip(&["netns", "add", &name("sw")]) {
            eprintln!("hosts: skipped: `ip netns` is not available: {why}");
            return None;
        }
        // From here on, Net's drop deletes whatever was made.
        let net = Net {
            switch: name("sw"),
            ts1: name("ts1"),
            ts2: name("ts2"),
            ls: name("ls"),
            client: name("cl"),
        };
        wire_up(&net).unwrap_or_else(|why| panic!("cannot build the test network: {why}"));
        progress(format_args!("network up in {:?}", started.elapsed()));

        let table = |n: u8| data(&format!("PROJ2-DNSTS{n}.txt"));
        let ts = |ns: &str, table: &Path| {
            let addr = net.addr(ns);
            let table = table.to_str().unwrap();
            let mut ts = in_ns(ns, &["ts", "0", "--bind", &addr, "--table", table]);
            ts.args(ts_args);
            spawn_server_command(ts)
        };
        let ts1 = ts(&net.ts1, &table(1));
        let ts2 = ts(&net.ts2, &table(2));
        let (p1, p2) = (ts1.addr.port().to_string(), ts2.addr.port().to_string());
        let (a1, a2, als) = (net.addr(&net.ts1), net.addr(&net.ts2), net.addr(&net.ls));
        let mut ls = in_ns(&net.ls, &["ls", "0", &a1, &p1, &a2, &p2, "--bind", &als]);
        ls.args(ls_args);
        let (ls, ls_log) = spawn_logged(ls);
        Some(Hosts {
            ts1,
            ts2,
            ls,
            ls_log,
            net,
            _alone: alone,
        })
    }

    /// A connection to the LS from the clients' host.
    fn connect_client(&self) -> TcpStream {
        let ls = self.ls.addr;
        in_namespace(&self.net.client, move || {
            TcpStream::connect_timeout(&ls, BOUND)
                .unwrap_or_else(|e| panic!("cannot connect to the LS at {ls}: {e}"))
        })
        .join()
        .unwrap()
    }

    /// TS1's switch port: down cuts TS1 off, up mends the link.
    fn set_ts1_port(&self, state: &str) {
        ip(&["-n", &self.net.switch, "link", "set", "ts1", state])
            .unwrap_or_else(|why| panic!("cannot set TS1's switch port {state}: {why}"));
    }

    /// Runs `load` against the LS, cuts TS1's port once every client has
    /// been answered [`WARM`] times, keeps the load going until the LS has
    /// marked TS1 down and for [`HELD_DOWN`] after, stops it and mends the
    /// link.
    fn partition_under_load(&self, load: Load) -> Outcome {
        let stop = Arc::new(AtomicBool::new(false));
        let (warm_tx, warm) = crossbeam_channel::unbounded();
        let clients: Vec<Client> = (0..load.clients())
            .map(|_| Client::start(self.connect_client(), load, &stop, &warm_tx))
            .collect();
        let deadline = Instant::now() + BOUND;
        for _ in &clients {
            warm.recv_deadline(deadline)
                .expect("the load did not get going before the cut");
        }
        let answered_before: u64 = clients.iter().map(|c| c.answered.count()).sum();
        progress(format_args!("{load:?}: cutting TS1 off"));
        self.set_ts1_port("down");
        let cut = Instant::now();
        // Counted from the cut on: what was on its way before may still land.
        let ts1_before = tcp_counters(&self.net.ts1);
        let marked_down = self
            .wait_for_ts1_down(cut + DETECT_BOUND)
            .map(|at| at - cut);
        progress(format_args!(
            "{load:?}: the LS marked TS1 down {marked_down:?} after the cut; {HELD_DOWN:?} more"
        ));
        // The experiment's length, not a wait for something.
        thread::sleep(HELD_DOWN);
        let partition = cut.elapsed();
        let backlog = send_queue(&self.net.ls, &self.net.addr(&self.net.ts1));
        let answered_during: u64 =
            clients.iter().map(|c| c.answered.count()).sum::<u64>() - answered_before;
        stop.store(true, Ordering::Relaxed);
        let mut tally = Tally::default();
        for client in clients {
            tally.merge(client.join());
        }
        let stopped_after = cut.elapsed();
        let ts1_after = tcp_counters(&self.net.ts1);
        let outcome = Outcome {
            load,
            tally,
            answered_during,
            marked_down,
            partition,
            stopped_after,
            backlog,
            ts1_segments_in: ts1_after.0 - ts1_before.0,
            ts1_resets_in: ts1_after.1 - ts1_before.1,
        };
        self.set_ts1_port("up");
        progress(format_args!(
            "{load:?}: {answered_during} answers during the cut; link mended"
        ));
        eprintln!("hosts: {outcome}");
        outcome
    }

    /// When the LS logged that TS1 is down, waiting until `deadline` at
    /// most; the other lines it logs meanwhile are shown as they come.
    fn wait_for_ts1_down(&self, deadline: Instant) -> Option<Instant> {
        let ts1 = format!("({}) is down", self.ts1.addr);
        while let Ok(line) = self.ls_log.recv_deadline(deadline) {
            let at = Instant::now();
            eprintln!("hosts: LS: {line}");
            if line.contains(&ts1) {
                return Some(at);
            }
        }
        None
    }

    /// How long after now (the link just mended) the LS answers a name only
    /// TS1 holds: a probe on a new connection every 100 ms until one is
    /// answered, for [`RECOVERY`] at most.
    fn wait_for_ts1(&self) -> Result<Duration, String> {
        let mended = Instant::now();
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut probes = Vec::new();
        while mended.elapsed() < RECOVERY {
            let (ls, tx) = (self.ls.addr, tx.clone());
            probes.push(in_namespace(&self.net.client, move || {
                let sent = Instant::now();
                if ask_once(ls, TS1_NAME.0) == format!("{} {} A", TS1_NAME.0, TS1_NAME.1) {
                    let _ = tx.send(sent);
                }
            }));
            if let Ok(sent) = rx.recv_timeout(ms(100)) {
                return Ok(sent - mended);
            }
        }
        drop(tx);
        // A probe sent in time may still be answered (each ends within its timeout).
        let first = rx.iter().min();
        for probe in probes {
            let _ = probe.join();
        }
        match first {
            Some(sent) if sent - mended < RECOVERY => Ok(sent - mended),
            _ => Err(format!(
                "TS1 was not used again within {RECOVERY:?} of the link being mended"
            )),
        }
    }

    /// The course's sample, resolved by `dnslb client` on the clients' host,
    /// must be byte-identical to data/example-RESOLVED.txt.
    fn resolve_the_sample(&self) -> Result<(), String> {
        progress(format_args!(
            "the course client resolves the sample (its miss waits for the LS's timeout)"
        ));
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(data("PROJ2-HNS.txt"), dir.path().join("PROJ2-HNS.txt")).unwrap();
        let (ls_ip, ls_port) = (
            self.ls.addr.ip().to_string(),
            self.ls.addr.port().to_string(),
        );
        let mut client = in_ns(&self.net.client, &["client", &ls_ip, &ls_port]);
        client.current_dir(dir.path());
        let output = run_bounded(client, SAMPLE_BOUND)?;
        if !output.status.success() {
            return Err(format!(
                "the client failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        let expected = std::fs::read_to_string(data("example-RESOLVED.txt")).unwrap();
        let resolved = std::fs::read_to_string(dir.path().join("RESOLVED.txt")).unwrap();
        if resolved != expected {
            return Err(format!(
                "RESOLVED.txt differs from the course's example:\n{resolved}"
            ));
        }
        Ok(())
    }

    /// Prints what the LS logged (its TS up/down transitions).
    fn print_ls_log(&self) {
        for line in self.ls_log.try_iter() {
            eprintln!("hosts: LS: {line}");
        }
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        // Stop the servers before `net` deletes their namespaces.
        for server in [&mut self.ts1, &mut self.ts2, &mut self.ls] {
            let _ = server.child.kill();
            let _ = server.child.wait();
        }
    }
}

/// Makes the bridge and one veth pair per host: the host's end is `eth0`
/// in its namespace, the switch's end is the port named after the host.
fn wire_up(net: &Net) -> Result<(), String> {
    let sw = net.switch.as_str();
    ip(&["-n", sw, "link", "add", "br0", "type", "bridge"])?;
    ip(&["-n", sw, "link", "set", "br0", "up"])?;
    for (ns, port) in [
        (&net.ts1, "ts1"),
        (&net.ts2, "ts2"),
        (&net.ls, "ls"),
        (&net.client, "cl"),
    ] {
        ip(&["netns", "add", ns])?;
        ip(&[
            "-n", sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns,
        ])?;
        ip(&["-n", sw, "link", "set", port, "master", "br0", "up"])?;
        let addr = format!("{}/24", net.addr(ns));
        ip(&["-n", ns, "addr", "add", &addr, "dev", "eth0"])?;
        ip(&["-n", ns, "link", "set", "eth0", "up"])?;
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
    }
    Ok(())
}

/// Deletes namespaces an earlier run of this test left behind when it was
/// killed: only names with this test's prefix whose process is gone, after
/// stopping what still runs in them.
fn remove_leftovers() {
    let Ok(list) = ip(&["netns", "list"]) else {
        return;
    };
    for ns in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(pid) = ns
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if let Ok(pids) = ip(&["netns", "pids", ns]) {
            for pid in pids
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
            {
                // SAFETY: kill(2); the process runs in this test's own namespace.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        let _ = ip(&["netns", "del", ns]);
    }
}

/// `dnslb <args>` in namespace `ns`.
fn in_ns(ns: &str, args: &[&str]) -> Command {
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", ns, env!("CARGO_BIN_EXE_dnslb")])
        .args(args);
    command
}

/// Runs `ip <args>` (bounded); its stdout, or why it failed.
fn ip(args: &[&str]) -> Result<String, String> {
    let mut command = Command::new("ip");
    command.args(args);
    let output = run_bounded(command, COMMAND_BOUND)?;
    if !output.status.success() {
        return Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs `command` to completion, killing it after `bound`.
fn run_bounded(mut command: Command, bound: Duration) -> Result<Output, String> {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    let pid = child.id() as i32;
    let (tx, rx) = crossbeam_channel::bounded(1);
    let waiter = thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let result = match rx.recv_timeout(bound) {
        Ok(output) => output.map_err(|e| format!("{command:?}: {e}")),
        Err(_) => {
            // SAFETY: kill(2) on our own child, not yet reaped by the waiter.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            Err(format!("{command:?} did not finish within {bound:?}"))
        }
    };
    let _ = waiter.join();
    result
}

/// Runs `f` on a new thread in network namespace `ns`: sockets it opens
/// (and threads it starts) belong to that namespace.
fn in_namespace<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> JoinHandle<T> {
    let path = format!("/run/netns/{ns}");
    thread::spawn(move || {
        let file = File::open(&path).unwrap_or_else(|e| panic!("cannot open {path}: {e}"));
        // SAFETY: setns(2) with a namespace descriptor; it changes only this thread.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
}

/// Asks `name` on a new connection; the reply line, or why there was none.
fn ask_once(ls: SocketAddr, name: &str) -> String {
    let attempt = || -> std::io::Result<String> {
        let stream = TcpStream::connect_timeout(&ls, BOUND)?;
        stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
        (&stream).write_all(format!("{name}\n").as_bytes())?;
        let mut line = String::new();
        BufReader::new(&stream).read_line(&mut line)?;
        Ok(line.trim_end().to_string())
    };
    attempt().unwrap_or_else(|e| format!("({e})"))
}

/// The file `name` of namespace `ns`'s /proc/net, read by a thread that
/// entered it. No process is started: under load, `ip netns exec` and `ss`
/// took seconds, and the partition lasted as long as they did.
fn proc_net(ns: &str, name: &'static str) -> String {
    in_namespace(ns, move || {
        let path = format!("/proc/thread-self/net/{name}");
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
    })
    .join()
    .unwrap()
}

/// TCP segments received and connections reset so far in namespace `ns`
/// (`InSegs` and `EstabResets` of its /proc/net/snmp).
fn tcp_counters(ns: &str) -> (u64, u64) {
    let text = proc_net(ns, "snmp");
    let mut tcp = text.lines().filter(|l| l.starts_with("Tcp:"));
    let (names, values) = (tcp.next().unwrap(), tcp.next().unwrap());
    let field = |wanted: &str| {
        let at = names.split_whitespace().position(|n| n == wanted).unwrap();
        values.split_whitespace().nth(at).unwrap().parse().unwrap()
    };
    (field("InSegs"), field("EstabResets"))
}

/// The bytes the LS has queued, unsent or unacknowledged, on its connections
/// to `ts_ip` (the `tx_queue` of its /proc/net/tcp), for the record.
fn send_queue(ls_ns: &str, ts_ip: &str) -> u64 {
    let ts_ip: std::net::Ipv4Addr = ts_ip.parse().unwrap();
    // Each line: `sl local_address rem_address st tx_queue:rx_queue ...`,
    // addresses as `AAAAAAAA:PPPP`, the address in the kernel's byte order.
    let remote_is_ts = |field: &str| {
        field
            .split(':')
            .next()
            .and_then(|hex| u32::from_str_radix(hex, 16).ok())
            .is_some_and(|n| std::net::Ipv4Addr::from(n.to_ne_bytes()) == ts_ip)
    };
    proc_net(ls_ns, "tcp")
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if !remote_is_ts(fields.get(2)?) {
                return None;
            }
            let tx = fields.get(4)?.split(':').next()?;
            u64::from_str_radix(tx, 16).ok()
        })
        .sum()
}

/// How the load asks.
#[derive(Clone, Copy, Debug)]
enum Load {
    /// Each client sends a query and waits for its reply, then the next.
    Sequential { clients: usize },
    /// Each client keeps up to `window` queries outstanding.
    Pipelined { clients: usize, window: usize },
}

impl Load {
    fn clients(self) -> usize {
        match self {
            Load::Sequential { clients } | Load::Pipelined { clients, .. } => clients,
        }
    }
}

/// What one client, or a whole load, counted.
#[derive(Debug, Default)]
struct Tally {
    /// Right answers.
    hits: u64,
    /// `HOST NOT FOUND` for a name TS2 holds.
    false_misses: u64,
    /// Anything else: wrong replies, lost connections, reply timeouts.
    other: Vec<String>,
    /// The longest any query took.
    max_latency: Duration,
}

impl Tally {
    fn record(&mut self, index: u64, reply: &str, latency: Duration) {
        self.max_latency = self.max_latency.max(latency);
        let (name, ip) = ts2_name(index);
        match check_reply(name, Expect::Ip(ip.parse().unwrap()), reply.as_bytes()) {
            Verdict::Hit => self.hits += 1,
            Verdict::Miss => self.false_misses += 1,
            _ => self.other.push(format!("asked {name}, got {reply:?}")),
        }
    }

    /// Reads and records the reply to query `index`, sent at `sent`; false
    /// when none came (recorded as well).
    fn read_reply(&mut self, reader: &mut impl BufRead, index: u64, sent: Instant) -> bool {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(n) if n > 0 => {
                self.record(index, line.trim_end(), sent.elapsed());
                true
            }
            Ok(_) => {
                self.other.push("the LS closed the connection".to_string());
                false
            }
            Err(e) => {
                self.max_latency = self.max_latency.max(sent.elapsed());
                self.other.push(format!("no reply: {e}"));
                false
            }
        }
    }

    fn merge(&mut self, other: Tally) {
        self.hits += other.hits;
        self.false_misses += other.false_misses;
        self.other.extend(other.other);
        self.max_latency = self.max_latency.max(other.max_latency);
    }
}

/// The name query `index` asks.
fn ts2_name(index: u64) -> (&'static str, &'static str) {
    TS2_NAMES[(index % TS2_NAMES.len() as u64) as usize]
}

/// One load client: its thread(s) ask until `stop`, then finish what is
/// outstanding.
struct Client {
    answered: Arc<Answered>,
    thread: JoinHandle<Tally>,
}

/// Answers a client has had before TS1 is cut off.
const WARM: u64 = 100;

/// Counts a client's answers, and says so on `warm` when there are [`WARM`].
struct Answered {
    count: AtomicU64,
    warm: Sender<()>,
}

impl Answered {
    fn add(&self) {
        if self.count.fetch_add(1, Ordering::Relaxed) + 1 == WARM {
            let _ = self.warm.send(());
        }
    }

    fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

impl Client {
    fn start(stream: TcpStream, load: Load, stop: &Arc<AtomicBool>, warm: &Sender<()>) -> Client {
        stream.set_nodelay(true).unwrap();
        stream.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(REPLY_TIMEOUT)).unwrap();
        let answered = Arc::new(Answered {
            count: AtomicU64::new(0),
            warm: warm.clone(),
        });
        let (stop, counter) = (Arc::clone(stop), Arc::clone(&answered));
        let thread = thread::spawn(move || match load {
            Load::Sequential { .. } => sequential(&stream, &stop, &counter),
            Load::Pipelined { window, .. } => pipelined(stream, window, &stop, &counter),
        });
        Client { answered, thread }
    }

    fn join(self) -> Tally {
        self.thread.join().unwrap()
    }
}

/// Asks, waits for the reply, asks again, until `stop`.
fn sequential(stream: &TcpStream, stop: &AtomicBool, answered: &Answered) -> Tally {
    let mut tally = Tally::default();
    let (mut writer, mut reader) = (stream, BufReader::new(stream));
    let mut index = 0;
    while !stop.load(Ordering::Relaxed) {
        let sent = Instant::now();
        if let Err(e) = writer.write_all(format!("{}\n", ts2_name(index).0).as_bytes()) {
            tally.other.push(format!("sending failed: {e}"));
            break;
        }
        if !tally.read_reply(&mut reader, index, sent) {
            break;
        }
        answered.add();
        index += 1;
    }
    tally
}

/// A writer thread keeps up to `window` queries outstanding until `stop`;
/// this thread reads the replies in order.
fn pipelined(
    stream: TcpStream,
    window: usize,
    stop: &Arc<AtomicBool>,
    answered: &Answered,
) -> Tally {
    // The query being read is out of the channel: window - 1 wait in it.
    let (sent_tx, sent_rx) = crossbeam_channel::bounded::<(u64, Instant)>(window - 1);
    let writer = {
        let (mut stream, stop) = (stream.try_clone().unwrap(), Arc::clone(stop));
        thread::spawn(move || {
            let mut index = 0;
            while !stop.load(Ordering::Relaxed) {
                if sent_tx.send((index, Instant::now())).is_err() {
                    break;
                }
                if stream
                    .write_all(format!("{}\n", ts2_name(index).0).as_bytes())
                    .is_err()
                {
                    break;
                }
                index += 1;
            }
            let _ = stream.shutdown(Direction::Write);
        })
    };
    let mut tally = Tally::default();
    let mut reader = BufReader::new(&stream);
    // Ends once the writer stopped and every query it sent was answered.
    for (index, sent) in sent_rx.iter() {
        if !tally.read_reply(&mut reader, index, sent) {
            break;
        }
        answered.add();
    }
    drop(sent_rx);
    let _ = stream.shutdown(Direction::Both);
    writer.join().unwrap();
    tally
}

/// What a partition under load gave.
#[derive(Debug)]
struct Outcome {
    load: Load,
    tally: Tally,
    /// Replies received while TS1 was cut off.
    answered_during: u64,
    /// From the cut until the LS logged TS1 down, if it did in time.
    marked_down: Option<Duration>,
    /// How long TS1 was cut off with the load running.
    partition: Duration,
    /// From the cut until every client had finished.
    stopped_after: Duration,
    /// Bytes the LS had queued towards TS1 at the end of the partition.
    backlog: u64,
    /// TCP segments TS1 received while cut off, and connections it saw reset.
    ts1_segments_in: u64,
    ts1_resets_in: u64,
}

impl Outcome {
    /// What broke a promise, each described with `what` the load was.
    fn failures(&self, what: &str) -> Vec<String> {
        let mut failures = Vec::new();
        let t = &self.tally;
        if self.marked_down.is_none() {
            failures.push(format!(
                "{what}: the LS did not mark TS1 down within {DETECT_BOUND:?} of the cut"
            ));
        }
        if t.false_misses > 0 {
            failures.push(format!(
                "{what}: {} HOST NOT FOUND for names TS2 holds ({} right answers)",
                t.false_misses, t.hits
            ));
        }
        if t.max_latency > MAX_STALL {
            failures.push(format!(
                "{what}: a query took {:?} (at most {MAX_STALL:?} allowed)",
                t.max_latency
            ));
        }
        if !t.other.is_empty() {
            failures.push(format!(
                "{what}: {} bad replies or lost connections, e.g. {:?}",
                t.other.len(),
                &t.other[..t.other.len().min(3)]
            ));
        }
        // Not a promise of the LS: a check that the cut was a silent partition.
        if self.ts1_segments_in > 0 || self.ts1_resets_in > 0 {
            failures.push(format!(
                "{what}: TS1 received {} segments ({} resets) while cut off: not a partition",
                self.ts1_segments_in, self.ts1_resets_in
            ));
        }
        failures
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = &self.tally;
        write!(
            f,
            "{:?}: {} answers, {} false misses, {} other; longest query {:?}; \
             {} answers during the {:?} partition (TS1 marked down {:?} after the cut); \
             all done {:?} after the cut; \
             LS backlog towards TS1 {} bytes; TS1 received {} segments, {} resets",
            self.load,
            t.hits,
            t.false_misses,
            t.other.len(),
            t.max_latency,
            self.answered_during,
            self.partition,
            self.marked_down,
            self.stopped_after,
            self.backlog,
            self.ts1_segments_in,
            self.ts1_resets_in
        )
    }
}
