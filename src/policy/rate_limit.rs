//! Sliding-window rate limiting for one rule in one session.
//!
//! A limiter remembers when it let each call through and admits a new one only while fewer than
//! `max` of them fall inside the last `window`. It never reads the clock: the caller passes `now`,
//! so the policy engine stays pure and tests need no sleeps.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Counts the calls one rule let through over a sliding window.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    max: usize,
    window: Duration,
    /// When each call still inside the window was admitted, oldest first.
    admitted: VecDeque<Instant>,
}

impl RateLimiter {
    pub fn new(max: u32, window: Duration) -> RateLimiter {
        let max = max as usize;
        RateLimiter {
            max,
            window,
            // Small limits are the common case; large ones grow on demand.
            admitted: VecDeque::with_capacity(max.min(64)),
        }
    }

    /// Whether a call at `now` would be admitted; if not, how long until the oldest admitted
    /// call leaves the window and one would be. Counts nothing.
    pub fn check(&mut self, now: Instant) -> Result<(), Duration> {
        while let Some(&oldest) = self.admitted.front() {
            if now.saturating_duration_since(oldest) >= self.window {
                self.admitted.pop_front();
            } else {
                break;
            }
        }
        if self.admitted.len() < self.max {
            return Ok(());
        }
        let oldest = self.admitted[0];
        Err((oldest + self.window).saturating_duration_since(now))
    }

    /// Counts a call admitted at `now`.
    pub fn admit(&mut self, now: Instant) {
        self.admitted.push_back(now);
    }

    /// [`RateLimiter::check`], then [`RateLimiter::admit`] if it passes.
    pub fn try_admit(&mut self, now: Instant) -> Result<(), Duration> {
        self.check(now)?;
        self.admit(now);
        Ok(())
    }

    /// Takes a new limit, keeping the calls already counted: a reload that changes a rule's
    /// numbers does not forget what the session already did under it.
    pub fn reconfigure(&mut self, max: u32, window: Duration) {
        self.max = max as usize;
        self.window = window;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Each step: milliseconds after the start, and whether the call is admitted (`None`) or
    /// refused with the given retry-after in milliseconds.
    fn run(max: u32, window_ms: u64, steps: &[(u64, Option<u64>)]) {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(max, ms(window_ms));
        for (i, &(at, expected)) in steps.iter().enumerate() {
            let got = limiter.try_admit(start + ms(at));
            match expected {
                None => assert_eq!(got, Ok(()), "step {i} at {at}ms should be admitted"),
                Some(retry) => assert_eq!(got, Err(ms(retry)), "step {i} at {at}ms"),
            }
        }
    }

    #[test]
    fn admits_up_to_max_then_refuses_with_time_to_wait() {
        run(
            3,
            60_000,
            &[
                (0, None),
                (10, None),
                (20, None),
                (30, Some(59_970)),
                (59_999, Some(1)),
            ],
        );
    }

    #[test]
    fn window_slides_rather_than_resetting() {
        // A fixed window aligned at 0 would admit 2 more at 60s; a sliding one admits them one at
        // a time as each earlier call leaves the window.
        run(
            2,
            60_000,
            &[
                (0, None),
                (30_000, None),
                (45_000, Some(15_000)),
                (60_000, None),
                (60_001, Some(29_999)),
                (90_000, None),
            ],
        );
    }

    #[test]
    fn refused_calls_do_not_count() {
        run(
            1,
            1_000,
            &[(0, None), (500, Some(500)), (900, Some(100)), (1_000, None)],
        );
    }

    #[test]
    fn a_call_exactly_one_window_later_is_admitted() {
        run(
            1,
            1_000,
            &[(0, None), (1_000, None), (1_999, Some(1)), (2_000, None)],
        );
    }

    #[test]
    fn clock_going_backwards_never_panics() {
        let start = Instant::now() + ms(10_000);
        let mut limiter = RateLimiter::new(1, ms(1_000));
        assert_eq!(limiter.try_admit(start), Ok(()));
        assert_eq!(limiter.try_admit(start - ms(5_000)), Err(ms(6_000)));
    }
}
