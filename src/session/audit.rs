//! What the session writes to the audit log: one record per decision about a `tools/call`.

use std::time::SystemTime;

use super::Session;
use crate::audit::{ApprovalRecord, Record};
use crate::message::RequestId;
use crate::policy::{Decision, Rule};

/// How the audit log names a rule: its name, else its number and pattern.
pub(super) fn rule_name(rule: &Rule) -> String {
    match &rule.name {
        Some(name) => name.clone(),
        None => format!("rule {} ({})", rule.number, rule.pattern),
    }
}

impl Session {
    /// Records a decision, if there is an audit log. Costs nothing without one.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn audit(
        &self,
        id: Option<&RequestId>,
        tool: &str,
        decision: &str,
        rule: Option<&Rule>,
        reason: Option<&str>,
        arguments: Option<&[u8]>,
        approval: Option<ApprovalRecord>,
    ) {
        let Some(audit) = &self.settings.audit else {
            return;
        };
        audit.record(
            Record {
                time: String::new(),
                session: self.settings.session_id.clone(),
                id: id.map(|id| String::from_utf8_lossy(&id.to_json()).into_owned()),
                tool: tool.to_owned(),
                decision: decision.to_owned(),
                rule: rule.map(rule_name),
                reason: reason
                    .map(str::to_owned)
                    .or_else(|| rule.and_then(|r| r.reason.clone())),
                args_sha256: String::new(),
                arguments: None,
                approval,
            },
            SystemTime::now(),
            arguments,
        );
    }

    /// Records a policy decision.
    pub(super) fn audit_decision(
        &self,
        id: Option<&RequestId>,
        tool: &str,
        decision: &Decision,
        arguments: Option<&[u8]>,
    ) {
        if self.settings.audit.is_none() {
            return;
        }
        let reason = match decision {
            Decision::Unjudgeable { reason, .. } => Some(reason.as_str()),
            _ => None,
        };
        self.audit(
            id,
            tool,
            decision.kind(),
            decision.rule().map(|r| &**r),
            reason,
            arguments,
            None,
        );
    }

    /// Whether calls must be refused because the required audit log cannot be written.
    pub(super) fn audit_refusing(&self) -> bool {
        self.settings.audit.as_ref().is_some_and(|a| a.refusing())
    }
}
