//! What the session asks the relay to do, and the validated lines it takes in.

use std::borrow::Cow;
use std::time::Instant;

use crate::json;
use crate::message::RequestId;

/// One thing the session wants done. The session does no I/O: the caller (a pump, or the
/// supervisor after a timer or a completion) carries out every effect, in order, through one
/// exhaustive `match`, so nothing the session produces can be dropped by omission.
#[derive(Debug, PartialEq, Eq)]
pub enum Effect<'a> {
    /// A line to the child's stdin. `request` names the client request it carries, so that a
    /// failed write can be answered.
    Child {
        line: Cow<'a, [u8]>,
        request: Option<RequestId>,
    },
    /// A line to the client (the proxy's stdout).
    Client(Cow<'a, [u8]>),
    /// Call [`Session::on_tick`](super::Session::on_tick) at (or soon after) this instant: a
    /// call is waiting for something that has a deadline.
    Wake(Instant),
    /// Run the approval command for a held call (see `approval::command`).
    RunApprover(crate::approval::ApproverJob),
    /// Stop the approval command of job `.0`, if it still runs: its question was answered
    /// another way, withdrawn or timed out.
    CancelApprover(u64),
    /// Ask the store whether a call under a fleet-wide limit is admitted; the answer comes
    /// back through [`Session::on_store_done`](super::Session::on_store_done).
    CheckStore(super::fleet::StoreJob),
}

/// A line (ending in `\n`) with the verdict of strict validation, which needs no session
/// state: the relay validates a line before it takes the session's lock, so the lock is held
/// only for the work that needs the state. Only [`Checked::check`] makes one, so no line reaches
/// the session without its validation.
pub struct Checked<'a> {
    pub(super) line: &'a [u8],
    /// The verdict, with the outline of the line's members when it is valid.
    pub(super) valid: Result<json::Outline, json::JsonError>,
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
