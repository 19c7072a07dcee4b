//! The socket helpers every role shares: turning command-line host
//! arguments into addresses, connecting to them, the address that reaches a
//! listener, binding a DNS server's UDP and TCP sockets on one port, and
//! ([`datagram`]) receiving on a UDP server socket.

pub mod datagram;

use std::io;
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs, UdpSocket,
};
use std::time::Duration;

/// The addresses of `host` (a name, an IPv4 or an IPv6 literal, with or
/// without brackets) at `port`.
///
/// # Errors
/// A message naming the host when it does not resolve.
pub fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let addrs: Vec<SocketAddr> = (bare, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve host {host:?}: {e}"))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("host {host:?} has no addresses"));
    }
    Ok(addrs)
}

/// The address to send datagrams to when a host has several: the first IPv4
/// one if any (servers listen on `0.0.0.0` by default, and a name such as
/// `localhost` may list `::1` first), else the first.
///
/// # Panics
/// When `addrs` is empty ([`resolve`] never returns an empty list).
pub fn datagram_target(addrs: &[SocketAddr]) -> SocketAddr {
    *addrs
        .iter()
        .find(|a| a.is_ipv4())
        .unwrap_or_else(|| addrs.first().expect("resolve returns at least one address"))
}

/// The address to connect to in order to reach a listener bound to `addr`
/// (an all-interfaces bind is reached on loopback).
pub fn reachable_addr(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

/// Connects to the first of `addrs` that accepts, waiting at most `timeout` for each.
///
/// # Errors
/// The last address's error, or `NotFound` when `addrs` is empty.
pub fn connect_any(addrs: &[SocketAddr], timeout: Duration) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address to connect to");
    for addr in addrs {
        match TcpStream::connect_timeout(addr, timeout) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Whether `error` is this process's own shortage (out of file
/// descriptors, threads, buffers, memory or local ports) rather than news
/// about the peer: Linux's EMFILE, ENFILE, EAGAIN (a thread that cannot be
/// created), ENOMEM, ENOBUFS and EADDRNOTAVAIL.
///
/// ```
/// use std::io::Error;
/// assert!(dnslb::net::is_local_shortage(&Error::from_raw_os_error(24)));
/// assert!(!dnslb::net::is_local_shortage(&Error::from(std::io::ErrorKind::ConnectionRefused)));
/// ```
pub fn is_local_shortage(error: &io::Error) -> bool {
    const EAGAIN: i32 = 11;
    const ENOMEM: i32 = 12;
    const ENFILE: i32 = 23;
    const EMFILE: i32 = 24;
    const EADDRNOTAVAIL: i32 = 99;
    const ENOBUFS: i32 = 105;
    matches!(
        error.raw_os_error(),
        Some(EAGAIN | ENOMEM | ENFILE | EMFILE | EADDRNOTAVAIL | ENOBUFS)
    )
}

/// How many times [`Sockets::bind`] tries port numbers when the OS picks one.
const BIND_ATTEMPTS: usize = 20;

/// A DNS server's sockets: UDP and TCP bound to the same address and port.
pub struct DnsSockets {
    /// Receives UDP queries.
    pub udp: UdpSocket,
    /// Accepts TCP connections.
    pub tcp: TcpListener,
}

impl DnsSockets {
    /// Binds UDP to the first of `addrs` that works, then TCP to the UDP
    /// socket's address. When the port is 0 and the OS's pick for UDP is
    /// taken for TCP, tries another pick.
    ///
    /// # Errors
    /// The last address's error.
    pub fn bind(addrs: &[SocketAddr]) -> io::Result<DnsSockets> {
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address to bind");
        for addr in addrs {
            for _ in 0..BIND_ATTEMPTS {
                match bind_pair(*addr) {
                    Ok(sockets) => return Ok(sockets),
                    Err(e) => {
                        let again = addr.port() == 0 && e.kind() == io::ErrorKind::AddrInUse;
                        last = e;
                        if !again {
                            break;
                        }
                    }
                }
            }
        }
        Err(last)
    }

    /// The address both sockets are bound to.
    ///
    /// # Errors
    /// When the address cannot be read.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.udp.local_addr()
    }
}

fn bind_pair(addr: SocketAddr) -> io::Result<DnsSockets> {
    let udp = UdpSocket::bind(addr)?;
    let tcp = TcpListener::bind(udp.local_addr()?)?;
    Ok(DnsSockets { udp, tcp })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_names_resolve() {
        assert_eq!(
            resolve("127.0.0.1", 5).unwrap()[0].to_string(),
            "127.0.0.1:5"
        );
        assert_eq!(resolve("::1", 5).unwrap()[0].to_string(), "[::1]:5");
        assert_eq!(resolve("[::1]", 5).unwrap()[0].to_string(), "[::1]:5");
        assert!(!resolve("localhost", 5).unwrap().is_empty());
        let both: Vec<SocketAddr> =
            vec!["[::1]:5".parse().unwrap(), "127.0.0.1:5".parse().unwrap()];
        assert_eq!(datagram_target(&both).to_string(), "127.0.0.1:5");
        assert_eq!(datagram_target(&both[..1]).to_string(), "[::1]:5");
        assert!(
            resolve("no such host.invalid", 5)
                .unwrap_err()
                .contains("no such host.invalid")
        );
    }
}
