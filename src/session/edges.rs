//! The edges of a session: lines too long to read, a child that cannot take more input or has
//! exited, and lines that are not strict JSON. Each gets an answer when someone waits for one.

use std::borrow::Cow;

use tracing::warn;

use super::{Effect, Session};
use crate::message::{self, RequestId};
use crate::reply;

impl Session {
    /// A client line over the length limit was thrown away. If its id can be read at either end,
    /// the request is answered, so the client does not wait for an answer that cannot come.
    pub fn on_client_too_long(
        &self,
        len: usize,
        head: &[u8],
        tail: &[u8],
        limit: usize,
        out: &mut Vec<Effect<'_>>,
    ) {
        let Some(id) = message::id_at_edges(head, tail) else {
            warn!(
                len,
                limit, "dropped a client message longer than the limit (max_line_bytes)"
            );
            return;
        };
        warn!(%id, len, limit, "refused a client message longer than the limit (max_line_bytes)");
        out.push(Effect::Client(Cow::Owned(reply::error(
            Some(&id),
            reply::INVALID_REQUEST,
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
        out: &mut Vec<Effect<'_>>,
    ) {
        let waiting = message::id_at_edges(head, tail)
            .filter(|id| self.calls.is_forwarded(id))
            .and_then(|id| self.calls.remove(&id).map(|call| (id, call)));
        let Some((id, call)) = waiting else {
            warn!(
                len,
                limit, "dropped a server message longer than the limit (max_line_bytes)"
            );
            return;
        };
        warn!(%id, len, limit, "dropped a server answer longer than the limit (max_line_bytes)");
        let error = reply::error(
            Some(&id),
            reply::INTERNAL_ERROR,
            &format!(
                "the MCP server's answer was {len} bytes, over the proxy's limit of {limit} \
                 (max_line_bytes); it was not passed on"
            ),
            None,
        );
        self.deliver(&call, Cow::Owned(error), out);
    }

    /// The child has exited: every request still waiting on it gets an error, so the client
    /// never hangs, and so does every call still waiting for a person (its question is
    /// withdrawn): the proxy is about to exit with its child.
    pub fn on_child_exit(&mut self, how: &str, out: &mut Vec<Effect<'static>>) {
        self.child_gone = true;
        self.issued.clear_child_requests();
        let message = format!("the MCP server exited ({how}) before answering this request");
        for (id, call) in self.calls.drain_forwarded() {
            let error = reply::error(Some(&id), reply::INTERNAL_ERROR, &message, None);
            self.deliver(&call, Cow::Owned(error), out);
        }
        let message = format!("the MCP server exited ({how}) while this call waited for approval");
        self.abandon_held(&message, out);
        self.abandon_store_held(&message, out);
    }
}

/// A line that is not strict JSON: answer under its id if one can be read at all.
pub(super) fn answer_unreadable(content: &[u8], why: &str, out: &mut Vec<Effect<'_>>) {
    let id = serde_json::from_slice::<serde_json::Value>(content)
        .ok()
        .and_then(|v| v.get("id").map(|id| id.to_string()))
        .and_then(|id| RequestId::from_json(id.as_bytes()));
    match id {
        Some(id) => {
            warn!(%id, "refused a client message that is not strict JSON: {why}");
            out.push(Effect::Client(Cow::Owned(reply::error(
                Some(&id),
                reply::PARSE_ERROR,
                &format!("Parse error: {why}; the message was not forwarded"),
                None,
            ))));
        }
        None => warn!("dropped a client message that is not strict JSON: {why}"),
    }
}

pub(super) fn child_gone_error(id: &RequestId) -> Vec<u8> {
    reply::error(
        Some(id),
        reply::INTERNAL_ERROR,
        "the MCP server is no longer running; the request was not delivered",
        None,
    )
}
