//! One line of the audit log: a decision, with what it was about. The same type writes the log
//! and reads it back (`mcp-policy-proxy audit`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One decision about one `tools/call`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// When the decision was made: RFC 3339, UTC, milliseconds (`2026-11-29T19:22:03.123Z`).
    pub time: String,
    /// The proxy process that decided (one per session).
    pub session: String,
    /// The request id, as JSON text (`7`, `"abc"`); absent for a notification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub tool: String,
    /// `allow`, `deny`, `default_deny`, `rate_limited`, `unjudgeable_arguments`,
    /// `tool_changed`, `shadow_deny`, `approved`, `approved_for_session`, `granted` (a session
    /// grant covered the call), `approval_requested` (a 2026-07-28 question), `approval_denied`,
    /// `approval_timeout`, `approval_unavailable`, `approval_withdrawn` (the client cancelled
    /// the call while it waited), `limit_unavailable`.
    pub decision: String,
    /// The deciding rule: its name, else `rule N (pattern)`; absent when no rule decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// SHA-256 (hex) of the canonical arguments: the same call always has the same digest.
    pub args_sha256: String,
    /// The arguments, only with `[audit] include_arguments = true`, with `redact` paths
    /// replaced by `"[redacted]"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Value>,
    /// The record's number in its writer's hash chain, from 1 (absent in logs of versions
    /// before the chain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// SHA-256 (hex) of the line before it in the chain; 64 zeros for the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<String>,
    /// For decisions a person made: how they were asked and what they answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRecord {
    /// `elicitation` or `command`; absent when no channel answered (a time-out, no channel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// `approve_once`, `approve_for_session`, `deny`, `unclear` (no clear answer: an error, a
    /// malformed answer, a failed command), `timeout`, `unavailable`, `withdrawn`, `asked` (a
    /// 2026-07-28 question sent with the result).
    pub outcome: String,
    /// The person's note, if they left one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Who answered, as far as the proxy knows: the approval command's program.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// The approval code the person was shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}
