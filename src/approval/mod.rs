//! How a person is asked to approve a call, and how their answer is read.
//!
//! Three channels, all asked at once; the first clear answer decides and the others are
//! withdrawn:
//! - elicitation in the handshake era: the proxy's own `elicitation/create` to the client while
//!   the call is held (the session, `session/held.rs`);
//! - elicitation in 2026-07-28: an `InputRequiredResult` with a sealed `requestState`, and the
//!   retry checked against the seal ([`seal`]);
//! - an approval command ([`command`]), run off the pumps by the supervisor, for hosts that
//!   draw no forms (Claude Desktop) and teams that approve by chat; [`desktop`] is the one that
//!   ships with the proxy.
//!
//! Everything that is not an explicit approval refuses: decline, cancel, a missing or unknown
//! decision, an error, a malformed answer, a crash and the time-out. An approval is never
//! inferred from silence.

pub mod command;
pub mod desktop;
mod dialog;
pub mod digest;
pub mod display;
pub mod seal;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::json;
use crate::policy::Rule;

/// The key of the proxy's question among a 2026-07-28 result's `inputRequests`, namespaced so
/// it cannot collide with a server's own.
pub const INPUT_KEY: &str = "mcp-policy-proxy/approval";

/// The longest a string value is shown before it is cut (with a count of what was cut).
pub const SHOWN_VALUE_CHARS: usize = 200;
/// The longest the arguments are shown in all.
pub const SHOWN_ARGUMENTS_CHARS: usize = 2_000;

/// A way the proxy may ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Elicitation,
    Command,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Elicitation => "elicitation",
            Channel::Command => "command",
        }
    }
}

/// `[approval]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalSettings {
    pub channels: Vec<Channel>,
    /// How long a person has; then the call is refused.
    pub timeout: Duration,
    /// The approval program and its arguments.
    pub command: Option<Vec<String>>,
}

/// The default for `[approval] timeout`: long enough to read a call and decide, short enough
/// that an agent is not left hanging when nobody is at the screen.
pub const DEFAULT_APPROVAL_TIMEOUT: Duration = Duration::from_secs(120);

impl Default for ApprovalSettings {
    fn default() -> ApprovalSettings {
        ApprovalSettings {
            channels: vec![Channel::Elicitation],
            timeout: DEFAULT_APPROVAL_TIMEOUT,
            command: None,
        }
    }
}

impl ApprovalSettings {
    pub fn allows(&self, channel: Channel) -> bool {
        self.channels.contains(&channel)
    }
}

/// A person's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    ApproveOnce,
    ApproveForSession,
    /// A person said no, with their note if they left one.
    Deny {
        note: Option<String>,
    },
    /// No clear answer came: an error, a malformed or unknown answer, a dismissed question, a
    /// program that could not run. The proxy's own words say what went wrong.
    Unclear {
        why: String,
    },
}

impl Answer {
    pub fn is_approval(&self) -> bool {
        matches!(self, Answer::ApproveOnce | Answer::ApproveForSession)
    }

    pub fn unclear(why: impl Into<String>) -> Answer {
        Answer::Unclear { why: why.into() }
    }
}

/// What the person is shown, on every channel.
#[derive(Debug, Clone)]
pub struct Question {
    pub tool: String,
    /// `params.arguments`, raw validated JSON.
    pub arguments: Option<Vec<u8>>,
    pub rule: Arc<Rule>,
    /// The server behind the proxy, as its command line.
    pub server: String,
    /// What approve-for-session covers under this rule.
    pub grant: crate::config::SessionGrant,
    /// The argument names the tool's `inputSchema` declares, when the server listed it.
    pub declared: Option<Vec<String>>,
    /// A short code shown to the person only (the dialog, the proxy's stderr), never in an MCP
    /// message, so that an approval by chat can name the call.
    pub code: String,
}

impl Question {
    /// The arguments as sent. The session refuses to ask about arguments that no `Value` can
    /// hold exactly (`digest::faithful_value`), so a question always has them; should one not,
    /// it says so rather than show something else.
    fn arguments_value(&self) -> Value {
        digest::faithful_value(self.arguments.as_deref())
            .unwrap_or_else(|why| json!({ "(not shown)": why }))
    }

    /// The text of the question: who asks, about which call, under which rule, and the
    /// arguments shown faithfully (escapes for invisible characters, long values cut).
    pub fn message(&self) -> String {
        let reason = self
            .rule
            .reason
            .as_deref()
            .unwrap_or("a person must approve each call");
        let arguments = self.shown_arguments();
        format!(
            "mcp-policy-proxy asks for your approval of a tool call.\n\
             Server: {}\nTool: {}\nRule: {}: {}\nArguments:\n{}\n\n\
             Choose approve_once to run this call once, approve_for_session to let {} \
             in this session without asking, or deny.",
            display::visible(&self.server, SHOWN_VALUE_CHARS),
            display::visible(&self.tool, SHOWN_VALUE_CHARS),
            self.rule.label(),
            display::visible(reason, SHOWN_ARGUMENTS_CHARS),
            indent(&arguments),
            self.session_scope(),
        )
    }

    /// The arguments as the person sees them. When the tool's schema is known, the arguments it
    /// declares come first, and the others (which its server ignores) after them under a
    /// heading, so that padding with made-up keys cannot push what runs out of what is shown.
    /// When something had to be cut, the text says so plainly.
    fn shown_arguments(&self) -> String {
        let all = self.arguments_value();
        let Value::Object(members) = &all else {
            return display::describe_arguments(&all, SHOWN_VALUE_CHARS, SHOWN_ARGUMENTS_CHARS);
        };
        let (declared, other): (
            serde_json::Map<String, Value>,
            serde_json::Map<String, Value>,
        ) = match &self.declared {
            Some(names) => members
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .partition(|(k, _)| names.contains(k)),
            None => (members.clone(), serde_json::Map::new()),
        };
        let declared = Value::Object(declared);
        let mut text =
            display::describe_arguments(&declared, SHOWN_VALUE_CHARS, SHOWN_ARGUMENTS_CHARS);
        let cut = text != display::describe_arguments(&declared, SHOWN_VALUE_CHARS, usize::MAX);
        if !other.is_empty() {
            text.push_str(&format!(
                "\n(and {} argument(s) the tool does not declare, which its server ignores:)\n",
                other.len()
            ));
            text.push_str(&display::describe_arguments(
                &Value::Object(other),
                SHOWN_VALUE_CHARS,
                SHOWN_ARGUMENTS_CHARS / 4,
            ));
        }
        if cut {
            text.push_str(
                "\nNOT ALL ARGUMENTS ARE SHOWN: the call is too large to show here. Deny it unless \
                 you know what it holds.",
            );
        }
        text
    }

    /// What approve-for-session lets run, in words.
    fn session_scope(&self) -> String {
        match self.grant {
            crate::config::SessionGrant::Call => "this exact call run again".to_owned(),
            crate::config::SessionGrant::Tool => format!(
                "ANY call to {} run, whatever its arguments,",
                display::visible(&self.tool, SHOWN_VALUE_CHARS)
            ),
        }
    }

    /// `elicitation/create` params for form mode. `with_default` adds `default: "deny"`, which
    /// 2025-06-18 allows only on booleans.
    pub fn elicitation_params(&self, with_default: bool) -> Value {
        let mut decision = json!({
            "type": "string",
            "title": "Decision",
            "enum": ["approve_once", "approve_for_session", "deny"],
            "enumNames": [
                "Approve this call once",
                match self.grant {
                    crate::config::SessionGrant::Call => "Approve this exact call for the session",
                    crate::config::SessionGrant::Tool => "Approve any call to this tool for the session",
                },
                "Deny",
            ],
        });
        if with_default {
            decision["default"] = json!("deny");
        }
        json!({
            "message": self.message(),
            "requestedSchema": {
                "type": "object",
                "properties": {
                    "decision": decision,
                    "note": {
                        "type": "string",
                        "title": "Note for the agent (optional)",
                        "description": "Passed back to the agent with a refusal",
                    },
                },
                "required": ["decision"],
            },
        })
    }

    /// The call as the approval command reads it on stdin: one JSON object.
    pub fn command_input(&self, session: &str, timeout: Duration) -> Vec<u8> {
        let mut input = serde_json::to_vec(&json!({
            "tool": self.tool,
            "arguments": self.arguments_value(),
            "rule": {
                "number": self.rule.number,
                "name": self.rule.name,
                "pattern": self.rule.pattern,
            },
            "reason": self.rule.reason,
            "server": self.server,
            "code": self.code,
            "session": session,
            "timeout_ms": timeout.as_millis() as u64,
            "session_grant": match self.grant {
                crate::config::SessionGrant::Call => "call",
                crate::config::SessionGrant::Tool => "tool",
            },
        }))
        .expect("a Value always serializes");
        input.push(b'\n');
        input
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|line| format!("  {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads an `ElicitResult` (raw validated JSON). Only `accept` with an approving `decision`
/// approves.
pub fn read_elicit_result(result: &[u8]) -> Answer {
    let action = json::get(result, "action").and_then(json::as_str);
    let content = json::get(result, "content");
    let note = content
        .and_then(|c| json::get(c, "note"))
        .and_then(json::as_str)
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty());
    let decision = content
        .and_then(|c| json::get(c, "decision"))
        .and_then(json::as_str);
    match (action.as_deref(), decision.as_deref()) {
        (Some("accept"), Some("approve_once")) => Answer::ApproveOnce,
        (Some("accept"), Some("approve_for_session")) => Answer::ApproveForSession,
        (Some("accept"), Some("deny")) => Answer::Deny { note },
        (Some("accept"), Some(other)) => Answer::unclear(format!(
            "the answer's decision {other:?} is none of approve_once, approve_for_session, deny"
        )),
        (Some("accept"), None) => Answer::unclear("the answer carried no decision"),
        (Some("decline"), _) => Answer::Deny { note },
        (Some("cancel"), _) => Answer::unclear("the person dismissed the question"),
        _ => Answer::unclear("the answer to the approval question was malformed"),
    }
}

/// What an approval command's stdout says, given that it exited with `success`.
pub fn read_command_output(success: bool, stdout: &[u8]) -> Answer {
    let line = stdout
        .split(|&b| b == b'\n')
        .map(<[u8]>::trim_ascii)
        .find(|line| !line.is_empty());
    let parsed: Option<Value> = line.and_then(|l| serde_json::from_slice(l).ok());
    let note = parsed
        .as_ref()
        .and_then(|v| v.get("note"))
        .and_then(Value::as_str)
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty());
    let decision = parsed
        .as_ref()
        .and_then(|v| v.get("decision"))
        .and_then(Value::as_str);
    if !success {
        return Answer::Deny { note };
    }
    match decision {
        None if line.is_none() => Answer::ApproveOnce,
        Some("approve_once") => Answer::ApproveOnce,
        Some("approve_for_session") => Answer::ApproveForSession,
        Some("deny") => Answer::Deny { note },
        // Exit 0 with output that says something else: not clearly an approval.
        _ => Answer::unclear("the approval command's output was not a decision"),
    }
}

/// A fresh short code such as `K7P-4QX`, from letters and digits that cannot be confused.
pub fn approval_code(seed: u64) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
    let mut x = seed ^ 0x9E37_79B9_7F4A_7C15;
    let mut code = String::with_capacity(7);
    for i in 0..6 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if i == 3 {
            code.push('-');
        }
        code.push(ALPHABET[(x % ALPHABET.len() as u64) as usize] as char);
    }
    code
}

/// One run of the approval command, as the session asks the supervisor for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApproverJob {
    pub id: u64,
    pub command: Vec<String>,
    /// The call as one JSON object, for the program's stdin.
    pub input: Vec<u8>,
    pub timeout: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_explicit_approval_approves() {
        let cases: &[(&str, Answer)] = &[
            (
                r#"{"action":"accept","content":{"decision":"approve_once"}}"#,
                Answer::ApproveOnce,
            ),
            (
                r#"{"action":"accept","content":{"decision":"approve_for_session"}}"#,
                Answer::ApproveForSession,
            ),
            (
                r#"{"action":"accept","content":{"decision":"deny","note":"use the replica"}}"#,
                Answer::Deny {
                    note: Some("use the replica".into()),
                },
            ),
            (r#"{"action":"decline"}"#, Answer::Deny { note: None }),
        ];
        for (text, expected) in cases {
            assert_eq!(&read_elicit_result(text.as_bytes()), expected, "{text}");
        }
        for refusing in [
            r#"{"action":"accept"}"#,
            r#"{"action":"accept","content":{}}"#,
            r#"{"action":"accept","content":{"decision":"APPROVE_ONCE"}}"#,
            r#"{"action":"accept","content":{"decision":true}}"#,
            r#"{"action":"cancel","content":{"decision":"approve_once"}}"#,
            r#"{"action":"decline","content":{"decision":"approve_once"}}"#,
            r#"{"content":{"decision":"approve_once"}}"#,
            r#"{"action":"Accept","content":{"decision":"approve_once"}}"#,
            r#"[]"#,
        ] {
            assert!(
                !read_elicit_result(refusing.as_bytes()).is_approval(),
                "{refusing}"
            );
        }
    }

    #[test]
    fn a_command_approves_by_exit_zero_or_says_more() {
        assert_eq!(read_command_output(true, b""), Answer::ApproveOnce);
        assert_eq!(
            read_command_output(true, b"{\"decision\":\"approve_for_session\"}\n"),
            Answer::ApproveForSession
        );
        assert_eq!(
            read_command_output(true, b"{\"decision\":\"deny\",\"note\":\"no\"}\n"),
            Answer::Deny {
                note: Some("no".into())
            }
        );
        assert!(!read_command_output(true, b"yes\n").is_approval());
        assert!(!read_command_output(false, b"").is_approval());
        assert!(!read_command_output(false, b"{\"decision\":\"approve_once\"}").is_approval());
    }

    #[test]
    fn codes_are_short_and_vary() {
        let a = approval_code(1);
        assert_eq!(a.len(), 7);
        assert_ne!(a, approval_code(2));
    }
}
