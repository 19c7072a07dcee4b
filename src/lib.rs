//! dnslb: the "load balancing across DNS servers" system of the networking
//! course, built with one thread per connection, blocking sockets and
//! crossbeam channels.
//!
//! A client sends hostnames, one per line, over one TCP connection to the
//! load-balancing server (LS). The LS forwards each query to every top-level
//! server (TS); a TS that holds the name answers `name ip A`, the others stay
//! silent. The LS relays the first valid answer, or a miss line when none
//! came before the query's deadline.
//!
//! # Layout
//! - [`wire`]: the messages of every hop (parse, format, validate); no I/O.
//! - [`dns`]: the DNS message format (RFC 1035, EDNS0), answering queries,
//!   the LS's matching of TS replies and its cache; no I/O.
//! - [`framing`]: splitting a byte stream into messages (line or bare).
//! - [`linefile`]: files of one record per line and their errors (`file:line`).
//! - [`zone`]: the names and RRsets a TS serves; [`table`]: the course's
//!   table files, read into a zone; [`zonefile`]: RFC 1035 master files,
//!   read and checked into a zone.
//! - [`server`]: the shutdown signal and the thread-per-connection accept loop.
//! - [`ts`], [`ls`], [`client`]: the three roles; `ls` holds the fan-out engine.
//! - [`net`]: the shared socket helpers (addresses, connecting, receiving
//!   datagrams); [`cidr`]: address ranges (`--allow`).
//! - [`window`]: the credit window of a pipelined client (client and bench).
//! - [`sync`], [`random`]: the poison-tolerant lock and the seeded
//!   splitmix64 generator, each written once.
//! - [`bench`](mod@bench): the load generator that drives an LS or a TS and
//!   checks every reply with [`wire`]'s parsers (names, drive, judge, report).
//! - [`log`]: stderr logging, per-query lines with `-v`.
//! - [`trace`]: per-query traces (`ls --trace`): the steps of every query
//!   recorded as JSON lines by one writer thread, read back and drawn as
//!   sequence diagrams.
//! - [`web`]: the read-only HTTP endpoint (`--web`): Prometheus metrics,
//!   JSON and a live dashboard page.
//! - [`udp`]: the second system, UDP ping: echo servers with loss, a
//!   round-robin UDP load balancer and a ping client (docs/UDP.md).

pub mod bench;
pub mod cidr;
pub mod client;
pub mod dns;
pub mod framing;
pub mod linefile;
pub mod log;
pub mod ls;
pub mod net;
pub mod random;
pub mod resolve;
pub mod server;
pub mod shutdown;
pub mod sync;
pub mod table;
pub mod trace;
pub mod ts;
pub mod udp;
pub mod web;
pub mod window;
pub mod wire;
pub mod zone;
pub mod zonefile;
