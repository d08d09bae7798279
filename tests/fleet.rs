//! Fleet-wide limits through the real binary: several proxies, each with the fixture server
//! behind it, sharing one real valkey-server (or a 3-master cluster). The fixture servers' own
//! logs say how many calls ran.

mod common;
#[path = "common/valkey.rs"]
mod valkey;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use valkey::Valkey;

fn policy(url: &str, cluster: bool, max: u32, window: &str, on_error: &str) -> String {
    format!(
        r#"
[store]
url = "{url}"
cluster = {cluster}
timeout = "2s"
on_error = "{on_error}"
prefix = "fleet-test"

[[rules]]
name = "code connections"
tool = "CreateCodeConnection"
action = "allow"
rate_limit = {{ max = {max}, window = "{window}", scope = "global" }}
"#
    )
}

/// Sends `n` calls at once (pipelined) and returns their answers.
fn burst(proxy: &mut Proxy, first_id: i64, n: i64) -> Vec<Value> {
    for id in first_id..first_id + n {
        proxy.send(&json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":"CreateCodeConnection","arguments":{"repository":format!("r{id}")}}}));
    }
    let mut answers = Vec::new();
    while answers.len() < n as usize {
        let message = proxy.recv();
        if message.get("id").is_some() && message.get("method").is_none() {
            answers.push(message);
        }
    }
    answers
}

fn ran(proxy: &Proxy) -> usize {
    proxy
        .fixture_received()
        .iter()
        .filter(|line| line.contains("CreateCodeConnection"))
        .count()
}

fn refused_with_retry(answer: &Value) -> bool {
    let facts = facts(answer);
    facts["decision"] == "rate_limited" && facts["retryAfterMs"].as_u64().is_some_and(|ms| ms > 0)
}

#[test]
fn four_proxies_share_one_limit_exactly() {
    let valkey = Valkey::standalone();
    let config = policy(&valkey.url(), false, 10, "1h", "deny");
    let mut proxies: Vec<Proxy> = (0..4).map(|_| Proxy::start(&config)).collect();
    for proxy in &mut proxies {
        proxy.initialize();
    }
    let mut admitted = 0;
    let mut refused = 0;
    for proxy in &mut proxies {
        for answer in burst(proxy, 1, 6) {
            if answer["result"]["isError"] == false {
                admitted += 1;
            } else {
                assert!(refused_with_retry(&answer), "{answer}");
                refused += 1;
            }
        }
    }
    assert_eq!((admitted, refused), (10, 14));
    let ran: usize = proxies.iter().map(ran).sum();
    assert_eq!(ran, 10, "the fixture servers' own counts");
    // Every key the limiter wrote has a time to live.
    let keys = valkey.cli(&["--raw", "keys", "fleet-test*"]);
    let keys: Vec<&str> = keys.split_whitespace().collect();
    assert!(!keys.is_empty());
    for key in keys {
        let ttl: i64 = valkey.cli(&["pttl", key]).trim().parse().unwrap();
        assert!(ttl > 0, "{key} has no TTL ({ttl})");
    }
}

#[test]
fn the_window_slides() {
    let valkey = Valkey::standalone();
    let mut proxy = Proxy::start(&policy(&valkey.url(), false, 3, "2s", "deny"));
    proxy.initialize();
    let start = Instant::now();
    let answers = burst(&mut proxy, 1, 4);
    let passed = answers
        .iter()
        .filter(|a| a["result"]["isError"] == false)
        .count();
    assert_eq!(passed, 3);
    let retry = answers
        .iter()
        .find(|a| a["result"]["isError"] == true)
        .map(|a| facts(a)["retryAfterMs"].as_u64().unwrap())
        .unwrap();
    // The store's own clock decides: wait until the first call has left the window.
    std::thread::sleep(Duration::from_millis(retry) + Duration::from_millis(50));
    assert!(start.elapsed() >= Duration::from_secs(1));
    let later = burst(&mut proxy, 10, 1);
    assert_eq!(later[0]["result"]["isError"], false, "{}", later[0]);
}

#[test]
fn a_dead_store_refuses_fleet_limited_calls_and_nothing_else() {
    let mut valkey = Valkey::standalone();
    let mut proxy = Proxy::start(&policy(&valkey.url(), false, 100, "1h", "deny"));
    proxy.initialize();
    assert_eq!(burst(&mut proxy, 1, 1)[0]["result"]["isError"], false);
    valkey.kill();
    let start = Instant::now();
    let refused = burst(&mut proxy, 2, 3);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "decided within the budget"
    );
    for answer in &refused {
        assert_eq!(facts(answer)["decision"], "limit_unavailable", "{answer}");
        assert!(
            facts(answer)["store"]
                .as_str()
                .unwrap()
                .contains("127.0.0.1"),
            "{answer}"
        );
    }
    assert_eq!(ran(&proxy), 1, "nothing ran while the store was down");
    // Tools no fleet-wide rule governs never touch the store.
    assert_eq!(proxy.call(9, "echo", json!({}))["result"]["isError"], false);
    assert!(
        !proxy.stderr().contains(":hunter"),
        "no password in the log"
    );
    // The store comes back: calls pass again, with no restart of the proxy.
    valkey.restart();
    let start = Instant::now();
    loop {
        let answer = burst(&mut proxy, 100 + start.elapsed().as_millis() as i64, 1).remove(0);
        if answer["result"]["isError"] == false {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the store did not come back: {answer}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn on_error_allow_lets_calls_through_when_the_store_is_down() {
    let mut valkey = Valkey::standalone();
    let url = valkey.url();
    valkey.kill();
    let mut proxy = Proxy::start(&policy(&url, false, 1, "1h", "allow"));
    proxy.initialize();
    let answers = burst(&mut proxy, 1, 2);
    assert!(
        answers.iter().all(|a| a["result"]["isError"] == false),
        "{answers:?}"
    );
    assert_eq!(ran(&proxy), 2);
}

#[test]
fn a_cluster_shares_one_limit() {
    let nodes = valkey::cluster();
    let config = policy(&nodes[0].url(), true, 5, "1h", "deny");
    let mut proxies: Vec<Proxy> = (0..2).map(|_| Proxy::start(&config)).collect();
    let mut admitted = 0;
    for proxy in &mut proxies {
        proxy.initialize();
        admitted += burst(proxy, 1, 4)
            .iter()
            .filter(|a| a["result"]["isError"] == false)
            .count();
    }
    assert_eq!(admitted, 5);
    assert_eq!(proxies.iter().map(ran).sum::<usize>(), 5);
}
