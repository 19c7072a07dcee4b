//! The LS's cache of answers (`--cache N`), shared by all its sessions:
//! at most N entries, each the outcome for one question, keyed by the
//! question's name ignoring case, its type and its class. No I/O and no
//! clock of its own: every call takes the time, so tests control it.
//!
//! - **Positive answers** (and referrals) keep their records, answer,
//!   authority and additional sections, with their TTLs. A hit serves each
//!   record with its TTL minus the whole seconds since it was stored; the
//!   entry expires when its smallest TTL runs out, and is never served
//!   after that. Each hit rotates every RRset by one place, so
//!   several addresses for a name keep taking turns at the front while the
//!   answer comes from the cache (what BIND's default cyclic order does).
//! - **Negative answers** (NXDOMAIN, and NODATA: the name exists without
//!   the type asked) are kept for the SOA's negative TTL, the smaller of
//!   its TTL and its MINIMUM field (RFC 2308 §5), or
//!   [`CachePolicy::negative_default`] without a SOA (course TSes send
//!   none), and never longer than [`CachePolicy::negative_max`] nor than
//!   the CNAMEs that led to a missing name. A hit serves the SOA with its
//!   TTL counted down like a positive answer's.
//! - **Never cached:** SERVFAIL, REFUSED, truncated replies, answers with
//!   a TTL of 0 (RFC 1035 §3.2.1: for this transaction only; a TTL of 2^31
//!   or more is read as 0, RFC 2181 §8), answers with
//!   more than [`CachePolicy::max_records`] records or
//!   [`CachePolicy::max_bytes`] bytes. TTLs are capped at
//!   [`CachePolicy::max_ttl`].
//!
//! The cache stores outcomes, not response bytes: an answer too large for
//! a UDP client is cached whole, answered with TC over UDP from the cache,
//! and whole over TCP from the cache too.
//!
//! **Serving stale** ([`Cache::keep_stale`], `--stale S`): an expired
//! entry is kept S seconds more (still bounded by N entries, and the first
//! to go when room is needed), never served by [`Cache::get`], but served
//! by [`Cache::get_stale`] with TTL 30 when no server can answer (RFC 8767).
//!
//! **Eviction.** When full, storing a new entry evicts the least recently
//! used one (found or stored longest ago). Least recently used rather than
//! earliest expiry: the TSes give most names the same TTL (`dnslb ts`: one
//! TTL for the whole table), so earliest expiry would reduce to "oldest
//! stored" and throw out the names asked every second as readily as names
//! asked once; LRU keeps the names clients keep asking. Expired entries are
//! removed when found, and an expired entry among the 8 least recently used
//! goes before a live one. The order is a `BTreeMap` from a use counter to
//! the key: O(log n) per lookup and per store.
//!
//! **Memory** is bounded by N entries, each at most
//! [`CachePolicy::max_records`] records (about 100 bytes each in memory) and
//! [`CachePolicy::max_bytes`] of names and data, plus a key of at most 259
//! bytes: about 11 kB at worst with the default policy, a few hundred bytes
//! for a typical answer of a few addresses.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::respond::Resolution;
use super::upstream::classify;
use super::{Message, Question, RData, Record, RecordType};

/// The TTL of a record served stale (RFC 8767 §4: 30 seconds).
pub const STALE_TTL: u32 = 30;

/// What the cache keeps and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CachePolicy {
    /// Seconds a negative answer without a SOA is kept.
    pub negative_default: u32,
    /// Most seconds a negative answer is kept, whatever its SOA says.
    pub negative_max: u32,
    /// Most seconds any record is kept (longer TTLs are cut to this, and
    /// served so).
    pub max_ttl: u32,
    /// Answers with more records are not cached.
    pub max_records: usize,
    /// Answers whose records take more bytes on the wire (uncompressed)
    /// are not cached.
    pub max_bytes: usize,
}

impl Default for CachePolicy {
    /// 60 s for a negative answer without a SOA, at most 300 s for any
    /// negative answer (a name added to a TS shows within 5 minutes), at
    /// most one day for a record (as Unbound's `cache-max-ttl`), at most
    /// 64 records and 4096 bytes an entry (64 A records owned by a name of
    /// 44 bytes on the wire take 64 × (44 + 10 + 4) = 3712 bytes).
    fn default() -> Self {
        CachePolicy {
            negative_default: 60,
            negative_max: 300,
            max_ttl: 86_400,
            max_records: 64,
            max_bytes: 4096,
        }
    }
}

/// The question's name in lower case on the wire, its type and class.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    name: Vec<u8>,
    qtype: RecordType,
    qclass: u16,
}

impl Key {
    fn of(question: &Question) -> Key {
        Key {
            name: question.name.wire().to_ascii_lowercase(),
            qtype: question.qtype,
            qclass: question.qclass,
        }
    }
}

#[derive(Debug)]
struct Entry {
    /// An answer, a referral, NXDOMAIN or NODATA, with the TTLs to count
    /// down from (a negative answer's SOA carries the negative TTL).
    kept: Resolution,
    stored: Instant,
    expires: Instant,
    /// The entry's place in [`Cache::order`].
    used: u64,
}

/// The cache, for one thread; [`SharedCache`] is the one sessions share.
#[derive(Debug)]
pub struct Cache {
    capacity: usize,
    policy: CachePolicy,
    entries: HashMap<Key, Entry>,
    /// Use counter → key, least recently used first.
    order: BTreeMap<u64, Key>,
    uses: u64,
    /// Seconds an expired entry is still kept to be served stale
    /// ([`get_stale`](Self::get_stale)); 0: removed when found expired.
    stale: u64,
}

impl Cache {
    /// A cache of at most `capacity` entries (0: stores nothing) with the
    /// default policy.
    pub fn new(capacity: usize) -> Cache {
        Cache::with_policy(capacity, CachePolicy::default())
    }

    /// A cache of at most `capacity` entries with `policy`.
    pub fn with_policy(capacity: usize, policy: CachePolicy) -> Cache {
        Cache {
            capacity,
            policy,
            entries: HashMap::new(),
            order: BTreeMap::new(),
            uses: 0,
            stale: 0,
        }
    }

    /// Keeps expired entries `seconds` more, for
    /// [`get_stale`](Self::get_stale) (RFC 8767); [`get`](Self::get) never
    /// serves them.
    pub fn keep_stale(&mut self, seconds: u32) {
        self.stale = u64::from(seconds);
    }

    /// The outcome kept for `question` when the servers cannot answer: as
    /// [`get`](Self::get) while the entry lives, and for an entry expired
    /// less than the [`keep_stale`](Self::keep_stale) seconds ago, its
    /// records with a TTL of [`STALE_TTL`] (RFC 8767 §4). `None` otherwise.
    pub fn get_stale(&mut self, question: &Question, now: Instant) -> Option<Resolution> {
        if let Some(fresh) = self.get(question, now) {
            return Some(fresh);
        }
        let entry = self.entries.get(&Key::of(question))?;
        if !self.within_stale(entry, now) {
            return None;
        }
        let mut outcome = entry.kept.clone();
        for record in records_mut(&mut outcome) {
            record.ttl = STALE_TTL;
        }
        Some(outcome)
    }

    /// Whether `entry`, expired, may still be served stale at `now`.
    fn within_stale(&self, entry: &Entry, now: Instant) -> bool {
        now.saturating_duration_since(entry.expires) < Duration::from_secs(self.stale)
    }

    /// Entries held (expired ones included until found or evicted).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The outcome kept for `question`, TTLs counted down to `now`, or
    /// `None` (not kept, or expired: then it is removed).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use dnslb::dns::cache::Cache;
    /// use dnslb::dns::{Name, Resolution, Question, Record, RecordType, CLASS_IN};
    /// let q = Question { name: Name::from_ascii("www.example.com").unwrap(), qtype: RecordType::A, qclass: CLASS_IN };
    /// let mut cache = Cache::new(100);
    /// let t0 = Instant::now();
    /// cache.insert(&q, &Resolution::answer(vec![Record::a(q.name.clone(), 30, [10, 0, 0, 1].into())]), t0);
    /// let Some(Resolution::Answer(records)) = cache.get(&q, t0 + Duration::from_millis(2500)) else { panic!() };
    /// assert_eq!(records.answers[0].ttl, 28);
    /// assert_eq!(cache.get(&q, t0 + Duration::from_secs(30)), None);
    /// ```
    pub fn get(&mut self, question: &Question, now: Instant) -> Option<Resolution> {
        let key = Key::of(question);
        let entry = self.entries.get_mut(&key)?;
        if now >= entry.expires {
            if self.stale > 0
                && now.saturating_duration_since(entry.expires) < Duration::from_secs(self.stale)
            {
                return None;
            }
            let used = entry.used;
            self.entries.remove(&key);
            self.order.remove(&used);
            return None;
        }
        let elapsed = u32::try_from(now.saturating_duration_since(entry.stored).as_secs())
            .unwrap_or(u32::MAX);
        if let Resolution::Answer(sections) = &mut entry.kept {
            for set in sections.answers.chunk_by_mut(|a, b| {
                a.rtype == b.rtype && a.class == b.class && a.name.eq_ignore_case(&b.name)
            }) {
                set.rotate_left(1);
            }
        }
        let mut outcome = entry.kept.clone();
        for record in records_mut(&mut outcome) {
            record.ttl = record.ttl.saturating_sub(elapsed);
        }
        self.uses += 1;
        self.order.remove(&entry.used);
        entry.used = self.uses;
        self.order.insert(self.uses, key);
        Some(outcome)
    }

    /// Keeps `outcome` as the answer to `question` from `now` (see the
    /// module for what is kept and for how long), replacing what was kept
    /// for it. Returns whether it was kept.
    pub fn insert(&mut self, question: &Question, outcome: &Resolution, now: Instant) -> bool {
        if self.capacity == 0 {
            return false;
        }
        let Some((kept, ttl)) = self.keepable(outcome) else {
            return false;
        };
        let Some(expires) = now.checked_add(Duration::from_secs(u64::from(ttl))) else {
            return false;
        };
        let key = Key::of(question);
        if let Some(old) = self.entries.remove(&key) {
            self.order.remove(&old.used);
        }
        while self.entries.len() >= self.capacity && self.evict_one(now) {}
        self.uses += 1;
        self.order.insert(self.uses, key.clone());
        self.entries.insert(
            key,
            Entry {
                kept,
                stored: now,
                expires,
                used: self.uses,
            },
        );
        true
    }

    /// Keeps what one server's `reply` to `question` says (see
    /// [`classify`]): a truncated reply, SERVFAIL or REFUSED is not kept.
    pub fn insert_reply(&mut self, question: &Question, reply: &Message, now: Instant) -> bool {
        !reply.header.tc && self.insert(question, &classify(question, reply), now)
    }

    /// What to keep of `outcome` and for how many seconds, or `None`.
    fn keepable(&self, outcome: &Resolution) -> Option<(Resolution, u32)> {
        let policy = &self.policy;
        let mut kept = outcome.clone();
        let negative_ttl = match &kept {
            Resolution::Answer(sections) if sections.answers.is_empty() => return None,
            Resolution::Referral(sections) if sections.authority.is_empty() => return None,
            Resolution::Answer(_) | Resolution::Referral(_) => None,
            Resolution::NxDomain { soa, .. } | Resolution::NoData { soa } => Some(
                match soa {
                    Some(
                        soa @ Record {
                            data: RData::Soa { minimum, .. },
                            ..
                        },
                    ) => soa.ttl.min(*minimum),
                    _ => policy.negative_default,
                }
                .min(policy.negative_max),
            ),
            Resolution::Refused | Resolution::ServFail => return None,
        };
        if let (
            Resolution::NxDomain { soa: Some(soa), .. } | Resolution::NoData { soa: Some(soa) },
            Some(ttl),
        ) = (&mut kept, negative_ttl)
        {
            soa.ttl = ttl;
        }
        let (mut count, mut bytes, mut ttl) = (0, 0, negative_ttl.unwrap_or(u32::MAX));
        for record in records_mut(&mut kept) {
            record.ttl = record.ttl.min(policy.max_ttl);
            count += 1;
            bytes += wire_size(record);
            ttl = ttl.min(record.ttl);
        }
        if count > policy.max_records || bytes > policy.max_bytes {
            return None;
        }
        (ttl > 0).then_some((kept, ttl))
    }

    /// Removes the least recently used entry, or an expired one when the
    /// least recently used few include one. Returns whether it removed one.
    fn evict_one(&mut self, now: Instant) -> bool {
        // Look a few places down the order for an entry nobody can use any
        // more: a bounded look, so eviction stays O(log n).
        let expired = self
            .order
            .iter()
            .take(8)
            .find(|(_, key)| self.entries.get(*key).is_some_and(|e| now >= e.expires))
            .map(|(used, _)| *used);
        let victim = match expired {
            Some(used) => self.order.remove_entry(&used),
            None => self.order.pop_first(),
        };
        victim.is_some_and(|(_, key)| self.entries.remove(&key).is_some())
    }
}

/// Every record `outcome` holds.
fn records_mut(outcome: &mut Resolution) -> Vec<&mut Record> {
    match outcome {
        Resolution::Answer(sections) | Resolution::Referral(sections) => {
            sections.records_mut().collect()
        }
        Resolution::NxDomain { chain, soa } => chain.iter_mut().chain(soa).collect(),
        Resolution::NoData { soa } => soa.iter_mut().collect(),
        Resolution::Refused | Resolution::ServFail => Vec::new(),
    }
}

/// A record's size on the wire, its name uncompressed.
fn wire_size(record: &Record) -> usize {
    let data = match &record.data {
        RData::A(_) => 4,
        RData::Name(name) => name.wire().len(),
        RData::Mx { exchange, .. } => 2 + exchange.wire().len(),
        RData::Soa { mname, rname, .. } => mname.wire().len() + rname.wire().len() + 20,
        RData::Other(bytes) => bytes.len(),
    };
    record.name.wire().len() + 10 + data
}

/// The cache shared by an LS's sessions: [`Cache`] behind a mutex. With
/// capacity 0 it never locks.
#[derive(Debug)]
pub struct SharedCache {
    enabled: bool,
    cache: Mutex<Cache>,
}

impl SharedCache {
    /// A shared cache of at most `capacity` entries (0: disabled) with the
    /// default policy.
    pub fn new(capacity: usize) -> SharedCache {
        SharedCache::with_policy(capacity, CachePolicy::default())
    }

    /// A shared cache of at most `capacity` entries with `policy`.
    pub fn with_policy(capacity: usize, policy: CachePolicy) -> SharedCache {
        SharedCache {
            enabled: capacity > 0,
            cache: Mutex::new(Cache::with_policy(capacity, policy)),
        }
    }

    /// See [`Cache::get`].
    pub fn get(&self, question: &Question, now: Instant) -> Option<Resolution> {
        if !self.enabled {
            return None;
        }
        self.lock().get(question, now)
    }

    /// See [`Cache::get_stale`].
    pub fn get_stale(&self, question: &Question, now: Instant) -> Option<Resolution> {
        if !self.enabled {
            return None;
        }
        self.lock().get_stale(question, now)
    }

    /// See [`Cache::keep_stale`].
    pub fn keep_stale(&self, seconds: u32) {
        self.lock().keep_stale(seconds);
    }

    /// See [`Cache::insert`].
    pub fn insert(&self, question: &Question, outcome: &Resolution, now: Instant) -> bool {
        self.enabled && self.lock().insert(question, outcome, now)
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> MutexGuard<'_, Cache> {
        // A panic while holding the lock leaves a consistent cache: each
        // method changes both maps before it can panic, or neither.
        crate::sync::lock(&self.cache)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::fixture::{a, name, question, soa};
    use crate::dns::respond::Sections;
    use crate::dns::{CLASS_IN, Rcode, RecordType};

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn ttls(outcome: Option<Resolution>) -> Vec<u32> {
        match outcome {
            Some(Resolution::Answer(records)) => records.answers.iter().map(|r| r.ttl).collect(),
            other => panic!("not an answer: {other:?}"),
        }
    }

    fn negative_ttl(outcome: Option<Resolution>) -> Option<u32> {
        match outcome {
            Some(Resolution::NxDomain { soa, .. } | Resolution::NoData { soa }) => {
                soa.map(|s| s.ttl)
            }
            other => panic!("not negative: {other:?}"),
        }
    }

    #[test]
    fn expired_entries_are_served_stale_with_ttl_30_for_s_seconds_only() {
        let q = question("www.example.com");
        let t0 = Instant::now();
        let outcome = Resolution::answer(vec![a("www.example.com", 10, 1)]);
        let mut off = Cache::new(10);
        off.insert(&q, &outcome, t0);
        assert_eq!(off.get_stale(&q, t0 + secs(11)), None);
        let mut cache = Cache::new(10);
        cache.keep_stale(60);
        cache.insert(&q, &outcome, t0);
        assert_eq!(ttls(cache.get_stale(&q, t0 + secs(4))), [6]);
        assert_eq!(cache.get(&q, t0 + secs(11)), None);
        assert_eq!(ttls(cache.get_stale(&q, t0 + secs(11))), [STALE_TTL]);
        assert_eq!(ttls(cache.get_stale(&q, t0 + secs(69))), [STALE_TTL]);
        assert_eq!(cache.get_stale(&q, t0 + secs(70)), None);
        assert_eq!(cache.get(&q, t0 + secs(70)), None);
        assert!(cache.is_empty());
    }

    #[test]
    fn ttls_count_down_in_whole_seconds_and_expired_entries_are_not_served() {
        let mut cache = Cache::new(10);
        let q = question("www.example.com");
        let t0 = Instant::now();
        let outcome =
            Resolution::answer(vec![a("www.example.com", 10, 1), a("x.example.com", 4, 2)]);
        assert!(cache.insert(&q, &outcome, t0));
        assert_eq!(ttls(cache.get(&q, t0)), [10, 4]);
        assert_eq!(
            ttls(cache.get(&q, t0 + Duration::from_millis(1999))),
            [9, 3]
        );
        assert_eq!(
            ttls(cache.get(&q, t0 + Duration::from_millis(3999))),
            [7, 1]
        );
        // The smallest TTL has run out: the whole entry has.
        assert_eq!(cache.get(&q, t0 + secs(4)), None);
        assert!(cache.is_empty());
    }

    #[test]
    fn each_hit_rotates_every_rrset() {
        let mut cache = Cache::new(10);
        let q = question("rr.example");
        let t0 = Instant::now();
        let set: Vec<Record> = (1..=3).map(|i| a("rr.example", 60, i)).collect();
        cache.insert(&q, &Resolution::answer(set), t0);
        let firsts: Vec<RData> = (0..4)
            .map(|_| match cache.get(&q, t0) {
                Some(Resolution::Answer(r)) => r.answers[0].data.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        let ip = |i| RData::A([10, 0, 0, i].into());
        assert_eq!(firsts, [ip(2), ip(3), ip(1), ip(2)]);
    }

    #[test]
    fn ttls_are_capped_and_a_zero_ttl_is_not_kept() {
        let policy = CachePolicy {
            max_ttl: 100,
            ..CachePolicy::default()
        };
        let mut cache = Cache::with_policy(10, policy);
        let q = question("a.example");
        let t0 = Instant::now();
        cache.insert(
            &q,
            &Resolution::answer(vec![a("a.example", u32::MAX, 1)]),
            t0,
        );
        assert_eq!(ttls(cache.get(&q, t0 + secs(1))), [99]);
        assert_eq!(cache.get(&q, t0 + secs(100)), None);
        let zero = Resolution::answer(vec![a("a.example", 0, 1)]);
        assert!(!cache.insert(&q, &zero, t0));
        assert!(!cache.insert(&q, &Resolution::answer(Vec::new()), t0));
    }

    #[test]
    fn negative_ttl_is_the_soa_minimum_or_its_ttl_capped() {
        let mut cache = Cache::new(10);
        let q = question("gone.example.com");
        let t0 = Instant::now();
        // MINIMUM below the SOA's TTL.
        cache.insert(
            &q,
            &Resolution::NxDomain {
                chain: Vec::new(),
                soa: Some(soa(3600, 30)),
            },
            t0,
        );
        assert_eq!(negative_ttl(cache.get(&q, t0 + secs(5))), Some(25));
        assert_eq!(cache.get(&q, t0 + secs(30)), None);
        // The SOA's TTL below MINIMUM.
        cache.insert(
            &q,
            &Resolution::NxDomain {
                chain: Vec::new(),
                soa: Some(soa(20, 3600)),
            },
            t0,
        );
        assert_eq!(negative_ttl(cache.get(&q, t0)), Some(20));
        // Both large: capped at 300 s.
        cache.insert(
            &q,
            &Resolution::NoData {
                soa: Some(soa(86_400, 86_400)),
            },
            t0,
        );
        assert_eq!(negative_ttl(cache.get(&q, t0 + secs(299))), Some(1));
        assert_eq!(cache.get(&q, t0 + secs(300)), None);
        // No SOA: 60 s.
        cache.insert(&q, &Resolution::nxdomain(), t0);
        assert_eq!(negative_ttl(cache.get(&q, t0 + secs(59))), None);
        assert_eq!(cache.get(&q, t0 + secs(60)), None);
        // A SOA saying 0: not kept.
        assert!(!cache.insert(
            &q,
            &Resolution::NxDomain {
                chain: Vec::new(),
                soa: Some(soa(0, 60))
            },
            t0
        ));
    }

    fn ns(zone: &str, ttl: u32) -> Record {
        Record {
            name: name(zone),
            rtype: RecordType::NS,
            class: CLASS_IN,
            ttl,
            data: RData::Name(name(&format!("ns1.{zone}"))),
        }
    }

    #[test]
    fn referrals_authority_and_additional_records_are_kept_and_counted_down() {
        let mut cache = Cache::new(10);
        let t0 = Instant::now();
        let q = question("www.sub.example");
        let referral = Resolution::Referral(Sections {
            answers: Vec::new(),
            authority: vec![ns("sub.example", 100)],
            additional: vec![a("ns1.sub.example", 50, 53)],
        });
        assert!(cache.insert(&q, &referral, t0));
        let Some(Resolution::Referral(kept)) = cache.get(&q, t0 + secs(10)) else {
            panic!()
        };
        let ttls: Vec<u32> = kept.records().map(|r| r.ttl).collect();
        assert_eq!(ttls, [90, 40]);
        // The entry goes with its shortest TTL, the glue's.
        assert_eq!(cache.get(&q, t0 + secs(50)), None);
        // An answer with its zone's NS: both count down.
        let answer = Resolution::Answer(Sections {
            answers: vec![a("www.example", 30, 1)],
            authority: vec![ns("example", 3600)],
            additional: Vec::new(),
        });
        cache.insert(&q, &answer, t0);
        let Some(Resolution::Answer(kept)) = cache.get(&q, t0 + secs(1)) else {
            panic!()
        };
        assert_eq!(
            kept.records().map(|r| r.ttl).collect::<Vec<_>>(),
            [29, 3599]
        );
        assert!(!cache.insert(&q, &Resolution::Referral(Sections::default()), t0));
    }

    #[test]
    fn a_dangling_cname_is_kept_with_its_nxdomain_no_longer_than_the_cname() {
        let mut cache = Cache::new(10);
        let t0 = Instant::now();
        let q = question("alias.example.com");
        let cname = Record {
            name: name("alias.example.com"),
            rtype: RecordType::CNAME,
            class: CLASS_IN,
            ttl: 20,
            data: RData::Name(name("gone.example.com")),
        };
        let nx = Resolution::NxDomain {
            chain: vec![cname.clone()],
            soa: Some(soa(3600, 45)),
        };
        assert!(cache.insert(&q, &nx, t0));
        let Some(Resolution::NxDomain { chain, soa }) = cache.get(&q, t0 + secs(5)) else {
            panic!()
        };
        assert_eq!((chain[0].ttl, soa.unwrap().ttl), (15, 40));
        assert_eq!(cache.get(&q, t0 + secs(20)), None);
    }

    #[test]
    fn a_reply_with_a_ttl_of_2_to_the_31_is_not_kept() {
        let mut cache = Cache::new(10);
        let t0 = Instant::now();
        let q = question("a.example");
        let mut reply = Message::default();
        reply.header.qr = true;
        reply.questions.push(q.clone());
        reply.answers.push(a("a.example", 0x8000_0000, 1));
        let parsed = Message::parse(&reply.to_bytes(512)).unwrap();
        assert_eq!(parsed.answers[0].ttl, 0);
        assert!(!cache.insert_reply(&q, &parsed, t0));
    }

    #[test]
    fn failures_refusals_and_truncated_replies_are_not_kept() {
        let mut cache = Cache::new(10);
        let q = question("a.example");
        let t0 = Instant::now();
        assert!(!cache.insert(&q, &Resolution::ServFail, t0));
        assert!(!cache.insert(&q, &Resolution::Refused, t0));
        let mut reply = Message::default();
        reply.header.qr = true;
        reply.questions.push(q.clone());
        reply.answers.push(a("a.example", 60, 1));
        reply.header.tc = true;
        assert!(!cache.insert_reply(&q, &reply, t0));
        for code in [Rcode::SERVFAIL, Rcode::REFUSED] {
            reply.header.tc = false;
            reply.rcode = code;
            assert!(!cache.insert_reply(&q, &reply, t0));
        }
        assert!(cache.is_empty());
        reply.rcode = Rcode::NOERROR;
        assert!(cache.insert_reply(&q, &reply, t0));
        assert_eq!(ttls(cache.get(&q, t0)), [60]);
    }

    #[test]
    fn big_answers_are_not_kept() {
        let policy = CachePolicy {
            max_records: 5,
            max_bytes: 200,
            ..CachePolicy::default()
        };
        let mut cache = Cache::with_policy(10, policy);
        let q = question("big.example");
        let t0 = Instant::now();
        let records = |n| Resolution::answer((0..n).map(|i| a("big.example", 60, i)).collect());
        // Each record: 13-byte name + 10 + 4 = 27 bytes.
        assert!(cache.insert(&q, &records(5), t0));
        assert!(!cache.insert(&q, &records(6), t0));
        let long = Resolution::answer(vec![Record {
            data: RData::Other(vec![0; 200]),
            rtype: RecordType::TXT,
            ..a("big.example", 60, 0)
        }]);
        assert!(!cache.insert(&q, &long, t0));
    }

    #[test]
    fn the_key_ignores_case_but_not_type_or_class() {
        let mut cache = Cache::new(10);
        let t0 = Instant::now();
        cache.insert(
            &question("WWW.Example.COM"),
            &Resolution::answer(vec![a("WWW.Example.COM", 60, 1)]),
            t0,
        );
        assert!(cache.get(&question("www.example.com."), t0).is_some());
        let aaaa = Question {
            qtype: RecordType::AAAA,
            ..question("www.example.com")
        };
        let chaos = Question {
            qclass: 3,
            ..question("www.example.com")
        };
        assert_eq!(cache.get(&aaaa, t0), None);
        assert_eq!(cache.get(&chaos, t0), None);
    }

    #[test]
    fn the_least_recently_used_entry_is_evicted_when_full() {
        let mut cache = Cache::new(3);
        let t0 = Instant::now();
        let keep = |cache: &mut Cache, n: &str| {
            cache.insert(&question(n), &Resolution::answer(vec![a(n, 60, 1)]), t0)
        };
        for n in ["a.x", "b.x", "c.x"] {
            keep(&mut cache, n);
        }
        // a.x used again: b.x is now the least recently used.
        assert!(cache.get(&question("a.x"), t0).is_some());
        keep(&mut cache, "d.x");
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get(&question("b.x"), t0), None);
        for n in ["a.x", "c.x", "d.x"] {
            assert!(cache.get(&question(n), t0).is_some(), "{n}");
        }
        // Replacing an entry does not evict another.
        keep(&mut cache, "c.x");
        assert_eq!(cache.len(), 3);
        assert!(cache.get(&question("a.x"), t0).is_some());
    }

    #[test]
    fn an_expired_entry_goes_before_a_live_one() {
        let mut cache = Cache::new(2);
        let t0 = Instant::now();
        cache.insert(
            &question("live.x"),
            &Resolution::answer(vec![a("live.x", 60, 1)]),
            t0,
        );
        cache.insert(
            &question("short.x"),
            &Resolution::answer(vec![a("short.x", 1, 1)]),
            t0,
        );
        cache.insert(
            &question("new.x"),
            &Resolution::answer(vec![a("new.x", 60, 1)]),
            t0 + secs(2),
        );
        assert!(cache.get(&question("live.x"), t0 + secs(2)).is_some());
        assert!(cache.get(&question("new.x"), t0 + secs(2)).is_some());
    }

    #[test]
    fn capacity_zero_keeps_nothing() {
        let t0 = Instant::now();
        let q = question("a.example");
        let outcome = Resolution::answer(vec![a("a.example", 60, 1)]);
        let mut cache = Cache::new(0);
        assert!(!cache.insert(&q, &outcome, t0));
        assert_eq!(cache.get(&q, t0), None);
        let shared = SharedCache::new(0);
        assert!(!shared.insert(&q, &outcome, t0));
        assert_eq!(shared.get(&q, t0), None);
        assert!(shared.is_empty());
    }

    #[test]
    fn the_shared_cache_serves_every_thread() {
        let shared = std::sync::Arc::new(SharedCache::new(1000));
        let t0 = Instant::now();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let shared = std::sync::Arc::clone(&shared);
                std::thread::spawn(move || {
                    for i in 0..100 {
                        let n = format!("h{i}.t{t}.example");
                        let q = question(&n);
                        assert!(shared.insert(&q, &Resolution::answer(vec![a(&n, 60, 1)]), t0));
                        assert!(shared.get(&q, t0).is_some());
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(shared.len(), 400);
    }
}
