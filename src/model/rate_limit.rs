//! Cluster-wide rate limits of task names (enforced by the claim script).

use std::time::Duration;

/// A cluster-wide rate limit of one task name: at most `count` starts in any
/// `window` (a sliding window kept in Redis). Written `10/s`, `100/m`, `5/h` or `3/10s`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Starts allowed per window.
    pub count: u32,
    /// The window.
    pub window: Duration,
}

/// Longest window accepted (a year): its milliseconds stay exact in Lua's numbers.
const MAX_WINDOW_SECS: u64 = 365 * 24 * 3600;

/// A rate limit that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("invalid rate limit {0:?}: expected <count>/<unit> like 10/s, 100/m, 5/h or 3/10s (at most a year)")]
pub struct InvalidRateLimit(String);

/// A `<task>=<limit>` entry (the worker's `--rate-limits`) that does not parse.
#[derive(Debug, thiserror::Error)]
pub enum InvalidRateLimitEntry {
    /// No `=`, or nothing before it.
    #[error("expected <task>=<limit>, got {0:?}")]
    Shape(String),
    /// The limit after `=` does not parse.
    #[error(transparent)]
    Limit(#[from] InvalidRateLimit),
}

/// Parses one `<task>=<limit>` entry, like `add=10/s` (spaces around either part are ignored).
pub fn parse_rate_limit_entry(s: &str) -> Result<(String, RateLimit), InvalidRateLimitEntry> {
    let (name, limit) = s
        .split_once('=')
        .filter(|(name, _)| !name.trim().is_empty())
        .ok_or_else(|| InvalidRateLimitEntry::Shape(s.to_owned()))?;
    Ok((name.trim().to_owned(), limit.parse()?))
}

impl RateLimit {
    /// True when the limit can be enforced (at least one start per window of at least 1 ms).
    pub fn is_valid(&self) -> bool {
        self.count >= 1 && self.window.as_millis() >= 1
    }
}

impl std::str::FromStr for RateLimit {
    type Err = InvalidRateLimit;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidRateLimit(s.to_owned());
        let (count, per) = s.trim().split_once('/').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        let per = per.trim();
        let (amount, unit) = per.split_at(per.find(|c: char| c.is_ascii_alphabetic()).ok_or_else(bad)?);
        let amount: u64 = if amount.is_empty() {
            1
        } else {
            amount.parse().map_err(|_| bad())?
        };
        let unit_secs = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            _ => return Err(bad()),
        };
        // Checked: `1/99999999999999999999h` must be refused, not overflow.
        let window = amount.checked_mul(unit_secs).filter(|w| *w <= MAX_WINDOW_SECS);
        match window {
            Some(window) if count > 0 && window > 0 => Ok(Self {
                count,
                window: Duration::from_secs(window),
            }),
            _ => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::RateLimit;

    #[test]
    fn rate_limits_parse_like_celery() {
        let rl = |s: &str| s.parse::<RateLimit>();
        assert_eq!(
            rl("10/s").unwrap(),
            RateLimit {
                count: 10,
                window: Duration::from_secs(1)
            }
        );
        assert_eq!(rl("100/m").unwrap().window, Duration::from_secs(60));
        assert_eq!(rl("5/h").unwrap().window, Duration::from_secs(3600));
        assert_eq!(
            rl("3/10s").unwrap(),
            RateLimit {
                count: 3,
                window: Duration::from_secs(10)
            }
        );
        for bad in ["", "10", "0/s", "x/s", "10/d", "10/0s"] {
            assert!(rl(bad).is_err(), "{bad}");
        }
    }
}

#[cfg(test)]
mod proptests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::{MAX_WINDOW_SECS, RateLimit, parse_rate_limit_entry};

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Any text: an error or a limit that can be enforced, never a panic.
        #[test]
        fn any_text_parses_to_an_enforceable_limit_or_an_error(s in "\\PC{0,16}") {
            if let Ok(l) = s.parse::<RateLimit>() {
                prop_assert!(l.is_valid());
                prop_assert!(l.window <= Duration::from_secs(MAX_WINDOW_SECS));
            }
        }

        /// Text made of the grammar's own characters hits the edges (overflow, zero, missing parts).
        #[test]
        fn near_misses_never_panic(s in "[0-9smhd/ +-]{0,24}") {
            if let Ok(l) = s.parse::<RateLimit>() {
                prop_assert!(l.is_valid());
            }
            let _ = parse_rate_limit_entry(&s);
            let _ = parse_rate_limit_entry(&format!("t={s}"));
        }

        /// Numbers of any size (overflow included) against an oracle in wide arithmetic.
        #[test]
        fn numbers_of_any_size_are_checked_not_overflowed(
            count in "[0-9]{1,12}",
            amount in "[0-9]{0,25}",
            unit in "[smhd]",
        ) {
            let text = format!("{count}/{amount}{unit}");
            let count_ok = count.parse::<u32>().is_ok_and(|c| c > 0);
            let unit_secs: u128 = match unit.as_str() { "s" => 1, "m" => 60, "h" => 3600, _ => 0 };
            let window = if amount.is_empty() { Some(1) } else { amount.parse::<u128>().ok() }
                .map(|a| a * unit_secs);
            let expected = count_ok && window.is_some_and(|w| w > 0 && w <= u128::from(MAX_WINDOW_SECS));
            let parsed = text.parse::<RateLimit>();
            prop_assert_eq!(parsed.is_ok(), expected, "{}", text);
        }

        /// Every well-formed limit reads back as written.
        #[test]
        fn written_limits_read_back(
            count in 1u32..,
            amount in prop::option::of(1u64..=8760),
            unit in prop::sample::select(vec![("s", 1u64), ("m", 60), ("h", 3600)]),
            pad in "[ ]{0,2}",
        ) {
            let text = match amount {
                Some(a) => format!("{pad}{count}{pad}/{pad}{a}{}{pad}", unit.0),
                None => format!("{pad}{count}/{}", unit.0),
            };
            let secs = amount.unwrap_or(1) * unit.1;
            let parsed = text.parse::<RateLimit>();
            if secs <= MAX_WINDOW_SECS {
                prop_assert_eq!(parsed.unwrap(), RateLimit { count, window: Duration::from_secs(secs) });
            } else {
                prop_assert!(parsed.is_err(), "{text}");
            }
        }

        /// `<task>=<limit>` entries: the name is everything before the first `=`, trimmed.
        #[test]
        fn entries_split_at_the_first_equals_sign(
            name in "[ ]?[A-Za-z0-9_.:-]{1,20}[ ]?",
            count in 1u32..1000,
            unit in prop::sample::select(vec!["s", "m", "h"]),
        ) {
            let (n, l) = parse_rate_limit_entry(&format!("{name}={count}/{unit}")).unwrap();
            prop_assert_eq!(n, name.trim());
            prop_assert_eq!(l.count, count);
            let no_equals = parse_rate_limit_entry(&format!("{name}{count}/{unit}"));
            let no_name = parse_rate_limit_entry(&format!(" ={count}/{unit}"));
            prop_assert!(no_equals.is_err());
            prop_assert!(no_name.is_err());
        }
    }

    #[test]
    fn overflowing_windows_are_refused() {
        for s in ["1/18446744073709551615h", "1/5124095576030432h", "1/8761h", "1/525601m"] {
            assert!(s.parse::<RateLimit>().is_err(), "{s}");
        }
        assert_eq!(
            "1/8760h".parse::<RateLimit>().unwrap().window,
            Duration::from_secs(MAX_WINDOW_SECS)
        );
    }
}
