//! A trace's events gathered per query: which queries a picture shows
//! (`--query`, `--name`, `--first`) and the one-line summary of each.

use std::collections::HashMap;
use std::fmt;

use super::parse::{Event, Kind};

/// One query's events, in time order.
#[derive(Debug, Clone)]
pub struct Query {
    /// Its id in the trace.
    pub id: u64,
    /// Its name: the first non-empty `name` of its events.
    pub name: String,
    /// Its events, by `t_us` (those at the same time in file order).
    pub events: Vec<Event>,
}

impl Query {
    /// When it started: its `arrive`, or its first event when it has none.
    pub fn start_us(&self) -> u64 {
        self.events
            .iter()
            .find(|e| e.kind == Kind::Arrive)
            .or(self.events.first())
            .map_or(0, |e| e.t_us)
    }

    /// Its first event of `kind`.
    pub fn first(&self, kind: &Kind) -> Option<&Event> {
        self.events.iter().find(|e| &e.kind == kind)
    }

    /// The TSes it was sent to (`send` and `retry`), in order, once each.
    pub fn asked(&self) -> Vec<&str> {
        let mut asked: Vec<&str> = Vec::new();
        for event in &self.events {
            if matches!(event.kind, Kind::Send | Kind::Retry)
                && let Some(ts) = event.ts.as_deref()
                && !asked.contains(&ts)
            {
                asked.push(ts);
            }
        }
        asked
    }

    /// Its outcome as `settle` (or else `cache`) says it, and the TS that
    /// answered when `settle` names one.
    pub fn outcome(&self) -> (Option<&str>, Option<&str>) {
        match self.first(&Kind::Settle).or(self.first(&Kind::Cache)) {
            Some(e) => (e.outcome.as_deref(), e.ts.as_deref()),
            None => (None, None),
        }
    }
}

impl fmt::Display for Query {
    /// `q17 www.google.com  arrive→write 523 µs  asked ts1,ts2  answer (ts1)`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = if self.name.is_empty() {
            "(no name)"
        } else {
            &self.name
        };
        write!(f, "q{} {name}", self.id)?;
        let start = self.first(&Kind::Arrive).map(|e| e.t_us);
        let end = self.first(&Kind::Write).map(|e| e.t_us);
        match (start, end) {
            (Some(start), Some(end)) => {
                write!(f, "  arrive→write {} µs", end.saturating_sub(start))?;
            }
            (Some(_), None) => write!(f, "  never written")?,
            (None, _) => write!(f, "  no arrive")?,
        }
        let asked = self.asked();
        if asked.is_empty() {
            write!(f, "  asked no TS")?;
        } else {
            write!(f, "  asked {}", asked.join(","))?;
        }
        match self.outcome() {
            (Some(outcome), Some(ts)) => write!(f, "  {outcome} ({ts})"),
            (Some(outcome), None) => write!(f, "  {outcome}"),
            (None, _) => write!(f, "  not settled"),
        }
    }
}

/// The events of a trace gathered per query, the queries in the order
/// they started.
pub fn gather(events: &[Event]) -> Vec<Query> {
    let mut by_id: HashMap<u64, Vec<Event>> = HashMap::new();
    for event in events {
        by_id.entry(event.query).or_default().push(event.clone());
    }
    let mut queries: Vec<Query> = by_id
        .into_iter()
        .map(|(id, mut events)| {
            events.sort_by_key(|e| e.t_us);
            let name = events
                .iter()
                .map(|e| e.name.as_str())
                .find(|n| !n.is_empty())
                .unwrap_or("")
                .to_string();
            Query { id, name, events }
        })
        .collect();
    queries.sort_by_key(|q| (q.start_us(), q.id));
    queries
}

/// Which queries to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// The query with this id.
    Id(u64),
    /// Every query for this name (case and a final dot ignored).
    Name(String),
    /// The first this many queries to start.
    First(usize),
}

impl Selection {
    /// What dnslb trace shows when no selection is given.
    pub const DEFAULT: Selection = Selection::First(10);
}

/// The queries of `queries` that `selection` picks.
///
/// # Errors
/// A sentence saying that none matched, and what the trace holds.
pub fn select(queries: &[Query], selection: &Selection) -> Result<Vec<Query>, String> {
    let key = |name: &str| name.trim_end_matches('.').to_ascii_lowercase();
    let picked: Vec<Query> = match selection {
        Selection::Id(id) => queries.iter().filter(|q| q.id == *id).cloned().collect(),
        Selection::Name(name) => queries
            .iter()
            .filter(|q| key(&q.name) == key(name))
            .cloned()
            .collect(),
        Selection::First(count) => queries.iter().take(*count).cloned().collect(),
    };
    if !picked.is_empty() {
        return Ok(picked);
    }
    let held = match (
        queries.iter().map(|q| q.id).min(),
        queries.iter().map(|q| q.id).max(),
    ) {
        (Some(low), Some(high)) => format!(
            "it holds {} quer{} with ids {low} to {high}",
            queries.len(),
            if queries.len() == 1 { "y" } else { "ies" }
        ),
        _ => "it holds no queries".to_string(),
    };
    Err(match selection {
        Selection::Id(id) => format!("--query {id}: no query {id} in the trace ({held})"),
        Selection::Name(name) => {
            let mut names: Vec<&str> = Vec::new();
            for q in queries {
                if !names.contains(&q.name.as_str()) && names.len() < 5 {
                    names.push(&q.name);
                }
            }
            format!(
                "--name {name}: no query for {name:?} in the trace (names in it: {})",
                names.join(", ")
            )
        }
        Selection::First(_) => "--first must be at least 1".to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::parse::parse;

    const TRACE: &str = r#"{"t_us":100,"thread":"reader-1","query":2,"name":"b.com","event":"arrive","client":"127.0.0.1:1"}
{"t_us":50,"thread":"reader-1","query":1,"name":"A.com.","event":"arrive","client":"127.0.0.1:1"}
{"t_us":60,"thread":"worker-1","query":1,"event":"send","ts":"ts1"}
{"t_us":61,"thread":"worker-1","query":1,"event":"send","ts":"ts2"}
{"t_us":62,"thread":"worker-1","query":1,"event":"send","ts":"ts1"}
{"t_us":90,"thread":"link-1-ts2","query":1,"event":"reply","ts":"ts2"}
{"t_us":95,"thread":"worker-1","query":1,"event":"settle","outcome":"answer","ts":"ts2"}
{"t_us":99,"thread":"worker-1","query":1,"event":"write"}
{"t_us":300,"thread":"worker-1","query":2,"event":"cache","outcome":"hit"}
"#;

    fn queries() -> Vec<Query> {
        gather(&parse(TRACE.as_bytes()).unwrap())
    }

    #[test]
    fn queries_are_ordered_by_their_start_with_their_events_in_time_order() {
        let queries = queries();
        assert_eq!(queries.iter().map(|q| q.id).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(queries[0].name, "A.com.");
        assert_eq!(queries[0].start_us(), 50);
        let times: Vec<u64> = queries[0].events.iter().map(|e| e.t_us).collect();
        assert_eq!(times, [50, 60, 61, 62, 90, 95, 99]);
    }

    #[test]
    fn the_summary_says_time_tses_and_outcome() {
        let queries = queries();
        assert_eq!(
            queries[0].to_string(),
            "q1 A.com.  arrive→write 49 µs  asked ts1,ts2  answer (ts2)"
        );
        assert_eq!(
            queries[1].to_string(),
            "q2 b.com  never written  asked no TS  hit"
        );
    }

    #[test]
    fn selections_pick_by_id_name_or_count() {
        let queries = queries();
        let ids = |s: Selection| -> Vec<u64> {
            select(&queries, &s).unwrap().iter().map(|q| q.id).collect()
        };
        assert_eq!(ids(Selection::Id(2)), [2]);
        assert_eq!(ids(Selection::Name("a.COM".into())), [1]);
        assert_eq!(ids(Selection::First(1)), [1]);
        assert_eq!(ids(Selection::DEFAULT), [1, 2]);
        let none = select(&queries, &Selection::Id(7)).unwrap_err();
        assert!(
            none.contains("no query 7") && none.contains("ids 1 to 2"),
            "{none}"
        );
        let none = select(&queries, &Selection::Name("c.com".into())).unwrap_err();
        assert!(
            none.contains("\"c.com\"") && none.contains("b.com"),
            "{none}"
        );
    }
}
