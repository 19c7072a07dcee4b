//! The load-balancing server (LS): one worker thread per client connection,
//! each reading the client's queries, resolving them through its own
//! [`Fanout`] to every TS, and writing exactly one reply line per query, in
//! order.

mod fanout;

pub use fanout::{Backend, CONNECT_TIMEOUT, Fanout, FanoutOptions, Outcome, Resolution};

use std::io;
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use crate::framing::{Frame, Framing, MessageReader, write_message};
use crate::log;
use crate::server::{Shutdown, serve};
use crate::wire::{self, Dialect, QueryError};

/// The per-query deadline when none is given (the course spec's 5 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// How an LS behaves.
#[derive(Clone, Debug)]
pub struct LsOptions {
    /// The TSes every query is forwarded to.
    pub backends: Vec<Backend>,
    /// How long a query waits for an answer.
    pub timeout: Duration,
    /// The miss line's format.
    pub dialect: Dialect,
    /// How clients delimit queries; `Auto` detects per connection.
    pub client_framing: Framing,
    /// How the LS delimits queries to TSes and their replies.
    pub ts_framing: Framing,
}

impl LsOptions {
    /// Options with the defaults: 5 s timeout, 2020 dialect, auto-detected
    /// client framing, line framing towards the TSes.
    pub fn new(backends: Vec<Backend>) -> LsOptions {
        LsOptions {
            backends,
            timeout: DEFAULT_TIMEOUT,
            dialect: Dialect::Y2020,
            client_framing: Framing::Auto,
            ts_framing: Framing::Line,
        }
    }
}

/// Serves clients on `listener` until `shutdown` triggers; returns when every
/// worker has answered the query it was working on and closed.
///
/// # Errors
/// When the listener's address cannot be read.
pub fn run(listener: TcpListener, options: LsOptions, shutdown: &Shutdown) -> io::Result<()> {
    // A worker answers its query in flight within the timeout.
    let grace = options.timeout + Duration::from_millis(500);
    let options = Arc::new(options);
    serve(listener, shutdown, "ls", grace, move |client| {
        if let Err(e) = serve_client(client, &options) {
            log::info(format_args!("ls: client connection ended: {e}"));
        }
    })
}

/// The worker: one reply per query, in order, until the client closes.
fn serve_client(client: TcpStream, options: &LsOptions) -> io::Result<()> {
    client.set_nodelay(true)?;
    let mut fanout = Fanout::connect(
        &options.backends,
        FanoutOptions {
            timeout: options.timeout,
            framing: options.ts_framing,
        },
    );
    let mut queries = MessageReader::new(
        client.try_clone()?,
        options.client_framing,
        wire::MAX_MESSAGE_LEN,
    );
    let mut replies = client;
    while let Some(frame) = queries.next_frame()? {
        let reply = match frame {
            Frame::TooLong => QueryError::TooLong.reply(),
            Frame::Message(message) => match wire::parse_query(&message) {
                Ok(query) => {
                    let resolution = fanout.resolve(&query);
                    log_resolution(&fanout, &query.name, &resolution);
                    match resolution.outcome {
                        Outcome::Answered { line, .. } => line,
                        Outcome::TimedOut | Outcome::AllDown => {
                            wire::miss_line(&query.name, options.dialect)
                        }
                    }
                }
                Err(e) => {
                    log::info(format_args!("ls: invalid query: {e}"));
                    e.reply()
                }
            },
        };
        write_message(&mut replies, reply.as_bytes(), queries.framing())?;
    }
    Ok(())
}

/// The `-v` line that tracks which TS responded.
fn log_resolution(fanout: &Fanout, name: &str, resolution: &Resolution) {
    let ms = resolution.elapsed.as_secs_f64() * 1000.0;
    match &resolution.outcome {
        Outcome::Answered { ts, .. } => {
            log::info(format_args!(
                "ls: {name} answered by {} in {ms:.1} ms",
                fanout.backends()[*ts]
            ));
        }
        Outcome::TimedOut => log::info(format_args!(
            "ls: {name} not found: no TS answered within {ms:.1} ms"
        )),
        Outcome::AllDown => log::info(format_args!(
            "ls: {name} not found: every TS is down ({ms:.1} ms)"
        )),
    }
}
