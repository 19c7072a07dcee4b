//! One session's connection to one TS: a thread that connects, then reads the
//! TS's messages until the connection ends, reporting each step as an
//! [`Event`] on the session's channel.
//!
//! Connecting on the link's own thread keeps a slow or unreachable TS from
//! holding up the session's other TSes and its client.
//!
//! With `--ts-framing auto` the link also finds out how the TS frames its
//! replies (see [`LinkHandle::probe`]): the session sends each query bare
//! and, when no reply came within [`PROBE_DELAY`], the newline that ends it
//! as a line. A TS that replied before any newline reached it reads one
//! message per `recv()` (a course TS); any other is read as the TS-side
//! detection reads its clients ([`MessageReader`] with [`Framing::Auto`]).

use std::io::{self, BufReader};
use std::net::{Shutdown as Direction, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use super::event::Event;
use super::health::{Attempt, Health};
use super::setup::{Backend, TsProtocol};
use crate::framing::{Frame, Framing, MessageReader, read_length_prefixed};
use crate::net::{connect_any, is_local_shortage};
use crate::sync::lock;
use crate::wire;

/// Reader threads only move bytes into the channel; they need little stack.
const LINK_STACK: usize = 64 * 1024;

/// How long, with `--ts-framing auto`, a query sent without newline waits
/// for a reply before the session sends the newline that makes it a line:
/// the time a bare TS is given to read a message before more bytes follow
/// (as [`BARE_READ_GAP`]). A dnslb TS waits [`AUTO_DETECT_GRACE`] for that
/// newline before it takes its peer for a bare one, well above this.
///
/// [`BARE_READ_GAP`]: super::session::BARE_READ_GAP
/// [`AUTO_DETECT_GRACE`]: crate::framing::AUTO_DETECT_GRACE
pub const PROBE_DELAY: Duration = Duration::from_millis(50);

/// What a link has learnt of its TS's framing (`--ts-framing auto`).
#[derive(Default)]
struct Learnt {
    /// A newline was sent after a bare query.
    probed: bool,
    /// How the TS frames its replies, once its first reply was read.
    framing: Option<Framing>,
}

/// The session's view of one link: where the thread leaves its connection's
/// writing half once connected, and the flag that says the session is done
/// with the link. While the slot holds the writing half, closing the link
/// shuts it down there, so a connection the session never took cannot keep
/// the thread reading.
#[derive(Clone, Default)]
pub struct LinkHandle {
    writer: Arc<Mutex<Option<TcpStream>>>,
    closing: Arc<AtomicBool>,
    learnt: Arc<Mutex<Learnt>>,
}

impl LinkHandle {
    /// The writing half, once connected; `None` after it was taken.
    pub fn take_writer(&self) -> Option<TcpStream> {
        lock(&self.writer).take()
    }

    /// Marks the link closed by the session: the end of its connection is
    /// then not news about the TS's health, and the thread sends no more
    /// events. A writing half still in the slot is shut down; one the
    /// session took is the session's to shut down.
    pub fn close(&self) {
        let slot = lock(&self.writer);
        self.closing.store(true, Ordering::SeqCst);
        if let Some(stream) = slot.as_ref() {
            let _ = stream.shutdown(Direction::Both);
        }
    }

    fn is_closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    /// How the TS frames its replies, once its first reply was read
    /// (`--ts-framing auto`); `Auto` until then.
    pub fn learnt_framing(&self) -> Framing {
        lock(&self.learnt).framing.unwrap_or(Framing::Auto)
    }

    /// Ends a query sent bare with the newline a line TS waits for, by
    /// calling `send_newline`, unless the TS has already shown it reads
    /// bare messages. Returns whether it was sent.
    ///
    /// Replies that reach the link before any such newline was sent can
    /// only come from a TS that answers bare messages: the link then reads
    /// the TS as bare. Holding the lock while sending orders the two.
    ///
    /// # Errors
    /// `send_newline`'s.
    pub fn probe(&self, send_newline: impl FnOnce() -> io::Result<()>) -> io::Result<bool> {
        let mut learnt = lock(&self.learnt);
        if learnt.framing == Some(Framing::Bare) {
            return Ok(false);
        }
        send_newline()?;
        learnt.probed = true;
        Ok(true)
    }

    /// The framing to read a TS's replies with, decided when its first bytes
    /// arrive (see [`probe`](Self::probe)).
    fn first_bytes_arrived(&self) -> Framing {
        let mut learnt = lock(&self.learnt);
        if learnt.probed {
            Framing::Auto
        } else {
            learnt.framing = Some(Framing::Bare);
            Framing::Bare
        }
    }

    fn learn(&self, framing: Framing) {
        if framing != Framing::Auto {
            lock(&self.learnt).framing.get_or_insert(framing);
        }
    }
}

/// The session's handle on a link thread.
pub struct LinkThread {
    thread: JoinHandle<()>,
    handle: LinkHandle,
}

impl LinkThread {
    /// The link's handle.
    pub fn handle(&self) -> LinkHandle {
        self.handle.clone()
    }

    /// Starts ending the link (see [`LinkHandle::close`]). The thread ends
    /// once its reads fail and, if the session's channel is full, once the
    /// session drops its receiver.
    pub fn begin_close(&self) {
        self.handle.close();
    }

    /// Whether the thread has ended (its handle can then be dropped).
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Waits for the thread to end (call [`begin_close`](Self::begin_close) first).
    pub fn join(self) {
        let _ = self.thread.join();
    }
}

/// How a link connects and reads.
#[derive(Clone, Copy)]
pub struct LinkOptions {
    /// Longest the connection may take to be made.
    pub connect_timeout: Duration,
    /// Longest a write to the TS may block.
    pub write_timeout: Duration,
    /// `Line`, `Bare`, or `Auto` (learnt from the first reply) for a course
    /// TS; the link's [`LinkHandle::learnt_framing`] starts as `framing`.
    pub framing: Framing,
    /// What the TS speaks.
    pub protocol: TsProtocol,
    /// Whether each reply is stamped with when it was read (`--trace`).
    pub timed: bool,
}

/// What a link thread needs to know about itself.
struct Link {
    ts: usize,
    generation: u64,
    health: Arc<Health>,
    attempt: Attempt,
    options: LinkOptions,
    events: Sender<Event>,
    handle: LinkHandle,
}

/// Starts a link thread to `backend` (TS number `ts`), which connects with the
/// permission `attempt` and reports to `events`.
///
/// # Errors
/// When the thread cannot be started.
pub fn spawn(
    ts: usize,
    generation: u64,
    backend: &Backend,
    health: Arc<Health>,
    attempt: Attempt,
    options: LinkOptions,
    events: Sender<Event>,
) -> io::Result<LinkThread> {
    let handle = LinkHandle::default();
    if options.framing != Framing::Auto {
        lock(&handle.learnt).framing = Some(options.framing);
    }
    let link = Link {
        ts,
        generation,
        health,
        attempt,
        options,
        events,
        handle,
    };
    let handle = link.handle.clone();
    let addrs = backend.addrs.clone();
    let thread = thread::Builder::new()
        .name(format!("ls link {}", backend.label))
        .stack_size(LINK_STACK)
        .spawn(move || link.run(&addrs))?;
    Ok(LinkThread { thread, handle })
}

impl Link {
    fn run(self, addrs: &[std::net::SocketAddr]) {
        let (ts, generation) = (self.ts, self.generation);
        let connected = connect_any(addrs, self.options.connect_timeout).and_then(|stream| {
            prepare(&stream, self.options)?;
            let writer = stream.try_clone()?;
            Ok((stream, writer))
        });
        let (reader, writer) = match connected {
            Ok(streams) => streams,
            Err(e) if is_local_shortage(&e) => {
                // The LS's own shortage: the attempt is dropped unreported,
                // which gives a probe back without blaming the TS.
                let why = format!("cannot connect: {e}");
                let _ = self.events.send(Event::Starved {
                    ts,
                    generation,
                    why,
                });
                return;
            }
            Err(e) => {
                let why = format!("cannot connect: {e}");
                self.health.failed(Some(self.attempt), &why);
                let _ = self.events.send(Event::Down {
                    ts,
                    generation,
                    why,
                });
                return;
            }
        };
        self.health.connected(self.attempt);
        {
            let mut slot = lock(&self.handle.writer);
            if self.handle.is_closing() {
                // The session ended while this link was connecting.
                return;
            }
            *slot = Some(writer);
        }
        if self
            .events
            .send(Event::Connected { ts, generation })
            .is_err()
        {
            return;
        }
        let ended = match self.options.protocol {
            TsProtocol::Line => read_replies(
                ts,
                generation,
                reader,
                self.options.framing,
                &self.handle,
                &self.events,
                self.options.timed,
            ),
            TsProtocol::Dns => {
                read_dns_replies(ts, generation, reader, &self.events, self.options.timed)
            }
        };
        if self.handle.is_closing() {
            return;
        }
        match ended {
            // Whether that is news about the TS depends on what the session
            // was waiting for: the session decides.
            Ended::ClosedByTs => {
                let _ = self.events.send(Event::Closed { ts, generation });
            }
            Ended::Failed(why) => {
                self.health.failed(None, &why);
                let _ = self.events.send(Event::Down {
                    ts,
                    generation,
                    why,
                });
            }
            Ended::SessionGone => {}
        }
    }
}

fn prepare(stream: &TcpStream, options: LinkOptions) -> io::Result<()> {
    stream.set_nodelay(true)?;
    // A TS that stops reading must not block its session past a deadline.
    stream.set_write_timeout(Some(options.write_timeout))
}

/// How a link's reading ended.
enum Ended {
    /// The TS closed the connection (end of stream).
    ClosedByTs,
    /// Reading failed.
    Failed(String),
    /// The session dropped its channel.
    SessionGone,
}

/// A reset is the TS closing the connection too (it closed it with a query
/// of ours on the way, say); any other error is a failure.
fn ended_by(e: io::Error) -> Ended {
    match e.kind() {
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => Ended::ClosedByTs,
        _ => Ended::Failed(e.to_string()),
    }
}

/// Waits until the TS has sent something (`true`) or closed the
/// connection (`false`), reading nothing.
fn wait_for_bytes(stream: &TcpStream) -> io::Result<bool> {
    let mut byte = [0u8; 1];
    loop {
        match stream.peek(&mut byte) {
            Ok(n) => return Ok(n > 0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Forwards a DNS TS's messages (each with its 2-byte length, RFC 7766)
/// until the connection ends.
fn read_dns_replies(
    ts: usize,
    generation: u64,
    stream: TcpStream,
    events: &Sender<Event>,
    timed: bool,
) -> Ended {
    let mut reader = BufReader::new(stream);
    loop {
        match read_length_prefixed(&mut reader) {
            Ok(Some(message)) => {
                let event = Event::Reply {
                    ts,
                    generation,
                    frame: Frame::Message(message),
                    read_at: timed.then(Instant::now),
                };
                if events.send(event).is_err() {
                    return Ended::SessionGone;
                }
            }
            Ok(None) => return Ended::ClosedByTs,
            Err(e) => return ended_by(e),
        }
    }
}

/// Forwards the TS's messages until the connection ends. With `Auto`, the
/// framing is decided when the first bytes arrive and published on `handle`
/// before the first reply is reported.
fn read_replies(
    ts: usize,
    generation: u64,
    stream: TcpStream,
    framing: Framing,
    handle: &LinkHandle,
    events: &Sender<Event>,
    timed: bool,
) -> Ended {
    let framing = match framing {
        Framing::Auto => match wait_for_bytes(&stream) {
            Ok(true) => handle.first_bytes_arrived(),
            Ok(false) => return Ended::ClosedByTs,
            Err(e) => return ended_by(e),
        },
        framing => framing,
    };
    let mut reader = MessageReader::new(stream, framing, wire::MAX_MESSAGE_LEN);
    loop {
        match reader.next_frame() {
            Ok(Some(frame)) => {
                handle.learn(reader.framing());
                let event = Event::Reply {
                    ts,
                    generation,
                    frame,
                    read_at: timed.then(Instant::now),
                };
                if events.send(event).is_err() {
                    return Ended::SessionGone;
                }
            }
            Ok(None) => return Ended::ClosedByTs,
            Err(e) => return ended_by(e),
        }
    }
}
