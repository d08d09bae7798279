//! The session: everything the proxy remembers between messages, and what each message causes.
//!
//! For every line from the client or the child, the session decides what goes where: forward it
//! unchanged, forward it changed (remapped ids, hidden tools removed), answer it itself, or drop
//! it. It does no I/O: the relay reads lines, hands them here, and writes what comes back, so the
//! rules of the protocol live in one place and can be tested without processes.
//!
//! Ids: the client's request ids pass to the child unchanged (the proxy never sends the child
//! requests of its own). Requests from the child to the client get ids the proxy allocates, so
//! that requests the proxy makes itself can never collide with them; client responses are mapped
//! back, and a response to a request nobody made is dropped.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Instant;

use tracing::{debug, info, warn};

use crate::config::ViolationStyle;
use crate::json::{self, Kind};
use crate::message::{self, Message, RequestId};
use crate::policy::{Decision, Policy, PolicyState};
use crate::refusal;

/// The protocol revision without the `initialize` handshake.
const MODERN_PROTOCOL: &str = "2026-07-28";
/// The only protocol revision that allowed JSON-RPC batches.
const BATCH_PROTOCOL: &str = "2025-03-26";

/// Where a line the session produced goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Out<'a> {
    /// To the child's stdin. `request` names the client request it carries, so that a failed
    /// write can be answered.
    Child {
        line: Cow<'a, [u8]>,
        request: Option<RequestId>,
    },
    /// To the client (the proxy's stdout).
    Client(Cow<'a, [u8]>),
}

/// What a forwarded client request was, for reading its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Initialize,
    Discover,
    ToolsList,
    Other,
}

#[derive(Debug)]
struct Pending {
    purpose: Purpose,
    progress_token: Option<RequestId>,
    /// The client batch this request came in, whose single answer waits for it.
    batch: Option<u64>,
}

/// A client batch (protocol 2025-03-26) being answered: its answers so far, and how many of its
/// requests the child has yet to answer.
#[derive(Debug)]
struct Batch {
    answers: Vec<Vec<u8>>,
    waiting: usize,
}

/// A line (ending in `\n`) with the verdict of strict validation, which needs no session
/// state: the relay validates a line before it takes the session's lock, so the lock is held
/// only for the work that needs the state. Only [`Checked::check`] makes one, so no line reaches
/// the session without its validation.
pub struct Checked<'a> {
    line: &'a [u8],
    /// The verdict, with the outline of the line's members when it is valid.
    valid: Result<json::Outline, json::JsonError>,
}

impl<'a> Checked<'a> {
    pub fn check(line: &'a [u8]) -> Checked<'a> {
        let content = &line[..line.len() - 1];
        let valid = if content.is_empty() {
            Ok(json::Outline::default())
        } else {
            json::validate(content)
        };
        Checked { line, valid }
    }
}

/// The state of one proxied session.
pub struct Session {
    policy: Policy,
    state: PolicyState,
    violation: ViolationStyle,
    /// Whether any rule hides tools, so `tools/list` results need reading at all.
    hides_tools: bool,
    /// Client requests forwarded to the child and not answered yet.
    pending: HashMap<RequestId, Pending>,
    /// Progress tokens of pending requests, to the request they belong to.
    progress: HashMap<RequestId, RequestId>,
    /// Requests from the child to the client: the id the proxy gave each, to the child's id.
    server_requests: HashMap<u64, RequestId>,
    next_server_request: u64,
    /// Client batches waiting for the child's answers.
    batches: HashMap<u64, Batch>,
    next_batch: u64,
    /// The protocol version the server answered with, once known.
    protocol_version: Option<String>,
    /// The child can take no more input; requests are answered here instead.
    child_gone: bool,
}

impl Session {
    pub fn new(policy: Policy, violation: ViolationStyle) -> Session {
        let state = policy.new_state();
        let hides_tools = policy.rules().iter().any(|r| r.hide);
        Session {
            policy,
            state,
            violation,
            hides_tools,
            pending: HashMap::new(),
            progress: HashMap::new(),
            server_requests: HashMap::new(),
            next_server_request: 0,
            batches: HashMap::new(),
            next_batch: 0,
            protocol_version: None,
            child_gone: false,
        }
    }

    pub fn protocol_version(&self) -> Option<&str> {
        self.protocol_version.as_deref()
    }

    /// Handles one line from the client (ending in `\n`).
    pub fn on_client_line<'a>(&mut self, line: &'a [u8], now: Instant, out: &mut Vec<Out<'a>>) {
        self.on_checked_client_line(Checked::check(line), now, out);
    }

    /// [`Session::on_client_line`] for a line already validated by [`Checked::check`].
    pub fn on_checked_client_line<'a>(
        &mut self,
        checked: Checked<'a>,
        now: Instant,
        out: &mut Vec<Out<'a>>,
    ) {
        let Checked { line, valid } = checked;
        let content = &line[..line.len() - 1];
        if content.is_empty() {
            return;
        }
        let outline = match valid {
            Ok(outline) => outline,
            Err(err) => {
                self.answer_unreadable(content, &err.to_string(), out);
                return;
            }
        };
        match json::kind(content) {
            Kind::Object => {
                self.on_client_object(content, &outline, Cow::Borrowed(line), now, out);
            }
            Kind::Array => self.on_client_batch(content, now, out),
            other => warn!(kind = ?other, "dropped a client message that is not a JSON object"),
        }
    }

    /// A line that is not strict JSON: answer under its id if one can be read at all.
    fn answer_unreadable(&self, content: &[u8], why: &str, out: &mut Vec<Out<'_>>) {
        let id = serde_json::from_slice::<serde_json::Value>(content)
            .ok()
            .and_then(|v| v.get("id").map(|id| id.to_string()))
            .and_then(|id| RequestId::from_json(id.as_bytes()));
        match id {
            Some(id) => {
                warn!(%id, "refused a client message that is not strict JSON: {why}");
                out.push(Out::Client(Cow::Owned(refusal::error(
                    Some(&id),
                    refusal::PARSE_ERROR,
                    &format!("Parse error: {why}; the message was not forwarded"),
                    None,
                ))));
            }
            None => warn!("dropped a client message that is not strict JSON: {why}"),
        }
    }

    /// `content` is one validated object; `line` is the same bytes ending in a newline, as they
    /// would be forwarded.
    fn on_client_object<'a>(
        &mut self,
        content: &'a [u8],
        outline: &json::Outline,
        line: Cow<'a, [u8]>,
        now: Instant,
        out: &mut Vec<Out<'a>>,
    ) {
        let message = match message::classify_outlined(content, outline) {
            Ok(message) => message,
            Err(invalid) => {
                match &invalid.id {
                    Some(id) => out.push(Out::Client(Cow::Owned(refusal::error(
                        Some(id),
                        refusal::INVALID_REQUEST,
                        &format!("Invalid Request: {}", invalid.reason),
                        None,
                    )))),
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
                if self.pending.contains_key(&id) {
                    out.push(Out::Client(Cow::Owned(refusal::error(
                        Some(&id),
                        refusal::INVALID_REQUEST,
                        &format!(
                            "Invalid Request: id {id} is already used by a request in progress"
                        ),
                        None,
                    ))));
                    return;
                }
                if method == "tools/call" && !self.judge(Some(&id), params, name, meta, now, out) {
                    return;
                }
                let purpose = match method.as_ref() {
                    "initialize" => Purpose::Initialize,
                    "server/discover" => Purpose::Discover,
                    "tools/list" => Purpose::ToolsList,
                    _ => Purpose::Other,
                };
                self.forward_request(id, purpose, meta, line, out);
            }
            Message::Notification {
                method,
                params,
                name,
                meta,
            } => {
                let forward = match method.as_ref() {
                    "tools/call" => self.judge(None, params, name, meta, now, out),
                    "notifications/cancelled" => {
                        let target = params
                            .and_then(|p| json::get(p, "requestId"))
                            .and_then(RequestId::from_json);
                        let known = target
                            .as_ref()
                            .is_some_and(|t| self.pending.contains_key(t));
                        if !known {
                            debug!(
                                ?target,
                                "dropped a cancellation for a request the server is not working on"
                            );
                        }
                        known
                    }
                    _ => true,
                };
                if forward {
                    self.forward(line, None, out);
                }
            }
            Message::Response { id, id_raw, .. } => {
                let child_id = match id {
                    RequestId::Small(n) => self.server_requests.remove(&n),
                    RequestId::Int(_) | RequestId::Str(_) => None,
                };
                match child_id {
                    Some(child_id) => {
                        let line = message::splice_line(content, id_raw, &child_id.to_json());
                        self.forward(Cow::Owned(line), None, out);
                    }
                    None => warn!(
                        %id,
                        "dropped a client response to a request the server never made"
                    ),
                }
            }
        }
    }

    /// A JSON array from the client. It is never forwarded as it is: under protocol 2025-03-26,
    /// the only one with batches, each element is judged and forwarded on its own line and the
    /// answers go back as one array; under any other version each request in it is refused.
    fn on_client_batch<'a>(&mut self, content: &'a [u8], now: Instant, out: &mut Vec<Out<'a>>) {
        if self.protocol_version.as_deref() != Some(BATCH_PROTOCOL) {
            self.refuse_batch(content, out);
            return;
        }
        let batch = self.next_batch;
        self.next_batch += 1;
        let mut answers = Vec::new();
        let mut waiting = 0;
        let mut elements = 0;
        for element in json::elements(content) {
            elements += 1;
            if json::kind(element) != Kind::Object {
                answers.push(without_newline(refusal::error(
                    None,
                    refusal::INVALID_REQUEST,
                    "Invalid Request: a batch element must be an object",
                    None,
                )));
                continue;
            }
            let mut line = Vec::with_capacity(element.len() + 1);
            line.extend_from_slice(element);
            line.push(b'\n');
            let mut element_out = Vec::new();
            let walk = json::Outline::default();
            self.on_client_object(element, &walk, Cow::Owned(line), now, &mut element_out);
            for o in element_out {
                match o {
                    Out::Client(answer) => answers.push(without_newline(answer.into_owned())),
                    Out::Child { line, request } => {
                        if let Some(pending) =
                            request.as_ref().and_then(|id| self.pending.get_mut(id))
                        {
                            pending.batch = Some(batch);
                            waiting += 1;
                        }
                        out.push(Out::Child { line, request });
                    }
                }
            }
        }
        if elements == 0 {
            out.push(Out::Client(Cow::Owned(refusal::error(
                None,
                refusal::INVALID_REQUEST,
                "Invalid Request: an empty batch",
                None,
            ))));
        } else if waiting == 0 {
            if !answers.is_empty() {
                out.push(Out::Client(Cow::Owned(batch_line(&answers))));
            }
        } else {
            self.batches.insert(batch, Batch { answers, waiting });
        }
    }

    /// Refuses a batch under a protocol version without batches: each request in it gets an
    /// error of its own, and nothing reaches the child.
    fn refuse_batch(&self, content: &[u8], out: &mut Vec<Out<'_>>) {
        let why = match self.protocol_version.as_deref() {
            Some(version) => format!("protocol version {version} has no JSON-RPC batches"),
            None => "JSON-RPC batches belong only to protocol version 2025-03-26".to_string(),
        };
        let mut answered = false;
        for element in json::elements(content) {
            if let Some(id) = json::get(element, "id").and_then(RequestId::from_json) {
                answered = true;
                out.push(Out::Client(Cow::Owned(refusal::error(
                    Some(&id),
                    refusal::INVALID_REQUEST,
                    &format!("Invalid Request: {why}; send each message on its own line"),
                    None,
                ))));
            }
        }
        if !answered {
            warn!("dropped a client batch with no request ids: {why}");
        }
    }

    /// Sends the answer to a pending request to the client, or into its batch's answer.
    fn deliver<'a>(&mut self, pending: &Pending, answer: Cow<'a, [u8]>, out: &mut Vec<Out<'a>>) {
        if let Some(token) = &pending.progress_token {
            self.progress.remove(token);
        }
        let Some(batch_id) = pending.batch else {
            out.push(Out::Client(answer));
            return;
        };
        let Some(batch) = self.batches.get_mut(&batch_id) else {
            return;
        };
        batch.answers.push(without_newline(answer.into_owned()));
        batch.waiting -= 1;
        if batch.waiting == 0 {
            let batch = self.batches.remove(&batch_id).expect("present above");
            out.push(Out::Client(Cow::Owned(batch_line(&batch.answers))));
        }
    }

    /// Judges a `tools/call`. Returns whether it may be forwarded; when not, the answer (if the
    /// call has an id) is already in `out`.
    fn judge(
        &mut self,
        id: Option<&RequestId>,
        params: Option<&[u8]>,
        name: Option<&[u8]>,
        meta: Option<&[u8]>,
        now: Instant,
        out: &mut Vec<Out<'_>>,
    ) -> bool {
        let Some(tool) = message::tool_name(name) else {
            match id {
                Some(id) => out.push(Out::Client(Cow::Owned(refusal::error(
                    Some(id),
                    refusal::INVALID_PARAMS,
                    "Invalid params: tools/call needs \"params.name\" as a string",
                    None,
                )))),
                None => warn!("dropped a tools/call notification without a tool name"),
            }
            return false;
        };
        let decision = self.policy.evaluate(&tool, &mut self.state, now);
        if decision.is_allowed() {
            debug!(tool = %tool, "allowed a tool call");
            return true;
        }
        if let Decision::Deny { rule } = decision
            && rule.hide
        {
            // Exactly what a tool that does not exist gets, so hiding reveals nothing.
            info!(tool = %tool, rule = rule.number, "refused a call to a hidden tool");
            if let Some(id) = id {
                out.push(Out::Client(Cow::Owned(refusal::error(
                    Some(id),
                    refusal::INVALID_PARAMS,
                    &format!("Unknown tool: {tool}"),
                    None,
                ))));
            }
            return false;
        }
        let text = refusal::refusal_text(&tool, &decision);
        match id {
            None => {
                info!(tool = %tool, "dropped a tools/call without an id: {text}");
            }
            Some(id) => {
                info!(tool = %tool, %id, "{text}");
                // A task-augmented call expects a task, not a tool result: a JSON-RPC error is
                // the only refusal of the right shape.
                let task = params.and_then(|p| json::get(p, "task")).is_some();
                let style = if task {
                    ViolationStyle::JsonRpcError
                } else {
                    self.violation
                };
                let modern = message::request_protocol_version(meta).is_some()
                    || self.protocol_version.as_deref() == Some(MODERN_PROTOCOL);
                out.push(Out::Client(Cow::Owned(refusal::policy_refusal(
                    id, &tool, &decision, style, modern,
                ))));
            }
        }
        false
    }

    fn forward_request<'a>(
        &mut self,
        id: RequestId,
        purpose: Purpose,
        meta: Option<&[u8]>,
        line: Cow<'a, [u8]>,
        out: &mut Vec<Out<'a>>,
    ) {
        if self.child_gone {
            out.push(Out::Client(Cow::Owned(child_gone_error(&id))));
            return;
        }
        let progress_token = message::progress_token(meta);
        if let Some(token) = &progress_token {
            self.progress.insert(token.clone(), id.clone());
        }
        self.pending.insert(
            id.clone(),
            Pending {
                purpose,
                progress_token,
                batch: None,
            },
        );
        out.push(Out::Child {
            line,
            request: Some(id),
        });
    }

    fn forward<'a>(
        &mut self,
        line: impl Into<Cow<'a, [u8]>>,
        request: Option<RequestId>,
        out: &mut Vec<Out<'a>>,
    ) {
        if self.child_gone {
            return;
        }
        out.push(Out::Child {
            line: line.into(),
            request,
        });
    }

    /// The child could not take a request: answer it, since the child never will.
    pub fn on_forward_failed(&mut self, request: &RequestId, out: &mut Vec<Out<'_>>) {
        self.child_gone = true;
        if let Some(pending) = self.pending.remove(request) {
            self.deliver(&pending, Cow::Owned(child_gone_error(request)), out);
        }
    }

    /// Handles one line from the child (ending in `\n`).
    pub fn on_child_line<'a>(&mut self, line: &'a [u8], out: &mut Vec<Out<'a>>) {
        self.on_checked_child_line(Checked::check(line), out);
    }

    /// [`Session::on_child_line`] for a line already validated by [`Checked::check`].
    pub fn on_checked_child_line<'a>(&mut self, checked: Checked<'a>, out: &mut Vec<Out<'a>>) {
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
            Kind::Array if self.protocol_version.as_deref() == Some(BATCH_PROTOCOL) => {
                // A 2025-03-26 server may batch; its messages go on one at a time.
                for element in json::elements(content) {
                    if json::kind(element) != Kind::Object {
                        warn!("dropped a server batch element that is not an object");
                        continue;
                    }
                    let mut line = Vec::with_capacity(element.len() + 1);
                    line.extend_from_slice(element);
                    line.push(b'\n');
                    let walk = json::Outline::default();
                    self.on_child_object(element, &walk, Cow::Owned(line), out);
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
        out: &mut Vec<Out<'a>>,
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
                let Some(pending) = self.pending.remove(&id) else {
                    warn!(%id, "dropped a server response to a request the client is not waiting for");
                    return;
                };
                let mut answer = line;
                match (pending.purpose, result) {
                    (Purpose::Initialize, Some(result)) => {
                        self.protocol_version = json::get(result, "protocolVersion")
                            .and_then(json::as_str)
                            .map(Cow::into_owned);
                        debug!(version = ?self.protocol_version, "server answered initialize");
                    }
                    (Purpose::Discover, Some(result)) => {
                        let modern =
                            json::get(result, "supportedVersions").is_some_and(|versions| {
                                json::elements(versions)
                                    .any(|v| json::as_str(v).as_deref() == Some(MODERN_PROTOCOL))
                            });
                        if modern {
                            self.protocol_version = Some(MODERN_PROTOCOL.to_string());
                        }
                    }
                    (Purpose::ToolsList, Some(result)) if self.hides_tools => {
                        if let Some(filtered) = self.hide_tools(content, result) {
                            answer = Cow::Owned(filtered);
                        }
                    }
                    _ => {}
                }
                self.deliver(&pending, answer, out);
            }
            Message::Request { id, .. } => {
                let proxy_id = self.next_server_request;
                self.next_server_request += 1;
                self.server_requests.insert(proxy_id, id);
                let env = message::envelope(outline.members(content)).expect("classified above");
                let id_raw = env.id.expect("a request has an id");
                let line = message::splice_line(content, id_raw, proxy_id.to_string().as_bytes());
                out.push(Out::Client(Cow::Owned(line)));
            }
            Message::Notification { method, params, .. } => match method.as_ref() {
                "notifications/progress" => {
                    let token = params
                        .and_then(|p| json::get(p, "progressToken"))
                        .and_then(RequestId::from_json);
                    match token {
                        Some(token) if self.progress.contains_key(&token) => {
                            out.push(Out::Client(line));
                        }
                        token => debug!(?token, "dropped progress for no request in progress"),
                    }
                }
                "notifications/cancelled" => {
                    let target = params.and_then(|p| json::get(p, "requestId"));
                    let child_id = target.and_then(RequestId::from_json);
                    let proxy_id = child_id.as_ref().and_then(|child_id| {
                        self.server_requests
                            .iter()
                            .find(|(_, v)| *v == child_id)
                            .map(|(k, _)| *k)
                    });
                    match (target, proxy_id) {
                        (Some(raw), Some(proxy_id)) => {
                            self.server_requests.remove(&proxy_id);
                            let line =
                                message::splice_line(content, raw, proxy_id.to_string().as_bytes());
                            out.push(Out::Client(Cow::Owned(line)));
                        }
                        _ => debug!("dropped a server cancellation for no request of its own"),
                    }
                }
                _ => out.push(Out::Client(line)),
            },
        }
    }

    /// A `tools/list` response (`content`, without its newline) without the hidden tools, as a
    /// line; `None` when nothing is hidden.
    fn hide_tools(&self, content: &[u8], result: &[u8]) -> Option<Vec<u8>> {
        let tools = json::get(result, "tools")?;
        let mut kept = Vec::new();
        let mut hidden = 0;
        for tool in json::elements(tools) {
            let name = json::get(tool, "name").and_then(json::as_str);
            if name.as_deref().is_some_and(|n| self.policy.hides(n)) {
                hidden += 1;
            } else {
                kept.push(tool);
            }
        }
        if hidden == 0 {
            return None;
        }
        debug!(hidden, "removed hidden tools from a tools/list result");
        let mut array = Vec::with_capacity(tools.len());
        array.push(b'[');
        for (i, tool) in kept.iter().enumerate() {
            if i > 0 {
                array.push(b',');
            }
            array.extend_from_slice(tool);
        }
        array.push(b']');
        Some(message::splice_line(content, tools, &array))
    }

    /// A client line over the length limit was thrown away. If its id can be read at either end,
    /// the request is answered, so the client does not wait for an answer that cannot come.
    pub fn on_client_too_long(
        &self,
        len: usize,
        head: &[u8],
        tail: &[u8],
        limit: usize,
        out: &mut Vec<Out<'_>>,
    ) {
        let Some(id) = message::id_at_edges(head, tail) else {
            warn!(
                len,
                limit, "dropped a client message longer than the limit (max_line_bytes)"
            );
            return;
        };
        warn!(%id, len, limit, "refused a client message longer than the limit (max_line_bytes)");
        out.push(Out::Client(Cow::Owned(refusal::error(
            Some(&id),
            refusal::INVALID_REQUEST,
            &format!(
                "Invalid Request: the message is {len} bytes, over the proxy's limit of {limit} \
                 (max_line_bytes); it was not forwarded"
            ),
            None,
        ))));
    }

    /// A server line over the length limit was thrown away. If it answered a request the client
    /// is waiting for, that request gets an error instead.
    pub fn on_child_too_long(
        &mut self,
        len: usize,
        head: &[u8],
        tail: &[u8],
        limit: usize,
        out: &mut Vec<Out<'_>>,
    ) {
        let waiting = message::id_at_edges(head, tail)
            .and_then(|id| self.pending.remove(&id).map(|pending| (id, pending)));
        let Some((id, pending)) = waiting else {
            warn!(
                len,
                limit, "dropped a server message longer than the limit (max_line_bytes)"
            );
            return;
        };
        warn!(%id, len, limit, "dropped a server answer longer than the limit (max_line_bytes)");
        let error = refusal::error(
            Some(&id),
            refusal::INTERNAL_ERROR,
            &format!(
                "the MCP server's answer was {len} bytes, over the proxy's limit of {limit} \
                 (max_line_bytes); it was not passed on"
            ),
            None,
        );
        self.deliver(&pending, Cow::Owned(error), out);
    }

    /// The child has exited: every request still waiting on it gets an error, so the client
    /// never hangs.
    pub fn on_child_exit(&mut self, how: &str) -> Vec<Vec<u8>> {
        self.child_gone = true;
        self.server_requests.clear();
        let message = format!("the MCP server exited ({how}) before answering this request");
        let mut out = Vec::new();
        let pending: Vec<_> = self.pending.drain().collect();
        for (id, pending) in pending {
            let error = refusal::error(Some(&id), refusal::INTERNAL_ERROR, &message, None);
            self.deliver(&pending, Cow::Owned(error), &mut out);
        }
        out.into_iter()
            .filter_map(|o| match o {
                Out::Client(line) => Some(line.into_owned()),
                Out::Child { .. } => None,
            })
            .collect()
    }
}

/// An answer line without its newline, to go inside a batch's array.
fn without_newline(mut line: Vec<u8>) -> Vec<u8> {
    if line.last() == Some(&b'\n') {
        line.pop();
    }
    line
}

/// The one line that answers a batch: `[a,b,...]\n`.
fn batch_line(answers: &[Vec<u8>]) -> Vec<u8> {
    let mut line = Vec::with_capacity(answers.iter().map(|a| a.len() + 1).sum::<usize>() + 2);
    line.push(b'[');
    for (i, answer) in answers.iter().enumerate() {
        if i > 0 {
            line.push(b',');
        }
        line.extend_from_slice(answer);
    }
    line.extend_from_slice(b"]\n");
    line
}

fn child_gone_error(id: &RequestId) -> Vec<u8> {
    refusal::error(
        Some(id),
        refusal::INTERNAL_ERROR,
        "the MCP server is no longer running; the request was not delivered",
        None,
    )
}
