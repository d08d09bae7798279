//! What the session writes to the audit log: one record per decision about a `tools/call`.

use std::time::SystemTime;

use super::Session;
use std::sync::Arc;

use crate::audit::{ApprovalRecord, Pending};
use crate::message::RequestId;
use crate::policy::{Decision, Rule};

impl Session {
    /// Records a decision, if there is an audit log. Costs nothing without one, and with one
    /// little more than copying the tool's name and the arguments: the writer thread does the
    /// rest.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn audit(
        &self,
        id: Option<&RequestId>,
        tool: &str,
        decision: &'static str,
        rule: Option<&Arc<Rule>>,
        reason: Option<&str>,
        arguments: Option<&[u8]>,
        approval: Option<ApprovalRecord>,
    ) {
        let Some(audit) = &self.settings.audit else {
            return;
        };
        audit.record(Pending {
            at: SystemTime::now(),
            session: self.session_tag.clone(),
            id: id.cloned(),
            tool: tool.into(),
            decision,
            rule: rule.cloned(),
            reason: reason.map(str::to_owned),
            arguments: arguments.map(<[u8]>::to_vec),
            approval,
        });
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
            decision.rule(),
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
