//! 2025-03-26 batches: a JSON array of requests from the client, answered by one array.
//!
//! Each element is judged on its own and forwarded on its own line; the batch waits for every
//! element that entered the table of requests in flight (forwarded or held), counted when it
//! enters, and its answer goes out when the last of them is answered.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Instant;

use tracing::warn;

use super::era::BATCH_PROTOCOL;
use super::{Effect, Session};
use crate::json::{self, Kind};
use crate::message::RequestId;
use crate::reply;

#[derive(Debug, Default)]
pub(super) struct Batches {
    next: u64,
    open: HashMap<u64, Batch>,
}

/// A client batch being answered: its answers so far, and how many of its requests are still
/// in flight.
#[derive(Debug, Default)]
struct Batch {
    answers: Vec<Vec<u8>>,
    waiting: usize,
}

impl Batches {
    fn open(&mut self) -> u64 {
        let id = self.next;
        self.next += 1;
        self.open.insert(id, Batch::default());
        id
    }

    /// An answer the proxy made itself for an element.
    pub(super) fn add_answer(&mut self, batch: u64, line: Vec<u8>) {
        if let Some(open) = self.open.get_mut(&batch) {
            open.answers.push(without_newline(line));
        }
    }

    /// An element entered the table of requests in flight.
    pub(super) fn wait_for(&mut self, batch: u64) {
        if let Some(open) = self.open.get_mut(&batch) {
            open.waiting += 1;
        }
    }

    /// An element in flight was answered; the batch's line once it is complete.
    pub(super) fn answered(&mut self, batch: u64, line: Vec<u8>) -> Option<Vec<u8>> {
        let open = self.open.get_mut(&batch)?;
        open.answers.push(without_newline(line));
        open.waiting = open.waiting.saturating_sub(1);
        if open.waiting > 0 {
            return None;
        }
        let done = self.open.remove(&batch)?;
        Some(batch_line(&done.answers))
    }

    /// An element in flight ended without an answer (the client cancelled it); the batch's
    /// line once it is complete.
    pub(super) fn answered_without(&mut self, batch: u64) -> Option<Vec<u8>> {
        let open = self.open.get_mut(&batch)?;
        open.waiting = open.waiting.saturating_sub(1);
        if open.waiting > 0 {
            return None;
        }
        let done = self.open.remove(&batch)?;
        (!done.answers.is_empty()).then(|| batch_line(&done.answers))
    }

    /// After every element was judged: the batch's line if nothing is in flight (`None` also
    /// when there is nothing to answer).
    fn close_if_done(&mut self, batch: u64) -> Option<Vec<u8>> {
        if self.open.get(&batch)?.waiting > 0 {
            return None;
        }
        let done = self.open.remove(&batch)?;
        (!done.answers.is_empty()).then(|| batch_line(&done.answers))
    }
}

impl Session {
    /// A JSON array from the client. It is never forwarded as it is: under protocol 2025-03-26,
    /// the only one with batches, each element is judged and forwarded on its own line and the
    /// answers go back as one array; under any other version each request in it is refused.
    pub(super) fn on_client_batch<'a>(
        &mut self,
        content: &'a [u8],
        now: Instant,
        out: &mut Vec<Effect<'a>>,
    ) {
        if !self.era.has_batches() {
            self.refuse_batch(content, out);
            return;
        }
        let batch = self.batches.open();
        let mut elements = 0;
        for element in json::elements(content) {
            elements += 1;
            if json::kind(element) != Kind::Object {
                self.batches.add_answer(
                    batch,
                    reply::error(
                        None,
                        reply::INVALID_REQUEST,
                        "Invalid Request: a batch element must be an object",
                        None,
                    ),
                );
                continue;
            }
            let walk = json::Outline::default();
            let line = Cow::Owned(as_line(element));
            self.on_client_object(element, &walk, line, now, Some(batch), out);
        }
        if elements == 0 {
            self.batches.open.remove(&batch);
            out.push(Effect::Client(Cow::Owned(reply::error(
                None,
                reply::INVALID_REQUEST,
                "Invalid Request: an empty batch",
                None,
            ))));
        } else if let Some(line) = self.batches.close_if_done(batch) {
            out.push(Effect::Client(Cow::Owned(line)));
        }
    }

    /// Refuses a batch under a protocol version without batches: each request in it gets an
    /// error of its own, and nothing reaches the child.
    fn refuse_batch(&self, content: &[u8], out: &mut Vec<Effect<'_>>) {
        let why = match self.era.server_version() {
            Some(version) => format!("protocol version {version} has no JSON-RPC batches"),
            None => format!("JSON-RPC batches belong only to protocol version {BATCH_PROTOCOL}"),
        };
        let mut answered = false;
        for element in json::elements(content) {
            if let Some(id) = json::get(element, "id").and_then(RequestId::from_json) {
                answered = true;
                out.push(Effect::Client(Cow::Owned(reply::error(
                    Some(&id),
                    reply::INVALID_REQUEST,
                    &format!("Invalid Request: {why}; send each message on its own line"),
                    None,
                ))));
            }
        }
        if !answered {
            warn!("dropped a client batch with no request ids: {why}");
        }
    }
}

/// An element of a batch as a line of its own.
pub(super) fn as_line(element: &[u8]) -> Vec<u8> {
    let mut line = Vec::with_capacity(element.len() + 1);
    line.extend_from_slice(element);
    line.push(b'\n');
    line
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
