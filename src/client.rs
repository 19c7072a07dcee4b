//! The client: sends each hostname of a file to an LS over one connection and
//! writes every reply, one line per query, to the output file (and to stdout).
//!
//! By default it waits for each reply before sending the next query, as the
//! course client does. With a pipeline window W it keeps up to W queries in
//! flight, so misses (which take the LS's whole timeout) overlap instead of
//! adding up. When the connection drops mid-file, everything resolved so far
//! is written to the output before the client exits.
//!
//! By default ([`Framing::Auto`]) one query at a time goes out as the course
//! client sends it, the bare name without newline, which a course LS reads
//! whether or not it strips what it receives and a dnslb LS detects; replies
//! are taken with or without newline, as the first one shows.

use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::framing::{Frame, Framing, MessageReader, is_timeout, write_message};
use crate::net::connect_any;
use crate::window::{self, Credits, Returns};
use crate::wire;

/// How long the client waits for the LS to accept its connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the client waits after a reply before it sends its next query
/// bare. A course LS sends each query to every TS as soon as it reads it;
/// a TS that stayed silent on the last query (the other one held the name)
/// and has not read it yet would read both in one `recv()` and miss both.
/// This gives it the time to read.
pub const BARE_QUERY_GAP: Duration = Duration::from_millis(50);

/// Longest reply line kept (an error reply echoes a query of up to 255 bytes).
const MAX_REPLY_LEN: usize = 4096;

/// How the client talks to the LS.
#[derive(Clone, Copy, Debug)]
pub struct ClientOptions {
    /// `Auto` (bare queries, replies as they come; `Line` when pipelining),
    /// `Line` for line-protocol servers, `Bare` for the course's Python LS
    /// (one `send()` per query, no newline).
    pub framing: Framing,
    /// How long to wait for each reply before giving up.
    pub reply_timeout: Duration,
    /// Most queries sent ahead of their replies: 1 waits for each reply
    /// before sending the next query (the course client's behaviour).
    pub pipeline: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            framing: Framing::Auto,
            reply_timeout: Duration::from_secs(30),
            pipeline: 1,
        }
    }
}

/// Why the client stopped before the end of its input.
#[derive(Debug)]
pub enum ClientError {
    /// The input file could not be read.
    Input { path: PathBuf, error: io::Error },
    /// The output file could not be created or written.
    Output { path: PathBuf, error: io::Error },
    /// No connection to the LS.
    Connect {
        addrs: Vec<SocketAddr>,
        error: io::Error,
    },
    /// The connection failed or closed before every query was answered.
    Connection {
        answered: usize,
        total: usize,
        why: String,
    },
    /// The LS at `addr` replied `- Error:SERVER BUSY` (it is full, or short
    /// of descriptors or threads) after `answered` answers.
    Busy {
        addr: SocketAddr,
        answered: usize,
        total: usize,
    },
}

impl ClientError {
    /// The process exit code: 2 for a bad input file, 1 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            ClientError::Input { .. } => 2,
            _ => 1,
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Input { path, error } => write!(
                f,
                "--input {}: cannot read it: {error} (run the client where that file is, \
                 or name the hostnames file with --input <file>)",
                path.display()
            ),
            ClientError::Output { path, error } => {
                write!(f, "cannot write {}: {error}", path.display())
            }
            ClientError::Connect { addrs, error } => {
                let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
                write!(
                    f,
                    "cannot connect to the LS at {}: {error}",
                    list.join(", ")
                )
            }
            ClientError::Connection {
                answered,
                total,
                why,
            } => write!(
                f,
                "connection to the LS lost after {answered} of {total} answers: {why}"
            ),
            ClientError::Busy {
                addr,
                answered,
                total,
            } => write!(
                f,
                "the LS at {addr} is busy (it replied `{}`) after {answered} of {total} answers; try again later",
                wire::SERVER_BUSY
            ),
        }
    }
}

impl std::error::Error for ClientError {}

/// The hostnames of an input file: one per line, surrounding whitespace
/// trimmed, blank lines skipped.
///
/// ```
/// assert_eq!(dnslb::client::hostnames(b"a.com\r\n\n  b.com \n"), vec![&b"a.com"[..], b"b.com"]);
/// ```
pub fn hostnames(text: &[u8]) -> Vec<&[u8]> {
    text.split(|&b| b == b'\n')
        .map(<[u8]>::trim_ascii)
        .filter(|line| !line.is_empty())
        .collect()
}

/// Resolves every hostname of `input` through the LS at `addrs`, writing the
/// replies to `output` and echoing each to `echo`. Returns the number of answers.
///
/// # Errors
/// A [`ClientError`]; replies received before it are in `output`.
pub fn resolve_file(
    addrs: &[SocketAddr],
    input: &Path,
    output: &Path,
    options: ClientOptions,
    echo: &mut impl Write,
) -> Result<usize, ClientError> {
    let text = std::fs::read(input).map_err(|error| ClientError::Input {
        path: input.to_path_buf(),
        error,
    })?;
    let names = hostnames(&text);
    let stream = connect_any(addrs, CONNECT_TIMEOUT).map_err(|error| ClientError::Connect {
        addrs: addrs.to_vec(),
        error,
    })?;
    let peer = stream.peer_addr().unwrap_or(addrs[0]);
    let file = File::create(output).map_err(|error| ClientError::Output {
        path: output.to_path_buf(),
        error,
    })?;
    let mut out = BufWriter::new(file);
    let exchanged = exchange(stream, &names, options, &mut out, echo);
    // Whatever happened, the replies received are written out.
    let flushed = out.flush().map_err(Failure::Output);
    exchanged
        .and_then(|n| flushed.map(|()| n))
        .map_err(|e| match e {
            Failure::Output(error) => ClientError::Output {
                path: output.to_path_buf(),
                error,
            },
            Failure::Connection { answered, why } => ClientError::Connection {
                answered,
                total: names.len(),
                why,
            },
            Failure::Busy { answered } => ClientError::Busy {
                addr: peer,
                answered,
                total: names.len(),
            },
        })
}

enum Failure {
    Output(io::Error),
    Connection { answered: usize, why: String },
    Busy { answered: usize },
}

/// Sends the names, at most `options.pipeline` ahead of their replies, and
/// writes each reply as it arrives.
fn exchange(
    stream: TcpStream,
    names: &[&[u8]],
    options: ClientOptions,
    out: &mut impl Write,
    echo: &mut impl Write,
) -> Result<usize, Failure> {
    let lost = |answered, e: io::Error| Failure::Connection {
        answered,
        why: if is_timeout(&e) {
            format!("no reply within {:?}", options.reply_timeout)
        } else {
            e.to_string()
        },
    };
    let setup = stream
        .set_nodelay(true)
        .and_then(|()| stream.set_read_timeout(Some(options.reply_timeout)))
        .and_then(|()| stream.try_clone());
    let (queries, framing, window) = plan(options);
    let mut replies = MessageReader::new(setup.map_err(|e| lost(0, e))?, framing, MAX_REPLY_LEN);
    let (credits, returns) = window::open(window);
    thread::scope(|scope| {
        let sender = scope.spawn(|| send_queries(stream, names, queries, &credits));
        let received = receive_replies(&mut replies, names.len(), &returns, out, echo, lost);
        // Unblocks the sender if the replies stopped coming.
        let _ = replies.get_ref().shutdown(Shutdown::Both);
        drop(returns);
        let _ = sender.join();
        received
    })
}

/// How the client talks: the framing its queries are written in, the one its
/// replies are read with, and how many queries may be in flight. A bare
/// peer reads one message per recv(): nothing is sent ahead of it.
///
/// ```
/// # use dnslb::client::{ClientOptions, plan};
/// # use dnslb::framing::Framing;
/// let options = ClientOptions::default();
/// assert_eq!(plan(options), (Framing::Bare, Framing::Auto, 1));
/// let bare = ClientOptions { framing: Framing::Bare, pipeline: 8, ..options };
/// assert_eq!(plan(bare), (Framing::Bare, Framing::Bare, 1));
/// let pipelined = ClientOptions { pipeline: 8, ..options };
/// assert_eq!(plan(pipelined), (Framing::Line, Framing::Line, 8));
/// ```
pub fn plan(options: ClientOptions) -> (Framing, Framing, usize) {
    match options.framing {
        Framing::Bare => (Framing::Bare, Framing::Bare, 1),
        Framing::Auto if options.pipeline <= 1 => (Framing::Bare, Framing::Auto, 1),
        Framing::Line | Framing::Auto => (Framing::Line, Framing::Line, options.pipeline.max(1)),
    }
}

/// Sends each name once a credit allows; flushes whenever it must wait.
/// Bare queries leave [`BARE_QUERY_GAP`] after the reply before them.
fn send_queries(stream: TcpStream, names: &[&[u8]], framing: Framing, credits: &Credits) {
    let mut queries = BufWriter::new(stream);
    for name in names {
        let must_wait = !credits.try_take();
        if must_wait && (queries.flush().is_err() || !credits.take()) {
            return;
        }
        if must_wait && framing == Framing::Bare {
            // Spacing, not waiting for an event (see BARE_QUERY_GAP).
            thread::sleep(BARE_QUERY_GAP);
        }
        if write_message(&mut queries, name, framing).is_err() {
            return;
        }
    }
    let _ = queries.flush();
}

/// Reads `expected` replies in order, giving a credit back for each.
fn receive_replies(
    replies: &mut MessageReader,
    expected: usize,
    returns: &Returns,
    out: &mut impl Write,
    echo: &mut impl Write,
    lost: impl Fn(usize, io::Error) -> Failure,
) -> Result<usize, Failure> {
    for answered in 0..expected {
        let reply = match replies.next_frame().map_err(|e| lost(answered, e))? {
            Some(Frame::Message(bytes)) => bytes,
            Some(Frame::TooLong) => b"- Error:REPLY TOO LONG".to_vec(),
            None => {
                return Err(Failure::Connection {
                    answered,
                    why: "the LS closed the connection".to_string(),
                });
            }
        };
        if reply.trim_ascii() == wire::SERVER_BUSY.as_bytes() {
            // Not an answer: the LS could not serve this query.
            return Err(Failure::Busy { answered });
        }
        returns.give_back();
        let mut line = reply.trim_ascii().to_vec();
        line.push(b'\n');
        out.write_all(&line).map_err(Failure::Output)?;
        let _ = echo.write_all(&line);
    }
    Ok(expected)
}
