//! Logging to stderr: warnings always, per-query lines only with `-v`.
//!
//! stdout is kept for what scripts read (`listening on ...`, the client's
//! answers), so everything here goes to stderr, one whole line per call.

use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static VERBOSE: AtomicBool = AtomicBool::new(false);

/// Turns per-query logging on or off for the whole process.
pub fn set_verbose(on: bool) {
    VERBOSE.store(on, Ordering::Relaxed);
}

/// Whether per-query logging is on.
pub fn verbose() -> bool {
    VERBOSE.load(Ordering::Relaxed)
}

/// Logs a line that matters whatever the verbosity: a peer misbehaving, a
/// backend going away.
pub fn warn(args: fmt::Arguments<'_>) {
    line(args);
}

/// Logs a per-query line when `-v` is on.
pub fn info(args: fmt::Arguments<'_>) {
    if verbose() {
        line(args);
    }
}

fn line(args: fmt::Arguments<'_>) {
    // Formatted first, then written whole, so lines from different threads
    // do not interleave. A closed stderr must not stop a server (eprint!
    // would panic), so write errors are ignored.
    let text = format!("dnslb: {args}\n");
    let _ = std::io::stderr().write_all(text.as_bytes());
}
