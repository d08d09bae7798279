//! The session: everything the proxy remembers between messages, and what each message causes.
//!
//! For every line from the client or the child, the session decides what goes where: forward it
//! unchanged, forward it changed (remapped ids, hidden tools removed), answer it itself, hold it
//! until a person decides, or drop it. It does no I/O: the relay reads lines, hands them here
//! with the time, and carries out the [`Effect`]s that come back, so the rules of the protocol
//! live in one place and can be tested without processes. Besides lines, a session is woken by
//! the time ([`Session::on_tick`]) and by work done elsewhere ([`Session::on_approver_done`]).
//!
//! The rooms: `calls` (client requests in flight and their stages), `outstanding` (the ids the
//! proxy issues to the client), `judge` (how a `tools/call` is decided), `held` (calls waiting
//! for a person), `batch` (2025-03-26 batches), `tools_list` (hiding tools, remembering what
//! the server declared), `era` (protocol era and client capabilities), `refusal` (what a
//! refusal says).

mod audit;
mod batch;
mod calls;
mod edges;
mod effect;
pub mod era;
pub mod fleet;
mod held;
mod input_required;
mod judge;
mod outstanding;
pub mod refusal;
mod tools_list;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use tracing::{debug, warn};

use crate::approval::ApprovalSettings;
use crate::approval::seal::{Sealer, fresh_key};
use crate::config::ViolationStyle;
use crate::json::{self, Kind};
use crate::message::{self, Message, RequestId};
use crate::policy::{Policy, PolicyState};
use crate::reply;
use batch::Batches;
use calls::{Call, Calls, Purpose, Stage};
use edges::{answer_unreadable, child_gone_error};
pub use effect::{Checked, Effect};
use era::Era;
use held::Grants;
use outstanding::{Issued, Outstanding};
use tools_list::Catalog;

/// How many requests of one session may be in flight at once: forwarded, held for a person or
/// waiting for the store. Past it a request is answered at once with an error naming the cap, so
/// a client that never stops sending cannot make the proxy hold without bound.
pub const MAX_IN_FLIGHT: usize = 10_000;

/// How many `tools/call` notifications under a fleet-wide limit may wait for the store at once;
/// past it one is dropped (a notification has no answer to carry a refusal) and logged.
pub const MAX_STORE_NOTIFICATIONS: usize = 1024;

/// What a session is told about its surroundings.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// How a refused call is answered.
    pub violation: ViolationStyle,
    pub approval: ApprovalSettings,
    /// The server behind the proxy, as a person is shown it.
    pub server: String,
    /// This proxy process among others, for the approval command and logs.
    pub session_id: String,
    /// `[policy] mode`.
    pub mode: crate::config::PolicyMode,
    /// `[pinning] mode`.
    pub pinning: crate::config::PinMode,
    /// `[store] on_error`: what a call under a fleet-wide limit gets when the store cannot
    /// answer.
    pub store_on_error: crate::store::OnError,
    /// The audit log, if `[audit]` asks for one.
    pub audit: Option<crate::audit::AuditHandle>,
    /// Pins from the operator's pin file: tool name to the SHA-256 (hex) of its definition.
    pub pins: std::collections::HashMap<String, String>,
}

/// The state of one proxied session.
pub struct Session {
    policy: Arc<Policy>,
    state: PolicyState,
    settings: Settings,
    calls: Calls,
    issued: Issued,
    batches: Batches,
    era: Era,
    catalog: Catalog,
    grants: Grants,
    /// The sealer of approval states; the reason there is none when the OS gave no key.
    sealer: Result<Sealer, String>,
    /// Numbers approval-command runs, store checks and approval codes.
    next_job: u64,
    /// `tools/call` notifications waiting for the store.
    fleet_notifications: Vec<fleet::StoreHeld>,
    /// The session's id, shared by its audit records.
    session_tag: Arc<str>,
    /// Approval commands asked about 2026-07-28 questions, by the question's nonce.
    modern_asks: std::collections::HashMap<u64, input_required::ModernAsk>,
    /// The child can take no more input; requests are answered here instead.
    child_gone: bool,
}

impl Session {
    /// A session with the default settings but for the violation style.
    pub fn new(policy: Policy, violation: ViolationStyle) -> Session {
        Session::with_settings(
            policy,
            Settings {
                violation,
                ..Settings::default()
            },
        )
    }

    pub fn with_settings(policy: Policy, settings: Settings) -> Session {
        Session::with_key(policy, settings, fresh_key())
    }

    /// A session whose approval states are sealed with `key`, or, when the OS gave no key,
    /// whose approvals by `requestState` are refused with the reason.
    pub fn with_key(policy: Policy, settings: Settings, key: Result<[u8; 32], String>) -> Session {
        let session_tag: Arc<str> = settings.session_id.as_str().into();
        let state = policy.new_state();
        if let Err(why) = &key {
            warn!("{why}; approvals that need a sealed state (requestState) are refused");
        }
        // Counters shown outside (nonces in states, approval codes) start from randomness of
        // their own, never from the key's bits. They need to be unique, not secret: without
        // randomness they start at 0 (and nothing is sealed with them then).
        let counters = fresh_key().unwrap_or([0; 32]);
        let counter =
            |at: usize| u64::from_le_bytes(counters[at..at + 8].try_into().expect("8 bytes"));
        Session {
            policy: Arc::new(policy),
            state,
            settings,
            calls: Calls::default(),
            issued: Issued::default(),
            batches: Batches::default(),
            era: Era::default(),
            catalog: Catalog::default(),
            grants: Grants::default(),
            sealer: key.map(|key| Sealer::new(key, Instant::now(), counter(0))),
            next_job: counter(8) >> 16,
            fleet_notifications: Vec::new(),
            session_tag,
            modern_asks: std::collections::HashMap::new(),
            child_gone: false,
        }
    }

    /// Replaces the policy between two decisions (a reload). Each rate-limit window stays with
    /// the rule of the same identity; held calls keep the rule they were held under, and are
    /// judged again under this policy when a person approves them.
    pub fn replace_policy(&mut self, policy: Policy) {
        let old = std::mem::replace(&mut self.state, policy.new_state());
        self.state = policy.carry_over(&self.policy, old);
        self.policy = Arc::new(policy);
    }

    /// Takes the settings of a reloaded configuration that a running session can change.
    pub fn update_settings(&mut self, config: &crate::config::Config) {
        self.settings.violation = config.policy.violation;
        self.settings.mode = config.policy.mode;
        self.settings.approval = config.approval.clone();
        self.settings.pinning = config.pinning.mode;
    }

    pub fn protocol_version(&self) -> Option<&str> {
        self.era.server_version()
    }

    /// Handles one line from the client (ending in `\n`).
    pub fn on_client_line<'a>(&mut self, line: &'a [u8], now: Instant, out: &mut Vec<Effect<'a>>) {
        self.on_checked_client_line(Checked::check(line), now, out);
    }

    /// [`Session::on_client_line`] for a line already validated by [`Checked::check`].
    pub fn on_checked_client_line<'a>(
        &mut self,
        checked: Checked<'a>,
        now: Instant,
        out: &mut Vec<Effect<'a>>,
    ) {
        let Checked { line, valid } = checked;
        let content = &line[..line.len() - 1];
        if content.is_empty() {
            return;
        }
        let outline = match valid {
            Ok(outline) => outline,
            Err(err) => {
                answer_unreadable(content, &err.to_string(), out);
                return;
            }
        };
        match json::kind(content) {
            Kind::Object => {
                self.on_client_object(content, &outline, Cow::Borrowed(line), now, None, out);
            }
            Kind::Array => self.on_client_batch(content, now, out),
            other => warn!(kind = ?other, "dropped a client message that is not a JSON object"),
        }
    }

    /// `content` is one validated object; `line` is the same bytes ending in a newline, as they
    /// would be forwarded. `batch` is the client batch it came in, if any.
    fn on_client_object<'a>(
        &mut self,
        content: &'a [u8],
        outline: &json::Outline,
        line: Cow<'a, [u8]>,
        now: Instant,
        batch: Option<u64>,
        out: &mut Vec<Effect<'a>>,
    ) {
        let message = match message::classify_outlined(content, outline) {
            Ok(message) => message,
            Err(invalid) => {
                match &invalid.id {
                    Some(id) => self.answer(
                        batch,
                        reply::error(
                            Some(id),
                            reply::INVALID_REQUEST,
                            &format!("Invalid Request: {}", invalid.reason),
                            None,
                        ),
                        out,
                    ),
                    None => warn!("dropped an invalid client message: {}", invalid.reason),
                }
                return;
            }
        };
        match message {
            Message::Request {
                id,
                method,
                params,
                name,
                meta,
            } => {
                if self.calls.contains(&id) {
                    let error = reply::error(
                        Some(&id),
                        reply::INVALID_REQUEST,
                        &format!(
                            "Invalid Request: id {id} is already used by a request in progress"
                        ),
                        None,
                    );
                    self.answer(batch, error, out);
                    return;
                }
                if method == "tools/call" {
                    let call = judge::Request {
                        id: Some(id),
                        params,
                        name,
                        meta,
                        line,
                    };
                    self.on_tools_call(call, now, batch, out);
                    return;
                }
                if method == "initialize" {
                    self.era.on_initialize_request(params);
                }
                self.forward_request(id, Purpose::of(&method), meta, line, batch, out);
            }
            Message::Notification {
                method,
                params,
                name,
                meta,
            } => match method.as_ref() {
                "tools/call" => {
                    let call = judge::Request {
                        id: None,
                        params,
                        name,
                        meta,
                        line,
                    };
                    self.on_tools_call(call, now, batch, out);
                }
                "notifications/cancelled" => {
                    let target = params
                        .and_then(|p| json::get(p, "requestId"))
                        .and_then(RequestId::from_json);
                    match target {
                        Some(target) if self.calls.is_forwarded(&target) => {
                            // The server should not answer it now: it no longer counts against
                            // the cap on requests in flight (its entry stays for a late answer).
                            self.calls.mark_cancelled(&target);
                            self.forward(line, None, out);
                        }
                        Some(target) if self.withdraw_store_check(&target, out) => {
                            debug!(%target, "the client cancelled a call waiting for the store");
                        }
                        Some(target) if self.calls.contains(&target) => {
                            self.withdraw(&target, out);
                        }
                        target => debug!(
                            ?target,
                            "dropped a cancellation for a request the server is not working on"
                        ),
                    }
                }
                _ => self.forward(line, None, out),
            },
            Message::Response {
                id, id_raw, result, ..
            } => match self.issued.take(&id) {
                Some(Outstanding::ChildRequest(child_id)) => {
                    let line = message::splice_line(content, id_raw, &child_id.to_json());
                    self.forward(Cow::Owned(line), None, out);
                }
                Some(Outstanding::Approval { call }) => {
                    self.on_elicitation_answer(&call, result, now, out);
                }
                None => warn!(
                    %id,
                    "dropped a client response to a request nobody made (or one withdrawn)"
                ),
            },
        }
    }

    /// An answer of the proxy's own to a client request: into its batch's answer when it came in
    /// a batch, else straight to the client.
    fn answer<'a>(&mut self, batch: Option<u64>, line: Vec<u8>, out: &mut Vec<Effect<'a>>) {
        match batch {
            Some(batch) => self.batches.add_answer(batch, line),
            None => out.push(Effect::Client(Cow::Owned(line))),
        }
    }

    /// Answers `id` with an error naming the cap when the session already has
    /// [`MAX_IN_FLIGHT`] requests in flight; true when it did.
    pub(super) fn over_in_flight_cap(
        &mut self,
        id: &RequestId,
        batch: Option<u64>,
        out: &mut Vec<Effect<'_>>,
    ) -> bool {
        if self.calls.active() < MAX_IN_FLIGHT {
            return false;
        }
        warn!(%id, "{MAX_IN_FLIGHT} requests are in flight; a request is refused");
        let error = reply::error(
            Some(id),
            reply::INTERNAL_ERROR,
            &format!(
                "mcp-policy-proxy: {MAX_IN_FLIGHT} requests of this session are already in flight \
                 (the cap on requests in flight); retry when some have been answered"
            ),
            None,
        );
        self.answer(batch, error, out);
        true
    }

    fn forward_request<'a>(
        &mut self,
        id: RequestId,
        purpose: Purpose,
        meta: Option<&[u8]>,
        line: Cow<'a, [u8]>,
        batch: Option<u64>,
        out: &mut Vec<Effect<'a>>,
    ) {
        if self.child_gone {
            self.answer(batch, child_gone_error(&id), out);
            return;
        }
        if self.over_in_flight_cap(&id, batch, out) {
            return;
        }
        self.enter(
            id.clone(),
            Call {
                stage: Stage::Forwarded(purpose),
                progress_token: message::progress_token(meta),
                batch,
            },
        );
        out.push(Effect::Child {
            line,
            request: Some(id),
        });
    }

    /// A request enters the table of requests in flight; a batch it came in waits for it.
    fn enter(&mut self, id: RequestId, call: Call) {
        if let Some(batch) = call.batch {
            self.batches.wait_for(batch);
        }
        self.calls.insert(id, call);
    }

    fn forward<'a>(
        &mut self,
        line: impl Into<Cow<'a, [u8]>>,
        request: Option<RequestId>,
        out: &mut Vec<Effect<'a>>,
    ) {
        if self.child_gone {
            return;
        }
        out.push(Effect::Child {
            line: line.into(),
            request,
        });
    }

    /// Sends the answer to a request in flight to the client, or into its batch's answer.
    fn deliver<'a>(&mut self, call: &Call, answer: Cow<'a, [u8]>, out: &mut Vec<Effect<'a>>) {
        match call.batch {
            None => out.push(Effect::Client(answer)),
            Some(batch) => {
                if let Some(line) = self.batches.answered(batch, answer.into_owned()) {
                    out.push(Effect::Client(Cow::Owned(line)));
                }
            }
        }
    }

    /// The child could not take a request: answer it, since the child never will.
    pub fn on_forward_failed(&mut self, request: &RequestId, out: &mut Vec<Effect<'_>>) {
        self.child_gone = true;
        if self.calls.is_forwarded(request)
            && let Some(call) = self.calls.remove(request)
        {
            self.deliver(&call, Cow::Owned(child_gone_error(request)), out);
        }
    }

    /// Handles one line from the child (ending in `\n`).
    pub fn on_child_line<'a>(&mut self, line: &'a [u8], out: &mut Vec<Effect<'a>>) {
        self.on_checked_child_line(Checked::check(line), out);
    }

    /// [`Session::on_child_line`] for a line already validated by [`Checked::check`].
    pub fn on_checked_child_line<'a>(&mut self, checked: Checked<'a>, out: &mut Vec<Effect<'a>>) {
        let Checked { line, valid } = checked;
        let content = &line[..line.len() - 1];
        if content.is_empty() {
            return;
        }
        let outline = match valid {
            Ok(outline) => outline,
            Err(err) => {
                warn!("dropped server output that is not strict JSON: {err}");
                return;
            }
        };
        match json::kind(content) {
            Kind::Object => self.on_child_object(content, &outline, Cow::Borrowed(line), out),
            Kind::Array if self.era.has_batches() => {
                // A 2025-03-26 server may batch; its messages go on one at a time.
                for element in json::elements(content) {
                    if json::kind(element) != Kind::Object {
                        warn!("dropped a server batch element that is not an object");
                        continue;
                    }
                    let walk = json::Outline::default();
                    self.on_child_object(element, &walk, Cow::Owned(batch::as_line(element)), out);
                }
            }
            _ => warn!("dropped server output that is not a single JSON-RPC message object"),
        }
    }

    fn on_child_object<'a>(
        &mut self,
        content: &'a [u8],
        outline: &json::Outline,
        line: Cow<'a, [u8]>,
        out: &mut Vec<Effect<'a>>,
    ) {
        let message = match message::classify_outlined(content, outline) {
            Ok(message) => message,
            Err(invalid) => {
                warn!("dropped an invalid server message: {}", invalid.reason);
                return;
            }
        };
        match message {
            Message::Response { id, result, .. } => {
                if !self.calls.is_forwarded(&id) {
                    warn!(%id, "dropped a server response to a request the client is not waiting for");
                    return;
                }
                let call = self.calls.remove(&id).expect("checked above");
                let Stage::Forwarded(purpose) = call.stage else {
                    unreachable!("checked above")
                };
                let mut answer = line;
                match (purpose, result) {
                    (Purpose::Initialize, Some(result)) => {
                        self.era.on_initialize_result(result);
                        debug!(version = ?self.era.server_version(), "server answered initialize");
                    }
                    (Purpose::Discover, Some(result)) => self.era.on_discover_result(result),
                    (Purpose::ToolsList, Some(result)) => {
                        if let Some(filtered) = self.on_tools_list(content, result) {
                            answer = Cow::Owned(filtered);
                        }
                    }
                    _ => {}
                }
                self.deliver(&call, answer, out);
            }
            Message::Request { id, .. } => {
                let proxy_id = self.issued.issue(Outstanding::ChildRequest(id));
                let env = message::envelope(outline.members(content)).expect("classified above");
                let id_raw = env.id.expect("a request has an id");
                let line = message::splice_line(content, id_raw, proxy_id.to_string().as_bytes());
                out.push(Effect::Client(Cow::Owned(line)));
            }
            Message::Notification { method, params, .. } => match method.as_ref() {
                "notifications/progress" => {
                    let token = params
                        .and_then(|p| json::get(p, "progressToken"))
                        .and_then(RequestId::from_json);
                    match token {
                        Some(token) if self.calls.forwarded_progress(&token) => {
                            out.push(Effect::Client(line));
                        }
                        token => debug!(?token, "dropped progress for no request in progress"),
                    }
                }
                "notifications/cancelled" => {
                    let target = params.and_then(|p| json::get(p, "requestId"));
                    let proxy_id = target
                        .and_then(RequestId::from_json)
                        .and_then(|child_id| self.issued.take_child_request(&child_id));
                    match (target, proxy_id) {
                        (Some(raw), Some(proxy_id)) => {
                            let line =
                                message::splice_line(content, raw, proxy_id.to_string().as_bytes());
                            out.push(Effect::Client(Cow::Owned(line)));
                        }
                        _ => debug!("dropped a server cancellation for no request of its own"),
                    }
                }
                _ => out.push(Effect::Client(line)),
            },
        }
    }
}
