//! `mcp-policy-proxy test --config F CASES.toml`: policy tests as code.
//!
//! ```toml
//! [[case]]
//! name = "writes are limited to 2 a minute"   # optional; else "case N"
//! tool = "valkey_write"
//! arguments = { command = "SET", args = ["k", "v"] }
//! expect = ["allow", "allow", "rate_limited"]  # one kind, or a sequence of the same call
//! ```
//!
//! Each case runs in a fresh session, its calls at one instant, each allowed call counted as
//! the proxy counts a forwarded one. A fleet-wide limit is not counted (no store is asked): its
//! rule's calls are `allow`. `expect` is a decision kind (`allow`, `deny`,
//! `default_deny`, `rate_limited`, `require_approval`, `unjudgeable_arguments`) or `refuse`,
//! which is any kind but `allow`.

use std::fmt::Write as _;
use std::time::Instant;

use serde::Deserialize;

use crate::policy::{Call, Decision, Policy};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Cases {
    #[serde(default)]
    case: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: Option<String>,
    tool: String,
    arguments: Option<toml::Value>,
    expect: Expect,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Expect {
    One(String),
    Sequence(Vec<String>),
}

/// The kinds a case may expect.
const KINDS: &[&str] = &[
    "allow",
    "deny",
    "default_deny",
    "rate_limited",
    "require_approval",
    "unjudgeable_arguments",
    "refuse",
];

/// The outcome of a run: the report, and whether every case passed.
pub struct Outcome {
    pub report: String,
    pub passed: bool,
}

/// Runs the cases in `text` against `policy`. `Err` for a cases file that cannot be read.
pub fn run(policy: &Policy, text: &str) -> Result<Outcome, String> {
    let cases: Cases = toml::from_str(text).map_err(|err| err.to_string())?;
    if cases.case.is_empty() {
        return Err("no [[case]] in the file; add one, e.g. [[case]] tool = \"valkey_read\" expect = \"allow\"".into());
    }
    let mut report = String::new();
    let mut failed = 0;
    for (number, case) in cases.case.iter().enumerate() {
        let name = case
            .name
            .clone()
            .unwrap_or_else(|| format!("case {}", number + 1));
        let expected: Vec<&str> = match &case.expect {
            Expect::One(kind) => vec![kind.as_str()],
            Expect::Sequence(kinds) => kinds.iter().map(String::as_str).collect(),
        };
        if let Some(bad) = expected.iter().find(|k| !KINDS.contains(k)) {
            return Err(format!(
                "{name}: unknown expectation {bad:?}; expected one of {}",
                KINDS.join(", ")
            ));
        }
        let arguments = match &case.arguments {
            None => None,
            Some(value) => {
                let json = serde_json::to_vec(value).map_err(|err| format!("{name}: {err}"))?;
                if crate::json::kind(&json) != crate::json::Kind::Object {
                    return Err(format!("{name}: arguments must be a table"));
                }
                Some(json)
            }
        };
        let mut state = policy.new_state();
        let now = Instant::now();
        let mut got = Vec::new();
        for _ in &expected {
            let call = Call {
                tool: &case.tool,
                arguments: arguments.as_deref(),
                tool_info: None,
            };
            let decision = policy.evaluate(&call, &mut state, now);
            policy.admit(&decision, &mut state, now);
            got.push(decision);
        }
        let kinds: Vec<&str> = got.iter().map(kind).collect();
        let pass = expected
            .iter()
            .zip(&kinds)
            .all(|(want, got)| *want == *got || (*want == "refuse" && *got != "allow"));
        if pass {
            let _ = writeln!(report, "ok   {name}");
            continue;
        }
        failed += 1;
        let _ = writeln!(report, "FAIL {name}");
        let _ = writeln!(
            report,
            "     call:     {} {}",
            case.tool,
            arguments
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default()
        );
        let _ = writeln!(report, "     expected: {}", expected.join(", "));
        let _ = writeln!(report, "     decided:  {}", kinds.join(", "));
        if let Some(rule) = got.iter().rev().find_map(Decision::rule) {
            let _ = writeln!(report, "     by:       {}", rule.label());
        }
    }
    let total = cases.case.len();
    let _ = writeln!(
        report,
        "{} of {total} case(s) passed{}",
        total - failed,
        if failed > 0 {
            format!(", {failed} failed")
        } else {
            String::new()
        }
    );
    Ok(Outcome {
        report,
        passed: failed == 0,
    })
}

fn kind(decision: &Decision) -> &'static str {
    match decision {
        Decision::ApprovalRequired { .. } => "require_approval",
        // Offline there is no store: a call under a fleet-wide limit is what the rule allows,
        // its count aside.
        Decision::StoreCheck { .. } => "allow",
        other => other.kind(),
    }
}
