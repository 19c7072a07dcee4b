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
//! own socket (`net::datagram::wake_on_trigger`, [`wake_connected`]), never
//! by polling.
//!
//! docs/UDP.md explains the design and the measured throughput.

pub mod echo;
pub mod flood;
pub mod lb;
pub mod loss;
pub mod ping;

use std::io;
use std::net::UdpSocket;

use crate::net::reachable_addr;

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

/// A datagram's bytes as text for logs and output: invalid UTF-8 is
/// replaced, a trailing line ending is dropped.
pub fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data)
        .trim_end_matches(['\r', '\n'])
        .to_string()
}
