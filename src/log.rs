//! Logging to stderr: warnings always, per-query lines only with `-v`.
//!
//! stdout is kept for what scripts read (`listening on ...`, the client's
//! answers), so everything here goes to stderr, one whole line per call.
//!
//! Rust's test harness captures what `eprint!` prints (in the test's thread
//! and the threads it spawns) and shows it only when the test fails, but not
//! direct writes to `io::stderr()`. `eprint!` panics when stderr is closed,
//! which must not stop a server, so the binary writes directly and tests
//! call [`to_test_harness`] (unit tests do so by default).

use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static VERBOSE: AtomicBool = AtomicBool::new(false);

static TEST_HARNESS: AtomicBool = AtomicBool::new(cfg!(test));

/// Sends every later log line of the process through `eprint!`, so that
/// the test harness keeps each test's lines with its output, shown only
/// when it fails (as env_logger's `is_test`). For tests only: `eprint!`
/// panics on a closed stderr.
pub fn to_test_harness() {
    TEST_HARNESS.store(true, Ordering::Relaxed);
}

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
    if TEST_HARNESS.load(Ordering::Relaxed) {
        eprint!("{text}");
    } else {
        let _ = std::io::stderr().write_all(text.as_bytes());
    }
}
