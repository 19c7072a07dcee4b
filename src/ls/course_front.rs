//! The course protocol's front end: a client connection sends hostnames
//! as lines (or bare messages) and gets one reply line per query, strictly
//! in query order. Its client reader parses each query and asks the cache,
//! then the TSes; its replies turn what the TSes said into course lines.
//! The connection's life around it is `worker.rs`'s.

use std::io::{self, Write};
use std::net::{Shutdown as Direction, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crossbeam_channel::Sender;

use super::decode::Relayed;
use super::event::Event;
use super::inflight::{Outcome, Release, Settled};
use super::session::{Locked, Request, Session};
use super::setup::Shared;
use super::stats::{CourseReply, Frontend, Reply};
use super::worker::{
    Front, Replies, UNANSWERED_COUNT_BOUND, Unserved, count_abandoned, serve_connection,
};
use crate::dns::{self, Question, Record, RecordType};
use crate::framing::{Frame, Framing, MessageReader, write_message};
use crate::log;
use crate::server::Activity;
use crate::shutdown::Shutdown;
use crate::trace;
use crate::wire::{self, Dialect, QueryError};

/// Most queries the client reader submits under one lock.
const READ_BATCH: usize = 64;

/// Serves one course-protocol client connection until the client is done
/// and every query has its reply, or the client is gone or idle. A client
/// that sends DNS instead is closed at once, pointed at `dns_port` (the DNS
/// front end's, if there is one).
///
/// # Errors
/// The client connection's errors; `TimedOut` when it was idle.
pub(super) fn serve_client(
    client: TcpStream,
    activity: Activity,
    shared: &Arc<Shared>,
    dns_port: Option<u16>,
    shutdown: &Shutdown,
) -> io::Result<()> {
    let options = &shared.options;
    let (framing, shutdown) = (options.client_framing, shutdown.clone());
    let peer = client.peer_addr().ok();
    let front = CourseReplies {
        replies: Replies::new(&client, &shared.stats, Frontend::Course, activity.clone())
            .traced(shared.trace.as_ref()),
        shared,
    };
    let served = serve_connection(
        &client,
        shared,
        options.timeout,
        // The course protocol's replies carry no ID: strictly in order.
        Release::InOrder,
        front,
        move |stream, session, events| {
            let mut reader = MessageReader::new(stream, framing, wire::MAX_MESSAGE_LEN);
            match reader.sent_dns_instead("ls", dns_port) {
                Ok(true) => {
                    let s = session.lock();
                    s.count_query();
                    let invalid = Reply::Course(CourseReply::Invalid);
                    s.stats()
                        .count_reply(Frontend::Course, invalid, &Outcome::Invalid);
                    return Event::ClientClosed;
                }
                Ok(false) => {}
                Err(e) => return Event::ClientFailed(e),
            }
            read_client(&mut reader, &session, &activity, &shutdown, &events, peer)
        },
    );
    match served {
        Err(Unserved::NoReader(e)) => {
            refuse(&client, shared, &e);
            Ok(())
        }
        Err(Unserved::Failed(e)) => Err(e),
        Ok(()) => Ok(()),
    }
}

/// Tells a client the LS has no descriptor or thread to serve it with (not
/// a silent close), and counts it as refused rather than accepted.
fn refuse(client: &TcpStream, shared: &Shared, why: &io::Error) {
    let connections = &shared.stats.connections;
    connections.accepted.fetch_sub(1, Ordering::Relaxed);
    connections.refused.fetch_add(1, Ordering::Relaxed);
    log::warn(format_args!("ls: refusing a client: {why}"));
    let mut client = client;
    let _ = client.write_all(format!("{}\n", wire::SERVER_BUSY).as_bytes());
    let _ = client.shutdown(Direction::Both);
}

/// Reads and parses the client's messages and submits each to the session,
/// until the client closes (or the connection fails). Waits for room while
/// the session has its fill of queries in flight, which stops reading the
/// socket. Once the worker has closed the session, what is still read (for
/// at most [`UNANSWERED_COUNT_BOUND`]) is counted as received and abandoned.
fn read_client(
    reader: &mut MessageReader,
    session: &Locked<Framing>,
    activity: &Activity,
    shutdown: &Shutdown,
    events: &Sender<Event>,
    peer: Option<SocketAddr>,
) -> Event {
    let mut batch = Vec::with_capacity(READ_BATCH);
    loop {
        // One read that may block, then the queries it already brought,
        // submitted under one lock (a pipelining client sends hundreds a
        // read).
        let end = loop {
            match next_query(reader, shutdown) {
                Ok(query) => batch.push(query),
                Err(end) => break Some(end),
            }
            if batch.len() == READ_BATCH || !reader.has_buffered_message() {
                break None;
            }
        };
        let mut s = session.lock();
        let mut counted_enough = false;
        for query in batch.drain(..) {
            s = session.wait_for_room(s);
            if let Some(closed) = s.closed_since() {
                count_abandoned(&s);
                counted_enough |= closed.elapsed() >= UNANSWERED_COUNT_BOUND;
                continue;
            }
            activity.received(1);
            if submit_course_query(&mut s, query, reader.framing(), peer) {
                // At once, before waiting for room for the next one. Never
                // blocks under the lock: a full channel already has the
                // worker's attention.
                let _ = events.try_send(Event::Submitted);
            }
        }
        if !reader.has_buffered_message() {
            s.flush_links();
        }
        drop(s);
        if counted_enough {
            return Event::ClientClosed;
        }
        if let Some(end) = end {
            return end;
        }
    }
}

/// The client's next query, or how its stream ended.
fn next_query(
    reader: &mut MessageReader,
    shutdown: &Shutdown,
) -> Result<Result<wire::Query, QueryError>, Event> {
    match reader.next_frame() {
        Ok(Some(Frame::TooLong)) => Ok(Err(QueryError::TooLong)),
        Ok(Some(Frame::Message(_))) if reader.last_was_cut() && shutdown.is_triggered() => {
            // The shutdown cut this line short: it is not a query.
            log::info(format_args!(
                "ls: ignoring a line cut short by the shutdown"
            ));
            Err(Event::ClientClosed)
        }
        Ok(Some(Frame::Message(message))) => Ok(wire::parse_query(&message)),
        Ok(None) => Err(Event::ClientClosed),
        Err(e) => Err(Event::ClientFailed(e)),
    }
}

/// Submits one course-protocol query: from the cache when it holds the
/// answer, else to the TSes; an invalid query's error line in its turn.
/// Its reply is framed as `framing` (the client's, as its reader found it);
/// `peer`: the client, for the trace.
fn submit_course_query(
    s: &mut Session<Framing>,
    query: Result<wire::Query, QueryError>,
    framing: Framing,
    peer: Option<SocketAddr>,
) -> bool {
    let name = query.as_ref().map_or("", |q| q.name.as_str());
    let trace = s
        .tracer()
        .map(|t| t.arrive(name, trace::Frontend::Course, peer));
    let query = match query {
        Ok(query) => query,
        Err(e) => {
            log::info(format_args!("ls: invalid query: {e}"));
            let reply = Relayed::Made(e.reply().into_bytes());
            return s.submit_made(Outcome::Invalid, reply, None, framing, trace);
        }
    };
    // `None` for a hostname the course accepts that DNS cannot carry (over
    // 255 bytes in wire form): asked of course TSes only.
    let question = course_question(&query.name);
    if let Some((hit, question)) = question
        .as_ref()
        .and_then(|q| Some((s.cached(q, &trace)?, q.clone())))
    {
        return s.submit_cached(&query.name, hit, question, framing, trace);
    }
    s.submit(Request {
        name: query.name,
        key: query.key,
        question,
        tag: framing,
        trace,
    })
}

/// The DNS question a course query asks: the name's A records.
fn course_question(name: &str) -> Option<Question> {
    Some(Question {
        name: dns::Name::from_ascii(name).ok()?,
        qtype: RecordType::A,
        qclass: dns::CLASS_IN,
    })
}

/// The course protocol's replies: an answer line, a miss line, an error line,
/// each framed as its query was (the query's tag).
struct CourseReplies<'a> {
    replies: Replies<'a>,
    shared: &'a Shared,
}

impl Front for CourseReplies<'_> {
    type Tag = Framing;
    const FRONTEND: Frontend = Frontend::Course;
    const IDLE_CLOSES: bool = true;

    fn reply(&mut self, settled: Settled<Relayed, Framing>) -> io::Result<()> {
        let framing = settled.tag;
        let dialect = self.shared.options.dialect;
        let miss = || {
            (
                wire::miss_line(&settled.name, dialect),
                CourseReply::NotFound,
            )
        };
        let (line, said) = match settled.answer {
            Some(Relayed::Line(line)) => (line, CourseReply::Answer),
            Some(Relayed::Made(bytes)) => (
                String::from_utf8_lossy(&bytes).into_owned(),
                CourseReply::Invalid,
            ),
            Some(Relayed::Dns(outcome)) => first_address(&outcome, &settled.name, dialect)
                .map_or_else(miss, |line| (line, CourseReply::Answer)),
            Some(Relayed::Wire(relay)) => first_address(&relay.outcome(), &settled.name, dialect)
                .map_or_else(miss, |line| (line, CourseReply::Answer)),
            // The LS could not ask every TS: it cannot say the name is missing.
            None if settled.outcome == Outcome::Busy => {
                (wire::SERVER_BUSY.to_string(), CourseReply::Busy)
            }
            None => miss(),
        };
        self.replies
            .push(settled.outcome, Reply::Course(said), settled.trace, |out| {
                write_message(out, line.as_bytes(), framing)
            })
    }

    fn flush(&mut self) -> io::Result<()> {
        self.replies.flush()
    }
}

/// The course reply for a DNS answer to `name` (as the client spelt it):
/// the answer section's first address, as `name ip A`. The reply names the
/// name asked, spelt as the A record spells it when the record is owned by
/// that name, never the target of a CNAME.
fn first_address(outcome: &dns::Resolution, name: &str, dialect: Dialect) -> Option<String> {
    let dns::Resolution::Answer(sections) = outcome else {
        return None;
    };
    let asked = dns::Name::from_ascii(name).ok();
    sections
        .answers
        .iter()
        .find_map(|record: &Record| match record.data {
            dns::RData::A(ip) => {
                let owned = asked
                    .as_ref()
                    .is_some_and(|a| a.eq_ignore_case(&record.name));
                let name = if owned {
                    record.name.to_string().trim_end_matches('.').to_string()
                } else {
                    name.to_string()
                };
                Some(wire::Found { name, ip }.line(dialect))
            }
            _ => None,
        })
}
