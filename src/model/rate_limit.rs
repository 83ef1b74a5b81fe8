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

/// A rate limit that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("invalid rate limit {0:?}: expected <count>/<unit> like 10/s, 100/m, 5/h or 3/10s")]
pub struct InvalidRateLimit(String);

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
        if count == 0 || amount == 0 {
            return Err(bad());
        }
        Ok(Self {
            count,
            window: Duration::from_secs(amount * unit_secs),
        })
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
