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
