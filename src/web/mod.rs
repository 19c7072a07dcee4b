//! The web endpoint (`--web ADDR:PORT` on `ls` and `ts`): read-only
//! statistics over HTTP/1.1.
//!
//! - `GET /metrics`: the Prometheus text format ([`metrics::to_prometheus`]).
//! - `GET /api/v1/stats`: the same as JSON ([`metrics::to_json`]), with a
//!   per-backend summary for the dashboard (docs/OBSERVE.md).
//! - `GET /`: a live dashboard page, served from the binary, that polls the
//!   JSON every second.
//!
//! One thread per connection through [`crate::server::serve`], with its
//! connection limit (an idle connection gives way to a newcomer). A request
//! head may take [`MAX_HEAD`](http::MAX_HEAD) bytes and must arrive within
//! [`HEAD_TIMEOUT`]; every response closes its connection. Nothing here can
//! change the server: the only thing a request does is read a snapshot.

pub mod http;
pub mod metrics;

use std::io;
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::log;
use crate::server::{Activity, ServeOptions, serve as accept_loop};
use crate::shutdown::Shutdown;
use http::Response;
use metrics::{Metrics, Value, json_string, quantile};

/// What the web server shows: a fresh snapshot each time it is called.
pub type Source = Arc<dyn Fn() -> Metrics + Send + Sync>;

/// HTTP connections served at once when none is given.
pub const DEFAULT_MAX_CONNECTIONS: usize = 64;

/// How long a request head may take to arrive once connected.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a response may take to be written.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// The dashboard page.
pub const DASHBOARD: &str = include_str!("dashboard.html");

/// Sent to a connection over the limit (a newline follows).
const BUSY: &str =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r";

/// How the web server runs.
#[derive(Clone, Copy, Debug)]
pub struct WebOptions {
    /// Most connections at once (see [`ServeOptions::max_connections`]).
    pub max_connections: usize,
    /// How long a request head may take to arrive.
    pub head_timeout: Duration,
}

impl Default for WebOptions {
    fn default() -> Self {
        WebOptions {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            head_timeout: HEAD_TIMEOUT,
        }
    }
}

/// Serves `source`'s metrics on `listener` until `shutdown` triggers.
///
/// # Errors
/// When the listener's address cannot be read.
pub fn serve(
    listener: TcpListener,
    source: Source,
    options: WebOptions,
    shutdown: &Shutdown,
) -> io::Result<()> {
    let serve_options = ServeOptions {
        max_connections: options.max_connections,
        busy_reply: BUSY,
        ..ServeOptions::new("web", Duration::from_millis(500))
    };
    accept_loop(
        listener,
        shutdown,
        &serve_options,
        move |stream, activity| {
            if let Err(e) = answer(&stream, &activity, &source, options.head_timeout) {
                log::info(format_args!("web: connection ended: {e}"));
            }
        },
    )
}

/// Reads one request from `stream` and answers it.
fn answer(
    stream: &TcpStream,
    activity: &Activity,
    source: &Source,
    head_timeout: Duration,
) -> io::Result<()> {
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let deadline = Instant::now() + head_timeout;
    let mut reader = stream;
    let read = http::read_head(&mut reader, deadline, |left| {
        stream.set_read_timeout(Some(left))
    })?;
    activity.received(1);
    let (response, head_only) = match read {
        Ok(request) => (route(&request.path, source), request.method == "HEAD"),
        Err(refusal) => (Response::refusal(refusal), false),
    };
    let mut writer = stream;
    let written = response.write_to(&mut writer, head_only);
    activity.answered(1);
    let _ = stream.shutdown(std::net::Shutdown::Both);
    written
}

/// The response for `path`.
pub fn route(path: &str, source: &Source) -> Response {
    match path {
        "/" | "/index.html" => Response::ok("text/html; charset=utf-8", DASHBOARD),
        "/metrics" => Response::ok(
            "text/plain; version=0.0.4; charset=utf-8",
            source().to_prometheus(),
        ),
        "/api/v1/stats" => Response::ok("application/json", stats_json(&source())),
        _ => Response::error(404, "Not Found"),
    }
}

/// The JSON of `/api/v1/stats`: the metrics, the version, the server's
/// clock (`time_ms`, milliseconds since the Unix epoch, which rates are
/// computed against), and a `backends` summary (docs/OBSERVE.md).
pub fn stats_json(metrics: &Metrics) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    metrics.to_json(&[
        ("version", json_string(env!("CARGO_PKG_VERSION"))),
        ("time_ms", now.to_string()),
        ("backends", backends_json(metrics)),
    ])
}

/// One object per backend (of `dnslb_backend_up`'s samples): its label,
/// whether it is up, its counters and its response time's p50 and p99 in
/// seconds (`null` without answers).
fn backends_json(metrics: &Metrics) -> String {
    let Some(up) = metrics
        .families
        .iter()
        .find(|f| f.name == "dnslb_backend_up")
    else {
        return "[]".to_string();
    };
    let histogram = metrics
        .families
        .iter()
        .find(|f| f.name == "dnslb_backend_response_seconds");
    let mut items = Vec::new();
    for sample in &up.samples {
        let Some((_, name)) = sample.labels.iter().find(|(k, _)| k == "backend") else {
            continue;
        };
        let with = [("backend", name.as_str())];
        let get = |family: &str| metrics.get(family, &with).unwrap_or(0.0);
        let buckets = histogram.and_then(|h| {
            h.samples.iter().find_map(|s| match &s.value {
                Value::Histogram { buckets, .. }
                    if s.labels.iter().any(|(k, v)| k == "backend" && v == name) =>
                {
                    Some(buckets.clone())
                }
                _ => None,
            })
        });
        let q = |q: f64| {
            buckets
                .as_deref()
                .and_then(|b| quantile(b, q))
                // To the microsecond.
                .map_or_else(
                    || "null".to_string(),
                    |s| format!("{}", (s * 1e6).round() / 1e6),
                )
        };
        items.push(format!(
            "{{\"backend\":{},\"up\":{},\"queries\":{},\"answers\":{},\"timeouts\":{},\
             \"p50_seconds\":{},\"p99_seconds\":{}}}",
            json_string(name),
            get("dnslb_backend_up") == 1.0,
            get("dnslb_backend_queries_total"),
            get("dnslb_backend_answers_total"),
            get("dnslb_backend_timeouts_total"),
            q(0.5),
            q(0.99)
        ));
    }
    format!("[{}]", items.join(","))
}

/// Threads in this process now (`Threads:` of `/proc/self/status`).
pub fn threads() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))?
        .trim()
        .parse()
        .ok()
}

/// Adds the families every role has: `dnslb_threads` and
/// `dnslb_build_info`.
pub fn add_process(metrics: &mut Metrics) {
    use metrics::Kind;
    metrics.add_one(
        "dnslb_threads",
        "Threads in the dnslb process.",
        Kind::Gauge,
        threads().unwrap_or(0) as f64,
    );
    metrics.add(
        "dnslb_build_info",
        "The dnslb version, as a label; always 1.",
        Kind::Gauge,
        vec![(
            metrics::labels(&[("version", env!("CARGO_PKG_VERSION"))]),
            1.0,
        )],
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics::{Kind, Sample, cumulative, labels};

    #[test]
    fn the_backends_summary_names_each_backend_with_its_quantiles() {
        let mut m = Metrics::new("ls");
        m.add(
            "dnslb_backend_up",
            "up",
            Kind::Gauge,
            vec![
                (labels(&[("backend", "ts1")]), 1.0),
                (labels(&[("backend", "ts2")]), 0.0),
            ],
        );
        m.add(
            "dnslb_backend_queries_total",
            "q",
            Kind::Counter,
            vec![(labels(&[("backend", "ts1")]), 4.0)],
        );
        m.push(
            "dnslb_backend_response_seconds",
            "r",
            Kind::Histogram,
            vec![Sample {
                labels: labels(&[("backend", "ts1")]),
                value: Value::Histogram {
                    buckets: cumulative(&[0.001, 0.01], &[0, 4, 0]),
                    sum: 0.02,
                },
            }],
        );
        let json = backends_json(&m);
        assert_eq!(
            json,
            "[{\"backend\":\"ts1\",\"up\":true,\"queries\":4,\"answers\":0,\"timeouts\":0,\
             \"p50_seconds\":0.0055,\"p99_seconds\":0.00991},\
             {\"backend\":\"ts2\",\"up\":false,\"queries\":0,\"answers\":0,\"timeouts\":0,\
             \"p50_seconds\":null,\"p99_seconds\":null}]"
        );
        assert!(threads().is_some_and(|n| n >= 1));
    }
}
