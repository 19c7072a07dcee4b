//! The queries one client session has in flight, and the rules that settle
//! them: which query a TS reply belongs to, when a deadline fires, in what
//! order replies leave. A plain data structure: no threads, no sockets, no
//! clock of its own (every call that needs the time takes `now`), so each
//! rule is tested case by case below.
//!
//! Rules:
//! - Each query has a bit per TS it was asked and a bit per TS that replied.
//! - A reply from TS `t` for key `k` belongs to the oldest query in flight
//!   for `k` that `t` was asked and has not replied to yet (a TS answers its
//!   queries in order). If that query is already settled, the reply is a
//!   second answer; if there is none, the reply is late or unasked.
//! - A query is settled by the first answer; as a miss once every TS asked
//!   has said `NOT FOUND` or is gone; as a miss at its deadline otherwise.
//!   A miss keeps the first negative answer a TS gave with it (a DNS TS's
//!   NXDOMAIN and SOA) for the front end to relay, and says which TSes
//!   were heard saying `NOT FOUND` or refusing ([`settled`](InFlight::settled)):
//!   one that not every TS confirmed is not for the cache.
//!   A miss on a query some TS could not be asked for want of the LS's own
//!   resources is `Busy` instead: the LS cannot tell it is a miss.
//! - Every query shares one timeout, so deadlines fall in submission order
//!   and the oldest unsettled query has the earliest one.
//! - Replies leave in the order the front end chose ([`Release`]): strictly
//!   in submission order ([`pop_ready`](InFlight::pop_ready) gives the
//!   oldest query once it is settled, never a younger one first), or each as
//!   it is settled (oldest settled first), whatever is still unsettled
//!   before it. A query popped leaves the matching: a TS's reply that would
//!   have been its second answer is matched to the next query in flight for
//!   the key, or dropped as unmatched.
//!
//! The answer `A` is whatever the front end relays: the answer line for the
//! course protocol.

mod slots;

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use slots::Slots;

/// Most TSes one LS forwards to (a query keeps one bit per TS).
pub const MAX_BACKENDS: usize = 64;

/// In what order settled queries leave ([`InFlight::pop_ready`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    /// Strictly in submission order: a course client matches replies to
    /// queries by their order.
    InOrder,
    /// Each as soon as it is settled: a DNS response carries its query's ID,
    /// so a slow query holds up no other.
    AsSettled,
}

/// How a query ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// TS number `ts` answered.
    Answered { ts: usize },
    /// No TS answered before the deadline.
    TimedOut,
    /// Every TS asked said `NOT FOUND` (or went down, or refused, after
    /// some did).
    NotFound,
    /// Every TS asked that replied refused the query (a DNS TS's REFUSED:
    /// "not mine"), and none said `NOT FOUND`.
    Refused,
    /// A TS failed to answer (a DNS TS's SERVFAIL), and none answered or
    /// said `NOT FOUND`.
    Failed,
    /// No TS was up to ask, or every TS asked went down.
    AllDown,
    /// The query was not valid; its reply was known at once.
    Invalid,
    /// Answered from the LS's cache.
    Cached,
    /// A miss from the LS's cache (a name the TSes said does not exist).
    CachedMiss,
    /// No TS answered, and some TS could not be asked for want of the LS's
    /// own descriptors or threads.
    Busy,
}

impl Outcome {
    /// How a trace names it (the counters' terms; `--trace`).
    pub fn term(self) -> &'static str {
        match self {
            Outcome::Answered { .. } => "answer",
            Outcome::TimedOut => "timeout",
            Outcome::NotFound => "not_found",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
            Outcome::AllDown => "all_down",
            Outcome::Invalid => "invalid",
            Outcome::Cached => "cached",
            Outcome::CachedMiss => "cached_not_found",
            Outcome::Busy => "busy",
        }
    }

    /// The TS that answered, if one did.
    pub fn answered_by(self) -> Option<usize> {
        match self {
            Outcome::Answered { ts } => Some(ts),
            _ => None,
        }
    }
}

/// A settled query, on its way to the client.
#[derive(Debug)]
pub struct Settled<A, T = ()> {
    /// The query's name, as the client sent it (empty for an invalid one).
    pub name: String,
    pub outcome: Outcome,
    /// The answer for `Answered`, the error reply for `Invalid`; `None` for
    /// the misses, whose reply the front end writes.
    pub answer: Option<A>,
    /// From submission to settling.
    pub took: Duration,
    /// What the front end attached to the query (who asked, how).
    pub tag: T,
    /// The query's trace, when the LS traces (`--trace`); set by the
    /// session.
    pub trace: Option<crate::trace::Query>,
}

/// What a TS said about a key.
#[derive(Debug, PartialEq, Eq)]
pub enum Said<A> {
    Answer(A),
    NotFound,
    /// `NOT FOUND` with what the front end relays for it (a DNS TS's
    /// NXDOMAIN, with its SOA): the query's answer if it ends as a miss.
    Negative(A),
    /// The TS does not serve the name (DNS REFUSED).
    Refused,
    /// The TS could not answer (DNS SERVFAIL, or a reply it cut short).
    Failed,
}

/// How a reply fits the queries in flight ([`InFlight::reply`]).
#[derive(Debug, PartialEq, Eq)]
pub enum Fit {
    /// It settled query `seq`.
    Answered(u64),
    /// A `NOT FOUND` for query `seq` (settling it if it was the last TS).
    Denied(u64),
    /// An answer for a query already answered by another TS: dropped.
    Second,
    /// A `NOT FOUND` for a query another TS already answered: expected,
    /// ignored.
    Stale,
    /// An answer for no query in flight that asked this TS: late (after its
    /// deadline) or never asked. Dropped.
    Unmatched,
}

/// One query in flight.
struct Flight<A, T> {
    name: String,
    tag: T,
    /// `None` for an invalid query.
    key: Option<String>,
    started: Instant,
    deadline: Instant,
    asked: u64,
    replied: u64,
    denied: u64,
    refused: u64,
    failed: u64,
    starved: u64,
    /// TSes asked that the query no longer waits on to settle as a miss
    /// (a pool's member given up for the next): a reply from one still
    /// belongs to this query, and only to it.
    abandoned: u64,
    /// The first [`Said::Negative`], relayed if the query ends as a miss.
    negative: Option<A>,
    done: Option<(Outcome, Option<A>, Duration)>,
}

impl<A, T> Flight<A, T> {
    fn waiting_on(&self) -> u64 {
        self.asked & !self.replied
    }
}

/// The queries of one session by sequence number (oldest first), each with
/// the front end's tag.
pub struct InFlight<A, T = ()> {
    timeout: Duration,
    release: Release,
    queue: Slots<Flight<A, T>>,
    /// Sequence numbers in flight per key, oldest first.
    by_key: HashMap<String, VecDeque<u64>>,
    /// With [`Release::AsSettled`], the settled queries in the order they
    /// were settled (at most one entry per query in `queue`).
    ready: VecDeque<u64>,
}

impl<A, T> InFlight<A, T> {
    /// No query yet; each will wait `timeout` for an answer, and settled
    /// ones leave in `release` order.
    pub fn new(timeout: Duration, release: Release) -> InFlight<A, T> {
        InFlight {
            timeout,
            release,
            queue: Slots::new(),
            by_key: HashMap::new(),
            ready: VecDeque::new(),
        }
    }

    /// How long each query waits for an answer.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Queries submitted and not yet popped, settled or not.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether no query is in flight.
    pub fn is_empty(&self) -> bool {
        self.queue.len() == 0
    }

    /// The sequence number the next query will get.
    pub fn next_seq(&self) -> u64 {
        self.queue.next_seq()
    }

    /// Adds a query for `key` asked of the TSes in `asked` (a bit each);
    /// `starved`: the TSes that could not be asked for want of the LS's own
    /// resources. Returns its sequence number. Asked of nobody, it is
    /// settled at once.
    pub fn submit(
        &mut self,
        name: &str,
        key: &str,
        asked: u64,
        starved: u64,
        tag: T,
        now: Instant,
    ) -> u64 {
        let seq = self.queue.push(Flight {
            name: name.to_string(),
            tag,
            key: Some(key.to_string()),
            started: now,
            deadline: now + self.timeout,
            asked,
            replied: 0,
            denied: 0,
            refused: 0,
            failed: 0,
            starved,
            abandoned: 0,
            negative: None,
            done: None,
        });
        self.by_key
            .entry(key.to_string())
            .or_default()
            .push_back(seq);
        self.settle_if_nobody_left(seq, now);
        seq
    }

    /// Adds a query for `name` settled at once (an invalid one, or one
    /// answered from a cache) with `reply`, in line with the others.
    pub fn submit_settled(
        &mut self,
        name: &str,
        outcome: Outcome,
        reply: A,
        tag: T,
        now: Instant,
    ) -> u64 {
        let seq = self.queue.push(Flight {
            name: name.to_string(),
            tag,
            key: None,
            started: now,
            deadline: now,
            asked: 0,
            replied: 0,
            denied: 0,
            refused: 0,
            failed: 0,
            starved: 0,
            abandoned: 0,
            negative: None,
            done: Some((outcome, Some(reply), Duration::ZERO)),
        });
        if self.release == Release::AsSettled {
            self.ready.push_back(seq);
        }
        seq
    }

    /// Query `seq`'s name and whether it still waits for TS `ts`: what a
    /// link that comes up (or a held write) needs to send it. `None` once
    /// the query is settled or gone.
    pub fn waiting_for(&self, seq: u64, ts: usize) -> Option<&str> {
        let pending = self.get(seq)?;
        (pending.done.is_none() && pending.asked & (1 << ts) != 0).then_some(pending.name.as_str())
    }

    /// Whether query `seq` is in flight and not yet settled.
    pub fn is_waiting(&self, seq: u64) -> bool {
        self.get(seq).is_some_and(|p| p.done.is_none())
    }

    /// Query `seq`'s tag, while it is in flight.
    pub fn tag(&self, seq: u64) -> Option<&T> {
        self.get(seq).map(|p| &p.tag)
    }

    /// The TSes query `seq` was asked (bits by TS); 0 once it is gone.
    pub fn asked(&self, seq: u64) -> u64 {
        self.get(seq).map_or(0, |p| p.asked)
    }

    /// Query `seq`'s tag, to change.
    pub fn tag_mut(&mut self, seq: u64) -> Option<&mut T> {
        self.queue.get_mut(seq).map(|p| &mut p.tag)
    }

    /// The queries still unsettled that wait on TS `ts` (asked of it, and
    /// not replied to), oldest first.
    pub fn asked_of(&self, ts: usize) -> Vec<u64> {
        let bit = 1 << ts;
        self.queue
            .iter()
            .filter(|(_, p)| p.done.is_none() && p.waiting_on() & bit != 0)
            .map(|(seq, _)| seq)
            .collect()
    }

    /// TS `ts` will not be asked query `seq` after all (it was to be sent
    /// later, and the query was settled first).
    pub fn unask(&mut self, seq: u64, ts: usize) {
        if let Some(pending) = self.queue.get_mut(seq) {
            pending.asked &= !(1 << ts);
        }
    }

    /// A reply from TS `ts` about `key`.
    pub fn reply(&mut self, ts: usize, key: &str, said: Said<A>, now: Instant) -> Fit {
        let bit = 1 << ts;
        let owner = self.by_key.get(key).and_then(|seqs| {
            seqs.iter()
                .copied()
                .find(|&seq| self.get(seq).is_some_and(|p| p.waiting_on() & bit != 0))
        });
        match owner {
            Some(seq) => self.reply_to(seq, ts, said, now),
            None => match said {
                Said::Answer(_) => Fit::Unmatched,
                _ => Fit::Stale,
            },
        }
    }

    /// A reply from TS `ts` known to be for query `seq` (a DNS reply, matched
    /// by its ID and question): taken only while `seq` waits on `ts`.
    pub fn reply_to(&mut self, seq: u64, ts: usize, said: Said<A>, now: Instant) -> Fit {
        let bit = 1 << ts;
        let Some(pending) = self
            .queue
            .get_mut(seq)
            .filter(|p| p.waiting_on() & bit != 0)
        else {
            return match said {
                Said::Answer(_) => Fit::Unmatched,
                _ => Fit::Stale,
            };
        };
        pending.replied |= bit;
        match said {
            Said::Answer(_) if pending.done.is_some() => Fit::Second,
            _ if pending.done.is_some() => Fit::Stale,
            Said::Answer(answer) => {
                self.settle(seq, Outcome::Answered { ts }, Some(answer), now);
                Fit::Answered(seq)
            }
            Said::NotFound | Said::Negative(_) => {
                pending.denied |= bit;
                if let Said::Negative(negative) = said {
                    pending.negative.get_or_insert(negative);
                }
                self.settle_if_nobody_left(seq, now);
                Fit::Denied(seq)
            }
            Said::Refused | Said::Failed => {
                if matches!(said, Said::Refused) {
                    pending.refused |= bit;
                } else {
                    pending.failed |= bit;
                }
                self.settle_if_nobody_left(seq, now);
                Fit::Denied(seq)
            }
        }
    }

    /// Query `seq`'s outcome and answer once it is settled, with the TSes
    /// that said `NOT FOUND` or refused it (a bit each): a miss heard from
    /// every TS is one that no TS down, silent or failing could contradict.
    pub fn settled(&self, seq: u64) -> Option<(Outcome, Option<&A>, u64)> {
        let pending = self.get(seq)?;
        let (outcome, answer, _) = pending.done.as_ref()?;
        Some((*outcome, answer.as_ref(), pending.denied | pending.refused))
    }

    /// TS `ts`'s connection is gone: no query waits on it any more, so the
    /// next connection's replies match only the queries sent on it.
    /// Queries left waiting on nobody are settled.
    pub fn forget_ts(&mut self, ts: usize, now: Instant) {
        let bit = 1 << ts;
        let mut was_waiting = Vec::new();
        for (seq, pending) in self.queue.iter_mut() {
            if pending.waiting_on() & bit != 0 {
                was_waiting.push(seq);
            }
            pending.asked &= !bit;
            pending.replied &= !bit;
        }
        for seq in was_waiting {
            self.settle_if_nobody_left(seq, now);
        }
    }

    /// TS `ts` could not be reached for want of the LS's own resources:
    /// the queries waiting on it stop waiting, and cannot end as misses.
    pub fn starve_ts(&mut self, ts: usize, now: Instant) {
        let bit = 1 << ts;
        for pending in self.queue.iter_mut().map(|(_, p)| p) {
            if pending.waiting_on() & bit != 0 {
                pending.starved |= bit;
            }
        }
        self.forget_ts(ts, now);
    }

    /// Settles every query whose deadline is not after `now` as timed out.
    /// Returns the TSes those queries were still waiting on (a bit each).
    pub fn expire(&mut self, now: Instant) -> u64 {
        self.expire_each(now, |_| {})
    }

    /// [`expire`](Self::expire), telling `timed_out` the TSes each query
    /// it settles was still waiting on (a bit each).
    pub fn expire_each(&mut self, now: Instant, mut timed_out: impl FnMut(u64)) -> u64 {
        let mut silent = 0;
        let mut due = Vec::new();
        for (seq, pending) in self.queue.iter() {
            if pending.deadline > now {
                break;
            }
            if pending.done.is_none() {
                silent |= pending.waiting_on();
                timed_out(pending.waiting_on());
                due.push(seq);
            }
        }
        for seq in due {
            self.settle(seq, Outcome::TimedOut, None, now);
        }
        silent
    }

    /// Moves every deadline `by` later (time in which replies could not be
    /// taken does not count against the TSes).
    pub fn postpone(&mut self, by: Duration) {
        for pending in self.queue.iter_mut().map(|(_, p)| p) {
            pending.deadline += by;
        }
    }

    /// The earliest deadline of an unsettled query.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.queue
            .iter()
            .map(|(_, p)| p)
            .find(|p| p.done.is_none())
            .map(|p| p.deadline)
    }

    /// The next settled query in [`Release`] order: with `InOrder` the
    /// oldest query once it is settled, with `AsSettled` the one settled
    /// first.
    pub fn pop_ready(&mut self) -> Option<Settled<A, T>> {
        let seq = match self.release {
            Release::InOrder => {
                let (seq, oldest) = self.queue.first()?;
                oldest.done.as_ref()?;
                seq
            }
            Release::AsSettled => self.ready.pop_front()?,
        };
        let pending = self.queue.remove(seq)?;
        if let Some(key) = &pending.key
            && let Some(seqs) = self.by_key.get_mut(key)
        {
            // Near the front: queries for one key mostly leave oldest first.
            if let Some(at) = seqs.iter().position(|&s| s == seq) {
                seqs.remove(at);
            }
            if seqs.is_empty() {
                self.by_key.remove(key);
            }
        }
        let (outcome, answer, took) = pending.done?;
        Some(Settled {
            name: pending.name,
            outcome,
            answer,
            took,
            tag: pending.tag,
            trace: None,
        })
    }

    /// The name of query `seq` while it is unsettled.
    pub fn unsettled_name(&self, seq: u64) -> Option<&str> {
        let flight = self.get(seq)?;
        flight.done.is_none().then_some(flight.name.as_str())
    }

    /// Gives up TS `from` for unsettled query `seq` and asks TS `to`
    /// instead: the query settles on the first answer of either, as a miss
    /// once `to` (and every other TS asked) has said so. A reply from
    /// `from` still belongs to this query, never to another. Returns
    /// whether the query was unsettled.
    pub fn fail_over(&mut self, seq: u64, from: usize, to: usize) -> bool {
        let Some(flight) = self.queue.get_mut(seq) else {
            return false;
        };
        if flight.done.is_some() {
            return false;
        }
        flight.abandoned |= 1 << from;
        flight.asked |= 1 << to;
        true
    }

    /// The tags of every query in flight, settled or not, oldest first.
    pub fn tags(&self) -> impl Iterator<Item = &T> {
        self.queue.iter().map(|(_, flight)| &flight.tag)
    }

    /// Empties the queue; returns how many queries it held, settled or not.
    pub fn clear(&mut self) -> usize {
        let count = self.queue.len();
        self.queue.clear();
        self.by_key.clear();
        self.ready.clear();
        count
    }

    fn get(&self, seq: u64) -> Option<&Flight<A, T>> {
        self.queue.get(seq)
    }

    fn settle_if_nobody_left(&mut self, seq: u64, now: Instant) {
        let Some(pending) = self.queue.get(seq) else {
            return;
        };
        if pending.done.is_none() && pending.waiting_on() & !pending.abandoned == 0 {
            let outcome = if pending.denied != 0 {
                Outcome::NotFound
            } else if pending.failed != 0 {
                Outcome::Failed
            } else if pending.refused != 0 {
                Outcome::Refused
            } else {
                Outcome::AllDown
            };
            let negative = self
                .queue
                .get_mut(seq)
                .and_then(|pending| pending.negative.take());
            self.settle(
                seq,
                outcome,
                negative.filter(|_| outcome == Outcome::NotFound),
                now,
            );
        }
    }

    /// Settles query `seq` (in flight and not settled yet).
    fn settle(&mut self, seq: u64, outcome: Outcome, answer: Option<A>, now: Instant) {
        let Some(pending) = self.queue.get_mut(seq) else {
            return;
        };
        let miss = matches!(
            outcome,
            Outcome::TimedOut
                | Outcome::NotFound
                | Outcome::AllDown
                | Outcome::Refused
                | Outcome::Failed
        );
        let (outcome, answer) = if miss && pending.starved != 0 {
            (Outcome::Busy, None)
        } else {
            (outcome, answer)
        };
        let took = now.saturating_duration_since(pending.started);
        pending.done = Some((outcome, answer, took));
        if self.release == Release::AsSettled {
            self.ready.push_back(seq);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TS1: usize = 0;
    const TS2: usize = 1;
    const BOTH: u64 = 0b11;
    const TIMEOUT: Duration = Duration::from_secs(5);

    fn setup() -> (InFlight<&'static str>, Instant) {
        (InFlight::new(TIMEOUT, Release::InOrder), Instant::now())
    }

    fn outcomes(inflight: &mut InFlight<&'static str>) -> Vec<(Outcome, Option<&'static str>)> {
        std::iter::from_fn(|| inflight.pop_ready())
            .map(|s| (s.outcome, s.answer))
            .collect()
    }

    #[test]
    fn first_answer_settles_and_a_second_is_dropped() {
        let (mut f, t) = setup();
        let seq = f.submit("a.com", "a.com", BOTH, 0, (), t);
        assert_eq!(
            f.reply(TS2, "a.com", Said::Answer("a2"), t),
            Fit::Answered(seq)
        );
        assert_eq!(f.reply(TS1, "a.com", Said::Answer("a1"), t), Fit::Second);
        let settled = f.pop_ready().unwrap();
        assert_eq!(
            (settled.outcome, settled.answer),
            (Outcome::Answered { ts: TS2 }, Some("a2"))
        );
    }

    #[test]
    fn a_late_reply_is_not_taken_for_the_next_query() {
        let (mut f, t) = setup();
        f.submit("a.com", "a.com", BOTH, 0, (), t);
        assert_eq!(f.expire(t + TIMEOUT), BOTH);
        assert_eq!(outcomes(&mut f), [(Outcome::TimedOut, None)]);
        // A new query for another name, then the old answer arrives.
        f.submit("b.com", "b.com", BOTH, 0, (), t + TIMEOUT);
        assert_eq!(
            f.reply(TS1, "a.com", Said::Answer("late"), t + TIMEOUT),
            Fit::Unmatched
        );
        assert!(f.pop_ready().is_none(), "b.com is still waiting");
    }

    #[test]
    fn a_late_reply_for_a_name_asked_again_goes_to_the_older_query_only() {
        let (mut f, t) = setup();
        let old = f.submit("a.com", "a.com", 1 << TS1, 0, (), t);
        f.expire(t + TIMEOUT);
        // The same name asked again before the old query left the queue.
        let new = f.submit("A.com", "a.com", 1 << TS1, 0, (), t + TIMEOUT);
        // TS1 answers in order: its first reply is the old query's.
        assert_eq!(
            f.reply(TS1, "a.com", Said::Answer("1"), t + TIMEOUT),
            Fit::Second
        );
        assert_eq!(
            f.reply(TS1, "a.com", Said::Answer("2"), t + TIMEOUT),
            Fit::Answered(new)
        );
        assert!(old < new);
        assert_eq!(
            outcomes(&mut f),
            [
                (Outcome::TimedOut, None),
                (Outcome::Answered { ts: TS1 }, Some("2"))
            ]
        );
    }

    #[test]
    fn duplicate_names_in_flight_are_matched_oldest_first_per_ts() {
        let (mut f, t) = setup();
        let first = f.submit("x.com", "x.com", BOTH, 0, (), t);
        let second = f.submit("x.com", "x.com", BOTH, 0, (), t);
        assert_eq!(f.reply(TS1, "x.com", Said::NotFound, t), Fit::Denied(first));
        // TS2 answers its first copy; TS1's next reply is for the second.
        assert_eq!(
            f.reply(TS2, "x.com", Said::Answer("2a"), t),
            Fit::Answered(first)
        );
        assert_eq!(
            f.reply(TS1, "x.com", Said::Answer("1b"), t),
            Fit::Answered(second)
        );
        assert_eq!(
            outcomes(&mut f),
            [
                (Outcome::Answered { ts: TS2 }, Some("2a")),
                (Outcome::Answered { ts: TS1 }, Some("1b"))
            ]
        );
    }

    #[test]
    fn all_negative_is_a_miss_at_once() {
        let (mut f, t) = setup();
        f.submit("a.com", "a.com", BOTH, 0, (), t);
        f.reply(TS1, "a.com", Said::NotFound, t);
        assert!(f.pop_ready().is_none(), "TS2 has not said yet");
        f.reply(TS2, "a.com", Said::NotFound, t);
        assert_eq!(outcomes(&mut f), [(Outcome::NotFound, None)]);
        assert_eq!(f.next_deadline(), None);
    }

    #[test]
    fn a_not_found_after_the_answer_left_is_stale() {
        let (mut f, t) = setup();
        f.submit("a.com", "a.com", BOTH, 0, (), t);
        f.reply(TS1, "a.com", Said::Answer("a"), t);
        f.pop_ready().unwrap();
        assert_eq!(f.reply(TS2, "a.com", Said::NotFound, t), Fit::Stale);
    }

    #[test]
    fn one_ts_down_leaves_the_other_to_decide() {
        let (mut f, t) = setup();
        f.submit("a.com", "a.com", BOTH, 0, (), t);
        f.reply(TS2, "a.com", Said::NotFound, t);
        f.forget_ts(TS1, t);
        assert_eq!(outcomes(&mut f), [(Outcome::NotFound, None)]);
        // Nobody said anything and both went: every TS is down.
        f.submit("b.com", "b.com", BOTH, 0, (), t);
        f.forget_ts(TS1, t);
        assert!(f.pop_ready().is_none());
        f.forget_ts(TS2, t);
        assert_eq!(outcomes(&mut f), [(Outcome::AllDown, None)]);
    }

    #[test]
    fn asked_of_nobody_is_settled_at_submission() {
        let (mut f, t) = setup();
        f.submit("a.com", "a.com", 0, 0, (), t);
        assert_eq!(outcomes(&mut f), [(Outcome::AllDown, None)]);
        f.submit("b.com", "b.com", 0, 1 << TS2, (), t);
        assert_eq!(outcomes(&mut f), [(Outcome::Busy, None)]);
    }

    #[test]
    fn a_ts_lost_for_want_of_resources_turns_a_miss_into_busy() {
        let (mut f, t) = setup();
        f.submit("a.com", "a.com", BOTH, 0, (), t);
        f.starve_ts(TS1, t);
        f.expire(t + TIMEOUT);
        assert_eq!(outcomes(&mut f), [(Outcome::Busy, None)]);
        // An answer from the other TS is still an answer.
        f.submit("b.com", "b.com", BOTH, 0, (), t);
        f.starve_ts(TS1, t);
        f.reply(TS2, "b.com", Said::Answer("b"), t);
        assert_eq!(
            outcomes(&mut f),
            [(Outcome::Answered { ts: TS2 }, Some("b"))]
        );
    }

    #[test]
    fn deadlines_fire_in_order_and_only_when_due() {
        let (mut f, t) = setup();
        f.submit("a.com", "a.com", BOTH, 0, (), t);
        f.submit(
            "b.com",
            "b.com",
            1 << TS2,
            0,
            (),
            t + Duration::from_secs(1),
        );
        assert_eq!(f.next_deadline(), Some(t + TIMEOUT));
        assert_eq!(f.expire(t + TIMEOUT - Duration::from_millis(1)), 0);
        assert_eq!(f.expire(t + TIMEOUT), BOTH);
        assert_eq!(f.next_deadline(), Some(t + Duration::from_secs(6)));
        assert_eq!(f.expire(t + Duration::from_secs(6)), 1 << TS2);
        assert_eq!(outcomes(&mut f).len(), 2);
    }

    #[test]
    fn postponed_deadlines_let_a_reply_that_came_in_time_win() {
        let (mut f, t) = setup();
        let seq = f.submit("a.com", "a.com", BOTH, 0, (), t);
        // The session could not listen for 3 s.
        f.postpone(Duration::from_secs(3));
        assert_eq!(f.expire(t + TIMEOUT), 0);
        assert_eq!(
            f.reply(TS1, "a.com", Said::Answer("a"), t + TIMEOUT),
            Fit::Answered(seq)
        );
        assert_eq!(
            f.pop_ready().unwrap().outcome,
            Outcome::Answered { ts: TS1 }
        );
    }

    #[test]
    fn replies_leave_in_submission_order() {
        let (mut f, t) = setup();
        f.submit("slow.com", "slow.com", BOTH, 0, (), t);
        f.submit_settled("", Outcome::Invalid, "- Error:EMPTY QUERY", (), t);
        f.submit("fast.com", "fast.com", BOTH, 0, (), t);
        f.reply(TS1, "fast.com", Said::Answer("fast"), t);
        assert!(f.pop_ready().is_none(), "the oldest is not settled");
        f.reply(TS2, "slow.com", Said::Answer("slow"), t);
        assert_eq!(
            outcomes(&mut f),
            [
                (Outcome::Answered { ts: TS2 }, Some("slow")),
                (Outcome::Invalid, Some("- Error:EMPTY QUERY")),
                (Outcome::Answered { ts: TS1 }, Some("fast")),
            ]
        );
        assert!(f.is_empty());
    }

    fn as_settled() -> (InFlight<&'static str>, Instant) {
        (InFlight::new(TIMEOUT, Release::AsSettled), Instant::now())
    }

    #[test]
    fn as_settled_a_reply_leaves_before_older_unsettled_queries() {
        let (mut f, t) = as_settled();
        let slow = f.submit("slow.com", "slow.com", BOTH, 0, (), t);
        f.submit_settled("", Outcome::Invalid, "bad", (), t);
        let fast = f.submit("fast.com", "fast.com", BOTH, 0, (), t);
        f.reply(TS1, "fast.com", Said::Answer("fast"), t);
        // Settled first, out first; the slow query still waits.
        assert_eq!(
            outcomes(&mut f),
            [
                (Outcome::Invalid, Some("bad")),
                (Outcome::Answered { ts: TS1 }, Some("fast")),
            ]
        );
        assert_eq!(f.len(), 1);
        assert!(f.is_waiting(slow) && !f.is_waiting(fast));
        assert_eq!(f.next_deadline(), Some(t + TIMEOUT));
        f.reply(TS2, "slow.com", Said::Answer("slow"), t);
        assert_eq!(
            outcomes(&mut f),
            [(Outcome::Answered { ts: TS2 }, Some("slow"))]
        );
        assert!(f.is_empty());
    }

    #[test]
    fn as_settled_the_holes_behind_a_slow_query_go_when_it_does() {
        let (mut f, t) = as_settled();
        let slow = f.submit("slow.com", "slow.com", BOTH, 0, (), t);
        for _ in 0..100 {
            f.submit_settled("", Outcome::Cached, "hit", (), t);
        }
        assert_eq!(outcomes(&mut f).len(), 100);
        assert_eq!((f.len(), f.queue.slots.len()), (1, 101));
        assert_eq!(f.tag(slow), Some(&()));
        f.expire(t + TIMEOUT);
        assert_eq!(outcomes(&mut f), [(Outcome::TimedOut, None)]);
        assert_eq!((f.len(), f.queue.slots.len()), (0, 0));
        assert_eq!(f.next_seq(), 101);
    }

    #[test]
    fn as_settled_queries_leave_in_the_order_they_were_settled() {
        let (mut f, t) = as_settled();
        f.submit("a.com", "a.com", BOTH, 0, (), t);
        f.submit("b.com", "b.com", BOTH, 0, (), t);
        f.submit(
            "c.com",
            "c.com",
            1 << TS1,
            0,
            (),
            t + Duration::from_secs(1),
        );
        f.reply(TS1, "b.com", Said::NotFound, t);
        f.reply(TS2, "b.com", Said::NotFound, t);
        f.reply(TS2, "a.com", Said::Answer("a"), t);
        // The deadline of a.com's and b.com's age passes; c.com is younger.
        f.expire(t + TIMEOUT);
        assert_eq!(
            outcomes(&mut f),
            [
                (Outcome::NotFound, None),
                (Outcome::Answered { ts: TS2 }, Some("a")),
            ]
        );
        assert_eq!(f.expire(t + Duration::from_secs(6)), 1 << TS1);
        assert_eq!(outcomes(&mut f), [(Outcome::TimedOut, None)]);
        assert!(f.is_empty());
    }

    #[test]
    fn as_settled_a_popped_query_leaves_the_matching() {
        let (mut f, t) = as_settled();
        let first = f.submit("x.com", "x.com", BOTH, 0, (), t);
        let second = f.submit("x.com", "x.com", BOTH, 0, (), t);
        f.reply(TS1, "x.com", Said::Answer("1a"), t);
        assert_eq!(f.pop_ready().map(|s| s.answer), Some(Some("1a")));
        // TS2's answer to the first copy goes to the second: the same name.
        assert_eq!(
            f.reply(TS2, "x.com", Said::Answer("2a"), t),
            Fit::Answered(second)
        );
        assert!(first < second);
        assert_eq!(
            outcomes(&mut f),
            [(Outcome::Answered { ts: TS2 }, Some("2a"))]
        );
        assert_eq!(f.reply(TS1, "x.com", Said::Answer("1b"), t), Fit::Unmatched);
    }

    #[test]
    fn as_settled_a_reply_by_id_and_a_ts_gone_settle_out_of_order() {
        let (mut f, t) = as_settled();
        let first = f.submit("a.com", "a.com", 1 << TS1, 0, (), t);
        let second = f.submit("b.com", "b.com", 1 << TS2, 0, (), t);
        let third = f.submit("c.com", "c.com", 1 << TS1, 0, (), t);
        f.reply_to(third, TS1, Said::Answer("c"), t);
        f.forget_ts(TS2, t);
        assert_eq!(
            outcomes(&mut f),
            [
                (Outcome::Answered { ts: TS1 }, Some("c")),
                (Outcome::AllDown, None)
            ]
        );
        assert!(f.is_waiting(first) && !f.is_waiting(second));
        assert_eq!(f.asked_of(TS1), [first]);
        // Closing counts what is left, settled or not.
        f.reply_to(first, TS1, Said::Answer("a"), t);
        f.submit("d.com", "d.com", BOTH, 0, (), t);
        assert_eq!(f.clear(), 2);
        assert!(f.pop_ready().is_none());
        assert_eq!(f.next_seq(), 4);
    }

    #[test]
    fn refusals_and_not_found() {
        let (mut f, t) = setup();
        f.submit("a.com", "a.com", BOTH, 0, (), t);
        f.reply(TS1, "a.com", Said::Refused, t);
        f.reply(TS2, "a.com", Said::Refused, t);
        // Every TS refused: refused.
        f.submit("b.com", "b.com", BOTH, 0, (), t);
        f.reply(TS1, "b.com", Said::Refused, t);
        f.reply(TS2, "b.com", Said::NotFound, t);
        // One said NOT FOUND, the other refused: not found.
        f.submit("c.com", "c.com", BOTH, 0, (), t);
        f.reply(TS1, "c.com", Said::Refused, t);
        f.reply(TS2, "c.com", Said::Answer("c"), t);
        // The first positive answer wins over a refusal.
        assert_eq!(
            outcomes(&mut f),
            [
                (Outcome::Refused, None),
                (Outcome::NotFound, None),
                (Outcome::Answered { ts: TS2 }, Some("c"))
            ]
        );
    }

    #[test]
    fn a_miss_carries_the_first_negative_answer_and_says_who_was_heard() {
        let (mut f, t) = setup();
        let nx = f.submit("a.com", "a.com", BOTH, 0, (), t);
        f.reply(TS1, "a.com", Said::Negative("nx1"), t);
        assert_eq!(f.settled(nx), None, "TS2 may still answer");
        f.reply(TS2, "a.com", Said::Negative("nx2"), t);
        assert_eq!(f.settled(nx), Some((Outcome::NotFound, Some(&"nx1"), BOTH)));
        // A refusal is heard; a TS that went down is not.
        let refused = f.submit("b.com", "b.com", BOTH, 0, (), t);
        f.reply(TS1, "b.com", Said::Refused, t);
        f.reply(TS2, "b.com", Said::Negative("nx"), t);
        assert_eq!(
            f.settled(refused),
            Some((Outcome::NotFound, Some(&"nx"), BOTH))
        );
        let down = f.submit("c.com", "c.com", BOTH, 0, (), t);
        f.reply(TS2, "c.com", Said::Negative("nx"), t);
        f.forget_ts(TS1, t);
        assert_eq!(
            f.settled(down),
            Some((Outcome::NotFound, Some(&"nx"), 1 << TS2))
        );
        // Not asked at all (down before the query), or failing: not heard.
        let unasked = f.submit("d.com", "d.com", 1 << TS2, 0, (), t);
        f.reply(TS2, "d.com", Said::NotFound, t);
        assert_eq!(
            f.settled(unasked),
            Some((Outcome::NotFound, None, 1 << TS2))
        );
        let failed = f.submit("e.com", "e.com", BOTH, 0, (), t);
        f.reply(TS1, "e.com", Said::Failed, t);
        f.reply(TS2, "e.com", Said::NotFound, t);
        assert_eq!(f.settled(failed), Some((Outcome::NotFound, None, 1 << TS2)));
        // A miss the LS could not be sure of carries no answer.
        let busy = f.submit("f.com", "f.com", 1 << TS2, 1 << TS1, (), t);
        f.reply(TS2, "f.com", Said::Negative("nx"), t);
        assert_eq!(f.settled(busy), Some((Outcome::Busy, None, 1 << TS2)));
        // Named cache answers keep their name.
        f.submit_settled("g.com", Outcome::CachedMiss, "nx", (), t);
        let names: Vec<String> = std::iter::from_fn(|| f.pop_ready())
            .map(|s| s.name)
            .collect();
        assert_eq!(
            names,
            [
                "a.com", "b.com", "c.com", "d.com", "e.com", "f.com", "g.com"
            ]
        );
    }

    #[test]
    fn a_failure_is_servfail_unless_another_ts_knows_better() {
        let (mut f, t) = setup();
        f.submit("a.com", "a.com", BOTH, 0, (), t);
        f.reply(TS1, "a.com", Said::Failed, t);
        f.reply(TS2, "a.com", Said::Refused, t);
        f.submit("b.com", "b.com", BOTH, 0, (), t);
        f.reply(TS1, "b.com", Said::Failed, t);
        f.reply(TS2, "b.com", Said::NotFound, t);
        assert_eq!(
            outcomes(&mut f),
            [(Outcome::Failed, None), (Outcome::NotFound, None)]
        );
    }

    #[test]
    fn a_reply_matched_by_id_goes_to_its_own_query() {
        let (mut f, t) = setup();
        let first = f.submit("a.com", "a.com", BOTH, 0, (), t);
        let second = f.submit("a.com", "a.com", BOTH, 0, (), t);
        // Out of order: TS1 answers the second copy first.
        assert_eq!(
            f.reply_to(second, TS1, Said::Answer("2"), t),
            Fit::Answered(second)
        );
        assert_eq!(
            f.reply_to(second, TS1, Said::Answer("2"), t),
            Fit::Unmatched
        );
        assert_eq!(
            f.reply_to(first, TS1, Said::Answer("1"), t),
            Fit::Answered(first)
        );
        assert_eq!(outcomes(&mut f).len(), 2);
    }

    #[test]
    fn tags_come_back_with_their_queries() {
        let mut f: InFlight<&str, u16> = InFlight::new(TIMEOUT, Release::InOrder);
        let t = Instant::now();
        f.submit("a.com", "a.com", BOTH, 0, 7, t);
        f.submit_settled("", Outcome::Invalid, "bad", 9, t);
        f.reply(TS1, "a.com", Said::Answer("a"), t);
        let tags: Vec<u16> = std::iter::from_fn(|| f.pop_ready())
            .map(|s| s.tag)
            .collect();
        assert_eq!(tags, [7, 9]);
    }

    #[test]
    fn a_query_settled_before_its_send_is_not_sent() {
        let (mut f, t) = setup();
        let seq = f.submit("a.com", "a.com", BOTH, 0, (), t);
        assert_eq!(f.waiting_for(seq, TS1), Some("a.com"));
        assert_eq!(f.asked_of(TS1), [seq]);
        f.reply(TS2, "a.com", Said::Answer("a"), t);
        assert_eq!(f.waiting_for(seq, TS1), None);
        assert!(f.asked_of(TS1).is_empty());
    }
}
