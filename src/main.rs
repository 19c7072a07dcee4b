//! The `dnslb` command: parses the command line and starts one role. The only
//! place that touches argh and ctrlc.
//!
//! Exit codes: 0 on success (and after Ctrl-C or SIGTERM), 1 when the client
//! fails at run time or the bench saw a wrong answer or lost a connection,
//! 2 for bad usage or configuration.

use std::io::{self, IsTerminal, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use argh::FromArgs;

use dnslb::bench::{self, BenchOptions, Names};
use dnslb::client::{self, ClientOptions};
use dnslb::framing::Framing;
use dnslb::ls::{self, Backend, Ls, LsOptions};
use dnslb::server::Shutdown;
use dnslb::table::Table;
use dnslb::ts::{self, TsOptions};
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
    /// most clients at once; one more gets `- Error:SERVER BUSY` (default 1024)
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
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Usage(message)) => {
            eprintln!("dnslb: {message}");
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
                eprintln!("dnslb: argument {arg:?} is not valid UTF-8");
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
    let shutdown = stop_on_signal();
    let listener = bind(&args.bind, args.port)?;
    let options = TsOptions {
        dialect: args.dialect,
        framing: args.framing,
        answer_misses: args.answer_misses,
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
    let options = LsOptions {
        timeout: args.timeout,
        dialect: args.dialect,
        client_framing: args.framing,
        ts_framing: args.ts_framing,
        max_inflight: args.max_inflight,
        max_clients: args.max_clients,
        idle_timeout: args.idle_timeout,
        ..LsOptions::new(backends)
    };
    let ls = Ls::new(options).map_err(Usage)?;
    let shutdown = stop_on_signal();
    let listener = bind(&args.bind, args.port)?;
    ls.run(listener, &shutdown)
        .map_err(|e| Usage(format!("ls: {e}")))
}

fn run_client(args: ClientArgs) -> ExitCode {
    let addrs = match net::resolve(&args.ls_host, args.ls_port) {
        Ok(addrs) => addrs,
        Err(message) => {
            eprintln!("dnslb: {message}");
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
            eprintln!("dnslb: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

fn run_bench(args: BenchArgs) -> ExitCode {
    let usage = |message: String| {
        eprintln!("dnslb: {message}");
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
            eprintln!("dnslb: {message}");
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
        eprintln!(
            "dnslb: bench: {} wrong answer(s), {} connection failure(s)",
            report.wrong,
            report.failures.len()
        );
        ExitCode::from(1)
    }
}

/// `<host> <port>` pairs into backends labelled ts1, ts2, ...
fn parse_backends(words: &[String]) -> Result<Vec<Backend>, Usage> {
    if words.is_empty() || !words.len().is_multiple_of(2) {
        return Err(Usage(format!(
            "expected <ts-host> <ts-port> pairs after the LS port, got {} word(s); see `dnslb ls --help`",
            words.len()
        )));
    }
    words
        .chunks(2)
        .enumerate()
        .map(|(i, pair)| {
            let (host, port) = (&pair[0], &pair[1]);
            let port: u16 = port.parse().map_err(|_| {
                Usage(format!(
                    "TS port {port:?} (for host {host:?}) is not a port number"
                ))
            })?;
            let addrs = net::resolve(host, port).map_err(Usage)?;
            Ok(Backend {
                label: format!("ts{}", i + 1),
                host: host.clone(),
                addrs,
            })
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

/// A shutdown signal triggered by Ctrl-C or SIGTERM; a second signal exits at
/// once. Installed before the listening line is printed, so a script may
/// signal the server as soon as it has read that line.
fn stop_on_signal() -> Shutdown {
    let shutdown = Shutdown::new();
    let handle = shutdown.clone();
    let installed = ctrlc::set_handler(move || {
        if handle.is_triggered() {
            std::process::exit(130);
        }
        log::warn(format_args!("stopping: finishing the queries in flight"));
        handle.trigger();
    });
    if let Err(e) = installed {
        log::warn(format_args!("cannot handle Ctrl-C: {e}"));
    }
    shutdown
}
