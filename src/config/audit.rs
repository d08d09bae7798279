//! `[audit]`: where the audit log goes and what it holds.

use std::path::PathBuf;

use super::walk::{Checker, Value};
use crate::audit::{AuditSettings, DEFAULT_KEEP, DEFAULT_MAX_BYTES};
use crate::policy::condition::parse_path;

const AUDIT_KEYS: &[&str] = &[
    "path",
    "include_arguments",
    "redact",
    "max_bytes",
    "keep",
    "required",
];

/// The smallest accepted `max_bytes`: below it a single record could rotate the file.
const MIN_MAX_BYTES: u64 = 64 * 1024;

impl Checker<'_> {
    pub(super) fn audit(&mut self, value: &Value<'_>) -> Option<AuditSettings> {
        let table = self.table(value, "\"audit\"", "a table ([audit])")?;
        self.reject_unknown_keys(table, AUDIT_KEYS, "in [audit]");
        let place = "in [audit]";
        let path = match table.get("path") {
            None => {
                self.report(
                    value.span(),
                    "[audit] has no \"path\"; add the file to write, e.g. path = \"audit.jsonl\""
                        .to_owned(),
                );
                None
            }
            Some(value) => match self.string(value, "\"path\"", place) {
                Some("") => {
                    self.report(value.span(), "\"path\" in [audit] is empty".to_owned());
                    None
                }
                Some(path) => Some(PathBuf::from(path)),
                None => None,
            },
        };
        let flag = |checker: &mut Self, key: &str| {
            table
                .get(key)
                .and_then(|v| checker.boolean(v, &format!("\"{key}\""), place))
                .unwrap_or(false)
        };
        let include_arguments = flag(self, "include_arguments");
        let required = flag(self, "required");
        let mut redact = Vec::new();
        if let Some(value) = table.get("redact")
            && let Some(items) = self.array(
                value,
                "\"redact\" in [audit]",
                "an array of argument paths such as [\"args[1]\"]",
            )
        {
            for item in items {
                if let Some(text) = self.string(item, "a path", place) {
                    match parse_path(text) {
                        Ok(path) => redact.push(path),
                        Err(why) => self.report(item.span(), format!("{why} {place}")),
                    }
                }
            }
        }
        let mut max_bytes = DEFAULT_MAX_BYTES;
        if let Some(value) = table.get("max_bytes")
            && let Some(n) = self.integer(value, "\"max_bytes\"", place)
        {
            match u64::try_from(n) {
                Ok(n) if n >= MIN_MAX_BYTES => max_bytes = n,
                _ => self.report(
                    value.span(),
                    format!(
                        "max_bytes {} in [audit] is out of range; expected at least \
                         {MIN_MAX_BYTES}",
                        self.as_written(value)
                    ),
                ),
            }
        }
        let mut keep = DEFAULT_KEEP;
        if let Some(value) = table.get("keep")
            && let Some(n) = self.integer(value, "\"keep\"", place)
        {
            match u32::try_from(n) {
                Ok(n) if n <= 1000 => keep = n,
                _ => self.report(
                    value.span(),
                    format!(
                        "keep {} in [audit] is out of range; expected 0 to 1000",
                        self.as_written(value)
                    ),
                ),
            }
        }
        Some(AuditSettings {
            path: path?,
            include_arguments,
            redact,
            max_bytes,
            keep,
            required,
        })
    }
}
