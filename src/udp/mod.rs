//! The UDP ping system of the course: echo servers that lose datagrams on
//! purpose, a round-robin UDP load balancer in front of them, and a ping
//! client.
//!
//! A client sends `PING <seq> <HH:MM:SS>` datagrams to the load balancer
//! ([`lb`]), which hands each one to the next backend in one global rotation
//! and relays the backend's reply to the client that sent the request. The
//! backends ([`echo`]) upper-case each datagram and send it back, except that
//! they drop a fraction of them ([`loss`], 4 in 11 by default, as the course's
//! servers do). The client ([`ping`]) reports each reply, each timeout and
//! each late reply, then a summary like ping(8); [`flood`] measures how many
//! datagrams per second go through.
//!
//! Everything uses blocking std UDP sockets and threads. A thread blocked in
//! `recv` is woken for shutdown or session expiry by a datagram sent to its
//! own socket ([`wake_on_trigger`], [`wake_connected`]), never by polling.
//!
//! docs/UDP.md explains the design and the measured throughput.

pub mod echo;
pub mod flood;
pub mod lb;
pub mod loss;
pub mod ping;

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

use crate::framing::is_timeout;
use crate::log;
use crate::server::reachable_addr;
use crate::shutdown::{Shutdown, WakerGuard};

/// Longest payload a UDP datagram can carry (65535 minus the 8-byte UDP
/// header; IPv4 allows 20 bytes less).
pub const MAX_DATAGRAM: usize = 65_535 - 8;

/// Receive buffers are one byte longer than any datagram (64 KiB + 1), so a
/// datagram that fills the buffer could only be a truncated one and is
/// dropped rather than forwarded cut short.
pub const RECV_BUFFER: usize = 64 * 1024 + 1;

/// Wakes a thread blocked in `recv` on the unconnected `socket` when
/// `shutdown` triggers, by sending an empty datagram to the socket's own
/// address. The receiving loop checks [`Shutdown::is_triggered`] after every
/// datagram and stops.
///
/// # Errors
/// When the socket's address cannot be read.
pub fn wake_on_trigger(socket: &UdpSocket, shutdown: &Shutdown) -> io::Result<WakerGuard> {
    let target = reachable_addr(socket.local_addr()?);
    Ok(shutdown.on_trigger(move || {
        if let Ok(waker) = UdpSocket::bind(unspecified(target)) {
            let _ = waker.send_to(&[], target);
        }
    }))
}

/// Wakes a thread blocked in `recv` on the connected `socket`.
///
/// A connected UDP socket only accepts datagrams from its peer, so the
/// socket is first re-connected to a throwaway socket on its own local
/// address, which then sends it an empty datagram. The socket is no longer
/// connected to its old peer afterwards: call this only when the socket is
/// being retired.
///
/// # Errors
/// When the throwaway socket cannot be opened (out of file descriptors) or
/// the datagram cannot be sent.
pub fn wake_connected(socket: &UdpSocket) -> io::Result<()> {
    let local = reachable_addr(socket.local_addr()?);
    let waker = UdpSocket::bind((local.ip(), 0))?;
    socket.connect(waker.local_addr()?)?;
    waker.send_to(&[], local)?;
    Ok(())
}

/// What a server's receive loop got from [`recv_datagram`].
pub enum Received {
    /// A whole datagram of this many bytes, from this sender.
    Datagram(usize, SocketAddr),
    /// Nothing to act on: a timeout, an interruption, an ICMP error for an
    /// earlier send, or a datagram too large for the buffer (logged, dropped).
    Nothing,
}

/// One `recv_from` on a server socket into `buf` (of [`RECV_BUFFER`] bytes),
/// with the errors a server carries on after sorted out. `role` names the
/// server in the log line for a truncated datagram.
///
/// # Errors
/// The socket's other errors.
pub fn recv_datagram(socket: &UdpSocket, buf: &mut [u8], role: &str) -> io::Result<Received> {
    match socket.recv_from(buf) {
        // An unconnected socket can still be told of an ICMP error for an
        // earlier send on some systems: not a reason to stop.
        Err(e) if is_timeout(&e) || is_unreachable(&e) => Ok(Received::Nothing),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(Received::Nothing),
        Err(e) => Err(e),
        Ok((len, peer)) if len == buf.len() => {
            log::info(format_args!(
                "{role}: dropped a truncated datagram from {peer}"
            ));
            Ok(Received::Nothing)
        }
        Ok((len, peer)) => Ok(Received::Datagram(len, peer)),
    }
}

/// Whether a socket error means the peer is not there: an ICMP port (or
/// host, or network) unreachable reported on a connected UDP socket.
pub fn is_unreachable(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
    )
}

/// The any-port, any-interface address of `addr`'s family, for a socket
/// that will talk to `addr`.
pub fn unspecified(addr: SocketAddr) -> SocketAddr {
    let ip = match addr {
        SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    SocketAddr::new(ip, 0)
}

/// A datagram's bytes as text for logs and output: invalid UTF-8 is
/// replaced, a trailing line ending is dropped.
pub fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data)
        .trim_end_matches(['\r', '\n'])
        .to_string()
}
