//! The credit window of a pipelined client: at most `W` queries are sent
//! ahead of their replies.
//!
//! The window starts with `W` credits. The sending thread takes one before
//! each query and blocks when none is left; the thread reading the replies
//! gives one back for each reply, in order. Credits held plus queries
//! outstanding is always `W`, so giving one back never blocks. When the
//! reading side ends, dropping its [`Returns`] closes the window and a sender
//! waiting for a credit stops.

use crossbeam_channel::{Receiver, Sender};

/// Opens a window of `size` credits (at least 1): the sender's [`Credits`]
/// and the reader's [`Returns`].
///
/// ```
/// let (credits, returns) = dnslb::window::open(2);
/// assert!(credits.try_take() && credits.try_take());
/// assert!(!credits.try_take(), "two queries outstanding: the window is full");
/// returns.give_back();
/// assert!(credits.take());
/// drop(returns);
/// assert!(!credits.take(), "the reader is gone: the window is closed");
/// ```
pub fn open(size: usize) -> (Credits, Returns) {
    let size = size.max(1);
    let (give, take) = crossbeam_channel::bounded(size);
    for _ in 0..size {
        give.send(()).expect("the channel holds the whole window");
    }
    (Credits(take), Returns(give))
}

/// The sending side of a window.
pub struct Credits(Receiver<()>);

impl Credits {
    /// Takes a credit, waiting for one; false once the window is closed and
    /// no credit is left.
    pub fn take(&self) -> bool {
        self.0.recv().is_ok()
    }

    /// Takes a credit if one is there now.
    pub fn try_take(&self) -> bool {
        self.0.try_recv().is_ok()
    }
}

/// The reading side of a window: gives a credit back per reply; dropping it
/// closes the window.
pub struct Returns(Sender<()>);

impl Returns {
    /// Gives back the credit of one reply. Never blocks: a credit given back
    /// beyond the window's size is dropped.
    pub fn give_back(&self) {
        let _ = self.0.try_send(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_never_holds_more_than_its_size() {
        let (credits, returns) = open(3);
        returns.give_back();
        returns.give_back();
        let taken = std::iter::from_fn(|| credits.try_take().then_some(())).count();
        assert_eq!(taken, 3);
    }

    #[test]
    fn closing_the_window_wakes_a_waiting_sender() {
        let (credits, returns) = open(1);
        assert!(credits.take());
        std::thread::scope(|scope| {
            let waiting = scope.spawn(|| credits.take());
            drop(returns);
            assert!(!waiting.join().unwrap());
        });
    }

    #[test]
    fn a_window_of_zero_is_a_window_of_one() {
        let (credits, _returns) = open(0);
        assert!(credits.try_take());
        assert!(!credits.try_take());
    }
}
