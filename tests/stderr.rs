//! A host that never reads the proxy's stderr: traffic keeps flowing.
//!
//! Some real hosts never read a server's stderr. Once the pipe is full, a blocking write to it
//! never returns, so a log line written by a pump or under the session's lock would stall every
//! message after it, and a child that inherited the same stderr would stall too. Here stderr is
//! a pipe whose read end stays open and is never read, the proxy logs at `debug` (a line per
//! call and more), and the child floods its own stderr from a thread; every call is answered.

mod common;

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{PROXY, TempDir, fixture};

const CALLS: usize = 3000;

#[test]
fn a_stderr_nobody_reads_stalls_nothing() {
    let dir = TempDir::new();
    let policy = dir.write(
        "policy.toml",
        r#"
[[rules]]
tool = "CreateCodeConnection"
action = "deny"
reason = "code connections expose source code"
"#,
    );
    let mut child = Command::new(PROXY)
        .arg("--config")
        .arg(&policy)
        .arg("--log-level")
        .arg("debug")
        .arg("--")
        .arg(fixture())
        .env_remove("RUST_LOG")
        .env("FIXTURE_STDERR_FLOOD", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the proxy");
    // Held open, never read.
    let _stderr = child.stderr.take().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, answers) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    std::thread::spawn(move || {
        let mut out = Vec::new();
        out.extend_from_slice(
            br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
        );
        out.push(b'\n');
        out.extend_from_slice(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        out.push(b'\n');
        for id in 1..=CALLS {
            // Denied calls log a line each at info; allowed ones at debug.
            let tool = if id.is_multiple_of(2) {
                "CreateCodeConnection"
            } else {
                "echo"
            };
            out.extend_from_slice(
                format!(
                    r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{tool}","arguments":{{"text":"call {id}"}}}}}}"#
                )
                .as_bytes(),
            );
            out.push(b'\n');
        }
        let _ = stdin.write_all(&out);
        // stdin stays open until the test ends: the answers must come without an EOF.
        std::thread::sleep(Duration::from_secs(120));
    });
    let mut seen = vec![false; CALLS + 1];
    let mut answered = 0;
    while answered < CALLS + 1 {
        let line = match answers.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "only {answered} of {} answers came: traffic stalled",
                    CALLS + 1
                );
            }
        };
        let message: serde_json::Value = serde_json::from_str(&line).unwrap();
        let id = message["id"].as_u64().expect("an answer") as usize;
        assert!(!seen[id], "id {id} answered twice");
        seen[id] = true;
        answered += 1;
        if id > 0 && id.is_multiple_of(2) {
            assert!(
                line.contains("code connections expose source code"),
                "a denied call says why: {line}"
            );
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Every field the proxy logs that came from a peer is escaped or quoted: a tool name holding a
/// newline and ANSI escapes cannot forge a log line or recolour the log.
#[test]
fn a_peer_cannot_forge_log_lines() {
    let mut proxy = common::Proxy::start(
        r#"
[policy]
default = "deny"
"#,
    );
    proxy.initialize();
    let forged =
        "x\n2026-12-08T00:00:00.000000Z  INFO forged: a person approved everything\u{1b}[31m";
    let answer = proxy.call(2, forged, serde_json::json!({}));
    assert!(answer.to_string().contains("policy violation"), "{answer}");
    proxy.close_stdin();
    proxy.wait(Duration::from_secs(5));
    let log = proxy.stderr();
    assert!(log.contains("forged"), "the call is logged: {log}");
    for line in log.lines() {
        assert!(
            !line.starts_with("2026-12-08T00:00:00"),
            "a forged line: {log}"
        );
    }
    assert!(
        !log.contains("\u{1b}[31m"),
        "a peer's escape reached the log: {log:?}"
    );
}
