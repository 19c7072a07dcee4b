//! A link that is up: the connection a session writes its queries to a
//! TS on, and their pacing towards a TS that reads one message per
//! `recv()` (bare) or whose framing is not known yet (auto: each query goes
//! bare, then gets its newline if the TS stayed silent).

use std::collections::VecDeque;
use std::io::{self, BufWriter, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::dns::Question;
use crate::dns::upstream::{self, Upstream};
use crate::framing::{Framing, write_length_prefixed, write_message};
use crate::ls::health::Health;
use crate::ls::link::{LinkHandle, PROBE_DELAY};
use crate::ls::setup::TsProtocol;

/// How long the LS leaves a bare TS (one message per `recv()`) to read a
/// query before sending it the next, unless it has replied meanwhile: two
/// queries that reach it before its read would arrive as one. It is paid
/// only after a query the TS stayed silent on (a miss), and a course
/// program on a busy machine may take tens of milliseconds to be scheduled.
pub const BARE_READ_GAP: Duration = Duration::from_millis(50);

/// Spacing of the queries written to a bare TS (see [`BARE_READ_GAP`]), or
/// to a TS whose framing is not known yet (see [`PROBE_DELAY`]).
#[derive(Default)]
pub(super) struct Pace {
    /// Until when the next query must wait: set by a write, cleared by a
    /// reply (the TS has read). Always `None` for line TSes.
    pub(super) quiet_until: Option<Instant>,
    /// When the query last written without newline gets its newline, if
    /// no reply came by then (framing not known yet).
    pub(super) probe_at: Option<Instant>,
    /// The queries waiting for `quiet_until`, oldest first.
    pub(super) held: VecDeque<u64>,
}

impl Pace {
    /// A query was written to the TS at `now`.
    pub(super) fn wrote(&mut self, now: Instant, framing: Framing) {
        match framing {
            Framing::Line => {}
            Framing::Bare => self.quiet_until = Some(now + BARE_READ_GAP),
            Framing::Auto => {
                // The next query waits for this one's newline, and a gap.
                self.probe_at = Some(now + PROBE_DELAY);
                self.quiet_until = self.probe_at;
            }
        }
    }

    pub(super) fn holds(&self, now: Instant) -> bool {
        self.quiet_until.is_some_and(|t| now < t)
    }
}

/// A link that is up: where this session writes to the TS.
pub(super) struct Conn {
    pub(super) generation: u64,
    /// How queries are written: `Auto` until the link has learnt the TS's
    /// framing (queries then go bare, each ended by a newline after
    /// [`PROBE_DELAY`] if no reply came).
    pub(super) framing: Framing,
    /// The TS's shared record, where a framing learnt is kept.
    pub(super) health: Arc<Health>,
    pub(super) writer: BufWriter<TcpStream>,
    /// Written to since the last flush.
    pub(super) dirty: bool,
    pub(super) handle: LinkHandle,
    pub(super) pace: Pace,
    /// The DNS queries in flight on the connection, by ID (DNS TSes only).
    pub(super) upstream: Option<Upstream<u64>>,
    /// A write failed as the TS closed the connection: nothing more is
    /// written, and the link is replaced when its reader has read what the
    /// TS sent before closing (see `Links::send_failed`).
    pub(super) closing: bool,
}

impl Conn {
    /// The connection of link `generation`, up on `stream`, to a TS that
    /// speaks `protocol` (a DNS TS has at most `max_inflight` IDs in use).
    pub(super) fn new(
        generation: u64,
        stream: TcpStream,
        handle: LinkHandle,
        health: Arc<Health>,
        protocol: TsProtocol,
        max_inflight: usize,
    ) -> Conn {
        let upstream = (protocol == TsProtocol::Dns).then(|| {
            let seed = stream.peer_addr().map_or(0, upstream::seed_for);
            Upstream::new(seed, max_inflight)
        });
        let framing = match protocol {
            TsProtocol::Line => handle.learnt_framing(),
            TsProtocol::Dns => Framing::Line,
        };
        Conn {
            generation,
            framing,
            health,
            writer: BufWriter::new(stream),
            dirty: false,
            handle,
            pace: Pace::default(),
            upstream,
            closing: false,
        }
    }

    /// The TS replied: it has read what it was sent, and may have shown how
    /// it frames.
    pub(super) fn heard(&mut self) -> io::Result<()> {
        self.pace.quiet_until = None;
        self.take_learnt()
    }

    /// Sends what was written.
    pub(super) fn flush(&mut self) -> io::Result<()> {
        self.dirty = false;
        if self.closing {
            return Ok(());
        }
        self.writer.flush()
    }

    /// Whether a query must wait in [`Pace::held`] rather than go now.
    pub(super) fn must_hold(&self, now: Instant) -> bool {
        !self.pace.held.is_empty() || self.pace.holds(now)
    }

    /// Takes up what the link learnt of the TS's framing, while it is not
    /// known. A TS found to read lines gets at once the newline its last
    /// query still waits for, and no more spacing.
    pub(super) fn take_learnt(&mut self) -> io::Result<()> {
        if self.framing != Framing::Auto {
            return Ok(());
        }
        self.framing = self.handle.learnt_framing();
        if self.framing != Framing::Auto {
            self.health.learn_framing(self.framing);
        }
        match self.framing {
            Framing::Line => {
                self.pace.quiet_until = None;
                if self.pace.probe_at.take().is_some() {
                    self.dirty = true;
                    self.writer.write_all(b"\n")?;
                }
            }
            Framing::Bare => self.pace.probe_at = None,
            Framing::Auto => {}
        }
        Ok(())
    }

    /// Ends the last query with its newline (see [`LinkHandle::probe`]); the
    /// next query then waits [`BARE_READ_GAP`], so that a bare TS reads the
    /// newline alone.
    pub(super) fn send_probe(&mut self, now: Instant) -> io::Result<()> {
        self.pace.probe_at = None;
        let writer = &mut self.writer;
        let sent = self.handle.probe(|| {
            writer.write_all(b"\n")?;
            writer.flush()
        })?;
        self.dirty = false;
        self.pace.quiet_until = sent.then(|| now + BARE_READ_GAP);
        self.take_learnt()
    }

    /// Writes query `seq` to the TS: its name to a course TS, its question
    /// under a fresh ID to a DNS TS. `Ok(false)`: not sent (a DNS
    /// connection with every ID in use).
    pub(super) fn send(
        &mut self,
        seq: u64,
        name: &str,
        question: Option<&Question>,
    ) -> io::Result<bool> {
        if self.closing {
            // Asked all the same: sent again on the next connection.
            return Ok(true);
        }
        self.dirty = true;
        match &mut self.upstream {
            None => {
                self.take_learnt()?;
                let framing = self.framing;
                self.pace.wrote(Instant::now(), framing);
                let written = if framing == Framing::Line {
                    Framing::Line
                } else {
                    Framing::Bare
                };
                write_message(&mut self.writer, name.as_bytes(), written)?;
            }
            Some(upstream) => {
                let Some(Ok((_, query))) = question.map(|q| upstream.send(q, seq)) else {
                    return Ok(false);
                };
                write_length_prefixed(&mut self.writer, &query)?;
            }
        }
        Ok(true)
    }
}
