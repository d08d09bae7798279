//! The audit log through the real binary: one record per decision with its fields, secrets
//! redacted, rotation, several proxies sharing one file, and a required log that cannot be
//! written refusing calls.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

fn records(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

fn finish(mut proxy: Proxy) -> Proxy {
    proxy.close_stdin();
    assert_eq!(
        proxy.wait(Duration::from_secs(10)).code(),
        Some(0),
        "{}",
        proxy.stderr()
    );
    proxy
}

#[cfg(unix)]
#[test]
fn one_record_per_decision_with_its_fields_and_no_secret() {
    let dir = TempDir::new();
    let log = dir.path().join("audit.jsonl");
    let mut proxy = Proxy::start(&format!(
        r#"
[policy]
default = "deny"

[audit]
path = "{}"
include_arguments = true
redact = ["args[1]"]

[[rules]]
name = "reads"
tool = "valkey_read"
action = "allow"

[[rules]]
tool = "valkey_write"
action = "allow"
rate_limit = {{ max = 1, window = "1h" }}

[[rules]]
tool = "CreateCodeConnection"
action = "deny"
reason = "exposes source"
"#,
        log.display()
    ));
    proxy.initialize();
    proxy.call(1, "valkey_read", json!({"command":"GET","args":["k"]}));
    proxy.call(
        2,
        "valkey_write",
        json!({"command":"AUTH","args":["user","hunter2-secret"]}),
    );
    proxy.call(
        3,
        "valkey_write",
        json!({"command":"AUTH","args":["user","hunter2-secret"]}),
    );
    proxy.call(4, "CreateCodeConnection", json!({}));
    proxy.call(5, "echo", json!({}));
    let proxy = finish(proxy);
    let found = records(&log);
    let decisions: Vec<&str> = found
        .iter()
        .map(|r| r["decision"].as_str().unwrap())
        .collect();
    assert_eq!(
        decisions,
        ["allow", "allow", "rate_limited", "deny", "default_deny"],
        "{found:#?}"
    );
    let ids: Vec<&Value> = found.iter().map(|r| &r["id"]).collect();
    assert_eq!(ids, ["1", "2", "3", "4", "5"]);
    for record in &found {
        assert!(record["time"].as_str().unwrap().ends_with('Z'), "{record}");
        assert!(!record["session"].as_str().unwrap().is_empty());
        assert_eq!(record["args_sha256"].as_str().unwrap().len(), 64);
    }
    assert_eq!(found[0]["rule"], "reads");
    assert_eq!(found[1]["rule"], "rule 2 (valkey_write)");
    assert_eq!(found[3]["reason"], "exposes source");
    assert_eq!(found[1]["arguments"]["args"], json!(["user", "[redacted]"]));
    assert_eq!(
        found[1]["args_sha256"], found[2]["args_sha256"],
        "the same call, the same digest"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains("hunter2"),
        "a redacted value reached the log"
    );
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the log is its owner's only");
    drop(proxy);
}

#[test]
fn without_include_arguments_only_the_digest_is_written() {
    let dir = TempDir::new();
    let log = dir.path().join("audit.jsonl");
    let mut proxy = Proxy::start(&format!("[audit]\npath = \"{}\"\n", log.display()));
    proxy.initialize();
    proxy.call(
        1,
        "valkey_write",
        json!({"command":"SET","args":["k","s3cret"]}),
    );
    finish(proxy);
    let found = records(&log);
    assert_eq!(found.len(), 1);
    assert!(found[0].get("arguments").is_none());
    assert!(!std::fs::read_to_string(&log).unwrap().contains("s3cret"));
}

#[test]
fn several_proxies_share_one_file_in_whole_lines_and_it_rotates() {
    let dir = TempDir::new();
    let log = dir.path().join("audit.jsonl");
    let config = format!(
        "[audit]\npath = \"{}\"\ninclude_arguments = true\nmax_bytes = 65536\nkeep = 3\n",
        log.display()
    );
    let mut proxies: Vec<Proxy> = (0..3).map(|_| Proxy::start(&config)).collect();
    let padding = "x".repeat(2000);
    for proxy in &mut proxies {
        proxy.initialize();
    }
    for n in 0..40 {
        for proxy in &mut proxies {
            proxy.call(n, "echo", json!({"n": n, "padding": padding}));
        }
    }
    for proxy in proxies {
        finish(proxy);
    }
    let mut all = records(&log);
    for n in 1..=3 {
        let rotated = dir.path().join(format!("audit.jsonl.{n}"));
        if rotated.exists() {
            assert!(std::fs::metadata(&rotated).unwrap().len() <= 65536 + 4096);
            all.extend(records(&rotated));
        }
    }
    assert!(dir.path().join("audit.jsonl.1").exists(), "the log rotated");
    // Each record is a whole line (records() parsed every line); none is lost, up to what
    // rotation dropped beyond `keep`.
    let sessions: std::collections::HashSet<&str> =
        all.iter().map(|r| r["session"].as_str().unwrap()).collect();
    assert_eq!(sessions.len(), 3);
    assert!(all.len() <= 120);
    assert!(all.len() >= 60, "{} records kept", all.len());
}

#[test]
fn a_required_log_that_cannot_be_written_refuses_calls() {
    let dir = TempDir::new();
    let mut proxy = Proxy::start(&format!(
        "[audit]\npath = \"{}/no/such/dir/audit.jsonl\"\nrequired = true\n",
        dir.path().display()
    ));
    proxy.initialize();
    let answer = proxy.call(1, "echo", json!({}));
    assert_eq!(facts(&answer)["decision"], "audit_unavailable", "{answer}");
    assert!(!reached_child(&proxy, "echo"));
    assert!(
        proxy.stderr_has("cannot open the audit log"),
        "{}",
        proxy.stderr()
    );
}

#[test]
fn a_log_that_cannot_be_written_is_reported_and_calls_go_on_when_not_required() {
    let dir = TempDir::new();
    let mut proxy = Proxy::start(&format!(
        "[audit]\npath = \"{}/no/such/dir/audit.jsonl\"\n",
        dir.path().display()
    ));
    proxy.initialize();
    let answer = proxy.call(1, "echo", json!({}));
    assert_eq!(answer["result"]["isError"], false, "{answer}");
    assert!(
        proxy.stderr_has("cannot open the audit log"),
        "{}",
        proxy.stderr()
    );
}

/// The record shows the call as it runs: a number no float can hold (400 digits) beside the
/// real arguments is written as sent, never dropped for `{}`.
#[test]
fn the_record_shows_the_arguments_as_sent_whatever_their_numbers() {
    let dir = TempDir::new();
    let log = dir.path().join("audit.jsonl");
    let mut proxy = Proxy::start(&format!(
        "[audit]\npath = \"{}\"\ninclude_arguments = true\n",
        log.display()
    ));
    proxy.initialize();
    let big = "9".repeat(400);
    proxy.send_raw(
        format!(
            r#"{{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{{"name":"echo","arguments":{{"text":"pwned","n":{big}}}}}}}"#
        )
        .as_bytes(),
    );
    proxy.send_raw(b"\n");
    let _ = proxy.recv_within(std::time::Duration::from_secs(5));
    let _proxy = finish(proxy);
    let text = std::fs::read_to_string(&log).unwrap();
    let line = text
        .lines()
        .find(|line| line.contains("\"echo\""))
        .expect("the call's record");
    assert!(line.contains("pwned"), "{line}");
    assert!(line.contains(&format!("\"n\":{big}")), "{line}");
}

/// The log shows it was not edited: a real log verifies whole; a line edited, removed, swapped
/// is found with its place; a log cut from the end verifies whole but ends before the anchor the
/// proxy wrote on its stderr at exit.
#[test]
fn audit_verify_finds_edited_removed_swapped_and_cut_lines() {
    let dir = TempDir::new();
    let log = dir.path().join("audit.jsonl");
    let mut proxy = Proxy::start(&format!(
        "[audit]\npath = \"{}\"\n\n[[rules]]\ntool = \"CreateCodeConnection\"\naction = \"deny\"\n",
        log.display()
    ));
    proxy.initialize();
    for id in 1..=6 {
        let tool = if id % 3 == 0 {
            "CreateCodeConnection"
        } else {
            "echo"
        };
        proxy.call(id, tool, json!({"text": format!("call {id}")}));
    }
    let proxy = finish(proxy);
    let lines: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(lines.len(), 6);
    let verify = |name: &str, lines: &[String]| {
        let path = dir.path().join(name);
        std::fs::write(&path, lines.concat()).unwrap();
        let out = std::process::Command::new(PROXY)
            .args(["audit", "verify"])
            .arg(&path)
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8(out.stdout).unwrap())
    };
    let (code, report) = verify("whole.jsonl", &lines);
    assert_eq!(code, Some(0), "{report}");
    assert!(
        report.starts_with("whole: 6 chained record(s) in 1 chain(s)"),
        "{report}"
    );
    // The anchor on stderr names the same last digest as verify.
    let anchor = proxy
        .stderr()
        .lines()
        .find(|l| l.contains("audit chain of session"))
        .map(|l| l.rsplit(' ').next().unwrap().to_owned())
        .expect("the chain's anchor on stderr");
    assert!(report.contains(&anchor), "{anchor} in {report}");

    let mut edited = lines.clone();
    edited[1] = edited[1].replace("\"allow\"", "\"deny\"");
    let (code, report) = verify("edited.jsonl", &edited);
    assert_eq!(code, Some(1));
    assert!(
        report.contains("edited.jsonl:3:") && report.contains("was changed"),
        "{report}"
    );

    let mut removed = lines.clone();
    removed.remove(2);
    let (code, report) = verify("removed.jsonl", &removed);
    assert_eq!(code, Some(1));
    assert!(report.contains("1 record(s) missing"), "{report}");

    let mut swapped = lines.clone();
    swapped.swap(3, 4);
    let (code, report) = verify("swapped.jsonl", &swapped);
    assert_eq!(code, Some(1));
    assert!(report.contains("moved"), "{report}");

    let (code, report) = verify("cut.jsonl", &lines[..4]);
    assert_eq!(code, Some(0), "a chain alone cannot show a cut end");
    assert!(!report.contains(&anchor), "the anchor shows it: {report}");
}
