//! The writer thread of the audit log: batches of whole lines, appended under a lock, rotated,
//! retried until written.

use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::channel;
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::{error, info};

use super::{AuditHandle, AuditSettings, Record};
use crate::approval::digest::{arguments_digest, hex};

/// How long a batch that could not be written waits before it is tried again.
const RETRY_EVERY: Duration = Duration::from_millis(500);
/// How often the writer looks at the queue. A record waits at most this long in memory; in
/// exchange a decision never wakes another thread (measured: waking the writer on every record
/// took pipelined calls to 0.44 of the same proxy without a log, and tripled the added latency).
const LOOK_EVERY: Duration = Duration::from_millis(10);

pub(super) enum Message {
    Record {
        record: Box<Record>,
        at: std::time::SystemTime,
        arguments: Option<Vec<u8>>,
    },
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
        let thread = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || write_loop(&thread_queue, file, thread_healthy))?;
        let _ = queue.writer.set(thread.thread().clone());
        Ok(Auditor {
            handle: AuditHandle {
                queue,
                healthy,
                settings,
            },
            thread: Some(thread),
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
        drop(self.thread);
    }
}

fn write_loop(queue: &Queue, mut file: LogFile, healthy: Arc<AtomicBool>) {
    let mut pending: Vec<u8> = Vec::new();
    let mut taken = Vec::new();
    loop {
        queue.take(&mut taken);
        if taken.is_empty() && pending.is_empty() {
            std::thread::park_timeout(LOOK_EVERY);
            continue;
        }
        let mut flushes = Vec::new();
        for message in taken.drain(..) {
            match message {
                Message::Record {
                    mut record,
                    at,
                    arguments,
                } => {
                    complete(&mut record, at, arguments.as_deref(), &file.settings);
                    // A Record always serializes: strings, numbers and JSON values only.
                    if serde_json::to_writer(&mut pending, &record).is_ok() {
                        pending.push(b'\n');
                    }
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

/// Fills in what the session leaves to the writer: the time, the arguments' digest and, if
/// asked for, the arguments with the redacted paths replaced.
fn complete(
    record: &mut Record,
    at: std::time::SystemTime,
    arguments: Option<&[u8]>,
    settings: &AuditSettings,
) {
    record.time = super::rfc3339(at);
    record.args_sha256 = hex(&arguments_digest(arguments));
    if settings.include_arguments {
        let mut value: serde_json::Value = arguments
            .and_then(|raw| serde_json::from_slice(raw).ok())
            .unwrap_or_else(|| serde_json::Value::Object(Default::default()));
        for path in &settings.redact {
            super::redact(&mut value, &path.segments);
        }
        record.arguments = Some(value);
    }
}

/// The log file, reopened when another process rotated it.
struct LogFile {
    settings: Arc<AuditSettings>,
    file: Option<File>,
}

impl LogFile {
    fn new(settings: Arc<AuditSettings>) -> LogFile {
        LogFile {
            settings,
            file: None,
        }
    }

    fn open(&mut self) -> io::Result<()> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.settings.path)?;
        self.file = Some(file);
        Ok(())
    }

    /// Appends `lines` (whole lines) in one write, under an exclusive lock shared with other
    /// proxies, rotating first if they would take the file past `max_bytes`.
    fn append(&mut self, lines: &[u8]) -> io::Result<()> {
        if self.file.is_none() {
            self.open()?;
        }
        let file = self.file.as_ref().expect("opened above");
        let _lock = Flock::exclusive(file)?;
        // Another proxy may have rotated the file: follow the path, not the old inode.
        let current = std::fs::metadata(&self.settings.path).ok();
        let ours = file.metadata()?;
        let moved = current
            .as_ref()
            .is_none_or(|m| m.ino() != ours.ino() || m.dev() != ours.dev());
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
            return (&*file).write_all(lines);
        }
        (&*file).write_all(lines)
    }
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

/// An exclusive `flock(2)` on a file, released when dropped.
struct Flock<'f>(&'f File);

impl<'f> Flock<'f> {
    fn exclusive(file: &'f File) -> io::Result<Flock<'f>> {
        loop {
            // SAFETY: flock(2) on a descriptor this File owns; no memory is shared.
            let done = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
            if done == 0 {
                return Ok(Flock(file));
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }
}

impl Drop for Flock<'_> {
    fn drop(&mut self) {
        // SAFETY: as above; unlocking a lock this process holds.
        unsafe {
            libc::flock(self.0.as_raw_fd(), libc::LOCK_UN);
        }
    }
}
