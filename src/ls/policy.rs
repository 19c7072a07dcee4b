//! Which member of a pool of replica TSes a query goes to (`--policy`).
//!
//! A pool is a list of TSes that hold the same names; a query goes to one
//! member of each pool. The choice is a plain function of the pool, what
//! the caller knows of each member (live or not, queries in flight, recent
//! latency), the name, the members already tried for the query, and the
//! pool's own rotation state: no threads, sockets or clock, so each policy
//! is tested below.
//!
//! Live members untried for the query are offered first, those that are
//! not stalled before those that are; once none is left, the untried
//! members that are down, in the same policy's order (a query then still
//! has a chance where a link comes back).

use std::fmt;
use std::str::FromStr;

use crate::random::SplitMix64;

/// How a pool picks the member a query goes to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Policy {
    /// The first member in order (primary, then secondaries).
    First,
    /// Members in turn, each as often as its weight (smooth weighted
    /// round robin: equal weights alternate exactly).
    RoundRobin,
    /// The member with the fewest queries in flight, ties broken by the
    /// lower recent latency, then by order.
    #[default]
    LeastOutstanding,
    /// A member drawn at random, each with a chance in proportion to its
    /// weight.
    Random,
    /// Consistent hashing of the lower-cased name: a name always goes to
    /// the same member while it is live; a member that goes down moves
    /// only its own names. Weights are virtual nodes.
    Chash,
}

impl FromStr for Policy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "first" => Ok(Policy::First),
            "roundrobin" => Ok(Policy::RoundRobin),
            "leastoutstanding" => Ok(Policy::LeastOutstanding),
            "random" => Ok(Policy::Random),
            "chash" => Ok(Policy::Chash),
            other => Err(format!(
                "unknown policy {other:?}: expected first, roundrobin, leastoutstanding, random or chash"
            )),
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Policy::First => "first",
            Policy::RoundRobin => "roundrobin",
            Policy::LeastOutstanding => "leastoutstanding",
            Policy::Random => "random",
            Policy::Chash => "chash",
        })
    }
}

/// Virtual nodes on the hash ring per unit of weight.
const POINTS_PER_WEIGHT: u32 = 64;

/// What the caller knows of one member when a query is placed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// The member is believed up.
    pub live: bool,
    /// Queries in flight to it from this LS.
    pub outstanding: u64,
    /// Its recent answer time, in microseconds (0: not known yet).
    pub latency_us: u64,
    /// Live, but with queries waiting and no reply for a while: offered
    /// only when no other live member is left.
    pub stalled: bool,
}

/// One pool's choice state: its members' weights, the round robin's
/// running weights, the random draw and the hash ring.
#[derive(Debug)]
pub struct Chooser {
    policy: Policy,
    weights: Vec<u32>,
    current: Vec<i64>,
    rng: SplitMix64,
    /// (point, member), sorted by point.
    ring: Vec<(u64, usize)>,
}

impl Chooser {
    /// A chooser for members with `weights` (each at least 1), drawing
    /// random choices from `seed`.
    pub fn new(policy: Policy, weights: &[u32], seed: u64) -> Chooser {
        let mut ring = Vec::new();
        if policy == Policy::Chash {
            for (member, &weight) in weights.iter().enumerate() {
                for point in 0..weight.max(1) * POINTS_PER_WEIGHT {
                    ring.push((hash(format!("{member}#{point}").as_bytes()), member));
                }
            }
            ring.sort_unstable();
        }
        Chooser {
            policy,
            weights: weights.iter().map(|&w| w.max(1)).collect(),
            current: vec![0; weights.len()],
            rng: SplitMix64::new(seed),
            ring,
        }
    }

    /// The member a query for `name` goes to, among those not in `tried`
    /// (a bit per member): live ones that are not stalled first, then
    /// live ones, then the rest; `None` once every member was tried.
    /// `seen` has an entry per member.
    pub fn choose(&mut self, name: &str, seen: &[Seen], tried: u64) -> Option<usize> {
        // Bits by member, as `tried`: no allocation on a query's path.
        let all = match seen.len() {
            64.. => u64::MAX,
            n => (1u64 << n) - 1,
        };
        let untried = all & !tried;
        let bits = |keep: fn(&Seen) -> bool| {
            (0..seen.len())
                .filter(|&i| keep(&seen[i]))
                .fold(0u64, |bits, i| bits | 1 << i)
                & untried
        };
        let tiers = [bits(|s| s.live && !s.stalled), bits(|s| s.live), untried];
        let open = tiers.into_iter().find(|&open| open != 0)?;
        Some(self.pick(name, seen, open))
    }

    /// Picks one of the members `open` allows (bits by member, at least one).
    fn pick(&mut self, name: &str, seen: &[Seen], open: u64) -> usize {
        let is_open = |i: usize| open & (1 << i) != 0;
        let members = (0..seen.len()).filter(|&i| is_open(i));
        match self.policy {
            Policy::First => members.min().unwrap_or(0),
            Policy::LeastOutstanding => members
                .min_by_key(|&i| (seen[i].outstanding, seen[i].latency_us, i))
                .unwrap_or(0),
            Policy::RoundRobin => {
                let total: i64 = members.clone().map(|i| i64::from(self.weights[i])).sum();
                for i in members.clone() {
                    self.current[i] += i64::from(self.weights[i]);
                }
                let best = members
                    .max_by_key(|&i| (self.current[i], std::cmp::Reverse(i)))
                    .unwrap_or(0);
                self.current[best] -= total;
                best
            }
            Policy::Random => {
                let total: u64 = members.clone().map(|i| u64::from(self.weights[i])).sum();
                let mut draw = self.rng.next_u64() % total.max(1);
                for i in members.clone() {
                    let weight = u64::from(self.weights[i]);
                    if draw < weight {
                        return i;
                    }
                    draw -= weight;
                }
                members.max().unwrap_or(0)
            }
            Policy::Chash => {
                let point = hash(name.to_ascii_lowercase().as_bytes());
                let start = self.ring.partition_point(|&(p, _)| p < point);
                (0..self.ring.len())
                    .map(|k| self.ring[(start + k) % self.ring.len()].1)
                    .find(|&m| is_open(m))
                    .unwrap_or(0)
            }
        }
    }
}

/// FNV-1a, 64 bits, finished by splitmix's mixer (spreads short keys).
fn hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(n: usize) -> Vec<Seen> {
        vec![
            Seen {
                live: true,
                ..Seen::default()
            };
            n
        ]
    }

    #[test]
    fn a_stalled_member_is_offered_after_the_other_live_ones_and_before_the_down_ones() {
        for policy in [
            Policy::First,
            Policy::RoundRobin,
            Policy::LeastOutstanding,
            Policy::Random,
            Policy::Chash,
        ] {
            let mut c = Chooser::new(policy, &[1, 1, 1], 1);
            let mut seen = live(3);
            seen[0].stalled = true;
            seen[2].live = false;
            for n in 0..20 {
                let name = format!("n{n}.example");
                assert_eq!(c.choose(&name, &seen, 0), Some(1), "{policy}");
                // With the other live member tried, the stalled one, not the down one.
                assert_eq!(c.choose(&name, &seen, 0b010), Some(0), "{policy}");
                assert_eq!(c.choose(&name, &seen, 0b011), Some(2), "{policy}");
            }
        }
    }

    #[test]
    fn roundrobin_alternates_exactly() {
        let mut c = Chooser::new(Policy::RoundRobin, &[1, 1], 1);
        let picks: Vec<usize> = (0..6)
            .map(|_| c.choose("a", &live(2), 0).unwrap())
            .collect();
        assert_eq!(picks, [0, 1, 0, 1, 0, 1]);
    }

    #[test]
    fn roundrobin_honours_weights_and_skips_down_members() {
        let mut c = Chooser::new(Policy::RoundRobin, &[2, 1, 1], 1);
        let mut counts = [0; 3];
        for _ in 0..400 {
            counts[c.choose("a", &live(3), 0).unwrap()] += 1;
        }
        assert_eq!(counts, [200, 100, 100]);
        let mut seen = live(3);
        seen[0].live = false;
        let picks: Vec<usize> = (0..4).map(|_| c.choose("a", &seen, 0).unwrap()).collect();
        assert!(picks.iter().all(|&m| m != 0), "{picks:?}");
    }

    #[test]
    fn first_takes_the_first_live_untried_member() {
        let mut c = Chooser::new(Policy::First, &[1, 1, 1], 1);
        let mut seen = live(3);
        assert_eq!(c.choose("a", &seen, 0), Some(0));
        assert_eq!(c.choose("a", &seen, 0b001), Some(1));
        seen[1].live = false;
        assert_eq!(c.choose("a", &seen, 0b001), Some(2));
        // Every live one tried: the down one, then nothing.
        assert_eq!(c.choose("a", &seen, 0b101), Some(1));
        assert_eq!(c.choose("a", &seen, 0b111), None);
    }

    #[test]
    fn random_follows_the_weights() {
        let mut c = Chooser::new(Policy::Random, &[3, 1], 7);
        let mut counts = [0; 2];
        for _ in 0..4000 {
            counts[c.choose("a", &live(2), 0).unwrap()] += 1;
        }
        assert!((2800..3200).contains(&counts[0]), "{counts:?}");
    }

    #[test]
    fn chash_keeps_a_name_on_one_member_and_moves_only_the_lost_share() {
        let mut c = Chooser::new(Policy::Chash, &[1, 1, 1], 1);
        let names: Vec<String> = (0..3000).map(|i| format!("host{i}.example.")).collect();
        let before: Vec<usize> = names
            .iter()
            .map(|n| c.choose(n, &live(3), 0).unwrap())
            .collect();
        // Case does not matter, and the choice does not drift.
        for (n, &m) in names.iter().zip(&before) {
            assert_eq!(c.choose(&n.to_uppercase(), &live(3), 0), Some(m));
        }
        let mut counts = [0; 3];
        for &m in &before {
            counts[m] += 1;
        }
        assert!(counts.iter().all(|&k| k > 700), "spread {counts:?}");
        let mut seen = live(3);
        seen[1].live = false;
        for (n, &m) in names.iter().zip(&before) {
            let now = c.choose(n, &seen, 0).unwrap();
            if m == 1 {
                assert_ne!(now, 1);
            } else {
                assert_eq!(now, m, "{n} moved though its member is live");
            }
        }
    }

    #[test]
    fn leastoutstanding_prefers_the_idle_then_the_faster() {
        let mut c = Chooser::new(Policy::LeastOutstanding, &[1, 1], 1);
        let mut seen = live(2);
        seen[0].outstanding = 3;
        assert_eq!(c.choose("a", &seen, 0), Some(1));
        seen[0].outstanding = 0;
        seen[0].latency_us = 900;
        seen[1].latency_us = 100;
        assert_eq!(c.choose("a", &seen, 0), Some(1));
    }

    /// Clients keep 8 queries in flight against two replicas, one 20 times
    /// slower than the other; time advances in steps of the fast one's
    /// answer time.
    #[test]
    fn leastoutstanding_sends_a_20x_slower_replica_less_than_a_quarter() {
        let mut c = Chooser::new(Policy::LeastOutstanding, &[1, 1], 1);
        let service = [1u64, 20];
        let mut seen = live(2);
        seen[0].latency_us = 1_000;
        seen[1].latency_us = 20_000;
        // (finishes at, member) for each query in flight.
        let mut flying: Vec<(u64, usize)> = Vec::new();
        let mut sent = [0u64; 2];
        for now in 0..10_000u64 {
            flying.retain(|&(at, m)| {
                if at <= now {
                    seen[m].outstanding -= 1;
                }
                at > now
            });
            while flying.len() < 8 {
                let m = c.choose("a", &seen, 0).unwrap();
                seen[m].outstanding += 1;
                sent[m] += 1;
                flying.push((now + service[m], m));
            }
        }
        let share = sent[1] as f64 / (sent[0] + sent[1]) as f64;
        assert!(share < 0.25, "slow replica got {share:.3} of {sent:?}");
    }

    #[test]
    fn policies_parse_and_print_alike() {
        for name in ["first", "roundrobin", "leastoutstanding", "random", "chash"] {
            assert_eq!(name.parse::<Policy>().unwrap().to_string(), name);
        }
        assert!("fastest".parse::<Policy>().unwrap_err().contains("chash"));
    }
}
