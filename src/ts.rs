//! The top-level server (TS): answers `hostname` queries from its table and
//! stays silent on names it does not hold, as the course spec requires.
//!
//! One thread per connection (see [`crate::server::serve`]); the table is
//! loaded once and shared read-only.

use std::io;
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use crate::framing::{Frame, Framing, MessageReader, write_message};
use crate::log;
use crate::server::{Shutdown, serve};
use crate::table::Table;
use crate::wire::{self, Dialect};

/// How long connections get to finish after shutdown: a TS answers at once.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// How a TS answers.
#[derive(Clone, Copy, Debug)]
pub struct TsOptions {
    /// The answer format.
    pub dialect: Dialect,
    /// How queries are delimited; `Auto` detects per connection.
    pub framing: Framing,
}

impl Default for TsOptions {
    fn default() -> Self {
        TsOptions {
            dialect: Dialect::Y2020,
            framing: Framing::Auto,
        }
    }
}

/// Serves `table` on `listener` until `shutdown` triggers.
///
/// # Errors
/// When the listener's address cannot be read.
pub fn run(
    listener: TcpListener,
    table: Arc<Table>,
    options: TsOptions,
    shutdown: &Shutdown,
) -> io::Result<()> {
    serve(listener, shutdown, "ts", SHUTDOWN_GRACE, move |stream| {
        if let Err(e) = answer_connection(stream, &table, options) {
            log::info(format_args!("ts: connection ended: {e}"));
        }
    })
}

fn answer_connection(stream: TcpStream, table: &Table, options: TsOptions) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut reader =
        MessageReader::new(stream.try_clone()?, options.framing, wire::MAX_MESSAGE_LEN);
    let mut writer = stream;
    while let Some(frame) = reader.next_frame()? {
        let Frame::Message(message) = frame else {
            log::info(format_args!("ts: ignoring an over-long query"));
            continue;
        };
        match wire::parse_query(&message) {
            Ok(query) => match table.lookup_key(&query.key) {
                Some(answer) => {
                    let line = answer.line(options.dialect);
                    log::info(format_args!("ts: {} -> {line}", query.name));
                    write_message(&mut writer, line.as_bytes(), reader.framing())?;
                }
                None => log::info(format_args!(
                    "ts: {} not in table, staying silent",
                    query.name
                )),
            },
            Err(e) => log::info(format_args!("ts: ignoring a query: {e}")),
        }
    }
    Ok(())
}
