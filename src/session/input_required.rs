//! Approval in 2026-07-28: an `InputRequiredResult` now, and the client's retry checked later.
//!
//! Nothing is held: the first `tools/call` is answered with the question and a sealed
//! `requestState` (see `approval::seal`). The retry comes as a new request carrying the
//! person's answer in `inputResponses` and the state echoed. It is judged again under the rules
//! as they are then; only a rule that still requires approval reads the answer, and only a
//! state whose seal matches this tool and these arguments, unexpired and unused, lets it count.
//! The proxy's own members are taken out of `params` before the call is forwarded.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use tracing::info;

use super::judge::{Request, Verdict, verdict};
use super::refusal::ApprovalRefusal;
use super::{Effect, Session};
use crate::approval::digest::arguments_digest;
use crate::approval::seal::Broken;
use crate::approval::{self, Answer, ApproverJob, Channel, INPUT_KEY};
use crate::json;
use crate::message::{self, RequestId};
use crate::policy::{Decision, Rule};
use crate::reply;

/// The approval command's run about a 2026-07-28 question, by the question's nonce: the
/// question itself went to the client with the result, and the answer comes with the retry.
#[derive(Debug)]
pub(super) struct ModernAsk {
    /// The command's run, while it runs.
    pub(super) job: Option<u64>,
    /// What the command answered, if it answered before the retry came.
    pub(super) answer: Option<Answer>,
    pub(super) deadline: Instant,
    pub(super) code: String,
}

impl Session {
    /// Answers `id` with the approval question as an `InputRequiredResult`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn input_required(
        &mut self,
        id: &RequestId,
        tool: &str,
        arguments: Option<&[u8]>,
        rule: &Arc<Rule>,
        now: Instant,
        batch: Option<u64>,
        out: &mut Vec<Effect<'_>>,
    ) {
        let question = self.question(tool, arguments, rule);
        let digest = arguments_digest(arguments);
        let timeout = self.settings.approval.timeout;
        // `ask` refuses before coming here when there is no sealer; should a call come anyway,
        // it is refused, never left unanswered.
        let Ok(sealer) = self.sealer.as_mut() else {
            let why = ApprovalRefusal::CannotAsk {
                why: "there is no key to seal the question's state with".to_owned(),
            };
            let style = self.style_for(None);
            let line = self.refuse_approval(id, tool, rule, &why, style, true, arguments, None);
            self.answer(batch, line, out);
            return;
        };
        let (state, nonce) = sealer.seal_numbered(tool, &digest, now, timeout);
        // Every channel is asked at once: the approval command runs while the client shows its
        // form, and whichever answers first decides when the retry comes.
        let settings = &self.settings.approval;
        if let Some(command) = settings
            .command
            .clone()
            .filter(|_| settings.allows(Channel::Command))
        {
            let job = self.next_job();
            out.push(Effect::RunApprover(ApproverJob {
                id: job,
                command,
                input: question.command_input(&self.settings.session_id, timeout),
                timeout,
            }));
            out.push(Effect::Wake(now + timeout));
            self.modern_asks.insert(
                nonce,
                ModernAsk {
                    job: Some(job),
                    answer: None,
                    deadline: now + timeout,
                    code: question.code.clone(),
                },
            );
        }
        info!(
            tool = ?tool, %id, rule = rule.number, code = %question.code,
            "asking for a person's approval (2026-07-28 input request)"
        );
        let result = json!({
            "resultType": "input_required",
            "inputRequests": {
                INPUT_KEY: {
                    "method": "elicitation/create",
                    "params": question.elicitation_params(true),
                },
            },
            "requestState": state,
        });
        let approval = crate::audit::ApprovalRecord {
            channel: Some("elicitation".to_owned()),
            outcome: "asked".to_owned(),
            note: None,
            by: None,
            code: Some(question.code.clone()),
        };
        self.audit(
            Some(id),
            tool,
            "approval_requested",
            Some(rule),
            None,
            arguments,
            Some(approval),
        );
        self.answer(batch, reply::response(Some(id), "result", &result), out);
    }

    /// A `tools/call` carrying a `requestState` of the proxy's own.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_approval_retry<'a>(
        &mut self,
        request: Request<'a>,
        tool: &str,
        arguments: Option<&[u8]>,
        state: &str,
        decision: Decision,
        now: Instant,
        batch: Option<u64>,
        out: &mut Vec<Effect<'a>>,
    ) {
        let Some(id) = request.id.clone() else {
            info!(tool = ?tool, "dropped a tools/call notification carrying an approval state");
            return;
        };
        let style = self.style_for(request.params);
        let modern = self.era.is_modern(request.meta);
        let params = request.params.expect("a state was read from params");
        let digest = arguments_digest(arguments);
        let opened = match self.sealer.as_mut() {
            Ok(sealer) => sealer.open_numbered(state, tool, &digest, now),
            // Nothing was sealed without a key; a state that claims otherwise is not ours.
            Err(_) => Err(crate::approval::seal::Broken::Forged),
        };
        // The approval command asked about the same question, if one runs: its answer, if it
        // came first, decides; otherwise it is withdrawn, now, whatever the rules now say of
        // the call (a call they refuse at the retry must not leave its command running until
        // the deadline).
        let ask = opened
            .as_ref()
            .ok()
            .and_then(|nonce| self.modern_asks.remove(nonce));
        let code = ask.as_ref().map(|a| a.code.clone());
        let command_answer = match ask {
            Some(ModernAsk {
                answer: Some(answer),
                ..
            }) => Some(answer),
            Some(ModernAsk { job: Some(job), .. }) => {
                out.push(Effect::CancelApprover(job));
                None
            }
            _ => None,
        };
        let rule = match verdict(decision) {
            Verdict::Ask(rule) => rule,
            Verdict::Forward(decision) => {
                // The rules no longer ask: the call goes through as any allowed call does.
                self.audit_decision(Some(&id), tool, &decision, arguments);
                self.policy.admit(&decision, &mut self.state, now);
                let line = strip_proxy_members(&request.line, params);
                self.forward_call(Some(id), request.meta, Cow::Owned(line), batch, out);
                return;
            }
            Verdict::CheckStore(rule) => {
                // The rules no longer ask, but a fleet-wide limit decides: the store is asked
                // about the call without the proxy's members.
                let line = strip_proxy_members(&request.line, params);
                let request = Request {
                    id: Some(id),
                    line: Cow::Owned(line),
                    ..request
                };
                self.check_store(request, tool, rule, batch, out);
                return;
            }
            Verdict::HideAsUnknown(_) => {
                let error = reply::error(
                    Some(&id),
                    reply::INVALID_PARAMS,
                    &format!("Unknown tool: {tool}"),
                    None,
                );
                self.answer(batch, error, out);
                return;
            }
            Verdict::Refuse(decision) => {
                self.audit_decision(Some(&id), tool, &decision, arguments);
                self.refuse(
                    Some(&id),
                    request.params,
                    request.meta,
                    tool,
                    &decision,
                    batch,
                    out,
                );
                return;
            }
        };
        if let Err(broken) = opened {
            let why = match broken {
                Broken::Expired => ApprovalRefusal::TimedOut {
                    after: self.settings.approval.timeout,
                },
                _ => ApprovalRefusal::Unclear {
                    channel: "elicitation",
                    why: broken.describe().to_owned(),
                },
            };
            let line = self.refuse_approval(&id, tool, &rule, &why, style, modern, arguments, None);
            self.answer(batch, line, out);
            return;
        }
        let (answer, channel) = match command_answer {
            Some(answer) => (answer, "command"),
            None => (
                json::get(params, "inputResponses")
                    .and_then(|responses| json::get(responses, INPUT_KEY))
                    .map(approval::read_elicit_result)
                    .unwrap_or_else(|| {
                        Answer::unclear("the retry carried no answer to the approval question")
                    }),
                "elicitation",
            ),
        };
        match answer {
            refused @ (Answer::Deny { .. } | Answer::Unclear { .. }) => {
                let why = ApprovalRefusal::from_answer(channel, refused);
                let line = self.refuse_approval(
                    &id,
                    tool,
                    &rule,
                    &why,
                    style,
                    modern,
                    arguments,
                    code.as_deref(),
                );
                self.answer(batch, line, out);
            }
            approved => {
                if approved == Answer::ApproveForSession {
                    self.grant(tool, arguments, &rule);
                }
                info!(tool = ?tool, %id, "a person approved the call; forwarding it");
                let (decision, outcome) = if approved == Answer::ApproveForSession {
                    ("approved_for_session", "approve_for_session")
                } else {
                    ("approved", "approve_once")
                };
                let record = crate::audit::ApprovalRecord {
                    channel: Some(channel.to_owned()),
                    outcome: outcome.to_owned(),
                    note: None,
                    by: None,
                    code,
                };
                self.audit(
                    Some(&id),
                    tool,
                    decision,
                    Some(&rule),
                    None,
                    arguments,
                    Some(record),
                );
                let line = strip_proxy_members(&request.line, params);
                self.forward_call(Some(id), request.meta, Cow::Owned(line), batch, out);
            }
        }
    }
}

/// `line` (ending in `\n`) with the proxy's members taken out of `params` (a slice of it): its
/// `requestState`, and its own answer in `inputResponses` (the member goes when nothing else is
/// left in it). The server never sees the proxy's question or the person's answer.
fn strip_proxy_members(line: &[u8], _params: &[u8]) -> Vec<u8> {
    let content = &line[..line.len() - 1];
    // `params` is read again from `line` itself: the caller's slice may point into another
    // buffer (a batch element is copied into a line of its own), and splicing across buffers
    // would cut the wrong bytes.
    let Some(params) = json::get(content, "params") else {
        return line.to_vec();
    };
    let mut rebuilt = Vec::with_capacity(params.len());
    rebuilt.push(b'{');
    let mut first = true;
    let mut member = |rebuilt: &mut Vec<u8>, key: &str, value: &[u8]| {
        if !first {
            rebuilt.push(b',');
        }
        first = false;
        json::write_str(rebuilt, key);
        rebuilt.push(b':');
        rebuilt.extend_from_slice(value);
    };
    for (key, value) in json::members(params) {
        match key.as_ref() {
            "requestState" => {}
            "inputResponses" => {
                let mut others = Vec::new();
                others.push(b'{');
                let mut any = false;
                for (inner, answer) in json::members(value) {
                    if inner == INPUT_KEY {
                        continue;
                    }
                    if any {
                        others.push(b',');
                    }
                    any = true;
                    json::write_str(&mut others, &inner);
                    others.push(b':');
                    others.extend_from_slice(answer);
                }
                others.push(b'}');
                if any {
                    member(&mut rebuilt, &key, &others);
                }
            }
            _ => member(&mut rebuilt, &key, value),
        }
    }
    rebuilt.push(b'}');
    message::splice_line(content, params, &rebuilt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_proxy_members_are_taken_out() {
        let line = br#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"inputResponses":{"mcp-policy-proxy/approval":{"action":"accept"},"server/own":{"x":1}},"requestState":"s","name":"t","arguments":{"a":1}}}
"#;
        let content = &line[..line.len() - 1];
        let params = json::get(content, "params").unwrap();
        let out = strip_proxy_members(line, params);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"inputResponses\":{\"server/own\":{\"x\":1}},\"name\":\"t\",\"arguments\":{\"a\":1}}}\n"
        );
        let only_ours = br#"{"id":1,"method":"tools/call","params":{"name":"t","inputResponses":{"mcp-policy-proxy/approval":{}},"requestState":"s"}}
"#;
        let content = &only_ours[..only_ours.len() - 1];
        let params = json::get(content, "params").unwrap();
        assert_eq!(
            String::from_utf8(strip_proxy_members(only_ours, params)).unwrap(),
            "{\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"t\"}}\n"
        );
    }
}
