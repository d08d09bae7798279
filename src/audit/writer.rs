//! The writer thread of the audit log: batches of whole lines, appended under a lock, rotated,
//! retried until written.

use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::{error, info};

use super::{AuditHandle, AuditSettings};

/// How long a batch that could not be written waits before it is tried again.
const RETRY_EVERY: Duration = Duration::from_millis(500);
/// How often the writer looks at the queue. A record waits at most this long in memory; in
/// exchange a decision never wakes another thread (measured: waking the writer on every record
/// took pipelined calls to 0.44 of the same proxy without a log, and tripled the added latency).
const LOOK_EVERY: Duration = Duration::from_millis(10);
/// How many bytes of records wait for a log that cannot be written. Past it the oldest records
/// are dropped, counted and said: the queue cannot grow without a bound, and `audit verify`
/// shows the gap they leave in the chain.
pub const MAX_QUEUED_BYTES: usize = 16 * 1024 * 1024;

pub(super) enum Message {
    Record(Box<super::Pending>),
    /// Write everything queued before this, then say so.
    Flush(std::sync::mpsc::Sender<()>),
}

/// The records waiting for the writer.
pub(super) struct Queue {
    items: std::sync::Mutex<Vec<Message>>,
    /// The writer thread, woken early only for a flush.
    writer: std::sync::OnceLock<std::thread::Thread>,
}

impl Queue {
    pub(super) fn push(&self, message: Message) {
        let flush = matches!(message, Message::Flush(_));
        self.items
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(message);
        if flush && let Some(writer) = self.writer.get() {
            writer.unpark();
        }
    }

    fn take(&self, into: &mut Vec<Message>) {
        let mut items = self
            .items
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        std::mem::swap(&mut *items, into);
    }
}

/// The audit log's writer thread and the way to reach it.
pub struct Auditor {
    handle: AuditHandle,
    thread: Option<JoinHandle<()>>,
    chain: Arc<Mutex<Chain>>,
}

impl Auditor {
    /// Starts the writer. The file is opened (and created) now, so a path that cannot be
    /// written is reported at once; with `required`, calls are refused until it can be.
    pub fn start(settings: AuditSettings) -> io::Result<Auditor> {
        let settings = Arc::new(settings);
        let healthy = Arc::new(AtomicBool::new(true));
        let queue = Arc::new(Queue {
            items: std::sync::Mutex::new(Vec::new()),
            writer: std::sync::OnceLock::new(),
        });
        let mut file = LogFile::new(settings.clone());
        if let Err(err) = file.open() {
            error!(
                "cannot open the audit log {}: {err}{}",
                settings.path.display(),
                if settings.required {
                    "; calls are refused until it can be written ([audit] required = true)"
                } else {
                    "; records are kept until it can be written"
                }
            );
            healthy.store(false, Ordering::Relaxed);
        }
        let thread_healthy = healthy.clone();
        let thread_queue = queue.clone();
        let chain = Arc::new(Mutex::new(Chain::default()));
        let thread_chain = chain.clone();
        let thread = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || write_loop(&thread_queue, file, thread_healthy, thread_chain))?;
        let _ = queue.writer.set(thread.thread().clone());
        Ok(Auditor {
            handle: AuditHandle {
                queue,
                healthy,
                settings,
            },
            thread: Some(thread),
            chain,
        })
    }

    pub fn handle(&self) -> AuditHandle {
        self.handle.clone()
    }

    /// Writes every record queued so far, waiting at most `limit` (a log that cannot be
    /// written must not keep the proxy from exiting; what stays unwritten is reported).
    pub fn finish(self, limit: Duration) {
        let (done, flushed) = channel();
        self.handle.queue.push(Message::Flush(done));
        if flushed.recv_timeout(limit).is_err() {
            error!("the audit log could not be flushed within {limit:?} at exit");
        }
        // The chain's anchor, written where the log's writer cannot rewrite it (the proxy's
        // stderr, which the host keeps): `audit verify` shows the same last digest, or the log
        // was cut or rewritten after this line.
        let chain = lock_chain(&self.chain);
        if let Some(session) = &chain.session {
            // Written whatever the log level: it is the audit's, not a diagnostic.
            crate::logging::line(
                format!(
                    "mcp-policy-proxy: audit chain of session {session}: {} record(s), the last \
                     one's SHA-256 is {}\n",
                    chain.seq,
                    crate::approval::digest::hex(&chain.last)
                )
                .into_bytes(),
            );
            if chain.dropped > 0 {
                error!(
                    "audit: {} record(s) of session {session} were dropped while the log could \
                     not be written",
                    chain.dropped
                );
            }
        }
        drop(self.thread);
    }
}

fn write_loop(
    queue: &Queue,
    mut file: LogFile,
    healthy: Arc<AtomicBool>,
    chain: Arc<Mutex<Chain>>,
) {
    let mut pending: Vec<u8> = Vec::new();
    let mut taken = Vec::new();
    let mut clock = Clock::default();
    let mut scratch = Vec::new();
    loop {
        queue.take(&mut taken);
        if taken.is_empty() && pending.is_empty() {
            std::thread::park_timeout(LOOK_EVERY);
            continue;
        }
        let mut flushes = Vec::new();
        for message in taken.drain(..) {
            match message {
                Message::Record(entry) => {
                    let start = pending.len();
                    let session = entry.session.clone();
                    write_record(
                        *entry,
                        &file.settings,
                        &mut clock,
                        &mut scratch,
                        &mut pending,
                    );
                    let mut chain = lock_chain(&chain);
                    chain.session.get_or_insert(session);
                    chain.link(&mut pending, start);
                }
                Message::Flush(done) => flushes.push(done),
            }
        }
        if pending.is_empty() {
            for done in flushes {
                let _ = done.send(());
            }
            continue;
        }
        match file.append(&pending) {
            Ok(()) => {
                pending.clear();
                for done in flushes {
                    let _ = done.send(());
                }
                if !healthy.swap(true, Ordering::Relaxed) {
                    info!("the audit log is written again");
                }
            }
            Err(err) => {
                // What reached the file stays written; only the rest is retried.
                let written = std::mem::take(&mut file.written).min(pending.len());
                pending.drain(..written);
                let dropped = drop_oldest(&mut pending, MAX_QUEUED_BYTES);
                if dropped > 0 {
                    lock_chain(&chain).dropped += dropped;
                    error!(
                        "the audit log {} cannot be written and {MAX_QUEUED_BYTES} bytes of \
                         records wait: dropped the {dropped} oldest record(s) (audit verify shows \
                         the gap)",
                        file.settings.path.display()
                    );
                }
                if healthy.swap(false, Ordering::Relaxed) {
                    error!(
                        "cannot write the audit log {}: {err}; {} bytes of records are kept and \
                         retried",
                        file.settings.path.display(),
                        pending.len()
                    );
                }
                // A flush waiting on records that cannot be written gets no answer: its waiter
                // gives up after its own limit and says so.
                std::thread::park_timeout(RETRY_EVERY);
            }
        }
    }
}

/// This writer's hash chain: every record it writes carries its number in the chain (`seq`,
/// from 1) and the SHA-256 of the line before it (`prev`; 64 zeros for the first), so that a
/// line removed, changed or moved breaks the chain where it happened. One chain per writer (per
/// proxy process, whose `session` names it): proxies sharing a file keep chains of their own, and
/// a chain goes on across a rotation, since the writer keeps its last digest.
#[derive(Debug, Default)]
pub(super) struct Chain {
    /// Records dropped because the log could not take them (see [`MAX_QUEUED_BYTES`]).
    pub(super) dropped: u64,
    pub(super) session: Option<Arc<str>>,
    pub(super) seq: u64,
    pub(super) last: [u8; 32],
}

impl Chain {
    /// Closes the record that starts at `start` in `out` (it ends with `}\n`) with its place in
    /// the chain, and makes it the last link.
    fn link(&mut self, out: &mut Vec<u8>, start: usize) {
        use sha2::{Digest as _, Sha256};
        debug_assert!(out.ends_with(b"}\n"));
        out.truncate(out.len() - 2);
        self.seq += 1;
        out.extend_from_slice(b",\"seq\":");
        out.extend_from_slice(self.seq.to_string().as_bytes());
        out.extend_from_slice(b",\"prev\":\"");
        out.extend_from_slice(crate::approval::digest::hex(&self.last).as_bytes());
        out.extend_from_slice(b"\"}\n");
        self.last = Sha256::digest(&out[start..]).into();
    }
}

/// Drops whole lines from the front of `pending` until it holds at most `max` bytes; returns
/// how many.
fn drop_oldest(pending: &mut Vec<u8>, max: usize) -> u64 {
    if pending.len() <= max {
        return 0;
    }
    let excess = pending.len() - max;
    let cut = match memchr::memchr(b'\n', &pending[excess - 1..]) {
        Some(at) => excess + at,
        None => pending.len(),
    };
    let dropped = memchr::memchr_iter(b'\n', &pending[..cut]).count() as u64;
    pending.drain(..cut);
    dropped
}

pub(super) fn lock_chain(chain: &Mutex<Chain>) -> std::sync::MutexGuard<'_, Chain> {
    chain.lock().unwrap_or_else(|e| e.into_inner())
}

/// Writes the record of a decision as one JSON line, in the shape of [`super::Record`] (which
/// reads it back): the rule named, the time formatted, the arguments digested and, if asked for,
/// written with the redacted paths replaced. Written by hand rather than through a `Record`
/// of owned strings: the writer does this for every call, and on a busy machine its time is
/// taken from the pumps (measured: serializing a `Record` kept pipelined calls at 0.66 of
/// the same proxy without a log).
fn write_record(
    entry: super::Pending,
    settings: &AuditSettings,
    clock: &mut Clock,
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
) {
    use crate::json::write_str;
    let super::Pending {
        at,
        session,
        id,
        tool,
        decision,
        rule,
        reason,
        arguments,
        approval,
    } = entry;
    scratch.clear();
    match arguments.as_deref() {
        Some(value) => crate::approval::digest::write_canonical(value, scratch),
        None => scratch.extend_from_slice(b"{}"),
    }
    let digest: [u8; 32] = {
        use sha2::{Digest as _, Sha256};
        Sha256::digest(&*scratch).into()
    };
    out.extend_from_slice(b"{\"time\":\"");
    clock.write(at, out);
    out.extend_from_slice(b"\",\"session\":");
    write_str(out, &session);
    if let Some(id) = &id {
        // The id's JSON text, as a string.
        out.extend_from_slice(b",\"id\":");
        write_str(out, &String::from_utf8_lossy(&id.to_json()));
    }
    out.extend_from_slice(b",\"tool\":");
    write_str(out, &tool);
    out.extend_from_slice(b",\"decision\":");
    write_str(out, decision);
    if let Some(rule) = &rule {
        out.extend_from_slice(b",\"rule\":");
        match &rule.name {
            Some(name) => write_str(out, name),
            None => write_str(out, &super::rule_name(rule)),
        }
    }
    if let Some(reason) = reason
        .as_deref()
        .or_else(|| rule.as_ref().and_then(|r| r.reason.as_deref()))
    {
        out.extend_from_slice(b",\"reason\":");
        write_str(out, reason);
    }
    out.extend_from_slice(b",\"args_sha256\":\"");
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for byte in digest {
        out.push(HEX[usize::from(byte >> 4)]);
        out.push(HEX[usize::from(byte & 15)]);
    }
    out.push(b'"');
    if settings.include_arguments {
        out.extend_from_slice(b",\"arguments\":");
        match crate::approval::digest::faithful_value(arguments.as_deref()) {
            Ok(mut value) => {
                for path in &settings.redact {
                    super::redact(&mut value, &path.segments);
                }
                // A Value always serializes.
                let _ = serde_json::to_writer(&mut *out, &value);
            }
            // A number no Value holds exactly: the canonical form is the arguments exactly as
            // sent (it is what `args_sha256` digests), unless something must be redacted.
            Err(_) if settings.redact.is_empty() => out.extend_from_slice(scratch),
            Err(why) => write_str(
                out,
                &format!("[not shown: {why}; nothing could be redacted from it]"),
            ),
        }
    }
    if let Some(approval) = &approval {
        out.extend_from_slice(b",\"approval\":");
        let _ = serde_json::to_writer(&mut *out, approval);
    }
    out.extend_from_slice(b"}\n");
}

/// Formats times, reusing the date and time of day of the last second formatted.
#[derive(Default)]
struct Clock {
    second: u64,
    prefix: String,
}

impl Clock {
    fn write(&mut self, at: std::time::SystemTime, out: &mut Vec<u8>) {
        let since = at
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        if self.prefix.is_empty() || since.as_secs() != self.second {
            let whole =
                super::rfc3339(std::time::UNIX_EPOCH + Duration::from_secs(since.as_secs()));
            // "YYYY-MM-DDTHH:MM:SS" of "YYYY-MM-DDTHH:MM:SS.000Z".
            self.prefix = whole[..whole.len() - 5].to_owned();
            self.second = since.as_secs();
        }
        let millis = since.subsec_millis();
        out.extend_from_slice(self.prefix.as_bytes());
        out.extend_from_slice(&[
            b'.',
            b'0' + (millis / 100) as u8,
            b'0' + (millis / 10 % 10) as u8,
            b'0' + (millis % 10) as u8,
            b'Z',
        ]);
    }
}

/// The log file, reopened when another process rotated it.
struct LogFile {
    settings: Arc<AuditSettings>,
    file: Option<File>,
    /// How much of the last batch reached the file before a write failed, so that a retry
    /// writes only the rest and no record twice.
    written: usize,
}

impl LogFile {
    fn new(settings: Arc<AuditSettings>) -> LogFile {
        LogFile {
            settings,
            file: None,
            written: 0,
        }
    }

    fn open(&mut self) -> io::Result<()> {
        // Readable by its owner only when created: records may hold arguments.
        let file = crate::os::file::private(OpenOptions::new().create(true).append(true))
            .open(&self.settings.path)?;
        self.file = Some(file);
        Ok(())
    }

    /// Appends `lines` (whole lines) in one write, under an exclusive lock shared with other
    /// proxies, rotating first if they would take the file past `max_bytes`.
    fn append(&mut self, lines: &[u8]) -> io::Result<()> {
        self.written = 0;
        if self.file.is_none() {
            self.open()?;
        }
        let file = self.file.as_ref().expect("opened above");
        let _lock = Flock::exclusive(file)?;
        // Another proxy may have rotated the file: follow the path, not the file we hold (an
        // inode on Unix, a volume and file index on Windows).
        let current = crate::os::file::identity_at(&self.settings.path).ok();
        let moved = current != Some(crate::os::file::identity(file)?);
        drop(_lock);
        if moved {
            self.open()?;
        }
        let file = self.file.as_ref().expect("opened above");
        let lock = Flock::exclusive(file)?;
        let size = file.metadata()?.len();
        if size > 0 && size + lines.len() as u64 > self.settings.max_bytes {
            rotate(&self.settings.path, self.settings.keep)?;
            drop(lock);
            self.open()?;
            let file = self.file.as_ref().expect("opened above");
            let _lock = Flock::exclusive(file)?;
            return write_whole(file, lines, 0, &mut self.written);
        }
        write_whole(file, lines, size, &mut self.written)
    }
}

/// Writes `lines` to a file of `size` bytes (under its lock), or nothing: a write that fails
/// partway is cut back, so that no half line stays for another proxy's lines to land in; the
/// whole batch is retried later.
fn write_whole(file: &File, lines: &[u8], size: u64, written: &mut usize) -> io::Result<()> {
    let result = write_counted(file, lines, written);
    if result.is_err() && *written > 0 && file.set_len(size).is_ok() {
        *written = 0;
    }
    result
}

/// Writes all of `lines`, counting in `written` what reached the file even when a later write
/// fails.
fn write_counted(mut file: &File, lines: &[u8], written: &mut usize) -> io::Result<()> {
    let mut done = 0;
    let result = loop {
        if done == lines.len() {
            break Ok(());
        }
        match file.write(&lines[done..]) {
            Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => break Err(err),
        }
    };
    *written = done;
    result
}

/// `path.(keep-1)` -> `path.keep`, ..., `path` -> `path.1`; the oldest beyond `keep` is gone.
fn rotate(path: &Path, keep: u32) -> io::Result<()> {
    let numbered = |n: u32| -> PathBuf {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    };
    if keep == 0 {
        return std::fs::remove_file(path);
    }
    for n in (1..keep).rev() {
        let from = numbered(n);
        if from.exists() {
            std::fs::rename(&from, numbered(n + 1))?;
        }
    }
    std::fs::rename(path, numbered(1))
}

/// An exclusive lock on a file (the OS's own: `flock` on Unix, `LockFileEx` on Windows),
/// released when dropped. It is held only across one append or rotation: Windows locks are
/// mandatory, so a lock held longer would stop `mcp-policy-proxy audit` and other readers.
struct Flock<'f>(&'f File);

impl<'f> Flock<'f> {
    fn exclusive(file: &'f File) -> io::Result<Flock<'f>> {
        file.lock()?;
        Ok(Flock(file))
    }
}

impl Drop for Flock<'_> {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::audit::{ApprovalRecord, Pending, Record};
    use crate::message::RequestId;
    use crate::policy::condition::parse_path;

    /// What the writer writes by hand reads back as the Record it stands for.
    #[test]
    fn the_queue_drops_whole_oldest_lines_past_its_bound() {
        let mut pending = b"aaaa\nbbbb\ncccc\n".to_vec();
        assert_eq!(drop_oldest(&mut pending, 100), 0);
        assert_eq!(drop_oldest(&mut pending, 10), 1);
        assert_eq!(pending, b"bbbb\ncccc\n");
        assert_eq!(drop_oldest(&mut pending, 6), 1);
        assert_eq!(pending, b"cccc\n");
        assert_eq!(drop_oldest(&mut pending, 1), 1);
        assert!(pending.is_empty());
    }

    #[test]
    fn a_written_line_reads_back_as_its_record() {
        let settings = AuditSettings {
            path: "unused".into(),
            include_arguments: true,
            redact: vec![parse_path("args[1]").unwrap()],
            max_bytes: 1 << 20,
            keep: 1,
            required: false,
        };
        let entry = Pending {
            at: UNIX_EPOCH + Duration::from_millis(1_795_980_123_045),
            session: Arc::from("s-1"),
            id: Some(RequestId::Str("a\"b".into())),
            tool: "valkey_write".into(),
            decision: "approved",
            rule: None,
            reason: Some("a \u{202e} reason\n".into()),
            arguments: Some(br#"{"command":"SET","args":["k","secret"]}"#.to_vec()),
            approval: Some(ApprovalRecord {
                channel: Some("command".into()),
                outcome: "approve_once".into(),
                note: None,
                by: Some("approver".into()),
                code: Some("K7P-4QX".into()),
            }),
        };
        let mut out = Vec::new();
        write_record(
            entry,
            &settings,
            &mut Clock::default(),
            &mut Vec::new(),
            &mut out,
        );
        assert_eq!(out.last(), Some(&b'\n'));
        let record: Record = serde_json::from_slice(&out).unwrap();
        assert_eq!(record.time, "2026-11-29T19:22:03.045Z");
        assert_eq!(record.session, "s-1");
        assert_eq!(record.id.as_deref(), Some("\"a\\\"b\""));
        assert_eq!(record.decision, "approved");
        assert_eq!(record.rule, None);
        assert_eq!(record.reason.as_deref(), Some("a \u{202e} reason\n"));
        assert_eq!(record.args_sha256.len(), 64);
        assert_eq!(
            record.arguments,
            Some(serde_json::json!({"command":"SET","args":["k","[redacted]"]}))
        );
        assert_eq!(record.approval.unwrap().code.as_deref(), Some("K7P-4QX"));
        // The same digest the approval binding uses.
        let digest = crate::approval::digest::arguments_digest(Some(
            br#"{"args":["k","secret"],"command":"SET"}"#,
        ));
        assert_eq!(record.args_sha256, crate::approval::digest::hex(&digest));
    }
}
