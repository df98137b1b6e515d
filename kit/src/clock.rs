//! The time the logic reads. The engine, the scheduler (and the agent and social
//! roles as they come) take "now" from an injected [`Clock`] instead of calling
//! `Utc::now()`, so a test moves time forward with [`TestClock::advance`] instead of
//! sleeping while an auction's end passes. Deadlines stored in the database stay real
//! times: in production the clock is the wall clock.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use tokio::sync::watch;

/// A source of the current time that can also wait for a time to come.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Now, in UTC.
    fn now(&self) -> DateTime<Utc>;

    /// Resolves once [`now`](Clock::now) has reached `deadline` (at once when it has).
    fn sleep_until(&self, deadline: DateTime<Utc>) -> BoxFuture<'static, ()>;
}

/// A clock shared by the parts of a process.
pub type SharedClock = Arc<dyn Clock>;

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl SystemClock {
    /// The wall clock, shared.
    pub fn shared() -> SharedClock {
        Arc::new(SystemClock)
    }
}

/// How long until `deadline` from `now`; zero when it has passed.
fn until(deadline: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (deadline - now).to_std().unwrap_or(Duration::ZERO)
}

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep_until(&self, deadline: DateTime<Utc>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            // The wall clock may be stepped while sleeping: look again on waking.
            loop {
                let left = until(deadline, Utc::now());
                if left.is_zero() {
                    return;
                }
                tokio::time::sleep(left).await;
            }
        })
    }
}

/// A clock for tests: the wall clock plus an offset that [`advance`](TestClock::advance)
/// moves forward. Time still passes as usual; an advance wakes every sleeper whose
/// deadline it reached, at once.
pub struct TestClock {
    offset: Mutex<chrono::Duration>,
    moved: watch::Sender<chrono::Duration>,
}

impl fmt::Debug for TestClock {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_struct("TestClock").field("offset", &self.offset()).finish()
    }
}

impl TestClock {
    /// A clock that reads the wall clock until it is advanced.
    pub fn new() -> Arc<TestClock> {
        let (moved, _) = watch::channel(chrono::Duration::zero());
        Arc::new(TestClock { offset: Mutex::new(chrono::Duration::zero()), moved })
    }

    /// Now by this clock (the same as [`Clock::now`], without importing the trait).
    pub fn now(&self) -> DateTime<Utc> {
        Clock::now(self)
    }

    /// How far ahead of the wall clock this clock is.
    pub fn offset(&self) -> chrono::Duration {
        *self.offset.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Moves the clock `by` forward, waking the sleepers it concerns.
    pub fn advance(&self, by: Duration) {
        let by = chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
        let offset = {
            let mut offset = self.offset.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            *offset = offset.checked_add(&by).unwrap_or(chrono::Duration::MAX);
            *offset
        };
        self.moved.send_replace(offset);
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        let now = Utc::now();
        now.checked_add_signed(self.offset()).unwrap_or(now)
    }

    fn sleep_until(&self, deadline: DateTime<Utc>) -> BoxFuture<'static, ()> {
        let mut moved = self.moved.subscribe();
        Box::pin(async move {
            loop {
                let offset = *moved.borrow_and_update();
                let now = Utc::now();
                let left = until(deadline, now.checked_add_signed(offset).unwrap_or(now));
                if left.is_zero() {
                    return;
                }
                tokio::select! {
                    () = tokio::time::sleep(left) => {}
                    changed = moved.changed() => {
                        if changed.is_err() {
                            // The clock is gone: only the wall clock is left to wait on.
                            tokio::time::sleep(left).await;
                            return;
                        }
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn advancing_the_test_clock_wakes_a_sleeper_at_once() {
        let clock = TestClock::new();
        let deadline = clock.now() + chrono::Duration::hours(1);
        let sleeper = tokio::spawn(clock.sleep_until(deadline));
        clock.advance(Duration::from_secs(3600));
        tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .expect("woken by the advance, not by an hour passing")
            .expect("sleeper ran");
        assert!(clock.now() >= deadline);
    }

    #[tokio::test]
    async fn an_advance_short_of_the_deadline_leaves_the_sleeper_asleep() {
        let clock = TestClock::new();
        let deadline = clock.now() + chrono::Duration::hours(1);
        let sleeper = tokio::spawn(clock.sleep_until(deadline));
        clock.advance(Duration::from_secs(60));
        let waited = tokio::time::timeout(Duration::from_millis(100), sleeper).await;
        assert!(waited.is_err(), "woke although 59 minutes are left");
    }

    #[tokio::test]
    async fn the_system_clock_returns_at_once_for_a_past_deadline() {
        let clock = SystemClock;
        clock.sleep_until(Utc::now() - chrono::Duration::seconds(1)).await;
        let before = Utc::now();
        clock.sleep_until(before + chrono::Duration::milliseconds(20)).await;
        assert!(Utc::now() >= before + chrono::Duration::milliseconds(20));
    }
}
