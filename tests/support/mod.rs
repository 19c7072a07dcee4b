//! Shared test helpers: servers started in-process on 127.0.0.1:0, the real
//! binary started with its `listening on` line read, fake TSes and
//! course-style peers. Every wait here is bounded.
//!
//! What the servers log, in-process or as child processes, goes to the test
//! harness's capture: shown with a failing test's output, hidden otherwise.
#![allow(dead_code)] // Each test file uses a different part.

pub mod dns;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown as Direction, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_channel::Receiver;

use dnslb::ls::{self, Backend, LsOptions};
use dnslb::shutdown::Shutdown;
use dnslb::table;
use dnslb::ts::{self, TsOptions};

/// `n` milliseconds.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The longest any single wait in a test may take before the test fails.
pub const BOUND: Duration = Duration::from_secs(10);

/// A server running in-process; stopped (and joined) on drop.
pub struct Server {
    pub addr: SocketAddr,
    pub shutdown: Shutdown,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Triggers shutdown and waits (bounded) for the server to return.
    pub fn stop(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.shutdown.trigger();
        if let Some(thread) = self.thread.take() {
            let (tx, rx) = crossbeam_channel::bounded(1);
            thread::spawn(move || {
                let _ = tx.send(thread.join());
            });
            let joined = rx.recv_timeout(BOUND).expect("server did not stop in time");
            joined.expect("server thread panicked");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if !thread::panicking() {
            self.stop_and_join();
        } else {
            self.shutdown.trigger();
        }
    }
}

fn spawn_server(run: impl FnOnce(TcpListener, Shutdown) + Send + 'static) -> Server {
    dnslb::log::to_test_harness();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = Shutdown::new();
    let handle = shutdown.clone();
    let thread = thread::spawn(move || run(listener, handle));
    Server {
        addr,
        shutdown,
        thread: Some(thread),
    }
}

/// A TS serving `table` (table-file text) with `options`.
pub fn start_ts_with(table: &str, options: TsOptions) -> Server {
    let table = Arc::new(table::parse(table.as_bytes()).expect("test table parses"));
    spawn_server(move |listener, shutdown| {
        ts::run(
            vec![ts::FrontEnd::Course(listener)],
            table,
            options,
            &shutdown,
        )
        .unwrap()
    })
}

/// A TS serving `table` with the default options.
pub fn start_ts(table: &str) -> Server {
    start_ts_with(table, TsOptions::default())
}

/// Backends labelled ts1, ts2, ... for these addresses.
pub fn backends(addrs: &[SocketAddr]) -> Vec<Backend> {
    addrs
        .iter()
        .enumerate()
        .map(|(i, addr)| Backend {
            label: format!("ts{}", i + 1),
            host: addr.ip().to_string(),
            addrs: vec![*addr],
        })
        .collect()
}

/// An LS forwarding to `ts` with `timeout` and otherwise default options,
/// adjusted by `tweak`.
pub fn start_ls_with(
    ts: &[SocketAddr],
    timeout: Duration,
    tweak: impl FnOnce(&mut LsOptions),
) -> Server {
    let mut options = LsOptions::new(backends(ts));
    options.timeout = timeout;
    tweak(&mut options);
    spawn_server(move |listener, shutdown| ls::run(listener, options, &shutdown).unwrap())
}

/// An LS forwarding to `ts` with `timeout`.
pub fn start_ls(ts: &[SocketAddr], timeout: Duration) -> Server {
    start_ls_with(ts, timeout, |_| {})
}

/// An address where nothing listens.
pub fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// A line-protocol connection: one query line out, one reply line in.
pub struct LineClient {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl LineClient {
    pub fn connect(addr: SocketAddr) -> LineClient {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(BOUND)).unwrap();
        LineClient {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        }
    }

    /// Sends raw bytes as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    /// Sends `name` and a newline.
    pub fn send(&mut self, name: &str) {
        self.send_raw(format!("{name}\n").as_bytes());
    }

    /// The next reply line, without line ending; panics on end of stream or timeout.
    pub fn recv(&mut self) -> String {
        self.try_recv().expect("connection closed before a reply")
    }

    /// The next reply line, or `None` at end of stream.
    pub fn try_recv(&mut self) -> Option<String> {
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .expect("reply within the bound");
        (n > 0).then(|| line.trim_end_matches(['\r', '\n']).to_string())
    }

    /// Sends `name` and returns its reply.
    pub fn ask(&mut self, name: &str) -> String {
        self.send(name);
        self.recv()
    }

    /// The sending half, for tests that write on their own.
    pub fn writer(&self) -> &TcpStream {
        &self.writer
    }

    /// Closes the sending half (the peer sees end of stream).
    pub fn finish_sending(&self) {
        self.writer.shutdown(Direction::Write).unwrap();
    }
}

/// A course-style peer: each message is one bare `send()` without newline,
/// each reply one `recv()`.
pub struct BareClient {
    stream: TcpStream,
}

impl BareClient {
    pub fn connect(addr: SocketAddr) -> BareClient {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(BOUND)).unwrap();
        BareClient { stream }
    }

    /// `send(name)` then one `recv(200)`, as the course client does.
    pub fn ask(&mut self, name: &str) -> String {
        self.stream.write_all(name.as_bytes()).unwrap();
        let mut buf = [0u8; 200];
        let n = self.stream.read(&mut buf).expect("reply within the bound");
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }
}

/// A fake server on 127.0.0.1:0 running `handle` on each connection, in its
/// own thread; the threads end when their peers close.
pub fn fake_server(handle: impl Fn(TcpStream) + Send + Sync + 'static) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = Arc::new(handle);
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let handle = Arc::clone(&handle);
            thread::spawn(move || handle(stream));
        }
    });
    addr
}

/// A TS that always answers late: each query is answered only when the
/// next query arrives, so the answer reaches the LS while it waits for a
/// different name.
pub fn lagging_ts() -> SocketAddr {
    fake_server(|stream| {
        let mut writer = stream.try_clone().unwrap();
        let mut previous: Option<String> = None;
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { return };
            if let Some(name) = previous.replace(line.trim().to_string()) {
                let _ = writer.write_all(format!("{name} 6.6.6.6 A\n").as_bytes());
            }
        }
    })
}

/// A course-style TS: one `recv()` per query, answers `name ip A` with one
/// bare `send()` (no newline) for the names in `table`, silent otherwise.
pub fn course_ts(table: &'static [(&'static str, &'static str)]) -> SocketAddr {
    fake_server(move |mut stream| {
        let mut buf = [0u8; 200];
        loop {
            let n = match stream.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let query = String::from_utf8_lossy(&buf[..n]).trim().to_string();
            if let Some((name, ip)) = table
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(&query))
            {
                let _ = stream.write_all(format!("{name} {ip} A").as_bytes());
            }
        }
    })
}

/// Path of a file in the repository's data/ folder.
pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(name)
}

/// The real `dnslb` binary, running; killed on drop if still running.
pub struct Running {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Running {
    /// Sends `signal` (e.g. `libc::SIGINT`) to the process.
    pub fn signal(&self, signal: i32) {
        let pid = i32::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on a child we started and have not reaped.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    }

    /// Waits (bounded) for the process to exit.
    pub fn wait(mut self) -> ExitStatus {
        wait_bounded(&mut self.child, BOUND)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `dnslb <args>` and reads its `listening on <addr>` line (bounded).
pub fn spawn_server_bin(args: &[&str]) -> Running {
    spawn_server_bin_stderr(args).0
}

/// Like [`spawn_server_bin`], with the server's stderr lines also on a channel.
pub fn spawn_server_bin_stderr(args: &[&str]) -> (Running, Receiver<String>) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dnslb"));
    command.args(args);
    spawn_logged(command)
}

/// Passes each line `child` writes on its (piped) stderr to the test
/// harness's capture, and to the returned channel while it is held.
pub fn capture_stderr(child: &mut Child) -> Receiver<String> {
    let stderr = child.stderr.take().expect("stderr is piped");
    let pid = child.id();
    let (tx, rx) = crossbeam_channel::unbounded();
    // Spawned from the test's thread, so eprintln! goes to the test's capture.
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[{pid}] {line}");
            let _ = tx.send(line);
        }
    });
    rx
}

/// The next line on `lines` that contains `needle` (bounded wait).
pub fn line_containing(lines: &Receiver<String>, needle: &str) -> String {
    loop {
        let line = lines
            .recv_timeout(BOUND)
            .unwrap_or_else(|_| panic!("no line containing {needle:?}"));
        if line.contains(needle) {
            return line;
        }
    }
}

/// The two course TSes (data/PROJ2-DNSTS1.txt and PROJ2-DNSTS2.txt) as
/// processes on loopback.
pub fn course_tses() -> (Running, Running) {
    let start = |table: &str| {
        let table = data(table);
        spawn_server_bin(&[
            "ts",
            "0",
            "--bind",
            "127.0.0.1",
            "--table",
            table.to_str().unwrap(),
        ])
    };
    (start("PROJ2-DNSTS1.txt"), start("PROJ2-DNSTS2.txt"))
}

/// Waits for `child` to exit, killing it and failing after `bound`.
pub fn wait_bounded(child: &mut Child, bound: Duration) -> ExitStatus {
    let pid = child.id();
    let (tx, rx) = crossbeam_channel::bounded::<()>(1);
    let watchdog = thread::spawn(move || {
        if rx.recv_timeout(bound).is_err() {
            // SAFETY: kill(2) on our own child; at worst it has already exited.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            return true;
        }
        false
    });
    let status = child.wait().unwrap();
    let _ = tx.send(());
    assert!(
        !watchdog.join().unwrap(),
        "process {pid} did not exit within {bound:?}"
    );
    status
}

/// Runs `dnslb <args>` to completion (bounded) in `dir`; returns status, stdout, stderr.
pub fn run_bin(dir: &Path, args: &[&str]) -> (ExitStatus, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dnslb"))
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let status = wait_bounded(&mut child, BOUND);
    (status, out.join().unwrap(), err.join().unwrap())
}

/// A TS that accepts and reads but never answers.
pub fn silent_ts() -> SocketAddr {
    fake_server(|mut stream| {
        let mut buf = [0u8; 4096];
        while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
    })
}

/// A TS that answers every query from `table` after `delay`, in order.
pub fn slow_ts(table: &'static [(&'static str, &'static str)], delay: Duration) -> SocketAddr {
    fake_server(move |stream| {
        let mut writer = stream.try_clone().unwrap();
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { return };
            let query = line.trim().to_string();
            if let Some((name, ip)) = table
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(&query))
            {
                // Simulates a slow server; nothing waits on this sleep.
                thread::sleep(delay);
                let _ = writer.write_all(format!("{name} {ip} A\n").as_bytes());
            }
        }
    })
}

/// A TS that answers each query with junk first: garbage, an answer for
/// another name, an over-long line and a non-UTF-8 line, then the true
/// answer `<query> 7.7.7.7 A`.
pub fn lying_ts() -> SocketAddr {
    fake_server(|stream| {
        let mut writer = stream.try_clone().unwrap();
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { return };
            let mut junk = b"garbage\nother.name 1.2.3.4 A\n".to_vec();
            junk.extend_from_slice(&[b'y'; 10_000]);
            junk.extend_from_slice(b"\n\xff\xfe 1.2.3.4 A\n");
            junk.extend_from_slice(format!("{} 7.7.7.7 A\n", line.trim()).as_bytes());
            if writer.write_all(&junk).is_err() {
                return;
            }
        }
    })
}

/// A TS that crashes: it takes one connection, answers `<query> 9.9.9.9 A`
/// to its first `n` queries, then closes that connection and stops
/// listening (a new connection is refused).
pub fn crashing_ts(n: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else {
            return;
        };
        drop(listener);
        let mut writer = stream.try_clone().unwrap();
        for line in BufReader::new(stream).lines().take(n) {
            let Ok(line) = line else { return };
            let _ = writer.write_all(format!("{} 9.9.9.9 A\n", line.trim()).as_bytes());
        }
    });
    addr
}

/// A TS on a given address (to restart one where it was).
pub fn start_ts_at(addr: SocketAddr, table: &str) -> Server {
    dnslb::log::to_test_harness();
    let table = Arc::new(table::parse(table.as_bytes()).expect("test table parses"));
    let listener = TcpListener::bind(addr).unwrap();
    let shutdown = Shutdown::new();
    let handle = shutdown.clone();
    let thread = thread::spawn(move || {
        ts::run(
            vec![ts::FrontEnd::Course(listener)],
            table,
            TsOptions::default(),
            &handle,
        )
        .unwrap()
    });
    Server {
        addr,
        shutdown,
        thread: Some(thread),
    }
}

/// An LS that tests can read counters from while it runs.
pub struct LsServer {
    pub server: Server,
    pub ls: Arc<dnslb::ls::Ls>,
}

impl LsServer {
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// The counters once every client connection has ended (bounded wait).
    pub fn settled_snapshot(&self) -> dnslb::ls::Snapshot {
        assert!(
            self.ls.stats().connections.wait_open_at_most(0, BOUND),
            "client connections still open"
        );
        self.ls.snapshot()
    }
}

/// Like [`start_ls_with`], keeping a handle on the LS's counters.
pub fn start_ls_observed(
    ts: &[SocketAddr],
    timeout: Duration,
    tweak: impl FnOnce(&mut LsOptions),
) -> LsServer {
    let mut options = LsOptions::new(backends(ts));
    options.timeout = timeout;
    tweak(&mut options);
    let ls = Arc::new(dnslb::ls::Ls::new(options).unwrap());
    let runner = Arc::clone(&ls);
    let server = spawn_server(move |listener, shutdown| {
        runner
            .run(vec![dnslb::ls::FrontEnd::Course(listener)], &shutdown)
            .unwrap()
    });
    LsServer { server, ls }
}

/// Starts `command` (any server that prints `listening on <addr>` as its
/// first stdout line, e.g. scripts/select_ls.py) and reads that line
/// (bounded). Its stderr goes to the test's captured output.
pub fn spawn_server_command(command: Command) -> Running {
    spawn_logged(command).0
}

/// Like [`spawn_server_command`], with the server's stderr lines also on a channel.
pub fn spawn_logged(mut command: Command) -> (Running, Receiver<String>) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    let log = capture_stderr(&mut child);
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = crossbeam_channel::bounded(1);
    thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let _ = tx.send(lines.next());
        // Keep draining so the server never blocks on a full pipe.
        for _ in lines {}
    });
    let line = match rx.recv_timeout(BOUND) {
        Ok(Some(Ok(line))) => line,
        other => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} did not print its listening line: {other:?}");
        }
    };
    let addr: SocketAddr = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();
    let running = Running {
        child,
        addr: dnslb::net::reachable_addr(addr),
    };
    (running, log)
}
