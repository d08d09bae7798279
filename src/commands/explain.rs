//! `mcp-policy-proxy explain --config F TOOL [ARGUMENTS_JSON]`: which rule decides a call, and
//! why each earlier rule passed it over.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::json;
use crate::policy::explain::{Explanation, Step};
use crate::policy::{Call, Decision, Policy, ToolInfo};
use crate::session::refusal::refusal_text;

/// Why the arguments given on the command line cannot be used.
pub fn check_arguments(arguments: Option<&str>) -> Result<Option<Vec<u8>>, String> {
    let Some(text) = arguments else {
        return Ok(None);
    };
    json::validate(text.as_bytes())
        .map_err(|err| format!("the arguments are not strict JSON: {err}"))?;
    if json::kind(text.as_bytes()) != json::Kind::Object {
        return Err("the arguments must be a JSON object, such as '{\"command\":\"GET\"}'".into());
    }
    Ok(Some(text.as_bytes().to_vec()))
}

/// The definition of `tool` in `text`, a saved `tools/list` result (`{"tools": [...]}`) or its
/// `tools` array.
pub fn tool_info(text: &[u8], tool: &str) -> Result<ToolInfo, String> {
    json::validate(text).map_err(|err| format!("not strict JSON: {err}"))?;
    let tools = match json::kind(text) {
        json::Kind::Array => text,
        json::Kind::Object => json::get(text, "tools")
            .filter(|t| json::kind(t) == json::Kind::Array)
            .ok_or("no \"tools\" array; save the result of a tools/list request")?,
        _ => return Err("expected a tools/list result, {\"tools\": [...]}".to_owned()),
    };
    json::elements(tools)
        .find(|t| json::get(t, "name").and_then(json::as_str).as_deref() == Some(tool))
        .map(|definition| ToolInfo {
            definition: definition.to_vec().into_boxed_slice(),
        })
        .ok_or_else(|| format!("the server lists no tool named {tool:?}"))
}

/// The explanation of a call to `tool` with `arguments` under `policy`, with the tool's
/// definition when the server's `tools/list` was given.
pub fn explain(
    policy: &Policy,
    tool: &str,
    arguments: Option<&[u8]>,
    tool_info: Option<&ToolInfo>,
) -> Explanation {
    let call = Call {
        tool,
        arguments,
        tool_info,
    };
    policy.explain(&call)
}

/// The report for a person.
pub fn text(tool: &str, explanation: &Explanation) -> String {
    let mut out = String::new();
    for (rule, step) in &explanation.steps {
        let why = match step {
            Step::PatternMismatch => "passed over: its pattern does not match".to_owned(),
            Step::NotInClass(class) => format!("passed over: the tool is not in class {class:?}"),
            Step::ConditionFalse(cond) => {
                format!("passed over: its condition ({cond}) does not hold")
            }
            Step::Shadow(decision) => format!(
                "shadow rule: would decide {} (only logged; the next rules decide)",
                decision.kind()
            ),
            Step::Decided(decision) => format!("DECIDES: {}", verdict(decision)),
            Step::NotReached => continue,
        };
        let _ = writeln!(out, "  {}: {why}", rule.label());
    }
    match &explanation.command_line {
        Some(Ok(words)) => {
            let _ = writeln!(
                out,
                "command line the server would run: {}",
                serde_json::to_string(words).unwrap_or_default()
            );
        }
        Some(Err(why)) => {
            let _ = writeln!(out, "command line: not readable: {why}");
        }
        None => {}
    }
    let decision = &explanation.decision;
    let _ = writeln!(out, "decision: {}", verdict(decision));
    match decision {
        Decision::Allow { rule: None } => {
            let _ = writeln!(out, "  no rule matches, and the default is allow");
        }
        Decision::Allow { rule: Some(rule) } => {
            let _ = writeln!(out, "  allowed by {}", rule.label());
        }
        Decision::StoreCheck { rule } => {
            let _ = writeln!(
                out,
                "  allowed by {} while the fleet-wide count in the store is under its limit",
                rule.label()
            );
        }
        Decision::ApprovalRequired { rule } => {
            let _ = writeln!(
                out,
                "  held for a person's approval under {} (on every channel [approval] allows \
                 and the client supports); refused as approval_unavailable where there is none",
                rule.label()
            );
        }
        refused => {
            let _ = writeln!(
                out,
                "  the agent would be told: {}",
                refusal_text(tool, refused)
            );
        }
    }
    out
}

fn verdict(decision: &Decision) -> &'static str {
    match decision {
        Decision::ApprovalRequired { .. } => "require_approval",
        Decision::StoreCheck { .. } => "allow_if_the_store_admits",
        other => other.kind(),
    }
}

/// The report for a machine.
pub fn to_json(tool: &str, explanation: &Explanation) -> Value {
    let steps: Vec<Value> = explanation
        .steps
        .iter()
        .filter(|(_, step)| !matches!(step, Step::NotReached))
        .map(|(rule, step)| {
            let (outcome, detail) = match step {
                Step::PatternMismatch => ("pattern_mismatch", Value::Null),
                Step::NotInClass(class) => ("not_in_class", json!(class)),
                Step::ConditionFalse(cond) => ("condition_false", json!(cond)),
                Step::Shadow(decision) => ("shadow", json!(verdict(decision))),
                Step::Decided(decision) => ("decided", json!(verdict(decision))),
                Step::NotReached => unreachable!("filtered"),
            };
            json!({
                "rule": rule.number,
                "name": rule.name,
                "pattern": rule.pattern,
                "outcome": outcome,
                "detail": detail,
            })
        })
        .collect();
    let decision = &explanation.decision;
    // `words`: the command line the server would run (null when the proxy does not know how the
    // tool makes one); `wordsUnreadable`: why these arguments give no command line it can read;
    // `commandWords`: the words the command argument alone makes, which is all a test of the
    // command or of one of its words reads when the rest of the line is unreadable.
    let (words, unreadable) = match &explanation.command_line {
        Some(Ok(words)) => (json!(words), Value::Null),
        Some(Err(why)) => (Value::Null, json!(why)),
        None => (Value::Null, Value::Null),
    };
    json!({
        "tool": tool,
        "words": words,
        "wordsUnreadable": unreadable,
        "commandWords": explanation.command_words,
        "decision": verdict(decision),
        "rule": decision.rule().map(|r| r.number),
        "ruleName": decision.rule().and_then(|r| r.name.clone()),
        "reason": decision.rule().and_then(|r| r.reason.clone()),
        "message": (!decision.is_allowed()).then(|| refusal_text(tool, decision)),
        "steps": steps,
    })
}
