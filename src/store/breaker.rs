//! The circuit breaker that keeps an outage of the store from costing every call its whole
//! budget: after a failure, calls are answered at once, without the store, until a back-off has
//! passed; then one call probes the store with the full budget while the others still get their
//! answer at once; the probe's success closes the breaker, its failure doubles the back-off.
//!
//! Pure: the caller passes the time and the randomness, so every transition is tested without
//! a store and without sleeping.

use std::time::Duration;

use tokio::time::Instant;

/// The first back-off after the store fails: long enough that a dead store costs one timed-out
/// call per quarter second at most, short enough that a blip (a restart, a fail-over) is over
/// for the callers soon after it is over for the store.
pub(super) const MIN_BACKOFF: Duration = Duration::from_millis(250);

/// The longest back-off: after a long outage the store is still tried every 10 s, so recovery
/// is noticed within 10 s of the store coming back.
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// What a caller may do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Permit {
    /// The store is up: ask it.
    Ask,
    /// The store was down and the back-off has passed: ask it, as the only caller doing so.
    Probe,
    /// The store is down: decide without it. `retry_after` is when it will be asked again at
    /// the earliest.
    Refuse {
        reason: String,
        retry_after: Duration,
    },
}

/// A change the operator hears about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Transition {
    /// The store just failed after working (or before it ever worked).
    WentDown,
    /// A probe succeeded: the outage that started `outage` ago is over.
    CameBack { outage: Duration },
}

#[derive(Debug)]
pub(super) struct Breaker {
    state: State,
    /// The back-off last applied: a failed probe doubles it, a successful one resets it.
    backoff: Duration,
}

#[derive(Debug)]
enum State {
    Closed,
    Open {
        since: Instant,
        until: Instant,
        reason: String,
    },
    /// A probe is in flight.
    HalfOpen {
        since: Instant,
        reason: String,
    },
}

impl Breaker {
    pub(super) fn new() -> Breaker {
        Breaker {
            state: State::Closed,
            backoff: MIN_BACKOFF,
        }
    }

    pub(super) fn permit(&mut self, now: Instant) -> Permit {
        match &mut self.state {
            State::Closed => Permit::Ask,
            State::Open { until, reason, .. } if now < *until => Permit::Refuse {
                reason: reason.clone(),
                retry_after: *until - now,
            },
            State::Open { since, reason, .. } => {
                self.state = State::HalfOpen {
                    since: *since,
                    reason: std::mem::take(reason),
                };
                Permit::Probe
            }
            // The probe decides within its budget; until then the others hear "soon".
            State::HalfOpen { reason, .. } => Permit::Refuse {
                reason: reason.clone(),
                retry_after: MIN_BACKOFF,
            },
        }
    }

    /// A call that asked the store got its answer. Only the probe closes an open breaker: a call
    /// that started before the outage and answered after it was noticed says nothing new.
    pub(super) fn succeeded(&mut self, now: Instant, probe: bool) -> Option<Transition> {
        match self.state {
            State::HalfOpen { since, .. } if probe => {
                self.state = State::Closed;
                self.backoff = MIN_BACKOFF;
                Some(Transition::CameBack {
                    outage: now.saturating_duration_since(since),
                })
            }
            _ => None,
        }
    }

    /// A call that asked the store failed; `jitter` in [0, 1) spreads the proxies' probes so a
    /// recovering store is not hit by all of them at once. Returns the back-off now in force.
    pub(super) fn failed(
        &mut self,
        now: Instant,
        probe: bool,
        reason: &str,
        jitter: f64,
    ) -> (Option<Transition>, Duration) {
        let (since, transition) = match &self.state {
            State::Closed => (now, Some(Transition::WentDown)),
            State::HalfOpen { since, .. } if probe => {
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                (*since, None)
            }
            // Another call's failure already opened it, or a probe is deciding.
            State::Open { until, .. } => return (None, until.saturating_duration_since(now)),
            State::HalfOpen { .. } => return (None, MIN_BACKOFF),
        };
        // Between half and all of the back-off.
        let wait = self.backoff.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0));
        self.state = State::Open {
            since,
            until: now + wait,
            reason: reason.to_owned(),
        };
        (transition, wait)
    }

    /// The probe was dropped before it decided (its caller went away): let the next call probe.
    pub(super) fn abandoned(&mut self, now: Instant) {
        if let State::HalfOpen { since, reason } = &mut self.state {
            self.state = State::Open {
                since: *since,
                until: now,
                reason: std::mem::take(reason),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn refused(permit: Permit) -> Duration {
        match permit {
            Permit::Refuse { retry_after, .. } => retry_after,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_failure_opens_it_and_calls_are_refused_at_once_until_the_backoff_passes() {
        let t0 = Instant::now();
        let mut breaker = Breaker::new();
        assert_eq!(breaker.permit(t0), Permit::Ask);
        let (transition, wait) = breaker.failed(t0, false, "connection refused", 1.0);
        assert_eq!(transition, Some(Transition::WentDown));
        assert_eq!(wait, MIN_BACKOFF);
        assert_eq!(refused(breaker.permit(t0 + ms(100))), ms(150));
        match breaker.permit(t0 + ms(249)) {
            Permit::Refuse { reason, .. } => assert_eq!(reason, "connection refused"),
            other => panic!("{other:?}"),
        }
        assert_eq!(breaker.permit(t0 + ms(250)), Permit::Probe);
        // One probe at a time.
        assert_eq!(refused(breaker.permit(t0 + ms(251))), MIN_BACKOFF);
    }

    #[test]
    fn failed_probes_double_the_backoff_up_to_the_cap_and_a_success_resets_it() {
        let start = Instant::now();
        let mut now = start;
        let mut breaker = Breaker::new();
        breaker.failed(now, false, "down", 1.0);
        let mut waits = Vec::new();
        for _ in 0..8 {
            now += breaker.backoff;
            assert_eq!(breaker.permit(now), Permit::Probe);
            let (transition, wait) = breaker.failed(now, true, "down", 1.0);
            assert_eq!(transition, None, "one warning per outage");
            waits.push(wait.as_millis());
        }
        assert_eq!(
            waits,
            [500, 1_000, 2_000, 4_000, 8_000, 10_000, 10_000, 10_000]
        );
        now += MAX_BACKOFF;
        assert_eq!(breaker.permit(now), Permit::Probe);
        assert_eq!(
            breaker.succeeded(now, true),
            Some(Transition::CameBack {
                outage: now - start
            })
        );
        assert_eq!(breaker.permit(now), Permit::Ask);
        let (_, wait) = breaker.failed(now, false, "down again", 1.0);
        assert_eq!(wait, MIN_BACKOFF);
    }

    #[test]
    fn jitter_waits_between_half_and_all_of_the_backoff() {
        let now = Instant::now();
        for (jitter, expected) in [(0.0, 125), (0.5, 187), (0.999, 249)] {
            let mut breaker = Breaker::new();
            let (_, wait) = breaker.failed(now, false, "down", jitter);
            assert_eq!(wait.as_millis(), expected, "jitter {jitter}");
        }
    }

    #[test]
    fn stale_answers_of_calls_started_before_the_outage_change_nothing() {
        let t0 = Instant::now();
        let mut breaker = Breaker::new();
        breaker.failed(t0, false, "reset", 1.0);
        // Another in-flight call fails too: no second warning, no longer back-off.
        assert_eq!(
            breaker.failed(t0 + ms(1), false, "reset", 1.0),
            (None, ms(249))
        );
        // And one succeeds late: the breaker stays open until a probe says otherwise.
        assert_eq!(breaker.succeeded(t0 + ms(2), false), None);
        assert_eq!(refused(breaker.permit(t0 + ms(3))), ms(247));
        assert_eq!(breaker.succeeded(t0 + ms(4), true), None);
    }

    #[test]
    fn an_abandoned_probe_lets_the_next_call_probe() {
        let t0 = Instant::now();
        let mut breaker = Breaker::new();
        breaker.failed(t0, false, "timeout", 1.0);
        assert_eq!(breaker.permit(t0 + ms(300)), Permit::Probe);
        breaker.abandoned(t0 + ms(310));
        assert_eq!(breaker.permit(t0 + ms(311)), Permit::Probe);
        assert!(matches!(
            breaker.succeeded(t0 + ms(312), true),
            Some(Transition::CameBack { .. })
        ));
    }
}
