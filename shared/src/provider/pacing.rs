//! Client-side pacing: a token bucket that keeps requests below the provider's published limit, so
//! that 429s are the exception rather than the control loop.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// Token bucket refilled continuously at `per_minute / 60` tokens a second, holding at most
/// `burst` tokens. `acquire` waits until a token is available.
#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    burst: u32,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    tokens: f64,
    updated: Instant,
}

impl Pacer {
    /// `per_minute` of 0 is treated as 1; `burst` of 0 as 1.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        let per_minute = per_minute.max(1);
        let burst = burst.max(1);
        Self {
            interval: Duration::from_secs_f64(60.0 / f64::from(per_minute)),
            burst,
            state: Mutex::new(State {
                tokens: f64::from(burst),
                updated: Instant::now(),
            }),
        }
    }

    /// A pacer that never waits (tests that are about something else).
    pub fn unlimited() -> Self {
        Self::new(u32::MAX, u32::MAX)
    }

    pub fn requests_per_minute(&self) -> f64 {
        60.0 / self.interval.as_secs_f64()
    }

    /// Waits for a token and takes it. Returns how long it waited.
    pub async fn acquire(&self) -> Duration {
        let mut state = self.state.lock().await;
        let now = Instant::now();
        let refill = now.duration_since(state.updated).as_secs_f64() / self.interval.as_secs_f64();
        state.tokens = (state.tokens + refill).min(f64::from(self.burst));
        state.updated = now;
        if state.tokens >= 1.0 {
            state.tokens -= 1.0;
            return Duration::ZERO;
        }
        let wait = self.interval.mul_f64(1.0 - state.tokens);
        // Holding the lock while sleeping keeps callers in FIFO order.
        tokio::time::sleep(wait).await;
        state.tokens = 0.0;
        state.updated = Instant::now();
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn paces_to_the_configured_rate_after_the_burst() {
        let pacer = Pacer::new(60, 2);
        let start = Instant::now();
        for _ in 0..2 {
            assert_eq!(pacer.acquire().await, Duration::ZERO);
        }
        for _ in 0..3 {
            pacer.acquire().await;
        }
        // Burst of 2 is free, then one token a second: 3 more requests need 3 seconds of (virtual) time.
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_secs(3), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(3100), "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn idle_time_refills_up_to_the_burst_only() {
        let pacer = Pacer::new(60, 1);
        pacer.acquire().await;
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(pacer.acquire().await, Duration::ZERO);
        assert!(pacer.acquire().await >= Duration::from_millis(999));
    }
}
