//! What an iterative resolver has learnt: RRsets and negative answers
//! with the time they expire, and each server's measured latency and
//! backoff. The clock is passed in, so the cache is tested without waiting.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::dns::{Name, Record, RecordType};

/// Most RRsets and negative entries kept; past it, expired entries are
/// dropped, and if none had expired everything is (bounded memory).
pub const MAX_ENTRIES: usize = 20_000;

/// The longest a record is kept, whatever TTL it came with (one day).
pub const MAX_TTL: u32 = 86_400;

/// The shortest backoff after a timeout, doubled on each further one.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// The longest backoff.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

type Key = (Vec<u8>, RecordType);

fn key(name: &Name, rtype: RecordType) -> Key {
    (name.wire().to_ascii_lowercase(), rtype)
}

/// A negative answer: the name does not exist (`nx`), or has no records
/// of the type, with the SOA that said so.
#[derive(Clone, Debug)]
pub struct Negative {
    /// NXDOMAIN rather than NODATA.
    pub nx: bool,
    /// The zone's SOA, its TTL counting down.
    pub soa: Option<Record>,
}

/// One server's measured latency and backoff.
#[derive(Clone, Copy, Debug)]
struct ServerStats {
    /// Smoothed round-trip time.
    srtt: Duration,
    /// The backoff the next timeout doubles.
    backoff: Duration,
    /// Not asked again before this, unless nothing else is left.
    until: Option<Instant>,
}

/// The resolver's cache, shared by every resolution (behind a mutex).
#[derive(Default)]
pub struct Cache {
    sets: HashMap<Key, (Vec<Record>, Instant)>,
    negative: HashMap<Key, (Negative, Instant)>,
    servers: HashMap<SocketAddr, ServerStats>,
}

fn expiry(now: Instant, ttl: u32) -> Instant {
    now + Duration::from_secs(u64::from(ttl.min(MAX_TTL)))
}

fn remaining(now: Instant, expires: Instant) -> u32 {
    expires.saturating_duration_since(now).as_secs() as u32
}

impl Cache {
    /// An empty cache.
    pub fn new() -> Cache {
        Cache::default()
    }

    fn make_room(&mut self, now: Instant) {
        if self.sets.len() + self.negative.len() < MAX_ENTRIES {
            return;
        }
        self.sets.retain(|_, (_, expires)| *expires > now);
        self.negative.retain(|_, (_, expires)| *expires > now);
        if self.sets.len() + self.negative.len() >= MAX_ENTRIES {
            self.sets.clear();
            self.negative.clear();
        }
    }

    /// Stores an RRset (records of one name and type), replacing what was
    /// known; the set expires with its smallest TTL.
    pub fn put(&mut self, now: Instant, records: Vec<Record>) {
        let Some(first) = records.first() else { return };
        // A TTL of 0 is kept for a second: long enough for the resolution
        // that learnt it to use it.
        let ttl = records.iter().map(|r| r.ttl).min().unwrap_or(0).max(1);
        let k = key(&first.name, first.rtype);
        self.make_room(now);
        self.negative.remove(&k);
        self.sets.insert(k, (records, expiry(now, ttl)));
    }

    /// The RRset of `name` and `rtype` still valid at `now`, TTLs counted down.
    pub fn get(&self, now: Instant, name: &Name, rtype: RecordType) -> Option<Vec<Record>> {
        let (records, expires) = self.sets.get(&key(name, rtype))?;
        let left = remaining(now, *expires);
        if left == 0 {
            return None;
        }
        Some(
            records
                .iter()
                .map(|r| Record {
                    ttl: left,
                    ..r.clone()
                })
                .collect(),
        )
    }

    /// Stores a negative answer for `name` (for every type when `nx`), for
    /// min(SOA TTL, SOA minimum) seconds (RFC 2308 §5).
    pub fn put_negative(
        &mut self,
        now: Instant,
        name: &Name,
        rtype: RecordType,
        negative: Negative,
    ) {
        let Some(soa) = &negative.soa else { return };
        let ttl = match soa.data {
            crate::dns::RData::Soa { minimum, .. } => soa.ttl.min(minimum),
            _ => soa.ttl,
        };
        if ttl == 0 {
            return;
        }
        let rtype = if negative.nx { RecordType::ANY } else { rtype };
        self.make_room(now);
        self.negative
            .insert(key(name, rtype), (negative, expiry(now, ttl)));
    }

    /// A negative answer for `name` and `rtype` still valid at `now`.
    pub fn get_negative(&self, now: Instant, name: &Name, rtype: RecordType) -> Option<Negative> {
        [RecordType::ANY, rtype].iter().find_map(|t| {
            let (negative, expires) = self.negative.get(&key(name, *t))?;
            let left = remaining(now, *expires);
            (left > 0).then(|| Negative {
                nx: negative.nx,
                soa: negative.soa.clone().map(|soa| Record { ttl: left, ..soa }),
            })
        })
    }

    /// Records an answer from `server` after `rtt`: the smoothed latency
    /// moves toward it and any backoff ends.
    pub fn answered(&mut self, server: SocketAddr, rtt: Duration) {
        let stats = self.servers.entry(server).or_insert(ServerStats {
            srtt: rtt,
            backoff: FIRST_BACKOFF,
            until: None,
        });
        stats.srtt = (stats.srtt * 7 + rtt) / 8;
        stats.backoff = FIRST_BACKOFF;
        stats.until = None;
    }

    /// Records that `server` did not answer: it is left alone for a
    /// backoff that doubles with each timeout in a row.
    pub fn timed_out(&mut self, now: Instant, server: SocketAddr, timeout: Duration) {
        let stats = self.servers.entry(server).or_insert(ServerStats {
            srtt: timeout,
            backoff: FIRST_BACKOFF,
            until: None,
        });
        stats.srtt = stats.srtt.max(timeout);
        stats.until = Some(now + stats.backoff);
        stats.backoff = (stats.backoff * 2).min(MAX_BACKOFF);
    }

    /// The order to try `server` in: backed-off servers last, then by
    /// measured latency; never-asked servers count as fast (so each is
    /// measured once).
    pub fn rank(&self, now: Instant, server: SocketAddr) -> (bool, Duration) {
        match self.servers.get(&server) {
            None => (false, Duration::ZERO),
            Some(s) => (s.until.is_some_and(|until| until > now), s.srtt),
        }
    }
}
