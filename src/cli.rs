//! The command line: one argh struct per role, and the habits of the tools
//! people know that argh lacks: `-h` beside `--help`, `-V`/`--version`,
//! usage lines that show the required arguments first, and errors that name
//! the role and point at its `--help`. Part of the binary, not the library:
//! only the binary knows argh.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use argh::{ArgsInfo, FlagInfoKind, FromArgs};

use dnslb::bench;
use dnslb::cidr::CidrList;
use dnslb::framing::Framing;
use dnslb::log;
use dnslb::ls::{self, TsProtocol};
use dnslb::ts;
use dnslb::udp::lb as udp_lb;
use dnslb::udp::loss::Loss;
use dnslb::wire::Dialect;

/// The positional arguments of each role as README.md shows them; they
/// replace argh's rendering (`[--] <port> [<ts...>]`, last) in `--help`.
const SYNOPSES: &[(&str, &str)] = &[
    ("ts", "<port>"),
    ("ls", "<port> [<ts-host> <ts-port>...]"),
    ("client", "<ls-host> <ls-port>"),
    ("bench", "<host> <port>"),
    ("udp-echo", "<port>"),
    (
        "udp-lb",
        "<port> <backend-host> <backend-port> [<backend-host> <backend-port>...]",
    ),
    ("ping", "<host> <port>"),
    ("trace", "<file>"),
];

/// A role's other forms, each shown in `--help` on a line of its own
/// under the usage line, as README.md shows them (argh knows one form).
const OTHER_FORMS: &[(&str, &str)] = &[(
    "ls",
    "<port> --root <addr[:port][,...]> [--server-port <n>] [--try-timeout <secs>] \
     [--dns-port <port>] [--dns-timeout <secs>] [--bind <addr>] [--dialect 2020|2022] \
     [--framing auto|line|bare] [--max-clients <n>] [--allow <cidr,...>] [--web <addr>:<port>] [-v]",
)];

/// How argh lists its help flag, and how dnslb does (same width).
const ARGH_HELP_FLAG: &str = "  --help, help      display usage information";
const HELP_FLAG: &str = "  -h, --help        display usage information";

/// Parses the process's arguments into a role to run. `Err` carries the
/// exit code when nothing is left to run: help or the version was printed
/// (0), or an argument error was (2).
pub fn parse() -> Result<Role, ExitCode> {
    let mut args = Vec::new();
    for arg in std::env::args_os().skip(1) {
        match arg.into_string() {
            Ok(arg) => args.push(arg),
            Err(arg) => {
                let message = format!("argument {arg:?} is not valid UTF-8");
                return Err(usage_error(&hint(None, &message)));
            }
        }
    }
    let args = long_help(args);
    let role = role_named(&args);
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match Cli::from_args(&["dnslb"], &words) {
        Ok(Cli { version: true, .. }) => {
            print_out(&format!("dnslb {}", env!("CARGO_PKG_VERSION")));
            Err(ExitCode::SUCCESS)
        }
        Ok(Cli {
            role: Some(parsed), ..
        }) => Ok(parsed),
        Ok(Cli { role: None, .. }) => {
            let names: Vec<&str> = SYNOPSES.iter().map(|(name, _)| *name).collect();
            let message = format!("expected a role: {}", names.join(", "));
            Err(usage_error(&hint(None, &message)))
        }
        Err(exit) if exit.status.is_ok() => {
            let help = exit.output.replace(ARGH_HELP_FLAG, HELP_FLAG);
            print_out(&with_synopsis(role.as_deref(), &help));
            Err(ExitCode::SUCCESS)
        }
        Err(exit) if role.is_none() && exit.output.starts_with("Unrecognized argument: ") => {
            let word = exit.output["Unrecognized argument: ".len()..].trim_end();
            let names: Vec<&str> = SYNOPSES.iter().map(|(name, _)| *name).collect();
            let message = format!("{word:?} is not a role; the roles are {}", names.join(", "));
            Err(usage_error(&hint(None, &message)))
        }
        Err(exit) => Err(usage_error(&hint(
            role.as_deref(),
            &plain_error(exit.output.trim_end()),
        ))),
    }
}

/// argh's message for a value that does not parse, `Error parsing
/// positional argument 'port' with value '70000': <why>`, as `<port>: <why>`
/// (`--flag: <why>` for an option); other messages unchanged.
fn plain_error(message: &str) -> String {
    let parsed = message
        .strip_prefix("Error parsing positional argument '")
        .map(|rest| (true, rest))
        .or_else(|| {
            message
                .strip_prefix("Error parsing option '")
                .map(|rest| (false, rest))
        });
    let Some((positional, rest)) = parsed else {
        return message.to_string();
    };
    let Some((name, rest)) = rest.split_once("' with value '") else {
        return message.to_string();
    };
    let Some((value, why)) = rest.split_once("': ") else {
        return message.to_string();
    };
    let why = number_error(value, why);
    if positional {
        format!("<{}>: {why}", name.replace('_', "-"))
    } else {
        format!("{name}: {why}")
    }
}

/// Rust's message for a whole number that does not parse (what argh shows
/// for a numeric flag), as one naming `value`; any other `why` unchanged.
fn number_error(value: &str, why: &str) -> String {
    match why {
        "invalid digit found in string" => format!("{value:?} is not a whole number"),
        "cannot parse integer from empty string" => "an empty value is not a number".into(),
        "number too large to fit in target type" => format!("{value:?} is too large"),
        "number too small to fit in target type" => format!("{value:?} is too small"),
        _ => why.to_string(),
    }
}

/// An argument error `message` about `role` (or the command as a whole)
/// followed by where to read the usage.
///
/// Logged, it reads `dnslb: ls: <message>` then `Run 'dnslb ls --help' for usage.`
pub fn hint(role: Option<&str>, message: &str) -> String {
    match role {
        Some(role) => format!("{role}: {message}\nRun 'dnslb {role} --help' for usage."),
        None => format!("{message}\nRun 'dnslb --help' for usage."),
    }
}

/// Logs `message` (`dnslb: ` first) and returns exit code 2.
pub fn usage_error(message: &str) -> ExitCode {
    log::warn(format_args!("{message}"));
    ExitCode::from(2)
}

/// Help or the version on stdout; a closed stdout is not worth a panic.
fn print_out(text: &str) {
    let mut stdout = io::stdout().lock();
    let _ = writeln!(stdout, "{}", text.trim_end());
    let _ = stdout.flush();
}

/// `-h` becomes `--help` wherever it is a flag: not as an option's value
/// (`--bind -h` keeps it) nor after `--`.
fn long_help(args: Vec<String>) -> Vec<String> {
    let info = Cli::get_args_info();
    let mut flags = info.flags;
    let mut in_role = false;
    let mut value_next = false;
    let mut after_dashes = false;
    let mut out = Vec::with_capacity(args.len());
    for arg in args {
        if after_dashes || value_next {
            value_next = false;
        } else if arg == "--" {
            after_dashes = true;
        } else if arg == "-h" {
            out.push("--help".to_string());
            continue;
        } else if let Some(role) = info.commands.iter().find(|c| !in_role && c.name == arg) {
            flags = role.command.flags;
            in_role = true;
        } else {
            value_next = flags.iter().any(|flag| {
                matches!(flag.kind, FlagInfoKind::Option { .. })
                    && (flag.long == arg || flag.short.is_some_and(|c| arg == format!("-{c}")))
            });
        }
        out.push(arg);
    }
    out
}

/// The role the arguments name: the first word that is not a flag (the
/// command itself takes only switches).
fn role_named(args: &[String]) -> Option<String> {
    let word = args.iter().find(|arg| !arg.starts_with('-'))?;
    SYNOPSES
        .iter()
        .any(|(name, _)| name == word)
        .then(|| word.clone())
}

/// `help` (argh's) with the role's positional arguments first in its usage line.
fn with_synopsis(role: Option<&str>, help: &str) -> String {
    let Some((role, synopsis)) = role.and_then(|r| SYNOPSES.iter().find(|(name, _)| *name == r))
    else {
        // A role is required, though argh shows it optional (for --version).
        return help.replacen("[<command>]", "<command>", 1);
    };
    let (usage, rest) = help.split_once('\n').unwrap_or((help, ""));
    let command = format!("Usage: dnslb {role}");
    let Some(options) = usage.strip_prefix(&command) else {
        return help.to_string();
    };
    let options = options.split(" [--] ").next().unwrap_or_default();
    let others: String = OTHER_FORMS
        .iter()
        .filter(|(name, _)| name == role)
        .map(|(_, form)| format!("  or:  dnslb {role} {form}\n"))
        .collect();
    format!("{command} {synopsis}{options}\n{others}{rest}")
}

/// Load balancing across DNS servers: top-level servers, a load-balancing
/// server and a client.
#[derive(FromArgs, ArgsInfo)]
pub struct Cli {
    /// print the version and exit
    #[argh(switch, short = 'V')]
    pub version: bool,
    #[argh(subcommand)]
    pub role: Option<Role>,
}

#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand)]
pub enum Role {
    Ts(TsArgs),
    Ls(LsArgs),
    Client(ClientArgs),
    Bench(BenchArgs),
    UdpEcho(UdpEchoArgs),
    UdpLb(UdpLbArgs),
    Ping(PingArgs),
    Trace(TraceArgs),
}

/// Run a top-level server (TS): answer names from a table or zone files, stay silent on the rest.
#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand, name = "ts")]
pub struct TsArgs {
    /// port to listen on (0: any free port)
    #[argh(positional, from_str_fn(parse_port))]
    pub port: u16,
    /// table file: one `hostname ip A` per line
    #[argh(option)]
    pub table: Option<PathBuf>,
    /// zone file (RFC 1035 master file) to serve, beside or instead of
    /// --table; repeat for more zones
    #[argh(option)]
    pub zone: Vec<PathBuf>,
    /// address to listen on (default 0.0.0.0, all IPv4 interfaces)
    #[argh(option, default = "String::from(\"0.0.0.0\")")]
    pub bind: String,
    /// answer format: 2020 (`name ip A`, default) or 2022 (`name ip A IN`)
    #[argh(option, default = "Dialect::Y2020")]
    pub dialect: Dialect,
    /// query framing: auto (default, detect per connection), line or bare
    #[argh(option, default = "Framing::Auto")]
    pub framing: Framing,
    /// reply `<name> - NOT FOUND` to names not in the table instead of staying silent
    #[argh(switch)]
    pub answer_misses: bool,
    /// most connections at once; one more takes the place of the longest-idle
    /// one, or is closed when none is idle (default 4096, lowered to what
    /// `ulimit -n` allows)
    #[argh(option, default = "ts::DEFAULT_MAX_CLIENTS")]
    pub max_clients: usize,
    /// most connections at once from one address, on each port (default: no
    /// cap but --max-clients: an LS opens a connection per client of its own)
    #[argh(option)]
    pub max_clients_per_ip: Option<usize>,
    /// close a connection that sends nothing for this many seconds (default 600)
    #[argh(
        option,
        default = "ts::DEFAULT_IDLE_TIMEOUT",
        from_str_fn(parse_seconds)
    )]
    pub idle_timeout: Duration,
    /// also answer DNS queries (RFC 1035) over UDP and TCP on this port (0: any free port)
    #[argh(option, from_str_fn(parse_port))]
    pub dns_port: Option<u16>,
    /// serve read-only statistics over HTTP on ADDR:PORT (port 0: any
    /// free): /metrics (Prometheus), /api/v1/stats (JSON), / (a live
    /// dashboard)
    #[argh(option, from_str_fn(parse_web))]
    pub web: Option<(String, u16)>,
    /// TTL in seconds of DNS answers from the table (default 300; at most
    /// 2147483647; zone files' records keep their own)
    #[argh(
        option,
        default = "dnslb::dns::respond::DEFAULT_TTL",
        from_str_fn(parse_ttl)
    )]
    pub ttl: u32,
    /// answer at most this many DNS queries per second over UDP to one /24
    /// (IPv4) or /56 (IPv6) (default: no limit)
    #[argh(option)]
    pub rrl: Option<u32>,
    /// with --rrl, every this-many-th answer past the limit is sent
    /// truncated, so real clients ask again over TCP (default 2; 0: none)
    #[argh(option, default = "dnslb::dns::rrl::DEFAULT_SLIP")]
    pub rrl_slip: u32,
    /// log every query on stderr
    #[argh(switch, short = 'v')]
    pub verbose: bool,
}

/// Run the load-balancing server (LS): forward each query to every TS (one
/// member of each --pool), relay the first answer or a miss after the timeout.
#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand, name = "ls")]
pub struct LsArgs {
    /// port to listen on (0: any free port)
    #[argh(positional, from_str_fn(parse_port))]
    pub port: u16,
    /// TS host and port pairs: <ts-host> <ts-port> [<ts-host> <ts-port> ...]
    /// (each a pool of one: every query is sent to it)
    #[argh(positional)]
    pub ts: Vec<String>,
    /// a pool of replica TSes holding the same names, HOST:PORT[@WEIGHT]
    /// separated by commas (IPv6 as [addr]:port); a query goes to one
    /// member of each pool; repeat for several pools
    #[argh(option)]
    pub pool: Vec<String>,
    /// how a pool picks a member: first, roundrobin, leastoutstanding
    /// (default), random or chash (see docs/LOADBALANCING.md)
    #[argh(option, default = "ls::Policy::default()")]
    pub policy: ls::Policy,
    /// seconds between health checks of a pool's members that are down or
    /// idle (default 1, fractions allowed)
    #[argh(
        option,
        default = "ls::DEFAULT_HEALTH_INTERVAL",
        from_str_fn(parse_seconds)
    )]
    pub health_interval: Duration,
    /// the name whose SOA a health check asks a DNS member (default `.`)
    #[argh(option, default = "String::from(\".\")")]
    pub health_name: String,
    /// failed health checks in a row that mark a member down (default 3)
    #[argh(option, default = "3")]
    pub health_fails: u32,
    /// good health checks in a row that take a member back (default 2)
    #[argh(option, default = "2")]
    pub health_rise: u32,
    /// seconds a query waits for an answer (default 5, fractions allowed)
    #[argh(option, default = "ls::DEFAULT_TIMEOUT", from_str_fn(parse_seconds))]
    pub timeout: Duration,
    /// address to listen on (default 0.0.0.0, all IPv4 interfaces)
    #[argh(option, default = "String::from(\"0.0.0.0\")")]
    pub bind: String,
    /// miss format: 2020 (`name - Error:HOST NOT FOUND`, default) or 2022 (`name - TIMED OUT`)
    #[argh(option, default = "Dialect::Y2020")]
    pub dialect: Dialect,
    /// client query framing: auto (default, detect per connection), line or bare
    #[argh(option, default = "Framing::Auto")]
    pub framing: Framing,
    /// framing towards the TSes: auto (default, learnt from each TS's first reply), line or bare (course Python TSes)
    #[argh(option, default = "Framing::Auto")]
    pub ts_framing: Framing,
    /// most queries in flight per client before the LS stops reading it (default 1024)
    #[argh(option, default = "ls::DEFAULT_MAX_INFLIGHT")]
    pub max_inflight: usize,
    /// most clients at once; one more takes the place of the longest-idle
    /// one, or gets `- Error:SERVER BUSY` when none is idle (default 1024,
    /// lowered to what `ulimit -n` allows)
    #[argh(option, default = "ls::DEFAULT_MAX_CLIENTS")]
    pub max_clients: usize,
    /// most clients at once from one address, on each port (default 256);
    /// one more takes the place of that address's longest-idle client
    #[argh(option, default = "ls::DEFAULT_MAX_CLIENTS_PER_IP")]
    pub max_clients_per_ip: usize,
    /// close a client that sends nothing for this many seconds (default 300)
    #[argh(
        option,
        default = "ls::DEFAULT_IDLE_TIMEOUT",
        from_str_fn(parse_seconds)
    )]
    pub idle_timeout: Duration,
    /// also serve DNS (RFC 1035) over UDP and TCP on this port (0: any free port)
    #[argh(option, from_str_fn(parse_port))]
    pub dns_port: Option<u16>,
    /// serve read-only statistics over HTTP on ADDR:PORT (port 0: any
    /// free): /metrics (Prometheus), /api/v1/stats (JSON), / (a live
    /// dashboard)
    #[argh(option, from_str_fn(parse_web))]
    pub web: Option<(String, u16)>,
    /// write every step of every query to this file, one JSON object a
    /// line (arrive, cache, send, retry, reply, settle, write), for
    /// `dnslb trace` (default: off)
    #[argh(option)]
    pub trace: Option<std::path::PathBuf>,
    /// seconds a DNS query waits before SERVFAIL (default 2, fractions allowed)
    #[argh(
        option,
        default = "ls::DEFAULT_DNS_TIMEOUT",
        from_str_fn(parse_seconds)
    )]
    pub dns_timeout: Duration,
    /// what the LS speaks to the TSes: line (the course protocol, default) or dns (DNS over TCP)
    #[argh(option, default = "TsProtocol::Line")]
    pub ts_protocol: TsProtocol,
    /// keep up to this many answers, for both front ends (default 0: no cache)
    #[argh(option, default = "0")]
    pub cache: usize,
    /// with --cache: seconds past its TTL an answer may still be served,
    /// with TTL 30, when no TS can answer in time (RFC 8767; default 0: never)
    #[argh(option, default = "0")]
    pub stale: u32,
    /// answer at most this many DNS queries per second over UDP to one /24
    /// (IPv4) or /56 (IPv6) (default: no limit)
    #[argh(option)]
    pub rrl: Option<u32>,
    /// with --rrl, every this-many-th answer past the limit is sent
    /// truncated, so real clients ask again over TCP (default 2; 0: none)
    #[argh(option, default = "dnslb::dns::rrl::DEFAULT_SLIP")]
    pub rrl_slip: u32,
    /// DNS clients answered: CIDR ranges separated by commas; others are
    /// dropped (default: loopback and private ranges, 127.0.0.0/8,
    /// 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 169.254.0.0/16, ::1,
    /// fc00::/7, fe80::/10)
    #[argh(option, default = "CidrList::private()")]
    pub allow: CidrList,
    /// resolve iteratively from these root servers instead of asking TSes:
    /// IP or IP:PORT, separated by commas (no TS list is given then)
    #[argh(option)]
    pub root: Option<String>,
    /// with --root, the port every name server is asked on (default 53)
    #[argh(
        option,
        default = "ls::iterative::DEFAULT_SERVER_PORT",
        from_str_fn(parse_port)
    )]
    pub server_port: u16,
    /// seconds a pool's member (with --root: one name server) has to
    /// answer before the next is asked (default 0.5, fractions allowed)
    #[argh(
        option,
        default = "ls::iterative::DEFAULT_TRY_TIMEOUT",
        from_str_fn(parse_seconds)
    )]
    pub try_timeout: Duration,
    /// log every query on stderr (name, which TS answered, time taken) and the counters every 10 s
    #[argh(switch, short = 'v')]
    pub verbose: bool,
}

/// Resolve every hostname of a file through an LS; write the replies to a file.
#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand, name = "client")]
pub struct ClientArgs {
    /// LS host (name or address)
    #[argh(positional)]
    pub ls_host: String,
    /// LS port
    #[argh(positional, from_str_fn(parse_port))]
    pub ls_port: u16,
    /// hostnames, one per line (default PROJ2-HNS.txt)
    #[argh(option, default = "PathBuf::from(\"PROJ2-HNS.txt\")")]
    pub input: PathBuf,
    /// where the replies go, one line per query (default RESOLVED.txt)
    #[argh(option, default = "PathBuf::from(\"RESOLVED.txt\")")]
    pub output: PathBuf,
    /// framing: auto (default: bare queries, replies with or without newline; line with --pipeline above 1), line or bare (a course Python LS)
    #[argh(option, default = "Framing::Auto")]
    pub framing: Framing,
    /// seconds to wait for each reply before giving up (default 30)
    #[argh(
        option,
        default = "Duration::from_secs(30)",
        from_str_fn(parse_seconds)
    )]
    pub reply_timeout: Duration,
    /// queries sent ahead of their replies (default 1: wait for each reply, as the course client does)
    #[argh(option, default = "1")]
    pub pipeline: usize,
}

/// Drive an LS or a TS with many clients and check every reply; prints
/// throughput, latency percentiles and counts of hits, misses, errors and
/// wrong answers. Exit 0 when no reply was wrong and no connection failed,
/// 1 otherwise, 2 for bad usage.
#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand, name = "bench")]
pub struct BenchArgs {
    /// server host (name or address)
    #[argh(positional)]
    pub host: String,
    /// server port
    #[argh(positional, from_str_fn(parse_port))]
    pub port: u16,
    /// concurrent clients, each with its own connection (default 1)
    #[argh(option, default = "1")]
    pub clients: usize,
    /// queries per client (default 1000)
    #[argh(option, default = "1000")]
    pub queries: usize,
    /// names to ask: a TS table file (`name ip A`, answers are checked against
    /// it) or one hostname per line (default: the course tables, built in)
    #[argh(option)]
    pub names: Option<PathBuf>,
    /// fraction (0 to 1) of queries for made-up names no TS holds (default 0);
    /// a TS is silent on those, so against a TS each costs a --timeout
    #[argh(option, default = "0.0", from_str_fn(parse_ratio))]
    pub miss_ratio: f64,
    /// queries kept outstanding per connection (default 1: one at a time)
    #[argh(option, default = "1")]
    pub pipeline: usize,
    /// the course programs' framing: one write per query without newline,
    /// each reply one read; one query at a time
    #[argh(switch)]
    pub raw: bool,
    /// seconds to wait for each reply before counting a timeout (default 30);
    /// a reply that comes later is counted late and dropped
    #[argh(
        option,
        default = "bench::DEFAULT_REPLY_TIMEOUT",
        from_str_fn(parse_seconds)
    )]
    pub timeout: Duration,
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
#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand, name = "udp-echo")]
pub struct UdpEchoArgs {
    /// port to listen on (0: any free port)
    #[argh(positional, from_str_fn(parse_port))]
    pub port: u16,
    /// fraction of datagrams dropped: 4/11 (default, the course's
    /// `randint(0, 10) < 4`), 0.3636, 0, ...
    #[argh(option, default = "Loss::COURSE")]
    pub loss: Loss,
    /// seed of the drop pattern: the same seed drops the same datagrams
    /// (default: random)
    #[argh(option)]
    pub seed: Option<u64>,
    /// address to listen on (default 0.0.0.0, all IPv4 interfaces)
    #[argh(option, default = "String::from(\"0.0.0.0\")")]
    pub bind: String,
    /// log every datagram on stderr
    #[argh(switch, short = 'v')]
    pub verbose: bool,
}

/// Run the UDP load balancer: hand each datagram to the next backend in
/// turn, relay each reply to the client that sent the request.
#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand, name = "udp-lb")]
pub struct UdpLbArgs {
    /// port to listen on (0: any free port)
    #[argh(positional, from_str_fn(parse_port))]
    pub port: u16,
    /// backend host and port pairs: <backend-host> <backend-port> [...]
    #[argh(positional)]
    pub backends: Vec<String>,
    /// seconds a client session may stay idle before its sockets and
    /// threads are freed (default 60, fractions allowed)
    #[argh(
        option,
        default = "udp_lb::DEFAULT_SESSION_TIMEOUT",
        from_str_fn(parse_seconds)
    )]
    pub session_timeout: Duration,
    /// seconds a backend that refused a datagram (ICMP port unreachable) is
    /// skipped before it is retried (default 10)
    #[argh(
        option,
        default = "udp_lb::DEFAULT_FAIL_TIMEOUT",
        from_str_fn(parse_seconds)
    )]
    pub fail_timeout: Duration,
    /// most client sessions open at once; datagrams from new clients are
    /// dropped while that many are (default 4096)
    #[argh(option, default = "udp_lb::DEFAULT_MAX_SESSIONS")]
    pub max_sessions: usize,
    /// address to listen on (default 0.0.0.0, all IPv4 interfaces)
    #[argh(option, default = "String::from(\"0.0.0.0\")")]
    pub bind: String,
    /// log every datagram on stderr: client, backend, data
    #[argh(switch, short = 'v')]
    pub verbose: bool,
}

/// Ping a UDP echo server or load balancer: numbered pings, one at a time,
/// then a summary like ping(8). Exit 0 if any reply came, 1 otherwise.
#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand, name = "ping")]
pub struct PingArgs {
    /// server host (name or address)
    #[argh(positional)]
    pub host: String,
    /// server port
    #[argh(positional, from_str_fn(parse_port))]
    pub port: u16,
    /// pings to send (default 10; 100000 with --flood)
    #[argh(option, short = 'c')]
    pub count: Option<u64>,
    /// seconds each ping waits for its reply (default 1, fractions allowed)
    #[argh(
        option,
        short = 'W',
        default = "Duration::from_secs(1)",
        from_str_fn(parse_seconds)
    )]
    pub timeout: Duration,
    /// least seconds from one ping to the next (default: none, the next ping
    /// goes as soon as the previous one is answered or timed out)
    #[argh(option, short = 'i', from_str_fn(parse_seconds))]
    pub interval: Option<Duration>,
    /// print `no answer yet for seq=<n>` for each ping that times out
    /// (ping(8) prints nothing for them unless -O)
    #[argh(switch, short = 'O')]
    pub report_lost: bool,
    /// measure throughput instead: keep --window pings in flight, print
    /// datagrams per second
    #[argh(switch)]
    pub flood: bool,
    /// pings in flight with --flood (default 64)
    #[argh(option, default = "64")]
    pub window: usize,
}

/// Read a trace file (`ls --trace`, scripts/select_ls.py --trace): draw
/// queries as a sequence diagram with --svg, or print one line per query
/// (arrival to write, TSes asked, outcome). Shows the first 10 queries
/// unless --query, --name or --first says otherwise.
#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand, name = "trace")]
pub struct TraceArgs {
    /// the trace file: one JSON object per line
    #[argh(positional)]
    pub file: PathBuf,
    /// write the sequence diagram (SVG) to this file
    #[argh(option)]
    pub svg: Option<PathBuf>,
    /// show only the query with this id
    #[argh(option)]
    pub query: Option<u64>,
    /// show every query for this name
    #[argh(option)]
    pub name: Option<String>,
    /// show the first this many queries (default 10)
    #[argh(option)]
    pub first: Option<usize>,
}

/// Parses a port number.
pub fn parse_port(text: &str) -> Result<u16, String> {
    text.parse()
        .map_err(|_| format!("{text} is not a port (0-65535)"))
}

/// Parses a DNS TTL: a whole number of seconds up to 2^31 - 1, the largest
/// a resolver honours (RFC 2181 §8 reads a larger one as 0).
fn parse_ttl(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(ttl) if ttl <= i32::MAX as u32 => Ok(ttl),
        _ => Err(format!(
            "{text:?}: expected whole seconds from 0 to 2147483647"
        )),
    }
}

/// Parses `--web`'s `ADDR:PORT` (`[::1]:8080` for IPv6) into its host and port.
pub fn parse_web(text: &str) -> Result<(String, u16), String> {
    let fix = "give ADDR:PORT, e.g. 127.0.0.1:8080 (port 0: any free port)";
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("{text:?} has no port ({fix})"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("{text:?} has no address ({fix})"));
    }
    let port = parse_port(port).map_err(|e| format!("{e} ({fix})"))?;
    Ok((host.to_string(), port))
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

/// One `--pool` member, `HOST:PORT[@WEIGHT]` (IPv6 as `[addr]:port`), as
/// host, port and weight (default 1).
pub fn parse_pool_member(text: &str) -> Result<(String, u16, u32), String> {
    let (address, weight) = match text.rsplit_once('@') {
        Some((address, weight)) => match weight.parse::<u32>() {
            Ok(w) if w >= 1 => (address, w),
            _ => {
                return Err(format!(
                    "{text:?}: the weight after @ must be a whole number of at least 1"
                ));
            }
        },
        None => (text, 1),
    };
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err(format!(
            "{text:?}: expected HOST:PORT (IPv6 as [addr]:port)"
        ));
    };
    let host = match host.strip_prefix('[') {
        Some(inner) => inner
            .strip_suffix(']')
            .ok_or_else(|| format!("{text:?}: an IPv6 address ends with ]"))?,
        None if host.contains(':') => {
            return Err(format!("{text:?}: write an IPv6 address as [addr]:port"));
        }
        None => host,
    };
    if host.is_empty() {
        return Err(format!("{text:?}: no host before the port"));
    }
    let port = parse_port(port).map_err(|why| format!("{text:?}: {why}"))?;
    Ok((host.to_string(), port, weight))
}

#[cfg(test)]
mod tests {
    #[test]
    fn pool_members_parse_with_ipv6_and_weights() {
        use super::parse_pool_member as p;
        assert_eq!(p("127.0.0.1:53"), Ok(("127.0.0.1".into(), 53, 1)));
        assert_eq!(p("[::1]:5300@3"), Ok(("::1".into(), 5300, 3)));
        assert_eq!(p("ts.example:70@2"), Ok(("ts.example".into(), 70, 2)));
        for bad in [
            "127.0.0.1",
            "::1:53",
            "[::1:53",
            ":53",
            "a:99999",
            "a:53@0",
            "a:53@x",
        ] {
            assert!(p(bad).is_err(), "{bad}");
        }
    }

    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn every_role_has_a_synopsis() {
        let roles: Vec<&str> = Cli::get_args_info()
            .commands
            .iter()
            .map(|c| c.name)
            .collect();
        let synopses: Vec<&str> = SYNOPSES.iter().map(|(name, _)| *name).collect();
        assert_eq!(roles, synopses);
    }

    #[test]
    fn dash_h_becomes_help_only_where_it_is_a_flag() {
        assert_eq!(long_help(words("-h")), words("--help"));
        assert_eq!(long_help(words("ls -h")), words("ls --help"));
        assert_eq!(
            long_help(words("ls 0 a 1 -v -h")),
            words("ls 0 a 1 -v --help")
        );
        // The value of an option, long or short.
        assert_eq!(
            long_help(words("ts 0 --table -h")),
            words("ts 0 --table -h")
        );
        assert_eq!(long_help(words("ping h 1 -c -h")), words("ping h 1 -c -h"));
        assert_eq!(
            long_help(words("ping h 1 -O -h")),
            words("ping h 1 -O --help")
        );
        assert_eq!(long_help(words("ls 0 -- -h")), words("ls 0 -- -h"));
    }

    #[test]
    fn value_errors_name_the_argument_or_flag() {
        assert_eq!(
            plain_error(
                "Error parsing positional argument 'ls_port' with value '70000': 70000 is not a port (0-65535)"
            ),
            "<ls-port>: 70000 is not a port (0-65535)"
        );
        assert_eq!(
            plain_error(
                "Error parsing option '--dns-port' with value 'x': x is not a port (0-65535)"
            ),
            "--dns-port: x is not a port (0-65535)"
        );
        assert_eq!(plain_error("Required positional"), "Required positional");
        // Rust's own messages for a whole number name the value.
        assert_eq!(
            plain_error(
                "Error parsing option '--cache' with value '-1': invalid digit found in string"
            ),
            "--cache: \"-1\" is not a whole number"
        );
        assert_eq!(
            plain_error(
                "Error parsing option '--max-inflight' with value '99999999999999999999': number too large to fit in target type"
            ),
            "--max-inflight: \"99999999999999999999\" is too large"
        );
    }

    #[test]
    fn a_ttl_is_at_most_two_to_the_31_minus_one() {
        assert_eq!(parse_ttl("0"), Ok(0));
        assert_eq!(parse_ttl("2147483647"), Ok(2_147_483_647));
        for bad in ["2147483648", "3000000000", "-5", "x"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn usage_shows_positionals_first() {
        let help = "Usage: dnslb ls [--timeout <timeout>] [-v] [--] <port> [<ts...>]\n\nRun.\n";
        assert_eq!(
            with_synopsis(Some("ls"), help),
            format!(
                "Usage: dnslb ls <port> [<ts-host> <ts-port>...] \
                 [--timeout <timeout>] [-v]\n  or:  dnslb ls {}\n\nRun.\n",
                OTHER_FORMS[0].1
            )
        );
    }
}
