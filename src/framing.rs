//! Splitting a TCP byte stream into messages, and writing messages back.
//!
//! dnslb peers end every message with `\n` (or `\r\n`). The course's Python
//! programs instead send each message with one bare `send()` and read it with
//! one `recv()`: for them, a message is whatever one read returns, and replies
//! carry no newline. [`Framing`] names the two conventions; servers detect
//! which one a connection uses from its first message ([`Framing::Auto`]).
//!
//! DNS over TCP frames each message with a two-byte length instead
//! ([`read_length_prefixed`], [`write_length_prefixed`]); servers bound the
//! time a whole message may take ([`read_length_prefixed_timed`]).
//!
//! Memory stays bounded whatever a peer sends: a message longer than the
//! reader's limit is discarded as it streams and reported as
//! [`Frame::TooLong`], never buffered whole.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::str::FromStr;
use std::time::{Duration, Instant};

/// How long a server waits, after a first message that ends without a
/// newline, for the rest of the line before deciding the peer sends bare
/// messages. Line peers finish their line within a round trip; bare peers
/// send nothing more until they have their reply.
pub const AUTO_DETECT_GRACE: Duration = Duration::from_millis(200);

const READ_BUFFER: usize = 8 * 1024;

/// How messages are delimited on a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// Each message ends with `\n` or `\r\n`.
    Line,
    /// Each read returns one message, sent without a newline (the course
    /// programs' `send()`/`recv()` convention). A newline still ends a message.
    Bare,
    /// Decide from the first message: `Bare` when it ends without a newline
    /// and nothing follows for [`AUTO_DETECT_GRACE`], `Line` otherwise.
    Auto,
}

impl FromStr for Framing {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "line" => Ok(Framing::Line),
            "bare" => Ok(Framing::Bare),
            "auto" => Ok(Framing::Auto),
            other => Err(format!(
                "unknown framing {other:?}: expected line, bare or auto"
            )),
        }
    }
}

/// One message read from a peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// The message's bytes, without line ending.
    Message(Vec<u8>),
    /// The message was longer than the reader's limit; its bytes were discarded.
    TooLong,
}

/// Reads messages from a TCP stream, one at a time, in bounded memory.
pub struct MessageReader {
    stream: TcpStream,
    framing: Framing,
    limit: usize,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// Where a second bare message read during detection begins: the read
    /// boundary is a message boundary, so the two are never merged.
    boundary: Option<usize>,
    /// The last message ended at end of stream without its newline.
    cut: bool,
    /// [`first_bytes`](MessageReader::first_bytes) read the first bytes;
    /// the framing is still to be detected from them.
    detect_first: bool,
}

impl MessageReader {
    /// Reads from `stream`, discarding messages longer than `limit` bytes.
    pub fn new(stream: TcpStream, framing: Framing, limit: usize) -> MessageReader {
        MessageReader {
            stream,
            framing,
            limit,
            buf: vec![0; READ_BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
            boundary: None,
            cut: false,
            detect_first: false,
        }
    }

    /// The first bytes the peer sent (one read, blocking, before any
    /// message is taken), left for [`next_frame`](Self::next_frame): lets a
    /// server tell another protocol from its own. Empty at end of stream.
    ///
    /// # Errors
    /// The stream's read errors.
    pub fn first_bytes(&mut self) -> io::Result<&[u8]> {
        if self.start == self.end {
            let n = loop {
                match self.stream.read(&mut self.buf) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    read => break read?,
                }
            };
            (self.start, self.end) = (0, n);
            self.detect_first = n > 0 && self.framing == Framing::Auto;
        }
        Ok(&self.buf[self.start..self.end])
    }

    /// Whether the peer of a course-protocol port sent DNS over TCP instead
    /// (by its [`first_bytes`](Self::first_bytes), see
    /// [`looks_like_dns_over_tcp`]); if so, logs as `server` where DNS is
    /// served ([`sent_dns`]), and the connection is to be closed.
    ///
    /// # Errors
    /// The stream's read errors.
    pub fn sent_dns_instead(&mut self, server: &str, dns_port: Option<u16>) -> io::Result<bool> {
        if !looks_like_dns_over_tcp(self.first_bytes()?) {
            return Ok(false);
        }
        let peer = self.stream.peer_addr().ok();
        crate::log::warn(format_args!("{server}: {}", sent_dns(peer, dns_port)));
        Ok(true)
    }

    /// Whether the last message returned ended at end of stream without its
    /// newline, in line framing: a last query sent without one, or a line
    /// cut short when the connection's reading was shut down.
    pub fn last_was_cut(&self) -> bool {
        self.cut
    }

    /// The stream being read.
    pub fn get_ref(&self) -> &TcpStream {
        &self.stream
    }

    /// The connection's framing: `Auto` until the first message was read.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Whether a whole message is already buffered, so that
    /// [`next_frame`](Self::next_frame) will not block: a server flushes its
    /// buffered replies when this turns false.
    pub fn has_buffered_message(&self) -> bool {
        let pending = &self.buf[self.start..self.end];
        !pending.is_empty() && (self.framing == Framing::Bare || pending.contains(&b'\n'))
    }

    /// The next message, or `None` at end of stream. A final message without
    /// line ending is returned before `None`.
    ///
    /// # Errors
    /// The stream's read errors (a read timeout shows as `WouldBlock` or `TimedOut`).
    pub fn next_frame(&mut self) -> io::Result<Option<Frame>> {
        if std::mem::take(&mut self.detect_first) {
            self.detect_framing()?;
        }
        let mut message = Accumulator::new(self.limit);
        loop {
            let limit = match self.boundary {
                Some(boundary) if boundary > self.start => boundary,
                _ => {
                    self.boundary = None;
                    self.end
                }
            };
            let pending = &self.buf[self.start..limit];
            if let Some(pos) = pending.iter().position(|&b| b == b'\n') {
                message.push(&pending[..pos]);
                self.start += pos + 1;
                return Ok(Some(message.finish()));
            }
            if self.framing == Framing::Bare && !pending.is_empty() {
                message.push(pending);
                self.start = limit;
                return Ok(Some(message.finish()));
            }
            message.push(pending);
            self.start = 0;
            self.end = 0;
            let n = self.stream.read(&mut self.buf)?;
            if n == 0 {
                let last = message.finish_at_eof();
                self.cut = last.is_some() && self.framing != Framing::Bare;
                return Ok(last);
            }
            self.end = n;
            if self.framing == Framing::Auto {
                self.detect_framing()?;
            }
        }
    }

    /// Decides Line or Bare from the buffered start of the first message.
    ///
    /// A first read that ends without a newline is followed by one more read
    /// of at most [`AUTO_DETECT_GRACE`]: nothing (a bare peer waiting for its
    /// reply) means Bare; bytes with a newline finish a line that arrived in
    /// pieces, so Line; bytes without one are a second bare message, kept
    /// apart from the first (a bare peer's read boundary is its message
    /// boundary, so two queries are never merged into one).
    fn detect_framing(&mut self) -> io::Result<()> {
        if self.buf[..self.end].contains(&b'\n') || self.end == self.buf.len() {
            self.framing = Framing::Line;
            return Ok(());
        }
        let previous_timeout = self.stream.read_timeout()?;
        let deadline = Instant::now() + AUTO_DETECT_GRACE;
        let framing = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break Framing::Bare;
            }
            self.stream.set_read_timeout(Some(left))?;
            let first_end = self.end;
            match self.stream.read(&mut self.buf[first_end..]) {
                Ok(0) => break Framing::Line,
                Ok(n) => {
                    self.end += n;
                    if self.buf[first_end..self.end].contains(&b'\n') {
                        break Framing::Line;
                    }
                    self.boundary = Some(first_end);
                    break Framing::Bare;
                }
                Err(e) if is_timeout(&e) => break Framing::Bare,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
        self.stream.set_read_timeout(previous_timeout)?;
        self.framing = framing;
        Ok(())
    }
}

/// Whether `start`, the first bytes a peer sent to a course-protocol port,
/// is a DNS-over-TCP message instead: a two-byte length whose first byte
/// no text line begins with (a control character, as the high byte of
/// any length under 8 KiB is) and that holds at least a header and a
/// question, then, when the header has arrived, a query (QR clear) with at
/// most one question; before it has, no newline (a line's end).
///
/// ```
/// use dnslb::framing::looks_like_dns_over_tcp as dns;
/// // `dig +tcp example.com`: length 40, ID 0x1234, RD, one question.
/// assert!(dns(b"\x00\x28\x12\x34\x01\x20\x00\x01\x00\x00\x00\x00\x00\x01\x07example"));
/// assert!(dns(b"\x00\x28"));
/// assert!(!dns(b"amazon.org\n"));
/// assert!(!dns(b"\n"));
/// assert!(!dns(b"\x1b[A\n"));
/// // A response (QR set), and a length too short for a question.
/// assert!(!dns(b"\x00\x28\x12\x34\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00"));
/// assert!(!dns(b"\x00\x0c\x12\x34\x01\x20\x00\x00\x00\x00\x00\x00\x00\x00"));
/// ```
pub fn looks_like_dns_over_tcp(start: &[u8]) -> bool {
    /// A header (12 bytes) and the shortest question (the root, type, class).
    const SHORTEST_QUERY: u16 = 12 + 5;
    let [high, low, message @ ..] = start else {
        return false;
    };
    if *high >= 0x20 || high.is_ascii_whitespace() {
        return false;
    }
    if u16::from_be_bytes([*high, *low]) < SHORTEST_QUERY {
        return false;
    }
    match message {
        [_, _, flags, _, qd_high, qd_low, ..] if message.len() >= 12 => {
            flags & 0x80 == 0 && u16::from_be_bytes([*qd_high, *qd_low]) <= 1
        }
        partial => !partial.contains(&b'\n'),
    }
}

/// What a server logs when `peer` sent DNS to its course port: where DNS
/// is served (`dns_port`), or how to serve it.
///
/// ```
/// let peer = "127.0.0.1:5555".parse().ok();
/// assert_eq!(
///     dnslb::framing::sent_dns(peer, Some(5353)),
///     "127.0.0.1:5555 sent DNS to the course port; DNS is served on --dns-port 5353"
/// );
/// assert_eq!(
///     dnslb::framing::sent_dns(peer, None),
///     "127.0.0.1:5555 sent DNS to the course port; run with --dns-port to serve DNS"
/// );
/// ```
pub fn sent_dns(peer: Option<SocketAddr>, dns_port: Option<u16>) -> String {
    let peer = peer.map_or_else(|| "a client".to_string(), |peer| peer.to_string());
    match dns_port {
        Some(port) => {
            format!("{peer} sent DNS to the course port; DNS is served on --dns-port {port}")
        }
        None => format!("{peer} sent DNS to the course port; run with --dns-port to serve DNS"),
    }
}

/// Whether `e` is what a read returns when its timeout expires.
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Collects one message's bytes, forgetting them once they pass the limit.
struct Accumulator {
    bytes: Vec<u8>,
    limit: usize,
    too_long: bool,
}

impl Accumulator {
    fn new(limit: usize) -> Accumulator {
        Accumulator {
            bytes: Vec::new(),
            limit,
            too_long: false,
        }
    }

    fn push(&mut self, chunk: &[u8]) {
        if self.too_long {
            return;
        }
        if self.bytes.len() + chunk.len() > self.limit + 1 {
            // One byte of slack lets a `\r` before the `\n` fit.
            self.too_long = true;
            self.bytes = Vec::new();
        } else {
            self.bytes.extend_from_slice(chunk);
        }
    }

    fn finish(mut self) -> Frame {
        if self.bytes.last() == Some(&b'\r') {
            self.bytes.pop();
        }
        if self.too_long || self.bytes.len() > self.limit {
            Frame::TooLong
        } else {
            Frame::Message(self.bytes)
        }
    }

    fn finish_at_eof(self) -> Option<Frame> {
        if self.bytes.is_empty() && !self.too_long {
            None
        } else {
            Some(self.finish())
        }
    }
}

/// Writes one message in `framing` with a single write: `message` followed by
/// `\n`, or bare for [`Framing::Bare`].
///
/// # Errors
/// The writer's errors.
pub fn write_message(w: &mut impl Write, message: &[u8], framing: Framing) -> io::Result<()> {
    if framing == Framing::Bare {
        w.write_all(message)
    } else {
        let mut line = Vec::with_capacity(message.len() + 1);
        line.extend_from_slice(message);
        line.push(b'\n');
        w.write_all(&line)
    }
}

/// Reads one DNS-over-TCP message: a two-byte big-endian length, then that
/// many bytes (RFC 1035 §4.2.2, RFC 7766 §8), however the reads split them.
/// `None` at a clean end of stream before a message. At most 65535 bytes
/// are held.
///
/// ```
/// use dnslb::framing::read_length_prefixed;
/// let mut stream: &[u8] = b"\x00\x03abc\x00\x00";
/// assert_eq!(read_length_prefixed(&mut stream).unwrap().unwrap(), b"abc");
/// assert_eq!(read_length_prefixed(&mut stream).unwrap().unwrap(), b"");
/// assert_eq!(read_length_prefixed(&mut stream).unwrap(), None);
/// assert!(read_length_prefixed(&mut &b"\x00\x05ab"[..]).is_err());
/// ```
///
/// # Errors
/// The reader's errors; `UnexpectedEof` when the stream ends inside a message.
pub fn read_length_prefixed(reader: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut prefix = [0u8; 2];
    let mut got = 0;
    while got < prefix.len() {
        match reader.read(&mut prefix[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let mut message = vec![0; usize::from(u16::from_be_bytes(prefix))];
    reader.read_exact(&mut message)?;
    Ok(Some(message))
}

/// How long a DNS-over-TCP peer may take over one message, from its first
/// byte to its last (NSD and BIND allow a few seconds): a peer that
/// trickles a message holds its connection no longer than this.
pub const DNS_MESSAGE_BOUND: Duration = Duration::from_secs(5);

/// What [`read_length_prefixed_timed`] read.
#[derive(Debug, PartialEq, Eq)]
pub enum Timed {
    /// A whole message.
    Message(Vec<u8>),
    /// The peer closed between messages.
    End,
    /// The peer sent nothing for the idle timeout.
    Idle,
    /// The peer began a message and did not finish it within the bound.
    Slow,
}

/// Reads one DNS-over-TCP message as [`read_length_prefixed`] does, with
/// time bounds: its first byte may take `idle` to come (`None`: waits as
/// long as it takes), and the whole message, length prefix included, must
/// have arrived `bound` after its first byte. The stream's read timeout is
/// set for each read; a message already buffered costs no system call.
///
/// # Errors
/// The stream's errors; `UnexpectedEof` when it ends inside a message.
pub fn read_length_prefixed_timed(
    reader: &mut io::BufReader<TcpStream>,
    idle: Option<Duration>,
    bound: Duration,
) -> io::Result<Timed> {
    if reader.buffer().is_empty() {
        reader.get_ref().set_read_timeout(idle)?;
        loop {
            match io::BufRead::fill_buf(reader) {
                Ok([]) => return Ok(Timed::End),
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => return Ok(Timed::Idle),
                Err(e) => return Err(e),
            }
        }
    }
    let mut timed = ByDeadline {
        reader,
        deadline: Instant::now() + bound,
    };
    match read_length_prefixed(&mut timed) {
        Ok(Some(message)) => Ok(Timed::Message(message)),
        // Cannot happen: a byte is buffered.
        Ok(None) => Ok(Timed::End),
        Err(e) if is_timeout(&e) => Ok(Timed::Slow),
        Err(e) => Err(e),
    }
}

/// Reads from a buffered stream until a deadline: each read that must wait
/// on the socket waits at most until then.
struct ByDeadline<'a> {
    reader: &'a mut io::BufReader<TcpStream>,
    deadline: Instant,
}

impl Read for ByDeadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.reader.buffer().is_empty() {
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            self.reader.get_ref().set_read_timeout(Some(left))?;
        }
        self.reader.read(buf)
    }
}

/// Writes one DNS-over-TCP message with its two-byte length, in one write.
///
/// # Errors
/// The writer's errors; `InvalidInput` when `message` is longer than 65535 bytes.
pub fn write_length_prefixed(w: &mut impl Write, message: &[u8]) -> io::Result<()> {
    let len = u16::try_from(message.len()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "a {}-byte message does not fit a length prefix",
                message.len()
            ),
        )
    })?;
    let mut framed = Vec::with_capacity(message.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(message);
    w.write_all(&framed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A connected pair: (writer end, reader over the other end).
    fn pair(framing: Framing, limit: usize) -> (TcpStream, MessageReader) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let writer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (writer, MessageReader::new(server, framing, limit))
    }

    fn msg(s: &str) -> Option<Frame> {
        Some(Frame::Message(s.as_bytes().to_vec()))
    }

    #[test]
    fn lines_split_on_newline_and_crlf() {
        let (mut w, mut r) = pair(Framing::Line, 16);
        w.write_all(b"a.com\r\nb.com\nlast").unwrap();
        drop(w);
        assert_eq!(r.next_frame().unwrap(), msg("a.com"));
        assert_eq!(r.next_frame().unwrap(), msg("b.com"));
        assert_eq!(r.next_frame().unwrap(), msg("last"));
        assert_eq!(r.next_frame().unwrap(), None);
    }

    #[test]
    fn overlong_line_is_discarded_and_next_line_survives() {
        let (mut w, mut r) = pair(Framing::Line, 16);
        let writer = std::thread::spawn(move || {
            w.write_all(&vec![b'x'; 200_000]).unwrap();
            w.write_all(b"\nok.com\n").unwrap();
        });
        assert_eq!(r.next_frame().unwrap(), Some(Frame::TooLong));
        assert_eq!(r.next_frame().unwrap(), msg("ok.com"));
        writer.join().unwrap();
    }

    #[test]
    fn auto_detects_line_peer() {
        let (mut w, mut r) = pair(Framing::Auto, 64);
        w.write_all(b"a.com\n").unwrap();
        assert_eq!(r.next_frame().unwrap(), msg("a.com"));
        assert_eq!(r.framing(), Framing::Line);
    }

    #[test]
    fn auto_detects_bare_peer() {
        let (mut w, mut r) = pair(Framing::Auto, 64);
        w.write_all(b"a.com").unwrap();
        assert_eq!(r.next_frame().unwrap(), msg("a.com"));
        assert_eq!(r.framing(), Framing::Bare);
        w.write_all(b"b.com").unwrap();
        assert_eq!(r.next_frame().unwrap(), msg("b.com"));
    }

    #[test]
    fn bare_message_ends_at_read_boundary() {
        let (mut w, mut r) = pair(Framing::Bare, 64);
        w.write_all(b"a.com").unwrap();
        assert_eq!(r.next_frame().unwrap(), msg("a.com"));
        w.write_all(b"b.com\n").unwrap();
        assert_eq!(r.next_frame().unwrap(), msg("b.com"));
    }

    #[test]
    fn a_length_prefixed_message_must_come_whole_within_the_bound() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut w = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let mut r = io::BufReader::new(listener.accept().unwrap().0);
        let bound = Duration::from_millis(100);
        // Nothing sent: idle after the idle timeout.
        let idle = Some(Duration::from_millis(50));
        assert_eq!(
            read_length_prefixed_timed(&mut r, idle, bound).unwrap(),
            Timed::Idle
        );
        // Whole messages, pipelined.
        w.write_all(b"\x00\x02ab\x00\x01c").unwrap();
        let got = read_length_prefixed_timed(&mut r, idle, bound).unwrap();
        assert_eq!(got, Timed::Message(b"ab".to_vec()));
        let got = read_length_prefixed_timed(&mut r, idle, bound).unwrap();
        assert_eq!(got, Timed::Message(b"c".to_vec()));
        // Half a length prefix, then nothing: slow once the bound passes,
        // though the idle timeout is longer.
        w.write_all(b"\x00").unwrap();
        let started = Instant::now();
        let long_idle = Some(Duration::from_secs(10));
        assert_eq!(
            read_length_prefixed_timed(&mut r, long_idle, bound).unwrap(),
            Timed::Slow
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(w);
        drop(r);
    }

    #[test]
    fn write_message_adds_newline_unless_bare() {
        let mut out = Vec::new();
        write_message(&mut out, b"x", Framing::Line).unwrap();
        write_message(&mut out, b"y", Framing::Bare).unwrap();
        assert_eq!(out, b"x\ny");
    }
}
