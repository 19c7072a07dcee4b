//! What every TCP server role shares: the thread-per-connection accept
//! loop.
//!
//! A server takes an already bound listener (port 0 in tests) and a
//! [`Shutdown`]. Triggering the shutdown wakes the blocking `accept` by
//! connecting to the listener's own address, and ends the reads of every open
//! connection with `shutdown(Read)`, so each handler finishes the message it
//! is working on, sees end of stream and returns. [`serve`] returns once every
//! handler has.
//!
//! Limits: a connection over the limit, or one the server has no descriptor
//! or thread for, is sent the busy reply and closed, never dropped without a
//! word; a spare descriptor makes room to do so when `accept` itself runs
//! out. [`fit_to_descriptors`] lowers a limit the descriptor limit cannot hold.
//!
//! Idle connections give way: every connection's handler keeps an
//! [`Activity`] stamp up to date (busy from a query's arrival until its
//! answer is sent, idle since then), registered beside the connection. When
//! the server is full, or a source address has its fill of connections
//! ([`ServeOptions::max_per_source`]), the accept loop closes the
//! connection idle the longest (of that source) with `shutdown(Both)` on its
//! registered duplicate, and the newcomer takes its place. Only when every
//! connection is busy, or idle for less than [`EVICTABLE_AFTER`], is the
//! newcomer turned away.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Shutdown as Direction, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use crate::log;
use crate::net::{is_local_shortage, reachable_addr};
use crate::shutdown::Shutdown;
use crate::sync;

/// Stack of a connection's handler thread. Handlers keep their state on the
/// heap and do not recurse; a small stack lets thousands of connections
/// share the address space.
const HANDLER_STACK: usize = 256 * 1024;

/// How [`serve`] runs.
#[derive(Clone)]
pub struct ServeOptions {
    /// Names the server in logs and thread names.
    pub role: String,
    /// How long handlers get to finish after shutdown before their
    /// connections are closed under them.
    pub grace: Duration,
    /// Most connections open at once; one more takes the place of the
    /// longest-idle connection, or, when none is idle, waits briefly for a
    /// place, then is sent `busy_reply` and closed.
    pub max_connections: usize,
    /// Most connections open at once from one source address; one more
    /// takes the place of that source's longest-idle connection, or is sent
    /// `busy_reply` and closed when none of them is idle.
    pub max_per_source: usize,
    /// The line (without newline) sent to a connection over the limit.
    pub busy_reply: &'static str,
    /// Counters the caller can read while the server runs.
    pub stats: Arc<ConnectionStats>,
}

impl ServeOptions {
    /// No connection limit, `grace` to finish after shutdown.
    pub fn new(role: &str, grace: Duration) -> ServeOptions {
        ServeOptions {
            role: role.to_string(),
            grace,
            max_connections: usize::MAX,
            max_per_source: usize::MAX,
            busy_reply: "",
            stats: Arc::default(),
        }
    }
}

/// Connection counters of one server.
#[derive(Default)]
pub struct ConnectionStats {
    /// Connections accepted and handled.
    pub accepted: AtomicU64,
    /// Connections turned away because the server was full, or short of
    /// descriptors or threads.
    pub refused: AtomicU64,
    /// Idle connections closed to make room for a new one.
    pub evicted: AtomicU64,
    open: Mutex<usize>,
    closed: Condvar,
    /// Places taken against the connection limit: a place is given back as
    /// soon as its handler is done with the connection, before its thread
    /// is joined.
    taken: Mutex<usize>,
    freed: Condvar,
}

impl ConnectionStats {
    /// Connections whose handler thread has not yet ended.
    pub fn open(&self) -> usize {
        *sync::lock(&self.open)
    }

    /// Waits until at most `n` connections are open (their handler threads
    /// have ended and been joined); false if that took longer than `timeout`.
    pub fn wait_open_at_most(&self, n: usize, timeout: Duration) -> bool {
        let open = sync::lock(&self.open);
        let (open, _) = self
            .closed
            .wait_timeout_while(open, timeout, |open| *open > n)
            .unwrap_or_else(|e| e.into_inner());
        *open <= n
    }

    /// Waits until a connection closes, at most `timeout`.
    fn wait_for_a_close(&self, timeout: Duration) {
        let open = sync::lock(&self.open);
        let before = *open;
        let _ = self
            .closed
            .wait_timeout_while(open, timeout, |open| *open >= before);
    }

    /// Connections holding a place against the limit (their handler has not
    /// yet finished with them).
    pub fn in_use(&self) -> usize {
        *sync::lock(&self.taken)
    }

    /// Takes a place under `max`, waiting up to `wait` for one to be given
    /// back; false when none was.
    fn take_place(&self, max: usize, wait: Duration) -> bool {
        let taken = sync::lock(&self.taken);
        let (mut taken, _) = self
            .freed
            .wait_timeout_while(taken, wait, |taken| *taken >= max)
            .unwrap_or_else(|e| e.into_inner());
        if *taken >= max {
            return false;
        }
        *taken += 1;
        true
    }

    fn add_open(&self, delta: isize) {
        let mut open = sync::lock(&self.open);
        *open = open.saturating_add_signed(delta);
        self.closed.notify_all();
    }
}

/// How a connection is being used, as its handler reports it, so that a
/// full server closes one nobody is using rather than turn a newcomer away.
///
/// A connection is busy from the moment a query is received until its
/// answer (or its silence) has been sent, and idle otherwise: since it was
/// accepted, or since its last answer left. Bytes of a message not yet
/// complete do not count: a peer that trickles a message is idle.
///
/// ```
/// let activity = dnslb::server::Activity::default();
/// assert!(activity.idle_since().is_some());
/// activity.received(2);
/// activity.answered(1);
/// assert!(activity.idle_since().is_none());
/// activity.answered(1);
/// assert!(activity.idle_since().is_some());
/// ```
#[derive(Clone)]
pub struct Activity(Arc<Mutex<Use>>);

#[derive(Clone, Copy)]
struct Use {
    /// Queries received and not yet answered.
    unanswered: usize,
    /// When `unanswered` last became 0.
    idle_since: Instant,
}

impl Default for Activity {
    /// Idle from now.
    fn default() -> Activity {
        Activity(Arc::new(Mutex::new(Use {
            unanswered: 0,
            idle_since: Instant::now(),
        })))
    }
}

impl Activity {
    /// `n` queries were received: the connection is busy until they are
    /// answered.
    pub fn received(&self, n: usize) {
        sync::lock(&self.0).unanswered += n;
    }

    /// `n` queries were answered (their answers sent, or given up on).
    pub fn answered(&self, n: usize) {
        if n == 0 {
            return;
        }
        let mut used = sync::lock(&self.0);
        used.unanswered = used.unanswered.saturating_sub(n);
        if used.unanswered == 0 {
            used.idle_since = Instant::now();
        }
    }

    /// Since when the connection has been idle; `None` while it is busy.
    pub fn idle_since(&self) -> Option<Instant> {
        let used = *sync::lock(&self.0);
        (used.unanswered == 0).then_some(used.idle_since)
    }
}

/// How long a connection must have been idle before it is closed to make
/// room: a newcomer's first query may still be on its way, or unread.
pub const EVICTABLE_AFTER: Duration = Duration::from_secs(1);

/// Of `(key, idle since)` pairs, the key of the one idle the longest, if it
/// has been idle for [`EVICTABLE_AFTER`] at `now`; `None` when none has
/// (a busy one's idle since is `None`).
///
/// ```
/// use std::time::{Duration, Instant};
/// use dnslb::server::longest_idle;
/// let now = Instant::now() + Duration::from_secs(10);
/// let (new, old) = (now - Duration::from_millis(10), now - Duration::from_secs(5));
/// assert_eq!(longest_idle([(1, Some(new)), (2, None), (3, Some(old))], now), Some(3));
/// assert_eq!(longest_idle([(1, Some(new)), (2, None)], now), None);
/// ```
pub fn longest_idle<K>(
    connections: impl IntoIterator<Item = (K, Option<Instant>)>,
    now: Instant,
) -> Option<K> {
    connections
        .into_iter()
        .filter_map(|(key, since)| Some((key, since?)))
        .filter(|&(_, since)| now.saturating_duration_since(since) >= EVICTABLE_AFTER)
        .min_by_key(|&(_, since)| since)
        .map(|(key, _)| key)
}

/// Serves each of a server's `fronts` (its ways in: a course port, DNS
/// sockets...) with `serve_one` until `shutdown` triggers: the first on
/// this thread, each other on a thread of its own, named by `name`. One
/// that fails, or whose thread cannot start, triggers `shutdown`, so the
/// others stop too. Returns once every one has returned.
///
/// # Errors
/// The first front end's error, else the next one's, and so on.
pub fn serve_each<F: Send>(
    fronts: Vec<F>,
    name: impl Fn(&F) -> &'static str,
    serve_one: impl Fn(F) -> io::Result<()> + Sync,
    shutdown: &Shutdown,
) -> io::Result<()> {
    let serve_one = |front| serve_one(front).inspect_err(|_| shutdown.trigger());
    thread::scope(|scope| {
        let mut fronts = fronts.into_iter();
        let first = fronts.next();
        let others: Vec<_> = fronts
            .map(|front| {
                thread::Builder::new()
                    .name(name(&front).into())
                    .spawn_scoped(scope, || serve_one(front))
                    .inspect_err(|_| shutdown.trigger())
            })
            .collect();
        let served = first.map_or(Ok(()), serve_one);
        others.into_iter().fold(served, |served, side| {
            served.and(side.and_then(|side| {
                side.join()
                    .unwrap_or_else(|_| Err(io::Error::other("a front end's thread panicked")))
            }))
        })
    })
}

/// Accepts connections until `shutdown` triggers, running `handler` on its
/// own thread for each, with the connection's [`Activity`] for the handler
/// to keep up to date.
///
/// When `shutdown` triggers, accepting stops and every connection's reads end
/// (its handler sees end of stream once it has consumed what the peer already
/// sent). Handlers then get `options.grace` to finish; connections still open
/// after it are shut down in both directions, which ends a handler blocked
/// writing to a peer that does not read. Returns when every handler thread
/// has been joined.
///
/// # Errors
/// When the listener's address cannot be read.
pub fn serve<H>(
    listener: TcpListener,
    shutdown: &Shutdown,
    options: &ServeOptions,
    handler: H,
) -> io::Result<()>
where
    H: Fn(TcpStream, Activity) + Send + Sync + 'static,
{
    let role = &options.role;
    let stats = &options.stats;
    let wake_addr = reachable_addr(listener.local_addr()?);
    let open = Connections::default();
    // The local address of the connection that wakes `accept`; connections
    // queued before it arrived before the shutdown and are still served.
    let waker = Arc::new(AcceptWaker::default());
    let _on_trigger = {
        let (open, waker) = (open.clone(), Arc::clone(&waker));
        shutdown.on_trigger(move || {
            open.shutdown_all(Direction::Read);
            let connected = TcpStream::connect_timeout(&wake_addr, Duration::from_secs(1));
            if let Err(e) = &connected {
                log::warn(format_args!(
                    "cannot wake the accept loop at {wake_addr}: {e}"
                ));
            }
            waker.set(connected.ok().and_then(|stream| stream.local_addr().ok()));
        })
    };
    let handler = Arc::new(handler);
    let (finished, reaper) = start_reaper(role, Arc::clone(stats))?;
    let mut reserve = Reserve::open();
    let mut refusing = None;
    loop {
        let conn = reserve.accept(&listener);
        // After the shutdown: the waker's connection ends the loop; one
        // queued before it is still served. Should the waker have failed to
        // connect, this connection is served and is the last.
        let mut last = false;
        if shutdown.is_triggered() {
            match waker.identify(&conn) {
                Accepted::Waker => break,
                Accepted::Client => {}
                Accepted::ClientWithoutWaker => last = true,
            }
        }
        match conn {
            Ok(stream) => start_handler(
                stream,
                shutdown,
                options,
                &open,
                &finished,
                &mut refusing,
                &handler,
            ),
            Err(e) if is_local_shortage(&e) => {
                log::warn(format_args!("{role}: accept failed: {e}"));
                if shutdown.is_triggered() {
                    // The waker's connection cannot be accepted either.
                    break;
                }
                // Not even the spare descriptor made room: wait for a
                // connection to close rather than spin.
                stats.wait_for_a_close(SHORTAGE_PAUSE);
            }
            Err(e) => {
                log::warn(format_args!("{role}: accept failed: {e}"));
                // A condition that may persist: back off rather than spin
                // on an accept that keeps failing.
                thread::sleep(SHORTAGE_PAUSE);
            }
        }
        if last {
            break;
        }
    }
    drop(finished.sender);
    if !stats.wait_open_at_most(0, options.grace) {
        log::warn(format_args!(
            "{role}: closing connections still busy after {:?}",
            options.grace
        ));
        open.shutdown_all(Direction::Both);
    }
    let _ = reaper.join();
    Ok(())
}

/// The connection that wakes `accept` at shutdown, told apart from clients
/// queued before it by its address.
#[derive(Default)]
struct AcceptWaker {
    /// `None` until the waker has connected; then its local address, or
    /// `None` inside when it could not connect.
    addr: Mutex<Option<Option<SocketAddr>>>,
    set: Condvar,
}

impl AcceptWaker {
    fn set(&self, addr: Option<SocketAddr>) {
        *sync::lock(&self.addr) = Some(addr);
        self.set.notify_all();
    }

    /// Who made `conn`: the waker, or a client (queued before the waker,
    /// or arriving while the waker could not connect).
    fn identify(&self, conn: &io::Result<TcpStream>) -> Accepted {
        let addr = sync::lock(&self.addr);
        let (addr, _) = self
            .set
            .wait_timeout_while(addr, Duration::from_secs(2), |addr| addr.is_none())
            .unwrap_or_else(|e| e.into_inner());
        match (*addr, conn) {
            (Some(Some(waker)), Ok(stream)) if stream.peer_addr().ok() == Some(waker) => {
                Accepted::Waker
            }
            (Some(Some(_)), _) => Accepted::Client,
            _ => Accepted::ClientWithoutWaker,
        }
    }
}

/// What [`AcceptWaker::identify`] found.
enum Accepted {
    Waker,
    Client,
    ClientWithoutWaker,
}

/// Registers `stream` and starts its handler thread, or refuses it with the
/// busy reply when the server (or the stream's source) is full of busy
/// connections (after waiting briefly for a place) or has no descriptor or
/// thread to serve it with. An idle connection is closed to make room
/// first, when there is one.
fn start_handler<H>(
    stream: TcpStream,
    shutdown: &Shutdown,
    options: &ServeOptions,
    open: &Connections,
    finished: &Finished,
    refusing: &mut Option<std::time::Instant>,
    handler: &Arc<H>,
) where
    H: Fn(TcpStream, Activity) + Send + Sync + 'static,
{
    let (role, stats) = (&options.role, &options.stats);
    let peer_addr = stream.peer_addr().ok();
    let peer = peer_addr.map_or_else(|| "unknown peer".to_string(), |a| a.to_string());
    let source = peer_addr.map(|a| a.ip());
    let mut made_room = false;
    if let Some(source) = source
        && open.count_from(source) >= options.max_per_source
    {
        made_room = open.evict_longest_idle(Some(source), options, &peer);
        if !made_room {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            log::info(format_args!(
                "{role}: refusing {peer}: {} connections open from {source}, none idle",
                options.max_per_source
            ));
            refuse(stream, options.busy_reply);
            return;
        }
    }
    if !take_place(options, open, made_room, &peer, refusing) {
        stats.refused.fetch_add(1, Ordering::Relaxed);
        log::info(format_args!(
            "{role}: refusing {peer}: {} connections open, none idle",
            options.max_connections
        ));
        refuse(stream, options.busy_reply);
        return;
    }
    let place = Place(Arc::clone(stats));
    let activity = Activity::default();
    let tracked = match open.track(&stream, source, &activity) {
        Ok(tracked) => tracked,
        Err(e) => {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            log::warn(format_args!("{role}: refusing {peer}: {e}"));
            refuse(stream, options.busy_reply);
            return;
        }
    };
    if shutdown.is_triggered() {
        // Accepted after the shutdown began: answer what it already sent.
        let _ = stream.shutdown(Direction::Read);
    }
    stats.accepted.fetch_add(1, Ordering::Relaxed);
    stats.add_open(1);
    let handler = Arc::clone(handler);
    let done = finished.sender.clone();
    let id = tracked.id;
    // Handed over through a slot, so that it can be taken back and told
    // the server is busy should no thread start.
    let handoff = Arc::new(Mutex::new(Some(stream)));
    let slot = Arc::clone(&handoff);
    // Hold the map while spawning, so the reaper finds the handle.
    let mut handles = finished.lock();
    let spawned = thread::Builder::new()
        .name(format!("{role} {peer}"))
        .stack_size(HANDLER_STACK)
        .spawn(move || {
            let stream = sync::lock(&slot).take();
            if let Some(stream) = stream {
                handler(stream, activity);
            }
            // The connection is done with: its place is free at once, before
            // this thread is joined.
            drop(tracked);
            drop(place);
            let _ = done.send(id);
        });
    match spawned {
        Ok(handle) => {
            handles.insert(id, handle);
        }
        Err(e) => {
            drop(handles);
            stats.accepted.fetch_sub(1, Ordering::Relaxed);
            stats.refused.fetch_add(1, Ordering::Relaxed);
            stats.add_open(-1);
            log::warn(format_args!(
                "{role}: refusing {peer}: cannot start a thread: {e}"
            ));
            let stream = sync::lock(&handoff).take();
            if let Some(stream) = stream {
                refuse(stream, options.busy_reply);
            }
        }
    }
}

/// How long the accept loop waits for a connection to close when it cannot
/// accept for want of descriptors, or another accept error persists.
const SHORTAGE_PAUSE: Duration = Duration::from_millis(50);

/// A place against the connection limit; given back when dropped.
struct Place(Arc<ConnectionStats>);

impl Drop for Place {
    fn drop(&mut self) {
        let mut taken = sync::lock(&self.0.taken);
        *taken = taken.saturating_sub(1);
        self.0.freed.notify_all();
    }
}

/// How long a connection that finds the server full waits for a place: a
/// client that connects right after another closed may arrive before that
/// connection's handler has seen the close.
const PLACE_WAIT: Duration = Duration::from_millis(250);

/// Takes a place for a new connection. When the server is full, closes the
/// longest-idle connection (unless `made_room`: one was already closed for
/// it) and waits for its place. While connections keep being refused
/// (`refusing` holds when the last refusal was) and none is idle, refuses
/// at once, so a flood over the limit does not hold up the accept loop.
fn take_place(
    options: &ServeOptions,
    open: &Connections,
    made_room: bool,
    peer: &str,
    refusing: &mut Option<std::time::Instant>,
) -> bool {
    let stats = &options.stats;
    if stats.take_place(options.max_connections, Duration::ZERO) {
        return true;
    }
    let made_room = made_room || open.evict_longest_idle(None, options, peer);
    let now = std::time::Instant::now();
    let flooded = refusing.is_some_and(|last| now < last + PLACE_WAIT);
    let wait = if flooded && !made_room {
        Duration::ZERO
    } else {
        PLACE_WAIT
    };
    if stats.take_place(options.max_connections, wait) {
        return true;
    }
    *refusing = Some(std::time::Instant::now());
    false
}

/// A spare descriptor held by the accept loop. When `accept` fails for want
/// of descriptors, closing the spare makes room to take the next client off
/// the queue; its handler cannot start for want of descriptors either, so it
/// is told the server is busy and closed, instead of being left queued
/// without a word. The spare is taken again once there is room.
struct Reserve(Option<std::fs::File>);

impl Reserve {
    fn open() -> Reserve {
        Reserve(std::fs::File::open("/dev/null").ok())
    }

    /// The next connection (blocking, as `accept` does), with the spare's
    /// help when descriptors run out.
    fn accept(&mut self, listener: &TcpListener) -> io::Result<TcpStream> {
        if self.0.is_none() {
            *self = Reserve::open();
        }
        match listener.accept() {
            Err(e) if is_local_shortage(&e) && self.0.is_some() => {
                drop(self.0.take());
                listener.accept().map(|(stream, _)| stream)
            }
            accepted => accepted.map(|(stream, _)| stream),
        }
    }
}

/// Tells a connection over the limit why it is closed.
fn refuse(mut stream: TcpStream, reply: &str) {
    if !reply.is_empty() {
        let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
        let _ = std::io::Write::write_all(&mut stream, format!("{reply}\n").as_bytes());
    }
    let _ = stream.shutdown(Direction::Both);
}

/// Handler threads report their end here; the reaper joins them, so that a
/// connection counts as closed only once its thread is gone.
struct Finished {
    sender: Sender<u64>,
    handles: Arc<Mutex<HashMap<u64, JoinHandle<()>>>>,
}

impl Finished {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, JoinHandle<()>>> {
        sync::lock(&self.handles)
    }
}

fn start_reaper(role: &str, stats: Arc<ConnectionStats>) -> io::Result<(Finished, JoinHandle<()>)> {
    let (sender, ended) = crossbeam_channel::unbounded::<u64>();
    let handles: Arc<Mutex<HashMap<u64, JoinHandle<()>>>> = Arc::default();
    let map = Arc::clone(&handles);
    let reaper = thread::Builder::new()
        .name(format!("{role} reaper"))
        .spawn(move || {
            // Ends when the accept loop and every handler have dropped their senders.
            for id in ended {
                let handle = sync::lock(&map).remove(&id);
                if let Some(handle) = handle {
                    let _ = handle.join();
                }
                stats.add_open(-1);
            }
        })?;
    Ok((Finished { sender, handles }, reaper))
}

/// The open connections of one server, so that shutdown can reach them,
/// and the accept loop can close an idle one to make room.
#[derive(Clone, Default)]
struct Connections(Arc<Mutex<ConnectionMap>>);

#[derive(Default)]
struct ConnectionMap {
    next_id: u64,
    streams: HashMap<u64, Registered>,
}

/// One open connection: a duplicate of its stream to close it with, where
/// it comes from, and how it is being used.
struct Registered {
    stream: TcpStream,
    source: Option<IpAddr>,
    activity: Activity,
    /// Closed to make room: on its way out, no longer counted.
    evicted: bool,
}

impl Connections {
    fn lock(&self) -> MutexGuard<'_, ConnectionMap> {
        sync::lock(&self.0)
    }

    /// Registers a duplicate of `stream` until the returned guard drops.
    fn track(
        &self,
        stream: &TcpStream,
        source: Option<IpAddr>,
        activity: &Activity,
    ) -> io::Result<Tracked> {
        let clone = stream.try_clone()?;
        let mut map = self.lock();
        let id = map.next_id;
        map.next_id += 1;
        let registered = Registered {
            stream: clone,
            source,
            activity: activity.clone(),
            evicted: false,
        };
        map.streams.insert(id, registered);
        Ok(Tracked {
            connections: self.clone(),
            id,
        })
    }

    /// Connections open from `source`, not counting those being closed.
    fn count_from(&self, source: IpAddr) -> usize {
        let map = self.lock();
        map.streams
            .values()
            .filter(|r| !r.evicted && r.source == Some(source))
            .count()
    }

    /// Closes the connection idle the longest (of those from `source`,
    /// when given) to make room for `newcomer`; false when every one is
    /// busy.
    fn evict_longest_idle(
        &self,
        source: Option<IpAddr>,
        options: &ServeOptions,
        newcomer: &str,
    ) -> bool {
        let mut map = self.lock();
        let candidates = map
            .streams
            .iter()
            .filter(|(_, r)| !r.evicted && (source.is_none() || r.source == source))
            .map(|(&id, r)| (id, r.activity.idle_since()));
        let Some(id) = longest_idle(candidates, Instant::now()) else {
            return false;
        };
        let Some(oldest) = map.streams.get_mut(&id) else {
            return false;
        };
        oldest.evicted = true;
        let _ = oldest.stream.shutdown(Direction::Both);
        options.stats.evicted.fetch_add(1, Ordering::Relaxed);
        let idle = oldest
            .activity
            .idle_since()
            .map_or(Duration::ZERO, |since| since.elapsed());
        let peer = oldest
            .stream
            .peer_addr()
            .map_or_else(|_| "unknown peer".to_string(), |a| a.to_string());
        log::info(format_args!(
            "{}: closing {peer}, idle for {:.1} s, to make room for {newcomer}",
            options.role,
            idle.as_secs_f64()
        ));
        true
    }

    fn shutdown_all(&self, direction: Direction) {
        for registered in self.lock().streams.values() {
            let _ = registered.stream.shutdown(direction);
        }
    }
}

/// Unregisters its connection when dropped.
struct Tracked {
    connections: Connections,
    id: u64,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.connections.lock().streams.remove(&self.id);
    }
}

/// Descriptors a server keeps free beyond its connections: the accept
/// loop's spare, a connection being refused, the shutdown wake-up (both
/// ends), and a little slack for logs and probes.
const SPARE_DESCRIPTORS: usize = 8;

/// The soft limit on open descriptors (`ulimit -n`) from `/proc/self/limits`,
/// `None` when unlimited or unreadable.
pub fn descriptor_limit() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_descriptor_limit(&text)
}

fn parse_descriptor_limit(limits: &str) -> Option<usize> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Descriptors open in this process now (from `/proc/self/fd`), `None` when
/// unreadable.
pub fn open_descriptors() -> Option<usize> {
    // The listing's own descriptor is counted too: one more than before.
    let count = std::fs::read_dir("/proc/self/fd").ok()?.count();
    Some(count.saturating_sub(1))
}

/// How many connections costing `per_connection` descriptors each fit under
/// `limit` with `open` already open and `SPARE_DESCRIPTORS` kept free (at
/// least one).
///
/// ```
/// assert_eq!(dnslb::server::connections_that_fit(64, 10, 7), 6);
/// assert_eq!(dnslb::server::connections_that_fit(1024, 10, 7), 143);
/// assert_eq!(dnslb::server::connections_that_fit(16, 10, 7), 1);
/// ```
pub fn connections_that_fit(limit: usize, open: usize, per_connection: usize) -> usize {
    let free = limit.saturating_sub(open + SPARE_DESCRIPTORS);
    (free / per_connection.max(1)).max(1)
}

/// `requested` connections (the `option` of `role`), lowered to what this
/// process's descriptor limit can hold at `per_connection` descriptors each,
/// with one line on stderr saying so. The limit cannot be raised without
/// libc: `ulimit -n` before starting raises it.
pub fn fit_to_descriptors(
    role: &str,
    option: &str,
    requested: usize,
    per_connection: usize,
) -> usize {
    let (Some(limit), Some(open)) = (descriptor_limit(), open_descriptors()) else {
        return requested;
    };
    let fit = connections_that_fit(limit, open, per_connection);
    if fit >= requested {
        return requested;
    }
    log::warn(format_args!(
        "{role}: serving at most {fit} clients at once, not {option} {requested}: \
         each costs {per_connection} file descriptors and the limit is {limit} \
         ({open} open); `ulimit -n` raises it"
    ));
    fit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_idle_connection_for_a_second_or_more_gives_way() {
        let now = Instant::now() + Duration::from_secs(60);
        let ago = |ms| Some(now - Duration::from_millis(ms));
        // The oldest idle one, busy ones never.
        let conns = [(1, ago(1500)), (2, None), (3, ago(30_000)), (4, ago(2000))];
        assert_eq!(longest_idle(conns, now), Some(3));
        // Idle for under a second: a newcomer's first query may be on its way.
        assert_eq!(longest_idle([(1, ago(999)), (2, None)], now), None);
        assert_eq!(longest_idle([(1, ago(1000))], now), Some(1));
        assert_eq!(longest_idle(Vec::<(u8, Option<Instant>)>::new(), now), None);
        // Busy until every query received is answered.
        let activity = Activity::default();
        activity.received(1);
        activity.received(2);
        activity.answered(2);
        assert_eq!(activity.idle_since(), None);
        let before = Instant::now();
        activity.answered(1);
        assert!(activity.idle_since().is_some_and(|since| since >= before));
    }

    #[test]
    fn the_descriptor_limit_is_read_from_proc_limits() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             63704                63704                processes \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(parse_descriptor_limit(limits), Some(1024));
        let unlimited =
            "Max open files            unlimited            unlimited            files     \n";
        assert_eq!(parse_descriptor_limit(unlimited), None);
        assert!(descriptor_limit().is_some_and(|limit| limit > 3));
        assert!(open_descriptors().is_some_and(|open| open >= 3));
    }
}
