//! What the policy says about one call, and what it looks at to say it.

use std::sync::Arc;
use std::time::Duration;

use super::rule::Rule;
use crate::config::Hint;

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

    /// An annotation hint: what the tool says, else the specification's default (a tool that
    /// says nothing is taken to be a writing, destructive, non-idempotent, open-world tool).
    /// `destructiveHint` and `idempotentHint` mean something only for a tool that is not
    /// read-only, so a read-only tool is neither.
    pub fn hint(info: Option<&ToolInfo>, hint: Hint) -> bool {
        let read = |key: &str| {
            info.and_then(|i| crate::json::get(&i.definition, "annotations"))
                .and_then(|a| crate::json::get(a, key))
                .and_then(|v| match v.trim_ascii() {
                    b"true" => Some(true),
                    b"false" => Some(false),
                    _ => None,
                })
        };
        let read_only = read("readOnlyHint").unwrap_or(false);
        match hint {
            Hint::ReadOnly => read_only,
            Hint::Destructive => !read_only && read("destructiveHint").unwrap_or(true),
            Hint::Idempotent => !read_only && read("idempotentHint").unwrap_or(false),
            Hint::OpenWorld => read("openWorldHint").unwrap_or(true),
        }
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
    /// A condition of `rule` reads a value the proxy cannot judge as the server would read it.
    Unjudgeable {
        rule: Arc<Rule>,
        reason: String,
    },
    /// An allow rule whose rate limit the fleet shares: allowed if the store admits the call.
    StoreCheck {
        rule: Arc<Rule>,
    },
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
            | Decision::ApprovalRequired { rule }
            | Decision::Unjudgeable { rule, .. }
            | Decision::StoreCheck { rule } => Some(rule),
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
            Decision::Unjudgeable { .. } => "unjudgeable_arguments",
            Decision::StoreCheck { .. } => "store_check",
        }
    }
}
