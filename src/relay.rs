//! The relay: two pumps between the client and the child, and the child's lifecycle.
//!
//! One pump reads the client's lines, the other the child's; each hands its lines to the shared
//! [`Session`] and writes what it returns. The session's lock is never held across I/O. The
//! main loop watches the child, the client's end of input and signals, and shuts the child down
//! the way the MCP stdio transport asks: close its input, wait, SIGTERM, wait, SIGKILL.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::io::{AsyncRead, AsyncWriteExt};
use tokio::process::{ChildStdin, ChildStdout};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::child::{self, ChildCommand, Spawned};
use crate::framing::{Frame, LineReader};
use crate::output::ClientWriter;
use crate::session::{Out, Session};

/// How long the child gets to exit on its own after its input is closed, before SIGTERM. With
/// [`TERM_GRACE`] it keeps the whole shutdown within the 2 s that SDK clients give a server
/// before they signal it themselves.
pub const CLOSE_GRACE: Duration = Duration::from_millis(1000);
/// How long the child gets after SIGTERM before SIGKILL.
pub const TERM_GRACE: Duration = Duration::from_millis(800);
/// How long the child's last output may take to arrive once it has exited (a grandchild can
/// hold its stdout open).
const DRAIN_GRACE: Duration = Duration::from_millis(500);

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
    let Spawned {
        mut child,
        stdin,
        stdout,
    } = child::spawn(command)
        .with_context(|| format!("cannot start the MCP server `{}`", command.display()))?;
    info!(command = %command.display(), pid = child.id(), "started the MCP server");

    let session = Arc::new(Mutex::new(session));
    let writer = Arc::new(ClientWriter::stdout());
    let (events, mut event_rx) = mpsc::unbounded_channel();

    let upstream = tokio::spawn(pump_client(
        tokio::io::stdin(),
        stdin,
        max_line,
        session.clone(),
        writer.clone(),
        events.clone(),
    ));
    let downstream = tokio::spawn(pump_child(
        stdout,
        max_line,
        session.clone(),
        writer.clone(),
        events,
    ));

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
    if tokio::time::timeout(DRAIN_GRACE, downstream).await.is_err() {
        debug!("the MCP server's output stayed open after it exited");
    }
    upstream.abort();
    let unanswered = session.lock().expect("session lock").on_child_exit(&how);
    for line in unanswered {
        if writer.write_line(&line).await.is_err() {
            break;
        }
    }
    Ok(child::exit_code(status))
}

/// Client to child: every line is judged by the session before anything reaches the child.
async fn pump_client(
    input: impl AsyncRead + Unpin,
    mut child_stdin: ChildStdin,
    max_line: usize,
    session: Arc<Mutex<Session>>,
    writer: Arc<ClientWriter>,
    events: mpsc::UnboundedSender<Event>,
) {
    let mut reader = LineReader::new(input, max_line);
    let mut child_open = true;
    loop {
        let line = match reader.next_frame().await {
            Ok(Frame::Line(line)) => line,
            Ok(Frame::TooLong { len }) => {
                warn!(
                    len,
                    max_line, "dropped a client message longer than the limit (max_line_bytes)"
                );
                continue;
            }
            Ok(Frame::Eof) => break,
            Err(err) => {
                warn!("cannot read from the client: {err}");
                break;
            }
        };
        let mut outs = Vec::new();
        session
            .lock()
            .expect("session lock")
            .on_client_line(line, Instant::now(), &mut outs);
        for out in outs {
            match out {
                Out::Child { line, request } => {
                    if child_open && child_stdin.write_all(&line).await.is_ok() {
                        continue;
                    }
                    child_open = false;
                    let Some(id) = request else { continue };
                    let mut answers = Vec::new();
                    session
                        .lock()
                        .expect("session lock")
                        .on_forward_failed(&id, &mut answers);
                    for answer in answers {
                        if let Out::Client(line) = answer {
                            let _ = writer.write_line(&line).await;
                        }
                    }
                }
                Out::Client(line) => {
                    if writer.write_line(&line).await.is_err() {
                        let _ = events.send(Event::ClientGone);
                    }
                }
            }
        }
    }
    // Closing the child's input is the first step of a graceful shutdown.
    drop(child_stdin);
    let _ = events.send(Event::ClientClosed);
}

/// Child to client: only valid MCP messages reach the client.
async fn pump_child(
    stdout: ChildStdout,
    max_line: usize,
    session: Arc<Mutex<Session>>,
    writer: Arc<ClientWriter>,
    events: mpsc::UnboundedSender<Event>,
) {
    let mut reader = LineReader::new(stdout, max_line);
    let mut client_open = true;
    loop {
        let line = match reader.next_frame().await {
            Ok(Frame::Line(line)) => line,
            Ok(Frame::TooLong { len }) => {
                warn!(
                    len,
                    max_line, "dropped a server message longer than the limit (max_line_bytes)"
                );
                continue;
            }
            Ok(Frame::Eof) => break,
            Err(err) => {
                warn!("cannot read from the MCP server: {err}");
                break;
            }
        };
        let mut outs = Vec::new();
        session
            .lock()
            .expect("session lock")
            .on_child_line(line, &mut outs);
        for out in outs {
            let line = match out {
                Out::Client(line) => line,
                Out::Child { .. } => continue,
            };
            // Once the client is gone, keep reading so the child never blocks on a full pipe.
            if client_open && writer.write_line(&line).await.is_err() {
                client_open = false;
                let _ = events.send(Event::ClientGone);
            }
        }
    }
}
