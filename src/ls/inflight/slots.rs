//! The queue that holds a session's queries in flight by sequence number.

use std::collections::VecDeque;

/// The queries in flight by sequence number, oldest first: a queue in
/// which a query that leaves before older ones leaves a hole (one pointer)
/// until they have left too, so that finding a query is an index. The
/// oldest slot is never a hole. Holes exist only with
/// [`Release::AsSettled`](super::Release::AsSettled): at most one per query submitted since the oldest
/// one in flight, which leaves by its deadline.
pub(super) struct Slots<P> {
    /// The sequence number of `slots[0]`.
    first: u64,
    pub(super) slots: VecDeque<Option<Box<P>>>,
    /// Slots that are not holes.
    live: usize,
}

impl<P> Slots<P> {
    pub(super) fn new() -> Slots<P> {
        Slots {
            first: 0,
            slots: VecDeque::new(),
            live: 0,
        }
    }

    pub(super) fn next_seq(&self) -> u64 {
        self.first + self.slots.len() as u64
    }

    pub(super) fn len(&self) -> usize {
        self.live
    }

    /// Adds `p` at the end; returns its sequence number.
    pub(super) fn push(&mut self, p: P) -> u64 {
        let seq = self.next_seq();
        self.slots.push_back(Some(Box::new(p)));
        self.live += 1;
        seq
    }

    pub(super) fn index(&self, seq: u64) -> Option<usize> {
        let index = usize::try_from(seq.checked_sub(self.first)?).ok()?;
        (index < self.slots.len()).then_some(index)
    }

    pub(super) fn get(&self, seq: u64) -> Option<&P> {
        self.slots.get(self.index(seq)?)?.as_deref()
    }

    pub(super) fn get_mut(&mut self, seq: u64) -> Option<&mut P> {
        let index = self.index(seq)?;
        self.slots.get_mut(index)?.as_deref_mut()
    }

    /// The oldest.
    pub(super) fn first(&self) -> Option<(u64, &P)> {
        Some((self.first, self.slots.front()?.as_deref()?))
    }

    /// Takes `seq` out, leaving a hole, and drops the holes at the front.
    pub(super) fn remove(&mut self, seq: u64) -> Option<P> {
        let index = self.index(seq)?;
        let p = self.slots[index].take()?;
        self.live -= 1;
        while self.slots.front().is_some_and(Option::is_none) {
            self.slots.pop_front();
            self.first += 1;
        }
        Some(*p)
    }

    /// Every one, oldest first, with its sequence number.
    pub(super) fn iter(&self) -> impl Iterator<Item = (u64, &P)> {
        let first = self.first;
        (first..)
            .zip(&self.slots)
            .filter_map(|(seq, p)| Some((seq, p.as_deref()?)))
    }

    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = (u64, &mut P)> {
        let first = self.first;
        (first..)
            .zip(&mut self.slots)
            .filter_map(|(seq, p)| Some((seq, p.as_deref_mut()?)))
    }

    /// Empties it; returns how many it held.
    pub(super) fn clear(&mut self) -> usize {
        self.first = self.next_seq();
        self.slots.clear();
        std::mem::take(&mut self.live)
    }
}
