//! `mcp-policy-proxy scan` against the fixture server in both protocol eras, and against
//! servers that misbehave: it reads every tool, prints a policy that `check` accepts, and never
//! leaves a server running.

mod common;

use std::ffi::OsString;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use mcp_policy_proxy::commands::scan::{self, Class, SCAN_TIMEOUT, Scan};
use mcp_policy_proxy::config::Config;
use mcp_policy_proxy::policy::Policy;

/// The fixture's tools, in its order, with the class their names give them.
const FIXTURE_TOOLS: &[(&str, Class)] = &[
    ("CreateCodeConnection", Class::Write),
    ("valkey_read", Class::Read),
    ("valkey_write", Class::Write),
    ("valkey_admin", Class::Destructive),
    ("echo", Class::Other),
    ("slow", Class::Other),
    ("big", Class::Other),
    ("ask_client", Class::Other),
    ("notify", Class::Other),
    ("crash", Class::Other),
    ("garbage", Class::Other),
    ("rug_pull", Class::Other),
];

fn argv(words: &[&str]) -> Vec<OsString> {
    words.iter().map(OsString::from).collect()
}

/// The fixture with environment variables, through `env`.
fn fixture_with(vars: &[&str]) -> Vec<OsString> {
    let mut words = vec!["env"];
    words.extend(vars);
    words.push(fixture());
    argv(&words)
}

#[track_caller]
fn assert_fixture_tools(scan: &Scan) {
    let tools: Vec<(&str, Class)> = scan
        .tools
        .iter()
        .map(|t| (t.name.as_str(), t.class))
        .collect();
    assert_eq!(tools, FIXTURE_TOOLS);
    assert_eq!(scan.server_name.as_deref(), Some("mcp-fixture-server"));
    assert!(
        scan.tools[1]
            .description
            .as_deref()
            .is_some_and(|d| d.contains("read-only Valkey command")),
        "{:?}",
        scan.tools[1]
    );
}

/// The policy is valid, and each tool is decided by its own rule, as its class suggests.
#[track_caller]
fn assert_starter_policy(text: &str, tools: &[(&str, Class)]) {
    let config = Config::parse(text).unwrap_or_else(|errors| panic!("{errors}\n---\n{text}"));
    let policy = Policy::new(&config).expect("the policy compiles");
    assert_eq!(config.policy.default.as_str(), "deny");
    for &(tool, class) in tools {
        let rule = policy
            .rule_for(tool)
            .unwrap_or_else(|| panic!("no rule for {tool}\n---\n{text}"));
        let expected = match class {
            Class::Read | Class::Write => "allow",
            Class::Destructive | Class::Other => "require_approval",
        };
        assert_eq!(rule.action.as_str(), expected, "{tool}");
        assert_eq!(rule.rate_limit.is_some(), class == Class::Write, "{tool}");
        let listed = config
            .classes
            .iter()
            .find(|c| c.name == class.as_str())
            .unwrap_or_else(|| panic!("no class {class:?}"));
        assert!(
            listed.members.iter().any(|m| matches!(
                m,
                mcp_policy_proxy::config::ClassMember::Tool(name, _) if name == tool
            )),
            "{tool} is not in class {}",
            class.as_str()
        );
    }
    assert_eq!(config.rules.len(), tools.len());
}

#[test]
fn the_modern_era_in_pages() {
    for vars in [&[][..], &["FIXTURE_PAGE_SIZE=5"][..]] {
        let scan = scan::scan(&fixture_with(vars), SCAN_TIMEOUT).unwrap();
        assert_eq!(scan.protocol, "2026-07-28", "{vars:?}");
        assert_fixture_tools(&scan);
        assert_starter_policy(&scan::starter_policy(&scan), FIXTURE_TOOLS);
    }
}

#[test]
fn the_legacy_era_in_pages() {
    let dir = TempDir::new();
    let log = dir.path().join("received.jsonl");
    let log_var = format!("FIXTURE_LOG={}", log.display());
    let vars = [
        "FIXTURE_NO_DISCOVER=1",
        "FIXTURE_PAGE_SIZE=5",
        log_var.as_str(),
    ];
    let scan = scan::scan(&fixture_with(&vars), SCAN_TIMEOUT).unwrap();
    assert_eq!(scan.protocol, "2025-11-25");
    assert_fixture_tools(&scan);
    let methods: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|line| {
            let message: serde_json::Value = serde_json::from_str(line).unwrap();
            message["method"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        methods,
        [
            "server/discover",
            "initialize",
            "notifications/initialized",
            "tools/list",
            "tools/list",
            "tools/list"
        ]
    );
}

/// A server that exits on any request before `initialize`, as some legacy servers do, with
/// or without an answer: the fallback starts it again.
#[test]
fn a_server_that_exits_on_the_probe_is_started_again_for_initialize() {
    for on_probe in [
        "exit 0",
        "echo '{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32600,\"message\":\"not initialized\"}}'; exit 0",
    ] {
        let script = format!(
            "IFS= read -r first; case \"$first\" in *server/discover*) {on_probe};; esac; \
             {{ printf '%s\\n' \"$first\"; cat; }} | FIXTURE_NO_DISCOVER=1 {fixture}",
            fixture = fixture()
        );
        let scan = scan::scan(&argv(&["sh", "-c", &script]), SCAN_TIMEOUT).unwrap();
        assert_eq!(scan.protocol, "2025-11-25", "{on_probe}");
        assert_fixture_tools(&scan);
    }
}

/// A server that says nothing to the probe costs one time-out, then the fallback runs on a
/// fresh process; the silent one is stopped.
#[test]
fn a_server_silent_on_the_probe_is_stopped_and_started_again() {
    let dir = TempDir::new();
    let pids = dir.path().join("pids");
    let script = format!(
        "echo $$ >> {pids}; IFS= read -r first; case \"$first\" in *server/discover*) exec sleep 60;; esac; \
         {{ printf '%s\\n' \"$first\"; cat; }} | FIXTURE_NO_DISCOVER=1 {fixture}",
        pids = pids.display(),
        fixture = fixture()
    );
    let start = Instant::now();
    let scan = scan::scan(&argv(&["sh", "-c", &script]), Duration::from_secs(2)).unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(scan.protocol, "2025-11-25");
    assert_fixture_tools(&scan);
    let pids: Vec<i32> = std::fs::read_to_string(&pids)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 2);
    for pid in pids {
        assert!(!alive(pid), "process {pid} is still running");
    }
}

#[test]
fn failures_name_the_server_and_leave_nothing_running() {
    let dir = TempDir::new();
    let pidfile = dir.path().join("pid");
    let hung = format!("echo $$ > {}; exec sleep 60", pidfile.display());
    let cases: &[(Vec<OsString>, &str)] = &[
        (
            argv(&["sh", "-c", &hung]),
            "did not answer initialize within 1s of its start",
        ),
        (
            argv(&["sh", "-c", "echo 'no such module: valkey' >&2; exit 3"]),
            "closed its stdout before it answered initialize (it exited: exit status: 3); the \
             last lines of its stderr:\n  no such module: valkey",
        ),
        (
            argv(&[
                "sh",
                "-c",
                "echo '{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32601,\"message\":\"nope\"}}'; \
                   read a; read b; echo '{\"jsonrpc\":\"2.0\",\"id\":2,\"error\":{\"code\":-32600,\"message\":\"no\"}}'; sleep 5",
            ]),
            "refused initialize: \"no\"",
        ),
    ];
    for (server, expected) in cases {
        let start = Instant::now();
        let err = scan::scan(server, Duration::from_secs(1)).unwrap_err();
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            start.elapsed()
        );
        let message = format!("{err:#}");
        assert!(message.starts_with("the MCP server `sh -c "), "{message}");
        assert!(
            message.contains(expected),
            "expected {expected:?} in:\n{message}"
        );
        assert_eq!(err.exit_code(), 1);
    }
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(!alive(pid), "the hung server {pid} is still running");

    let err = scan::scan(&argv(&["/nonexistent/mcp-server"]), SCAN_TIMEOUT).unwrap_err();
    assert_eq!(err.exit_code(), 127, "{err:#}");
}

/// Through the real binary: `scan` prints the policy, and `check` accepts it.
#[test]
fn check_accepts_what_scan_prints() {
    for vars in [&[][..], &["FIXTURE_NO_DISCOVER=1"][..]] {
        let mut command = Command::new(PROXY);
        command
            .args(["scan", "--", "env"])
            .args(vars)
            .arg(fixture());
        let output = command.output().unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let text = String::from_utf8(output.stdout).unwrap();
        assert_starter_policy(&text, FIXTURE_TOOLS);

        let dir = TempDir::new();
        let path = dir.write("policy.toml", &text);
        let check = Command::new(PROXY)
            .args(["check", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(
            check.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&check.stderr)
        );
    }

    let missing = Command::new(PROXY).arg("scan").output().unwrap();
    assert_eq!(missing.status.code(), Some(2));
    let failed = Command::new(PROXY)
        .args(["scan", "--", "sh", "-c", "exit 3"])
        .output()
        .unwrap();
    assert_eq!(failed.status.code(), Some(1));
}
