//! What wakes a session's worker: the one channel it waits on carries the
//! news of its link threads and of its client reader.

use std::io;
use std::time::Instant;

use crate::framing::Frame;

/// One piece of news for the worker. `generation` tells a link's events
/// apart from those of the link it replaced.
pub enum Event {
    /// A link's connection is up; its writing half is in the link's handle.
    Connected { ts: usize, generation: u64 },
    /// TS `ts` sent a message; `read_at`: when it was read, if the LS
    /// traces (`--trace`).
    Reply {
        ts: usize,
        generation: u64,
        frame: Frame,
        read_at: Option<Instant>,
    },
    /// A link's connection could not be made, or ended.
    Down {
        ts: usize,
        generation: u64,
        why: String,
    },
    /// The TS closed a link's connection (an idle connection closed, a TS
    /// restarted or stopped): the session judges whether that is a fault.
    Closed { ts: usize, generation: u64 },
    /// A link's connection could not be made for want of the LS's own
    /// descriptors or memory: no news about the TS.
    Starved {
        ts: usize,
        generation: u64,
        why: String,
    },
    /// The client reader submitted something the worker must act on now: a
    /// reply ready at once, or a query held back for a bare TS.
    Submitted,
    /// The client closed its sending side: no more queries.
    ClientClosed,
    /// Reading the client failed (a reset, say): nobody is left to answer.
    ClientFailed(io::Error),
}
