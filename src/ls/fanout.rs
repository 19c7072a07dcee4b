//! The fan-out engine: one client session's connections to every TS, and the
//! wait for the first valid answer to each query.
//!
//! Each TS connection has a reader thread that turns the TS's messages into
//! [`Event`]s on one channel shared by the session. [`Fanout::resolve`] writes
//! the query to every live TS, then waits on the channel with `recv_timeout`
//! until the query's single deadline. A reply counts only if it is a valid
//! answer for the name being asked; anything else (a late answer to an
//! earlier query, a second answer, garbage) is dropped. The engine knows
//! nothing of how queries arrive, so any front end can drive it.

use std::fmt;
use std::io;
use std::net::{Shutdown as Direction, SocketAddr, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::framing::{Frame, Framing, MessageReader, write_message};
use crate::log;
use crate::net::connect_any;
use crate::wire::{self, Query};

/// How long a session waits for a TS to accept its connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Replies buffered per session before a reader thread waits for the worker:
/// a TS that floods replies is slowed down, not buffered without bound.
const EVENT_QUEUE: usize = 1024;

/// Reader threads only move bytes into the channel; they need little stack.
const READER_STACK: usize = 64 * 1024;

/// One top-level server the LS forwards to.
#[derive(Clone, Debug)]
pub struct Backend {
    /// How logs name it: `ts1`, `ts2`, ...
    pub label: String,
    /// The host as given on the command line.
    pub host: String,
    /// Its addresses (a name may resolve to several); tried in order.
    pub addrs: Vec<SocketAddr>,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addrs.first() {
            Some(addr) => write!(f, "{} ({addr})", self.label),
            None => write!(f, "{} ({})", self.label, self.host),
        }
    }
}

/// How a session talks to its TSes.
#[derive(Clone, Copy, Debug)]
pub struct FanoutOptions {
    /// How long a query waits for an answer before it is a miss.
    pub timeout: Duration,
    /// How queries are sent to the TSes and their replies delimited
    /// (`Line` or `Bare`; `Auto` is treated as `Line`).
    pub framing: Framing,
}

/// How a query ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// TS number `ts` (index into the backends) answered with `line`.
    Answered { ts: usize, line: String },
    /// No TS answered before the deadline.
    TimedOut,
    /// Every TS was down or went down while the query waited.
    AllDown,
}

/// A query's outcome and how long it took.
#[derive(Clone, Debug)]
pub struct Resolution {
    /// What happened.
    pub outcome: Outcome,
    /// From sending the query to the outcome.
    pub elapsed: Duration,
}

/// What a reader thread tells its session.
enum Event {
    /// TS `ts` sent a message.
    Reply { ts: usize, frame: Frame },
    /// TS `ts` closed its connection or failed.
    Closed { ts: usize, why: String },
}

/// One client session's connections to every TS.
pub struct Fanout {
    backends: Vec<Backend>,
    options: FanoutOptions,
    /// Write halves, `None` for a TS that is down.
    links: Vec<Option<TcpStream>>,
    events: Receiver<Event>,
    readers: Vec<JoinHandle<()>>,
}

impl Fanout {
    /// Connects to every backend; a TS that cannot be reached is logged and
    /// left out, so queries are answered from the others.
    pub fn connect(backends: &[Backend], options: FanoutOptions) -> Fanout {
        let (tx, events) = crossbeam_channel::bounded(EVENT_QUEUE);
        let mut links = Vec::with_capacity(backends.len());
        let mut readers = Vec::with_capacity(backends.len());
        for (ts, backend) in backends.iter().enumerate() {
            match open_link(ts, backend, options, tx.clone()) {
                Ok((stream, reader)) => {
                    links.push(Some(stream));
                    readers.push(reader);
                }
                Err(e) => {
                    log::warn(format_args!(
                        "ls: {backend} is unreachable ({e}); answering from the other TSes"
                    ));
                    links.push(None);
                }
            }
        }
        Fanout {
            backends: backends.to_vec(),
            options,
            links,
            events,
            readers,
        }
    }

    /// The backends this session forwards to.
    pub fn backends(&self) -> &[Backend] {
        &self.backends
    }

    /// Sends `query` to every live TS and waits until the first valid answer
    /// for it or the deadline, whichever comes first.
    pub fn resolve(&mut self, query: &Query) -> Resolution {
        let started = Instant::now();
        let deadline = started + self.options.timeout;
        self.drop_stale_events();
        let mut waiting_on = 0;
        for ts in 0..self.links.len() {
            let Some(link) = &mut self.links[ts] else {
                continue;
            };
            match write_message(link, query.name.as_bytes(), self.options.framing) {
                Ok(()) => waiting_on += 1,
                Err(e) => self.mark_down(ts, &format!("send failed: {e}")),
            }
        }
        let outcome = self.wait(query, deadline, waiting_on);
        Resolution {
            outcome,
            elapsed: started.elapsed(),
        }
    }

    fn wait(&mut self, query: &Query, deadline: Instant, mut waiting_on: usize) -> Outcome {
        while waiting_on > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(Event::Reply { ts, frame }) => {
                    if let Some(line) = self.accept_reply(ts, frame, query) {
                        return Outcome::Answered { ts, line };
                    }
                }
                Ok(Event::Closed { ts, why }) => {
                    // A TS that closes had not answered this query.
                    if self.links[ts].is_some() {
                        waiting_on -= 1;
                    }
                    self.mark_down(ts, &why);
                }
                Err(RecvTimeoutError::Timeout) => return Outcome::TimedOut,
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        Outcome::AllDown
    }

    /// The reply's line if it is a valid answer for `query`; logs and drops it otherwise.
    fn accept_reply(&self, ts: usize, frame: Frame, query: &Query) -> Option<String> {
        let backend = &self.backends[ts];
        let Frame::Message(bytes) = frame else {
            log::info(format_args!(
                "ls: dropped an over-long reply from {backend}"
            ));
            return None;
        };
        match wire::parse_answer(&bytes) {
            Ok(answer) if wire::name_key(&answer.name) == query.key => {
                // The bytes parsed as an answer, so they are UTF-8.
                Some(String::from_utf8_lossy(&bytes).trim().to_string())
            }
            Ok(answer) => {
                log::info(format_args!(
                    "ls: dropped a reply from {backend} for {:?} while waiting for {:?} (late or unasked)",
                    answer.name, query.name
                ));
                None
            }
            Err(e) => {
                log::warn(format_args!(
                    "ls: dropped an invalid reply from {backend}: {e}"
                ));
                None
            }
        }
    }

    /// Events that arrived between queries belong to no query being asked.
    fn drop_stale_events(&mut self) {
        while let Ok(event) = self.events.try_recv() {
            match event {
                Event::Reply { ts, frame } => {
                    let backend = &self.backends[ts];
                    if let Frame::Message(bytes) = frame {
                        log::info(format_args!(
                            "ls: dropped a late reply from {backend}: {:?}",
                            String::from_utf8_lossy(&bytes)
                        ));
                    }
                }
                Event::Closed { ts, why } => self.mark_down(ts, &why),
            }
        }
    }

    fn mark_down(&mut self, ts: usize, why: &str) {
        if let Some(link) = self.links[ts].take() {
            log::warn(format_args!("ls: {} is down: {why}", self.backends[ts]));
            let _ = link.shutdown(Direction::Both);
        }
    }
}

impl Drop for Fanout {
    fn drop(&mut self) {
        for link in self.links.iter().flatten() {
            let _ = link.shutdown(Direction::Both);
        }
        // Dropping the receiver first frees any reader blocked on a full queue.
        drop(std::mem::replace(
            &mut self.events,
            crossbeam_channel::never(),
        ));
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }
}

/// Connects to `backend` and starts its reader thread.
fn open_link(
    ts: usize,
    backend: &Backend,
    options: FanoutOptions,
    events: Sender<Event>,
) -> io::Result<(TcpStream, JoinHandle<()>)> {
    let stream = connect_any(&backend.addrs, CONNECT_TIMEOUT)?;
    stream.set_nodelay(true)?;
    // A TS that stops reading must not block the worker past a deadline:
    // a write that cannot finish in one timeout marks the TS down.
    stream.set_write_timeout(Some(options.timeout))?;
    let framing = match options.framing {
        Framing::Auto => Framing::Line,
        framing => framing,
    };
    let mut reader = MessageReader::new(stream.try_clone()?, framing, wire::MAX_MESSAGE_LEN);
    let handle = thread::Builder::new()
        .name(format!("ls reader {}", backend.label))
        .stack_size(READER_STACK)
        .spawn(move || {
            let why = loop {
                match reader.next_frame() {
                    Ok(Some(frame)) => {
                        if events.send(Event::Reply { ts, frame }).is_err() {
                            return;
                        }
                    }
                    Ok(None) => break "connection closed".to_string(),
                    Err(e) => break e.to_string(),
                }
            };
            let _ = events.send(Event::Closed { ts, why });
        })?;
    Ok((stream, handle))
}
