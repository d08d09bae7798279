//! Every resource a peer can make the proxy spend has a cap, and a refusal that names it:
//! calls held for a person, approval commands running at once; and a held call costs its line
//! once. Other traffic keeps flowing meanwhile.

mod common;

use common::*;
use serde_json::{Value, json};

const HELD: usize = 256;

fn initialize_with_forms(proxy: &mut Proxy) {
    proxy.request(
        json!(0),
        "initialize",
        json!({"protocolVersion":"2025-11-25","capabilities":{"elicitation":{"form":{}}},
               "clientInfo":{"name":"test","version":"0"}}),
    );
    proxy.send(&json!({"jsonrpc":"2.0","method":"notifications/initialized"}));
}

fn call(id: usize, tool: &str, arguments: Value) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":tool,"arguments":arguments}})
}

/// Reads messages until `n` answers (messages with an id and no method) came; returns them and
/// the questions (requests from the proxy) seen meanwhile.
fn answers(proxy: &mut Proxy, n: usize) -> (Vec<Value>, usize) {
    let (mut got, mut questions) = (Vec::new(), 0);
    while got.len() < n {
        let message = proxy.recv();
        if message.get("method").is_some() {
            questions += 1;
        } else {
            got.push(message);
        }
    }
    (got, questions)
}

/// Peak resident memory of a process, from /proc (Linux).
#[cfg(target_os = "linux")]
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A client that sends calls needing approval and never answers holds at most 256 of them;
/// past the cap each is refused at once with the cap named, and an allowed call still runs.
#[test]
fn held_calls_are_capped_and_the_rest_flows() {
    let mut proxy = Proxy::start(
        r#"
[[rules]]
tool = "CreateCodeConnection"
action = "require_approval"
"#,
    );
    initialize_with_forms(&mut proxy);
    let extra = 20;
    for id in 1..=HELD + extra {
        proxy.send(&call(id, "CreateCodeConnection", json!({"n": id})));
    }
    proxy.send(&call(10_000, "echo", json!({"text": "still flowing"})));
    let (got, _) = answers(&mut proxy, extra + 1);
    let refused: Vec<&Value> = got.iter().filter(|a| a["id"] != 10_000).collect();
    assert_eq!(refused.len(), extra);
    for answer in refused {
        let text = answer.to_string();
        assert!(text.contains("cap on held calls"), "{text}");
        assert!(answer["id"].as_u64().unwrap() as usize > HELD, "{text}");
    }
    let echo = got.iter().find(|a| a["id"] == 10_000).unwrap();
    assert!(echo.to_string().contains("still flowing"), "{echo}");
}

/// At most 16 approval commands run at once; a question past the cap is refused with the cap
/// named, without starting a program.
#[cfg(unix)]
#[test]
fn approval_commands_at_once_are_capped() {
    use std::time::{Duration, Instant};
    const COMMANDS: usize = 16;
    let mut proxy = Proxy::start(
        r#"
[[rules]]
tool = "CreateCodeConnection"
action = "require_approval"

[approval]
channels = ["command"]
timeout = "60s"
command = ["sleep", "60"]
"#,
    );
    proxy.initialize();
    let extra = 4;
    for id in 1..=COMMANDS + extra {
        proxy.send(&call(id, "CreateCodeConnection", json!({})));
    }
    let started = Instant::now();
    let (got, _) = answers(&mut proxy, extra);
    assert!(started.elapsed() < Duration::from_secs(30));
    for answer in &got {
        let text = answer.to_string();
        assert!(text.contains("cap on approval commands"), "{text}");
    }
}

/// 150 held calls of 1 MiB each: the proxy's peak memory stays near their size (each held line
/// is kept once), not twice it. Reports the peak.
#[cfg(target_os = "linux")]
#[test]
fn a_held_call_costs_its_line_once() {
    const CALLS: usize = 150;
    const MIB: usize = 1024 * 1024;
    let mut proxy = Proxy::with_config(
        r#"
[limits]
max_line_bytes = 4194304

[[rules]]
tool = "CreateCodeConnection"
action = "require_approval"
"#,
    )
    .start();
    initialize_with_forms(&mut proxy);
    let blob = "x".repeat(MIB);
    for id in 1..=CALLS {
        proxy.send(&call(id, "CreateCodeConnection", json!({"blob": blob})));
    }
    // Every call is held once its question came.
    let mut questions = 0;
    while questions < CALLS {
        let message = proxy.recv();
        if message["method"] == "elicitation/create" {
            questions += 1;
        }
    }
    let peak = peak_rss_kib(proxy.child.id()) / 1024;
    eprintln!("peak RSS with {CALLS} held calls of 1 MiB: {peak} MiB");
    // Their lines alone are 150 MiB; twice that was the old cost.
    assert!(peak < (CALLS as u64) * 3 / 2 + 64, "peak {peak} MiB");
}
