//! Helpers for the UDP tests: in-process servers on port 0, fake backends,
//! a small client, and the real binary and the Python lab stand-ins as
//! child processes.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use dnslb::shutdown::Shutdown;
use dnslb::udp::echo::{self, EchoOptions};
use dnslb::udp::lb::{self, Backend, LbOptions, LbStats};
use dnslb::udp::loss::Loss;

/// `n` milliseconds.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A loopback socket on a free port.
pub fn loopback() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").expect("bind a loopback UDP socket")
}

/// A server running in-process; dropping it stops it and waits for it.
pub struct Running {
    pub addr: SocketAddr,
    shutdown: Shutdown,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

impl Running {
    /// Stops the server; panics unless it returns within `bound`.
    pub fn stop_within(mut self, bound: Duration) {
        self.shutdown.trigger();
        let thread = self.thread.take().expect("not stopped yet");
        let (tx, rx) = crossbeam_channel::bounded(1);
        thread::spawn(move || tx.send(thread.join()));
        let result = rx.recv_timeout(bound).expect("server stops in time");
        result.expect("no panic").expect("server returns Ok");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.trigger();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn spawn(
    socket: UdpSocket,
    serve: impl FnOnce(UdpSocket, &Shutdown) -> std::io::Result<()> + Send + 'static,
) -> Running {
    dnslb::log::to_test_harness();
    let addr = socket.local_addr().expect("local address");
    let shutdown = Shutdown::new();
    let handle = shutdown.clone();
    let thread = thread::spawn(move || serve(socket, &handle));
    Running {
        addr,
        shutdown,
        thread: Some(thread),
    }
}

/// An echo server with `loss` and `seed`.
pub fn echo_server(loss: Loss, seed: u64) -> Running {
    echo_server_on(loopback(), loss, seed)
}

/// An echo server with `loss` and `seed` on `socket`.
pub fn echo_server_on(socket: UdpSocket, loss: Loss, seed: u64) -> Running {
    let options = EchoOptions {
        loss,
        seed: Some(seed),
    };
    spawn(socket, move |socket, shutdown| {
        echo::run(socket, options, shutdown)
    })
}

/// An echo server that loses nothing.
pub fn lossless_echo() -> Running {
    echo_server(Loss::NONE, 0)
}

/// A load balancer over `backends`, with `tweak` applied to the default
/// options; its counters are in the returned stats.
pub fn load_balancer(
    backends: &[SocketAddr],
    tweak: impl FnOnce(&mut LbOptions),
) -> (Running, LbStats) {
    let backends = backends
        .iter()
        .enumerate()
        .map(|(i, &addr)| Backend {
            label: format!("server{}", i + 1),
            addr,
        })
        .collect();
    let mut options = LbOptions::new(backends);
    tweak(&mut options);
    let stats = LbStats::new();
    let counters = stats.clone();
    let running = spawn(loopback(), move |socket, shutdown| {
        lb::run(socket, options, &counters, shutdown)
    });
    (running, stats)
}

/// A backend that answers `<tag> <data>`, so tests see who answered. It
/// stops after 10 s without a datagram.
pub fn tagged_backend(tag: &str) -> SocketAddr {
    let socket = loopback();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let addr = socket.local_addr().unwrap();
    let tag = tag.to_string();
    thread::spawn(move || {
        let mut buf = [0; 2048];
        while let Ok((len, peer)) = socket.recv_from(&mut buf) {
            let reply = format!("{tag} {}", String::from_utf8_lossy(&buf[..len]));
            let _ = socket.send_to(reply.as_bytes(), peer);
        }
    });
    addr
}

/// The address of a port nobody listens on (bound, then released).
pub fn dead_port() -> SocketAddr {
    loopback().local_addr().unwrap()
}

/// A client socket connected to `server`.
pub struct Client {
    pub socket: UdpSocket,
}

impl Client {
    pub fn new(server: SocketAddr) -> Client {
        let socket = loopback();
        socket.connect(server).expect("connect");
        Client { socket }
    }

    pub fn send(&self, data: &str) {
        self.socket.send(data.as_bytes()).expect("send");
    }

    /// The next datagram within `timeout`, as text.
    pub fn recv(&self, timeout: Duration) -> Option<String> {
        let mut buf = vec![0; 70_000];
        self.recv_bytes(&mut buf, timeout)
            .map(|len| String::from_utf8_lossy(&buf[..len]).into_owned())
    }

    /// The next datagram within `timeout` into `buf`; its length.
    pub fn recv_bytes(&self, buf: &mut [u8], timeout: Duration) -> Option<usize> {
        self.socket.set_read_timeout(Some(timeout)).unwrap();
        self.socket.recv(buf).ok()
    }

    /// Sends `data`, returns the reply within `timeout`.
    pub fn ask(&self, data: &str, timeout: Duration) -> Option<String> {
        self.send(data);
        self.recv(timeout)
    }
}

/// The dnslb binary or a Python stand-in, running; killed when dropped.
pub struct Process {
    pub child: Child,
    /// The lines of stdout after the first.
    pub lines: Receiver<String>,
    /// The address from its `listening on` line (servers only).
    pub addr: Option<SocketAddr>,
}

impl Process {
    /// Waits for the process to exit, at most `bound`: its stdout closing
    /// is the exit itself (lines not read yet are discarded).
    pub fn wait_within(&mut self, bound: Duration) -> ExitStatus {
        let deadline = Instant::now() + bound;
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(_) => {}
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!("process still running after {bound:?}"),
            }
        }
        self.child.wait().expect("wait for the process")
    }

    /// Every line of stdout until it closes, at most `bound`.
    pub fn read_all(&self, bound: Duration) -> Vec<String> {
        let deadline = Instant::now() + bound;
        let mut lines = Vec::new();
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => lines.push(line),
                Err(RecvTimeoutError::Disconnected) => return lines,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("output not finished after {bound:?}; so far: {lines:#?}")
                }
            }
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `command` with stdout piped; its stderr goes to the test's
/// captured output (shown only if the test fails).
fn start(mut command: Command, server: bool) -> Process {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    let stderr = child.stderr.take().expect("piped stderr");
    // Spawned from the test's thread, so eprintln! goes to the test's capture.
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("{line}");
        }
    });
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, lines) = crossbeam_channel::unbounded();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut process = Process {
        child,
        lines,
        addr: None,
    };
    if server {
        let first = process
            .lines
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("no `listening on` line from {command:?}: {e}"));
        let addr = first
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"));
        process.addr = Some(addr);
    }
    process
}

/// `dnslb <args>`.
pub fn dnslb(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dnslb"));
    command.args(args);
    command
}

/// Starts a dnslb server and reads its address.
pub fn dnslb_server(args: &[&str]) -> Process {
    start(dnslb(args), true)
}

/// Runs `dnslb <args>` to the end: exit status and stdout.
pub fn dnslb_output(args: &[&str], bound: Duration) -> (ExitStatus, String) {
    let mut process = start(dnslb(args), false);
    let lines = process.read_all(bound);
    let status = process.wait_within(bound);
    (status, lines.join("\n"))
}

/// A Python stand-in of the lab's programs, from tests/udp_lab.
pub fn python(script: &str, args: &[&str], server: bool) -> Process {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "udp_lab", script]
        .iter()
        .collect();
    let mut command = Command::new("python3");
    command.arg("-u").arg(path).args(args);
    start(command, server)
}
