//! Traces: one line per step of every query (`--trace FILE`), recorded by
//! the LS, read back and drawn as sequence diagrams (`dnslb trace`).
//!
//! - [`record`]: the LS's side: the [`Tracer`] its threads hand steps to
//!   (through a bounded channel, never waiting), the one writer thread
//!   that formats and writes them, and the line format (docs/OBSERVE.md,
//!   "Traces").
//! - [`parse`]: reading a trace file, one JSON object per line.
//! - [`query`]: its events gathered per query, the selection of queries
//!   to show and each one's summary.
//! - [`svg`]: the sequence diagram, SVG 1.1.

pub mod parse;
pub mod query;
pub mod record;
pub mod svg;

pub use record::{Frontend, Lane, Query, Step, Tracer, step};
