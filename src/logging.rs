//! The proxy's stderr: a log channel that nothing ever waits on.
//!
//! Some hosts never read a server's stderr. Once its pipe is full (64 KiB on Linux, a few hundred
//! lines), a plain `write(2)` to stderr blocks, and a log line written by a pump or under the
//! session's lock would stall every message after it. So no thread of the proxy writes stderr
//! itself: log lines (the proxy's own, formatted by `tracing`, and the child's, read from its
//! stderr pipe by a thread of their own) are handed to one writer thread through a queue bounded
//! by bytes. A hand-off never blocks: when the queue is full the line is dropped and counted, and
//! the writer says how many were lost as soon as stderr takes writes again. The shared stderr
//! itself stays blocking (a terminal or a pipe shared with other processes keeps its mode).
//!
//! At exit, [`flush`] waits a bounded time for the queue to drain, so a host that reads stderr
//! sees every line and a host that does not is not kept waiting for an exit.

use std::collections::VecDeque;
use std::io::{self, BufRead as _, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// How many bytes of log lines may wait for stderr. Past it, lines are dropped and counted.
pub const QUEUE_BYTES: usize = 1024 * 1024;
/// The longest line of the child's stderr passed on as one piece; a longer one is passed on in
/// pieces of this size, so one endless line cannot take the whole queue.
const CHILD_LINE_BYTES: usize = 16 * 1024;

/// Sends logs to stderr through the queue: `--log-level`, else RUST_LOG, else "info".
pub fn init(level: Option<&str>) {
    let filter = match level {
        Some(level) => EnvFilter::try_new(level),
        None => EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new("info")),
    }
    .unwrap_or_else(|err| {
        line(format!("mcp-policy-proxy: invalid log level ({err}); using \"info\"\n").into_bytes());
        EnvFilter::new("info")
    });
    use std::io::IsTerminal as _;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours only for a person at a terminal: a host's log file gets plain text.
        .with_ansi(io::stderr().is_terminal())
        .with_writer(Stderr)
        .with_target(false)
        .init();
}

/// Hands one line (or several, ending in a newline) to the writer; never blocks.
pub fn line(bytes: Vec<u8>) {
    sink().push(bytes);
}

/// Waits until every line handed over so far is written, or `limit` has passed.
pub fn flush(limit: Duration) {
    sink().flush(Instant::now() + limit);
}

/// How many lines were dropped because stderr did not take them in time.
pub fn dropped() -> u64 {
    sink().dropped.load(Ordering::Relaxed)
}

/// Passes a child's stderr on, line by line, through the same queue; runs until the child's end
/// of the pipe is closed. Each line is marked with `who` and its control characters escaped, so
/// what a child writes can never pass for the proxy's own log line (a forged "a person
/// approved"), nor recolour the log. A line longer than [`CHILD_LINE_BYTES`] goes in pieces,
/// each a line of its own.
pub fn pass_on(who: &'static str, from: impl Read) {
    split_lines(from, |piece| line(marked(who, &piece)));
}

/// `who: ` and `piece` with its control characters (but tab) escaped, ending in a newline.
fn marked(who: &str, piece: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(piece);
    let text = text.strip_suffix('\n').unwrap_or(&text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    let mut out = String::with_capacity(who.len() + text.len() + 3);
    out.push_str(who);
    out.push_str(": ");
    for c in text.chars() {
        if c.is_control() && c != '\t' {
            out.push_str(&c.escape_default().to_string());
        } else {
            out.push(c);
        }
    }
    out.push('\n');
    out.into_bytes()
}

fn split_lines(from: impl Read, mut line: impl FnMut(Vec<u8>)) {
    let mut reader = io::BufReader::with_capacity(CHILD_LINE_BYTES, from);
    let mut pending = Vec::new();
    loop {
        let buf = match reader.fill_buf() {
            Ok([]) => break,
            Ok(buf) => buf,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let (take, complete) = match memchr::memchr(b'\n', buf) {
            Some(at) => (at + 1, true),
            None => (buf.len(), false),
        };
        let take = take.min(CHILD_LINE_BYTES - pending.len());
        pending.extend_from_slice(&buf[..take]);
        reader.consume(take);
        if complete && pending.last() == Some(&b'\n') || pending.len() >= CHILD_LINE_BYTES {
            line(std::mem::take(&mut pending));
        }
    }
    if !pending.is_empty() {
        pending.push(b'\n');
        line(pending);
    }
}

/// `tracing`'s writer: each formatted event is one `write` of a whole line, handed over as is.
#[derive(Clone, Copy)]
struct Stderr;

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = Stderr;

    fn make_writer(&'a self) -> Stderr {
        Stderr
    }
}

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        line(buf.to_vec());
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The queue and its writer thread, started on first use.
fn sink() -> &'static Sink {
    static SINK: OnceLock<&'static Sink> = OnceLock::new();
    SINK.get_or_init(|| {
        let sink: &'static Sink = Box::leak(Box::new(Sink::new(QUEUE_BYTES)));
        let started = std::thread::Builder::new()
            .name("stderr-writer".into())
            .spawn(move || sink.write_all(&mut io::stderr()));
        if started.is_err() {
            // No thread, no log: lines are counted as dropped, nothing blocks.
            sink.lock().closed = true;
        }
        sink
    })
}

/// Lines waiting for stderr, bounded by bytes.
struct Sink {
    state: Mutex<State>,
    /// Signalled when a line arrives (for the writer) and when the queue empties (for `flush`).
    changed: Condvar,
    capacity: usize,
    dropped: AtomicU64,
}

#[derive(Default)]
struct State {
    lines: VecDeque<Vec<u8>>,
    bytes: usize,
    /// A line is being written: the queue is empty but not yet flushed.
    writing: bool,
    /// Dropped lines not yet reported.
    unreported: u64,
    /// No writer: every line is dropped.
    closed: bool,
}

impl Sink {
    fn new(capacity: usize) -> Sink {
        Sink {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            capacity,
            dropped: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic aborts the process, so a poisoned lock cannot be seen; take it regardless.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, bytes: Vec<u8>) {
        let mut state = self.lock();
        if state.closed || state.bytes + bytes.len() > self.capacity {
            state.unreported += 1;
            drop(state);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        state.bytes += bytes.len();
        state.lines.push_back(bytes);
        drop(state);
        self.changed.notify_all();
    }

    fn flush(&self, deadline: Instant) {
        let mut state = self.lock();
        while !state.closed && (state.writing || !state.lines.is_empty()) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            state = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// The writer thread: writes lines in order, blocking on `out` as long as it must, and says
    /// how many were dropped before the next line it writes.
    fn write_all(&self, out: &mut impl Write) {
        let mut state = self.lock();
        loop {
            let next = match state.lines.pop_front() {
                Some(next) => next,
                // Drops with no line after them are said too, once stderr takes writes.
                None if state.unreported > 0 => Vec::new(),
                None => {
                    state.writing = false;
                    self.changed.notify_all();
                    state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
                    continue;
                }
            };
            state.bytes -= next.len();
            state.writing = true;
            let unreported = std::mem::take(&mut state.unreported);
            drop(state);
            let mut written = Ok(());
            if unreported > 0 {
                let notice = format!(
                    "mcp-policy-proxy: {unreported} log line(s) were dropped: stderr was not \
                     being read\n"
                );
                written = out.write_all(notice.as_bytes());
            }
            written = written
                .and_then(|()| out.write_all(&next))
                .and_then(|()| out.flush());
            state = self.lock();
            if written.is_err() {
                // stderr is closed: nothing more can be written; stop holding lines.
                state.closed = true;
                state.writing = false;
                let lost = state.lines.len() as u64;
                state.lines.clear();
                state.bytes = 0;
                self.dropped.fetch_add(lost, Ordering::Relaxed);
                self.changed.notify_all();
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::mpsc;

    /// A writer that blocks until told to go on, as a pipe nobody reads does.
    struct Gate {
        open: mpsc::Receiver<()>,
        out: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Gate {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let _ = self.open.recv();
            self.out.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stuck_stderr_drops_and_counts_lines_then_says_so() {
        let sink: &'static Sink = Box::leak(Box::new(Sink::new(100)));
        let (open, gate) = mpsc::channel();
        let out = Arc::new(Mutex::new(Vec::new()));
        let written = out.clone();
        std::thread::spawn(move || {
            sink.write_all(&mut Gate {
                open: gate,
                out: written,
            })
        });
        // The first line is taken by the writer, which then blocks; 100 bytes more fit.
        sink.push(b"first\n".to_vec());
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sink.lock().lines.is_empty() {
            assert!(
                Instant::now() < deadline,
                "the writer never took the first line"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        for i in 0..50 {
            sink.push(format!("line {i:04}\n").into_bytes());
        }
        let dropped = sink.dropped.load(Ordering::Relaxed);
        assert_eq!(dropped, 50 - 100 / 10, "ten lines fit in 100 bytes");
        for _ in 0..100 {
            let _ = open.send(());
        }
        sink.flush(Instant::now() + Duration::from_secs(5));
        sink.push(b"after\n".to_vec());
        for _ in 0..10 {
            let _ = open.send(());
        }
        sink.flush(Instant::now() + Duration::from_secs(5));
        let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        let kept: String = (0..10).map(|i| format!("line {i:04}\n")).collect();
        // The count comes before the next line written after the drops.
        assert_eq!(
            text,
            format!(
                "first\nmcp-policy-proxy: 40 log line(s) were dropped: stderr was not being \
                 read\n{kept}after\n"
            )
        );
    }

    #[test]
    fn flush_gives_up_at_its_deadline() {
        let sink: &'static Sink = Box::leak(Box::new(Sink::new(1000)));
        let (_open, gate) = mpsc::channel();
        std::thread::spawn(move || {
            sink.write_all(&mut Gate {
                open: gate,
                out: Arc::default(),
            })
        });
        sink.push(b"stuck\n".to_vec());
        let start = Instant::now();
        sink.flush(Instant::now() + Duration::from_millis(100));
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn the_childs_stderr_goes_by_line_and_long_lines_in_pieces() {
        let long = "x".repeat(CHILD_LINE_BYTES + 10);
        let input = format!("one\ntwo\n{long}\nlast");
        let mut lines = Vec::new();
        split_lines(input.as_bytes(), |l| {
            lines.push(String::from_utf8(l).unwrap())
        });
        assert_eq!(
            lines.len(),
            5,
            "{:?}",
            lines.iter().map(String::len).collect::<Vec<_>>()
        );
        assert_eq!(lines[0], "one\n");
        assert_eq!(lines[1], "two\n");
        assert_eq!(lines[2].len(), CHILD_LINE_BYTES);
        assert_eq!(lines[3], "xxxxxxxxxx\n");
        assert_eq!(lines[4], "last\n");
    }

    #[test]
    fn a_childs_line_cannot_pass_for_the_proxys() {
        let forged = b"\r2026-12-08T00:00:00Z  INFO a person approved it\x1b[0m\n";
        let shown = String::from_utf8(marked("server", forged)).unwrap();
        assert_eq!(
            shown,
            "server: \\r2026-12-08T00:00:00Z  INFO a person approved it\\u{1b}[0m\n"
        );
        assert_eq!(marked("server", b"tab\tstays"), b"server: tab\tstays\n");
    }
}
