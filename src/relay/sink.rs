//! How lines leave a pump: gathered while more are ready ([`Batch`]), and large results written
//! from a thread of their own so the next one is read meanwhile ([`Handoff`]).

use std::io;
use std::ops::Range;
use std::sync::Arc;

use tracing::warn;

use super::output::ClientWriter;
use crate::framing::LineReader;
use crate::message::RequestId;
use crate::session::Effect;

/// Lines ready together are gathered into one write, up to about this size: enough to save most
/// write calls when many small messages arrive at once, and small enough that the next stage
/// (the child, or the client) starts on the first lines while the pump judges the rest. Larger
/// batches measured slower: pipelined calls/s fell from about 0.85x the byte relay's at 1 KiB
/// to 0.65x at 64 KiB, because the stages ran one after the other.
const FLUSH_BYTES: usize = 1024;
/// A line longer than this is not copied into a batch but written on its own, straight from
/// the read buffer.
const COPY_LIMIT: usize = 4 * 1024;

/// Whole lines bound for one destination, gathered while more lines are ready, with the client
/// requests they carry (so a failed write can be answered).
#[derive(Default)]
pub(super) struct Batch {
    pub(super) bytes: Vec<u8>,
    pub(super) requests: Vec<RequestId>,
}

impl Batch {
    pub(super) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Adds `line`, or returns it when it is too long to copy: the caller writes it on its own
    /// after this batch.
    pub(super) fn push<'l>(&mut self, line: &'l [u8]) -> Option<&'l [u8]> {
        if line.len() > COPY_LIMIT {
            return Some(line);
        }
        self.bytes.extend_from_slice(line);
        None
    }

    pub(super) fn is_full(&self) -> bool {
        self.bytes.len() >= FLUSH_BYTES
    }

    pub(super) fn clear(&mut self) {
        self.bytes.clear();
        self.requests.clear();
    }
}

/// Lines at least this long go to the client from a thread of their own (see [`Handoff`]).
pub(super) const LARGE_LINE: usize = 1024 * 1024;

/// Writes large lines to the client on a thread of its own, so that the server pump reads the
/// next message from the child while the client takes this one: a large result then crosses
/// the proxy in overlapping stages, as through a byte relay, instead of read, then write. It
/// holds at most one line, and the pump waits for it before writing anything else, so the
/// order of lines holds. A line forwarded as it was read travels in the reader's buffer, and
/// the reader goes on in the buffer that came back from the line before (any other line is
/// copied into that buffer): two buffers take turns, and nothing is copied.
pub(super) struct Handoff {
    lines: std::sync::mpsc::SyncSender<(Vec<u8>, Range<usize>)>,
    written: std::sync::mpsc::Receiver<(Vec<u8>, bool)>,
    spare: Vec<u8>,
    busy: bool,
    ok: bool,
}

impl Handoff {
    pub(super) fn start(writer: Arc<ClientWriter>) -> io::Result<Handoff> {
        let (lines, to_write) = std::sync::mpsc::sync_channel::<(Vec<u8>, Range<usize>)>(1);
        let (done, written) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("large-writer".into())
            .spawn(move || {
                for (buffer, line) in to_write {
                    let ok = writer.write_lines(&buffer[line]).is_ok();
                    if done.send((buffer, ok)).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Handoff {
            lines,
            written,
            spare: Vec::new(),
            busy: false,
            ok: true,
        })
    }

    /// Hands over a copy of `line`.
    pub(super) fn hand_over(&mut self, line: &[u8]) {
        let mut buffer = std::mem::take(&mut self.spare);
        buffer.clear();
        buffer.extend_from_slice(line);
        let len = buffer.len();
        self.send(buffer, 0..len);
    }

    /// Hands over the line `reader` just returned, in the reader's buffer (see
    /// [`LineReader::take_line`]).
    pub(super) fn hand_over_read<R>(&mut self, reader: &mut LineReader<R>) {
        match reader.take_line(&mut self.spare) {
            Some((buffer, line)) => self.send(buffer, line),
            None => {
                warn!("the large line to write was no longer in the reader's buffer");
                self.ok = false;
            }
        }
    }

    pub(super) fn send(&mut self, buffer: Vec<u8>, line: Range<usize>) {
        match self.lines.send((buffer, line)) {
            Ok(()) => self.busy = true,
            Err(_) => self.ok = false,
        }
    }

    /// Waits for the line in flight; returns whether every line so far was written.
    pub(super) fn finish(&mut self) -> bool {
        if self.busy {
            self.busy = false;
            match self.written.recv() {
                Ok((buffer, ok)) => {
                    self.spare = buffer;
                    self.ok &= ok;
                }
                Err(_) => self.ok = false,
            }
        }
        self.ok
    }
}

/// An empty vector with the allocation of `outs` but none of its borrows, so one allocation
/// serves every message of a pump. (Collecting a mapped `vec::IntoIter` into a vector of a type
/// with the same layout reuses the allocation.)
pub(super) fn recycle<'b>(mut outs: Vec<Effect<'_>>) -> Vec<Effect<'b>> {
    outs.clear();
    outs.into_iter().map(|_| unreachable!("cleared")).collect()
}
