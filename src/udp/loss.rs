//! The echo servers' loss model: which datagrams are dropped on purpose.
//!
//! The course's servers drop a datagram when `randint(0, 10) < 4`, a loss of
//! exactly 4 in 11. dnslb keeps the loss an exact fraction `num/den` and
//! draws from a small seeded generator, so a run can be repeated:
//!
//! **Drop rule.** The generator is splitmix64 ([`SplitMix64`]) seeded with
//! `--seed`. For the n-th datagram a server receives (n = 1, 2, ...), take
//! the n-th output `x` of the generator; the datagram is dropped when `x % den < num`. With the
//! default `4/11` this is `randint(0, 10) < 4` with a different generator.
//! Without `--seed` the seed is random, so every run differs.
//!
//! Pure: no I/O, no clock.

use std::fmt;
use std::str::FromStr;

use crate::random::SplitMix64;

/// A loss probability kept as an exact fraction `num/den`, `num <= den`.
///
/// Parsed from a fraction (`4/11`) or a decimal (`0.3636`, `0`, `1`):
///
/// ```
/// use dnslb::udp::loss::Loss;
/// assert_eq!("4/11".parse::<Loss>().unwrap(), Loss::new(4, 11).unwrap());
/// assert_eq!("0.25".parse::<Loss>().unwrap(), Loss::new(25, 100).unwrap());
/// assert_eq!("0".parse::<Loss>().unwrap(), Loss::NONE);
/// assert!("1.5".parse::<Loss>().is_err());
/// assert!("3/0".parse::<Loss>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loss {
    num: u64,
    den: u64,
}

impl Loss {
    /// The course servers' loss: 4 in 11.
    pub const COURSE: Loss = Loss { num: 4, den: 11 };

    /// No loss at all.
    pub const NONE: Loss = Loss { num: 0, den: 1 };

    /// The loss `num/den`, or `None` unless `0 < den` and `num <= den`.
    pub fn new(num: u64, den: u64) -> Option<Loss> {
        (den > 0 && num <= den).then_some(Loss { num, den })
    }

    /// The probability as a float, for display.
    pub fn probability(self) -> f64 {
        self.num as f64 / self.den as f64
    }
}

impl Default for Loss {
    fn default() -> Self {
        Loss::COURSE
    }
}

impl fmt::Display for Loss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.num, self.den)
    }
}

impl FromStr for Loss {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || format!("loss {text:?}: expected a fraction like 4/11 or 0.3636, from 0 to 1");
        let (num, den) = match text.split_once('/') {
            Some((num, den)) => (
                num.trim().parse().map_err(|_| bad())?,
                den.trim().parse().map_err(|_| bad())?,
            ),
            None => parse_decimal(text.trim()).ok_or_else(bad)?,
        };
        Loss::new(num, den).ok_or_else(bad)
    }
}

/// `0.3636` as `(3636, 10000)`; at most 18 decimals so that `den` fits.
fn parse_decimal(text: &str) -> Option<(u64, u64)> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty())
        || !digits(whole)
        || !digits(fraction)
        || fraction.len() > 18
    {
        return None;
    }
    let den = 10u64.pow(fraction.len() as u32);
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let fraction: u64 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().ok()?
    };
    Some((whole.checked_mul(den)?.checked_add(fraction)?, den))
}

/// Decides, datagram after datagram, which ones to drop (see the module's
/// drop rule).
///
/// ```
/// use dnslb::udp::loss::{Dropper, Loss};
/// let pattern = |seed| {
///     let mut d = Dropper::new(Loss::COURSE, seed);
///     (0..20).map(|_| d.drop_next()).collect::<Vec<bool>>()
/// };
/// assert_eq!(pattern(1), pattern(1));
/// assert!(Dropper::new(Loss::NONE, 1).drop_next() == false);
/// ```
#[derive(Clone, Debug)]
pub struct Dropper {
    loss: Loss,
    rng: SplitMix64,
}

impl Dropper {
    /// A dropper for `loss` whose choices are fixed by `seed`.
    pub fn new(loss: Loss, seed: u64) -> Dropper {
        Dropper {
            loss,
            rng: SplitMix64::new(seed),
        }
    }

    /// Whether the next datagram is dropped.
    pub fn drop_next(&mut self) -> bool {
        self.rng.next_u64() % self.loss.den < self.loss.num
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn course_loss_is_about_four_in_eleven() {
        let mut dropper = Dropper::new(Loss::COURSE, 42);
        let dropped = (0..110_000).filter(|_| dropper.drop_next()).count();
        // 40 000 expected; the bound is over 10 standard deviations wide.
        assert!((38_500..41_500).contains(&dropped), "{dropped}");
    }

    #[test]
    fn extremes_drop_nothing_or_everything() {
        let mut none = Dropper::new(Loss::NONE, 3);
        let mut all = Dropper::new(Loss::new(1, 1).unwrap(), 3);
        assert!((0..1000).all(|_| !none.drop_next() && all.drop_next()));
    }

    #[test]
    fn seeds_give_different_patterns() {
        let pattern = |seed| {
            let mut d = Dropper::new(Loss::COURSE, seed);
            (0..64).map(|_| d.drop_next()).collect::<Vec<_>>()
        };
        assert_eq!(pattern(5), pattern(5));
        assert_ne!(pattern(5), pattern(6));
    }

    #[test]
    fn decimals_and_fractions_parse_exactly() {
        assert_eq!("1".parse::<Loss>(), Ok(Loss::new(1, 1).unwrap()));
        assert_eq!(".5".parse::<Loss>(), Ok(Loss::new(5, 10).unwrap()));
        assert_eq!(
            "0.3636".parse::<Loss>(),
            Ok(Loss::new(3636, 10_000).unwrap())
        );
        assert_eq!(" 4 / 11 ".parse::<Loss>(), Ok(Loss::COURSE));
        for bad in ["", ".", "-0.1", "1.01", "12/11", "a/b", "0.5x", "1e-3"] {
            let error = bad.parse::<Loss>().unwrap_err();
            assert!(error.contains(&format!("{bad:?}")), "{error}");
        }
    }
}
