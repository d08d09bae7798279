//! Client requests in flight: each with the stage it is in, its progress token and the batch
//! whose single answer waits for it.
//!
//! A request enters the table when the proxy takes it on, whether it goes to the child at once
//! or waits (for a person's approval) first, and leaves it when it is answered, refused or
//! cancelled. Everything that asks "is the client waiting for this?" asks here.

use std::collections::HashMap;

use crate::message::RequestId;

use super::fleet::StoreHeld;
use super::held::Held;

/// What a forwarded client request was, for reading its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Purpose {
    Initialize,
    Discover,
    ToolsList,
    Other,
}

impl Purpose {
    pub(super) fn of(method: &str) -> Purpose {
        match method {
            "initialize" => Purpose::Initialize,
            "server/discover" => Purpose::Discover,
            "tools/list" => Purpose::ToolsList,
            _ => Purpose::Other,
        }
    }
}

/// Where a request in flight is.
#[derive(Debug)]
pub(super) enum Stage {
    /// With the child, which will answer it.
    Forwarded(Purpose),
    /// A `tools/call` held back until a person decides; its line is owned here.
    AwaitingApproval(Box<Held>),
    /// A `tools/call` held back until the store admits it under a fleet-wide limit.
    AwaitingStore(Box<StoreHeld>),
}

#[derive(Debug)]
pub(super) struct Call {
    pub(super) stage: Stage,
    pub(super) progress_token: Option<RequestId>,
    /// The client batch this request came in, whose single answer waits for it.
    pub(super) batch: Option<u64>,
}

#[derive(Debug, Default)]
pub(super) struct Calls {
    by_id: HashMap<RequestId, Call>,
    /// How many of them wait for a person (bounded by `held::MAX_HELD_CALLS`).
    awaiting_approval: usize,
    /// Forwarded requests the client cancelled: the server should not answer them, so they do
    /// not count against the cap on requests in flight.
    cancelled: std::collections::HashSet<RequestId>,
    /// Progress tokens of the requests in flight, to the request each belongs to.
    progress: HashMap<RequestId, RequestId>,
}

impl Calls {
    pub(super) fn contains(&self, id: &RequestId) -> bool {
        self.by_id.contains_key(id)
    }

    pub(super) fn insert(&mut self, id: RequestId, call: Call) {
        if let Some(token) = &call.progress_token {
            self.progress.insert(token.clone(), id.clone());
        }
        if matches!(call.stage, Stage::AwaitingApproval(_)) {
            self.awaiting_approval += 1;
        }
        self.cancelled.remove(&id);
        if let Some(old) = self.by_id.insert(id, call)
            && matches!(old.stage, Stage::AwaitingApproval(_))
        {
            self.awaiting_approval -= 1;
        }
    }

    /// How many requests are in flight, at every stage, but those the client cancelled.
    pub(super) fn active(&self) -> usize {
        self.by_id.len() - self.cancelled.len()
    }

    /// Notes that the client cancelled a request in flight.
    pub(super) fn mark_cancelled(&mut self, id: &RequestId) {
        if self.by_id.contains_key(id) {
            self.cancelled.insert(id.clone());
        }
    }

    /// How many calls wait for a person.
    pub(super) fn awaiting_approval(&self) -> usize {
        self.awaiting_approval
    }

    pub(super) fn get(&self, id: &RequestId) -> Option<&Call> {
        self.by_id.get(id)
    }

    pub(super) fn get_mut(&mut self, id: &RequestId) -> Option<&mut Call> {
        self.by_id.get_mut(id)
    }

    pub(super) fn remove(&mut self, id: &RequestId) -> Option<Call> {
        let call = self.by_id.remove(id)?;
        self.cancelled.remove(id);
        if matches!(call.stage, Stage::AwaitingApproval(_)) {
            self.awaiting_approval -= 1;
        }
        if let Some(token) = &call.progress_token {
            self.progress.remove(token);
        }
        Some(call)
    }

    /// Whether the child is working on `id`.
    pub(super) fn is_forwarded(&self, id: &RequestId) -> bool {
        matches!(
            self.by_id.get(id),
            Some(Call {
                stage: Stage::Forwarded(_),
                ..
            })
        )
    }

    /// Whether progress under `token` belongs to a request the child is working on.
    pub(super) fn forwarded_progress(&self, token: &RequestId) -> bool {
        self.progress
            .get(token)
            .is_some_and(|id| self.is_forwarded(id))
    }

    /// Takes every request the child was working on; held ones stay.
    pub(super) fn drain_forwarded(&mut self) -> Vec<(RequestId, Call)> {
        let ids: Vec<RequestId> = self
            .by_id
            .iter()
            .filter(|(_, call)| matches!(call.stage, Stage::Forwarded(_)))
            .map(|(id, _)| id.clone())
            .collect();
        ids.into_iter()
            .filter_map(|id| self.remove(&id).map(|call| (id, call)))
            .collect()
    }

    /// The ids of the calls waiting for the store.
    pub(super) fn store_held_ids(&self) -> Vec<RequestId> {
        self.by_id
            .iter()
            .filter(|(_, call)| matches!(call.stage, Stage::AwaitingStore(_)))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The ids of the held calls, for a pass over them.
    pub(super) fn held_ids(&self) -> Vec<RequestId> {
        self.by_id
            .iter()
            .filter(|(_, call)| matches!(call.stage, Stage::AwaitingApproval(_)))
            .map(|(id, _)| id.clone())
            .collect()
    }
}
