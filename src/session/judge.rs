//! Where a `tools/call` is judged: the policy's [`Decision`] becomes a [`Verdict`], and the
//! session carries the verdict out.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use tracing::{debug, info, warn};

use super::refusal::{self, ApprovalRefusal};
use super::{Effect, Session, calls::Purpose};
use crate::approval::seal::STATE_PREFIX;
use crate::audit::ApprovalRecord;
use crate::config::{PinMode, PolicyMode, ViolationStyle};
use crate::json;
use crate::message::{self, RequestId};
use crate::policy::{Call, Decision, Rule};
use crate::reply;

/// A `tools/call` from the client, request or notification.
pub(super) struct Request<'a> {
    pub(super) id: Option<RequestId>,
    pub(super) params: Option<&'a [u8]>,
    pub(super) name: Option<&'a [u8]>,
    pub(super) meta: Option<&'a [u8]>,
    pub(super) line: Cow<'a, [u8]>,
}

/// What the session does with a call, given the policy's decision.
#[derive(Debug, PartialEq)]
pub(super) enum Verdict {
    /// Forward it, and count it under its rule.
    Forward(Decision),
    /// Answer as if the tool did not exist, so that hiding reveals nothing.
    HideAsUnknown(Arc<Rule>),
    /// Ask a person.
    Ask(Arc<Rule>),
    /// Ask the store (a fleet-wide limit).
    CheckStore(Arc<Rule>),
    Refuse(Decision),
}

/// An effect that owns its line, so that it outlives the buffer it was judged from.
fn owned(effect: Effect<'_>) -> Effect<'static> {
    match effect {
        Effect::Child { line, request } => Effect::Child {
            line: Cow::Owned(line.into_owned()),
            request,
        },
        Effect::Client(line) => Effect::Client(Cow::Owned(line.into_owned())),
        Effect::Wake(at) => Effect::Wake(at),
        Effect::RunApprover(job) => Effect::RunApprover(job),
        Effect::CancelApprover(job) => Effect::CancelApprover(job),
        Effect::CheckStore(job) => Effect::CheckStore(job),
    }
}

/// Logs what a shadow rule, or the rules in shadow mode, would have done with a call that goes
/// through.
fn log_shadow(tool: &str, decision: &Decision, why: &str) {
    if decision.is_allowed() {
        if let Some(rule) = decision.rule() {
            info!(tool = ?tool, decision = "shadow_allow", "{why}: {} would allow this call", rule.label());
        }
        return;
    }
    info!(
        tool = ?tool,
        decision = "shadow_deny",
        "{why}: {}; the call was forwarded",
        refusal::refusal_text(tool, decision)
    );
}

/// The verdict on a decision: a pure function, tested with a table.
pub(super) fn verdict(decision: Decision) -> Verdict {
    match decision {
        Decision::Allow { .. } => Verdict::Forward(decision),
        Decision::Deny { rule } if rule.hide => Verdict::HideAsUnknown(rule),
        Decision::ApprovalRequired { rule } => Verdict::Ask(rule),
        Decision::StoreCheck { rule } => Verdict::CheckStore(rule),
        Decision::Deny { .. }
        | Decision::RateLimited { .. }
        | Decision::DefaultDeny
        | Decision::Unjudgeable { .. } => Verdict::Refuse(decision),
    }
}

impl Session {
    pub(super) fn on_tools_call<'a>(
        &mut self,
        request: Request<'a>,
        now: Instant,
        batch: Option<u64>,
        out: &mut Vec<Effect<'a>>,
    ) {
        // Past the cap the call is not judged at all: no record says it was allowed, no limit
        // counts it.
        if let Some(id) = &request.id
            && self.over_in_flight_cap(id, batch, out)
        {
            return;
        }
        let Some(tool) = message::tool_name(request.name) else {
            match &request.id {
                Some(id) => self.answer(
                    batch,
                    reply::error(
                        Some(id),
                        reply::INVALID_PARAMS,
                        "Invalid params: tools/call needs \"params.name\" as a string",
                        None,
                    ),
                    out,
                ),
                None => warn!("dropped a tools/call notification without a tool name"),
            }
            return;
        };
        let arguments = request.params.and_then(|p| json::get(p, "arguments"));
        // The refusal's shape is worked out only for a refusal: reading `params` for a `task`
        // is not work every call should pay.
        let shape = || {
            (
                self.style_for(request.params),
                self.era.is_modern(request.meta),
            )
        };
        if let Some(line) = self.pre_refusal(request.id.as_ref(), &tool, arguments, shape) {
            if request.id.is_some() {
                self.answer(batch, line, out);
            }
            return;
        }
        let state = request
            .params
            .and_then(|p| json::get(p, "requestState"))
            .and_then(json::as_str)
            .filter(|state| state.starts_with(STATE_PREFIX));
        let call = Call {
            tool: &tool,
            arguments,
            tool_info: self.catalog.get(&tool),
        };
        let (decision, shadow) = self.policy.judge(&call, &mut self.state, now);
        if let Some(shadow) = &shadow {
            log_shadow(&tool, shadow, "a shadow rule");
        }
        if self.settings.pinning == PinMode::Log
            && let Some(what) = self.catalog.changed(&tool)
        {
            warn!(tool = ?tool, "a call to a tool whose definition changed: {what}");
        }
        if let Some(state) = state {
            self.on_approval_retry(request, &tool, arguments, &state, decision, now, batch, out);
            return;
        }
        // A refusal the rules would make but shadow mode or a shadow rule lets through.
        let mut shadowed: Option<(Option<Arc<Rule>>, String)> = shadow
            .as_ref()
            .filter(|s| !s.is_allowed())
            .map(|s| (s.rule().cloned(), refusal::refusal_text(&tool, s)));
        let verdict = match verdict(decision) {
            Verdict::Forward(decision) => Verdict::Forward(decision),
            // Shadow mode: what the rules would refuse goes through, and is logged.
            refused if self.settings.mode == PolicyMode::Shadow => {
                shadowed = Some(match &refused {
                    Verdict::Refuse(decision) => (
                        decision.rule().cloned(),
                        refusal::refusal_text(&tool, decision),
                    ),
                    Verdict::HideAsUnknown(rule)
                    | Verdict::Ask(rule)
                    | Verdict::CheckStore(rule) => (
                        Some(rule.clone()),
                        format!(
                            "{} would have refused or asked about this call",
                            rule.label()
                        ),
                    ),
                    Verdict::Forward(_) => (None, String::new()),
                });
                match &refused {
                    Verdict::Refuse(decision) => log_shadow(&tool, decision, "shadow mode"),
                    Verdict::HideAsUnknown(rule)
                    | Verdict::Ask(rule)
                    | Verdict::CheckStore(rule) => info!(
                        tool = ?tool, rule = rule.number,
                        "shadow mode: {} would have refused or asked about this call; forwarded",
                        rule.label()
                    ),
                    Verdict::Forward(_) => {}
                }
                Verdict::Forward(Decision::Allow { rule: None })
            }
            other => other,
        };
        match verdict {
            Verdict::Forward(decision) => {
                debug!(tool = ?tool, "allowed a tool call");
                match &shadowed {
                    Some((rule, text)) => self.audit(
                        request.id.as_ref(),
                        &tool,
                        "shadow_deny",
                        rule.as_ref(),
                        Some(text),
                        arguments,
                        None,
                    ),
                    None => self.audit_decision(request.id.as_ref(), &tool, &decision, arguments),
                }
                self.policy.admit(&decision, &mut self.state, now);
                if let Some(shadow) = &shadow {
                    // A shadow rate limit counts what it would have let through.
                    self.policy.admit(shadow, &mut self.state, now);
                }
                self.forward_call(request.id, request.meta, request.line, batch, out);
            }
            Verdict::HideAsUnknown(rule) => {
                info!(tool = ?tool, rule = rule.number, "refused a call to a hidden tool");
                self.audit(
                    request.id.as_ref(),
                    &tool,
                    "deny",
                    Some(&rule),
                    None,
                    arguments,
                    None,
                );
                if let Some(id) = &request.id {
                    let error = reply::error(
                        Some(id),
                        reply::INVALID_PARAMS,
                        &format!("Unknown tool: {tool}"),
                        None,
                    );
                    self.answer(batch, error, out);
                }
            }
            Verdict::Refuse(decision) => {
                self.audit_decision(request.id.as_ref(), &tool, &decision, arguments);
                self.refuse(
                    request.id.as_ref(),
                    request.params,
                    request.meta,
                    &tool,
                    &decision,
                    batch,
                    out,
                );
            }
            Verdict::CheckStore(rule) => {
                self.check_store(request, &tool, rule, batch, out);
            }
            Verdict::Ask(rule) => {
                if self.grants.covers(&tool, arguments, &rule) {
                    info!(tool = ?tool, rule = rule.number, "a session grant approves the call");
                    self.audit(
                        request.id.as_ref(),
                        &tool,
                        "granted",
                        Some(&rule),
                        None,
                        arguments,
                        None,
                    );
                    self.forward_call(request.id, request.meta, request.line, batch, out);
                    return;
                }
                let Some(id) = request.id else {
                    info!(tool = ?tool, "dropped a tools/call without an id: it needs a person's approval, which cannot be asked without an id");
                    return;
                };
                let request = Request {
                    id: Some(id),
                    ..request
                };
                self.ask(request, &tool, arguments, rule, now, batch, out);
            }
        }
    }

    /// What refuses a call before any rule is read, wherever it is judged (first, after a person
    /// approved it, after the store admitted it): the required audit log that cannot be written,
    /// and a tool whose definition changed since it was pinned. The refusal line, recorded.
    pub(super) fn pre_refusal(
        &self,
        id: Option<&RequestId>,
        tool: &str,
        arguments: Option<&[u8]>,
        shape: impl FnOnce() -> (ViolationStyle, bool),
    ) -> Option<Vec<u8>> {
        if self.audit_refusing() {
            let (style, modern) = shape();
            // The log is required and cannot be written: no decision can be recorded, so none
            // is made (fail closed).
            return Some(refusal::audit_unavailable_refusal(
                id.unwrap_or(&RequestId::Small(0)),
                tool,
                style,
                modern,
            ));
        }
        if self.settings.pinning == PinMode::Refuse
            && let Some(what) = self.catalog.changed(tool)
        {
            info!(tool = ?tool, "refused a call to a tool whose definition changed: {what}");
            let (style, modern) = shape();
            self.audit(id, tool, "tool_changed", None, Some(what), arguments, None);
            return Some(refusal::tool_changed_refusal(
                id.unwrap_or(&RequestId::Small(0)),
                tool,
                what,
                style,
                modern,
            ));
        }
        None
    }

    /// Judges a held call again from the start, as a new call: after the rules changed while it
    /// waited. Its line is owned, so what comes out owns its lines too.
    pub(super) fn rejudge(&mut self, line: Vec<u8>, now: Instant, out: &mut Vec<Effect<'_>>) {
        let copy = line.clone();
        let content = &copy[..copy.len() - 1];
        let Ok(crate::message::Message::Request {
            id,
            params,
            name,
            meta,
            ..
        }) = message::classify(content)
        else {
            warn!("a held call could not be read again; dropped");
            return;
        };
        let request = Request {
            id: Some(id),
            params,
            name,
            meta,
            line: Cow::Owned(line),
        };
        let mut effects = Vec::new();
        self.on_tools_call(request, now, None, &mut effects);
        let effects: Vec<Effect<'static>> = effects.into_iter().map(owned).collect();
        out.extend(effects);
    }

    /// Forwards a judged call: a request enters the table of requests in flight.
    pub(super) fn forward_call<'a>(
        &mut self,
        id: Option<RequestId>,
        meta: Option<&[u8]>,
        line: Cow<'a, [u8]>,
        batch: Option<u64>,
        out: &mut Vec<Effect<'a>>,
    ) {
        match id {
            Some(id) => self.forward_request(id, Purpose::Other, meta, line, batch, out),
            None => self.forward(line, None, out),
        }
    }

    /// How a refusal for this call is shaped: a task-augmented call expects a task, not a tool
    /// result, so a JSON-RPC error is the only refusal of the right shape.
    pub(super) fn style_for(&self, params: Option<&[u8]>) -> ViolationStyle {
        if params.and_then(|p| json::get(p, "task")).is_some() {
            ViolationStyle::JsonRpcError
        } else {
            self.settings.violation
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn refuse(
        &mut self,
        id: Option<&RequestId>,
        params: Option<&[u8]>,
        meta: Option<&[u8]>,
        tool: &str,
        decision: &Decision,
        batch: Option<u64>,
        out: &mut Vec<Effect<'_>>,
    ) {
        let text = refusal::refusal_text(tool, decision);
        let Some(id) = id else {
            info!(tool = ?tool, "dropped a tools/call without an id: {text}");
            return;
        };
        info!(tool = ?tool, %id, "{text}");
        let style = self.style_for(params);
        let modern = self.era.is_modern(meta);
        let line = refusal::policy_refusal(id, tool, decision, style, modern);
        self.answer(batch, line, out);
    }

    /// Refuses a call whose approval did not happen.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn refuse_approval(
        &mut self,
        id: &RequestId,
        tool: &str,
        rule: &Arc<Rule>,
        why: &ApprovalRefusal,
        style: ViolationStyle,
        modern: bool,
        arguments: Option<&[u8]>,
        code: Option<&str>,
    ) -> Vec<u8> {
        info!(tool = ?tool, %id, decision = why.kind(), "{}", refusal::approval_text(tool, rule, why));
        let (channel, outcome, note) = match why {
            ApprovalRefusal::Denied { channel, note } => (Some(*channel), "deny", note.clone()),
            ApprovalRefusal::Unclear { channel, why } => {
                (Some(*channel), "unclear", Some(why.clone()))
            }
            ApprovalRefusal::TimedOut { .. } => (None, "timeout", None),
            ApprovalRefusal::Unavailable => (None, "unavailable", None),
            ApprovalRefusal::CannotAsk { why } => (None, "unavailable", Some(why.clone())),
        };
        let approval = ApprovalRecord {
            channel: channel.map(str::to_owned),
            outcome: outcome.to_owned(),
            note,
            by: None,
            code: code.map(str::to_owned),
        };
        self.audit(
            Some(id),
            tool,
            why.kind(),
            Some(rule),
            None,
            arguments,
            Some(approval),
        );
        refusal::approval_refusal(id, tool, rule, why, style, modern)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Action;
    use crate::policy::RuleKey;

    fn rule(action: Action, hide: bool) -> Arc<Rule> {
        Arc::new(Rule {
            number: 1,
            name: None,
            pattern: "t".into(),
            action,
            reason: None,
            rate_limit: None,
            hide,
            session_grant: Default::default(),
            when: None,
            class: None,
            shadow: false,
            key: RuleKey("tool:t".into()),
        })
    }

    #[test]
    fn each_decision_has_one_verdict() {
        let allow = Decision::Allow { rule: None };
        assert_eq!(verdict(allow.clone()), Verdict::Forward(allow));
        let deny = Decision::Deny {
            rule: rule(Action::Deny, false),
        };
        assert_eq!(verdict(deny.clone()), Verdict::Refuse(deny));
        let hidden = rule(Action::Deny, true);
        assert_eq!(
            verdict(Decision::Deny {
                rule: hidden.clone()
            }),
            Verdict::HideAsUnknown(hidden)
        );
        let ask = rule(Action::RequireApproval, false);
        assert_eq!(
            verdict(Decision::ApprovalRequired { rule: ask.clone() }),
            Verdict::Ask(ask)
        );
        assert_eq!(
            verdict(Decision::DefaultDeny),
            Verdict::Refuse(Decision::DefaultDeny)
        );
    }
}
