//! Wait on a condition with a deadline, instead of sleeping and hoping.
//!
//! ```no_run
//! # async fn demo(ready: impl Fn() -> bool) {
//! use std::time::Duration;
//! use test_support::wait;
//!
//! wait::until(Duration::from_secs(10), || async { ready() })
//!     .await
//!     .expect("the server never became ready");
//! # }
//! ```
//!
//! Time is tokio's: under `#[tokio::test(start_paused = true)]` the deadline is in virtual time.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// How often a condition is evaluated.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// The condition still did not hold when the deadline passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedOut {
    /// How long the condition was polled.
    pub waited: Duration,
}

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "condition still false after {:?}", self.waited)
    }
}

impl std::error::Error for TimedOut {}

/// A deadline: a timeout from now (`Duration`) or an instant (`std` or tokio).
pub trait Deadline {
    fn instant(self) -> Instant;
}

impl Deadline for Duration {
    fn instant(self) -> Instant {
        Instant::now() + self
    }
}

impl Deadline for Instant {
    fn instant(self) -> Instant {
        self
    }
}

impl Deadline for std::time::Instant {
    fn instant(self) -> Instant {
        Instant::from_std(self)
    }
}

/// Evaluates `condition` every [`POLL_INTERVAL`] until it returns `true` (→ `Ok`) or the
/// deadline passes (→ `Err(TimedOut)`). It is always evaluated at least once, and once more at
/// the deadline.
pub async fn until<F, Fut>(deadline: impl Deadline, mut condition: F) -> Result<(), TimedOut>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    until_some(deadline, || {
        let holds = condition();
        async move { holds.await.then_some(()) }
    })
    .await
}

/// Like [`until`], for a probe that yields a value once it is there (`Some`).
pub async fn until_some<T, F, Fut>(deadline: impl Deadline, mut probe: F) -> Result<T, TimedOut>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    let deadline = deadline.instant();
    loop {
        if let Some(value) = probe().await {
            return Ok(value);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(TimedOut {
                waited: now - start,
            });
        }
        tokio::time::sleep(POLL_INTERVAL.min(deadline - now)).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn returns_as_soon_as_the_condition_holds() {
        let calls = AtomicU32::new(0);
        let result = until(Duration::from_secs(10), || async {
            calls.fetch_add(1, Ordering::SeqCst) >= 2
        })
        .await;
        assert_eq!(result, Ok(()));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn times_out_when_the_condition_never_holds() {
        let started = Instant::now();
        let result = until(Duration::from_millis(100), || async { false }).await;
        let err = result.expect_err("must time out");
        assert!(err.waited >= Duration::from_millis(100), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn until_some_yields_the_value() {
        let mut n = 0;
        let value = until_some(Duration::from_secs(10), || {
            n += 1;
            let current = n;
            async move { (current == 3).then_some(current * 10) }
        })
        .await;
        assert_eq!(value, Ok(30));
    }

    #[tokio::test]
    async fn a_past_deadline_still_evaluates_once() {
        let value = until_some(std::time::Instant::now(), || async { Some("now") }).await;
        assert_eq!(value, Ok("now"));
    }
}
