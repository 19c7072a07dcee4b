//! A trace drawn as a sequence diagram, written as SVG 1.1 with std only.
//!
//! One vertical lane per client address, per thread and per TS; time runs
//! down. Each event is one row: `arrive` an arrow client → thread, `send`
//! thread → TS, `reply` TS → thread, `write` thread → client, `retry` a
//! dashed arrow thread → TS; `settle`, `cache` and unknown events are marks
//! on their thread's lane. Where a query moves from one thread to another
//! (the reply read on a link thread, settled on the worker) a dashed
//! hand-off arrow joins the two. Every arrow is labelled with the query's
//! name and its time since the query arrived; the left margin holds each
//! row's time since the LS started. Each query has its colour.
//!
//! Time runs down on a compressed axis: a row is one line of labels below
//! the previous one, plus a height growing with the square root of the
//! time between them, so 200 µs reads longer than 20 µs and a millisecond
//! still fits. A stretch longer than [`Scale::idle_us`] (a 5 s timeout
//! among hits of a fraction of a millisecond) is drawn as a break band
//! saying how long it was, so a picture of fast hits and one timeout stays
//! readable. The left margin gives every row's exact time.

use std::collections::HashMap;
use std::fmt::Write;

use super::parse::{Event, Kind};
use super::query::Query;

/// Type sizes, in pixels: large, for a projector.
const TITLE_FONT: u32 = 28;
const LANE_FONT: u32 = 22;
const LABEL_FONT: u32 = 19;
const SMALL_FONT: u32 = 16;
/// Room for the time column on the left.
const LEFT: u32 = 150;
/// From one lane to the next.
const LANE_GAP: u32 = 260;
/// Where the lane headers start, and their height.
const HEADER_TOP: u32 = 70;
const HEADER_HEIGHT: u32 = 66;
/// The least distance between two rows, and the height of a break band.
const MIN_ROW: f64 = 46.0;
const BREAK_ROW: f64 = 100.0;
/// The height of a row [`Scale::idle_us`] after the previous one.
const IDLE_SPAN: f64 = 160.0;
/// Names longer than this are shortened in labels.
const SHORT_NAME: usize = 20;

/// One colour per query, in turn; dark enough for text on white.
const COLOURS: &[&str] = &[
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#e86a00", "#8c564b", "#d1459d", "#0f8a96",
    "#7a7b10", "#555555",
];

/// How time maps to height.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    /// A gap between two rows longer than this is drawn as a break.
    pub idle_us: u64,
}

impl Scale {
    /// The scale for rows at `times` (sorted): a gap counts as idle when it
    /// is more than ten times the median gap, and at least a millisecond.
    pub fn for_times(times: &[u64]) -> Scale {
        let mut gaps: Vec<u64> = times
            .windows(2)
            .map(|w| w[1].saturating_sub(w[0]))
            .filter(|&g| g > 0)
            .collect();
        gaps.sort_unstable();
        let median = gaps.get(gaps.len() / 2).copied().unwrap_or(0);
        Scale {
            idle_us: (median * 10).max(1000),
        }
    }

    /// How far below the previous row a row `gap_us` later goes, and
    /// whether the gap is a break.
    fn step(&self, gap_us: u64) -> (f64, bool) {
        if gap_us > self.idle_us {
            (BREAK_ROW, true)
        } else {
            let share = (gap_us as f64 / self.idle_us as f64).sqrt();
            (MIN_ROW + (IDLE_SPAN - MIN_ROW) * share, false)
        }
    }
}

/// What a lane stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum LaneKind {
    Client,
    Thread,
    Ts,
}

struct Lane {
    kind: LaneKind,
    title: String,
}

/// The lanes of a diagram, in order: clients, threads, TSes.
struct Lanes {
    lanes: Vec<Lane>,
    index: HashMap<(LaneKind, String), usize>,
}

impl Lanes {
    fn of(queries: &[Query], rows: &[(usize, &Event)]) -> Lanes {
        let mut clients: Vec<String> = Vec::new();
        for query in queries {
            let client = client_of(query);
            let needs = query
                .events
                .iter()
                .any(|e| matches!(e.kind, Kind::Arrive | Kind::Write));
            if needs && !clients.contains(&client) {
                clients.push(client);
            }
        }
        let mut threads: Vec<String> = Vec::new();
        let mut tses: Vec<String> = Vec::new();
        for (_, event) in rows {
            if !threads.contains(&event.thread) {
                threads.push(event.thread.clone());
            }
            if let Some(ts) = &event.ts
                && !tses.contains(ts)
            {
                tses.push(ts.clone());
            }
        }
        tses.sort_by_key(|ts| natural_key(ts));
        // A thread named after a TS (`link-1-ts1`) stands next to the TSes,
        // in their order.
        let ts_of = |thread: &str| {
            tses.iter().position(|ts| {
                thread
                    .strip_suffix(ts.as_str())
                    .is_some_and(|rest| rest.ends_with('-'))
            })
        };
        let (mut by_ts, mut threads): (Vec<String>, Vec<String>) =
            threads.into_iter().partition(|t| ts_of(t).is_some());
        by_ts.sort_by_key(|t| {
            let ts = ts_of(t).expect("partitioned by it");
            let stem = &t[..t.len() - tses[ts].len() - 1];
            (natural_key(stem), ts)
        });
        threads.append(&mut by_ts);
        let mut lanes = Lanes {
            lanes: Vec::new(),
            index: HashMap::new(),
        };
        for (kind, titles) in [
            (LaneKind::Client, clients),
            (LaneKind::Thread, threads),
            (LaneKind::Ts, tses),
        ] {
            for title in titles {
                lanes.index.insert((kind, title.clone()), lanes.lanes.len());
                lanes.lanes.push(Lane { kind, title });
            }
        }
        lanes
    }

    fn find(&self, kind: LaneKind, title: &str) -> Option<usize> {
        self.index.get(&(kind, title.to_string())).copied()
    }

    fn x(lane: usize) -> f64 {
        f64::from(LEFT + LANE_GAP / 2) + lane as f64 * f64::from(LANE_GAP)
    }
}

/// The lane title of a query's client: its address, or `client`.
fn client_of(query: &Query) -> String {
    query
        .first(&Kind::Arrive)
        .and_then(|e| e.client.clone())
        .unwrap_or_else(|| "client".to_string())
}

/// `ts2` before `ts10`: the name with its trailing number as a number.
fn natural_key(name: &str) -> (String, u64, String) {
    let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (stem, number) = name.split_at(name.len() - digits);
    (
        stem.to_string(),
        number.parse().unwrap_or(0),
        name.to_string(),
    )
}

/// Text made safe for XML: `&`, `<`, `>`, `"` and `'` escaped, and the
/// characters XML 1.0 cannot hold replaced by U+FFFD.
///
/// ```
/// use dnslb::trace::svg::escape;
/// assert_eq!(escape("a<b & \"c\"\u{1}"), "a&lt;b &amp; &quot;c&quot;\u{FFFD}");
/// ```
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(' '),
            c if (c as u32) < 0x20 || matches!(c, '\u{FFFE}' | '\u{FFFF}') => {
                out.push(char::REPLACEMENT_CHARACTER);
            }
            c => out.push(c),
        }
    }
    out
}

/// A name as labels show it: at most [`SHORT_NAME`] characters.
///
/// ```
/// use dnslb::trace::svg::short_name;
/// assert_eq!(short_name("www.google.com"), "www.google.com");
/// assert_eq!(short_name("www.princeton.edu"), "www.princeton.edu");
/// assert_eq!(short_name("mail.cs.princeton.edu.example"), "mail.cs.princeton.e…");
/// ```
pub fn short_name(name: &str) -> String {
    if name.chars().count() <= SHORT_NAME {
        return name.to_string();
    }
    let mut short: String = name.chars().take(SHORT_NAME - 1).collect();
    short.push('…');
    short
}

/// A time in microseconds as the labels show it, in milliseconds.
///
/// ```
/// use dnslb::trace::svg::millis;
/// assert_eq!(millis(0), "0 ms");
/// assert_eq!(millis(2), "+0.002 ms");
/// assert_eq!(millis(420), "+0.420 ms");
/// assert_eq!(millis(4_200), "+4.20 ms");
/// assert_eq!(millis(12_345), "+12.3 ms");
/// assert_eq!(millis(5_000_400), "+5000 ms");
/// assert_eq!(millis(-50), "-0.050 ms");
/// ```
pub fn millis(us: i64) -> String {
    if us == 0 {
        return "0 ms".to_string();
    }
    let sign = if us > 0 { "+" } else { "-" };
    let ms = us.unsigned_abs() as f64 / 1000.0;
    if ms < 1.0 {
        format!("{sign}{ms:.3} ms")
    } else if ms < 10.0 {
        format!("{sign}{ms:.2} ms")
    } else if ms < 1000.0 {
        format!("{sign}{ms:.1} ms")
    } else {
        format!("{sign}{ms:.0} ms")
    }
}

/// A rough width of `text` in a sans-serif font of `size` pixels.
fn text_width(text: &str, size: u32) -> f64 {
    text.chars().count() as f64 * f64::from(size) * 0.58
}

/// Draws `queries` (as `query::select` picked them) as one SVG document
/// titled `title`.
pub fn render(queries: &[Query], title: &str) -> String {
    // Every event of the picked queries, by time (then query, then file order).
    let mut rows: Vec<(usize, &Event)> = queries
        .iter()
        .enumerate()
        .flat_map(|(q, query)| query.events.iter().map(move |e| (q, e)))
        .collect();
    rows.sort_by_key(|(q, e)| (e.t_us, *q, e.line));
    let lanes = Lanes::of(queries, &rows);
    let times: Vec<u64> = rows.iter().map(|(_, e)| e.t_us).collect();
    let scale = Scale::for_times(&times);

    // Each row's height, and the break bands between rows.
    let first_row = f64::from(HEADER_TOP + HEADER_HEIGHT) + 50.0;
    let mut ys = Vec::with_capacity(rows.len());
    let mut breaks = Vec::new();
    let mut y = first_row;
    for (i, &t) in times.iter().enumerate() {
        if i > 0 {
            let gap = t - times[i - 1];
            let (step, is_break) = scale.step(gap);
            if is_break {
                breaks.push((y, y + step, gap));
            }
            y += step;
        }
        ys.push(y);
    }
    let bottom = y + 40.0;
    let legend_top = bottom + 30.0;
    let legend_line = f64::from(LABEL_FONT) * 1.6;
    let legend_height = legend_line * (queries.len() as f64 + 1.0);
    let width = f64::from(LEFT + 40) + lanes.lanes.len().max(1) as f64 * f64::from(LANE_GAP);
    let legend_width = queries
        .iter()
        .map(|q| 70.0 + text_width(&q.to_string(), LABEL_FONT))
        .fold(0.0, f64::max);
    let width = width
        .max(legend_width + 40.0)
        .max(text_width(title, TITLE_FONT) + 60.0);
    let height = legend_top + legend_height + 20.0;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{w:.0}" height="{h:.0}" viewBox="0 0 {w:.0} {h:.0}" font-family="DejaVu Sans, Verdana, Arial, sans-serif">
<title>{title}</title>"#,
        w = width,
        h = height,
        title = escape(title)
    );
    svg.push_str("<defs>\n");
    for (i, colour) in COLOURS.iter().enumerate() {
        let _ = writeln!(
            svg,
            r#"<marker id="head{i}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="9" markerHeight="9" orient="auto" markerUnits="userSpaceOnUse"><path d="M0,0 L10,5 L0,10 z" fill="{colour}"/></marker>"#
        );
    }
    svg.push_str("</defs>\n");
    let _ = writeln!(
        svg,
        r##"<rect x="0" y="0" width="{width:.0}" height="{height:.0}" fill="#ffffff"/>"##
    );
    let _ = writeln!(
        svg,
        r##"<text x="24" y="44" font-size="{TITLE_FONT}" font-weight="bold" fill="#222222">{}</text>"##,
        escape(title)
    );

    // Lanes: a header box and a line down.
    let _ = writeln!(
        svg,
        r##"<text class="axis" x="{x}" y="{y}" font-size="{SMALL_FONT}" fill="#666666" text-anchor="middle">ms since</text><text x="{x}" y="{y2}" font-size="{SMALL_FONT}" fill="#666666" text-anchor="middle">start</text>"##,
        x = LEFT / 2,
        y = HEADER_TOP + 28,
        y2 = HEADER_TOP + 48
    );
    for (i, lane) in lanes.lanes.iter().enumerate() {
        let x = Lanes::x(i);
        let (kind, fill, caption) = match lane.kind {
            LaneKind::Client => ("client", "#dcebf7", "client"),
            LaneKind::Thread => ("thread", "#ececec", "thread"),
            LaneKind::Ts => ("ts", "#fbefc9", "TS"),
        };
        let box_width = f64::from(LANE_GAP - 36);
        let title = fit(&lane.title, box_width, LANE_FONT);
        let _ = writeln!(
            svg,
            r##"<g class="lane {kind}"><line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{bottom:.1}" stroke="#9a9a9a" stroke-width="2" stroke-dasharray="8,6"/><rect x="{bx:.1}" y="{HEADER_TOP}" width="{box_width:.0}" height="{HEADER_HEIGHT}" rx="8" fill="{fill}" stroke="#777777" stroke-width="1.5"/><text x="{x:.1}" y="{cy}" font-size="{SMALL_FONT}" fill="#555555" text-anchor="middle">{caption}</text><text class="lane-title" x="{x:.1}" y="{ty}" font-size="{LANE_FONT}" font-weight="bold" fill="#222222" text-anchor="middle">{title}</text></g>"##,
            top = HEADER_TOP + HEADER_HEIGHT,
            bx = x - box_width / 2.0,
            cy = HEADER_TOP + 22,
            ty = HEADER_TOP + 52,
            title = escape(&title),
        );
    }

    // Breaks: a band across the lanes saying how long nothing happened.
    for &(from, to, gap) in &breaks {
        let (top, low) = (from + 14.0, to - 34.0);
        let mid = (top + low) / 2.0;
        let _ = writeln!(
            svg,
            r##"<g class="break"><rect x="{left}" y="{top:.1}" width="{w:.0}" height="{h:.1}" fill="#f4f4f4"/>{edge_top}{edge_low}<text x="{cx:.0}" y="{ty:.1}" font-size="{LABEL_FONT}" font-style="italic" fill="#555555" text-anchor="middle">{gap} with nothing to draw (not to scale)</text></g>"##,
            left = LEFT - 10,
            w = width - f64::from(LEFT) - 10.0,
            h = low - top,
            edge_top = zigzag(f64::from(LEFT) - 10.0, width - 20.0, top),
            edge_low = zigzag(f64::from(LEFT) - 10.0, width - 20.0, low),
            cx = f64::from(LEFT) + (width - f64::from(LEFT)) / 2.0,
            ty = mid + f64::from(LABEL_FONT) / 3.0,
            gap = millis(gap as i64).trim_start_matches('+'),
        );
    }

    // Events.
    let colour_of = |q: usize| (q % COLOURS.len(), COLOURS[q % COLOURS.len()]);
    let mut owner: HashMap<usize, (usize, f64)> = HashMap::new();
    let mut replies: HashMap<usize, Vec<(Option<String>, usize, f64)>> = HashMap::new();
    for (row, &(q, event)) in rows.iter().enumerate() {
        let y = ys[row];
        let query = &queries[q];
        let (c, colour) = colour_of(q);
        let _ = writeln!(
            svg,
            r##"<text class="time" x="{x}" y="{ty:.1}" font-size="{SMALL_FONT}" fill="#666666" text-anchor="end">{t:.3}</text>"##,
            x = LEFT - 16,
            ty = y + 5.0,
            t = event.t_us as f64 / 1000.0
        );
        let Some(here) = lanes.find(LaneKind::Thread, &event.thread) else {
            continue;
        };
        let client = lanes.find(LaneKind::Client, &client_of(query));
        let ts = event
            .ts
            .as_deref()
            .and_then(|ts| lanes.find(LaneKind::Ts, ts));
        let since = millis(event.t_us as i64 - query.start_us() as i64);
        let label = format!("{} {since}", short_name(&query.name));
        let class = format!("event {} q{}", class_word(event.kind.name()), query.id);
        // A hand-off from the thread that last had the query.
        let from = match event.kind {
            Kind::Settle => replies
                .get(&q)
                .and_then(|rs| {
                    rs.iter()
                        .rev()
                        .find(|(ts, ..)| event.ts.is_some() && *ts == event.ts)
                        .or(rs.last())
                })
                .map(|&(_, lane, y)| (lane, y))
                .or(owner.get(&q).copied()),
            Kind::Send | Kind::Retry | Kind::Write | Kind::Cache => owner.get(&q).copied(),
            _ => None,
        };
        if let Some((lane, from_y)) = from
            && lane != here
        {
            let _ = writeln!(
                svg,
                r##"<g class="handoff q{id}"><line x1="{x1:.1}" y1="{from_y:.1}" x2="{x2:.1}" y2="{y:.1}" stroke="{colour}" stroke-width="2" stroke-dasharray="3,5" marker-end="url(#head{c})"/></g>"##,
                id = query.id,
                x1 = Lanes::x(lane),
                x2 = Lanes::x(here),
            );
        }
        match event.kind {
            Kind::Arrive | Kind::Settle | Kind::Cache | Kind::Write => {
                owner.insert(q, (here, y));
            }
            // The owner's own later steps: a hand-off leaves from its last.
            Kind::Send | Kind::Retry if owner.get(&q).is_some_and(|&(lane, _)| lane == here) => {
                owner.insert(q, (here, y));
            }
            Kind::Reply => replies
                .entry(q)
                .or_default()
                .push((event.ts.clone(), here, y)),
            _ => {}
        }
        let arrow = match (&event.kind, client, ts) {
            (Kind::Arrive, Some(client), _) => Some((client, here, false)),
            (Kind::Write, Some(client), _) => Some((here, client, false)),
            (Kind::Send, _, Some(ts)) => Some((here, ts, false)),
            (Kind::Retry, _, Some(ts)) => Some((here, ts, true)),
            (Kind::Reply, _, Some(ts)) => Some((ts, here, false)),
            _ => None,
        };
        match arrow {
            Some((from, to, dashed)) => {
                let label = if dashed {
                    format!("retry {label}")
                } else {
                    label
                };
                let (x1, x2) = (Lanes::x(from), Lanes::x(to));
                let gap = if x2 > x1 { -8.0 } else { 8.0 };
                let _ = writeln!(
                    svg,
                    r##"<g class="{class}"><line x1="{x1:.1}" y1="{y:.1}" x2="{x2e:.1}" y2="{y:.1}" stroke="{colour}" stroke-width="3"{dash} marker-end="url(#head{c})"/>{text}</g>"##,
                    x2e = x2 + gap / 4.0,
                    dash = if dashed {
                        r#" stroke-dasharray="10,6""#
                    } else {
                        ""
                    },
                    // Near where the message leaves, so a long arrow's
                    // label is not far from its lane.
                    text = if x2 > x1 {
                        label_text(&label, x1 + 14.0, y - 9.0, colour, "start")
                    } else {
                        label_text(&label, x1 - 14.0, y - 9.0, colour, "end")
                    },
                );
            }
            None => {
                let word = match event.kind {
                    Kind::Settle => {
                        let outcome = event.outcome.as_deref().unwrap_or("settled");
                        match &event.ts {
                            Some(ts) => format!("{outcome} ({ts})"),
                            None => outcome.to_string(),
                        }
                    }
                    Kind::Cache => {
                        format!("cache {}", event.outcome.as_deref().unwrap_or("looked up"))
                    }
                    ref other => other.name().to_string(),
                };
                let x = Lanes::x(here);
                let mark = match event.kind {
                    Kind::Settle => {
                        format!(r#"<circle cx="{x:.1}" cy="{y:.1}" r="9" fill="{colour}"/>"#)
                    }
                    Kind::Cache => format!(
                        r#"<rect x="{:.1}" y="{:.1}" width="16" height="16" fill="{colour}"/>"#,
                        x - 8.0,
                        y - 8.0
                    ),
                    _ => format!(
                        r##"<path d="M{x:.1},{:.1} l8,8 l-8,8 l-8,-8 z" fill="#ffffff" stroke="{colour}" stroke-width="2"/>"##,
                        y - 8.0
                    ),
                };
                let text = format!("{word} · {label}");
                let _ = writeln!(
                    svg,
                    r#"<g class="{class}">{mark}{}</g>"#,
                    label_text(&text, x + 16.0, y + 6.0, colour, "start"),
                );
            }
        }
    }

    // The legend: each query's colour and summary.
    let _ = writeln!(
        svg,
        r##"<text x="24" y="{y:.1}" font-size="{LABEL_FONT}" font-weight="bold" fill="#222222">Queries (times since each one arrived; left: since the LS started)</text>"##,
        y = legend_top + f64::from(LABEL_FONT)
    );
    for (q, query) in queries.iter().enumerate() {
        let (_, colour) = colour_of(q);
        let y = legend_top + legend_line * (q as f64 + 1.0) + f64::from(LABEL_FONT);
        let _ = writeln!(
            svg,
            r##"<g class="legend q{id}"><rect x="24" y="{ry:.1}" width="30" height="14" fill="{colour}"/><text x="66" y="{y:.1}" font-size="{LABEL_FONT}" fill="#222222">{text}</text></g>"##,
            id = query.id,
            ry = y - 13.0,
            text = escape(&query.to_string()),
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// A label on a white backing, so lane lines do not run through it.
fn label_text(text: &str, x: f64, y: f64, colour: &str, anchor: &str) -> String {
    let width = text_width(text, LABEL_FONT) + 8.0;
    let left = match anchor {
        "middle" => x - width / 2.0,
        "end" => x - width + 4.0,
        _ => x - 4.0,
    };
    format!(
        r##"<rect x="{left:.1}" y="{top:.1}" width="{width:.1}" height="{h}" fill="#ffffff" fill-opacity="0.85"/><text x="{x:.1}" y="{y:.1}" font-size="{LABEL_FONT}" fill="{colour}" text-anchor="{anchor}">{}</text>"##,
        escape(text),
        top = y - f64::from(LABEL_FONT) + 2.0,
        h = LABEL_FONT + 4,
    )
}

/// `title` shortened (with `…`) to fit `width` pixels at `size`.
fn fit(title: &str, width: f64, size: u32) -> String {
    if text_width(title, size) <= width {
        return title.to_string();
    }
    let keep = (width / (f64::from(size) * 0.58)) as usize;
    let mut short: String = title.chars().take(keep.saturating_sub(1)).collect();
    short.push('…');
    short
}

/// A class name made of `word`: letters, digits, `-` and `_` kept.
fn class_word(word: &str) -> String {
    word.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A zigzag line from `x1` to `x2` at height `y`: the edge of a break.
fn zigzag(x1: f64, x2: f64, y: f64) -> String {
    let mut points = String::new();
    let mut x = x1;
    let mut up = true;
    while x <= x2 {
        let _ = write!(points, "{x:.0},{:.1} ", if up { y - 4.0 } else { y + 4.0 });
        x += 12.0;
        up = !up;
    }
    format!(
        r##"<polyline points="{}" fill="none" stroke="#999999" stroke-width="2"/>"##,
        points.trim_end()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::parse::parse;
    use crate::trace::query::gather;

    const TRACE: &str = r#"{"t_us":1000,"thread":"reader-1","query":1,"name":"a<b>&\"c\".com","event":"arrive","client":"127.0.0.1:4000"}
{"t_us":1020,"thread":"worker-1","query":1,"event":"send","ts":"ts10"}
{"t_us":1030,"thread":"worker-1","query":1,"event":"send","ts":"ts2"}
{"t_us":1250,"thread":"link-1-ts2","query":1,"event":"reply","ts":"ts2"}
{"t_us":1270,"thread":"worker-1","query":1,"event":"settle","outcome":"answer","ts":"ts2"}
{"t_us":1290,"thread":"worker-1","query":1,"event":"write"}
{"t_us":1100,"thread":"reader-2","query":2,"name":"b.com","event":"arrive","client":"127.0.0.1:4001"}
{"t_us":1110,"thread":"worker-2","query":2,"event":"cache","outcome":"miss"}
{"t_us":1120,"thread":"worker-2","query":2,"event":"send","ts":"ts2"}
{"t_us":5001120,"thread":"worker-2","query":2,"event":"settle","outcome":"timeout"}
{"t_us":5001130,"thread":"worker-2","query":2,"event":"retry","ts":"ts10"}
{"t_us":5001140,"thread":"worker-2","query":2,"event":"evict","why":"x"}
{"t_us":5001150,"thread":"worker-2","query":2,"event":"write"}
"#;

    fn drawn() -> String {
        render(&gather(&parse(TRACE.as_bytes()).unwrap()), "t <&> \"x\"")
    }

    /// The elements of `doc` whose class starts with `class`.
    fn with_class<'a>(
        doc: &'a roxmltree::Document<'a>,
        class: &str,
    ) -> Vec<roxmltree::Node<'a, 'a>> {
        doc.descendants()
            .filter(|n| {
                n.attribute("class")
                    .is_some_and(|c| c.split(' ').next() == Some(class))
            })
            .collect()
    }

    fn texts(node: roxmltree::Node) -> Vec<String> {
        node.descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| n.text().map(String::from))
            .collect()
    }

    #[test]
    fn the_picture_is_one_svg_1_1_document() {
        let svg = drawn();
        let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "svg");
        assert_eq!(
            root.tag_name().namespace(),
            Some("http://www.w3.org/2000/svg")
        );
        assert_eq!(root.attribute("version"), Some("1.1"));
        assert!(root.attribute("viewBox").is_some());
        // Every marker an arrow points at is defined.
        for node in doc.descendants() {
            if let Some(url) = node.attribute("marker-end") {
                let id = url.trim_start_matches("url(#").trim_end_matches(')');
                assert!(
                    doc.descendants().any(|n| n.attribute("id") == Some(id)),
                    "{url}"
                );
            }
        }
    }

    #[test]
    fn lanes_are_the_clients_then_the_threads_then_the_tses() {
        let svg = drawn();
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let titles: Vec<String> = with_class(&doc, "lane-title")
            .iter()
            .map(|n| n.text().unwrap().to_string())
            .collect();
        assert_eq!(
            titles,
            [
                "127.0.0.1:4000",
                "127.0.0.1:4001",
                "reader-1",
                "worker-1",
                "reader-2",
                "worker-2",
                "link-1-ts2",
                "ts2",
                "ts10"
            ]
        );
    }

    #[test]
    fn each_event_is_drawn_once_with_its_name_and_time_since_arrival() {
        let svg = drawn();
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let events = with_class(&doc, "event");
        assert_eq!(events.len(), TRACE.lines().count());
        let classes: Vec<&str> = events
            .iter()
            .map(|n| n.attribute("class").unwrap())
            .collect();
        let count = |class: &str| classes.iter().filter(|c| **c == class).count();
        assert_eq!(count("event send q1"), 2);
        assert_eq!(count("event reply q1"), 1);
        assert_eq!(count("event evict q2"), 1);
        assert_eq!(count("event retry q2"), 1);
        // Arrows for messages, marks for the rest.
        for node in &events {
            let class = node.attribute("class").unwrap();
            let lines = node.children().filter(|n| n.has_tag_name("line")).count();
            let message = ["arrive", "send", "reply", "write", "retry"]
                .iter()
                .any(|k| class.split(' ').nth(1) == Some(k));
            assert_eq!(lines, usize::from(message), "{class}");
        }
        let labels: Vec<String> = events.iter().flat_map(|n| texts(*n)).collect();
        assert!(
            labels.contains(&"a<b>&\"c\".com 0 ms".to_string()),
            "{labels:?}"
        );
        assert!(
            labels.contains(&"a<b>&\"c\".com +0.250 ms".to_string()),
            "{labels:?}"
        );
        assert!(labels.contains(&"answer (ts2) · a<b>&\"c\".com +0.270 ms".to_string()));
        assert!(labels.contains(&"timeout · b.com +5000 ms".to_string()));
        assert!(labels.contains(&"cache miss · b.com +0.010 ms".to_string()));
        assert!(labels.contains(&"retry b.com +5000 ms".to_string()));
        // The text is escaped in the file, not left raw.
        assert!(svg.contains("a&lt;b&gt;&amp;&quot;c&quot;.com"));
        assert!(!svg.contains("a<b>"));
    }

    #[test]
    fn a_reply_read_on_another_thread_is_handed_to_the_one_that_settles() {
        let svg = drawn();
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let handoffs = with_class(&doc, "handoff");
        // q1: reader-1 → worker-1 for each send and for the write's owner
        // (the settle was on worker-1, from link-1-ts2's reply); q2: reader-2 → worker-2 once.
        let q1 = handoffs
            .iter()
            .filter(|n| n.attribute("class") == Some("handoff q1"))
            .count();
        let q2 = handoffs.len() - q1;
        assert_eq!((q1, q2), (3, 1));
        let reply_x = lane_x(&doc, "link-1-ts2");
        let worker_x = lane_x(&doc, "worker-1");
        assert!(handoffs.iter().any(|n| {
            let line = n.first_element_child().unwrap();
            line.attribute("x1") == Some(reply_x.as_str())
                && line.attribute("x2") == Some(worker_x.as_str())
        }));
    }

    #[test]
    fn a_hand_off_leaves_from_the_last_step_of_the_thread_that_had_the_query() {
        let trace = br#"{"t_us":0,"thread":"reader-1","query":1,"name":"x.com","event":"arrive"}
{"t_us":10,"thread":"reader-1","query":1,"event":"send","ts":"ts1"}
{"t_us":20,"thread":"reader-1","query":1,"event":"send","ts":"ts2"}
{"t_us":5000020,"thread":"worker-1","query":1,"event":"settle","outcome":"timeout"}
"#;
        let svg = render(&gather(&parse(trace).unwrap()), "t");
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let handoffs = with_class(&doc, "handoff");
        assert_eq!(handoffs.len(), 1);
        let line = handoffs[0].first_element_child().unwrap();
        let last_send = with_class(&doc, "event")
            .into_iter()
            .rfind(|n| n.attribute("class") == Some("event send q1"))
            .unwrap();
        let send_line = last_send.first_element_child().unwrap();
        assert_eq!(line.attribute("y1"), send_line.attribute("y1"));
        assert_eq!(
            line.attribute("x1"),
            Some(lane_x(&doc, "reader-1").as_str())
        );
        assert_eq!(
            line.attribute("x2"),
            Some(lane_x(&doc, "worker-1").as_str())
        );
    }

    /// The x of the lane titled `title`, as the file writes it.
    fn lane_x(doc: &roxmltree::Document, title: &str) -> String {
        with_class(doc, "lane-title")
            .iter()
            .find(|n| n.text() == Some(title))
            .and_then(|n| n.attribute("x"))
            .unwrap()
            .to_string()
    }

    #[test]
    fn a_long_idle_stretch_is_a_break_saying_how_long() {
        let svg = drawn();
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let breaks = with_class(&doc, "break");
        assert_eq!(breaks.len(), 1);
        assert_eq!(
            texts(breaks[0]),
            ["5000 ms with nothing to draw (not to scale)"]
        );
        let times: Vec<String> = with_class(&doc, "time")
            .iter()
            .map(|n| n.text().unwrap().to_string())
            .collect();
        assert_eq!(times.first().map(String::as_str), Some("1.000"));
        assert_eq!(times.last().map(String::as_str), Some("5001.150"));
        // Close rows are to scale: 220 µs apart is further than 10 µs.
        let y = |t: &str| {
            let node = with_class(&doc, "time")
                .into_iter()
                .find(|n| n.text() == Some(t))
                .unwrap();
            node.attribute("y").unwrap().parse::<f64>().unwrap()
        };
        assert!(y("1.250") - y("1.120") > y("1.030") - y("1.020"));
    }

    #[test]
    fn scale_breaks_only_what_is_long_against_the_rest() {
        let fast = Scale::for_times(&[0, 100, 200, 300, 5_000_300]);
        assert_eq!(fast.idle_us, 1000);
        assert!(fast.step(5_000_000).1);
        assert!(!fast.step(900).1);
        let slow = Scale::for_times(&[0, 200_000, 400_000, 600_000]);
        assert!(!slow.step(200_000).1);
    }

    #[test]
    fn text_xml_cannot_hold_is_replaced() {
        assert_eq!(escape("a\u{0}b\u{1b}"), "a\u{FFFD}b\u{FFFD}");
        assert_eq!(escape("x'y\tz"), "x&apos;y z");
        let events = parse(
            br#"{"t_us":1,"thread":"w\u0000","query":1,"name":"\u0007bad","event":"arrive"}"#,
        )
        .unwrap();
        let svg = render(&gather(&events), "t");
        roxmltree::Document::parse(&svg).expect("well-formed XML");
    }
}
