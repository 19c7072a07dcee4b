//! Throughput measurement (`dnslb ping --flood`): keeps a window of pings in
//! flight and counts the echoes, to give datagrams per second through an
//! echo server or a load balancer.
//!
//! One thread, one connected socket: it sends until `window` pings are
//! outstanding, then each echo lets one more go. When no echo comes for the
//! timeout, the outstanding pings are taken as lost and the window refills,
//! so loss slows the run down but cannot stall it. The time spent waiting
//! out those timeouts is measured apart: the rate is echoes received divided
//! by the time from the first send to the end less that wait, the
//! rate at which the server answers what it answers. A report of the run so
//! far is handed to a callback every `progress_every`, so a long run against
//! a lossy server shows it is alive.

use std::fmt;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime};

use crate::framing::is_timeout;
use crate::net::datagram::{RECV_BUFFER, is_unreachable, unspecified};
use crate::udp::ping::ping_message;

/// How a flood runs.
#[derive(Clone, Copy, Debug)]
pub struct FloodOptions {
    /// How many datagrams to send.
    pub count: u64,
    /// The most datagrams in flight at once.
    pub window: usize,
    /// How long without an echo before the ones in flight count as lost.
    pub timeout: Duration,
    /// How often the progress callback of [`run_with_progress`] is called.
    pub progress_every: Duration,
}

impl Default for FloodOptions {
    /// 100 000 datagrams, 64 in flight, 1 s timeout, progress every second.
    fn default() -> Self {
        FloodOptions {
            count: 100_000,
            window: 64,
            timeout: Duration::from_secs(1),
            progress_every: Duration::from_secs(1),
        }
    }
}

/// What a flood measured.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FloodReport {
    /// Datagrams sent.
    pub sent: u64,
    /// Echoes received.
    pub received: u64,
    /// Datagrams given up: no echo within the timeout, or refused (ICMP).
    pub lost: u64,
    /// From the first send to the end of the run.
    pub elapsed: Duration,
    /// The part of `elapsed` spent waiting out timeouts for lost datagrams.
    pub waiting: Duration,
}

impl FloodReport {
    /// Echoes per second of the time not spent waiting out losses.
    pub fn rate(&self) -> f64 {
        let secs = self.elapsed.saturating_sub(self.waiting).as_secs_f64();
        if secs > 0.0 {
            self.received as f64 / secs
        } else {
            0.0
        }
    }

    /// The percentage of datagrams without an echo.
    pub fn loss_percent(&self) -> f64 {
        if self.sent == 0 {
            return 0.0;
        }
        self.sent.saturating_sub(self.received) as f64 * 100.0 / self.sent as f64
    }
}

impl fmt::Display for FloodReport {
    /// `flood: <sent> sent, <received> received, <lost> lost (<p>%), <secs> s
    /// (<w> s waiting out losses), <rate> echoes/s`
    ///
    /// ```
    /// use std::time::Duration;
    /// use dnslb::udp::flood::FloodReport;
    /// let r = FloodReport { sent: 110, received: 70, lost: 40, elapsed: Duration::from_millis(2100),
    ///     waiting: Duration::from_secs(2) };
    /// assert_eq!(r.to_string(), "flood: 110 sent, 70 received, 40 lost (36.36%), 2.100 s \
    ///     (2.000 s waiting out losses), 700 echoes/s");
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "flood: {} sent, {} received, {} lost ({:.2}%), {:.3} s ({:.3} s waiting out losses), {:.0} echoes/s",
            self.sent,
            self.received,
            self.lost,
            self.loss_percent(),
            self.elapsed.as_secs_f64(),
            self.waiting.as_secs_f64(),
            self.rate()
        )
    }
}

/// Floods `target` with pings and counts the echoes.
///
/// # Errors
/// As [`run_with_progress`].
pub fn run(target: SocketAddr, options: FloodOptions) -> io::Result<FloodReport> {
    run_with_progress(target, options, |_| {})
}

/// Floods `target` with pings and counts the echoes; `progress` gets the
/// report of the run so far every `options.progress_every` (checked after
/// each echo or timeout).
///
/// # Errors
/// When no socket can be opened towards `target`, or sending or receiving
/// fails other than by a timeout or an ICMP error.
pub fn run_with_progress(
    target: SocketAddr,
    options: FloodOptions,
    mut progress: impl FnMut(&FloodReport),
) -> io::Result<FloodReport> {
    let socket = UdpSocket::bind(unspecified(target))?;
    socket.connect(target)?;
    socket.set_read_timeout(Some(options.timeout))?;
    let window = options.window.max(1) as u64;
    let mut buf = vec![0; RECV_BUFFER];
    let mut report = FloodReport::default();
    let mut in_flight: u64 = 0;
    let started = Instant::now();
    let mut last_progress = started;
    // The time of day in the message changes once a second: format it once per second.
    let mut clock = (Instant::now(), SystemTime::now());
    loop {
        while report.sent < options.count && in_flight < window {
            if clock.0.elapsed() >= Duration::from_secs(1) {
                clock = (Instant::now(), SystemTime::now());
            }
            report.sent += 1;
            match socket.send(ping_message(report.sent, clock.1).as_bytes()) {
                Ok(_) => in_flight += 1,
                // The target refused an earlier datagram; this one is lost.
                Err(e) if is_unreachable(&e) => report.lost += 1,
                Err(e) => return Err(e),
            }
        }
        if in_flight == 0 {
            break;
        }
        let waited_from = Instant::now();
        match socket.recv(&mut buf) {
            Ok(_) => {
                report.received += 1;
                in_flight = in_flight.saturating_sub(1);
            }
            Err(e) if is_timeout(&e) => {
                report.lost += in_flight;
                in_flight = 0;
                report.waiting += waited_from.elapsed();
            }
            Err(e) if is_unreachable(&e) => {
                report.lost += 1;
                in_flight = in_flight.saturating_sub(1);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        if last_progress.elapsed() >= options.progress_every {
            last_progress = Instant::now();
            report.elapsed = started.elapsed();
            progress(&report);
        }
    }
    report.elapsed = started.elapsed();
    Ok(report)
}
