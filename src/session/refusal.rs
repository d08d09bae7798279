//! Answers the proxy writes itself: policy refusals and JSON-RPC errors.
//!
//! A refusal tells the agent which tool, which rule and why, in words it can act on, and repeats
//! the same facts machine-readably under [`META_KEY`]. By default it is a `CallToolResult` with
//! `isError: true`, which clients hand to the model; `violation = "jsonrpc_error"` makes it a
//! JSON-RPC error with [`POLICY_VIOLATION`] instead.

use std::time::Duration;

use serde_json::{Value, json};

use crate::config::ViolationStyle;
use crate::message::RequestId;
use crate::policy::{Decision, Rule};
use crate::reply::{POLICY_VIOLATION, error, response};

/// The `_meta` key under which a refusal carries its facts.
pub const META_KEY: &str = "mcp-policy-proxy/decision";

/// How a duration reads in a message: "60s", "1.5s", "250ms".
fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms >= 1000 && ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else if ms >= 1000 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{ms}ms")
    }
}

/// A wait rounded up to a whole millisecond, so that retrying after it is never too early.
fn ceil_ms(d: Duration) -> u64 {
    let ms = d.as_micros().div_ceil(1000);
    u64::try_from(ms).unwrap_or(u64::MAX)
}

fn rule_label(rule: &Rule) -> String {
    rule.label()
}

/// The sentence the agent reads.
pub fn refusal_text(tool: &str, decision: &Decision) -> String {
    match decision {
        Decision::Allow { .. } => format!("tool {tool:?} is allowed"),
        Decision::Deny { rule } => format!(
            "policy violation: tool {tool:?} is denied by {}: {}. This is a policy decision, not a \
             transient error; retrying the same call will not help.",
            rule_label(rule),
            rule.reason
                .as_deref()
                .unwrap_or("this tool is not permitted"),
        ),
        Decision::RateLimited { rule, retry_after } => {
            let limit = rule
                .rate_limit
                .as_ref()
                .map(|l| {
                    let across = if l.scope.is_fleet() {
                        " across every proxy sharing the store"
                    } else {
                        ""
                    };
                    format!("at most {} calls per {}{across}", l.max, human(l.window))
                })
                .unwrap_or_default();
            let reason = rule
                .reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            format!(
                "policy violation: tool {tool:?} is rate-limited by {}: {limit}{reason}; retry \
                 after {}.",
                rule_label(rule),
                human(Duration::from_millis(ceil_ms(*retry_after))),
            )
        }
        Decision::ApprovalRequired { rule } => format!(
            "policy violation: tool {tool:?} requires a person's approval under {}: {}. No approval \
             channel is available, so the call was refused; ask the user to approve it another \
             way or to change the policy.",
            rule_label(rule),
            rule.reason
                .as_deref()
                .unwrap_or("a person must approve each call"),
        ),
        Decision::DefaultDeny => format!(
            "policy violation: tool {tool:?} is not allowed: no rule matches it and the default \
             policy is deny."
        ),
        Decision::StoreCheck { rule } => format!(
            "tool {tool:?} is limited across every proxy by {}; the store decides",
            rule_label(rule)
        ),
        Decision::Unjudgeable { rule, reason } => format!(
            "policy violation: the call to tool {tool:?} was refused because {} looks at its \
             arguments and cannot judge them: {reason}.",
            rule_label(rule),
        ),
    }
}

/// The machine-readable facts of a refusal.
pub fn refusal_facts(tool: &str, decision: &Decision) -> Value {
    let (kind, rule) = match decision {
        Decision::Allow { rule } => ("allow", rule.as_deref()),
        Decision::Deny { rule } => ("deny", Some(&**rule)),
        Decision::RateLimited { rule, .. } => ("rate_limited", Some(&**rule)),
        Decision::ApprovalRequired { rule } => ("approval_required", Some(&**rule)),
        Decision::DefaultDeny => ("default_deny", None),
        Decision::Unjudgeable { rule, .. } => ("unjudgeable_arguments", Some(&**rule)),
        Decision::StoreCheck { rule } => ("store_check", Some(&**rule)),
    };
    let mut facts = json!({
        "decision": kind,
        "tool": tool,
        "rule": rule.map(|r| r.number),
        "pattern": rule.map(|r| r.pattern.as_str()),
        "reason": rule.and_then(|r| r.reason.as_deref()),
    });
    if let Some(name) = rule.and_then(|r| r.name.as_deref()) {
        facts["ruleName"] = json!(name);
    }
    if let Decision::Unjudgeable { reason, .. } = decision {
        facts["problem"] = json!(reason);
    }
    if let Decision::RateLimited { retry_after, .. } = decision {
        facts["retryAfterMs"] = json!(ceil_ms(*retry_after));
    }
    facts
}

/// The answer to a refused `tools/call`. `modern` adds the `resultType` that 2026-07-28
/// results carry.
pub fn policy_refusal(
    id: &RequestId,
    tool: &str,
    decision: &Decision,
    style: ViolationStyle,
    modern: bool,
) -> Vec<u8> {
    let text = refusal_text(tool, decision);
    let facts = refusal_facts(tool, decision);
    shaped(id, text, facts, style, modern)
}

/// How an approval ended without the call being approved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalRefusal {
    /// A person (or the approval command) said no, or gave no clear yes.
    Denied {
        channel: &'static str,
        note: Option<String>,
    },
    /// No clear answer came (an error, a malformed answer, a program that failed).
    Unclear { channel: &'static str, why: String },
    /// Nobody answered within the time-out.
    TimedOut { after: Duration },
    /// There is no way to ask a person here.
    Unavailable,
    /// The question cannot be asked as it must be: the call cannot be shown as it runs, or
    /// its state cannot be sealed (the OS gave no randomness for the key). Never asked with
    /// something less.
    CannotAsk { why: String },
}

impl ApprovalRefusal {
    /// The refusal an answer that is not an approval makes.
    pub fn from_answer(channel: &'static str, answer: crate::approval::Answer) -> ApprovalRefusal {
        match answer {
            crate::approval::Answer::Unclear { why } => ApprovalRefusal::Unclear { channel, why },
            crate::approval::Answer::Deny { note } => ApprovalRefusal::Denied { channel, note },
            approval => ApprovalRefusal::Unclear {
                channel,
                why: format!("{approval:?} was read as a refusal"),
            },
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            ApprovalRefusal::Denied { .. } | ApprovalRefusal::Unclear { .. } => "approval_denied",
            ApprovalRefusal::TimedOut { .. } => "approval_timeout",
            ApprovalRefusal::Unavailable | ApprovalRefusal::CannotAsk { .. } => {
                "approval_unavailable"
            }
        }
    }
}

/// The sentence the agent reads when an approval did not happen.
pub fn approval_text(tool: &str, rule: &Rule, refusal: &ApprovalRefusal) -> String {
    let reason = rule
        .reason
        .as_deref()
        .unwrap_or("a person must approve each call");
    match refusal {
        ApprovalRefusal::Denied { note, .. } => {
            let note = note
                .as_deref()
                .map(|n| {
                    let stop = if n.ends_with(['.', '!', '?']) {
                        ""
                    } else {
                        "."
                    };
                    format!(" The person said: {n}{stop}")
                })
                .unwrap_or_default();
            format!(
                "policy violation: the call to tool {tool:?} was not approved: a person's \
                 approval is required under {}: {reason}, and it was refused.{note} Do not retry \
                 the same call unless the user asks you to.",
                rule.label(),
            )
        }
        ApprovalRefusal::Unclear { why, .. } => format!(
            "policy violation: the call to tool {tool:?} was not approved: a person's approval is \
             required under {}: {reason}, and no clear approval came ({why}). The call was not \
             run; ask the user before trying again.",
            rule.label(),
        ),
        ApprovalRefusal::TimedOut { after } => format!(
            "policy violation: the call to tool {tool:?} was not approved: a person's approval is \
             required under {}: {reason}, and nobody answered within {}. The call was not run; \
             ask the user before trying again.",
            rule.label(),
            human(*after),
        ),
        ApprovalRefusal::Unavailable => format!(
            "policy violation: tool {tool:?} requires a person's approval under {}: {reason}. No \
             way to ask a person is available here (the client declared no elicitation and no \
             approval command is configured), so the call was refused; ask the user to approve \
             it another way or to change the policy.",
            rule.label(),
        ),
        ApprovalRefusal::CannotAsk { why } => format!(
            "policy violation: tool {tool:?} requires a person's approval under {}: {reason}. The \
             approval could not be asked: {why}, so the call was refused; ask the user to approve \
             it another way or to change the policy.",
            rule.label(),
        ),
    }
}

/// The answer to a `tools/call` whose approval did not happen.
pub fn approval_refusal(
    id: &RequestId,
    tool: &str,
    rule: &Rule,
    refusal: &ApprovalRefusal,
    style: ViolationStyle,
    modern: bool,
) -> Vec<u8> {
    let text = approval_text(tool, rule, refusal);
    let mut facts = json!({
        "decision": refusal.kind(),
        "tool": tool,
        "rule": rule.number,
        "pattern": rule.pattern,
        "reason": rule.reason,
    });
    if let Some(name) = &rule.name {
        facts["ruleName"] = json!(name);
    }
    match refusal {
        ApprovalRefusal::Denied { channel, note } => {
            facts["channel"] = json!(channel);
            if let Some(note) = note {
                facts["note"] = json!(note);
            }
        }
        ApprovalRefusal::Unclear { channel, why } => {
            facts["channel"] = json!(channel);
            facts["problem"] = json!(why);
        }
        ApprovalRefusal::CannotAsk { why } => facts["problem"] = json!(why),
        ApprovalRefusal::TimedOut { .. } | ApprovalRefusal::Unavailable => {}
    }
    shaped(id, text, facts, style, modern)
}

/// The answer to a call to a tool whose definition changed since it was first listed (a
/// rug-pull: a description that now tells the model to do something else, a schema that now
/// takes more).
pub fn tool_changed_refusal(
    id: &RequestId,
    tool: &str,
    what: &str,
    style: ViolationStyle,
    modern: bool,
) -> Vec<u8> {
    let text = format!(
        "policy violation: tool {tool:?} was refused because {what}. The server may have been \
         changed under this session; ask the user to review the tool before using it."
    );
    let facts = json!({
        "decision": "tool_changed",
        "tool": tool,
        "rule": null,
        "pattern": null,
        "reason": what,
    });
    shaped(id, text, facts, style, modern)
}

/// The answer to a call made while the required audit log cannot be written.
pub fn audit_unavailable_refusal(
    id: &RequestId,
    tool: &str,
    style: ViolationStyle,
    modern: bool,
) -> Vec<u8> {
    let text = format!(
        "policy violation: the call to tool {tool:?} was refused because the audit log, which \
         this policy requires, cannot be written now; nothing ran. Tell the user, who can fix \
         the log's disk or path."
    );
    let facts = json!({
        "decision": "audit_unavailable",
        "tool": tool,
        "rule": null,
        "pattern": null,
        "reason": "the required audit log cannot be written",
    });
    shaped(id, text, facts, style, modern)
}

/// The answer to a call under a fleet-wide limit that the store could not decide.
pub fn limit_unavailable_refusal(
    id: &RequestId,
    tool: &str,
    rule: &Rule,
    error: &crate::store::StoreError,
    style: ViolationStyle,
    modern: bool,
) -> Vec<u8> {
    let retry = error.retry_after();
    let when = retry
        .map(|r| format!(" Retry after {}.", human(Duration::from_millis(ceil_ms(r)))))
        .unwrap_or_default();
    let text = format!(
        "policy violation: tool {tool:?} is limited across every proxy by {}, and the store \
         that counts its calls ({}) cannot decide now ({error}), so the call was refused; \
         nothing ran.{when}",
        rule_label(rule),
        error.store(),
    );
    let mut facts = json!({
        "decision": "limit_unavailable",
        "tool": tool,
        "rule": rule.number,
        "pattern": rule.pattern,
        "reason": rule.reason,
        "store": error.store(),
    });
    if let Some(name) = &rule.name {
        facts["ruleName"] = json!(name);
    }
    if let Some(retry) = retry {
        facts["retryAfterMs"] = json!(ceil_ms(retry));
    }
    shaped(id, text, facts, style, modern)
}

fn shaped(
    id: &RequestId,
    text: String,
    facts: Value,
    style: ViolationStyle,
    modern: bool,
) -> Vec<u8> {
    match style {
        ViolationStyle::Result => {
            let mut result = json!({
                "content": [{ "type": "text", "text": text }],
                "isError": true,
                "_meta": { META_KEY: facts },
            });
            if modern {
                result["resultType"] = json!("complete");
            }
            response(Some(id), "result", &result)
        }
        ViolationStyle::JsonRpcError => error(Some(id), POLICY_VIOLATION, &text, Some(facts)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use crate::config::{Action, RateLimitSpec};
    use crate::policy::{Rule, RuleKey};

    fn rule(action: Action) -> Rule {
        Rule {
            number: 2,
            name: None,
            pattern: "valkey_*".into(),
            action,
            reason: Some("writes need care".into()),
            rate_limit: None,
            hide: false,
            session_grant: Default::default(),
            when: None,
            class: None,
            shadow: false,
            key: RuleKey("tool:valkey_*".into()),
        }
    }

    fn parse(line: &[u8]) -> Value {
        assert_eq!(line.last(), Some(&b'\n'));
        serde_json::from_slice(line).unwrap()
    }

    #[test]
    fn deny_is_a_tool_error_result_with_facts() {
        let rule = rule(Action::Deny);
        let line = policy_refusal(
            &RequestId::Small(7),
            "valkey_write",
            &Decision::Deny {
                rule: Arc::new(rule.clone()),
            },
            ViolationStyle::Result,
            false,
        );
        let v = parse(&line);
        assert_eq!(v["id"], 7);
        assert_eq!(v["result"]["isError"], true);
        assert_eq!(
            v["result"]["content"][0]["text"],
            "policy violation: tool \"valkey_write\" is denied by rule 2 (tool = \"valkey_*\"): \
             writes need care. This is a policy decision, not a transient error; retrying the \
             same call will not help."
        );
        assert_eq!(
            v["result"]["_meta"][META_KEY],
            json!({"decision":"deny","tool":"valkey_write","rule":2,"pattern":"valkey_*","reason":"writes need care"})
        );
        assert!(v["result"].get("resultType").is_none());
    }

    #[test]
    fn rate_limit_says_when_to_retry() {
        let mut rule = rule(Action::Allow);
        rule.reason = None;
        rule.rate_limit = Some(RateLimitSpec {
            max: 10,
            window: Duration::from_secs(60),
            scope: crate::config::LimitScope::Session,
        });
        let decision = Decision::RateLimited {
            rule: Arc::new(rule.clone()),
            retry_after: Duration::from_micros(12_345_001),
        };
        let v = parse(&policy_refusal(
            &RequestId::Str("a".into()),
            "valkey_write",
            &decision,
            ViolationStyle::Result,
            true,
        ));
        assert_eq!(v["id"], "a");
        assert_eq!(v["result"]["resultType"], "complete");
        assert_eq!(
            v["result"]["content"][0]["text"],
            "policy violation: tool \"valkey_write\" is rate-limited by rule 2 (tool = \
             \"valkey_*\"): at most 10 calls per 60s; retry after 12.3s."
        );
        assert_eq!(v["result"]["_meta"][META_KEY]["retryAfterMs"], 12_346);
    }

    #[test]
    fn jsonrpc_error_style_uses_an_unreserved_code() {
        let v = parse(&policy_refusal(
            &RequestId::Int("1180591620717411303424".into()),
            "CreateCodeConnection",
            &Decision::DefaultDeny,
            ViolationStyle::JsonRpcError,
            false,
        ));
        // The id's digits are echoed exactly, whatever their size.
        let text = String::from_utf8(policy_refusal(
            &RequestId::Int("1180591620717411303424".into()),
            "x",
            &Decision::DefaultDeny,
            ViolationStyle::JsonRpcError,
            false,
        ))
        .unwrap();
        assert!(text.starts_with("{\"jsonrpc\":\"2.0\",\"id\":1180591620717411303424,"));
        assert_eq!(v["error"]["code"], POLICY_VIOLATION);
        assert!(!(-32768..=-32000).contains(&POLICY_VIOLATION));
        assert_eq!(v["error"]["data"]["decision"], "default_deny");
        assert_eq!(v["error"]["data"]["rule"], Value::Null);
        assert_eq!(
            v["error"]["message"],
            "policy violation: tool \"CreateCodeConnection\" is not allowed: no rule matches it \
             and the default policy is deny."
        );
    }

    #[test]
    fn approval_required_names_the_missing_channel() {
        let rule = rule(Action::RequireApproval);
        let text = refusal_text(
            "manage_index",
            &Decision::ApprovalRequired {
                rule: Arc::new(rule.clone()),
            },
        );
        assert!(text.starts_with(
            "policy violation: tool \"manage_index\" requires a person's approval under rule 2 (tool = \"valkey_*\"): writes need care."
        ));
        assert!(text.contains("No approval channel is available"));
    }

    #[test]
    fn durations_read_naturally() {
        for (ms, text) in [
            (250, "250ms"),
            (1000, "1s"),
            (1500, "1.5s"),
            (60_000, "60s"),
        ] {
            assert_eq!(human(Duration::from_millis(ms)), text);
        }
    }
}
