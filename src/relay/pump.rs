//! The two pumps: blocking threads, one per direction, that read a line, validate it, hand it
//! to the session under its lock, and carry out the effects that come back. Lines go to the
//! writers; everything else (timers, approval commands) goes to the supervisor, so a pump never
//! waits for anything but its own reads and writes.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::output::{ChildWriter, ClientWriter};
use super::pipe::Pipe;
use super::sink::{Batch, Handoff, LARGE_LINE, recycle};
use super::{Event, lock};
use crate::framing::{Frame, LineReader};
use crate::session::{Checked, Effect, Session};

/// What both pump threads share.
#[derive(Clone)]
pub(super) struct Pump {
    pub(super) max_line: usize,
    pub(super) session: Arc<Mutex<Session>>,
    pub(super) writer: Arc<ClientWriter>,
    pub(super) child: Arc<ChildWriter>,
    pub(super) events: mpsc::UnboundedSender<Event>,
}

impl Pump {
    /// Client to child: every line is judged by the session before anything reaches the child.
    pub(super) fn client_to_child(self, input: Pipe) {
        let mut reader = LineReader::new(input, self.max_line);
        let mut to_child = Batch::default();
        let mut to_client = Batch::default();
        let mut outs = Vec::new();
        loop {
            let pending = !to_child.is_empty() || !to_client.is_empty();
            if pending && !reader.has_frame_buffered() {
                self.send_to_client(&mut to_client, None);
                self.send_to_child(&mut to_child, None);
            }
            let line = match reader.read_frame() {
                Ok(Frame::Line(line)) => line,
                Ok(Frame::TooLong { len, head, tail }) => {
                    let mut answers = Vec::new();
                    lock(&self.session).on_client_too_long(
                        len,
                        head,
                        tail,
                        self.max_line,
                        &mut answers,
                    );
                    for effect in answers {
                        match effect {
                            Effect::Client(line) => {
                                self.send_to_client(&mut to_client, Some(&line));
                            }
                            other => self.elsewhere(other),
                        }
                    }
                    continue;
                }
                Ok(Frame::Eof) => break,
                Err(err) => {
                    warn!("cannot read from the client: {err}");
                    break;
                }
            };
            let mut judged = recycle(std::mem::take(&mut outs));
            let checked = Checked::check(line);
            lock(&self.session).on_checked_client_line(checked, Instant::now(), &mut judged);
            for effect in judged.drain(..) {
                match effect {
                    Effect::Child { line, request } => {
                        let alone = to_child.push(&line);
                        to_child.requests.extend(request);
                        if alone.is_some() || to_child.is_full() {
                            // The proxy's answers to earlier lines go out first, as they would
                            // without batching.
                            self.send_to_client(&mut to_client, None);
                            self.send_to_child(&mut to_child, alone);
                        }
                    }
                    Effect::Client(line) => {
                        let alone = to_client.push(&line);
                        if alone.is_some() || to_client.is_full() {
                            self.send_to_client(&mut to_client, alone);
                        }
                    }
                    other => self.elsewhere(other),
                }
            }
            outs = recycle(judged);
        }
        self.send_to_client(&mut to_client, None);
        self.send_to_child(&mut to_child, None);
        // Closing the child's input is the first step of a graceful shutdown.
        self.child.close();
        let _ = self.events.send(Event::ClientClosed);
    }

    /// Writes the batch, then `alone`, to the child. Once a write fails the child can take no
    /// more: the requests of this batch and later ones are answered here instead.
    fn send_to_child(&self, batch: &mut Batch, alone: Option<&[u8]>) {
        let written = self
            .child
            .write_lines(&batch.bytes, alone.unwrap_or_default());
        if written.is_err() && !batch.requests.is_empty() {
            let mut answers = Vec::new();
            {
                let mut session = lock(&self.session);
                for id in &batch.requests {
                    session.on_forward_failed(id, &mut answers);
                }
            }
            for effect in answers {
                match effect {
                    Effect::Client(line) => {
                        let _ = self.writer.write_lines(&line);
                    }
                    other => self.elsewhere(other),
                }
            }
        }
        batch.clear();
    }

    /// Effects that are not lines for this pump to write: the supervisor carries them out.
    fn elsewhere(&self, effect: Effect<'_>) {
        let event = match effect {
            Effect::Wake(at) => Event::Wake(at),
            Effect::RunApprover(job) => Event::RunApprover(job),
            Effect::CancelApprover(job) => Event::CancelApprover(job),
            Effect::CheckStore(job) => Event::CheckStore(job),
            // A line to the child produced on the child's side (the session never does that
            // today) or to the client from the client's side: owned, to the supervisor's writer.
            Effect::Child { line, request } => Event::Write(vec![Effect::Child {
                line: Cow::Owned(line.into_owned()),
                request,
            }]),
            Effect::Client(line) => {
                Event::Write(vec![Effect::Client(Cow::Owned(line.into_owned()))])
            }
        };
        if self.events.send(event).is_err() {
            debug!("the supervisor is gone; an effect was not carried out");
        }
    }
    /// Writes the batch, then `alone`, to the client.
    fn send_to_client(&self, batch: &mut Batch, alone: Option<&[u8]>) -> bool {
        let mut ok = true;
        for lines in [&batch.bytes[..], alone.unwrap_or_default()] {
            if !lines.is_empty() && self.writer.write_lines(lines).is_err() {
                ok = false;
                break;
            }
        }
        batch.clear();
        if !ok {
            let _ = self.events.send(Event::ClientGone);
        }
        ok
    }

    /// Child to client: only valid MCP messages reach the client.
    pub(super) fn child_to_client(self, stdout: Pipe) {
        let mut reader = LineReader::new(stdout, self.max_line);
        let mut to_client = Batch::default();
        let mut large = match Handoff::start(self.writer.clone()) {
            Ok(handoff) => Some(handoff),
            Err(err) => {
                warn!("cannot start the thread that writes large results: {err}");
                None
            }
        };
        let mut outs = Vec::new();
        let mut client_open = true;
        // The length of the line read last, once it is no longer borrowed from the reader.
        let mut last_len = 0;
        loop {
            // The first large line grows the pipe, for the lines after it.
            reader.get_mut().grow_for(last_len);
            if !to_client.is_empty() && !reader.has_frame_buffered() {
                client_open =
                    self.finish_large(&mut large) && self.send_to_client(&mut to_client, None);
            }
            let line = match reader.read_frame() {
                Ok(Frame::Line(line)) => line,
                Ok(Frame::TooLong { len, head, tail }) => {
                    let mut answers = Vec::new();
                    lock(&self.session).on_child_too_long(
                        len,
                        head,
                        tail,
                        self.max_line,
                        &mut answers,
                    );
                    for effect in answers {
                        match effect {
                            Effect::Client(line) if client_open => {
                                client_open = self.finish_large(&mut large)
                                    && self.send_to_client(&mut to_client, Some(&line));
                            }
                            Effect::Client(_) => {}
                            other => self.elsewhere(other),
                        }
                    }
                    continue;
                }
                Ok(Frame::Eof) => break,
                Err(err) => {
                    warn!("cannot read from the MCP server: {err}");
                    break;
                }
            };
            last_len = line.len();
            let mut judged = recycle(std::mem::take(&mut outs));
            let checked = Checked::check(line);
            lock(&self.session).on_checked_child_line(checked, &mut judged);
            // A large line forwarded as it was read goes to the writing thread in the reader's
            // own buffer, not copied.
            let whole_line = match judged.as_slice() {
                [Effect::Client(Cow::Borrowed(out))] => {
                    out.as_ptr() == line.as_ptr() && out.len() == line.len()
                }
                _ => false,
            };
            if whole_line && line.len() >= LARGE_LINE && client_open && large.is_some() {
                outs = recycle(judged);
                client_open =
                    self.finish_large(&mut large) && self.send_to_client(&mut to_client, None);
                if client_open && let Some(handoff) = &mut large {
                    handoff.hand_over_read(&mut reader);
                }
                continue;
            }
            for effect in judged.drain(..) {
                let line = match effect {
                    Effect::Client(line) => line,
                    other => {
                        self.elsewhere(other);
                        continue;
                    }
                };
                // Once the client is gone, keep reading so the child never blocks on a full
                // pipe.
                if !client_open {
                    continue;
                }
                let alone = to_client.push(&line);
                if alone.is_none() && !to_client.is_full() {
                    continue;
                }
                client_open = self.finish_large(&mut large);
                match (alone, &mut large) {
                    (Some(alone), Some(handoff)) if client_open && alone.len() >= LARGE_LINE => {
                        client_open = self.send_to_client(&mut to_client, None);
                        if client_open {
                            handoff.hand_over(alone);
                        }
                    }
                    _ if client_open => {
                        client_open = self.send_to_client(&mut to_client, alone);
                    }
                    _ => {}
                }
            }
            outs = recycle(judged);
        }
        if self.finish_large(&mut large) && client_open {
            self.send_to_client(&mut to_client, None);
        }
    }

    /// Waits until the large line in the hands of the writing thread, if any, is written;
    /// returns whether the client is still there.
    fn finish_large(&self, large: &mut Option<Handoff>) -> bool {
        let Some(handoff) = large else { return true };
        if handoff.finish() {
            return true;
        }
        let _ = self.events.send(Event::ClientGone);
        false
    }
}
