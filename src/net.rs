//! Turning command-line host arguments into addresses, and connecting to them.

use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
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
        assert!(
            resolve("no such host.invalid", 5)
                .unwrap_err()
                .contains("no such host.invalid")
        );
    }
}
