//! What the policy says about one call, and what it looks at to say it.

use std::sync::Arc;
use std::time::Duration;

use super::rule::Rule;

/// One `tools/call`, as the policy sees it. Everything is borrowed from the request line or the
/// session: judging a call builds nothing.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub tool: &'a str,
    /// `params.arguments` as raw JSON bytes, read with the strict validator's accessors.
    pub arguments: Option<&'a [u8]>,
    /// What the server declared about the tool in its last `tools/list`, when it listed it.
    pub tool_info: Option<&'a ToolInfo>,
}

impl<'a> Call<'a> {
    pub fn named(tool: &'a str) -> Call<'a> {
        Call {
            tool,
            arguments: None,
            tool_info: None,
        }
    }
}

/// One tool as the server declared it in `tools/list`: its definition, byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolInfo {
    /// The tool's object from the `tools` array, as strict JSON.
    pub definition: Box<[u8]>,
}

impl ToolInfo {
    /// The tool's `inputSchema`, if it declared one.
    pub fn input_schema(&self) -> Option<&[u8]> {
        crate::json::get(&self.definition, "inputSchema")
    }
}

/// What the policy says about one call. It owns its rule, so a call that waits (for a person, a
/// store) keeps the rule it was judged under even if the policy is replaced meanwhile.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Let it through; `rule` is `None` when no rule matched and the default is allow.
    Allow {
        rule: Option<Arc<Rule>>,
    },
    Deny {
        rule: Arc<Rule>,
    },
    /// An allow rule whose rate limit is used up; a call would pass after `retry_after`.
    RateLimited {
        rule: Arc<Rule>,
        retry_after: Duration,
    },
    ApprovalRequired {
        rule: Arc<Rule>,
    },
    /// No rule matched and the default is deny.
    DefaultDeny,
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow { .. })
    }

    /// The deciding rule, if a rule decided.
    pub fn rule(&self) -> Option<&Arc<Rule>> {
        match self {
            Decision::Allow { rule } => rule.as_ref(),
            Decision::Deny { rule }
            | Decision::RateLimited { rule, .. }
            | Decision::ApprovalRequired { rule } => Some(rule),
            Decision::DefaultDeny => None,
        }
    }

    /// The decision's kind as refusals, logs and the audit name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Decision::Allow { .. } => "allow",
            Decision::Deny { .. } => "deny",
            Decision::RateLimited { .. } => "rate_limited",
            Decision::ApprovalRequired { .. } => "approval_required",
            Decision::DefaultDeny => "default_deny",
        }
    }
}
