//! The operator's subcommands through the real binary: check, explain and test. They print
//! their reports to stdout and exit 0 on success, 1 when what they check fails, 2 on bad usage
//! or an invalid config.

mod common;

use std::process::{Command, Output};

use common::TempDir;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_mcp-policy-proxy");
const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml");
const CASES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/policy-tests.toml");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("MCP_POLICY_PROXY_CONFIG")
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

#[test]
fn check_prints_to_stdout_and_exits_by_validity() {
    let valid = run(&["check", "--config", EXAMPLE]);
    assert_eq!(valid.status.code(), Some(0), "{}", stderr(&valid));
    let report = stdout(&valid);
    assert!(report.contains("config.example.toml: valid"), "{report}");
    assert!(
        report.contains(
            r#"when command in ["DEL", "UNLINK", "FLUSHDB", "FLUSHALL"] (ignoring case)"#
        ),
        "{report}"
    );
    let dir = TempDir::new();
    let bad = dir.write("bad.toml", "[[rules]]\ntool = \"t\"\naction = \"alow\"\n");
    let invalid = run(&["check", "--config", bad.to_str().unwrap()]);
    assert_eq!(invalid.status.code(), Some(2));
    assert!(
        stderr(&invalid).contains("line 3, column 10: unknown action \"alow\""),
        "{}",
        stderr(&invalid)
    );
}

#[test]
fn explain_names_the_deciding_rule_and_the_rules_passed_over() {
    let output = run(&[
        "explain",
        "--config",
        EXAMPLE,
        "valkey_write",
        r#"{"command":"SET","args":["prod:x"]}"#,
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains(
            "rule 4 (\"no deletes\", tool = \"valkey_write\"): passed over: its condition"
        ),
        "{text}"
    );
    assert!(
        text.contains("rule 5 (\"no production keys\", tool = \"valkey_write\"): DECIDES: deny"),
        "{text}"
    );
    assert!(text.contains("production keys are off limits"), "{text}");

    let output = run(&["explain", "--config", EXAMPLE, "--json", "valkey_read"]);
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["decision"], "allow");
    assert_eq!(report["rule"], 3);
    assert_eq!(report["steps"][0]["outcome"], "pattern_mismatch");

    let bad = run(&[
        "explain",
        "--config",
        EXAMPLE,
        "valkey_read",
        "{\"a\":1,\"a\":2}",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("not strict JSON"), "{}", stderr(&bad));
}

#[test]
fn test_passes_the_example_cases_and_names_a_failing_one() {
    let passing = run(&["test", "--config", EXAMPLE, CASES]);
    assert_eq!(
        passing.status.code(),
        Some(0),
        "{}{}",
        stdout(&passing),
        stderr(&passing)
    );
    assert!(
        stdout(&passing).contains("9 of 9 case(s) passed"),
        "{}",
        stdout(&passing)
    );

    let dir = TempDir::new();
    let cases = dir.write(
        "cases.toml",
        r#"
[[case]]
name = "reads are free"
tool = "valkey_read"
expect = "allow"

[[case]]
name = "admin is allowed (wrong)"
tool = "valkey_admin"
expect = "allow"

[[case]]
name = "twelve writes (wrong: only ten pass)"
tool = "valkey_write"
arguments = { command = "SET", args = ["k", "v"] }
expect = ["allow", "allow", "allow", "allow", "allow", "allow", "allow", "allow", "allow", "allow", "allow", "allow"]
"#,
    );
    let failing = run(&["test", "--config", EXAMPLE, cases.to_str().unwrap()]);
    assert_eq!(failing.status.code(), Some(1));
    let report = stdout(&failing);
    assert!(report.contains("ok   reads are free"), "{report}");
    assert!(report.contains("FAIL admin is allowed (wrong)"), "{report}");
    assert!(report.contains("expected: allow"), "{report}");
    assert!(report.contains("decided:  deny"), "{report}");
    assert!(report.contains("FAIL twelve writes"), "{report}");
    assert!(
        report.contains("1 of 3 case(s) passed, 2 failed"),
        "{report}"
    );

    let typo = dir.write("typo.toml", "[[case]]\ntool = \"x\"\nexpect = \"alow\"\n");
    let usage = run(&["test", "--config", EXAMPLE, typo.to_str().unwrap()]);
    assert_eq!(usage.status.code(), Some(2));
    assert!(
        stderr(&usage).contains("unknown expectation \"alow\""),
        "{}",
        stderr(&usage)
    );
}

/// The real server's `json_set` as it lists it (awslabs.valkey-mcp-server 1.1.1): `value` is
/// `str | int | float | bool | list | dict | None`, so its SDK decodes a string holding JSON.
const JSON_SET_TOOLS: &str = r#"{"tools":[{"name":"json_set","inputSchema":{"properties":{"key":{"title":"Key","type":"string"},"value":{"anyOf":[{"type":"string"},{"type":"integer"},{"type":"number"},{"type":"boolean"},{"items":{},"type":"array"},{"additionalProperties":true,"type":"object"},{"type":"null"}],"title":"Value"},"path":{"default":"$","title":"Path","type":"string"},"ttl":{"anyOf":[{"type":"integer"},{"type":"null"}],"default":null,"title":"Ttl"}},"required":["key","value"],"title":"json_setArguments","type":"object"}}]}"#;

#[test]
fn explain_judges_a_json_string_as_what_the_server_decodes_it_to() {
    let dir = TempDir::new();
    let policy = dir.write(
        "policy.toml",
        r#"
[[rules]]
name = "no secrets"
tool = "json_set"
action = "deny"
when = [ { arg = "value[*]", glob = "secret*" } ]
"#,
    );
    let tools = dir.write("tools.json", JSON_SET_TOOLS);
    let explain = |arguments: &str| -> Value {
        let output = run(&[
            "explain",
            "--config",
            policy.to_str().unwrap(),
            "--json",
            "--tools",
            tools.to_str().unwrap(),
            "json_set",
            arguments,
        ]);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        serde_json::from_slice(&output.stdout).unwrap()
    };
    // The string is JSON for an array holding "secret": the server stores that array.
    let decoded = explain(r#"{"key":"doc","value":"[\"secret-plan\"]"}"#);
    assert_eq!(decoded["decision"], "deny", "{decoded}");
    assert_eq!(decoded["rule"], 1);
    let other = explain(r#"{"key":"doc","value":"[\"public\"]"}"#);
    assert_eq!(other["decision"], "allow", "{other}");
    // JSON only a lenient parser reads is refused, with why.
    let lenient = explain(r#"{"key":"doc","value":"[\"secret\", NaN]"}"#);
    assert_eq!(lenient["decision"], "unjudgeable_arguments", "{lenient}");
    assert!(
        lenient["message"]
            .as_str()
            .is_some_and(|m| m.contains("not as strict JSON")),
        "{lenient}"
    );
    // Without the server's tools the type is unknown, and a string holding JSON is refused.
    let output = run(&[
        "explain",
        "--config",
        policy.to_str().unwrap(),
        "--json",
        "json_set",
        r#"{"key":"doc","value":"[\"public\"]"}"#,
    ]);
    let unknown: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(unknown["decision"], "unjudgeable_arguments", "{unknown}");
}

#[test]
fn explain_and_check_show_the_command_line_the_server_runs() {
    let dir = TempDir::new();
    let policy = dir.write(
        "policy.toml",
        r#"
[[rules]]
name = "no flush"
tool = "valkey_admin"
action = "deny"
when = [ { arg = "command", in = ["FLUSHALL", "FLUSHDB"], ignore_case = true } ]
"#,
    );
    let path = policy.to_str().unwrap();
    let output = run(&[
        "explain",
        "--config",
        path,
        "--json",
        "valkey_admin",
        r#"{"command":"FLUSHALL SYNC","args":[],"confirm":true}"#,
    ]);
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["decision"], "unjudgeable_arguments", "{report}");
    assert_eq!(report["words"], serde_json::json!(["FLUSHALL", "SYNC"]));
    assert!(
        report["message"]
            .as_str()
            .is_some_and(|m| m.contains(r#"runs as the command ["FLUSHALL","SYNC"]"#)),
        "{report}"
    );
    let output = run(&[
        "explain",
        "--config",
        path,
        "valkey_admin",
        "{\"command\":\"\u{fb02}ushall\\u3000async\"}",
    ]);
    let text = stdout(&output);
    assert!(
        text.contains(r#"command line the server would run: ["FLUSHALL","ASYNC"]"#),
        "{text}"
    );
    let check = stdout(&run(&["check", "--config", path]));
    assert!(
        check.contains("is refused as unjudgeable_arguments") && check.contains("@words[0]"),
        "{check}"
    );
}

/// `check` warns when the server is given a folder that holds the policy file: a server that
/// can write there can loosen its own policy.
#[test]
fn check_warns_when_the_server_can_reach_the_policy() {
    let dir = TempDir::new();
    let folder = dir.path().display().to_string();
    let policy = dir.write(
        "policy.toml",
        &format!(
            "[server]\ncommand = \"npx\"\nargs = [\"-y\", \"@modelcontextprotocol/server-filesystem\", {}]\n",
            toml::Value::String(folder.clone())
        ),
    );
    let output = run(&["check", "--config", policy.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let report = stdout(&output);
    assert!(
        report.contains("warning: the server is given the folder"),
        "{report}"
    );
    assert!(report.contains("[policy] reload"), "{report}");
    // A server given another folder: no warning.
    let other = TempDir::new();
    let policy = dir.write(
        "elsewhere.toml",
        &format!(
            "[server]\ncommand = \"npx\"\nargs = [\"--root={}\"]\n",
            other.path().display()
        ),
    );
    let output = run(&["check", "--config", policy.to_str().unwrap()]);
    assert!(!stdout(&output).contains("warning"), "{}", stdout(&output));
}
