//! Fleet-wide limits: one sliding-window limit shared by every proxy that uses the same Valkey
//! (or Redis) store, standalone or cluster.
//!
//! This module owns the store's side of a decision: the `[store]` settings, the key of each
//! limit, the script that counts and admits in one atomic step by the store's clock, the
//! connection, and what an unreachable store costs: each decision has a time budget, and a
//! circuit breaker answers at once while the store is down, so an outage costs one budget per
//! back-off rather than one per call. It does not decide which calls a fleet limit governs nor
//! what a refusal looks like: the session asks [`FleetLimiter::admit`] and applies
//! [`StoreSettings::on_error`] to an `Err`.
//!
//! The limit means exactly what the in-process limiter (`policy/rate_limit.rs`) means: at most
//! `max` admitted calls in any sliding `window`; refused calls never count, and a refusal says
//! when a retry would pass. The set of calls is every proxy's, and the clock is the store's.
//!
//! `names.rs` names keys and shows URLs without passwords, `breaker.rs` is the circuit breaker,
//! and `client.rs` is the only file that uses the `redis` crate; none of its types is public.

mod breaker;
mod client;
mod names;

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher as _, Hasher as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, info, warn};

use breaker::{Breaker, Permit, Transition};
use client::{Failure, FailureKind, Store};
pub use names::redact_url;

/// The default budget of one decision, connecting included. About 500 loopback round trips and
/// tens of cross-zone ones, so a healthy store never misses it; small next to a tool call, so a
/// store that does miss it costs the call little before it is refused.
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_millis(50);

/// The default namespace of every key, so a store shared with other applications can tell the
/// proxy's keys apart (and an ACL can grant exactly them: `~mcp-policy-proxy:*`).
pub const DEFAULT_STORE_PREFIX: &str = "mcp-policy-proxy";

/// `[store]`: where the fleet's limits live and how to behave when it cannot be asked.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreSettings {
    /// `redis://`, `rediss://` (TLS), `valkey://` or `valkeys://`; credentials may be in it, and
    /// are never shown (see [`redact_url`]).
    pub url: String,
    /// `url` names any node of a cluster.
    pub cluster: bool,
    /// The whole budget of one decision, connecting included.
    pub timeout: Duration,
    /// What a call under a fleet limit gets when the store gives no decision.
    pub on_error: OnError,
    /// The namespace of every key.
    pub prefix: String,
}

impl StoreSettings {
    /// The settings for `url`, everything else by default.
    pub fn new(url: impl Into<String>) -> StoreSettings {
        StoreSettings {
            url: url.into(),
            cluster: false,
            timeout: DEFAULT_STORE_TIMEOUT,
            on_error: OnError::default(),
            prefix: DEFAULT_STORE_PREFIX.to_owned(),
        }
    }

    /// The URL as logs and messages show it: without user name and password.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }
}

/// Written by hand so that no `{:?}` of a configuration ever prints the password.
impl fmt::Debug for StoreSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreSettings")
            .field("url", &self.redacted_url())
            .field("cluster", &self.cluster)
            .field("timeout", &self.timeout)
            .field("on_error", &self.on_error)
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// What a call under a fleet limit gets when the store gives no decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    /// Refused: a limit that cannot be enforced must not become no limit.
    #[default]
    Deny,
    /// Let through, uncounted.
    Allow,
}

/// The store's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Counted: the call may be forwarded.
    Admitted,
    /// Not counted. A retry would pass after `retry_after` at the earliest; another proxy may
    /// take the freed place first.
    Refused { retry_after: Duration },
}

/// One fleet-wide limit, as the session names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit<'a> {
    /// The limit's stable identity, the same in every proxy of the fleet: the rule's key and
    /// the scope, e.g. `name:code-connections|global` or `name:code-connections|agent:1234`.
    pub key: &'a str,
    pub max: u32,
    pub window: Duration,
}

/// Why the store gave no decision. Every message names the store by its URL without
/// credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store failed a moment ago; it was not asked, and is asked again after `retry_after`.
    #[error("store {store} is unavailable ({reason}); it is asked again in {}", millis(*.retry_after))]
    Unavailable {
        store: String,
        reason: String,
        retry_after: Duration,
    },
    /// The store did not decide within the budget.
    #[error("store {store} did not decide within {}", millis(*.budget))]
    Timeout {
        store: String,
        budget: Duration,
        retry_after: Duration,
    },
    /// No connection: refused, reset, closed, or it could not be made.
    #[error("cannot reach store {store}: {reason}")]
    Connection {
        store: String,
        reason: String,
        retry_after: Duration,
    },
    /// The store answered with an error: wrong credentials, missing ACL rights, a cluster that
    /// is down, a server still loading, a key of another type.
    #[error("store {store} answered with an error: {reason}")]
    Server {
        store: String,
        reason: String,
        retry_after: Duration,
    },
    /// The URL cannot be used; configuration checks make this rare.
    #[error("invalid store url {store}: {reason}")]
    InvalidUrl { store: String, reason: String },
}

impl StoreError {
    /// When the store will be asked again at the earliest (`None`: never, the URL is invalid).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            StoreError::Unavailable { retry_after, .. }
            | StoreError::Timeout { retry_after, .. }
            | StoreError::Connection { retry_after, .. }
            | StoreError::Server { retry_after, .. } => Some(*retry_after),
            StoreError::InvalidUrl { .. } => None,
        }
    }

    /// The store's URL without credentials.
    pub fn store(&self) -> &str {
        match self {
            StoreError::Unavailable { store, .. }
            | StoreError::Timeout { store, .. }
            | StoreError::Connection { store, .. }
            | StoreError::Server { store, .. }
            | StoreError::InvalidUrl { store, .. } => store,
        }
    }
}

/// Decides fleet-wide limits against the store. One per proxy process; cheap to clone, and
/// safe to call from many tasks at once: their decisions overlap on one multiplexed
/// connection, none waits for another's round trip.
///
/// Must be used inside a tokio runtime (it connects in a task of its own).
#[derive(Clone)]
pub struct FleetLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    settings: StoreSettings,
    /// The URL without credentials.
    store_name: String,
    store: Result<Store, String>,
    breaker: Mutex<Breaker>,
    /// With `sequence`, makes each decision's member unique across the fleet: a member that
    /// repeated would be one entry in the log for two calls.
    instance: u64,
    sequence: AtomicU64,
}

impl FleetLimiter {
    /// Reads the settings; connects nothing, so the proxy starts whether the store is there or
    /// not. The first decision connects.
    pub fn new(settings: StoreSettings) -> FleetLimiter {
        if tls(&settings.url) {
            // The `redis` crate's rustls needs a process-wide provider; only `ring` is compiled
            // in. An error means one is installed already, which is as good.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let store_name = settings.redacted_url();
        let store = Store::new(&settings);
        let instance = {
            let mut hasher = RandomState::new().build_hasher();
            hasher.write_u32(std::process::id());
            hasher.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos()),
            );
            hasher.finish()
        };
        FleetLimiter {
            inner: Arc::new(Inner {
                settings,
                store_name,
                store,
                breaker: Mutex::new(Breaker::new()),
                instance,
                sequence: AtomicU64::new(0),
            }),
        }
    }

    pub fn settings(&self) -> &StoreSettings {
        &self.inner.settings
    }

    /// Asks the store whether a call may pass `limit`, and counts it if so. Takes at most the
    /// settings' `timeout`, connecting included; while the store is down, answers `Err` at once
    /// and asks the store again only after a back-off (250 ms, doubling up to 10 s).
    pub async fn admit(&self, limit: Limit<'_>) -> Result<Admission, StoreError> {
        let inner = &*self.inner;
        let store = inner
            .store
            .as_ref()
            .map_err(|reason| StoreError::InvalidUrl {
                store: inner.store_name.clone(),
                reason: reason.clone(),
            })?;
        let probe = match lock(&inner.breaker).permit(Instant::now()) {
            Permit::Ask => false,
            Permit::Probe => true,
            Permit::Refuse {
                reason,
                retry_after,
            } => {
                return Err(StoreError::Unavailable {
                    store: inner.store_name.clone(),
                    reason,
                    retry_after,
                });
            }
        };
        let mut probing = ProbeGuard {
            inner,
            armed: probe,
        };
        let key = names::limit_key(&inner.settings.prefix, limit.key);
        let member = format!(
            "{:016x}.{:x}",
            inner.instance,
            inner.sequence.fetch_add(1, Ordering::Relaxed)
        );
        let budget = inner.settings.timeout;
        let decided =
            tokio::time::timeout(budget, store.decide(&key, &member, limit.max, limit.window))
                .await;
        probing.armed = false;
        let now = Instant::now();
        match decided {
            Ok(Ok(reply)) => {
                self.succeeded(now, probe);
                debug!(
                    %key,
                    admitted = reply.admitted,
                    remaining = reply.remaining,
                    retry_after_us = reply.retry_after.as_micros() as u64,
                    "fleet limit decided"
                );
                Ok(if reply.admitted {
                    Admission::Admitted
                } else {
                    Admission::Refused {
                        retry_after: reply.retry_after,
                    }
                })
            }
            Ok(Err(Failure { kind, reason })) => {
                let retry_after = self.failed(now, probe, &reason);
                let store = inner.store_name.clone();
                Err(match kind {
                    FailureKind::Connection => StoreError::Connection {
                        store,
                        reason,
                        retry_after,
                    },
                    FailureKind::Server => StoreError::Server {
                        store,
                        reason,
                        retry_after,
                    },
                })
            }
            Err(_elapsed) => {
                // A connection that kept a decision waiting this long is not trusted with the
                // next one.
                store.forget(None);
                let reason = format!("no decision within {}", millis(budget));
                let retry_after = self.failed(now, probe, &reason);
                Err(StoreError::Timeout {
                    store: inner.store_name.clone(),
                    budget,
                    retry_after,
                })
            }
        }
    }

    fn succeeded(&self, now: Instant, probe: bool) {
        let transition = lock(&self.inner.breaker).succeeded(now, probe);
        if let Some(Transition::CameBack { outage }) = transition {
            info!(
                store = %self.inner.store_name,
                "the fleet store is back after {}; fleet-wide limits are enforced again",
                millis(outage)
            );
        }
    }

    /// Opens the breaker (or keeps it open) and returns when the store is asked next.
    fn failed(&self, now: Instant, probe: bool, reason: &str) -> Duration {
        let (transition, retry_after) =
            lock(&self.inner.breaker).failed(now, probe, reason, random_fraction());
        if transition == Some(Transition::WentDown) {
            let effect = match self.inner.settings.on_error {
                OnError::Deny => "calls under fleet-wide limits are refused",
                OnError::Allow => "calls under fleet-wide limits run uncounted",
            };
            warn!(
                store = %self.inner.store_name,
                "the fleet store is unavailable ({reason}); {effect} until it is back"
            );
        }
        retry_after
    }
}

impl fmt::Debug for FleetLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetLimiter")
            .field("store", &self.inner.store_name)
            .field("cluster", &self.inner.settings.cluster)
            .finish_non_exhaustive()
    }
}

/// Hands the probe back if its caller goes away before the store answers, so the breaker does
/// not wait forever for a verdict that will never come.
struct ProbeGuard<'a> {
    inner: &'a Inner,
    armed: bool,
}

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            lock(&self.inner.breaker).abandoned(Instant::now());
        }
    }
}

/// Whether the client can use `url` (host, port, database, credentials); the reason if not,
/// without the password. The configuration's checks use it, so a URL the client would reject
/// is a config error with a line and a column rather than a failure at the first call.
pub fn check_url(url: &str) -> Result<(), String> {
    client::check_url(url)
}

fn tls(url: &str) -> bool {
    let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
    scheme.eq_ignore_ascii_case("rediss") || scheme.eq_ignore_ascii_case("valkeys")
}

/// A number in [0, 1) that differs between calls and between processes, for jitter; the
/// standard library's hasher keys are random, which is all the randomness this needs.
fn random_fraction() -> f64 {
    let bits = RandomState::new().build_hasher().finish() >> 11;
    bits as f64 / (1u64 << 53) as f64
}

/// A duration for people, rounded up to the millisecond: "50ms", "1250ms".
fn millis(duration: Duration) -> String {
    let ms = duration.as_micros().div_ceil(1_000);
    format!("{ms}ms")
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The breaker's state stays meaningful after a panic elsewhere.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_store_without_its_password() {
        let limiter = FleetLimiter::new(StoreSettings::new("redis://app:hunter2@[::1"));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let err = runtime
            .block_on(limiter.admit(Limit {
                key: "name:r|global",
                max: 1,
                window: Duration::from_secs(1),
            }))
            .unwrap_err();
        assert!(matches!(err, StoreError::InvalidUrl { .. }), "{err:?}");
        assert_eq!(err.retry_after(), None);
        let text = format!("{err} {err:?} {limiter:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("redis://***@[::1"), "{text}");
        let settings = StoreSettings::new("rediss://:hunter2@valkey.internal:6380");
        let shown = format!("{settings:?}");
        assert!(
            shown.contains("rediss://***@valkey.internal:6380") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[test]
    fn durations_are_shown_in_whole_milliseconds_rounded_up() {
        let cases = [(0, "0ms"), (1, "1ms"), (50_000, "50ms"), (50_001, "51ms")];
        for (us, expected) in cases {
            assert_eq!(millis(Duration::from_micros(us)), expected);
        }
    }

    #[test]
    fn jitter_is_a_fraction() {
        for _ in 0..1_000 {
            let x = random_fraction();
            assert!((0.0..1.0).contains(&x), "{x}");
        }
    }
}
