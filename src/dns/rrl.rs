//! Response-rate limiting (RRL) for the DNS UDP front ends: a spoofed
//! query costs its sender a few bytes and the victim whose address it bears
//! an answer, so answers to any one network are limited to `rate` per
//! second. A source's network is its /24 (IPv4) or /56 (IPv6), as NSD and
//! BIND group them; each has a token bucket of `rate` tokens refilled at
//! `rate` per second, an answer taking one. An answer past the limit is
//! dropped, but every `slip`-th dropped one (NSD's and BIND's slip, 2 by
//! default; 0: never) is sent as an empty truncated answer ([`slip_response`])
//! instead, so that a real client behind the address asks again over TCP,
//! which spoofing cannot use.
//!
//! Unlike NSD and BIND, the limit is per network alone, not per network and
//! answer: a dnslb server serves few names.
//!
//! Memory is bounded whatever a flood of sources sends: at most
//! `max_networks` buckets are kept. When the table is full, buckets
//! untouched for a second (full again, so no different from a new one)
//! are swept, at most once a second so that a flood costs no scan per
//! answer; networks that still find no room share one overflow bucket.
//!
//! A plain data structure: the caller passes the clock, and holds it under
//! its own lock where threads share it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::Header;
use super::message::HEADER_LEN;
use super::name::Name;

/// Buckets kept at most by [`Limiter::new`]: about 40 bytes each.
pub const MAX_NETWORKS: usize = 65_536;

/// The slip when none is given (NSD's and BIND's default).
pub const DEFAULT_SLIP: u32 = 2;

/// How long a bucket takes to fill again from empty, and how often a full
/// table is swept.
const REFILL: Duration = Duration::from_secs(1);

/// A rate limit: `rate` answers per second per network, and the slip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Answers per second to one /24 or /56 (at least 1).
    pub rate: u32,
    /// Every `slip`-th answer dropped goes out truncated instead (0: none).
    pub slip: u32,
}

/// What to do with one answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send it.
    Send,
    /// Drop it.
    Drop,
    /// Send [`slip_response`] of it in its place.
    Slip,
}

/// The network an address is limited by: its /24, or its /56 (an
/// IPv4-mapped IPv6 address counts as the IPv4 address).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Network {
    V4([u8; 3]),
    V6([u8; 7]),
}

impl Network {
    /// The network of `addr`.
    ///
    /// ```
    /// use dnslb::dns::rrl::Network;
    /// let net = |a: &str| Network::of(a.parse().unwrap());
    /// assert_eq!(net("192.0.2.1"), net("192.0.2.254"));
    /// assert_ne!(net("192.0.2.1"), net("192.0.3.1"));
    /// assert_eq!(net("::ffff:192.0.2.7"), net("192.0.2.1"));
    /// assert_eq!(net("2001:db8:0:100::1"), net("2001:db8:0:1ff::2"));
    /// assert_ne!(net("2001:db8:0:100::1"), net("2001:db8:0:200::1"));
    /// ```
    pub fn of(addr: IpAddr) -> Network {
        match addr.to_canonical() {
            IpAddr::V4(v4) => {
                let [a, b, c, _] = v4.octets();
                Network::V4([a, b, c])
            }
            IpAddr::V6(v6) => {
                let mut prefix = [0; 7];
                prefix.copy_from_slice(&v6.octets()[..7]);
                Network::V6(prefix)
            }
        }
    }
}

/// One network's token bucket.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    /// When the tokens were last counted.
    at: Instant,
    /// Answers dropped so far, for the slip.
    dropped: u64,
}

impl Bucket {
    fn full(rate: u32, now: Instant) -> Bucket {
        Bucket {
            tokens: f64::from(rate),
            at: now,
            dropped: 0,
        }
    }

    fn take(&mut self, limit: RateLimit, now: Instant) -> Verdict {
        let rate = f64::from(limit.rate);
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(rate);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Verdict::Send;
        }
        self.dropped += 1;
        if limit.slip > 0 && self.dropped.is_multiple_of(u64::from(limit.slip)) {
            Verdict::Slip
        } else {
            Verdict::Drop
        }
    }
}

/// The start-up line's account of `limit`.
///
/// ```
/// use dnslb::dns::rrl::{describe, RateLimit};
/// assert_eq!(describe(RateLimit { rate: 20, slip: 2 }),
///     "at most 20 UDP answers per second per /24 (IPv4) or /56 (IPv6); \
///      every 2nd one past it sent truncated (--rrl, --rrl-slip)");
/// ```
pub fn describe(limit: RateLimit) -> String {
    let slip = match limit.slip {
        0 => "none past it sent truncated".to_string(),
        1 => "every one past it sent truncated".to_string(),
        2 => "every 2nd one past it sent truncated".to_string(),
        3 => "every 3rd one past it sent truncated".to_string(),
        n => format!("every {n}th one past it sent truncated"),
    };
    format!(
        "at most {} UDP answers per second per /24 (IPv4) or /56 (IPv6); {slip} (--rrl, --rrl-slip)",
        limit.rate
    )
}

/// The buckets of every network answered lately, and what was limited.
#[derive(Debug)]
pub struct Limiter {
    limit: RateLimit,
    max_networks: usize,
    buckets: HashMap<Network, Bucket>,
    /// Shared by the networks that found the table full.
    overflow: Bucket,
    last_sweep: Option<Instant>,
    dropped: u64,
    slipped: u64,
}

impl Limiter {
    /// A limiter for `limit`, keeping at most [`MAX_NETWORKS`] buckets.
    pub fn new(limit: RateLimit) -> Limiter {
        Limiter::with_capacity(limit, MAX_NETWORKS)
    }

    /// A limiter keeping at most `max_networks` buckets (at least one).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use dnslb::dns::rrl::{Limiter, RateLimit, Verdict};
    /// let mut rrl = Limiter::with_capacity(RateLimit { rate: 2, slip: 2 }, 10);
    /// let (peer, t) = ("192.0.2.1".parse().unwrap(), Instant::now());
    /// assert_eq!(rrl.check(peer, t), Verdict::Send);
    /// assert_eq!(rrl.check(peer, t), Verdict::Send);
    /// assert_eq!(rrl.check(peer, t), Verdict::Drop);
    /// assert_eq!(rrl.check(peer, t), Verdict::Slip);
    /// // Half a second later, one token is back.
    /// assert_eq!(rrl.check(peer, t + Duration::from_millis(500)), Verdict::Send);
    /// assert_eq!((rrl.dropped(), rrl.slipped()), (1, 1));
    /// ```
    pub fn with_capacity(limit: RateLimit, max_networks: usize) -> Limiter {
        let now = Instant::now();
        Limiter {
            limit,
            max_networks: max_networks.max(1),
            buckets: HashMap::new(),
            overflow: Bucket::full(limit.rate, now),
            last_sweep: None,
            dropped: 0,
            slipped: 0,
        }
    }

    /// The limit.
    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Whether an answer to `peer` at `now` goes out, and counts it.
    pub fn check(&mut self, peer: IpAddr, now: Instant) -> Verdict {
        let network = Network::of(peer);
        let limit = self.limit;
        if !self.buckets.contains_key(&network) && self.buckets.len() >= self.max_networks {
            self.sweep(now);
        }
        let verdict = if self.buckets.len() < self.max_networks {
            self.buckets
                .entry(network)
                .or_insert_with(|| Bucket::full(limit.rate, now))
                .take(limit, now)
        } else {
            match self.buckets.get_mut(&network) {
                Some(bucket) => bucket.take(limit, now),
                None => self.overflow.take(limit, now),
            }
        };
        match verdict {
            Verdict::Send => {}
            Verdict::Drop => self.dropped += 1,
            Verdict::Slip => self.slipped += 1,
        }
        verdict
    }

    /// Forgets the buckets that are full again, unless it did so less than
    /// a second ago.
    fn sweep(&mut self, now: Instant) {
        if self
            .last_sweep
            .is_some_and(|last| now.saturating_duration_since(last) < REFILL)
        {
            return;
        }
        self.last_sweep = Some(now);
        self.buckets
            .retain(|_, bucket| now.saturating_duration_since(bucket.at) < REFILL);
    }

    /// Networks with a bucket of their own.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether no network has a bucket.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// Answers dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Answers sent truncated in place of a dropped one so far.
    pub fn slipped(&self) -> u64 {
        self.slipped
    }
}

/// The slip's stand-in for `response`: its header and question, TC set,
/// no records (and no OPT), so that the client asks again over TCP.
///
/// ```
/// use dnslb::dns::rrl::slip_response;
/// use dnslb::dns::Message;
/// // A response for x. A with one answer record.
/// let response = b"\x00\x07\x85\x00\x00\x01\x00\x01\x00\x00\x00\x00\x01x\x00\x00\x01\x00\x01\
///                  \xc0\x0c\x00\x01\x00\x01\x00\x00\x01\x2c\x00\x04\x0a\x00\x00\x01";
/// let slip = slip_response(response);
/// assert_eq!(slip, b"\x00\x07\x87\x00\x00\x01\x00\x00\x00\x00\x00\x00\x01x\x00\x00\x01\x00\x01");
/// let m = Message::parse(&slip).unwrap();
/// assert!(m.header.tc && m.answers.is_empty());
/// ```
pub fn slip_response(response: &[u8]) -> Vec<u8> {
    let Some(header) = Header::parse(response) else {
        return Vec::new();
    };
    let question_end = (header.qdcount == 1)
        .then(|| Name::parse(response, HEADER_LEN).ok())
        .flatten()
        .map(|(_, end)| end + 4)
        .filter(|&end| end <= response.len());
    let mut slip = response[..question_end.unwrap_or(HEADER_LEN)].to_vec();
    slip[2] |= 0x02;
    let qdcount = u16::from(question_end.is_some());
    slip[4..6].copy_from_slice(&qdcount.to_be_bytes());
    slip[6..HEADER_LEN].fill(0);
    slip
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_network_gets_its_rate_per_second_and_no_more() {
        let mut rrl = Limiter::new(RateLimit { rate: 10, slip: 0 });
        let t = Instant::now();
        // A burst of one second's worth, from anywhere in the /24.
        for i in 0..10 {
            assert_eq!(rrl.check(ip(&format!("198.51.100.{i}")), t), Verdict::Send);
        }
        assert_eq!(rrl.check(ip("198.51.100.77"), t), Verdict::Drop);
        // Another /24 has its own bucket.
        assert_eq!(rrl.check(ip("198.51.101.1"), t), Verdict::Send);
        // Then 10 per second: one every 100 ms.
        let sent = (1..=20)
            .filter(|i| rrl.check(ip("198.51.100.1"), t + ms(50 * i)) == Verdict::Send)
            .count();
        assert_eq!(sent, 10);
        assert_eq!(rrl.dropped(), 11);
        // A bucket never holds more than a second's worth.
        let later = t + Duration::from_secs(60);
        let burst = (0..20)
            .filter(|_| rrl.check(ip("198.51.100.1"), later) == Verdict::Send)
            .count();
        assert_eq!(burst, 10);
    }

    #[test]
    fn every_slip_th_dropped_answer_slips() {
        for slip in [1, 2, 3] {
            let mut rrl = Limiter::new(RateLimit { rate: 1, slip });
            let t = Instant::now();
            assert_eq!(rrl.check(ip("192.0.2.1"), t), Verdict::Send);
            let verdicts: Vec<Verdict> = (0..6).map(|_| rrl.check(ip("192.0.2.1"), t)).collect();
            let slips = verdicts.iter().filter(|v| **v == Verdict::Slip).count();
            assert_eq!(slips, 6 / slip as usize, "slip {slip}: {verdicts:?}");
            assert_eq!(verdicts[slip as usize - 1], Verdict::Slip, "slip {slip}");
            assert_eq!((rrl.dropped() + rrl.slipped()) as usize, 6);
        }
        let mut never = Limiter::new(RateLimit { rate: 1, slip: 0 });
        let t = Instant::now();
        never.check(ip("192.0.2.1"), t);
        assert!((0..10).all(|_| never.check(ip("192.0.2.1"), t) == Verdict::Drop));
    }

    #[test]
    fn ipv6_sources_are_grouped_by_56() {
        let mut rrl = Limiter::new(RateLimit { rate: 1, slip: 0 });
        let t = Instant::now();
        assert_eq!(rrl.check(ip("2001:db8:1:ab00::1"), t), Verdict::Send);
        assert_eq!(rrl.check(ip("2001:db8:1:abff::9"), t), Verdict::Drop);
        assert_eq!(rrl.check(ip("2001:db8:1:ac00::1"), t), Verdict::Send);
    }

    #[test]
    fn a_flood_of_sources_keeps_the_table_bounded() {
        let mut rrl = Limiter::with_capacity(RateLimit { rate: 5, slip: 0 }, 100);
        let t = Instant::now();
        // 100,000 networks in one instant: 100 get buckets, the rest share one.
        let network = |n: u32| {
            let [_, a, b, c] = n.to_be_bytes();
            IpAddr::from([a + 1, b, c, 1])
        };
        let sent = (0..100_000)
            .filter(|&n| rrl.check(network(n), t) == Verdict::Send)
            .count();
        assert!(rrl.len() <= 100, "{}", rrl.len());
        assert_eq!(sent, 100 + 5);
        // A network with a bucket keeps it meanwhile: 200 ms refill one token.
        assert_eq!(rrl.check(network(0), t + ms(200)), Verdict::Send);
        // Two seconds on, idle buckets are swept and new networks get room.
        let later = t + Duration::from_secs(2);
        assert_eq!(rrl.check(ip("203.0.113.1"), later), Verdict::Send);
        assert!(rrl.len() <= 2, "{}", rrl.len());
    }

    #[test]
    fn a_full_table_is_swept_at_most_once_a_second() {
        let mut rrl = Limiter::with_capacity(RateLimit { rate: 1, slip: 0 }, 1);
        let t = Instant::now();
        assert_eq!(rrl.check(ip("192.0.2.1"), t), Verdict::Send);
        // The table is full; the one bucket is not yet a second old.
        assert_eq!(rrl.check(ip("192.0.3.1"), t + ms(10)), Verdict::Send);
        assert_eq!(rrl.check(ip("192.0.4.1"), t + ms(20)), Verdict::Drop);
        // Past a second since the sweep and the bucket's use: swept.
        assert_eq!(rrl.check(ip("192.0.5.1"), t + ms(1500)), Verdict::Send);
        assert_eq!(rrl.check(ip("192.0.5.1"), t + ms(1500)), Verdict::Drop);
        assert_eq!(rrl.len(), 1);
    }

    #[test]
    fn a_slip_of_a_message_without_a_question_is_its_header() {
        let formerr = b"\x12\x34\x81\x01\x00\x00\x00\x00\x00\x00\x00\x00";
        assert_eq!(
            slip_response(formerr),
            b"\x12\x34\x83\x01\x00\x00\x00\x00\x00\x00\x00\x00"
        );
        // A question that does not parse: the header alone.
        let broken = b"\x12\x34\x81\x01\x00\x01\x00\x00\x00\x00\x00\x00\x05ab";
        assert_eq!(slip_response(broken).len(), HEADER_LEN);
        assert!(slip_response(&broken[..5]).is_empty());
    }
}
