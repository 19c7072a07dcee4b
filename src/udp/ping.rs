//! The ping client: sends numbered pings one at a time, like the course's
//! `UDPPingerClient`, and reports them like ping(8).
//!
//! Each ping is `PING <seq> <HH:MM:SS>` (seq from 1, time of day in UTC).
//! The client waits for the reply to *that* ping until its timeout; replies
//! are matched by the sequence number they echo. A reply that comes after its
//! ping timed out is reported as late and counted apart; it is never taken
//! as the reply to the ping being waited for, which is the bug of clients
//! that take whatever datagram arrives next.
//!
//! Output, one line per event, as ping(8) prints them (docs/UDP.md lists
//! them); a ping that times out prints nothing unless `report_lost` is set:
//! ```text
//! PING <name> (<addr>): <count> pings, timeout <secs> s
//! <bytes> bytes from <addr>: seq=<n> time=<ms> ms
//! no answer yet for seq=<n>
//! <bytes> bytes from <addr>: seq=<n> time=<ms> ms (late)
//! From <addr>: Destination port unreachable
//! Unexpected reply from <addr>: <data>
//!
//! --- <name> ping statistics ---
//! <n> packets transmitted, <n> received[, +<n> late][, +<n> errors], <p>% packet loss, time <ms>ms
//! rtt min/avg/max/mdev = <ms>/<ms>/<ms>/<ms> ms
//! ```

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::framing::is_timeout;
use crate::net::datagram::{RECV_BUFFER, is_unreachable, unspecified};
use crate::udp::text;

/// Timed-out pings remembered for matching late replies; older ones are
/// forgotten, so memory stays bounded however many pings are sent.
const LATE_WINDOW: usize = 4096;

/// How the client pings.
#[derive(Clone, Copy, Debug)]
pub struct PingOptions {
    /// How many pings to send.
    pub count: u64,
    /// How long each ping waits for its reply.
    pub timeout: Duration,
    /// The least time from one ping to the next; `None` sends the next ping
    /// as soon as the previous one is answered or timed out.
    pub interval: Option<Duration>,
    /// Print `no answer yet for seq=<n>` for each ping that times out, as
    /// ping(8) does with `-O`.
    pub report_lost: bool,
}

impl Default for PingOptions {
    /// The course client: 10 pings, 1 s timeout, no pause; lost pings
    /// show only in the summary.
    fn default() -> Self {
        PingOptions {
            count: 10,
            timeout: Duration::from_secs(1),
            interval: None,
            report_lost: false,
        }
    }
}

/// The ping message for `seq` sent at `now`.
///
/// ```
/// use dnslb::udp::ping::ping_message;
/// use std::time::{Duration, UNIX_EPOCH};
/// let at = UNIX_EPOCH + Duration::from_secs(86_400 * 365 + 3_723);
/// assert_eq!(ping_message(7, at), "PING 7 01:02:03");
/// ```
pub fn ping_message(seq: u64, now: SystemTime) -> String {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) % 86_400;
    format!(
        "PING {seq} {:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// The sequence number a reply echoes, if it is a ping (in any case).
///
/// ```
/// use dnslb::udp::ping::reply_seq;
/// assert_eq!(reply_seq(b"PING 12 10:00:00"), Some(12));
/// assert_eq!(reply_seq(b"ping 3 10:00:00"), Some(3));
/// assert_eq!(reply_seq(b"PONG 3"), None);
/// assert_eq!(reply_seq(b"PING x"), None);
/// ```
pub fn reply_seq(data: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(data).ok()?;
    let mut words = text.split_ascii_whitespace();
    if !words.next()?.eq_ignore_ascii_case("PING") {
        return None;
    }
    words.next()?.parse().ok()
}

/// Round-trip times seen so far.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RttStats {
    count: u64,
    min_ms: f64,
    max_ms: f64,
    sum_ms: f64,
    sum_sq_ms: f64,
}

impl RttStats {
    /// Adds one round trip.
    pub fn add(&mut self, rtt: Duration) {
        let ms = rtt.as_secs_f64() * 1000.0;
        if self.count == 0 || ms < self.min_ms {
            self.min_ms = ms;
        }
        if ms > self.max_ms {
            self.max_ms = ms;
        }
        self.count += 1;
        self.sum_ms += ms;
        self.sum_sq_ms += ms * ms;
    }

    /// `min/avg/max/mdev` in milliseconds, as ping(8) computes them
    /// (mdev is the standard deviation), or `None` before any round trip.
    ///
    /// ```
    /// use dnslb::udp::ping::RttStats;
    /// use std::time::Duration;
    /// let mut rtt = RttStats::default();
    /// rtt.add(Duration::from_millis(1));
    /// rtt.add(Duration::from_millis(3));
    /// assert_eq!(rtt.summary(), Some([1.0, 2.0, 3.0, 1.0]));
    /// ```
    pub fn summary(&self) -> Option<[f64; 4]> {
        if self.count == 0 {
            return None;
        }
        let n = self.count as f64;
        let avg = self.sum_ms / n;
        let mdev = (self.sum_sq_ms / n - avg * avg).max(0.0).sqrt();
        Some([self.min_ms, avg, self.max_ms, mdev])
    }
}

/// What a ping run saw.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PingSummary {
    /// Pings sent (including any the socket refused to send).
    pub transmitted: u64,
    /// Pings answered before their timeout.
    pub received: u64,
    /// Replies that came after their ping timed out.
    pub late: u64,
    /// ICMP errors (destination port unreachable).
    pub errors: u64,
    /// Round trips of the pings answered in time.
    pub rtt: RttStats,
    /// From the first ping to the end.
    pub elapsed: Duration,
}

impl PingSummary {
    /// The percentage of pings not answered in time.
    pub fn loss_percent(&self) -> f64 {
        if self.transmitted == 0 {
            return 0.0;
        }
        (self.transmitted - self.received) as f64 * 100.0 / self.transmitted as f64
    }

    /// Whether the target answered at all (in time or late): the exit status.
    pub fn any_reply(&self) -> bool {
        self.received + self.late > 0
    }

    /// Writes the ping(8)-like summary for target `name`.
    ///
    /// ```
    /// use dnslb::udp::ping::PingSummary;
    /// use std::time::Duration;
    /// let summary = PingSummary {
    ///     transmitted: 11,
    ///     received: 7,
    ///     late: 1,
    ///     elapsed: Duration::from_millis(4012),
    ///     ..PingSummary::default()
    /// };
    /// let mut out = Vec::new();
    /// summary.write(&mut out, "lb:2525").unwrap();
    /// assert_eq!(
    ///     String::from_utf8(out).unwrap(),
    ///     "\n--- lb:2525 ping statistics ---\n\
    ///      11 packets transmitted, 7 received, +1 late, 36.3636% packet loss, time 4012ms\n"
    /// );
    /// ```
    ///
    /// # Errors
    /// When `out` cannot be written.
    pub fn write(&self, out: &mut dyn Write, name: &str) -> io::Result<()> {
        writeln!(out, "\n--- {name} ping statistics ---")?;
        write!(
            out,
            "{} packets transmitted, {} received",
            self.transmitted, self.received
        )?;
        if self.late > 0 {
            write!(out, ", +{} late", self.late)?;
        }
        if self.errors > 0 {
            write!(out, ", +{} errors", self.errors)?;
        }
        writeln!(
            out,
            ", {}% packet loss, time {}ms",
            percent(self.loss_percent()),
            self.elapsed.as_millis()
        )?;
        if let Some([min, avg, max, mdev]) = self.rtt.summary() {
            writeln!(
                out,
                "rtt min/avg/max/mdev = {min:.3}/{avg:.3}/{max:.3}/{mdev:.3} ms"
            )?;
        }
        Ok(())
    }
}

/// A percentage as ping(8) prints it (`%g`): `40`, `36.3636`.
fn percent(value: f64) -> String {
    let text = format!("{value:.4}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Pings `target` (reported as `name`), writing one line per event and the
/// summary to `out`.
///
/// # Errors
/// When no socket can be opened towards `target`, sending fails other than
/// by an ICMP error, or `out` cannot be written.
pub fn run(
    target: SocketAddr,
    name: &str,
    options: PingOptions,
    out: &mut dyn Write,
) -> io::Result<PingSummary> {
    let socket = UdpSocket::bind(unspecified(target))?;
    // Connected: only the target's datagrams are received, and an ICMP port
    // unreachable is reported instead of passing for a timeout.
    socket.connect(target)?;
    writeln!(
        out,
        "PING {name} ({target}): {} pings, timeout {} s",
        options.count,
        options.timeout.as_secs_f64()
    )?;
    let mut pinger = Pinger {
        socket,
        target,
        out,
        report_lost: options.report_lost,
        summary: PingSummary::default(),
        timed_out: BTreeMap::new(),
        buf: vec![0; RECV_BUFFER],
    };
    let started = Instant::now();
    for seq in 1..=options.count {
        let sent_at = Instant::now();
        pinger.ping(seq, sent_at, options.timeout)?;
        if let (Some(interval), true) = (options.interval, seq < options.count) {
            // Late replies are still reported during the pause.
            pinger.receive(None, sent_at + interval)?;
        }
        pinger.out.flush()?;
    }
    pinger.summary.elapsed = started.elapsed();
    let summary = pinger.summary;
    summary.write(pinger.out, name)?;
    Ok(summary)
}

/// The ping being waited for.
#[derive(Clone, Copy)]
struct Waiting {
    seq: u64,
    sent_at: Instant,
}

/// How waiting for a ping's reply ended.
enum Outcome {
    Replied,
    Unreachable,
    TimedOut,
}

struct Pinger<'a> {
    socket: UdpSocket,
    target: SocketAddr,
    out: &'a mut dyn Write,
    report_lost: bool,
    summary: PingSummary,
    /// Pings that timed out, by seq, with when they were sent.
    timed_out: BTreeMap<u64, Instant>,
    buf: Vec<u8>,
}

impl Pinger<'_> {
    /// Sends ping `seq` and waits for its reply until the timeout.
    fn ping(&mut self, seq: u64, sent_at: Instant, timeout: Duration) -> io::Result<()> {
        self.summary.transmitted += 1;
        let message = ping_message(seq, SystemTime::now());
        match self.socket.send(message.as_bytes()) {
            Ok(_) => {}
            Err(e) if is_unreachable(&e) => {
                // An ICMP error for an earlier datagram; this one did not leave.
                return self.unreachable();
            }
            Err(e) => return Err(e),
        }
        let waiting = Waiting { seq, sent_at };
        match self.receive(Some(waiting), sent_at + timeout)? {
            Outcome::Replied | Outcome::Unreachable => {}
            Outcome::TimedOut => {
                if self.report_lost {
                    writeln!(self.out, "no answer yet for seq={seq}")?;
                }
                self.timed_out.insert(seq, sent_at);
                if self.timed_out.len() > LATE_WINDOW {
                    self.timed_out.pop_first();
                }
            }
        }
        Ok(())
    }

    /// Reports what arrives until `waiting` is answered or `deadline` passes.
    fn receive(&mut self, waiting: Option<Waiting>, deadline: Instant) -> io::Result<Outcome> {
        loop {
            let Some(left) = deadline
                .checked_duration_since(Instant::now())
                .filter(|left| !left.is_zero())
            else {
                return Ok(Outcome::TimedOut);
            };
            self.socket.set_read_timeout(Some(left))?;
            let len = match self.socket.recv(&mut self.buf) {
                Ok(len) => len,
                Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if is_unreachable(&e) => {
                    self.unreachable()?;
                    if waiting.is_some() {
                        return Ok(Outcome::Unreachable);
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            let arrived = Instant::now();
            let target = self.target;
            let seq = reply_seq(&self.buf[..len]);
            if let Some(w) = waiting.filter(|w| seq == Some(w.seq)) {
                let rtt = arrived - w.sent_at;
                self.summary.received += 1;
                self.summary.rtt.add(rtt);
                writeln!(
                    self.out,
                    "{len} bytes from {target}: seq={} time={} ms",
                    w.seq,
                    ms(rtt)
                )?;
                return Ok(Outcome::Replied);
            }
            match seq.and_then(|seq| Some((seq, self.timed_out.remove(&seq)?))) {
                Some((seq, sent_at)) => {
                    self.summary.late += 1;
                    writeln!(
                        self.out,
                        "{len} bytes from {target}: seq={seq} time={} ms (late)",
                        ms(arrived - sent_at)
                    )?;
                }
                None => writeln!(
                    self.out,
                    "Unexpected reply from {target}: {}",
                    text(&self.buf[..len])
                )?,
            }
        }
    }

    fn unreachable(&mut self) -> io::Result<()> {
        self.summary.errors += 1;
        writeln!(
            self.out,
            "From {}: Destination port unreachable",
            self.target
        )
    }
}

/// Milliseconds with three decimals, as ping(8) prints them.
fn ms(duration: Duration) -> String {
    format!("{:.3}", duration.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_print_like_ping() {
        assert_eq!(percent(40.0), "40");
        assert_eq!(percent(0.0), "0");
        assert_eq!(percent(100.0), "100");
        assert_eq!(percent(400.0 / 11.0), "36.3636");
        assert_eq!(percent(12.5), "12.5");
    }

    #[test]
    fn summary_includes_rtt_only_when_something_came_back() {
        let mut summary = PingSummary {
            transmitted: 2,
            received: 1,
            errors: 1,
            ..PingSummary::default()
        };
        summary.rtt.add(Duration::from_micros(1500));
        let mut out = Vec::new();
        summary.write(&mut out, "h:1").unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains("2 packets transmitted, 1 received, +1 errors, 50% packet loss"));
        assert!(out.ends_with("rtt min/avg/max/mdev = 1.500/1.500/1.500/0.000 ms\n"));
    }

    #[test]
    fn seq_is_matched_whatever_the_case_and_spacing() {
        assert_eq!(reply_seq(b"  Ping   42  x\n"), Some(42));
        assert_eq!(reply_seq(b""), None);
        assert_eq!(reply_seq(&[0xff, 0xfe]), None);
    }
}
