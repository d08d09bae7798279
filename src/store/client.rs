//! The only file that speaks to the store, through the `redis` crate: the connection (one
//! multiplexed connection to a standalone server, or a cluster connection that routes by slot),
//! made in the background and replaced when it breaks, and the script that decides.
//!
//! No `redis` type leaves this file: the rest of the module sees a [`Reply`] or a [`Failure`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{AsyncConnectionConfig, Client, Cmd, ErrorKind, RedisError, ServerErrorKind};
use tokio::sync::watch;

use super::StoreSettings;
use super::names::url_secrets;

/// How long connecting may take. Connecting runs in a task of its own, not in a caller's budget:
/// a TLS handshake to a store a few milliseconds away can take longer than one decision's budget,
/// and would never finish if each caller's time-out cancelled it. Callers wait for it only as
/// long as their budget allows; a connection that arrives later serves the next call.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Retries of one command inside the cluster client (MOVED, ASK, TRYAGAIN, a replaced node),
/// all inside the caller's budget. The client's default is 16 with waits of over a second.
const CLUSTER_RETRIES: u32 = 2;

/// The decision, one atomic step on the server: an exact sliding-window log in a sorted set,
/// timed by the store's clock. Sent by EVALSHA; on NOSCRIPT (a restarted or failed-over server
/// forgot it) by EVAL to the same key's node, which caches it there. Not a FUNCTION: functions
/// must be loaded into every primary by an operator, and again after every restart of a store
/// without persistence; a script travels with the proxy and its digest changes with its text,
/// so two proxy versions never overwrite each other's code.
const SCRIPT: &str = r"-- mcp-policy-proxy fleet limit v1: an exact sliding-window log.
-- KEYS[1] a sorted set: one member per admitted call, scored by its time (microseconds, TIME).
-- ARGV[1] a member unique to this decision, ARGV[2] max, ARGV[3] the window in microseconds.
-- Returns {admitted 1|0, microseconds until a retry would pass (0 if admitted), remaining}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local max = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
-- An admission leaves the window when now - at >= window, as in the in-process limiter.
-- string.format, never tostring: tostring keeps 14 digits of a 16-digit time.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now - window))
local count = redis.call('ZCARD', KEYS[1])
if count < max then
  redis.call('ZADD', KEYS[1], string.format('%.0f', now), ARGV[1])
  -- The key dies when its newest admission leaves the window.
  redis.call('PEXPIRE', KEYS[1], math.floor(window / 1000) + 1)
  return {1, 0, max - count - 1}
end
if max <= 0 then
  return {0, window, 0}
end
-- A retry passes once all but max - 1 of the counted admissions have left the window.
local nth = redis.call('ZRANGE', KEYS[1], count - max, count - max, 'WITHSCORES')
local retry = tonumber(nth[2]) + window - now
if retry > window then retry = window end -- the clock went back (a fail-over)
if retry < 1 then retry = 1 end
return {0, retry, 0}
";

static SCRIPT_SHA1: LazyLock<String> =
    LazyLock::new(|| redis::Script::new(SCRIPT).get_hash().to_owned());

/// What the store decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Reply {
    pub admitted: bool,
    /// When a retry would pass, at the earliest (zero when admitted).
    pub retry_after: Duration,
    /// Calls left in the window after this one.
    pub remaining: u32,
}

/// Why the store gave no decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Failure {
    pub kind: FailureKind,
    /// The client's or the server's words, with any password from the URL removed.
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FailureKind {
    /// No usable connection: refused, reset, closed, or it could not be made.
    Connection,
    /// The store answered with an error (credentials, ACL, cluster down, loading, a script or
    /// type error).
    Server,
}

/// The client side of one store; cheap to clone.
#[derive(Clone)]
pub(super) struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    target: Target,
    /// Strings never to show: the URL's password.
    secrets: Vec<String>,
    /// The connection in use, if any.
    current: Mutex<Option<Current>>,
    /// The connecting task's answer, while one runs: every caller that needs a connection
    /// meanwhile waits for the same one.
    connecting: Mutex<Option<Answer>>,
    /// Numbers the connections, so a failure forgets only the connection that failed.
    generation: AtomicU64,
}

/// Where a connecting task publishes its outcome (`None` until it has one).
type Answer = watch::Receiver<Option<Result<Current, Failure>>>;

// One per limiter, made once: the size of the larger variant costs nothing.
#[allow(clippy::large_enum_variant)]
enum Target {
    Standalone(Client),
    Cluster(ClusterClient),
}

#[derive(Clone)]
struct Current {
    generation: u64,
    connection: Connection,
}

/// Both connections multiplex: clones share one socket (per node), and requests from many
/// tasks are pipelined on it rather than waiting for each other.
#[derive(Clone)]
enum Connection {
    Standalone(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl Store {
    /// Reads the URL; connects nothing.
    pub(super) fn new(settings: &StoreSettings) -> Result<Store, String> {
        let secrets = url_secrets(&settings.url);
        let target = if settings.cluster {
            ClusterClientBuilder::new(vec![settings.url.as_str()])
                .connection_timeout(CONNECT_TIMEOUT)
                .response_timeout(settings.timeout)
                .overall_response_timeout(Some(settings.timeout))
                .retries(CLUSTER_RETRIES)
                .min_retry_wait(0)
                .max_retry_wait(settings.timeout.as_millis().try_into().unwrap_or(u64::MAX))
                .retry_wait_formula(1, 2)
                .build()
                .map(Target::Cluster)
        } else {
            Client::open(settings.url.as_str()).map(Target::Standalone)
        };
        let target = target.map_err(|err| scrub(&err.to_string(), &secrets))?;
        Ok(Store {
            inner: Arc::new(Inner {
                target,
                secrets,
                current: Mutex::new(None),
                connecting: Mutex::new(None),
                generation: AtomicU64::new(0),
            }),
        })
    }

    /// Runs the script for one decision: admitted calls are recorded, refused ones are not.
    pub(super) async fn decide(
        &self,
        key: &str,
        member: &str,
        max: u32,
        window: Duration,
    ) -> Result<Reply, Failure> {
        let current = self.connection().await?;
        let mut connection = current.connection;
        let window_us = u64::try_from(window.as_micros()).unwrap_or(u64::MAX);
        let mut evalsha = redis::cmd("EVALSHA");
        evalsha
            .arg(SCRIPT_SHA1.as_str())
            .arg(1)
            .arg(key)
            .arg(member)
            .arg(max)
            .arg(window_us);
        let answer = match connection.query(&evalsha).await {
            Err(err) if err.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                let mut eval = redis::cmd("EVAL");
                eval.arg(SCRIPT)
                    .arg(1)
                    .arg(key)
                    .arg(member)
                    .arg(max)
                    .arg(window_us);
                connection.query(&eval).await
            }
            answer => answer,
        };
        let answer = answer.map_err(|err| {
            let failure = self.failure(&err);
            if failure.kind == FailureKind::Connection {
                self.forget(Some(current.generation));
            }
            failure
        })?;
        parse_reply(&answer).ok_or_else(|| Failure {
            kind: FailureKind::Server,
            reason: format!("unexpected answer from the script: {answer:?}"),
        })
    }

    /// Drops the connection in use (`None`), or only if it is still the one numbered
    /// `generation`; the next call makes a new one.
    pub(super) fn forget(&self, generation: Option<u64>) {
        let mut current = lock(&self.inner.current);
        if current
            .as_ref()
            .is_some_and(|c| generation.is_none_or(|g| g == c.generation))
        {
            *current = None;
        }
    }

    /// The connection in use, or the one being made (started here if none is).
    async fn connection(&self) -> Result<Current, Failure> {
        if let Some(current) = lock(&self.inner.current).clone() {
            return Ok(current);
        }
        let mut answer = {
            let mut connecting = lock(&self.inner.connecting);
            // Checked again under the lock the connecting task publishes under.
            if let Some(current) = lock(&self.inner.current).clone() {
                return Ok(current);
            }
            match &*connecting {
                Some(answer) => answer.clone(),
                None => {
                    let (tell, answer) = watch::channel(None);
                    *connecting = Some(answer.clone());
                    tokio::spawn(self.clone().connect(tell));
                    answer
                }
            }
        };
        let answer = answer
            .wait_for(Option::is_some)
            .await
            .map_err(|_| Failure {
                kind: FailureKind::Connection,
                reason: "the connecting task ended without an answer".to_owned(),
            })?;
        answer.clone().expect("waited for an answer")
    }

    async fn connect(self, tell: watch::Sender<Option<Result<Current, Failure>>>) {
        let made = match &self.inner.target {
            Target::Standalone(client) => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(CONNECT_TIMEOUT));
                let connect = client.get_multiplexed_async_connection_with_config(&config);
                tokio::time::timeout(CONNECT_TIMEOUT, connect)
                    .await
                    .map(|made| made.map(Connection::Standalone))
            }
            Target::Cluster(client) => {
                // Under a time-out of our own: the cluster client's can hang
                // (redis-rs/redis-rs#1953).
                tokio::time::timeout(CONNECT_TIMEOUT, client.get_async_connection())
                    .await
                    .map(|made| made.map(Connection::Cluster))
            }
        };
        let answer = match made {
            Ok(Ok(connection)) => Ok(Current {
                generation: self.inner.generation.fetch_add(1, Ordering::Relaxed) + 1,
                connection,
            }),
            Ok(Err(err)) => Err(self.failure(&err)),
            Err(_) => Err(Failure {
                kind: FailureKind::Connection,
                reason: format!(
                    "connecting took longer than {} s",
                    CONNECT_TIMEOUT.as_secs()
                ),
            }),
        };
        {
            let mut connecting = lock(&self.inner.connecting);
            if let Ok(current) = &answer {
                *lock(&self.inner.current) = Some(current.clone());
            }
            *connecting = None;
        }
        // Nobody may be waiting any more: their budgets ran out.
        let _ = tell.send(Some(answer));
    }

    fn failure(&self, err: &RedisError) -> Failure {
        // The server answered (and the connection still works): credentials, ACL, cluster
        // state, a script or type error. Anything else leaves no connection worth keeping.
        let answered = matches!(
            err.kind(),
            ErrorKind::Server(_)
                | ErrorKind::Extension
                | ErrorKind::AuthenticationFailed
                | ErrorKind::UnexpectedReturnType
        );
        Failure {
            kind: if answered {
                FailureKind::Server
            } else {
                FailureKind::Connection
            },
            reason: scrub(&describe(err), &self.inner.secrets),
        }
    }
}

impl Connection {
    async fn query(&mut self, command: &Cmd) -> redis::RedisResult<Vec<i64>> {
        match self {
            Connection::Standalone(connection) => command.query_async(connection).await,
            Connection::Cluster(connection) => command.query_async(connection).await,
        }
    }
}

/// Whether the client can use `url` (host, port, database, credentials), in the words of the
/// `redis` crate, password removed.
pub(super) fn check_url(url: &str) -> Result<(), String> {
    use redis::IntoConnectionInfo as _;
    url.into_connection_info().map(drop).map_err(|err| {
        // Starting in lowercase like every config message.
        let text = describe(&err);
        let mut chars = text.chars();
        let text = match chars.next() {
            Some(first) => first.to_lowercase().chain(chars).collect(),
            None => text,
        };
        scrub(&text, &url_secrets(url))
    })
}

/// An error in the server's words (`NOPERM No permissions to access a key`) or the client's
/// (`Password authentication failed`, `broken pipe`), without the crate's kind names.
fn describe(err: &RedisError) -> String {
    if let (ErrorKind::Server(_) | ErrorKind::Extension, Some(code)) = (err.kind(), err.code()) {
        return match err.detail() {
            Some(detail) => format!("{code} {detail}"),
            None => code.to_owned(),
        };
    }
    // The client's own errors read "<words> - <Kind>[: <detail>]".
    let text = err.to_string();
    match text.split_once(" - ") {
        Some((words, rest)) => match rest.split_once(": ") {
            Some((_, detail)) => format!("{words}: {detail}"),
            None => words.to_owned(),
        },
        None => text,
    }
}

fn parse_reply(answer: &[i64]) -> Option<Reply> {
    let &[admitted, retry_us, remaining] = answer else {
        return None;
    };
    Some(Reply {
        admitted: match admitted {
            1 => true,
            0 => false,
            _ => return None,
        },
        retry_after: Duration::from_micros(u64::try_from(retry_us).ok()?),
        remaining: u32::try_from(remaining).ok()?,
    })
}

/// `text` with every secret replaced by `***`.
fn scrub(text: &str, secrets: &[String]) -> String {
    secrets
        .iter()
        .filter(|secret| !secret.is_empty())
        .fold(text.to_owned(), |text, secret| {
            text.replace(secret.as_str(), "***")
        })
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The data is a cache of connections: still right after a panic elsewhere.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_read_strictly() {
        assert_eq!(
            parse_reply(&[1, 0, 4]),
            Some(Reply {
                admitted: true,
                retry_after: Duration::ZERO,
                remaining: 4
            })
        );
        assert_eq!(
            parse_reply(&[0, 1_500, 0]),
            Some(Reply {
                admitted: false,
                retry_after: Duration::from_micros(1_500),
                remaining: 0
            })
        );
        for bad in [&[][..], &[1, 0], &[2, 0, 0], &[0, -1, 0], &[1, 0, 0, 0]] {
            assert_eq!(parse_reply(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn errors_are_described_in_the_speakers_words() {
        let cases = [
            (
                RedisError::from((
                    ErrorKind::AuthenticationFailed,
                    "Password authentication failed",
                )),
                "Password authentication failed",
            ),
            (
                RedisError::from((
                    ErrorKind::InvalidClientConfig,
                    "Invalid URL",
                    "port out of range".to_owned(),
                )),
                "Invalid URL: port out of range",
            ),
            (
                RedisError::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe)),
                "broken pipe",
            ),
            (
                redis::make_extension_error("WRONGTYPE".to_owned(), Some("Operation".to_owned())),
                "WRONGTYPE Operation",
            ),
        ];
        for (err, expected) in cases {
            assert_eq!(describe(&err), expected, "{err:?}");
        }
    }

    #[test]
    fn secrets_are_scrubbed() {
        let secrets = vec!["hunter2".to_owned(), String::new()];
        assert_eq!(
            scrub("WRONGPASS for hunter2 and hunter2", &secrets),
            "WRONGPASS for *** and ***"
        );
    }
}
