//! A snapshot of a server's metrics as plain data, and its two renderings:
//! the Prometheus text exposition format (0.0.4) for `/metrics` and JSON for
//! `/api/v1/stats`. No I/O: the web server renders what a role's source
//! gives it.

use std::fmt::Write as _;

/// What kind of metric a family is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up; its name ends in `_total`.
    Counter,
    /// A value now.
    Gauge,
    /// Observations in cumulative buckets, with their sum and count.
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One sample's value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A counter's or gauge's value.
    Number(f64),
    /// A histogram: `(upper bound, observations at most that)` in
    /// increasing order of bound (cumulative, `+Inf` last), their sum.
    Histogram { buckets: Vec<(f64, u64)>, sum: f64 },
}

/// One labelled sample of a family.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub labels: Vec<(String, String)>,
    pub value: Value,
}

/// A metric family: a name, its help text, its kind and its samples.
#[derive(Clone, Debug, PartialEq)]
pub struct Family {
    pub name: String,
    pub help: String,
    pub kind: Kind,
    pub samples: Vec<Sample>,
}

/// Every family of one server at one moment, and which role it is.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metrics {
    /// `ls` or `ts`.
    pub role: String,
    pub families: Vec<Family>,
}

/// Builds labels from string pairs.
pub fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Metrics {
    /// Metrics of `role`, with no family yet.
    pub fn new(role: &str) -> Metrics {
        Metrics {
            role: role.to_string(),
            families: Vec::new(),
        }
    }

    /// Adds a family of numbers: `(labels, value)` each.
    pub fn add(
        &mut self,
        name: &str,
        help: &str,
        kind: Kind,
        samples: Vec<(Vec<(String, String)>, f64)>,
    ) {
        let samples = samples
            .into_iter()
            .map(|(labels, value)| Sample {
                labels,
                value: Value::Number(value),
            })
            .collect();
        self.push(name, help, kind, samples);
    }

    /// Adds a family of one unlabelled number.
    pub fn add_one(&mut self, name: &str, help: &str, kind: Kind, value: f64) {
        self.add(name, help, kind, vec![(Vec::new(), value)]);
    }

    /// Adds a family of samples of any kind.
    pub fn push(&mut self, name: &str, help: &str, kind: Kind, samples: Vec<Sample>) {
        self.families.push(Family {
            name: name.to_string(),
            help: help.to_string(),
            kind,
            samples,
        });
    }

    /// The value of family `name`'s sample whose labels include every pair
    /// of `with`, if a number.
    pub fn get(&self, name: &str, with: &[(&str, &str)]) -> Option<f64> {
        let family = self.families.iter().find(|f| f.name == name)?;
        family.samples.iter().find_map(|s| match &s.value {
            Value::Number(n) if has_labels(&s.labels, with) => Some(*n),
            _ => None,
        })
    }
}

fn has_labels(labels: &[(String, String)], with: &[(&str, &str)]) -> bool {
    with.iter()
        .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
}

/// Cumulative histogram buckets from per-bucket counts (the last past
/// every bound) and their bounds: `(bound, cumulative)`, `+Inf` last.
///
/// ```
/// use dnslb::web::metrics::cumulative;
/// assert_eq!(cumulative(&[0.1, 1.0], &[2, 0, 1]), vec![(0.1, 2), (1.0, 2), (f64::INFINITY, 3)]);
/// ```
pub fn cumulative(bounds: &[f64], counts: &[u64]) -> Vec<(f64, u64)> {
    let mut total = 0;
    bounds
        .iter()
        .copied()
        .chain(std::iter::once(f64::INFINITY))
        .zip(counts)
        .map(|(bound, &n)| {
            total += n;
            (bound, total)
        })
        .collect()
}

/// The `q` quantile (0 to 1) of cumulative buckets, interpolated within
/// its bucket as Prometheus's `histogram_quantile` does; `None` without
/// observations. A quantile in the `+Inf` bucket is the last finite bound.
///
/// ```
/// use dnslb::web::metrics::quantile;
/// let buckets = [(0.001, 0), (0.01, 10), (0.1, 10), (f64::INFINITY, 10)];
/// assert!((quantile(&buckets, 0.5).unwrap() - 0.0055).abs() < 1e-12);
/// assert_eq!(quantile(&[(1.0, 0), (f64::INFINITY, 0)], 0.5), None);
/// ```
pub fn quantile(buckets: &[(f64, u64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut below = (0.0, 0u64);
    for &(bound, count) in buckets {
        if count as f64 >= rank {
            if bound.is_infinite() {
                return Some(below.0);
            }
            let in_bucket = (count - below.1) as f64;
            let fraction = if in_bucket > 0.0 {
                (rank - below.1 as f64) / in_bucket
            } else {
                1.0
            };
            return Some(below.0 + (bound - below.0) * fraction);
        }
        below = (bound, count);
    }
    Some(below.0)
}

/// A number as Prometheus writes it: integers without a fraction, `+Inf`.
fn number(value: f64) -> String {
    if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else if value.is_nan() {
        "NaN".to_string()
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

/// Help text with `\` and newlines escaped.
fn escape_help(help: &str) -> String {
    help.replace('\\', r"\\").replace('\n', r"\n")
}

fn label_set(labels: &[(String, String)], extra: Option<(&str, &str)>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
        .collect();
    if let Some((k, v)) = extra {
        parts.push(format!("{k}=\"{}\"", escape_label(v)));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

/// The Prometheus text exposition format (version 0.0.4): `# HELP` and
/// `# TYPE` before each family's samples, histograms as `_bucket{le=...}`
/// lines ending with `+Inf`, then `_sum` and `_count`.
///
/// ```
/// use dnslb::web::metrics::{Kind, Metrics};
/// let mut m = Metrics::new("ls");
/// m.add_one("dnslb_clients", "Clients connected.", Kind::Gauge, 2.0);
/// assert_eq!(m.to_prometheus(),
///     "# HELP dnslb_clients Clients connected.\n# TYPE dnslb_clients gauge\ndnslb_clients 2\n");
/// ```
pub fn to_prometheus(metrics: &Metrics) -> String {
    let mut out = String::new();
    for family in &metrics.families {
        let name = &family.name;
        let _ = writeln!(out, "# HELP {name} {}", escape_help(&family.help));
        let _ = writeln!(out, "# TYPE {name} {}", family.kind.name());
        for sample in &family.samples {
            match &sample.value {
                Value::Number(n) => {
                    let _ = writeln!(
                        out,
                        "{name}{} {}",
                        label_set(&sample.labels, None),
                        number(*n)
                    );
                }
                Value::Histogram { buckets, sum } => {
                    for (bound, count) in buckets {
                        let le = number(*bound);
                        let labels = label_set(&sample.labels, Some(("le", &le)));
                        let _ = writeln!(out, "{name}_bucket{labels} {count}");
                    }
                    let labels = label_set(&sample.labels, None);
                    let count = buckets.last().map_or(0, |b| b.1);
                    let _ = writeln!(out, "{name}_sum{labels} {}", number(*sum));
                    let _ = writeln!(out, "{name}_count{labels} {count}");
                }
            }
        }
    }
    out
}

impl Metrics {
    /// See [`to_prometheus`].
    pub fn to_prometheus(&self) -> String {
        to_prometheus(self)
    }

    /// See [`to_json`].
    pub fn to_json(&self, extra: &[(&str, String)]) -> String {
        to_json(self, extra)
    }
}

/// Appends `text` to `out` as the inside of a JSON string.
///
/// ```
/// let mut out = String::new();
/// dnslb::web::metrics::json_escape_into(&mut out, "a\"b\\c\nd\u{1}");
/// assert_eq!(out, r#"a\"b\\c\nd\u0001"#);
/// ```
pub fn json_escape_into(out: &mut String, text: &str) {
    let plain = |b: &u8| *b >= 0x20 && *b != b'"' && *b != b'\\' && *b != 0x7f;
    if text.bytes().all(|b| plain(&b)) {
        out.push_str(text);
        return;
    }
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
}

/// A JSON string literal.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    json_escape_into(&mut out, s);
    out.push('"');
    out
}

/// A number as JSON has it (no infinities: `null`).
fn json_number(value: f64) -> String {
    if value.is_finite() {
        number(value)
    } else {
        "null".to_string()
    }
}

/// The metrics as one JSON object (docs/OBSERVE.md gives the schema):
/// `{"role": ..., <extra members>, "metrics": [{"name", "help", "type",
/// "samples": [{"labels": {...}, "value": n}]}]}`; a histogram's sample has
/// `"buckets": [{"le": bound or null for +Inf, "count": cumulative}]`,
/// `"sum"` and `"count"` instead of `"value"`. `extra` members are raw
/// JSON values.
///
/// ```
/// use dnslb::web::metrics::{Kind, Metrics};
/// let mut m = Metrics::new("ts");
/// m.add_one("dnslb_threads", "Threads.", Kind::Gauge, 5.0);
/// assert_eq!(m.to_json(&[]), r#"{"role":"ts","metrics":[{"name":"dnslb_threads","help":"Threads.","type":"gauge","samples":[{"labels":{},"value":5}]}]}"#);
/// ```
pub fn to_json(metrics: &Metrics, extra: &[(&str, String)]) -> String {
    let mut out = format!("{{\"role\":{}", json_string(&metrics.role));
    for (key, value) in extra {
        let _ = write!(out, ",{}:{value}", json_string(key));
    }
    out.push_str(",\"metrics\":[");
    for (i, family) in metrics.families.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(
            out,
            "{{\"name\":{},\"help\":{},\"type\":\"{}\",\"samples\":[",
            json_string(&family.name),
            json_string(&family.help),
            family.kind.name()
        );
        for (j, sample) in family.samples.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push_str("{\"labels\":{");
            for (k, (key, value)) in sample.labels.iter().enumerate() {
                if k > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{}:{}", json_string(key), json_string(value));
            }
            out.push('}');
            match &sample.value {
                Value::Number(n) => {
                    let _ = write!(out, ",\"value\":{}", json_number(*n));
                }
                Value::Histogram { buckets, sum } => {
                    out.push_str(",\"buckets\":[");
                    for (b, (bound, count)) in buckets.iter().enumerate() {
                        if b > 0 {
                            out.push(',');
                        }
                        let _ = write!(out, "{{\"le\":{},\"count\":{count}}}", json_number(*bound));
                    }
                    let count = buckets.last().map_or(0, |b| b.1);
                    let _ = write!(out, "],\"sum\":{},\"count\":{count}", json_number(*sum));
                }
            }
            out.push('}');
        }
        out.push_str("]}");
    }
    out.push_str("]}");
    out
}

pub mod check {
    //! A checker of the exposition format's rules that `promtool check
    //! metrics` applies (HELP and TYPE before the samples, `_total` on
    //! counters, cumulative histogram buckets ending with `+Inf` and a
    //! matching `_count`, label escaping), for tests.

    use std::collections::{HashMap, HashSet};

    /// Checks `text`; returns every sample as `name{labels}` to value.
    ///
    /// # Errors
    /// The first line that breaks a rule, and which rule.
    pub fn parse(text: &str) -> Result<HashMap<String, f64>, String> {
        let mut samples = HashMap::new();
        let mut types: HashMap<String, String> = HashMap::new();
        let mut helped = HashSet::new();
        let mut current: Option<String> = None;
        let mut last_le: HashMap<String, (f64, f64)> = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let at = |why: &str| format!("line {}: {why}: {line:?}", n + 1);
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap_or("");
                if !helped.insert(name.to_string()) {
                    return Err(at("second HELP"));
                }
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut words = rest.split(' ');
                let (name, kind) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                if !["counter", "gauge", "histogram"].contains(&kind) {
                    return Err(at("unknown type"));
                }
                if kind == "counter" && !name.ends_with("_total") {
                    return Err(at("counter without _total"));
                }
                if types.insert(name.to_string(), kind.to_string()).is_some() {
                    return Err(at("second TYPE"));
                }
                if !helped.contains(name) {
                    return Err(at("TYPE without HELP"));
                }
                current = Some(name.to_string());
                continue;
            }
            if line.starts_with('#') || line.is_empty() {
                return Err(at("stray line"));
            }
            let (series, value) = line.rsplit_once(' ').ok_or_else(|| at("no value"))?;
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                v => v.parse().map_err(|_| at("bad value"))?,
            };
            let name_end = series.find('{').unwrap_or(series.len());
            let name = &series[..name_end];
            if !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            {
                return Err(at("bad name"));
            }
            let labels = parse_labels(&series[name_end..]).ok_or_else(|| at("bad labels"))?;
            let family = current.as_deref().ok_or_else(|| at("sample before TYPE"))?;
            let kind = &types[family];
            if kind == "histogram" {
                let suffix = name.strip_prefix(family).unwrap_or("");
                if !["_bucket", "_sum", "_count"].contains(&suffix) {
                    return Err(at("not a histogram series"));
                }
                let rest: Vec<String> = labels
                    .iter()
                    .filter(|(k, _)| k != "le")
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                let key = rest.join(",");
                if suffix == "_bucket" {
                    let le = labels
                        .iter()
                        .find(|(k, _)| k == "le")
                        .ok_or_else(|| at("bucket without le"))?;
                    let le: f64 = match le.1.as_str() {
                        "+Inf" => f64::INFINITY,
                        v => v.parse().map_err(|_| at("bad le"))?,
                    };
                    if let Some(&(prev_le, prev_count)) = last_le.get(&key)
                        && (le <= prev_le || value < prev_count)
                    {
                        return Err(at("buckets out of order or not cumulative"));
                    }
                    last_le.insert(key, (le, value));
                } else if suffix == "_count" {
                    match last_le.get(&key) {
                        Some(&(le, count)) if le.is_infinite() && count == value => {}
                        _ => return Err(at("_count without a matching +Inf bucket")),
                    }
                }
            } else if name != family {
                return Err(at("sample of another family"));
            }
            if samples.insert(series.to_string(), value).is_some() {
                return Err(at("duplicate series"));
            }
        }
        Ok(samples)
    }

    fn parse_labels(text: &str) -> Option<Vec<(String, String)>> {
        if text.is_empty() {
            return Some(Vec::new());
        }
        let inner = text.strip_prefix('{')?.strip_suffix('}')?;
        let mut labels = Vec::new();
        let mut chars = inner.chars().peekable();
        while chars.peek().is_some() {
            let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return None;
            }
            if chars.next()? != '"' {
                return None;
            }
            let mut value = String::new();
            loop {
                match chars.next()? {
                    '\\' => match chars.next()? {
                        '\\' => value.push('\\'),
                        '"' => value.push('"'),
                        'n' => value.push('\n'),
                        _ => return None,
                    },
                    '"' => break,
                    c => value.push(c),
                }
            }
            labels.push((key, value));
            match chars.next() {
                None => break,
                Some(',') => {}
                Some(_) => return None,
            }
        }
        Some(labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Metrics {
        let mut m = Metrics::new("ls");
        m.add(
            "dnslb_backend_queries_total",
            "Queries asked of each TS.",
            Kind::Counter,
            vec![
                (labels(&[("backend", "ts1")]), 3.0),
                (labels(&[("backend", "a \"quoted\\\" \nname")]), 1.0),
            ],
        );
        m.push(
            "dnslb_backend_response_seconds",
            "Response time.",
            Kind::Histogram,
            vec![Sample {
                labels: labels(&[("backend", "ts1")]),
                value: Value::Histogram {
                    buckets: cumulative(&[0.001, 0.01], &[1, 2, 0]),
                    sum: 0.0125,
                },
            }],
        );
        m.add_one("dnslb_threads", "Threads.\nnow", Kind::Gauge, 7.0);
        m
    }

    #[test]
    fn prometheus_text_passes_the_format_rules() {
        let text = sample().to_prometheus();
        let samples = check::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(samples["dnslb_backend_queries_total{backend=\"ts1\"}"], 3.0);
        assert_eq!(
            samples["dnslb_backend_response_seconds_bucket{backend=\"ts1\",le=\"+Inf\"}"],
            3.0
        );
        assert_eq!(
            samples["dnslb_backend_response_seconds_bucket{backend=\"ts1\",le=\"0.01\"}"],
            3.0
        );
        assert_eq!(
            samples["dnslb_backend_response_seconds_count{backend=\"ts1\"}"],
            3.0
        );
        assert!(text.contains(r#"{backend="a \"quoted\\\" \nname"} 1"#));
        assert!(text.contains("# HELP dnslb_threads Threads.\\nnow\n"));
    }

    #[test]
    fn the_checker_rejects_what_promtool_rejects() {
        let bad = [
            "# HELP x_count c\n# TYPE x_count counter\nx_count 1\n",
            "x 1\n",
            "# HELP h h\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n",
            "# HELP h h\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_count 2\n",
            "# HELP g g\n# TYPE g gauge\ng{a=\"x\"\"} 1\n",
        ];
        for text in bad {
            assert!(check::parse(text).is_err(), "accepted {text:?}");
        }
    }

    #[test]
    fn quantiles_interpolate_within_their_bucket() {
        let buckets = cumulative(&[0.001, 0.01, 0.1], &[0, 50, 50, 0]);
        assert!((quantile(&buckets, 0.5).unwrap() - 0.01).abs() < 1e-12);
        let p99 = quantile(&buckets, 0.99).unwrap();
        assert!((p99 - 0.0982).abs() < 1e-9, "{p99}");
        // Past every bound: the last finite bound.
        let slow = cumulative(&[0.001], &[0, 4]);
        assert_eq!(quantile(&slow, 0.5), Some(0.001));
    }

    #[test]
    fn json_escapes_and_writes_histograms() {
        let json = sample().to_json(&[("version", json_string("0.1.0"))]);
        assert!(json.starts_with(r#"{"role":"ls","version":"0.1.0","metrics":["#));
        assert!(json.contains(r#""backend":"a \"quoted\\\" \nname""#));
        assert!(json.contains(
            r#""buckets":[{"le":0.001,"count":1},{"le":0.01,"count":3},{"le":null,"count":3}],"sum":0.0125,"count":3"#
        ));
        assert_eq!(json_string("\u{1}"), r#""\u0001""#);
    }
}
