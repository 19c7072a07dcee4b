//! Driving the server: one thread per client with its own connection, all
//! started together; a writer thread per client when pipelined, paced by a
//! credit [`window`](crate::window), while the client's thread reads the
//! replies in order and hands each to its `Tally`.

use std::io::Write;
use std::net::{Shutdown as Direction, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::judge::{Read, Tally};
use super::names::Workload;
use super::report::start_progress;
use super::{BenchOptions, list};
use crate::framing::{Frame, Framing, MessageReader, is_timeout};
use crate::net::connect_any;
use crate::window::{self, Credits};

/// How long a client waits for the server to accept its connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest reply kept; longer ones are wrong.
const MAX_REPLY_LEN: usize = 4096;

/// Client threads only format names and parse replies; they need little stack.
const CLIENT_STACK: usize = 128 * 1024;

/// Runs `options.clients` clients against the server at `addrs` (the first
/// that accepts), each sending `workload`'s queries; returns what they all
/// counted and how long the run took, from the moment every client was
/// connected to the last reply.
pub(super) fn clients(
    addrs: &[SocketAddr],
    workload: &Arc<Workload>,
    options: &BenchOptions,
) -> (Tally, Duration) {
    let progress = Arc::new(AtomicU64::new(0));
    // Every client connects and reports ready; all start together with the
    // clock when `go` is dropped.
    let (ready_tx, ready) = crossbeam_channel::unbounded::<()>();
    let (go, go_rx) = crossbeam_channel::bounded::<()>(0);
    let mut clients = Vec::with_capacity(options.clients);
    let mut tally = Tally::default();
    for c in 0..options.clients {
        let (workload, progress) = (Arc::clone(workload), Arc::clone(&progress));
        let (ready_tx, go_rx) = (ready_tx.clone(), go_rx.clone());
        let (addrs, options) = (addrs.to_vec(), options.clone());
        let spawned = thread::Builder::new()
            .name(format!("bench client {c}"))
            .stack_size(CLIENT_STACK)
            .spawn(move || {
                let stream = connect_any(&addrs, CONNECT_TIMEOUT);
                let _ = ready_tx.send(());
                let _ = go_rx.recv();
                let mut tally = Tally::for_queries(options.queries);
                match stream {
                    Ok(stream) => drive(c, stream, &workload, &options, &progress, &mut tally),
                    Err(e) => tally.failures.push(format!(
                        "client {c}: cannot connect to {}: {e}",
                        list(&addrs)
                    )),
                }
                tally
            });
        match spawned {
            Ok(handle) => clients.push(handle),
            Err(e) => tally
                .failures
                .push(format!("cannot start client thread {c}: {e}")),
        }
    }
    drop(ready_tx);
    for _ in 0..clients.len() {
        if ready.recv().is_err() {
            break;
        }
    }
    let started = Instant::now();
    drop(go);
    let ticker = options
        .progress
        .then(|| start_progress(Arc::clone(&progress), started, options));
    for handle in clients {
        match handle.join() {
            Ok(client) => tally.merge(client),
            Err(_) => tally.failures.push("a client thread panicked".to_string()),
        }
    }
    let elapsed = started.elapsed();
    if let Some((stop, thread)) = ticker {
        drop(stop);
        let _ = thread.join();
    }
    (tally, elapsed)
}

/// One client's run on its connection.
fn drive(
    c: usize,
    stream: TcpStream,
    workload: &Arc<Workload>,
    options: &BenchOptions,
    progress: &Arc<AtomicU64>,
    tally: &mut Tally,
) {
    let reader = stream
        .set_nodelay(true)
        .and_then(|()| stream.set_read_timeout(Some(options.reply_timeout)))
        .and_then(|()| stream.try_clone());
    let reader = match reader {
        Ok(clone) => MessageReader::new(clone, options.framing, MAX_REPLY_LEN),
        Err(e) => {
            tally
                .failures
                .push(format!("client {c}: cannot set up its connection: {e}"));
            return;
        }
    };
    if options.pipeline <= 1 || options.framing == Framing::Bare {
        one_at_a_time(c, stream, reader, workload, options, progress, tally);
    } else {
        pipelined(c, stream, reader, workload, options, progress, tally);
    }
}

fn read_reply(reader: &mut MessageReader, options: &BenchOptions) -> Read {
    match reader.next_frame() {
        Ok(Some(Frame::Message(bytes))) => Read::Reply(bytes),
        // Over the limit: certainly not a reply to a hostname query.
        Ok(Some(Frame::TooLong)) => Read::Reply(b"(over-long reply)".to_vec()),
        Ok(None) => Read::Lost("the server closed the connection".to_string()),
        Err(e) if is_timeout(&e) => Read::TimedOut,
        Err(e) => Read::Lost(format!(
            "reading a reply failed: {e} (reply timeout {:?})",
            options.reply_timeout
        )),
    }
}

/// The reply to `asked`, skipping late replies to queries that timed out.
fn next_reply(
    reader: &mut MessageReader,
    options: &BenchOptions,
    asked: &str,
    tally: &mut Tally,
) -> Read {
    loop {
        match read_reply(reader, options) {
            Read::Reply(reply) if tally.take_late(asked, &reply) => {}
            other => return other,
        }
    }
}

/// Send a query, wait for its reply, repeat.
fn one_at_a_time(
    c: usize,
    mut stream: TcpStream,
    mut reader: MessageReader,
    workload: &Workload,
    options: &BenchOptions,
    progress: &AtomicU64,
    tally: &mut Tally,
) {
    let mut message = Vec::with_capacity(64);
    for j in 0..options.queries {
        let (name, expect) = workload.query(c, j);
        message.clear();
        message.extend_from_slice(name.as_bytes());
        if options.framing != Framing::Bare {
            message.push(b'\n');
        }
        let sent = Instant::now();
        if let Err(e) = stream.write_all(&message) {
            tally
                .failures
                .push(format!("client {c}: sending query {} failed: {e}", j + 1));
            return;
        }
        let read = next_reply(&mut reader, options, &name, tally);
        if !tally.judge(read, c, &name, expect, sent) {
            return;
        }
        progress.fetch_add(1, Ordering::Relaxed);
    }
}

/// A writer thread keeps up to `pipeline` queries outstanding; this thread
/// reads the replies, in query order, and returns a credit for each.
fn pipelined(
    c: usize,
    stream: TcpStream,
    mut reader: MessageReader,
    workload: &Arc<Workload>,
    options: &BenchOptions,
    progress: &AtomicU64,
    tally: &mut Tally,
) {
    let (credits, returns) = window::open(options.pipeline);
    // Bounded by the window: at most `pipeline` queries are ever outstanding.
    let (sent_tx, sent_rx) = crossbeam_channel::unbounded::<(usize, Instant)>();
    let writer = stream
        .try_clone()
        .map_err(|e| format!("client {c}: cannot set up its connection: {e}"))
        .and_then(|writer_stream| {
            let workload = Arc::clone(workload);
            let queries = options.queries;
            thread::Builder::new()
                .name(format!("bench writer {c}"))
                .stack_size(CLIENT_STACK)
                .spawn(move || {
                    write_queries(c, writer_stream, &workload, queries, &credits, &sent_tx)
                })
                .map_err(|e| format!("client {c}: cannot start its writer thread: {e}"))
        });
    let writer = match writer {
        Ok(handle) => handle,
        Err(why) => {
            tally.failures.push(why);
            return;
        }
    };
    // Ends when the writer has sent everything and every reply was read.
    while let Ok((j, sent)) = sent_rx.recv() {
        let (name, expect) = workload.query(c, j);
        let read = next_reply(&mut reader, options, &name, tally);
        if !tally.judge(read, c, &name, expect, sent) {
            break;
        }
        progress.fetch_add(1, Ordering::Relaxed);
        returns.give_back();
    }
    // Ends a writer still blocked on a credit or on a write.
    drop(returns);
    let _ = stream.shutdown(Direction::Both);
    match writer.join() {
        Ok(Ok(())) => {}
        Ok(Err(why)) => tally.failures.push(why),
        Err(_) => tally
            .failures
            .push(format!("client {c}: its writer thread panicked")),
    }
}

/// Writes client `c`'s queries, each once a credit is available, in batches
/// of as many as there are credits; announces each on `sent` before writing it.
fn write_queries(
    c: usize,
    mut stream: TcpStream,
    workload: &Workload,
    queries: usize,
    credits: &Credits,
    sent: &crossbeam_channel::Sender<(usize, Instant)>,
) -> Result<(), String> {
    let mut batch = Vec::with_capacity(4096);
    let mut j = 0;
    while j < queries {
        if !credits.take() {
            // The reader stopped; it reports why.
            return Ok(());
        }
        let mut end = j + 1;
        while end < queries && credits.try_take() {
            end += 1;
        }
        batch.clear();
        let now = Instant::now();
        for k in j..end {
            let (name, _) = workload.query(c, k);
            batch.extend_from_slice(name.as_bytes());
            batch.push(b'\n');
            if sent.send((k, now)).is_err() {
                return Ok(());
            }
        }
        if let Err(e) = stream.write_all(&batch) {
            let _ = stream.shutdown(Direction::Both);
            return Err(format!(
                "client {c}: sending queries {}..{} failed: {e}",
                j + 1,
                end
            ));
        }
        j = end;
    }
    Ok(())
}
