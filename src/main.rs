//! The `dnslb` command: parses the command line and starts one role. The only
//! place that touches argh and ctrlc.
//!
//! Exit codes: 0 on success (and after Ctrl-C or SIGTERM), 1 when the client
//! fails at run time or the bench saw a wrong answer or lost a connection,
//! 2 for bad usage or configuration. `ping` exits 0 when any reply came, 1
//! when none did or its host does not resolve.

use std::io::{self, IsTerminal, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use argh::FromArgs;

use dnslb::bench::{self, BenchOptions, Names};
use dnslb::client::{self, ClientOptions};
use dnslb::framing::Framing;
use dnslb::ls::{self, Backend, Ls, LsOptions};
use dnslb::server::{self, Shutdown};
use dnslb::table::Table;
use dnslb::ts::{self, TsOptions};
use dnslb::udp::echo::{self, EchoOptions};
use dnslb::udp::flood::{self, FloodOptions};
use dnslb::udp::lb::{self as udp_lb, LbOptions, LbStats};
use dnslb::udp::loss::Loss;
use dnslb::udp::ping::{self, PingOptions};
use dnslb::wire::Dialect;
use dnslb::{log, net};

/// Load balancing across DNS servers: top-level servers, a load-balancing
/// server and a client.
#[derive(FromArgs)]
struct Cli {
    #[argh(subcommand)]
    role: Role,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Role {
    Ts(TsArgs),
    Ls(LsArgs),
    Client(ClientArgs),
    Bench(BenchArgs),
    UdpEcho(UdpEchoArgs),
    UdpLb(UdpLbArgs),
    Ping(PingArgs),
}

/// Run a top-level server (TS): answer names from a table, stay silent on the rest.
#[derive(FromArgs)]
#[argh(subcommand, name = "ts")]
struct TsArgs {
    /// port to listen on (0: any free port)
    #[argh(positional)]
    port: u16,
    /// table file: one `hostname ip A` per line
    #[argh(option)]
    table: PathBuf,
    /// address to listen on (default 0.0.0.0, all IPv4 interfaces)
    #[argh(option, default = "String::from(\"0.0.0.0\")")]
    bind: String,
    /// answer format: 2020 (`name ip A`, default) or 2022 (`name ip A IN`)
    #[argh(option, default = "Dialect::Y2020")]
    dialect: Dialect,
    /// query framing: auto (default, detect per connection), line or bare
    #[argh(option, default = "Framing::Auto")]
    framing: Framing,
    /// reply `<name> - NOT FOUND` to names not in the table instead of staying silent
    #[argh(switch)]
    answer_misses: bool,
    /// most connections at once; one more is closed at once (default 4096,
    /// lowered to what `ulimit -n` allows)
    #[argh(option, default = "ts::DEFAULT_MAX_CLIENTS")]
    max_clients: usize,
    /// close a connection that sends nothing for this many seconds (default 600)
    #[argh(
        option,
        default = "ts::DEFAULT_IDLE_TIMEOUT",
        from_str_fn(parse_seconds)
    )]
    idle_timeout: Duration,
    /// log every query on stderr
    #[argh(switch, short = 'v')]
    verbose: bool,
}

/// Run the load-balancing server (LS): forward each query to every TS, relay
/// the first answer or a miss after the timeout.
#[derive(FromArgs)]
#[argh(subcommand, name = "ls")]
struct LsArgs {
    /// port to listen on (0: any free port)
    #[argh(positional)]
    port: u16,
    /// TS host and port pairs: <ts-host> <ts-port> [<ts-host> <ts-port> ...]
    #[argh(positional)]
    ts: Vec<String>,
    /// seconds a query waits for an answer (default 5, fractions allowed)
    #[argh(option, default = "ls::DEFAULT_TIMEOUT", from_str_fn(parse_seconds))]
    timeout: Duration,
    /// address to listen on (default 0.0.0.0, all IPv4 interfaces)
    #[argh(option, default = "String::from(\"0.0.0.0\")")]
    bind: String,
    /// miss format: 2020 (`name - Error:HOST NOT FOUND`, default) or 2022 (`name - TIMED OUT`)
    #[argh(option, default = "Dialect::Y2020")]
    dialect: Dialect,
    /// client query framing: auto (default, detect per connection), line or bare
    #[argh(option, default = "Framing::Auto")]
    framing: Framing,
    /// framing towards the TSes: line (default) or bare (course Python TSes)
    #[argh(option, default = "Framing::Line")]
    ts_framing: Framing,
    /// most queries in flight per client before the LS stops reading it (default 4096)
    #[argh(option, default = "4096")]
    max_inflight: usize,
    /// most clients at once; one more gets `- Error:SERVER BUSY` (default
    /// 1024, lowered to what `ulimit -n` allows)
    #[argh(option, default = "1024")]
    max_clients: usize,
    /// close a client that sends nothing for this many seconds (default 300)
    #[argh(
        option,
        default = "Duration::from_secs(300)",
        from_str_fn(parse_seconds)
    )]
    idle_timeout: Duration,
    /// log every query on stderr (name, which TS answered, time taken) and the counters every 10 s
    #[argh(switch, short = 'v')]
    verbose: bool,
}

/// Resolve every hostname of a file through an LS; write the replies to a file.
#[derive(FromArgs)]
#[argh(subcommand, name = "client")]
struct ClientArgs {
    /// LS host (name or address)
    #[argh(positional)]
    ls_host: String,
    /// LS port
    #[argh(positional)]
    ls_port: u16,
    /// hostnames, one per line (default PROJ2-HNS.txt)
    #[argh(option, default = "PathBuf::from(\"PROJ2-HNS.txt\")")]
    input: PathBuf,
    /// where the replies go, one line per query (default RESOLVED.txt)
    #[argh(option, default = "PathBuf::from(\"RESOLVED.txt\")")]
    output: PathBuf,
    /// framing: line (default) or bare (a course Python LS)
    #[argh(option, default = "Framing::Line")]
    framing: Framing,
    /// seconds to wait for each reply before giving up (default 30)
    #[argh(
        option,
        default = "Duration::from_secs(30)",
        from_str_fn(parse_seconds)
    )]
    reply_timeout: Duration,
    /// queries sent ahead of their replies (default 1: wait for each reply, as the course client does)
    #[argh(option, default = "1")]
    pipeline: usize,
}

/// Drive an LS or a TS with many clients and check every reply; prints
/// throughput, latency percentiles and counts of hits, misses, errors and
/// wrong answers. Exit 0 when no reply was wrong and no connection failed,
/// 1 otherwise, 2 for bad usage.
#[derive(FromArgs)]
#[argh(subcommand, name = "bench")]
struct BenchArgs {
    /// server host (name or address)
    #[argh(positional)]
    host: String,
    /// server port
    #[argh(positional)]
    port: u16,
    /// concurrent clients, each with its own connection (default 1)
    #[argh(option, default = "1")]
    clients: usize,
    /// queries per client (default 1000)
    #[argh(option, default = "1000")]
    queries: usize,
    /// names to ask: a TS table file (`name ip A`, answers are checked against
    /// it) or one hostname per line (default: the course tables, built in)
    #[argh(option)]
    names: Option<PathBuf>,
    /// fraction (0 to 1) of queries for made-up names no TS holds (default 0);
    /// a TS is silent on those, so against a TS each costs a --timeout
    #[argh(option, default = "0.0", from_str_fn(parse_ratio))]
    miss_ratio: f64,
    /// queries kept outstanding per connection (default 1: one at a time)
    #[argh(option, default = "1")]
    pipeline: usize,
    /// the course programs' framing: one write per query without newline,
    /// each reply one read; one query at a time
    #[argh(switch)]
    raw: bool,
    /// seconds to wait for each reply before counting a timeout (default 30);
    /// a reply that comes later is counted late and dropped
    #[argh(
        option,
        default = "bench::DEFAULT_REPLY_TIMEOUT",
        from_str_fn(parse_seconds)
    )]
    timeout: Duration,
}

/// Parses a fraction between 0 and 1.
fn parse_ratio(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
        _ => Err(format!("{text:?}: expected a fraction from 0 to 1")),
    }
}

/// Run a UDP echo ("ping") server: upper-case each datagram and send it
/// back, dropping some on purpose like the course's servers.
#[derive(FromArgs)]
#[argh(subcommand, name = "udp-echo")]
struct UdpEchoArgs {
    /// port to listen on (0: any free port)
    #[argh(positional)]
    port: u16,
    /// fraction of datagrams dropped: 4/11 (default, the course's
    /// `randint(0, 10) < 4`), 0.3636, 0, ...
    #[argh(option, default = "Loss::COURSE")]
    loss: Loss,
    /// seed of the drop pattern: the same seed drops the same datagrams
    /// (default: random)
    #[argh(option)]
    seed: Option<u64>,
    /// address to listen on (default 0.0.0.0, all IPv4 interfaces)
    #[argh(option, default = "String::from(\"0.0.0.0\")")]
    bind: String,
    /// log every datagram on stderr
    #[argh(switch, short = 'v')]
    verbose: bool,
}

/// Run the UDP load balancer: hand each datagram to the next backend in
/// turn, relay each reply to the client that sent the request.
#[derive(FromArgs)]
#[argh(subcommand, name = "udp-lb")]
struct UdpLbArgs {
    /// port to listen on (0: any free port)
    #[argh(positional)]
    port: u16,
    /// backend host and port pairs: <backend-host> <backend-port> [...]
    #[argh(positional)]
    backends: Vec<String>,
    /// seconds a client session may stay idle before its sockets and
    /// threads are freed (default 60, fractions allowed)
    #[argh(
        option,
        default = "udp_lb::DEFAULT_SESSION_TIMEOUT",
        from_str_fn(parse_seconds)
    )]
    session_timeout: Duration,
    /// seconds a backend that refused a datagram (ICMP port unreachable) is
    /// skipped before it is retried (default 10)
    #[argh(
        option,
        default = "udp_lb::DEFAULT_FAIL_TIMEOUT",
        from_str_fn(parse_seconds)
    )]
    fail_timeout: Duration,
    /// most client sessions open at once; datagrams from new clients are
    /// dropped while that many are (default 4096)
    #[argh(option, default = "udp_lb::DEFAULT_MAX_SESSIONS")]
    max_sessions: usize,
    /// address to listen on (default 0.0.0.0, all IPv4 interfaces)
    #[argh(option, default = "String::from(\"0.0.0.0\")")]
    bind: String,
    /// log every datagram on stderr: client, backend, data
    #[argh(switch, short = 'v')]
    verbose: bool,
}

/// Ping a UDP echo server or load balancer: numbered pings, one at a time,
/// then a summary like ping(8). Exit 0 if any reply came, 1 otherwise.
#[derive(FromArgs)]
#[argh(subcommand, name = "ping")]
struct PingArgs {
    /// server host (name or address)
    #[argh(positional)]
    host: String,
    /// server port
    #[argh(positional)]
    port: u16,
    /// pings to send (default 10; 100000 with --flood)
    #[argh(option)]
    count: Option<u64>,
    /// seconds each ping waits for its reply (default 1, fractions allowed)
    #[argh(option, default = "Duration::from_secs(1)", from_str_fn(parse_seconds))]
    timeout: Duration,
    /// least seconds from one ping to the next (default: none, the next ping
    /// goes as soon as the previous one is answered or timed out)
    #[argh(option, from_str_fn(parse_seconds))]
    interval: Option<Duration>,
    /// measure throughput instead: keep --window pings in flight, print
    /// datagrams per second
    #[argh(switch)]
    flood: bool,
    /// pings in flight with --flood (default 64)
    #[argh(option, default = "64")]
    window: usize,
}

/// Parses a positive number of seconds, fractions allowed.
fn parse_seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(secs.is_finite() && secs > 0.0 && secs <= 86_400.0) {
        return Err(format!(
            "{text:?}: expected seconds above 0 and at most 86400"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A usage or configuration error: printed, exit code 2.
struct Usage(String);

fn main() -> ExitCode {
    let cli = match parse_command_line() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let result = match cli.role {
        Role::Ts(args) => run_ts(args),
        Role::Ls(args) => run_ls(args),
        Role::Client(args) => return run_client(args),
        Role::Bench(args) => return run_bench(args),
        Role::UdpEcho(args) => run_udp_echo(args),
        Role::UdpLb(args) => run_udp_lb(args),
        Role::Ping(args) => return run_ping(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Usage(message)) => {
            log::warn(format_args!("{message}"));
            ExitCode::from(2)
        }
    }
}

fn parse_command_line() -> Result<Cli, ExitCode> {
    let mut args = Vec::new();
    for arg in std::env::args_os().skip(1) {
        match arg.into_string() {
            Ok(arg) => args.push(arg),
            Err(arg) => {
                log::warn(format_args!("argument {arg:?} is not valid UTF-8"));
                return Err(ExitCode::from(2));
            }
        }
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Cli::from_args(&["dnslb"], &args).map_err(|exit| match exit.status {
        Ok(()) => {
            println!("{}", exit.output);
            ExitCode::SUCCESS
        }
        Err(()) => {
            eprintln!("{}", exit.output);
            ExitCode::from(2)
        }
    })
}

fn run_ts(args: TsArgs) -> Result<(), Usage> {
    log::set_verbose(args.verbose);
    let table = Table::load(&args.table).map_err(|e| Usage(e.to_string()))?;
    if args.max_clients == 0 {
        return Err(Usage("--max-clients must be at least 1".into()));
    }
    let shutdown = stop_on_signal();
    let listener = bind(&args.bind, args.port)?;
    let options = TsOptions {
        dialect: args.dialect,
        framing: args.framing,
        answer_misses: args.answer_misses,
        max_clients: server::fit_to_descriptors(
            "ts",
            "--max-clients",
            args.max_clients,
            ts::DESCRIPTORS_PER_CONNECTION,
        ),
        idle_timeout: args.idle_timeout,
    };
    ts::run(listener, Arc::new(table), options, &shutdown).map_err(|e| Usage(format!("ts: {e}")))
}

fn run_ls(args: LsArgs) -> Result<(), Usage> {
    log::set_verbose(args.verbose);
    let backends = parse_backends(&args.ts)?;
    if args.max_inflight == 0 || args.max_clients == 0 {
        return Err(Usage(
            "--max-inflight and --max-clients must be at least 1".into(),
        ));
    }
    // After the signal handler's descriptors, before the listener's (one
    // of the spares).
    let shutdown = stop_on_signal();
    let per_client = ls::descriptors_per_client(backends.len());
    let max_clients =
        server::fit_to_descriptors("ls", "--max-clients", args.max_clients, per_client);
    let options = LsOptions {
        timeout: args.timeout,
        dialect: args.dialect,
        client_framing: args.framing,
        ts_framing: args.ts_framing,
        max_inflight: args.max_inflight,
        max_clients,
        idle_timeout: args.idle_timeout,
        ..LsOptions::new(backends)
    };
    let ls = Ls::new(options).map_err(Usage)?;
    let listener = bind(&args.bind, args.port)?;
    ls.check_backends();
    ls.run(listener, &shutdown)
        .map_err(|e| Usage(format!("ls: {e}")))
}

fn run_client(args: ClientArgs) -> ExitCode {
    let addrs = match net::resolve(&args.ls_host, args.ls_port) {
        Ok(addrs) => addrs,
        Err(message) => {
            log::warn(format_args!("{message}"));
            return ExitCode::from(1);
        }
    };
    let options = ClientOptions {
        framing: args.framing,
        reply_timeout: args.reply_timeout,
        pipeline: args.pipeline.max(1),
    };
    let mut stdout = io::stdout().lock();
    match client::resolve_file(&addrs, &args.input, &args.output, options, &mut stdout) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = stdout.flush();
            log::warn(format_args!("{e}"));
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

fn run_bench(args: BenchArgs) -> ExitCode {
    let usage = |message: String| {
        log::warn(format_args!("{message}"));
        ExitCode::from(2)
    };
    if args.clients == 0 || args.queries == 0 || args.pipeline == 0 {
        return usage("--clients, --queries and --pipeline must be at least 1".to_string());
    }
    if args.raw && args.pipeline > 1 {
        return usage(
            "--raw sends one query at a time; it cannot be used with --pipeline".to_string(),
        );
    }
    let names = match &args.names {
        Some(path) => match Names::load(path) {
            Ok(names) => names,
            Err(e) => return usage(e.to_string()),
        },
        None => Names::course(),
    };
    let addrs = match net::resolve(&args.host, args.port) {
        Ok(addrs) => addrs,
        Err(message) => {
            log::warn(format_args!("{message}"));
            return ExitCode::from(1);
        }
    };
    let options = BenchOptions {
        clients: args.clients,
        queries: args.queries,
        miss_ratio: args.miss_ratio,
        pipeline: args.pipeline,
        framing: if args.raw {
            Framing::Bare
        } else {
            Framing::Line
        },
        reply_timeout: args.timeout,
        progress: io::stderr().is_terminal(),
    };
    let report = bench::run(&addrs, names, &options);
    let mut stdout = io::stdout().lock();
    let _ = write!(stdout, "{report}");
    let _ = stdout.flush();
    if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        log::warn(format_args!(
            "bench: {} wrong answer(s), {} connection failure(s)",
            report.wrong,
            report.failures.len()
        ));
        ExitCode::from(1)
    }
}

fn run_udp_echo(args: UdpEchoArgs) -> Result<(), Usage> {
    log::set_verbose(args.verbose);
    // Before announcing the socket: a script may signal as soon as it reads the line.
    let shutdown = stop_on_signal();
    let socket = bind_udp(&args.bind, args.port)?;
    let options = EchoOptions {
        loss: args.loss,
        seed: args.seed,
    };
    echo::run(socket, options, &shutdown).map_err(|e| Usage(format!("udp-echo: {e}")))
}

fn run_udp_lb(args: UdpLbArgs) -> Result<(), Usage> {
    log::set_verbose(args.verbose);
    if args.max_sessions == 0 {
        return Err(Usage("--max-sessions must be at least 1".to_string()));
    }
    let backends = parse_udp_backends(&args.backends)?;
    // Before announcing the socket: a script may signal as soon as it reads the line.
    let shutdown = stop_on_signal();
    let socket = bind_udp(&args.bind, args.port)?;
    let options = LbOptions {
        session_timeout: args.session_timeout,
        fail_timeout: args.fail_timeout,
        max_sessions: args.max_sessions,
        ..LbOptions::new(backends)
    };
    udp_lb::run(socket, options, &LbStats::new(), &shutdown)
        .map_err(|e| Usage(format!("udp-lb: {e}")))
}

fn run_ping(args: PingArgs) -> ExitCode {
    if args.count == Some(0) || args.window == 0 {
        log::warn(format_args!("--count and --window must be at least 1"));
        return ExitCode::from(2);
    }
    let target = match net::resolve(&args.host, args.port) {
        Ok(addrs) => net::datagram_target(&addrs),
        Err(message) => {
            log::warn(format_args!("{message}"));
            return ExitCode::from(1);
        }
    };
    let name = format!("{}:{}", args.host, args.port);
    let mut stdout = io::stdout().lock();
    let answered = if args.flood {
        let options = FloodOptions {
            count: args.count.unwrap_or(FloodOptions::default().count),
            window: args.window,
            timeout: args.timeout,
        };
        flood::run(target, options).map(|report| {
            let _ = writeln!(stdout, "{name} ({target}): {report}");
            report.received > 0
        })
    } else {
        let options = PingOptions {
            count: args.count.unwrap_or(PingOptions::default().count),
            timeout: args.timeout,
            interval: args.interval,
        };
        ping::run(target, &name, options, &mut stdout).map(|summary| summary.any_reply())
    };
    let _ = stdout.flush();
    match answered {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            log::warn(format_args!("ping {name}: {e}"));
            ExitCode::from(1)
        }
    }
}

/// `<host> <port>` pairs into UDP backends labelled server1, server2, ...
/// (the first address of each host).
fn parse_udp_backends(words: &[String]) -> Result<Vec<udp_lb::Backend>, Usage> {
    let pairs = host_port_pairs(words, "backend", "udp-lb")?;
    let backends = pairs
        .into_iter()
        .enumerate()
        .map(|(i, (_, addrs))| udp_lb::Backend {
            label: format!("server{}", i + 1),
            addr: net::datagram_target(&addrs),
        });
    Ok(backends.collect())
}

/// `<host> <port>` pairs into backends labelled ts1, ts2, ...
fn parse_backends(words: &[String]) -> Result<Vec<Backend>, Usage> {
    let pairs = host_port_pairs(words, "TS", "ls")?;
    let backends = pairs
        .into_iter()
        .enumerate()
        .map(|(i, (host, addrs))| Backend {
            label: format!("ts{}", i + 1),
            host,
            addrs,
        });
    Ok(backends.collect())
}

/// `<host> <port>` pairs, each host resolved; `what` names them in errors
/// and `role` is the subcommand whose help to point at.
fn host_port_pairs(
    words: &[String],
    what: &str,
    role: &str,
) -> Result<Vec<(String, Vec<SocketAddr>)>, Usage> {
    if words.is_empty() || !words.len().is_multiple_of(2) {
        return Err(Usage(format!(
            "expected <host> <port> pairs for each {what} after the port, got {} word(s); see `dnslb {role} --help`",
            words.len()
        )));
    }
    words
        .chunks(2)
        .map(|pair| {
            let (host, port) = (&pair[0], &pair[1]);
            let port: u16 = port.parse().map_err(|_| {
                Usage(format!(
                    "{what} port {port:?} (for host {host:?}) is not a port number"
                ))
            })?;
            let addrs = net::resolve(host, port).map_err(Usage)?;
            Ok((host.clone(), addrs))
        })
        .collect()
}

/// Binds the listener and announces it: `listening on <addr>:<port>` is the
/// first line on stdout, flushed, for scripts to read.
fn bind(host: &str, port: u16) -> Result<TcpListener, Usage> {
    let addrs: Vec<SocketAddr> = net::resolve(host, port).map_err(Usage)?;
    let listener = TcpListener::bind(&addrs[..])
        .map_err(|e| Usage(format!("cannot listen on {host}:{port}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| Usage(format!("cannot read the listening address: {e}")))?;
    let mut stdout = io::stdout().lock();
    let _ = writeln!(stdout, "listening on {local}");
    let _ = stdout.flush();
    Ok(listener)
}

/// Binds a UDP socket and announces it like [`bind`]: `listening on
/// <addr>:<port>` first on stdout, flushed.
fn bind_udp(host: &str, port: u16) -> Result<UdpSocket, Usage> {
    let addrs: Vec<SocketAddr> = net::resolve(host, port).map_err(Usage)?;
    let socket = UdpSocket::bind(&addrs[..])
        .map_err(|e| Usage(format!("cannot listen on {host}:{port} (UDP): {e}")))?;
    let local = socket
        .local_addr()
        .map_err(|e| Usage(format!("cannot read the listening address: {e}")))?;
    let mut stdout = io::stdout().lock();
    let _ = writeln!(stdout, "listening on {local}");
    let _ = stdout.flush();
    Ok(socket)
}

/// A shutdown signal triggered by Ctrl-C or SIGTERM; a second signal exits at
/// once (code 130). Installed before the listening line is printed, so a
/// script may signal the server as soon as it has read that line.
///
/// The signal handler only passes the first signal on: the shutdown's
/// wake-ups (which connect to the server's own listener, up to a second)
/// run on a thread of their own, so the handler is always free to act on a
/// second signal.
fn stop_on_signal() -> Shutdown {
    let shutdown = Shutdown::new();
    let handle = shutdown.clone();
    let (stop, stopping) = crossbeam_channel::bounded::<()>(1);
    let stopper = std::thread::Builder::new()
        .name("shutdown".into())
        .spawn(move || {
            if stopping.recv().is_ok() {
                log::warn(format_args!("stopping: finishing the queries in flight"));
                handle.trigger();
            }
        });
    if let Err(e) = stopper {
        log::warn(format_args!("cannot handle Ctrl-C: {e}"));
        return shutdown;
    }
    let signalled = std::sync::atomic::AtomicBool::new(false);
    let installed = ctrlc::set_handler(move || {
        if signalled.swap(true, std::sync::atomic::Ordering::SeqCst) {
            std::process::exit(130);
        }
        let _ = stop.try_send(());
    });
    if let Err(e) = installed {
        log::warn(format_args!("cannot handle Ctrl-C: {e}"));
    }
    shutdown
}
