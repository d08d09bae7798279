//! The server `scan` talks to: a child process with piped stdin and stdout, one JSON-RPC
//! request at a time, every wait bounded by the conversation's deadline. Its stderr is drained
//! so it can never block, and its last lines explain a failure. Stopping it closes its stdin,
//! then asks its process tree to stop, then kills the tree (`os::process`).

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use serde_json::{Value, json};

use super::starter::clean;
use crate::error::Error;
use crate::os::process::{self, Detach, Stop, Tree};

/// How long a server has to exit after its stdin closes, and again after SIGTERM, before it
/// is killed. The stdio transport's shutdown is exactly this sequence.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// The longest line read from the server; the proxy's own default limit, which fits the
/// largest `tools/list` page any real server sends.
const MAX_LINE_BYTES: usize = crate::config::DEFAULT_MAX_LINE_BYTES;

/// The last lines of the server's stderr kept to explain a failure.
const STDERR_TAIL_LINES: usize = 20;
/// A longer stderr line is kept in pieces of this size, so a server that never ends a line
/// cannot make the scan buffer without bound.
const STDERR_LINE_BYTES: usize = 4096;

/// What the server's stdout reader hands over.
enum Line {
    Message(Vec<u8>),
    TooLong,
    Failed(std::io::Error),
}

/// A running server: its stdin, the lines of its stdout, and the tail of its stderr.
pub(super) struct Server {
    child: Child,
    tree: Tree,
    stdin: Option<ChildStdin>,
    lines: Receiver<Line>,
    stderr: Arc<Mutex<VecDeque<String>>>,
    stderr_reader: thread::JoinHandle<()>,
    command: String,
    timeout: Duration,
    deadline: Instant,
    next_id: u64,
}

impl Server {
    pub(super) fn start(
        program: &OsString,
        args: &[OsString],
        command: &str,
        timeout: Duration,
    ) -> Result<Server, Error> {
        let spawn_error = |source| Error::Spawn {
            command: command.to_owned(),
            source,
        };
        let mut cmd = process::command(program);
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Its own process tree, so that stopping it stops what it started too (`uvx` runs the
        // server as its child), and nothing of it outlives `scan`.
        let guard = process::prepare(&mut cmd, Detach::Group).map_err(spawn_error)?;
        let mut child = cmd
            .spawn()
            .map_err(|err| spawn_error(process::spawn_error(&cmd, err)))?;
        let tree = guard.started(&child).map_err(spawn_error)?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");

        let (sender, lines) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            loop {
                let mut line = Vec::new();
                let limit = u64::try_from(MAX_LINE_BYTES).unwrap_or(u64::MAX) + 1;
                let line = match (&mut reader).take(limit).read_until(b'\n', &mut line) {
                    Ok(0) => return,
                    Ok(_) if line.len() > MAX_LINE_BYTES => Line::TooLong,
                    Ok(_) => Line::Message(line),
                    Err(err) => Line::Failed(err),
                };
                // After a line too long or a failed read, nothing more can be framed.
                let last = !matches!(line, Line::Message(_));
                if sender.send(line).is_err() || last {
                    return;
                }
            }
        });
        // Drained so that a chatty server never blocks on a full pipe; kept to explain a
        // failure.
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let kept = Arc::clone(&tail);
        let stderr_reader = thread::spawn(move || {
            let mut reader = BufReader::new(stderr);
            let mut line = Vec::new();
            loop {
                line.clear();
                // A line longer than this is kept in pieces: only its end matters here.
                let limit = STDERR_LINE_BYTES as u64;
                match (&mut reader).take(limit).read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                let mut kept = kept.lock().unwrap_or_else(PoisonError::into_inner);
                if kept.len() == STDERR_TAIL_LINES {
                    kept.pop_front();
                }
                kept.push_back(clean(String::from_utf8_lossy(&line).trim_end()));
            }
        });
        Ok(Server {
            child,
            tree,
            stdin,
            lines,
            stderr: tail,
            stderr_reader,
            command: command.to_owned(),
            timeout,
            deadline: Instant::now() + timeout,
            next_id: 1,
        })
    }

    /// Writes one message. A server that no longer reads is not an error here: its stdout
    /// closes too, and the answer that never comes says what happened.
    fn send(&mut self, message: &Value) {
        let mut line = message.to_string();
        line.push('\n');
        if let Some(stdin) = self.stdin.as_mut()
            && let Err(err) = stdin
                .write_all(line.as_bytes())
                .and_then(|()| stdin.flush())
        {
            tracing::debug!(%err, "cannot write to the server's stdin");
        }
    }

    pub(super) fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    /// Sends a request and waits for its answer: `Ok(Ok(result))`, `Ok(Err(error object))`,
    /// or `Err` when the server exits, sends a line too long, or does not answer before its
    /// deadline.
    pub(super) fn request(
        &mut self,
        method: &str,
        params: Value,
    ) -> Result<Result<Value, Value>, Error> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            let left = self.deadline.saturating_duration_since(Instant::now());
            let line = match self.lines.recv_timeout(left) {
                Ok(line) => line,
                Err(RecvTimeoutError::Timeout) => {
                    return Err(self.failure(format!(
                        "did not answer {method} within {:?} of its start",
                        self.timeout
                    )));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.exit_status();
                    return Err(self.failure(format!(
                        "closed its stdout before it answered {method}{status}"
                    )));
                }
            };
            let bytes = match line {
                Line::Message(bytes) => bytes,
                Line::TooLong => {
                    return Err(
                        self.failure(format!("sent a line longer than {MAX_LINE_BYTES} bytes"))
                    );
                }
                Line::Failed(err) => {
                    return Err(self.failure(format!("cannot read its stdout ({err})")));
                }
            };
            // Servers print banners and logs where they should not; only JSON-RPC counts.
            let Ok(Value::Object(message)) = serde_json::from_slice::<Value>(&bytes) else {
                let line = String::from_utf8_lossy(&bytes);
                tracing::debug!(line = ?line.trim_end(), "not a JSON-RPC message; skipped");
                continue;
            };
            let answer_id = message.get("id");
            if message.contains_key("method") {
                // A request of the server's own (roots/list, ping, ...): answered, so that it
                // does not wait on us.
                if let Some(request_id) = answer_id {
                    let reply = if message.get("method").and_then(Value::as_str) == Some("ping") {
                        json!({"jsonrpc": "2.0", "id": request_id, "result": {}})
                    } else {
                        json!({"jsonrpc": "2.0", "id": request_id,
                               "error": {"code": -32601, "message": "Method not found"}})
                    };
                    self.send(&reply);
                }
                continue;
            }
            if answer_id.and_then(Value::as_u64) != Some(id) {
                continue;
            }
            if let Some(result) = message.get("result") {
                return Ok(Ok(result.clone()));
            }
            if let Some(error) = message.get("error") {
                return Ok(Err(error.clone()));
            }
        }
    }

    /// Whether the process has exited.
    pub(super) fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// " (it exited: exit status: N)" when it has exited.
    fn exit_status(&mut self) -> String {
        // Its stdout closing and its exit are nearly simultaneous.
        let until = Instant::now() + Duration::from_millis(200);
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return format!(" (it exited: {status})"),
                Ok(None) if Instant::now() < until => thread::sleep(Duration::from_millis(10)),
                _ => return String::new(),
            }
        }
    }

    /// An error naming the server, with the last lines of its stderr.
    pub(super) fn failure(&self, what: String) -> Error {
        // A server that exited wrote its last words before; let them arrive.
        let until = Instant::now() + Duration::from_millis(200);
        while !self.stderr_reader.is_finished() && Instant::now() < until {
            thread::sleep(Duration::from_millis(5));
        }
        let mut message = format!("the MCP server `{}` {what}", self.command);
        let tail = self.stderr.lock().unwrap_or_else(PoisonError::into_inner);
        if !tail.is_empty() {
            message.push_str("; the last lines of its stderr:");
            for line in tail.iter() {
                message.push_str("\n  ");
                message.push_str(line);
            }
        }
        Error::Runtime(anyhow!(message))
    }

    /// Closes its stdin, then asks its tree to stop (SIGTERM where there are signals), then
    /// kills the tree, each after a grace period; reaps it. What it left behind ends with the
    /// tree.
    pub(super) fn stop(mut self) {
        drop(self.stdin.take());
        if self.exited_within(STOP_GRACE) {
            return;
        }
        if self.tree.stop(Stop::Terminate) && self.exited_within(STOP_GRACE) {
            return;
        }
        self.tree.kill();
        let _ = self.child.wait();
    }

    fn exited_within(&mut self, grace: Duration) -> bool {
        let until = Instant::now() + grace;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => return true,
                Ok(None) if Instant::now() >= until => return false,
                Ok(None) => thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}
