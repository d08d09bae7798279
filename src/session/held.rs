//! Calls held for a person's approval: asking on every channel at once, the first clear answer
//! deciding, time-outs, withdrawal, progress while waiting, and the grants an approval leaves.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tracing::info;

use super::calls::{Call, Purpose, Stage};
use super::judge::Request;
use super::outstanding::Outstanding;
use super::refusal::ApprovalRefusal;
use super::{Effect, Session};
use crate::approval::digest::arguments_digest;
use crate::approval::{self, Answer, ApproverJob, Channel, Question};
use crate::audit::ApprovalRecord;
use crate::config::{SessionGrant, ViolationStyle};
use crate::json;
use crate::message::{self, RequestId};
use crate::policy::{Call as PolicyCall, Decision, Rule};
use crate::reply;

/// How often a held call with a progress token hears that it is still waiting.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// A `tools/call` waiting for a person.
#[derive(Debug)]
pub(super) struct Held {
    /// The exact line that was shown, forwarded as it is if approved.
    line: Vec<u8>,
    tool: String,
    /// The rule the call was held under; it stays with the call across a reload.
    rule: Arc<Rule>,
    deadline: Instant,
    timeout: Duration,
    /// The proxy's `elicitation/create` to the client, while unanswered.
    elicitation: Option<u64>,
    /// The approval command's run, while it runs.
    job: Option<u64>,
    style: ViolationStyle,
    modern: bool,
    /// The next progress notification, when the call has a progress token.
    next_progress: Option<Instant>,
    progress_sent: u32,
    /// The call's arguments, for the audit log's digest: where they are in `line`, so that a
    /// held call costs its line once.
    arguments: Arguments,
    /// The approval code the person is shown.
    code: String,
}

/// How many calls of one session may wait for a person at once. Past it a call that needs
/// approval is refused at once, saying so: a client that sends calls needing approval and
/// never answers holds at most this many lines.
pub const MAX_HELD_CALLS: usize = 256;

/// Where a held call's arguments are.
#[derive(Debug)]
enum Arguments {
    None,
    /// A range of the held line (always, for a line the pump read).
    InLine(std::ops::Range<usize>),
    Owned(Vec<u8>),
}

impl Arguments {
    fn of(line: &[u8], arguments: Option<&[u8]>) -> Arguments {
        let Some(part) = arguments else {
            return Arguments::None;
        };
        let start = (part.as_ptr() as usize).wrapping_sub(line.as_ptr() as usize);
        match start.checked_add(part.len()) {
            Some(end) if start <= line.len() && end <= line.len() => Arguments::InLine(start..end),
            _ => Arguments::Owned(part.to_vec()),
        }
    }
}

impl Held {
    fn arguments(&self) -> Option<&[u8]> {
        match &self.arguments {
            Arguments::None => None,
            Arguments::InLine(range) => self.line.get(range.clone()),
            Arguments::Owned(bytes) => Some(bytes),
        }
    }
}

/// What this session's approvals allow without asking again. In memory only: a grant never
/// outlives the session.
#[derive(Debug, Default)]
pub(super) struct Grants {
    /// Exact calls: the tool and the digest of its arguments.
    calls: HashSet<(String, [u8; 32])>,
    /// Whole tools, for rules with `session_grant = "tool"`: the rule's identity and the tool,
    /// so that a grant under one rule covers nothing another rule asks about.
    tools: HashSet<(crate::policy::RuleKey, String)>,
}

impl Grants {
    pub(super) fn covers(&self, tool: &str, arguments: Option<&[u8]>, rule: &Rule) -> bool {
        if rule.session_grant == SessionGrant::Tool
            && self.tools.contains(&(rule.key.clone(), tool.to_owned()))
        {
            return true;
        }
        !self.calls.is_empty()
            && self
                .calls
                .contains(&(tool.to_owned(), arguments_digest(arguments)))
    }

    fn grant(&mut self, tool: &str, arguments: Option<&[u8]>, rule: &Rule) {
        match rule.session_grant {
            SessionGrant::Tool => self.tools.insert((rule.key.clone(), tool.to_owned())),
            SessionGrant::Call => self
                .calls
                .insert((tool.to_owned(), arguments_digest(arguments))),
        };
    }
}

impl Session {
    /// Asks a person about a call the rules want approved, on every channel available here.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn ask<'a>(
        &mut self,
        request: Request<'a>,
        tool: &str,
        arguments: Option<&[u8]>,
        rule: Arc<Rule>,
        now: Instant,
        batch: Option<u64>,
        out: &mut Vec<Effect<'a>>,
    ) {
        let id = request.id.clone().expect("only requests are asked about");
        let caps = self.era.caps_for(request.meta);
        let modern = self.era.is_modern(request.meta);
        let style = self.style_for(request.params);
        let settings = &self.settings.approval;
        let elicit = caps.elicitation_form && settings.allows(Channel::Elicitation);
        // What a person is shown is what runs: arguments no view can show as sent are refused,
        // never shown as something else.
        let unshowable = crate::approval::digest::faithful_value(arguments).err();
        // Without randomness from the OS there is no key to seal a state with, and the approval
        // codes people quote would be predictable: nobody is asked, on any channel.
        let unsealable = self.sealer.as_ref().err().map(|why| {
            format!(
                "its state cannot be sealed because the operating system gave no randomness for \
                 the key ({why})"
            )
        });
        let too_many = (self.calls.awaiting_approval() >= MAX_HELD_CALLS).then(|| {
            format!(
                "{MAX_HELD_CALLS} calls are already waiting for a person in this session (the cap \
                 on held calls); answer those first"
            )
        });
        if let Some(why) = too_many.or(unshowable).or(unsealable) {
            let why = ApprovalRefusal::CannotAsk { why };
            let line = self.refuse_approval(&id, tool, &rule, &why, style, modern, arguments, None);
            self.answer(batch, line, out);
            return;
        }
        if modern && elicit {
            self.input_required(&id, tool, arguments, &rule, now, batch, out);
            return;
        }
        let command = settings
            .command
            .clone()
            .filter(|_| settings.allows(Channel::Command));
        if !elicit && command.is_none() {
            let line = self.refuse_approval(
                &id,
                tool,
                &rule,
                &ApprovalRefusal::Unavailable,
                style,
                modern,
                arguments,
                None,
            );
            self.answer(batch, line, out);
            return;
        }
        let timeout = settings.timeout;
        let question = self.question(tool, arguments, &rule);
        info!(
            tool = ?tool, %id, rule = rule.number, code = %question.code,
            "holding a tool call for a person's approval"
        );
        let elicitation = elicit.then(|| {
            let asked = self
                .issued
                .issue(Outstanding::Approval { call: id.clone() });
            let with_default = self.era.server_version() != Some("2025-06-18");
            let params = question.elicitation_params(with_default);
            out.push(Effect::Client(Cow::Owned(reply::request(
                asked,
                "elicitation/create",
                &params,
            ))));
            asked
        });
        let job = command.map(|command| {
            let job = self.next_job();
            out.push(Effect::RunApprover(ApproverJob {
                id: job,
                command,
                input: question.command_input(&self.settings.session_id, timeout),
                timeout,
            }));
            job
        });
        let progress_token = message::progress_token(request.meta);
        let deadline = now + timeout;
        let next_progress = progress_token.as_ref().map(|_| now + PROGRESS_EVERY);
        if let Some(token) = &progress_token {
            out.push(progress(
                token,
                0,
                "waiting for a person to approve this tool call",
            ));
        }
        out.push(Effect::Wake(deadline));
        if let Some(at) = next_progress.filter(|&at| at < deadline) {
            out.push(Effect::Wake(at));
        }
        let arguments = Arguments::of(&request.line, arguments);
        let held = Held {
            line: request.line.into_owned(),
            tool: tool.to_owned(),
            rule,
            deadline,
            timeout,
            elicitation,
            job,
            style,
            modern,
            next_progress,
            progress_sent: 1,
            arguments,
            code: question.code.clone(),
        };
        self.enter(
            id,
            Call {
                stage: Stage::AwaitingApproval(Box::new(held)),
                progress_token,
                batch,
            },
        );
    }

    pub(super) fn question(
        &mut self,
        tool: &str,
        arguments: Option<&[u8]>,
        rule: &Arc<Rule>,
    ) -> Question {
        Question {
            tool: tool.to_owned(),
            arguments: arguments.map(<[u8]>::to_vec),
            rule: rule.clone(),
            grant: rule.session_grant,
            declared: self.catalog.get(tool).and_then(|info| {
                let properties = crate::json::get(info.input_schema()?, "properties")?;
                Some(
                    crate::json::members(properties)
                        .map(|(k, _)| k.into_owned())
                        .collect(),
                )
            }),
            server: self.settings.server.clone(),
            code: approval::approval_code(self.next_job()),
        }
    }

    pub(super) fn next_job(&mut self) -> u64 {
        self.next_job = self.next_job.wrapping_add(1);
        self.next_job
    }

    /// The client answered the proxy's `elicitation/create` about `call`; `result` is `None`
    /// for an error answer.
    pub(super) fn on_elicitation_answer<'a>(
        &mut self,
        call: &RequestId,
        result: Option<&[u8]>,
        now: Instant,
        out: &mut Vec<Effect<'a>>,
    ) {
        if let Some(held) = self.held_mut(call) {
            // Answered: nothing to withdraw on this channel.
            held.elicitation = None;
        }
        let answer = match result {
            Some(result) => approval::read_elicit_result(result),
            None => Answer::unclear("the client answered the approval question with an error"),
        };
        self.resolve(call, answer, Channel::Elicitation, now, out);
    }

    /// The approval command of `job` finished with `answer`.
    pub fn on_approver_done(
        &mut self,
        job: u64,
        answer: Answer,
        now: Instant,
        out: &mut Vec<Effect<'static>>,
    ) {
        let call = self
            .calls
            .held_ids()
            .into_iter()
            .find(|id| self.held(id).is_some_and(|held| held.job == Some(job)));
        let Some(call) = call else {
            // A 2026-07-28 question: the answer waits for the retry, and decides if it came
            // first.
            if let Some(ask) = self.modern_asks.values_mut().find(|a| a.job == Some(job)) {
                ask.job = None;
                ask.answer = Some(answer);
                return;
            }
            info!(
                job,
                "an approval command finished after its question was settled; ignored"
            );
            return;
        };
        if let Some(held) = self.held_mut(&call) {
            held.job = None;
        }
        self.resolve(&call, answer, Channel::Command, now, out);
    }

    /// Time passed: held calls past their deadline are refused, and the others hear progress.
    pub fn on_tick<'a>(&mut self, now: Instant, out: &mut Vec<Effect<'a>>) {
        // 2026-07-28 questions whose retry never came: their commands stop.
        self.modern_asks.retain(|_, ask| {
            if now < ask.deadline {
                return true;
            }
            if let Some(job) = ask.job {
                out.push(Effect::CancelApprover(job));
            }
            false
        });
        for id in self.calls.held_ids() {
            let (deadline, next_progress) = match self.held(&id) {
                Some(held) => (held.deadline, held.next_progress),
                None => continue,
            };
            if now >= deadline {
                let Some((call, held)) = self.take_held(&id) else {
                    continue;
                };
                self.withdraw_channels(&held, "the approval timed out", out);
                let why = ApprovalRefusal::TimedOut {
                    after: held.timeout,
                };
                let line = self.refuse_approval(
                    &id,
                    &held.tool,
                    &held.rule,
                    &why,
                    held.style,
                    held.modern,
                    held.arguments(),
                    Some(&held.code),
                );
                self.deliver(&call, Cow::Owned(line), out);
                continue;
            }
            if let Some(at) = next_progress.filter(|&at| now >= at) {
                let token = self.calls.get(&id).and_then(|c| c.progress_token.clone());
                let held = self.held_mut(&id).expect("held above");
                let n = held.progress_sent;
                held.progress_sent += 1;
                let next = at.max(now) + PROGRESS_EVERY;
                held.next_progress = Some(next);
                if let Some(token) = token {
                    out.push(progress(
                        &token,
                        n,
                        "still waiting for a person to approve this tool call",
                    ));
                }
                if next < deadline {
                    out.push(Effect::Wake(next));
                }
            }
        }
    }

    /// The client cancelled a held call: the question is withdrawn and nothing is forwarded.
    pub(super) fn withdraw<'a>(&mut self, call: &RequestId, out: &mut Vec<Effect<'a>>) {
        if let Some((entry, held)) = self.take_held(call) {
            info!(%call, tool = ?held.tool, "the client cancelled a call waiting for approval");
            let approval = ApprovalRecord {
                channel: None,
                outcome: "withdrawn".to_owned(),
                note: None,
                by: None,
                code: Some(held.code.clone()),
            };
            self.audit(
                Some(call),
                &held.tool,
                "approval_withdrawn",
                Some(&held.rule),
                Some("the client cancelled the call"),
                held.arguments(),
                Some(approval),
            );
            self.withdraw_channels(&held, "the client cancelled the call", out);
            // A cancelled request gets no answer, but a batch still closes without it.
            if let Some(batch) = entry.batch
                && let Some(line) = self.batches.answered_without(batch)
            {
                out.push(Effect::Client(Cow::Owned(line)));
            }
        }
    }

    /// Settles a held call with the first clear answer from `channel`.
    fn resolve<'a>(
        &mut self,
        id: &RequestId,
        answer: Answer,
        channel: Channel,
        now: Instant,
        out: &mut Vec<Effect<'a>>,
    ) {
        let Some((call, held)) = self.take_held(id) else {
            info!(%id, "an approval answer came for a call no longer waiting; ignored");
            return;
        };
        self.withdraw_channels(&held, "another channel answered first", out);
        if !answer.is_approval() {
            let why = ApprovalRefusal::from_answer(channel.as_str(), answer);
            let line = self.refuse_approval(
                id,
                &held.tool,
                &held.rule,
                &why,
                held.style,
                held.modern,
                held.arguments(),
                Some(&held.code),
            );
            self.deliver(&call, Cow::Owned(line), out);
            return;
        }
        // Judged again under the rules as they are now: a rule that denies it now wins.
        let content = &held.line[..held.line.len() - 1];
        let (arguments, meta) = match message::classify(content) {
            Ok(message::Message::Request { params, meta, .. }) => {
                (params.and_then(|p| json::get(p, "arguments")), meta)
            }
            _ => (None, None),
        };
        let policy_call = PolicyCall {
            tool: &held.tool,
            arguments,
            tool_info: self.catalog.get(&held.tool),
        };
        let decision = self.policy.evaluate(&policy_call, &mut self.state, now);
        if !matches!(decision, Decision::ApprovalRequired { .. }) && call.batch.is_none() {
            // The rules changed while the person decided and no longer ask: the call is judged
            // again from the start, as a new call would be (allowed, refused, hidden, or under
            // a fleet-wide limit).
            info!(tool = ?held.tool, %id, "the rules changed while the call waited for approval; judging it again");
            self.rejudge(held.line, now, out);
            return;
        }
        if let Some(line) = self.pre_refusal(Some(id), &held.tool, arguments, || {
            (held.style, held.modern)
        }) {
            self.deliver(&call, Cow::Owned(line), out);
            return;
        }
        match &decision {
            Decision::ApprovalRequired { .. } | Decision::Allow { .. } => {}
            _ => {
                self.audit_decision(Some(id), &held.tool, &decision, arguments);
                let text = super::refusal::refusal_text(&held.tool, &decision);
                info!(tool = ?held.tool, %id, "an approved call is refused by the rules as they are now: {text}");
                let line = super::refusal::policy_refusal(
                    id,
                    &held.tool,
                    &decision,
                    held.style,
                    held.modern,
                );
                self.deliver(&call, Cow::Owned(line), out);
                return;
            }
        }
        if answer == Answer::ApproveForSession {
            self.grants.grant(&held.tool, arguments, &held.rule);
        }
        info!(tool = ?held.tool, %id, channel = channel.as_str(), "a person approved the call; forwarding it");
        let (decision_name, outcome) = if answer == Answer::ApproveForSession {
            ("approved_for_session", "approve_for_session")
        } else {
            ("approved", "approve_once")
        };
        let approval = ApprovalRecord {
            channel: Some(channel.as_str().to_owned()),
            outcome: outcome.to_owned(),
            note: None,
            by: match channel {
                Channel::Command => self
                    .settings
                    .approval
                    .command
                    .as_ref()
                    .and_then(|c| c.first().cloned()),
                Channel::Elicitation => None,
            },
            code: Some(held.code.clone()),
        };
        self.audit(
            Some(id),
            &held.tool,
            decision_name,
            Some(&held.rule),
            None,
            arguments,
            Some(approval),
        );
        self.policy.admit(&decision, &mut self.state, now);
        let _ = meta;
        let progress_token = call.progress_token;
        if self.child_gone {
            let line = super::child_gone_error(id);
            let gone = Call {
                stage: Stage::Forwarded(Purpose::Other),
                progress_token: None,
                batch: call.batch,
            };
            self.deliver(&gone, Cow::Owned(line), out);
            return;
        }
        let batch = call.batch;
        // Still counted by its batch, if any: it entered the table when it was held.
        self.calls.insert(
            id.clone(),
            Call {
                stage: Stage::Forwarded(Purpose::Other),
                progress_token,
                batch,
            },
        );
        out.push(Effect::Child {
            line: Cow::Owned(held.line),
            request: Some(id.clone()),
        });
    }

    /// Withdraws the questions still open about `held`.
    fn withdraw_channels<'a>(&mut self, held: &Held, reason: &str, out: &mut Vec<Effect<'a>>) {
        if let Some(asked) = held.elicitation {
            self.issued.forget(asked);
            out.push(Effect::Client(Cow::Owned(reply::notification(
                "notifications/cancelled",
                &json!({ "requestId": asked, "reason": reason }),
            ))));
        }
        if let Some(job) = held.job {
            out.push(Effect::CancelApprover(job));
        }
    }

    fn held(&self, id: &RequestId) -> Option<&Held> {
        match &self.calls.get(id)?.stage {
            Stage::AwaitingApproval(held) => Some(held),
            Stage::Forwarded(_) | Stage::AwaitingStore(_) => None,
        }
    }

    fn held_mut(&mut self, id: &RequestId) -> Option<&mut Held> {
        match &mut self.calls.get_mut(id)?.stage {
            Stage::AwaitingApproval(held) => Some(held),
            Stage::Forwarded(_) | Stage::AwaitingStore(_) => None,
        }
    }

    /// Takes a held call out of the table.
    fn take_held(&mut self, id: &RequestId) -> Option<(Call, Held)> {
        self.held(id)?;
        let mut call = self.calls.remove(id)?;
        let stage = std::mem::replace(&mut call.stage, Stage::Forwarded(Purpose::Other));
        match stage {
            Stage::AwaitingApproval(held) => Some((call, *held)),
            Stage::Forwarded(_) | Stage::AwaitingStore(_) => None,
        }
    }

    /// Ends every held call with an error carrying `message`, withdrawing its questions.
    pub(super) fn abandon_held(&mut self, message: &str, out: &mut Vec<Effect<'static>>) {
        for id in self.calls.held_ids() {
            if let Some((call, held)) = self.take_held(&id) {
                self.withdraw_channels(&held, message, out);
                let error = reply::error(Some(&id), reply::INTERNAL_ERROR, message, None);
                self.deliver(&call, Cow::Owned(error), out);
            }
        }
    }

    /// Records a session grant for an approval given through a 2026-07-28 retry.
    pub(super) fn grant(&mut self, tool: &str, arguments: Option<&[u8]>, rule: &Rule) {
        self.grants.grant(tool, arguments, rule);
    }
}

/// A progress notification for a held call.
fn progress(token: &RequestId, n: u32, message: &str) -> Effect<'static> {
    let token: serde_json::Value =
        serde_json::from_slice(&token.to_json()).unwrap_or(serde_json::Value::Null);
    Effect::Client(Cow::Owned(reply::notification(
        "notifications/progress",
        &json!({ "progressToken": token, "progress": n, "message": message }),
    )))
}
