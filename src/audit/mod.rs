//! The audit log: one JSON line per decision, written off the pumps.
//!
//! The session hands each [`Record`] to an [`AuditHandle`]: a push onto a queue under a short
//! lock, with no disk I/O, no serialization, no digest and no wake-up of another thread on the
//! pump. One writer thread looks at the queue every few milliseconds, completes the records
//! (time, argument digest, redacted arguments), serializes them and appends them, a batch at a
//! time. Nothing is lost: a record that cannot be written stays queued and is retried,
//! and every queued record is written before the proxy exits (SIGTERM included: the relay ends
//! normally and [`Auditor::finish`] drains the queue). Several proxies may share one file: each
//! batch is whole lines appended with `O_APPEND` in one write under an exclusive `flock`, which
//! also guards rotation (`audit.jsonl` -> `audit.jsonl.1` -> ... up to `keep`).

pub mod record;
mod writer;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use serde_json::Value;

use crate::policy::condition::{ArgPath, Segment};
pub use record::{ApprovalRecord, Record};
pub use writer::Auditor;

/// `[audit]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSettings {
    pub path: PathBuf,
    /// Write the arguments of each call (else only their digest).
    pub include_arguments: bool,
    /// Argument paths written as `"[redacted]"`.
    pub redact: Vec<ArgPath>,
    /// Rotate when the file would grow past this many bytes.
    pub max_bytes: u64,
    /// How many rotated files to keep.
    pub keep: u32,
    /// Refuse calls while the log cannot be written.
    pub required: bool,
}

/// The default `max_bytes`: large enough for days of an agent's calls, small enough to open in
/// an editor.
pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// The default `keep`.
pub const DEFAULT_KEEP: u32 = 5;

/// A decision as the session hands it over: what it has at hand, cheap to gather (shared
/// rules and session name, a static decision name). The writer thread turns it into a
/// [`Record`]: names the rule, formats the time, digests the arguments.
#[derive(Debug)]
pub struct Pending {
    pub at: SystemTime,
    pub session: Arc<str>,
    pub id: Option<crate::message::RequestId>,
    pub tool: Box<str>,
    pub decision: &'static str,
    pub rule: Option<Arc<crate::policy::Rule>>,
    /// The reason, when it is not the rule's own.
    pub reason: Option<String>,
    pub arguments: Option<Vec<u8>>,
    pub approval: Option<ApprovalRecord>,
}

/// How the audit log names a rule: its name, else its number and pattern.
pub fn rule_name(rule: &crate::policy::Rule) -> String {
    match &rule.name {
        Some(name) => name.clone(),
        None => format!("rule {} ({})", rule.number, rule.pattern),
    }
}

/// What the session holds to write records: cheap to clone, never blocks.
#[derive(Clone)]
pub struct AuditHandle {
    queue: Arc<writer::Queue>,
    healthy: Arc<AtomicBool>,
    settings: Arc<AuditSettings>,
}

impl std::fmt::Debug for AuditHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditHandle")
            .field("path", &self.settings.path)
            .finish_non_exhaustive()
    }
}

impl AuditHandle {
    /// Queues a decision for the writer thread, which makes the [`Record`] of it.
    pub fn record(&self, entry: Pending) {
        self.queue.push(writer::Message::Record(Box::new(entry)));
    }

    /// Whether calls must be refused now: the log is required and cannot be written.
    pub fn refusing(&self) -> bool {
        self.settings.required && !self.healthy.load(Ordering::Relaxed)
    }
}

/// Replaces what `segments` reaches in `value` with `"[redacted]"`.
fn redact(value: &mut Value, segments: &[Segment]) {
    let Some((first, rest)) = segments.split_first() else {
        *value = Value::String("[redacted]".to_owned());
        return;
    };
    match (first, value) {
        (Segment::Member(key), Value::Object(map)) => {
            if let Some(child) = map.get_mut(key) {
                redact(child, rest);
            }
        }
        (Segment::Index(i), Value::Array(items)) => {
            if let Some(child) = items.get_mut(*i) {
                redact(child, rest);
            }
        }
        (Segment::Each, Value::Array(items)) => {
            for child in items {
                redact(child, rest);
            }
        }
        // A value of another shape where the path goes on: the whole value is hidden, since
        // the server may read it as the shape the path expects (a JSON-encoded string).
        (_, other) => *other = Value::String("[redacted]".to_owned()),
    }
}

/// `time` in RFC 3339, UTC, with milliseconds: `2026-11-29T19:22:03.123Z`.
pub fn rfc3339(time: SystemTime) -> String {
    let since = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    let millis = since.subsec_millis();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::policy::condition::parse_path;

    #[test]
    fn times_are_rfc3339_utc() {
        let at = |secs: u64, ms: u64| {
            rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(ms))
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 7), "2000-02-29T00:00:00.007Z");
        assert_eq!(at(1_795_980_123, 123), "2026-11-29T19:22:03.123Z");
    }

    #[test]
    fn redaction_hides_what_the_paths_reach() {
        let mut value =
            json!({"command":"AUTH","args":["user","s3cret"],"nested":{"k":"v"},"s":"[1]"});
        for path in ["args[1]", "nested.k", "s[0]", "missing.x"] {
            redact(&mut value, &parse_path(path).unwrap().segments);
        }
        assert_eq!(
            value,
            json!({"command":"AUTH","args":["user","[redacted]"],"nested":{"k":"[redacted]"},"s":"[redacted]"})
        );
    }
}
