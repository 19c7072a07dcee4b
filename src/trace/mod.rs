//! Per-query traces (`dnslb ls ... --trace FILE`): every step of every
//! query the LS serves, one JSON object a line, for drawing one query's
//! path through the LS's threads as a sequence diagram.
//!
//! - `record`: the LS's side: the [`Tracer`] its threads hand steps to
//!   (through a bounded channel, never waiting), the one writer thread
//!   that formats and writes them, and the line format (docs/OBSERVE.md,
//!   "Traces").

pub mod record;

pub use record::{Frontend, Lane, Query, Step, Tracer, step};
