//! The `dnslb` command: starts the role the command line (`cli`) names. With
//! `cli`, the only place that touches argh and ctrlc.
//!
//! Exit codes: 0 on success (and after Ctrl-C or SIGTERM), 1 when the client
//! fails at run time or the bench saw a wrong answer or lost a connection,
//! 2 for bad usage or configuration (a host argument that does not resolve
//! included, for every role). `ping` exits 0 when any reply came, 1 when
//! none did. `trace` exits 2 for a trace file it cannot read or that has a
//! malformed line, and for a selection that matches no query; 1 when it
//! cannot write the SVG.

use std::io::{self, IsTerminal, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::process::ExitCode;
use std::sync::Arc;

mod cli;

use cli::{
    BenchArgs, ClientArgs, LsArgs, PingArgs, Role, TraceArgs, TsArgs, UdpEchoArgs, UdpLbArgs,
};
use dnslb::bench::{self, BenchOptions, Names};
use dnslb::client::{self, ClientOptions};
use dnslb::dns::rrl::RateLimit;
use dnslb::framing::Framing;
use dnslb::linefile::FileError;
use dnslb::ls::{self, Backend, FrontEnd, Ls, LsOptions};
use dnslb::server;
use dnslb::shutdown::Shutdown;
use dnslb::table;
use dnslb::trace::{self, query::Selection};
use dnslb::ts::{self, TsOptions};
use dnslb::udp::echo::{self, EchoOptions};
use dnslb::udp::flood::{self, FloodOptions};
use dnslb::udp::lb::{self as udp_lb, LbOptions, LbStats};
use dnslb::udp::ping::{self, PingOptions};
use dnslb::zone::Zone;
use dnslb::zonefile;
use dnslb::{log, net, web};

/// A usage or configuration error: printed, exit code 2.
struct Usage(String);

fn main() -> ExitCode {
    let role = match cli::parse() {
        Ok(role) => role,
        Err(code) => return code,
    };
    let (name, result) = match role {
        Role::Ts(args) => ("ts", run_ts(args)),
        Role::Ls(args) => ("ls", run_ls(args)),
        Role::Client(args) => return run_client(args),
        Role::Bench(args) => return run_bench(args),
        Role::UdpEcho(args) => ("udp-echo", run_udp_echo(args)),
        Role::UdpLb(args) => ("udp-lb", run_udp_lb(args)),
        Role::Ping(args) => return run_ping(args),
        Role::Trace(args) => return run_trace(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Usage(message)) => cli::usage_error(&in_role(name, &message)),
    }
}

/// `message` after `<role>: `, unless it names the role already.
fn in_role(role: &str, message: &str) -> String {
    if message.starts_with(&format!("{role}: ")) {
        message.to_string()
    } else {
        format!("{role}: {message}")
    }
}

/// Resolves the host argument `what` (`<ls-host>`, `--bind`, ...) of
/// `role`; the error names both and says what to check.
fn resolve_arg(role: &str, what: &str, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    net::resolve(host, port)
        .map_err(|e| format!("{role}: {what}: {e} (check the name, or give an IP address)"))
}

/// Loads the TS's `--table`; errors name the role, the flag and the file,
/// and a table without records is refused (a TS with no names answers nothing).
fn load_table(path: &std::path::Path) -> Result<Zone, Usage> {
    let fix = "give --table a file of `hostname ip A` lines, e.g. data/PROJ2-DNSTS1.txt";
    table::load(path).map_err(|e| match e {
        FileError::Io { path, error } => Usage(format!(
            "ts: --table {}: cannot read it: {error} ({fix})",
            path.display()
        )),
        line @ FileError::Line { .. } => Usage(format!("ts: --table {line}")),
        FileError::Empty { path, .. } => Usage(format!(
            "ts: --table {}: no records, so the TS would answer nothing ({fix})",
            path.display()
        )),
    })
}

/// Loads the TS's `--table` (if any) and `--zone` files into one zone;
/// errors name the flag and the file (and line).
fn load_zones(
    table: Option<&std::path::Path>,
    zones: &[std::path::PathBuf],
) -> Result<Zone, Usage> {
    let mut served = match table {
        Some(path) => load_table(path)?,
        None if zones.is_empty() => {
            return Err(Usage(cli::hint(
                Some("ts"),
                "give --table FILE, or --zone FILE (or both)",
            )));
        }
        None => Zone::default(),
    };
    for path in zones {
        let file = zonefile::load(path).map_err(|e| match e {
            FileError::Io { path, error } => Usage(format!(
                "ts: --zone {}: cannot read it: {error}",
                path.display()
            )),
            other => Usage(format!("ts: --zone {other}")),
        })?;
        let line = file
            .records
            .iter()
            .find(|(_, r)| r.rtype == dnslb::dns::RecordType::SOA)
            .map_or(1, |(line, _)| *line);
        served
            .add_file_zone(file.apex_key(), file.to_zone())
            .map_err(|problem| Usage(format!("ts: --zone {}:{line}: {problem}", path.display())))?;
    }
    Ok(served)
}

fn run_ts(args: TsArgs) -> Result<(), Usage> {
    log::set_verbose(args.verbose);
    let rrl = rate_limit("ts", args.rrl, args.rrl_slip, args.dns_port)?;
    let table = load_zones(args.table.as_deref(), &args.zone)?;
    if args.max_clients == 0 || args.max_clients_per_ip == Some(0) {
        return Err(Usage(cli::hint(
            Some("ts"),
            "--max-clients and --max-clients-per-ip must be at least 1",
        )));
    }
    let shutdown = stop_on_signal(&format!(
        "ts: stopping: finishing the queries in flight (up to {} s)",
        ts::SHUTDOWN_GRACE.as_secs_f64()
    ));
    let (listener, dns_sockets, web) =
        bind_both(&args.bind, args.port, args.dns_port, args.web.as_ref())?;
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
        max_clients_per_ip: args.max_clients_per_ip.unwrap_or(usize::MAX),
        idle_timeout: args.idle_timeout,
    };
    let table = Arc::new(table);
    let mut fronts = vec![ts::FrontEnd::Course(listener)];
    if let Some(sockets) = dns_sockets {
        let dns_options = ts::dns::DnsOptions {
            ttl: args.ttl,
            max_per_source: options.max_clients_per_ip,
            rrl,
            ..Default::default()
        };
        fronts.push(ts::FrontEnd::Dns(sockets, dns_options));
    }
    let counts = Arc::new(ts::Counts::default());
    let source: web::Source = {
        let counts = Arc::clone(&counts);
        Arc::new(move || counts.metrics())
    };
    let result = with_web(web, source, &shutdown, || {
        ts::run_counted(fronts, table, options, counts, &shutdown)
    });
    result.map_err(|e| Usage(format!("ts: {e}")))
}

/// `--rrl` and `--rrl-slip` as a rate limit; `--rrl 0`, or `--rrl`
/// without `--dns-port` (`dns`), is a usage error.
fn rate_limit(
    role: &str,
    rate: Option<u32>,
    slip: u32,
    dns: Option<u16>,
) -> Result<Option<RateLimit>, Usage> {
    let problem = match (rate, dns) {
        (None, _) => return Ok(None),
        (Some(0), _) => "--rrl must be at least 1 (leave it out for no limit)",
        (Some(_), None) => "--rrl limits DNS answers: it needs --dns-port",
        (Some(rate), Some(_)) => return Ok(Some(RateLimit { rate, slip })),
    };
    Err(Usage(cli::hint(Some(role), problem)))
}

/// Binds the course listener and, with `dns_port`, the DNS side's UDP and
/// TCP sockets, then announces them: `listening on <addr>:<port>`, then
/// `listening on <addr>:<port> (dns udp+tcp)`. Nothing is announced unless
/// every socket could be bound, so a script never reads a `listening on`
/// line from a server that then exits.
fn bind_both(
    host: &str,
    port: u16,
    dns_port: Option<u16>,
    web: Option<&(String, u16)>,
) -> Result<Bound, Usage> {
    let listener = bind_socket(host, port, "", |addrs| TcpListener::bind(addrs))?;
    let dns = dns_port
        .map(|port| bind_socket(host, port, " (dns udp+tcp)", net::DnsSockets::bind))
        .transpose()?;
    let web = web
        .map(|(host, port)| {
            bind_socket(host, *port, " (http)", |addrs| TcpListener::bind(addrs))
                .map_err(|Usage(e)| Usage(format!("--web: {e}")))
        })
        .transpose()?;
    announce(listener.local_addr(), "")?;
    if let Some(sockets) = &dns {
        announce(sockets.local_addr(), " (dns udp+tcp)")?;
    }
    if let Some(web) = &web {
        announce(web.local_addr(), " (http)")?;
    }
    Ok((listener, dns, web))
}

/// A server's sockets, bound: the course listener, the DNS sockets and the
/// web endpoint's listener.
type Bound = (TcpListener, Option<net::DnsSockets>, Option<TcpListener>);

fn run_ls(args: LsArgs) -> Result<(), Usage> {
    log::set_verbose(args.verbose);
    if args.root.is_some() {
        return run_iterative_ls(args);
    }
    let mut backends = if args.ts.is_empty() && !args.pool.is_empty() {
        Vec::new()
    } else {
        parse_backends(&args.ts)?
    };
    let pools = parse_pools(&args.pool, &mut backends)?;
    if args.max_inflight == 0 || args.max_clients == 0 || args.max_clients_per_ip == 0 {
        return Err(Usage(cli::hint(
            Some("ls"),
            "--max-inflight, --max-clients and --max-clients-per-ip must be at least 1",
        )));
    }
    // How long the LS may take to stop: its longest deadline, and a little.
    let deadline = match args.dns_port {
        Some(_) => args.timeout.max(args.dns_timeout),
        None => args.timeout,
    };
    let ls_grace = deadline + ls::SHUTDOWN_SLACK;
    // After the signal handler's descriptors, before the listener's (one
    // of the spares).
    let shutdown = stop_on_signal(&format!(
        "ls: stopping: finishing the queries in flight (up to {} s)",
        ls_grace.as_secs_f64()
    ));
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
        max_clients_per_ip: args.max_clients_per_ip,
        idle_timeout: args.idle_timeout,
        dns_timeout: args.dns_timeout,
        ts_protocol: args.ts_protocol,
        cache: args.cache,
        stale: args.stale,
        rrl: rate_limit("ls", args.rrl, args.rrl_slip, args.dns_port)?,
        allow: args.allow,
        pools,
        policy: args.policy,
        try_timeout: args.try_timeout,
        health_interval: args.health_interval,
        health_name: args.health_name,
        health_fails: args.health_fails,
        health_rise: args.health_rise,
        trace: args.trace,
        ..LsOptions::new(backends)
    };
    let ls = Ls::new(options).map_err(Usage)?;
    let (listener, dns_sockets, web) =
        bind_both(&args.bind, args.port, args.dns_port, args.web.as_ref())?;
    ls.check_backends();
    let mut fronts = vec![FrontEnd::Course(listener)];
    if let Some(sockets) = dns_sockets {
        fronts.push(FrontEnd::Dns(sockets));
    }
    let result = with_web(web, ls.metrics_source(), &shutdown, || {
        ls.run(fronts, &shutdown)
    });
    result.map_err(|e| Usage(format!("ls: {e}")))
}

/// `dnslb ls <port> --root ADDR[,ADDR...]`: the LS as a local DNS server
/// resolving iteratively from the root servers.
fn run_iterative_ls(args: LsArgs) -> Result<(), Usage> {
    let hint = |message: &str| Usage(cli::hint(Some("ls"), message));
    if !args.ts.is_empty() {
        return Err(hint(
            "--root resolves from the root servers: give no TS host and port pairs with it",
        ));
    }
    let roots = ls::iterative::parse_roots(args.root.as_deref().unwrap_or(""), args.server_port)
        .map_err(|e| hint(&e))?;
    if args.try_timeout.is_zero() {
        return Err(hint("--try-timeout must be more than 0"));
    }
    let options = ls::iterative::IterativeOptions {
        config: dnslb::resolve::Config {
            roots,
            server_port: args.server_port,
        },
        try_timeout: args.try_timeout,
        deadline: args.dns_timeout,
        dialect: args.dialect,
        framing: args.framing,
        allow: args.allow,
        max_clients: server::fit_to_descriptors("ls", "--max-clients", args.max_clients, 2),
    };
    if args.trace.is_some() {
        return Err(hint(
            "--trace does not trace an LS that resolves from --root yet",
        ));
    }
    let shutdown = stop_on_signal("ls: stopping");
    let (listener, dns, web) = bind_both(&args.bind, args.port, args.dns_port, args.web.as_ref())?;
    let counts = Arc::new(ls::iterative::Counts::default());
    let source: web::Source = {
        let counts = Arc::clone(&counts);
        Arc::new(move || counts.metrics())
    };
    let result = with_web(web, source, &shutdown, || {
        ls::iterative::run_counted(options, listener, dns, &counts, &shutdown)
    });
    result.map_err(|e| Usage(format!("ls: {e}")))
}

fn run_client(args: ClientArgs) -> ExitCode {
    let addrs = match resolve_arg("client", "<ls-host>", &args.ls_host, args.ls_port) {
        Ok(addrs) => addrs,
        Err(message) => return cli::usage_error(&message),
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
            log::warn(format_args!("client: {e}"));
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

fn run_bench(args: BenchArgs) -> ExitCode {
    let usage = |message: &str| cli::usage_error(&cli::hint(Some("bench"), message));
    if args.clients == 0 || args.queries == 0 || args.pipeline == 0 {
        return usage("--clients, --queries and --pipeline must be at least 1");
    }
    if args.raw && args.pipeline > 1 {
        return usage("--raw sends one query at a time; it cannot be used with --pipeline");
    }
    let names = match &args.names {
        Some(path) => match Names::load(path) {
            Ok(names) => names,
            Err(e) => return cli::usage_error(&e.to_string()),
        },
        None => Names::course(),
    };
    let addrs = match resolve_arg("bench", "<host>", &args.host, args.port) {
        Ok(addrs) => addrs,
        Err(message) => return cli::usage_error(&message),
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
    let shutdown = stop_on_signal("udp-echo: stopping");
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
        return Err(Usage(cli::hint(
            Some("udp-lb"),
            "--max-sessions must be at least 1",
        )));
    }
    let backends = parse_udp_backends(&args.backends)?;
    // Before announcing the socket: a script may signal as soon as it reads the line.
    let shutdown = stop_on_signal("udp-lb: stopping: closing its sessions");
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
        return cli::usage_error(&cli::hint(
            Some("ping"),
            "--count and --window must be at least 1",
        ));
    }
    let target = match resolve_arg("ping", "<host>", &args.host, args.port) {
        Ok(addrs) => net::datagram_target(&addrs),
        Err(message) => return cli::usage_error(&message),
    };
    let name = format!("{}:{}", args.host, args.port);
    let mut stdout = io::stdout().lock();
    let answered = if args.flood {
        let options = FloodOptions {
            count: args.count.unwrap_or(FloodOptions::default().count),
            window: args.window,
            timeout: args.timeout,
            ..FloodOptions::default()
        };
        let progress = |so_far: &flood::FloodReport| {
            log::warn(format_args!("ping {name}: so far {so_far}"));
        };
        flood::run_with_progress(target, options, progress).map(|report| {
            let _ = writeln!(stdout, "{name} ({target}): {report}");
            report.received > 0
        })
    } else {
        let options = PingOptions {
            count: args.count.unwrap_or(PingOptions::default().count),
            timeout: args.timeout,
            interval: args.interval,
            report_lost: args.report_lost,
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

/// `dnslb trace FILE`: the picked queries drawn into `--svg`, or one
/// summary line each on stdout. A file that cannot be read or has a
/// malformed line, a selection that matches nothing and bad flags exit 2;
/// an SVG that cannot be written exits 1.
fn run_trace(args: TraceArgs) -> ExitCode {
    let usage = |message: &str| cli::usage_error(&cli::hint(Some("trace"), message));
    let selection = match (args.query, args.name, args.first) {
        (None, None, None) => Selection::DEFAULT,
        (Some(id), None, None) => Selection::Id(id),
        (None, Some(name), None) => Selection::Name(name),
        (None, None, Some(0)) => return usage("--first must be at least 1"),
        (None, None, Some(count)) => Selection::First(count),
        _ => return usage("give at most one of --query, --name and --first"),
    };
    let events = match trace::parse::load(&args.file) {
        Ok(events) => events,
        Err(e) => return cli::usage_error(&format!("trace: {e}")),
    };
    let queries = trace::query::gather(&events);
    let picked = match trace::query::select(&queries, &selection) {
        Ok(picked) => picked,
        Err(why) => {
            return cli::usage_error(&format!("trace: {}: {why}", args.file.display()));
        }
    };
    let Some(out) = args.svg else {
        let mut stdout = io::stdout().lock();
        for query in &picked {
            let _ = writeln!(stdout, "{query}");
        }
        let _ = stdout.flush();
        return ExitCode::SUCCESS;
    };
    let file_name = args.file.file_name().map_or_else(
        || args.file.display().to_string(),
        |name| name.to_string_lossy().into_owned(),
    );
    let title = match picked.as_slice() {
        [one] => format!("{file_name}: query {}", one.id),
        many => format!("{file_name}: {} queries", many.len()),
    };
    let svg = trace::svg::render(&picked, &title);
    match std::fs::write(&out, svg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::warn(format_args!(
                "trace: --svg {}: cannot write it: {e}",
                out.display()
            ));
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

/// Each `--pool`'s members appended to `backends` (labelled on from the
/// positional TSes); returns each pool as (backend index, weight).
fn parse_pools(
    pools: &[String],
    backends: &mut Vec<Backend>,
) -> Result<Vec<Vec<(usize, u32)>>, Usage> {
    let mut parsed = Vec::new();
    for pool in pools {
        let mut members = Vec::new();
        for member in pool.split(',') {
            let (host, port, weight) = cli::parse_pool_member(member)
                .map_err(|why| Usage(cli::hint(Some("ls"), &format!("--pool {why}"))))?;
            let addrs = resolve_arg("ls", "--pool", &host, port).map_err(Usage)?;
            members.push((backends.len(), weight));
            backends.push(Backend {
                label: format!("ts{}", backends.len() + 1),
                host,
                addrs,
            });
        }
        parsed.push(members);
    }
    Ok(parsed)
}

/// `<host> <port>` pairs, each host resolved; `what` names them in errors
/// and `role` is the subcommand whose help to point at.
fn host_port_pairs(
    words: &[String],
    what: &str,
    role: &str,
) -> Result<Vec<(String, Vec<SocketAddr>)>, Usage> {
    if words.is_empty() || !words.len().is_multiple_of(2) {
        let message = format!(
            "expected <host> <port> pairs for each {what} after the port, got {} word(s)",
            words.len()
        );
        return Err(Usage(cli::hint(Some(role), &message)));
    }
    words
        .chunks(2)
        .map(|pair| {
            let (host, port) = (&pair[0], &pair[1]);
            let port: u16 = cli::parse_port(port).map_err(|why| {
                let message = format!("<{}-port> of {host}: {why}", what.to_lowercase());
                Usage(cli::hint(Some(role), &message))
            })?;
            let what = format!("<{}-host>", what.to_lowercase());
            let addrs = resolve_arg(role, &what, host, port).map_err(Usage)?;
            Ok((host.clone(), addrs))
        })
        .collect()
}

/// Binds a UDP socket and announces it: `listening on <addr>:<port>` is the
/// first line on stdout, flushed, for scripts to read.
/// Runs `run` with the web endpoint serving `source` on `web` beside it,
/// when there is one; the endpoint stops with the server.
fn with_web(
    web: Option<TcpListener>,
    source: web::Source,
    shutdown: &Shutdown,
    run: impl FnOnce() -> io::Result<()>,
) -> io::Result<()> {
    let Some(listener) = web else {
        return run();
    };
    std::thread::scope(|scope| {
        let web_side = std::thread::Builder::new()
            .name("web".into())
            .spawn_scoped(scope, || {
                web::serve(listener, source, web::WebOptions::default(), shutdown)
            })?;
        let served = run();
        // A server that failed to start takes the endpoint down with it.
        shutdown.trigger();
        let web_result = web_side
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the web server panicked")));
        served.and(web_result)
    })
}

fn bind_udp(host: &str, port: u16) -> Result<UdpSocket, Usage> {
    let socket = bind_socket(host, port, " (UDP)", |addrs| UdpSocket::bind(addrs))?;
    announce(socket.local_addr(), "")?;
    Ok(socket)
}

/// Binds `host:port` with `bind`; `what` names the kind of socket in
/// errors.
fn bind_socket<S>(
    host: &str,
    port: u16,
    what: &str,
    bind: impl FnOnce(&[SocketAddr]) -> io::Result<S>,
) -> Result<S, Usage> {
    let addrs: Vec<SocketAddr> = net::resolve(host, port).map_err(|e| {
        Usage(format!(
            "--bind: {e} (check the name, or give an IP address)"
        ))
    })?;
    bind(&addrs).map_err(|e| {
        Usage(format!(
            "cannot listen on {host}:{port}{what}: {}",
            bind_error(&e)
        ))
    })
}

/// Prints `listening on <local><suffix>`, flushed.
fn announce(local: io::Result<SocketAddr>, suffix: &str) -> Result<(), Usage> {
    let local = local.map_err(|e| Usage(format!("cannot read the listening address: {e}")))?;
    let mut stdout = io::stdout().lock();
    let _ = writeln!(stdout, "listening on {local}{suffix}");
    let _ = stdout.flush();
    Ok(())
}

/// Why a socket could not be bound, and the way out.
fn bind_error(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::AddrInUse => {
            "address in use (another server on that port? choose another port or stop it)".into()
        }
        io::ErrorKind::AddrNotAvailable => {
            "address not available (is --bind an address of this machine?)".into()
        }
        io::ErrorKind::PermissionDenied => {
            "permission denied (ports below 1024 need root: choose a port above 1023)".into()
        }
        _ => e.to_string(),
    }
}

/// A shutdown signal triggered by Ctrl-C or SIGTERM, which logs `stopping`
/// (the role, what it finishes and for how long); a second signal exits at
/// once (code 130). Installed before the listening line is printed, so a
/// script may signal the server as soon as it has read that line.
///
/// The signal handler only passes the first signal on: the shutdown's
/// wake-ups (which connect to the server's own listener, up to a second)
/// run on a thread of their own, so the handler is always free to act on a
/// second signal.
fn stop_on_signal(stopping_line: &str) -> Shutdown {
    let stopping_line = stopping_line.to_string();
    let shutdown = Shutdown::new();
    let handle = shutdown.clone();
    let (stop, stopping) = crossbeam_channel::bounded::<()>(1);
    let stopper = std::thread::Builder::new()
        .name("shutdown".into())
        .spawn(move || {
            if stopping.recv().is_ok() {
                log::warn(format_args!("{stopping_line}"));
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
