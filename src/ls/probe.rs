//! Active health checks of the pools' members (`--health-interval`): one
//! thread for the whole LS, never on a client's path. Each interval, every
//! member of a pool of several that is down, or has not replied for an
//! interval, gets a probe: a DNS TS a query for `--health-name` (SOA; any
//! response but SERVFAIL counts as alive, as in dnsdist), a course TS a TCP
//! connection. `--health-fails` failed probes in a row mark a member down
//! for the policies; `--health-rise` good ones take it back.

use std::io::{Read, Write};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use super::setup::{Shared, TsProtocol};
use crate::dns::{CLASS_IN, Name, Question, RecordType};
use crate::log;
use crate::net::connect_any;

/// Longest one probe waits (to connect, and for its answer).
const PROBE_BOUND: Duration = Duration::from_secs(1);

/// Starts the health thread when the LS has a pool of several members and
/// `--health-interval` is not 0; it stops when `stop` is dropped.
pub fn spawn(shared: &Arc<Shared>, stop: Receiver<()>) -> Option<JoinHandle<()>> {
    let interval = shared.options.health_interval;
    if interval.is_zero() || !shared.pools.iter().any(|p| p.is_replicated()) {
        return None;
    }
    let shared = Arc::clone(shared);
    thread::Builder::new()
        .name("ls health".into())
        .spawn(move || {
            while let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
                stop.recv_timeout(interval)
            {
                round(&shared, interval);
            }
        })
        .ok()
}

/// Probes every member due for one.
fn round(shared: &Shared, interval: Duration) {
    let now = Instant::now();
    let bound = interval.min(PROBE_BOUND);
    let members = shared.pools.iter().filter(|p| p.is_replicated());
    for &ts in members.flat_map(|p| p.members.iter()) {
        let balance = &shared.balance;
        if !balance.probe_down(ts) && balance.heard_within(ts, now, interval) {
            continue;
        }
        let alive = probe(shared, ts, bound);
        let options = &shared.options;
        if let Some(up) = balance.probed(ts, alive, options.health_fails, options.health_rise) {
            let what = if up { "back up" } else { "marked down" };
            log::warn(format_args!(
                "ls: health: {} {what} ({} probe(s) in a row {})",
                shared.backends[ts],
                if up {
                    options.health_rise
                } else {
                    options.health_fails
                },
                if up { "answered" } else { "failed" }
            ));
        }
    }
}

/// Whether TS `ts` answers a probe within `bound`.
fn probe(shared: &Shared, ts: usize, bound: Duration) -> bool {
    let Ok(mut stream) = connect_any(&shared.backends[ts].addrs, bound) else {
        return false;
    };
    if shared.options.ts_protocol == TsProtocol::Line {
        return true;
    }
    let Ok(name) = Name::from_ascii(&shared.options.health_name) else {
        return false;
    };
    let question = Question {
        name,
        qtype: RecordType::SOA,
        qclass: CLASS_IN,
    };
    let id = (crate::random::random_seed() & 0xffff) as u16;
    let query = crate::dns::upstream::query_bytes(id, &question);
    let mut framed = u16::try_from(query.len())
        .unwrap_or(0)
        .to_be_bytes()
        .to_vec();
    framed.extend_from_slice(&query);
    let _ = stream.set_read_timeout(Some(bound));
    let _ = stream.set_write_timeout(Some(bound));
    if stream.write_all(&framed).is_err() {
        return false;
    }
    let mut length = [0u8; 2];
    if stream.read_exact(&mut length).is_err() {
        return false;
    }
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(length))];
    if stream.read_exact(&mut reply).is_err() || reply.len() < 4 {
        return false;
    }
    // Its ID, and any RCODE but SERVFAIL (2).
    u16::from_be_bytes([reply[0], reply[1]]) == id && reply[3] & 0x0f != 2
}
