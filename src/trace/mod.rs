//! Traces: one line per step of every query (`--trace FILE`), read back
//! and drawn as sequence diagrams (`dnslb trace`).
//!
//! - [`parse`]: reading a trace file, one JSON object per line.
//! - [`query`]: its events gathered per query, the selection of queries
//!   to show and each one's summary.
//! - [`svg`]: the sequence diagram, SVG 1.1.

pub mod parse;
pub mod query;
pub mod svg;
