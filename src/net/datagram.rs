//! Receiving datagrams on a blocking UDP server socket: the buffer size
//! that detects truncation, the errors a server carries on after, and the
//! wake-up that ends a blocked `recv_from` for shutdown without polling.
//! Used by every UDP server: the DNS front ends of the TS and the LS and
//! the UDP ping lab.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

use super::reachable_addr;
use crate::framing::is_timeout;
use crate::log;
use crate::shutdown::{Shutdown, WakerGuard};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_datagram_that_fills_the_buffer_is_dropped_as_truncated() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        server
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = server.local_addr().unwrap();
        client.send_to(b"four", to).unwrap();
        client.send_to(b"two", to).unwrap();
        let mut buf = [0; 4];
        assert!(matches!(
            recv_datagram(&server, &mut buf, "test").unwrap(),
            Received::Nothing
        ));
        match recv_datagram(&server, &mut buf, "test").unwrap() {
            Received::Datagram(len, from) => {
                assert_eq!(&buf[..len], b"two");
                assert_eq!(from, client.local_addr().unwrap());
            }
            Received::Nothing => panic!("a shorter datagram is received whole"),
        }
    }
}
