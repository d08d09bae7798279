//! The proxy's stdout: the protocol channel to the client.
//!
//! [`ClientWriter`] is the one place in the program that writes to stdout. Lines from the child
//! and answers the proxy makes itself both go through it, whole lines at a time under one lock,
//! so they can never interleave mid-line. It does not buffer: each call is written before it
//! returns, so a line is never held back. Callers that have several lines ready at once pass
//! them together, which costs one write instead of one each. Logs go to stderr.

use std::io::{self, Write};
use std::sync::{Mutex, MutexGuard};

use super::pipe::Pipe;

/// Writes whole lines to the client.
pub struct ClientWriter {
    inner: Mutex<Inner>,
}

struct Inner {
    out: Pipe,
    /// Set by [`ClientWriter::close`]: nothing more may be written.
    closed: bool,
}

impl ClientWriter {
    /// The proxy's own stdout.
    pub fn stdout() -> io::Result<ClientWriter> {
        let out = Pipe::stdout()?;
        Ok(ClientWriter {
            inner: Mutex::new(Inner { out, closed: false }),
        })
    }

    /// Writes `lines`, one or more whole lines each ending in `\n`, blocking until they are
    /// written.
    pub fn write_lines(&self, lines: &[u8]) -> io::Result<()> {
        debug_assert_eq!(lines.last(), Some(&b'\n'));
        let mut inner = self.lock();
        if inner.closed {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        // When stdout is a pipe, the first large message grows it, so that it and the ones
        // after it reach the client in a sixteenth of the writes, reads and wake-ups.
        inner.out.grow_for(lines.len());
        inner.out.write_all(lines)?;
        inner.out.flush()
    }

    /// Refuses every later write, once a write in progress has finished: the proxy is about to
    /// exit, and a line must never be cut off by the exit.
    pub fn close(&self) {
        self.lock().closed = true;
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while writing leaves nothing inconsistent behind but a partial line, which
        // the next write cannot repair either way.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Writes whole lines to the child's stdin: the twin of [`ClientWriter`], and the one place
/// that writes there, whoever decided to forward (the client pump for most calls, the
/// supervisor for a call a person approved).
pub struct ChildWriter {
    /// `None` once closed or after a failed write: the child can take no more.
    stdin: Mutex<Option<Pipe>>,
}

impl ChildWriter {
    pub fn new(stdin: Pipe) -> ChildWriter {
        ChildWriter {
            stdin: Mutex::new(Some(stdin)),
        }
    }

    /// Writes `lines` then `more` (each whole lines, or empty), blocking until written. After
    /// a failed write every later write fails at once.
    pub fn write_lines(&self, lines: &[u8], more: &[u8]) -> io::Result<()> {
        let mut stdin = self.lock();
        let Some(pipe) = stdin.as_mut() else {
            return Err(io::ErrorKind::BrokenPipe.into());
        };
        let written = pipe.write_all(lines).and_then(|()| pipe.write_all(more));
        if let Err(err) = &written {
            tracing::debug!("cannot write to the MCP server: {err}");
            *stdin = None;
        }
        written
    }

    /// Closes the child's input, the first step of a graceful shutdown.
    pub fn close(&self) {
        self.lock().take();
    }

    fn lock(&self) -> MutexGuard<'_, Option<Pipe>> {
        // As for the client writer: a panic mid-write leaves nothing to repair.
        self.stdin
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
