//! Just enough HTTP/1.1 for a few GETs: reading one request head within a
//! size bound, parsing its request line, and writing a response with
//! `Content-Length` and `Connection: close`. Parsing is pure (byte slices
//! in, a [`Request`] or a status out) and tested without sockets.

use std::io::{self, Read, Write};
use std::time::Instant;

/// The most bytes a request's head (request line and headers) may take.
pub const MAX_HEAD: usize = 8 * 1024;

/// A request the server can answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// `GET` or `HEAD` (other methods are refused while parsing).
    pub method: String,
    /// The path, without the query string.
    pub path: String,
}

/// Why a request cannot be answered: the status to answer it with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 400: not an HTTP/1.x request line.
    BadRequest,
    /// 405: a method other than GET or HEAD.
    MethodNotAllowed,
    /// 408: the head did not arrive in time.
    Timeout,
    /// 414: the request line alone is over [`MAX_HEAD`].
    UriTooLong,
    /// 431: the head is over [`MAX_HEAD`].
    HeadersTooLarge,
}

impl Refusal {
    /// The status code and reason phrase.
    pub fn status(self) -> (u16, &'static str) {
        match self {
            Refusal::BadRequest => (400, "Bad Request"),
            Refusal::MethodNotAllowed => (405, "Method Not Allowed"),
            Refusal::Timeout => (408, "Request Timeout"),
            Refusal::UriTooLong => (414, "URI Too Long"),
            Refusal::HeadersTooLarge => (431, "Request Header Fields Too Large"),
        }
    }
}

/// Where a complete head ends in `bytes` (past its blank line), if it does.
/// A bare `\n` line end is taken as well as `\r\n`.
///
/// ```
/// use dnslb::web::http::head_end;
/// assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nbody"), Some(27));
/// assert_eq!(head_end(b"GET / HTTP/1.1\n\n"), Some(16));
/// assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
/// ```
pub fn head_end(bytes: &[u8]) -> Option<usize> {
    (0..bytes.len()).find_map(|i| {
        if bytes[i..].starts_with(b"\r\n\r\n") {
            Some(i + 4)
        } else if bytes[i..].starts_with(b"\n\n") {
            Some(i + 2)
        } else if bytes[i..].starts_with(b"\n\r\n") {
            Some(i + 3)
        } else {
            None
        }
    })
}

/// Parses a complete head's request line (headers are read and ignored:
/// nothing the server answers depends on them).
///
/// ```
/// use dnslb::web::http::{parse_head, Refusal};
/// let request = parse_head(b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
/// assert_eq!((request.method.as_str(), request.path.as_str()), ("GET", "/metrics"));
/// assert_eq!(parse_head(b"POST / HTTP/1.1\r\n\r\n"), Err(Refusal::MethodNotAllowed));
/// assert_eq!(parse_head(b"hello\r\n\r\n"), Err(Refusal::BadRequest));
/// ```
pub fn parse_head(head: &[u8]) -> Result<Request, Refusal> {
    let line_end = head
        .iter()
        .position(|&b| b == b'\n')
        .ok_or(Refusal::BadRequest)?;
    let line = std::str::from_utf8(&head[..line_end]).map_err(|_| Refusal::BadRequest)?;
    let line = line.strip_suffix('\r').unwrap_or(line);
    let mut words = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Err(Refusal::BadRequest);
    };
    let token = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphabetic());
    if !token(method) || !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return Err(Refusal::BadRequest);
    }
    if method != "GET" && method != "HEAD" {
        return Err(Refusal::MethodNotAllowed);
    }
    let path = target.split(['?', '#']).next().unwrap_or(target);
    Ok(Request {
        method: method.to_string(),
        path: path.to_string(),
    })
}

/// Reads one request head from `stream` until its blank line, at most
/// [`MAX_HEAD`] bytes, before `deadline`. `set_timeout` is given the time
/// left before each read (the caller's socket read timeout), so that a
/// peer trickling its head byte by byte is cut off at the deadline.
///
/// # Errors
/// A [`Refusal`] to answer with (`Ok(Err(..))`); `Err` when the peer
/// closed or the connection failed (nothing to answer).
pub fn read_head<S: Read>(
    stream: &mut S,
    deadline: Instant,
    mut set_timeout: impl FnMut(std::time::Duration) -> io::Result<()>,
) -> io::Result<Result<Request, Refusal>> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(Err(Refusal::Timeout));
        }
        set_timeout(left)?;
        let n = match stream.read(&mut chunk) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(Err(Refusal::Timeout));
            }
            Err(e) => return Err(e),
        };
        let searched_from = head.len().saturating_sub(3);
        head.extend_from_slice(&chunk[..n]);
        if let Some(end) = head_end(&head[searched_from..]) {
            return Ok(parse_head(&head[..searched_from + end]));
        }
        if head.len() >= MAX_HEAD {
            return Ok(Err(if head.contains(&b'\n') {
                Refusal::HeadersTooLarge
            } else {
                Refusal::UriTooLong
            }));
        }
    }
}

/// A response: status, content type, body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: &'static str,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// Sent as `Allow` (with 405).
    pub allow: Option<&'static str>,
}

impl Response {
    /// A 200 with `body` of `content_type`.
    pub fn ok(content_type: &'static str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status: 200,
            reason: "OK",
            content_type,
            body: body.into(),
            allow: None,
        }
    }

    /// A plain-text error page.
    pub fn error(status: u16, reason: &'static str) -> Response {
        Response {
            status,
            reason,
            content_type: "text/plain; charset=utf-8",
            body: format!("{status} {reason}\n").into_bytes(),
            allow: None,
        }
    }

    /// The response to a refused request.
    pub fn refusal(refusal: Refusal) -> Response {
        let (status, reason) = refusal.status();
        let mut response = Response::error(status, reason);
        if refusal == Refusal::MethodNotAllowed {
            response.allow = Some("GET, HEAD");
        }
        response
    }

    /// The response's bytes: head, and the body unless `head_only`.
    ///
    /// ```
    /// use dnslb::web::http::Response;
    /// let bytes = Response::ok("text/plain", "hi").to_bytes(false);
    /// assert_eq!(bytes, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\
    ///     Cache-Control: no-store\r\nConnection: close\r\n\r\nhi");
    /// ```
    pub fn to_bytes(&self, head_only: bool) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
             Cache-Control: no-store\r\nConnection: close\r\n",
            self.status,
            self.reason,
            self.content_type,
            self.body.len()
        );
        if let Some(allow) = self.allow {
            out.push_str(&format!("Allow: {allow}\r\n"));
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        if !head_only {
            bytes.extend_from_slice(&self.body);
        }
        bytes
    }

    /// Writes the response to `out`.
    ///
    /// # Errors
    /// The write's.
    pub fn write_to(&self, out: &mut impl Write, head_only: bool) -> io::Result<()> {
        out.write_all(&self.to_bytes(head_only))?;
        out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn read(bytes: &[u8]) -> io::Result<Result<Request, Refusal>> {
        let mut reader = bytes;
        read_head(&mut reader, Instant::now() + Duration::from_secs(5), |_| {
            Ok(())
        })
    }

    #[test]
    fn a_get_is_read_up_to_its_blank_line() {
        let request = read(b"GET /api/v1/stats HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(request.unwrap().path, "/api/v1/stats");
        let head = read(b"HEAD / HTTP/1.0\n\n").unwrap().unwrap();
        assert_eq!(head.method, "HEAD");
    }

    #[test]
    fn over_long_heads_and_bad_lines_are_refused() {
        let long_line = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(
            read(long_line.as_bytes()).unwrap(),
            Err(Refusal::UriTooLong)
        );
        let many = format!("GET / HTTP/1.1\r\n{}\r\n", "X-A: b\r\n".repeat(2000));
        assert_eq!(
            read(many.as_bytes()).unwrap(),
            Err(Refusal::HeadersTooLarge)
        );
        for bad in [
            &b"GET /\r\n\r\n"[..],
            b"GET / HTTP/2\r\n\r\n",
            b"GET x HTTP/1.1\r\n\r\n",
            b"G3T / HTTP/1.1\r\n\r\n",
            b"\xff / HTTP/1.1\r\n\r\n",
            b"GET  / HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(parse_head(bad), Err(Refusal::BadRequest), "{bad:?}");
        }
        assert_eq!(
            parse_head(b"DELETE / HTTP/1.1\r\n\r\n"),
            Err(Refusal::MethodNotAllowed)
        );
        // A peer that closes mid-head gets no answer.
        assert!(read(b"GET / HTTP/1.1\r\n").is_err());
    }

    #[test]
    fn a_head_split_over_reads_is_found() {
        struct Trickle(Vec<u8>);
        impl Read for Trickle {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0.is_empty() {
                    return Ok(0);
                }
                buf[0] = self.0.remove(0);
                Ok(1)
            }
        }
        let mut trickle = Trickle(b"GET /metrics HTTP/1.1\r\n\r\n".to_vec());
        let request = read_head(
            &mut trickle,
            Instant::now() + Duration::from_secs(5),
            |_| Ok(()),
        );
        assert_eq!(request.unwrap().unwrap().path, "/metrics");
        let mut late = Trickle(b"GET / HTTP/1.1\r\n\r\n".to_vec());
        let past = read_head(&mut late, Instant::now(), |_| Ok(()));
        assert_eq!(past.unwrap(), Err(Refusal::Timeout));
    }

    #[test]
    fn a_405_says_what_is_allowed() {
        let bytes = Response::refusal(Refusal::MethodNotAllowed).to_bytes(false);
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
        assert!(text.contains("Allow: GET, HEAD\r\n"));
        assert!(text.ends_with("\r\n\r\n405 Method Not Allowed\n"));
    }
}
