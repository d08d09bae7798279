//! The ids the proxy issues to the client, and what each one means.
//!
//! Requests going to the client carry ids the proxy allocates: a request from the child is
//! renumbered, and a request of the proxy's own (the `elicitation/create` that asks a person to
//! approve a call) gets one from the same counter, so the two can never collide and the client's
//! answer finds its way back to the right place.

use std::collections::HashMap;

use crate::message::RequestId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Outstanding {
    /// A request from the child, under the child's own id.
    ChildRequest(RequestId),
    /// The proxy's question to a person about the held call `call`.
    Approval { call: RequestId },
}

#[derive(Debug, Default)]
pub(super) struct Issued {
    next: u64,
    by_id: HashMap<u64, Outstanding>,
    /// The child's ids of its requests in flight, to the proxy's, for its cancellations.
    child_ids: HashMap<RequestId, u64>,
}

impl Issued {
    pub(super) fn issue(&mut self, what: Outstanding) -> u64 {
        let id = self.next;
        self.next += 1;
        if let Outstanding::ChildRequest(child_id) = &what {
            self.child_ids.insert(child_id.clone(), id);
        }
        self.by_id.insert(id, what);
        id
    }

    /// The meaning of the client's answer to `id`; the id is used up.
    pub(super) fn take(&mut self, id: &RequestId) -> Option<Outstanding> {
        let RequestId::Small(n) = id else {
            return None;
        };
        let what = self.by_id.remove(n)?;
        if let Outstanding::ChildRequest(child_id) = &what {
            self.child_ids.remove(child_id);
        }
        Some(what)
    }

    /// The proxy's id for the child's request `child_id`, which is being cancelled.
    pub(super) fn take_child_request(&mut self, child_id: &RequestId) -> Option<u64> {
        let id = self.child_ids.remove(child_id)?;
        self.by_id.remove(&id);
        Some(id)
    }

    /// Forgets `id` without an answer (the proxy withdrew its question).
    pub(super) fn forget(&mut self, id: u64) {
        self.by_id.remove(&id);
    }

    /// The child is gone: its requests will never be answered by anyone.
    pub(super) fn clear_child_requests(&mut self) {
        self.by_id
            .retain(|_, what| !matches!(what, Outstanding::ChildRequest(_)));
        self.child_ids.clear();
    }
}
