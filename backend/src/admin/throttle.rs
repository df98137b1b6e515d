//! Login throttling (pure; time passed in): after a few failures from one client
//! address or against one account, each further attempt waits a delay that doubles
//! with every failure, up to a ceiling. An attempt counts as a failure from the
//! moment it is let in; a success takes that back and clears the account's count.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// Failures allowed before any delay.
pub const FREE_FAILURES: u32 = 5;
/// The longest delay between attempts.
pub const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
/// A key quiet this long is forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(3600);
/// Keys kept at most; the oldest are forgotten first.
const MAX_KEYS: usize = 100_000;

/// The delay after `failures` failures.
pub fn delay_after(failures: u32) -> Duration {
    if failures < FREE_FAILURES {
        return Duration::ZERO;
    }
    let doublings = (failures - FREE_FAILURES).min(20);
    Duration::from_secs(1u64 << doublings).min(MAX_DELAY)
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: DateTime<Utc>,
}

/// Failures by key (`addr:<ip>` or `user:<name>`).
#[derive(Debug, Default)]
pub struct LoginThrottle {
    failures: HashMap<String, Failures>,
}

impl LoginThrottle {
    /// `Err(wait)` when any of `keys` must wait before another attempt.
    pub fn check(&self, keys: &[String], now: DateTime<Utc>) -> Result<(), Duration> {
        let wait = keys
            .iter()
            .filter_map(|key| self.failures.get(key))
            .map(|failures| {
                let allowed_at = failures.last + delay_after(failures.count);
                (allowed_at - now).to_std().unwrap_or(Duration::ZERO)
            })
            .max()
            .unwrap_or(Duration::ZERO);
        if wait.is_zero() { Ok(()) } else { Err(wait) }
    }

    /// Lets an attempt in, or `Err(wait)`. An attempt let in counts as a failure
    /// from that moment until it succeeds, so attempts sent side by side are
    /// throttled as they arrive, not after their passwords were checked.
    pub fn admit(&mut self, keys: &[String], now: DateTime<Utc>) -> Result<(), Duration> {
        self.check(keys, now)?;
        self.failed(keys, now);
        Ok(())
    }

    /// Counts a failed attempt against every key.
    pub fn failed(&mut self, keys: &[String], now: DateTime<Utc>) {
        if self.failures.len() >= MAX_KEYS {
            self.failures
                .retain(|_, failures| (now - failures.last).to_std().unwrap_or_default() < FORGET_AFTER);
        }
        for key in keys {
            let entry = self.failures.entry(key.clone()).or_insert(Failures { count: 0, last: now });
            if (now - entry.last).to_std().unwrap_or_default() >= FORGET_AFTER {
                entry.count = 0;
            }
            entry.count = entry.count.saturating_add(1);
            entry.last = now;
        }
    }

    /// An admitted attempt succeeded: the account's failures are cleared, and the
    /// address loses only the one this attempt was counted as (one valid account
    /// must not reset an address trying others).
    pub fn succeeded(&mut self, keys: &[String]) {
        for key in keys {
            if key.starts_with("user:") {
                self.failures.remove(key);
            } else if let Some(entry) = self.failures.get_mut(key) {
                entry.count = entry.count.saturating_sub(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).expect("time")
    }

    fn keys() -> Vec<String> {
        vec!["addr:10.0.0.1".into(), "user:ada".into()]
    }

    #[test]
    fn delay_is_free_at_first_then_doubles_up_to_the_ceiling() {
        assert_eq!(delay_after(0), Duration::ZERO);
        assert_eq!(delay_after(FREE_FAILURES - 1), Duration::ZERO);
        assert_eq!(delay_after(FREE_FAILURES), Duration::from_secs(1));
        assert_eq!(delay_after(FREE_FAILURES + 3), Duration::from_secs(8));
        assert_eq!(delay_after(FREE_FAILURES + 40), MAX_DELAY);
    }

    #[test]
    fn failures_past_the_free_ones_make_the_next_attempt_wait() {
        let mut throttle = LoginThrottle::default();
        for second in 0..i64::from(FREE_FAILURES) {
            assert_eq!(throttle.check(&keys(), at(second)), Ok(()));
            throttle.failed(&keys(), at(second));
        }
        let last = i64::from(FREE_FAILURES) - 1;
        assert_eq!(throttle.check(&keys(), at(last)), Err(Duration::from_secs(1)));
        assert_eq!(throttle.check(&keys(), at(last + 1)), Ok(()));
        throttle.failed(&keys(), at(last + 1));
        assert_eq!(throttle.check(&keys(), at(last + 2)), Err(Duration::from_secs(1)));
    }

    #[test]
    fn an_account_under_attack_waits_from_every_address() {
        let mut throttle = LoginThrottle::default();
        for second in 0..10 {
            throttle.failed(&[format!("addr:10.0.0.{second}"), "user:ada".into()], at(second));
        }
        let elsewhere = vec!["addr:192.168.1.9".to_owned(), "user:ada".to_owned()];
        assert!(throttle.check(&elsewhere, at(10)).is_err());
        let other_account = vec!["addr:192.168.1.9".to_owned(), "user:bob".to_owned()];
        assert_eq!(throttle.check(&other_account, at(10)), Ok(()));
    }

    #[test]
    fn a_success_clears_the_account_and_takes_back_only_its_own_count_from_the_address() {
        let mut throttle = LoginThrottle::default();
        for second in 0..8 {
            throttle.failed(&keys(), at(second));
        }
        throttle.succeeded(&keys());
        let elsewhere = vec!["addr:10.9.9.9".to_owned(), "user:ada".to_owned()];
        assert_eq!(throttle.check(&elsewhere, at(8)), Ok(()), "the account's count is cleared");
        assert!(throttle.check(&keys(), at(8)).is_err(), "the address's is not");

        let mut throttle = LoginThrottle::default();
        for _ in 0..FREE_FAILURES {
            assert_eq!(throttle.admit(&keys(), at(0)), Ok(()));
            throttle.succeeded(&keys());
        }
        assert_eq!(throttle.admit(&keys(), at(0)), Ok(()), "successes are not failures of the address");
    }

    #[test]
    fn attempts_side_by_side_are_throttled_as_they_arrive() {
        let mut throttle = LoginThrottle::default();
        for _ in 0..FREE_FAILURES {
            assert_eq!(throttle.admit(&keys(), at(0)), Ok(()));
        }
        // None of the five has been checked yet; the sixth already waits.
        assert_eq!(throttle.admit(&keys(), at(0)), Err(Duration::from_secs(1)));
    }

    #[test]
    fn a_quiet_hour_forgets() {
        let mut throttle = LoginThrottle::default();
        for second in 0..8 {
            throttle.failed(&keys(), at(second));
        }
        throttle.failed(&keys(), at(4000));
        assert_eq!(throttle.check(&keys(), at(4000)), Ok(()), "one fresh failure after an hour is free");
    }
}
