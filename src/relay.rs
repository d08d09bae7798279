//! The relay: two pumps between the client and the child, and the child's lifecycle.
//!
//! The pumps are two plain threads doing blocking I/O, one per direction, as a byte relay does:
//! a message costs a read, the session's judgement and a write, with no hand-off to an async
//! runtime in between. Each pump validates a line, hands it to the shared [`Session`] and
//! writes what it returns; the session's lock is held neither across I/O nor for validation,
//! the longest part of the work on a line. Lines that are ready together (the
//! next one is already read) are written together, and nothing is held back once the next read
//! could block. The async runtime only supervises: it watches the child, the client's end of
//! input and signals, and shuts the child down the way the MCP stdio transport asks: close its
//! input, wait, SIGTERM, wait, SIGKILL.

use std::borrow::Cow;
use std::io::{self, Write};
use std::ops::Range;
use std::os::fd::AsFd as _;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::child::{self, ChildCommand, Spawned};
use crate::framing::{Frame, LineReader};
use crate::message::RequestId;
use crate::output::ClientWriter;
use crate::pipe::Pipe;
use crate::session::{Checked, Out, Session};

/// How long the child gets to exit on its own after its input is closed, before SIGTERM. With
/// [`TERM_GRACE`] it keeps the whole shutdown within the 2 s that SDK clients give a server
/// before they signal it themselves.
pub const CLOSE_GRACE: Duration = Duration::from_millis(1000);
/// How long the child gets after SIGTERM before SIGKILL.
pub const TERM_GRACE: Duration = Duration::from_millis(800);
/// How long the child's last output may take to arrive once it has exited (a grandchild can
/// hold its stdout open).
const DRAIN_GRACE: Duration = Duration::from_millis(500);
/// Lines ready together are gathered into one write, up to about this size: enough to save most
/// write calls when many small messages arrive at once, and small enough that the next stage
/// (the child, or the client) starts on the first lines while the pump judges the rest. Larger
/// batches measured slower: pipelined calls/s fell from about 0.85x the byte relay's at 1 KiB
/// to 0.65x at 64 KiB, because the stages ran one after the other.
const FLUSH_BYTES: usize = 1024;
/// A line longer than this is not copied into a batch but written on its own, straight from
/// the read buffer.
const COPY_LIMIT: usize = 4 * 1024;

/// What the pumps tell the main loop.
#[derive(Debug)]
enum Event {
    /// The client closed our stdin.
    ClientClosed,
    /// The client stopped reading our stdout.
    ClientGone,
}

/// The next step of a shutdown in progress.
#[derive(Debug, Clone, Copy)]
enum Escalation {
    Term,
    Kill,
}

/// Runs the child and relays until it exits; returns the exit code the proxy should end with.
pub async fn run(command: &ChildCommand, session: Session, max_line: usize) -> anyhow::Result<u8> {
    // Our own ends first: if stdin or stdout is unusable, no server is started.
    let client_input = Pipe::duplicate(io::stdin().as_fd()).context("cannot read stdin")?;
    let writer = Arc::new(ClientWriter::stdout().context("cannot write to stdout")?);
    let Spawned {
        mut child,
        stdin,
        stdout,
    } = child::spawn(command)
        .with_context(|| format!("cannot start the MCP server `{}`", command.display()))?;
    info!(command = %command.display(), pid = child.id(), "started the MCP server");

    let session = Arc::new(Mutex::new(session));
    let (events, mut event_rx) = mpsc::unbounded_channel();
    let (drained, drained_rx) = oneshot::channel::<()>();

    let pump = Pump {
        max_line,
        session: session.clone(),
        writer: writer.clone(),
        events,
    };
    let upstream = pump.clone();
    std::thread::Builder::new()
        .name("client-pump".into())
        .spawn(move || upstream.client_to_child(client_input, stdin))
        .context("cannot start the client pump thread")?;
    std::thread::Builder::new()
        .name("server-pump".into())
        .spawn(move || {
            pump.child_to_client(stdout);
            let _ = drained.send(());
        })
        .context("cannot start the server pump thread")?;

    let mut sigterm = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut sigint = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut escalation: Option<(Instant, Escalation)> = None;
    let mut closing = false;

    let status = loop {
        let deadline = escalation.map(|(at, _)| tokio::time::Instant::from_std(at));
        tokio::select! {
            status = child.wait() => break status.context("cannot wait for the MCP server")?,
            Some(event) = event_rx.recv(), if !closing => {
                debug!(?event, "the client is done; shutting the MCP server down");
                closing = true;
                escalation = Some((Instant::now() + CLOSE_GRACE, Escalation::Term));
            }
            _ = sigterm.recv() => {
                info!("received SIGTERM; passing it to the MCP server");
                child::signal(&child, libc::SIGTERM);
                escalation = Some((Instant::now() + TERM_GRACE, Escalation::Kill));
            }
            _ = sigint.recv() => {
                info!("received SIGINT; passing it to the MCP server");
                child::signal(&child, libc::SIGINT);
                escalation = Some((Instant::now() + TERM_GRACE, Escalation::Kill));
            }
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)), if deadline.is_some() => {
                match escalation.take().map(|(_, step)| step) {
                    Some(Escalation::Term) => {
                        info!("the MCP server did not exit after its input closed; sending SIGTERM");
                        child::signal(&child, libc::SIGTERM);
                        escalation = Some((Instant::now() + TERM_GRACE, Escalation::Kill));
                    }
                    Some(Escalation::Kill) => {
                        warn!("the MCP server did not exit after SIGTERM; sending SIGKILL");
                        child::signal(&child, libc::SIGKILL);
                    }
                    None => {}
                }
            }
        }
    };
    let how = child::describe(status);
    info!("the MCP server exited ({how})");

    // Let its last lines through before answering what it left unanswered.
    if tokio::time::timeout(DRAIN_GRACE, drained_rx).await.is_err() {
        debug!("the MCP server's output stayed open after it exited");
    }
    // From here on the client pump answers new requests itself (the session knows the child is
    // gone); the process exits once the writer is closed.
    let unanswered = lock(&session).on_child_exit(&how);
    let finished = tokio::task::spawn_blocking(move || {
        for line in unanswered {
            if writer.write_lines(&line).is_err() {
                break;
            }
        }
        writer.close();
    });
    let _ = finished.await;
    Ok(child::exit_code(status))
}

fn lock(session: &Mutex<Session>) -> MutexGuard<'_, Session> {
    session.lock().expect("session lock")
}

/// What both pump threads share.
#[derive(Clone)]
struct Pump {
    max_line: usize,
    session: Arc<Mutex<Session>>,
    writer: Arc<ClientWriter>,
    events: mpsc::UnboundedSender<Event>,
}

/// Whole lines bound for one destination, gathered while more lines are ready, with the client
/// requests they carry (so a failed write can be answered).
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    requests: Vec<RequestId>,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Adds `line`, or returns it when it is too long to copy: the caller writes it on its own
    /// after this batch.
    fn push<'l>(&mut self, line: &'l [u8]) -> Option<&'l [u8]> {
        if line.len() > COPY_LIMIT {
            return Some(line);
        }
        self.bytes.extend_from_slice(line);
        None
    }

    fn is_full(&self) -> bool {
        self.bytes.len() >= FLUSH_BYTES
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.requests.clear();
    }
}

impl Pump {
    /// Client to child: every line is judged by the session before anything reaches the child.
    fn client_to_child(self, input: Pipe, mut child_stdin: Pipe) {
        let mut reader = LineReader::new(input, self.max_line);
        let mut to_child = Batch::default();
        let mut to_client = Batch::default();
        let mut outs = Vec::new();
        let mut child_open = true;
        loop {
            let pending = !to_child.is_empty() || !to_client.is_empty();
            if pending && !reader.has_frame_buffered() {
                self.send_to_client(&mut to_client, None);
                self.send_to_child(&mut to_child, None, &mut child_stdin, &mut child_open);
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
                    for answer in answers {
                        if let Out::Client(line) = answer {
                            self.send_to_client(&mut to_client, Some(&line));
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
            for out in judged.drain(..) {
                match out {
                    Out::Child { line, request } => {
                        let alone = to_child.push(&line);
                        to_child.requests.extend(request);
                        if alone.is_some() || to_child.is_full() {
                            // The proxy's answers to earlier lines go out first, as they would
                            // without batching.
                            self.send_to_client(&mut to_client, None);
                            self.send_to_child(
                                &mut to_child,
                                alone,
                                &mut child_stdin,
                                &mut child_open,
                            );
                        }
                    }
                    Out::Client(line) => {
                        let alone = to_client.push(&line);
                        if alone.is_some() || to_client.is_full() {
                            self.send_to_client(&mut to_client, alone);
                        }
                    }
                }
            }
            outs = recycle(judged);
        }
        self.send_to_client(&mut to_client, None);
        self.send_to_child(&mut to_child, None, &mut child_stdin, &mut child_open);
        // Closing the child's input is the first step of a graceful shutdown.
        drop(child_stdin);
        let _ = self.events.send(Event::ClientClosed);
    }

    /// Writes the batch, then `alone`, to the child. Once a write fails the child can take no
    /// more: the requests of this batch and later ones are answered here instead.
    fn send_to_child(
        &self,
        batch: &mut Batch,
        alone: Option<&[u8]>,
        child_stdin: &mut Pipe,
        child_open: &mut bool,
    ) {
        if *child_open {
            let written = child_stdin
                .write_all(&batch.bytes)
                .and_then(|()| child_stdin.write_all(alone.unwrap_or_default()));
            if let Err(err) = written {
                debug!("cannot write to the MCP server: {err}");
                *child_open = false;
            }
        }
        if !*child_open && !batch.requests.is_empty() {
            let mut answers = Vec::new();
            {
                let mut session = lock(&self.session);
                for id in &batch.requests {
                    session.on_forward_failed(id, &mut answers);
                }
            }
            for answer in answers {
                if let Out::Client(line) = answer {
                    let _ = self.writer.write_lines(&line);
                }
            }
        }
        batch.clear();
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
    fn child_to_client(self, stdout: Pipe) {
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
                    for answer in answers {
                        if let Out::Client(line) = answer
                            && client_open
                        {
                            client_open = self.finish_large(&mut large)
                                && self.send_to_client(&mut to_client, Some(&line));
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
                [Out::Client(Cow::Borrowed(out))] => {
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
            for out in judged.drain(..) {
                let Out::Client(line) = out else { continue };
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

/// Lines at least this long go to the client from a thread of their own (see [`Handoff`]).
const LARGE_LINE: usize = 1024 * 1024;

/// Writes large lines to the client on a thread of its own, so that the server pump reads the
/// next message from the child while the client takes this one: a large result then crosses
/// the proxy in overlapping stages, as through a byte relay, instead of read, then write. It
/// holds at most one line, and the pump waits for it before writing anything else, so the
/// order of lines holds. A line forwarded as it was read travels in the reader's buffer, and
/// the reader goes on in the buffer that came back from the line before (any other line is
/// copied into that buffer): two buffers take turns, and nothing is copied.
struct Handoff {
    lines: std::sync::mpsc::SyncSender<(Vec<u8>, Range<usize>)>,
    written: std::sync::mpsc::Receiver<(Vec<u8>, bool)>,
    spare: Vec<u8>,
    busy: bool,
    ok: bool,
}

impl Handoff {
    fn start(writer: Arc<ClientWriter>) -> io::Result<Handoff> {
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
    fn hand_over(&mut self, line: &[u8]) {
        let mut buffer = std::mem::take(&mut self.spare);
        buffer.clear();
        buffer.extend_from_slice(line);
        let len = buffer.len();
        self.send(buffer, 0..len);
    }

    /// Hands over the line `reader` just returned, in the reader's buffer (see
    /// [`LineReader::take_line`]).
    fn hand_over_read<R>(&mut self, reader: &mut LineReader<R>) {
        match reader.take_line(&mut self.spare) {
            Some((buffer, line)) => self.send(buffer, line),
            None => {
                warn!("the large line to write was no longer in the reader's buffer");
                self.ok = false;
            }
        }
    }

    fn send(&mut self, buffer: Vec<u8>, line: Range<usize>) {
        match self.lines.send((buffer, line)) {
            Ok(()) => self.busy = true,
            Err(_) => self.ok = false,
        }
    }

    /// Waits for the line in flight; returns whether every line so far was written.
    fn finish(&mut self) -> bool {
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
fn recycle<'b>(mut outs: Vec<Out<'_>>) -> Vec<Out<'b>> {
    outs.clear();
    outs.into_iter().map(|_| unreachable!("cleared")).collect()
}
