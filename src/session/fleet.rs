//! Calls under a fleet-wide limit: held while the store decides, off the pumps.
//!
//! The call waits in the table of requests in flight (stage `AwaitingStore`) while the
//! supervisor asks the store; every other message keeps flowing, and other store-bound calls
//! are asked at the same time, not one round trip after another. The store's answer forwards
//! the call, refuses it as rate-limited with the time a retry would pass, or, when the store
//! cannot answer within its budget, refuses it as `limit_unavailable` (or forwards it
//! uncounted with `on_error = "allow"`).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::calls::{Call, Purpose, Stage};
use super::judge::Request;
use super::{Effect, Session, refusal};
use crate::config::{LimitScope, ViolationStyle};
use crate::message::{self, RequestId};
use crate::policy::{Decision, Rule};
use crate::reply;
use crate::store::{Admission, OnError, StoreError};

/// One question to the store, as the session asks the supervisor for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreJob {
    pub id: u64,
    /// The limit's identity in the store: the rule's key and its scope.
    pub key: String,
    pub max: u32,
    pub window: Duration,
}

/// A call waiting for the store.
#[derive(Debug)]
pub(super) struct StoreHeld {
    line: Vec<u8>,
    tool: String,
    rule: Arc<Rule>,
    job: u64,
    style: ViolationStyle,
    modern: bool,
}

impl Session {
    /// Holds a call while the store decides.
    pub(super) fn check_store<'a>(
        &mut self,
        request: Request<'a>,
        tool: &str,
        rule: Arc<Rule>,
        batch: Option<u64>,
        out: &mut Vec<Effect<'a>>,
    ) {
        match &request.id {
            Some(id) if self.over_in_flight_cap(id, batch, out) => return,
            None if self.fleet_notifications.len() >= super::MAX_STORE_NOTIFICATIONS => {
                warn!(
                    tool = ?tool,
                    "dropped a tools/call notification under a fleet-wide limit: {} already wait \
                     for the store (the cap on them)",
                    super::MAX_STORE_NOTIFICATIONS
                );
                return;
            }
            _ => {}
        }
        let limit = rule
            .rate_limit
            .clone()
            .expect("a store check comes from a rate-limited rule");
        let scope = match &limit.scope {
            LimitScope::Session => "session".to_owned(),
            LimitScope::Global => "global".to_owned(),
            LimitScope::Key(key) => format!("key:{key}"),
        };
        let job = self.next_store_job();
        out.push(Effect::CheckStore(StoreJob {
            id: job,
            // `|` separates the parts, so it is escaped within them: a rule and a scope can
            // never spell another pair's key.
            key: format!("{}|{}", escape_key(rule.key.as_str()), escape_key(&scope)),
            max: limit.max,
            window: limit.window,
        }));
        let Some(id) = request.id.clone() else {
            // A notification cannot be refused, and cannot wait for an answer that has nowhere
            // to go: it is held all the same, and dropped if the store refuses it.
            let held = StoreHeld {
                line: request.line.into_owned(),
                tool: tool.to_owned(),
                rule,
                job,
                style: self.settings.violation,
                modern: false,
            };
            self.fleet_notifications.push(held);
            return;
        };
        let held = StoreHeld {
            line: request.line.into_owned(),
            tool: tool.to_owned(),
            rule,
            job,
            style: self.style_for(request.params),
            modern: self.era.is_modern(request.meta),
        };
        self.enter(
            id,
            Call {
                stage: Stage::AwaitingStore(Box::new(held)),
                progress_token: message::progress_token(request.meta),
                batch,
            },
        );
    }

    fn next_store_job(&mut self) -> u64 {
        self.next_job = self.next_job.wrapping_add(1);
        self.next_job
    }

    /// The store answered the question of `job`.
    pub fn on_store_done(
        &mut self,
        job: u64,
        outcome: Result<Admission, StoreError>,
        now: Instant,
        out: &mut Vec<Effect<'static>>,
    ) {
        if let Some(at) = self.fleet_notifications.iter().position(|h| h.job == job) {
            let held = self.fleet_notifications.swap_remove(at);
            let arguments = held_arguments(&held.line);
            // Judged again, as a request is: a reload, a changed tool or a failed required log
            // while the store decided drops it.
            let policy_call = crate::policy::Call {
                tool: &held.tool,
                arguments: arguments.as_deref(),
                tool_info: self.catalog.get(&held.tool),
            };
            let decision = self.policy.evaluate(&policy_call, &mut self.state, now);
            let blocked = self
                .pre_refusal(None, &held.tool, arguments.as_deref(), || {
                    (held.style, held.modern)
                })
                .is_some();
            if blocked || !matches!(decision, Decision::StoreCheck { .. }) {
                if !blocked {
                    self.audit_decision(None, &held.tool, &decision, arguments.as_deref());
                }
                info!(tool = ?held.tool, "dropped a tools/call without an id: the rules changed while the store decided");
                return;
            }
            if self.record_store_outcome(None, &held, arguments.as_deref(), &outcome) {
                self.forward(Cow::Owned(held.line), None, out);
            } else {
                info!(tool = ?held.tool, "dropped a tools/call without an id: the fleet-wide limit did not admit it");
            }
            return;
        }
        let found = self.calls.store_held_ids().into_iter().find(|id| {
            matches!(self.calls.get(id), Some(Call { stage: Stage::AwaitingStore(held), .. }) if held.job == job)
        });
        let Some(id) = found else {
            info!(
                job,
                "the store answered for a call no longer waiting; ignored"
            );
            return;
        };
        let Some(mut call) = self.calls.remove(&id) else {
            return;
        };
        let Stage::AwaitingStore(held) =
            std::mem::replace(&mut call.stage, Stage::Forwarded(Purpose::Other))
        else {
            unreachable!("found as AwaitingStore")
        };
        let held = *held;
        let arguments = held_arguments(&held.line);
        // Judged again under the rules as they are now: a reload while the store decided may
        // have changed what the call gets.
        let policy_call = crate::policy::Call {
            tool: &held.tool,
            arguments: arguments.as_deref(),
            tool_info: self.catalog.get(&held.tool),
        };
        let decision = self.policy.evaluate(&policy_call, &mut self.state, now);
        if !matches!(decision, Decision::StoreCheck { .. }) {
            info!(tool = ?held.tool, %id, "the rules changed while the call waited for the store; judging it again");
            if call.batch.is_none() {
                self.rejudge(held.line, now, out);
                return;
            }
            // In a batch, whose answer waits for this call: anything but an allow is refused
            // here, with what the rules say now.
            if !decision.is_allowed() {
                self.audit_decision(Some(&id), &held.tool, &decision, arguments.as_deref());
                let line =
                    refusal::policy_refusal(&id, &held.tool, &decision, held.style, held.modern);
                self.deliver(&call, Cow::Owned(line), out);
                return;
            }
        }
        if let Some(line) = self.pre_refusal(Some(&id), &held.tool, arguments.as_deref(), || {
            (held.style, held.modern)
        }) {
            self.deliver(&call, Cow::Owned(line), out);
            return;
        }
        let forward = self.record_store_outcome(Some(&id), &held, arguments.as_deref(), &outcome);
        if !forward {
            let line = match &outcome {
                Ok(Admission::Refused { retry_after }) => {
                    let decision = Decision::RateLimited {
                        rule: held.rule.clone(),
                        retry_after: *retry_after,
                    };
                    info!(tool = ?held.tool, %id, "{}", refusal::refusal_text(&held.tool, &decision));
                    refusal::policy_refusal(&id, &held.tool, &decision, held.style, held.modern)
                }
                Err(err) => {
                    info!(tool = ?held.tool, %id, "refused: the fleet-wide limit could not be checked: {err}");
                    refusal::limit_unavailable_refusal(
                        &id,
                        &held.tool,
                        &held.rule,
                        err,
                        held.style,
                        held.modern,
                    )
                }
                Ok(Admission::Admitted) => unreachable!("an admitted call is forwarded"),
            };
            self.deliver(&call, Cow::Owned(line), out);
        }
        if !forward {
            return;
        }
        if self.child_gone {
            self.deliver(&call, Cow::Owned(super::child_gone_error(&id)), out);
            return;
        }
        // Still counted by its batch, if any: it entered the table when it was held.
        call.stage = Stage::Forwarded(Purpose::Other);
        self.calls.insert(id.clone(), call);
        out.push(Effect::Child {
            line: Cow::Owned(held.line),
            request: Some(id),
        });
    }

    /// Records what the store's answer makes of a call, and says whether it is forwarded:
    /// admitted, or not decided with `on_error = "allow"` (uncounted).
    fn record_store_outcome(
        &self,
        id: Option<&RequestId>,
        held: &StoreHeld,
        arguments: Option<&[u8]>,
        outcome: &Result<Admission, StoreError>,
    ) -> bool {
        let (decision, why, forward) = match outcome {
            Ok(Admission::Admitted) => ("allow", None, true),
            Ok(Admission::Refused { .. }) => ("rate_limited", None, false),
            Err(err) if self.settings.store_on_error == OnError::Allow => {
                warn!(tool = ?held.tool, "the fleet-wide limit could not be checked ({err}); forwarding the call uncounted, as on_error = \"allow\" says");
                (
                    "allow",
                    Some(format!(
                        "the store could not decide ({err}); on_error = \"allow\""
                    )),
                    true,
                )
            }
            Err(err) => (
                "limit_unavailable",
                Some(format!("the store could not decide: {err}")),
                false,
            ),
        };
        self.audit(
            id,
            &held.tool,
            decision,
            Some(&held.rule),
            why.as_deref(),
            arguments,
            None,
        );
        forward
    }

    /// Ends every call waiting for the store with an error carrying `message`.
    pub(super) fn abandon_store_held(&mut self, message: &str, out: &mut Vec<Effect<'static>>) {
        self.fleet_notifications.clear();
        for id in self.calls.store_held_ids() {
            if let Some(call) = self.calls.remove(&id) {
                let error = reply::error(Some(&id), reply::INTERNAL_ERROR, message, None);
                self.deliver(&call, Cow::Owned(error), out);
            }
        }
    }

    /// The client cancelled a call waiting for the store: it is forgotten (the store's answer
    /// will find nothing), and nothing is forwarded; a batch it came in closes without it.
    pub(super) fn withdraw_store_check(
        &mut self,
        id: &RequestId,
        out: &mut Vec<Effect<'_>>,
    ) -> bool {
        if !matches!(
            self.calls.get(id),
            Some(Call {
                stage: Stage::AwaitingStore(_),
                ..
            })
        ) {
            return false;
        }
        if let Some(call) = self.calls.remove(id)
            && let Some(batch) = call.batch
            && let Some(line) = self.batches.answered_without(batch)
        {
            out.push(Effect::Client(Cow::Owned(line)));
        }
        true
    }
}

/// The `arguments` of a held `tools/call` line, for the audit log.
fn held_arguments(line: &[u8]) -> Option<Vec<u8>> {
    let content = line.strip_suffix(b"\n").unwrap_or(line);
    match message::classify(content) {
        Ok(message::Message::Request { params, .. }) => params
            .and_then(|p| crate::json::get(p, "arguments"))
            .map(<[u8]>::to_vec),
        _ => None,
    }
}

/// A part of a store key with `%` and `|` escaped.
fn escape_key(part: &str) -> String {
    part.replace('%', "%25").replace('|', "%7C")
}
