//! `mcp-policy-proxy audit FILE... [--since T] [--session S] [--json]`: what the proxy decided,
//! summarised from its audit logs.
//!
//! This module reads the JSON lines that `audit::record::Record` writes, keeps the ones the
//! filters select, and counts them: calls, decisions by kind and by rule, tools, the latest
//! refusals with their reasons, and every approval with who answered it. It streams: memory
//! grows with the number of distinct tools, rules and approvals, not with the log. A line that
//! is not a record is reported on stderr with its file and line and counted, and the summary
//! goes on. It never writes to a log.

mod time;
pub mod verify;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, anyhow};
use serde_json::{Value, json};

use time::now_millis;
pub use time::{format_rfc3339, parse_rfc3339, parse_since};

use crate::audit::record::Record;
use crate::error::Error;

/// How many of the latest refusals the summary shows.
pub const RECENT_REFUSALS: usize = 10;

/// How many tools the terminal summary lists; `--json` has them all.
const TOP_TOOLS: usize = 10;

/// How many approvals the terminal summary lists (the latest); `--json` has them all.
const SHOWN_APPROVALS: usize = 20;

/// How many invalid lines are reported one by one; past this only their number is. A file
/// that is not an audit log at all would otherwise flood the terminal.
const REPORTED_INVALID_LINES: u64 = 20;

/// Decisions after which the call reached the server.
const FORWARDED: &[&str] = &[
    "allow",
    "approved",
    "approved_for_session",
    "granted",
    "shadow_deny",
];

/// Records of a call that waits: a later record of the same call decides it (a person was
/// asked, the store was asked). They count among the decisions, not as calls of their own.
const WAITING: &[&str] = &["approval_requested", "approval_required", "store_check"];

/// Decisions after which the call did not reach the server. A decision in none of these lists
/// (a log from a newer version, or a misspelt name) is counted as unknown, never as a refusal:
/// a wrong report is worse than one that says it cannot tell.
const REFUSED: &[&str] = &[
    "deny",
    "default_deny",
    "rate_limited",
    "unjudgeable_arguments",
    "tool_changed",
    "audit_unavailable",
    "approval_denied",
    "approval_timeout",
    "approval_unavailable",
    "approval_withdrawn",
    "limit_unavailable",
];

/// Which records count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only records at or after this time, in milliseconds since the Unix epoch.
    pub since: Option<i64>,
    /// Only records of this session.
    pub session: Option<String>,
}

/// Reads the logs and prints the summary (or JSON) to stdout, which is this subcommand's own.
/// An invalid `--since` is a usage error (exit status 2); no readable file is an error (1).
pub fn run(
    files: &[PathBuf],
    since: Option<&str>,
    session: Option<&str>,
    json: bool,
) -> Result<ExitCode, Error> {
    let since = since
        .map(|text| parse_since(text, now_millis()))
        .transpose()
        .map_err(Error::Usage)?;
    let filter = Filter {
        since,
        session: session.map(str::to_owned),
    };
    let mut summary = Summary::default();
    let mut reader = Reader::new(&filter, &mut summary);
    let mut readable = 0;
    for path in files {
        match File::open(path) {
            Ok(file) => {
                readable += 1;
                if let Err(err) = reader.read(&path.display().to_string(), BufReader::new(file)) {
                    eprintln!(
                        "mcp-policy-proxy: cannot read all of {}: {err}",
                        path.display()
                    );
                }
            }
            Err(err) => eprintln!("mcp-policy-proxy: cannot read {}: {err}", path.display()),
        }
    }
    reader.finish();
    if readable == 0 {
        return Err(anyhow!("none of the audit logs could be read").into());
    }
    let text = if json {
        let mut text = summary.to_json(&filter).to_string();
        text.push('\n');
        text
    } else {
        summary.to_text(&filter)
    };
    #[allow(clippy::disallowed_methods)]
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .context("cannot write the summary to stdout")?;
    Ok(ExitCode::SUCCESS)
}

/// One record as the summary lists it, with where it came from to order equal times.
#[derive(Debug, Clone, PartialEq)]
struct Listed {
    /// Time, then file and line: the order of "most recent".
    at: (i64, usize, usize),
    record: Record,
}

/// Per tool: calls and refusals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct ToolCount {
    calls: u64,
    refused: u64,
}

/// The counts of the selected records.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// Every selected record.
    records: u64,
    /// The records that decide a call: all but [`WAITING`] ones.
    calls: u64,
    refused: u64,
    decisions: BTreeMap<String, u64>,
    /// Rule to decision to count; calls no rule decided are not here.
    rules: BTreeMap<String, BTreeMap<String, u64>>,
    tools: BTreeMap<String, ToolCount>,
    sessions: BTreeSet<String>,
    first: Option<(i64, String)>,
    last: Option<(i64, String)>,
    /// The latest refusals, at most [`RECENT_REFUSALS`], in no particular order.
    refusals: Vec<Listed>,
    approvals: Vec<Listed>,
    invalid_lines: u64,
    /// Calls whose decision this version does not know: neither run nor refused, as far as it
    /// can tell.
    unknown: u64,
}

/// Feeds lines into a [`Summary`], reporting invalid ones on stderr.
pub struct Reader<'a> {
    filter: &'a Filter,
    summary: &'a mut Summary,
    files: usize,
    report: Box<dyn FnMut(String) + 'a>,
}

impl<'a> Reader<'a> {
    /// A reader that reports invalid lines on stderr.
    pub fn new(filter: &'a Filter, summary: &'a mut Summary) -> Reader<'a> {
        Reader::with_report(filter, summary, |line| {
            eprintln!("mcp-policy-proxy: {line}")
        })
    }

    /// A reader that hands each report about an invalid line to `report`.
    pub fn with_report(
        filter: &'a Filter,
        summary: &'a mut Summary,
        report: impl FnMut(String) + 'a,
    ) -> Reader<'a> {
        Reader {
            filter,
            summary,
            files: 0,
            report: Box::new(report),
        }
    }

    /// Reads one log; `name` is how reports call it. An `Err` is a read error part way: what
    /// was read before it counts.
    pub fn read(&mut self, name: &str, mut input: impl BufRead) -> std::io::Result<()> {
        self.files += 1;
        let file = self.files;
        let mut line = Vec::new();
        let mut number = 0;
        loop {
            line.clear();
            if input.read_until(b'\n', &mut line)? == 0 {
                return Ok(());
            }
            number += 1;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match parse_line(&line) {
                Ok((time, record)) => self.summary.add(self.filter, record, (time, file, number)),
                Err(why) => {
                    self.summary.invalid_lines += 1;
                    if self.summary.invalid_lines <= REPORTED_INVALID_LINES {
                        (self.report)(format!("{name}:{number}: not an audit record: {why}"));
                    }
                }
            }
        }
    }

    /// Says how many invalid lines went unreported.
    pub fn finish(mut self) {
        let unreported = self
            .summary
            .invalid_lines
            .saturating_sub(REPORTED_INVALID_LINES);
        if unreported > 0 {
            (self.report)(format!(
                "... and {unreported} more lines that are not audit records"
            ));
        }
    }
}

/// A record and its time, or why the line is not one.
fn parse_line(line: &[u8]) -> Result<(i64, Record), String> {
    let value: Value = serde_json::from_slice(line).map_err(|err| {
        // serde's "at line 1" would read as the file's line.
        let why = err.to_string();
        let why = why.split(" at line ").next().unwrap_or_default().to_owned();
        format!("invalid JSON at column {}: {why}", err.column())
    })?;
    let record: Record = serde_json::from_value(value).map_err(|err| err.to_string())?;
    let time = parse_rfc3339(&record.time).ok_or_else(|| {
        format!(
            "invalid time {:?}; expected RFC 3339 such as \"2026-11-29T19:22:03.123Z\"",
            record.time
        )
    })?;
    Ok((time, record))
}

impl Summary {
    fn add(&mut self, filter: &Filter, record: Record, at: (i64, usize, usize)) {
        if filter.since.is_some_and(|since| at.0 < since)
            || filter
                .session
                .as_ref()
                .is_some_and(|session| *session != record.session)
        {
            return;
        }
        self.records += 1;
        *self.decisions.entry(record.decision.clone()).or_default() += 1;
        if !self.sessions.contains(&record.session) {
            self.sessions.insert(record.session.clone());
        }
        if self.first.as_ref().is_none_or(|(t, _)| at.0 < *t) {
            self.first = Some((at.0, record.time.clone()));
        }
        if self.last.as_ref().is_none_or(|(t, _)| at.0 >= *t) {
            self.last = Some((at.0, record.time.clone()));
        }
        if WAITING.contains(&record.decision.as_str()) {
            return;
        }
        self.calls += 1;
        let decision = record.decision.as_str();
        if !FORWARDED.contains(&decision) && !REFUSED.contains(&decision) {
            self.unknown += 1;
        }
        let refused = REFUSED.contains(&decision);
        if let Some(rule) = &record.rule {
            *self
                .rules
                .entry(rule.clone())
                .or_default()
                .entry(record.decision.clone())
                .or_default() += 1;
        }
        let tool = self.tools.entry(record.tool.clone()).or_default();
        tool.calls += 1;
        tool.refused += u64::from(refused);
        if record.approval.is_some() {
            self.approvals.push(Listed {
                at,
                record: record.clone(),
            });
        }
        if refused {
            self.refused += 1;
            self.refusals.push(Listed { at, record });
            if self.refusals.len() > RECENT_REFUSALS {
                let oldest = (0..self.refusals.len())
                    .min_by_key(|&i| self.refusals[i].at)
                    .expect("not empty");
                self.refusals.swap_remove(oldest);
            }
        }
    }

    fn sorted(listed: &[Listed]) -> Vec<&Listed> {
        let mut sorted: Vec<&Listed> = listed.iter().collect();
        sorted.sort_by_key(|l| l.at);
        sorted
    }

    /// The summary for machines.
    pub fn to_json(&self, filter: &Filter) -> Value {
        let refusals: Vec<Value> = Summary::sorted(&self.refusals)
            .into_iter()
            .map(|l| {
                let r = &l.record;
                json!({
                    "time": r.time, "session": r.session, "tool": r.tool,
                    "decision": r.decision, "rule": r.rule, "reason": r.reason,
                })
            })
            .collect();
        let approvals: Vec<Value> = Summary::sorted(&self.approvals)
            .into_iter()
            .filter_map(|l| {
                let r = &l.record;
                let a = r.approval.as_ref()?;
                Some(json!({
                    "time": r.time, "session": r.session, "tool": r.tool,
                    "decision": r.decision, "rule": r.rule, "channel": a.channel,
                    "outcome": a.outcome, "by": a.by, "note": a.note,
                }))
            })
            .collect();
        json!({
            "records": self.records,
            "calls": self.calls,
            "sessions": self.sessions.len(),
            "first": self.first.as_ref().map(|(_, t)| t),
            "last": self.last.as_ref().map(|(_, t)| t),
            "since": filter.since.map(format_rfc3339),
            "session": filter.session,
            "decisions": self.decisions,
            "rules": self.rules.iter()
                .map(|(rule, by)| (rule.clone(), by.values().sum::<u64>()))
                .collect::<BTreeMap<_, _>>(),
            "tools": self.tools.iter()
                .map(|(tool, count)| (tool.clone(), count.calls))
                .collect::<BTreeMap<_, _>>(),
            "refused": self.refused,
            "refusals": refusals,
            "approvals": approvals,
            "invalid_lines": self.invalid_lines,
            "unknown": self.unknown,
        })
    }

    /// The summary for a person in a terminal. Text from the log (tool names, reasons, notes)
    /// is shown without control characters, so a log cannot drive the terminal.
    pub fn to_text(&self, filter: &Filter) -> String {
        let mut out = String::new();
        let plural = |n: u64, one: &str, many: &str| {
            if n == 1 {
                format!("1 {one}")
            } else {
                format!("{n} {many}")
            }
        };
        let _ = write!(
            out,
            "{} in {}",
            plural(self.calls, "call", "calls"),
            plural(self.sessions.len() as u64, "session", "sessions")
        );
        if let (Some((_, first)), Some((_, last))) = (&self.first, &self.last) {
            let _ = write!(out, ", {} to {}", clean(first), clean(last));
        }
        out.push('\n');
        let mut only = Vec::new();
        if let Some(since) = filter.since {
            only.push(format!("since {}", format_rfc3339(since)));
        }
        if let Some(session) = &filter.session {
            only.push(format!("session {}", clean(session)));
        }
        if !only.is_empty() {
            let _ = writeln!(out, "  only {}", only.join(", "));
        }
        if self.invalid_lines > 0 {
            let _ = writeln!(
                out,
                "  {} (listed on stderr)",
                if self.invalid_lines == 1 {
                    "1 line was not an audit record".to_owned()
                } else {
                    format!("{} lines were not audit records", self.invalid_lines)
                }
            );
        }
        if self.records == 0 {
            return out;
        }

        out.push_str("\nDecisions (of every record)\n");
        let mut decisions: Vec<(&String, &u64)> = self.decisions.iter().collect();
        decisions.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let width = decisions
            .iter()
            .map(|(d, _)| d.chars().count())
            .max()
            .unwrap_or(0);
        for (decision, count) in decisions {
            let _ = write!(
                out,
                "  {:<width$}  {count:>7}  {:>5.1}%",
                clean(decision),
                *count as f64 * 100.0 / self.records as f64
            );
            if WAITING.contains(&decision.as_str()) {
                out.push_str("  (the call waited; a later record decides it)");
            } else if !FORWARDED.contains(&decision.as_str())
                && !REFUSED.contains(&decision.as_str())
            {
                out.push_str("  (unknown to this version: counted neither as run nor refused)");
            }
            out.push('\n');
        }

        if !self.rules.is_empty() {
            out.push_str("\nBy rule\n");
            let mut rules: Vec<(String, u64, &BTreeMap<String, u64>)> = self
                .rules
                .iter()
                .map(|(rule, by)| (clean(rule), by.values().sum(), by))
                .collect();
            rules.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            let width = rules.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
            for (rule, total, by) in rules {
                let mut by: Vec<(&String, &u64)> = by.iter().collect();
                by.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
                let by: Vec<String> = by
                    .iter()
                    .map(|(decision, n)| format!("{} {n}", clean(decision)))
                    .collect();
                let _ = writeln!(out, "  {rule:<width$}  {total:>7}  {}", by.join(", "));
            }
        }

        out.push_str("\nTop tools\n");
        let mut tools: Vec<(String, ToolCount)> = self
            .tools
            .iter()
            .map(|(tool, count)| (clean(tool), *count))
            .collect();
        tools.sort_by(|a, b| b.1.calls.cmp(&a.1.calls).then(a.0.cmp(&b.0)));
        let more = tools.len().saturating_sub(TOP_TOOLS);
        tools.truncate(TOP_TOOLS);
        let width = tools.iter().map(|t| t.0.chars().count()).max().unwrap_or(0);
        for (tool, count) in tools {
            let _ = write!(out, "  {tool:<width$}  {:>7}", count.calls);
            if count.refused > 0 {
                let _ = write!(out, "  {} refused", count.refused);
            }
            out.push('\n');
        }
        if more > 0 {
            let _ = writeln!(out, "  ... and {more} more (see --json)");
        }

        let many_sessions = self.sessions.len() > 1;
        if self.refused > 0 {
            let shown = self.refusals.len();
            let _ = writeln!(
                out,
                "\nRecent refusals ({})",
                if self.refused as usize > shown {
                    format!("the last {shown} of {}", self.refused)
                } else {
                    format!("{shown}")
                }
            );
            for listed in Summary::sorted(&self.refusals) {
                let r = &listed.record;
                let _ = write!(
                    out,
                    "  {}  {}  {}",
                    clean(&r.time),
                    clean(&r.tool),
                    clean(&r.decision)
                );
                if let Some(rule) = &r.rule {
                    let _ = write!(out, " by {}", clean(rule));
                }
                if let Some(reason) = &r.reason {
                    let _ = write!(out, ": {}", clean(reason));
                }
                if many_sessions {
                    let _ = write!(out, " (session {})", clean(&r.session));
                }
                out.push('\n');
            }
        }

        if !self.approvals.is_empty() {
            let total = self.approvals.len();
            let _ = writeln!(
                out,
                "\nApprovals ({})",
                if total > SHOWN_APPROVALS {
                    format!("the last {SHOWN_APPROVALS} of {total}; all with --json")
                } else {
                    total.to_string()
                }
            );
            let sorted = Summary::sorted(&self.approvals);
            for listed in &sorted[total.saturating_sub(SHOWN_APPROVALS)..] {
                let r = &listed.record;
                let Some(a) = &r.approval else { continue };
                let _ = write!(
                    out,
                    "  {}  {}  {}",
                    clean(&r.time),
                    clean(&r.tool),
                    clean(&a.outcome)
                );
                match &a.channel {
                    Some(channel) => {
                        let _ = write!(out, " via {}", clean(channel));
                    }
                    None => out.push_str(" (no answer)"),
                }
                if let Some(by) = &a.by {
                    let _ = write!(out, " by {}", clean(by));
                }
                if let Some(note) = &a.note {
                    let _ = write!(out, ": {:?}", clean(note));
                }
                if many_sessions {
                    let _ = write!(out, " (session {})", clean(&r.session));
                }
                out.push('\n');
            }
        }
        out
    }
}

/// Text from a log without control characters: escape sequences in a tool name or a note
/// must not reach the terminal.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::record::ApprovalRecord;

    fn record(time: &str, session: &str, tool: &str, decision: &str) -> Record {
        Record {
            time: time.to_owned(),
            session: session.to_owned(),
            id: Some("1".to_owned()),
            tool: tool.to_owned(),
            decision: decision.to_owned(),
            rule: None,
            reason: None,
            args_sha256: "00".repeat(32),
            arguments: None,
            approval: None,
            seq: None,
            prev: None,
        }
    }

    fn ruled(mut r: Record, rule: &str, reason: Option<&str>) -> Record {
        r.rule = Some(rule.to_owned());
        r.reason = reason.map(str::to_owned);
        r
    }

    fn approved(mut r: Record, channel: Option<&str>, outcome: &str, by: Option<&str>) -> Record {
        r.approval = Some(ApprovalRecord {
            channel: channel.map(str::to_owned),
            outcome: outcome.to_owned(),
            note: Some("ok for staging".to_owned()),
            by: by.map(str::to_owned),
            code: Some("K7Q2".to_owned()),
        });
        r
    }

    /// A session of one proxy, as its log would hold it.
    fn log() -> Vec<Record> {
        let t = |s: u32| format!("2026-11-29T19:00:{s:02}.000Z");
        vec![
            record(&t(1), "a", "valkey_read", "allow"),
            ruled(
                record(&t(2), "a", "valkey_write", "allow"),
                "rule 6 (valkey_write)",
                None,
            ),
            ruled(
                record(&t(3), "a", "valkey_write", "deny"),
                "no deletes",
                Some("deleting keys needs an operator"),
            ),
            ruled(
                record(&t(4), "a", "valkey_write", "rate_limited"),
                "rule 6 (valkey_write)",
                Some("at most 10 calls per 60s"),
            ),
            record(&t(5), "b", "CreateCodeConnection", "default_deny"),
            approved(
                ruled(
                    record(&t(6), "b", "manage_index", "approved"),
                    "index changes",
                    None,
                ),
                Some("command"),
                "approve_once",
                Some("alice"),
            ),
            approved(
                ruled(
                    record(&t(7), "b", "manage_index", "approval_timeout"),
                    "index changes",
                    Some("a person must approve"),
                ),
                None,
                "timeout",
                None,
            ),
            ruled(
                record(&t(8), "b", "valkey_write", "shadow_deny"),
                "no prod",
                None,
            ),
            // A person is being asked: a later record will decide the call.
            approved(
                ruled(
                    record(&t(9), "b", "manage_index", "approval_requested"),
                    "index changes",
                    None,
                ),
                Some("elicitation"),
                "asked",
                None,
            ),
        ]
    }

    fn jsonl(records: &[Record]) -> String {
        records
            .iter()
            .map(|r| serde_json::to_string(r).unwrap() + "\n")
            .collect()
    }

    fn summarize(inputs: &[(&str, String)], filter: &Filter) -> (Summary, Vec<String>) {
        let mut summary = Summary::default();
        let mut reports = Vec::new();
        let mut reader = Reader::with_report(filter, &mut summary, |r| reports.push(r));
        for (name, text) in inputs {
            reader.read(name, text.as_bytes()).unwrap();
        }
        reader.finish();
        (summary, reports)
    }

    #[test]
    fn counts_calls_decisions_rules_tools_refusals_and_approvals() {
        let (summary, reports) = summarize(&[("audit.jsonl", jsonl(&log()))], &Filter::default());
        assert!(reports.is_empty(), "{reports:?}");
        let json = summary.to_json(&Filter::default());
        assert_eq!(json["records"], 9);
        assert_eq!(json["calls"], 8);
        assert_eq!(json["sessions"], 2);
        assert_eq!(json["first"], "2026-11-29T19:00:01.000Z");
        assert_eq!(json["last"], "2026-11-29T19:00:09.000Z");
        assert_eq!(
            json["decisions"],
            json!({"allow": 2, "deny": 1, "rate_limited": 1, "default_deny": 1, "approved": 1,
                   "approval_requested": 1,
                   "approval_timeout": 1, "shadow_deny": 1})
        );
        assert_eq!(
            json["rules"],
            json!({"rule 6 (valkey_write)": 2, "no deletes": 1, "index changes": 2, "no prod": 1})
        );
        assert_eq!(
            json["tools"],
            json!({"valkey_read": 1, "valkey_write": 4, "CreateCodeConnection": 1, "manage_index": 2})
        );
        assert_eq!(json["refused"], 4);
        let refusals: Vec<(&str, &str)> = json["refusals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["tool"].as_str().unwrap(), r["decision"].as_str().unwrap()))
            .collect();
        assert_eq!(
            refusals,
            [
                ("valkey_write", "deny"),
                ("valkey_write", "rate_limited"),
                ("CreateCodeConnection", "default_deny"),
                ("manage_index", "approval_timeout"),
            ]
        );
        assert_eq!(
            json["refusals"][0]["reason"],
            "deleting keys needs an operator"
        );
        assert_eq!(
            json["approvals"],
            json!([
                {"time": "2026-11-29T19:00:06.000Z", "session": "b", "tool": "manage_index",
                 "decision": "approved", "rule": "index changes", "channel": "command",
                 "outcome": "approve_once", "by": "alice", "note": "ok for staging"},
                {"time": "2026-11-29T19:00:07.000Z", "session": "b", "tool": "manage_index",
                 "decision": "approval_timeout", "rule": "index changes", "channel": null,
                 "outcome": "timeout", "by": null, "note": "ok for staging"},
            ])
        );
        assert_eq!(json["invalid_lines"], 0);
    }

    /// `--since`, `--session`, then the calls and sessions they select.
    type FilterCase = (
        Option<&'static str>,
        Option<&'static str>,
        u64,
        &'static [&'static str],
    );

    #[test]
    fn filters_select_by_time_and_session() {
        let cases: &[FilterCase] = &[
            (None, None, 8, &["a", "b"]),
            (None, Some("a"), 4, &["a"]),
            (None, Some("nobody"), 0, &[]),
            (Some("2026-11-29T19:00:05Z"), None, 4, &["b"]),
            // An offset is a different way to write the same instant.
            (Some("2026-11-29T20:00:05.000+01:00"), None, 4, &["b"]),
            (Some("2026-11-29T19:00:05.001Z"), None, 3, &["b"]),
            (Some("2026-11-29T19:00:03Z"), Some("a"), 2, &["a"]),
            (Some("2027-01-01T00:00:00Z"), None, 0, &[]),
        ];
        for &(since, session, calls, sessions) in cases {
            let filter = Filter {
                since: since.map(|s| parse_rfc3339(s).unwrap()),
                session: session.map(str::to_owned),
            };
            let (summary, _) = summarize(&[("log", jsonl(&log()))], &filter);
            let json = summary.to_json(&filter);
            assert_eq!(json["calls"], calls, "{since:?} {session:?}");
            let seen: Vec<&str> = summary.sessions.iter().map(String::as_str).collect();
            assert_eq!(seen, sessions, "{since:?} {session:?}");
        }
    }

    /// A decision this version does not know (a log from a newer version, a misspelt name) is
    /// counted as unknown, never as a refusal.
    #[test]
    fn an_unknown_decision_is_reported_as_unknown_not_as_a_refusal() {
        let records = vec![
            record("2026-11-29T19:00:01.000Z", "a", "echo", "allow"),
            record("2026-11-29T19:00:02.000Z", "a", "echo", "deny"),
            record("2026-11-29T19:00:03.000Z", "a", "echo", "quarantined"),
        ];
        let (summary, _) = summarize(&[("audit.jsonl", jsonl(&records))], &Filter::default());
        let json = summary.to_json(&Filter::default());
        assert_eq!(json["calls"], 3);
        assert_eq!(json["refused"], 1);
        assert_eq!(json["unknown"], 1);
        let text = summary.to_text(&Filter::default());
        assert!(text.contains("unknown to this version"), "{text}");
    }

    #[test]
    fn invalid_lines_are_reported_with_their_place_and_skipped() {
        let good = jsonl(&log()[..2]);
        let text = format!(
            "{good}\nnot json\n{{\"time\":\"x\"}}\n{}\n{}",
            serde_json::to_string(&record("yesterday", "a", "t", "allow")).unwrap(),
            // A last line cut short by a crash: no newline, not whole.
            &jsonl(&log()[2..3])[..40]
        );
        let (summary, reports) = summarize(&[("a.jsonl", text)], &Filter::default());
        assert_eq!(summary.calls, 2);
        assert_eq!(summary.invalid_lines, 4);
        let places: Vec<&str> = reports
            .iter()
            .map(|r| r.split(": ").next().unwrap())
            .collect();
        assert_eq!(places, ["a.jsonl:4", "a.jsonl:5", "a.jsonl:6", "a.jsonl:7"]);
        assert_eq!(
            reports[0],
            "a.jsonl:4: not an audit record: invalid JSON at column 2: expected ident"
        );
        assert_eq!(
            reports[1],
            "a.jsonl:5: not an audit record: missing field `session`"
        );
        assert!(
            reports[2].contains("invalid time \"yesterday\""),
            "{}",
            reports[2]
        );

        let flood = "garbage\n".repeat(25);
        let (summary, reports) = summarize(&[("b", flood)], &Filter::default());
        assert_eq!(summary.invalid_lines, 25);
        assert_eq!(reports.len(), 21);
        assert_eq!(
            reports[20],
            "... and 5 more lines that are not audit records"
        );
    }

    #[test]
    fn only_the_latest_refusals_are_kept_across_files_in_time_order() {
        let refusals = |from: u32, to: u32| -> String {
            let records: Vec<Record> = (from..to)
                .map(|s| {
                    let time = format!("2026-11-29T19:{:02}:{:02}.000Z", s / 60, s % 60);
                    ruled(
                        record(&time, "a", &format!("t{s}"), "deny"),
                        "r",
                        Some("no"),
                    )
                })
                .collect();
            jsonl(&records)
        };
        // A rotated file holds the later records here, and is read first.
        let (summary, _) = summarize(
            &[
                ("audit.jsonl", refusals(100, 130)),
                ("audit.jsonl.1", refusals(0, 100)),
            ],
            &Filter::default(),
        );
        let json = summary.to_json(&Filter::default());
        assert_eq!(json["refused"], 130);
        let tools: Vec<&str> = json["refusals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["tool"].as_str().unwrap())
            .collect();
        let expected: Vec<String> = (120..130).map(|s| format!("t{s}")).collect();
        assert_eq!(tools, expected);
        assert_eq!(json["first"], "2026-11-29T19:00:00.000Z");
        assert_eq!(json["last"], "2026-11-29T19:02:09.000Z");
    }

    #[test]
    fn the_text_summary_reads_for_a_person() {
        let mut records = log();
        records[0].tool = "evil\u{1b}[2Jtool".to_owned();
        let (summary, _) = summarize(&[("log", jsonl(&records))], &Filter::default());
        let text = summary.to_text(&Filter::default());
        let expected = "\
8 calls in 2 sessions, 2026-11-29T19:00:01.000Z to 2026-11-29T19:00:09.000Z

Decisions (of every record)
  allow                     2   22.2%
  approval_requested        1   11.1%  (the call waited; a later record decides it)
  approval_timeout          1   11.1%
  approved                  1   11.1%
  default_deny              1   11.1%
  deny                      1   11.1%
  rate_limited              1   11.1%
  shadow_deny               1   11.1%

By rule
  index changes                2  approval_timeout 1, approved 1
  rule 6 (valkey_write)        2  allow 1, rate_limited 1
  no deletes                   1  deny 1
  no prod                      1  shadow_deny 1

Top tools
  valkey_write                4  2 refused
  manage_index                2  1 refused
  CreateCodeConnection        1  1 refused
  evil\u{FFFD}[2Jtool                1

Recent refusals (4)
  2026-11-29T19:00:03.000Z  valkey_write  deny by no deletes: deleting keys needs an operator (session a)
  2026-11-29T19:00:04.000Z  valkey_write  rate_limited by rule 6 (valkey_write): at most 10 calls per 60s (session a)
  2026-11-29T19:00:05.000Z  CreateCodeConnection  default_deny (session b)
  2026-11-29T19:00:07.000Z  manage_index  approval_timeout by index changes: a person must approve (session b)

Approvals (2)
  2026-11-29T19:00:06.000Z  manage_index  approve_once via command by alice: \"ok for staging\" (session b)
  2026-11-29T19:00:07.000Z  manage_index  timeout (no answer): \"ok for staging\" (session b)
";
        assert_eq!(text, expected);

        let filter = Filter {
            since: Some(parse_rfc3339("2030-01-01T00:00:00Z").unwrap()),
            session: Some("a".to_owned()),
        };
        let (summary, _) = summarize(&[("log", jsonl(&records))], &filter);
        assert_eq!(
            summary.to_text(&filter),
            "0 calls in 0 sessions\n  only since 2030-01-01T00:00:00.000Z, session a\n"
        );
    }
}
