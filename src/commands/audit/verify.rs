//! `mcp-policy-proxy audit verify FILE...`: whether audit logs are whole.
//!
//! Every record carries its number in its writer's hash chain (`seq`) and the SHA-256 of the
//! line before it in that chain (`prev`); one chain per proxy process (its `session`), so
//! proxies sharing a file and rotated files are followed (give the files oldest first:
//! `audit.jsonl.2 audit.jsonl.1 audit.jsonl`). A changed line breaks the `prev` of the next
//! record of its chain; a removed one leaves a gap in `seq`; moved ones come out of order. What
//! a chain alone cannot show (lines cut from the end, a file rewritten whole) the anchor shows:
//! the proxy logs each chain's last digest on its stderr at exit, and this report prints the
//! last digest of each chain to compare with it.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::approval::digest::hex;

/// What `verify` found: the report to print, and whether every chain is whole.
pub struct Verdict {
    pub report: String,
    pub whole: bool,
}

struct Link {
    seq: u64,
    digest: String,
    place: String,
}

/// Checks the chains of `files` (each a name and its bytes), in the order given.
pub fn verify(files: &[(String, Vec<u8>)]) -> Verdict {
    let mut chains: HashMap<String, Link> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut problems: Vec<String> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let (mut records, mut unchained) = (0u64, 0u64);
    for (name, bytes) in files {
        for (number, line) in bytes.split_inclusive(|&b| b == b'\n').enumerate() {
            let place = format!("{name}:{}", number + 1);
            if line.trim_ascii().is_empty() {
                continue;
            }
            let Ok(value) = serde_json::from_slice::<serde_json::Value>(line) else {
                problems.push(format!("{place}: not an audit record"));
                continue;
            };
            let session = value["session"].as_str().unwrap_or("").to_owned();
            let (Some(seq), Some(prev)) = (value["seq"].as_u64(), value["prev"].as_str()) else {
                // Logs from before the chain have none; a line without one among chained
                // lines was put there by someone else.
                if records > 0 {
                    problems.push(format!(
                        "{place}: a record without a place in a chain, after chained records: \
                         it was inserted"
                    ));
                }
                unchained += 1;
                continue;
            };
            records += 1;
            let digest = hex(&Sha256::digest(line));
            match chains.get(&session) {
                None => {
                    order.push(session.clone());
                    if seq != 1 || prev != "0".repeat(64) {
                        notes.push(format!(
                            "{place}: the chain of session {session} starts at record {seq}: the \
                             records before it are not in these files (rotated away, or removed \
                             from the start)"
                        ));
                    }
                }
                Some(last) if Some(seq) == last.seq.checked_add(1) && prev == last.digest => {}
                Some(last) if Some(seq) == last.seq.checked_add(1) => problems.push(format!(
                    "{place}: record {seq} of session {session} does not follow the line before \
                     it in its chain ({}): that line was changed",
                    last.place
                )),
                Some(last) if seq > last.seq.saturating_add(1) => problems.push(format!(
                    "{place}: session {session} goes from record {} ({}) to record {seq}: {} \
                     record(s) missing (removed)",
                    last.seq,
                    last.place,
                    seq - last.seq.saturating_add(1)
                )),
                Some(last) => problems.push(format!(
                    "{place}: record {seq} of session {session} comes after record {} ({}): \
                     records were moved or duplicated",
                    last.seq, last.place
                )),
            }
            chains.insert(session, Link { seq, digest, place });
        }
    }
    let whole = problems.is_empty();
    let mut report = String::new();
    let _ = writeln!(
        report,
        "{}: {records} chained record(s) in {} chain(s)",
        if whole { "whole" } else { "BROKEN" },
        chains.len()
    );
    for problem in &problems {
        let _ = writeln!(report, "  {problem}");
    }
    for note in &notes {
        let _ = writeln!(report, "  note: {note}");
    }
    if unchained > 0 {
        let _ = writeln!(
            report,
            "  note: {unchained} record(s) carry no chain (written before the chain existed); \
             they are not checked"
        );
    }
    for session in &order {
        let last = &chains[session];
        let _ = writeln!(
            report,
            "  session {session}: last record {} at {}, SHA-256 {} (compare with the proxy's \
             stderr: \"audit chain of session {session}: {} record(s), the last one's SHA-256 \
             is ...\"; a log cut from the end ends earlier)",
            last.seq, last.place, last.digest, last.seq
        );
    }
    Verdict { report, whole }
}

/// Reads `paths` and verifies them; a file that cannot be read is a problem of its own.
pub fn run(paths: &[std::path::PathBuf]) -> Result<Verdict, crate::Error> {
    if paths.is_empty() {
        return Err(crate::Error::Usage(
            "audit verify needs the log files, oldest first: audit verify audit.jsonl.1 \
             audit.jsonl"
                .to_owned(),
        ));
    }
    let mut files = Vec::new();
    for path in paths {
        let bytes = std::fs::read(path)
            .map_err(|err| crate::Error::Usage(format!("cannot read {}: {err}", display(path))))?;
        files.push((display(path), bytes));
    }
    Ok(verify(&files))
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chain of `n` records as the writer writes them.
    fn chain(session: &str, n: u64) -> Vec<String> {
        let mut last = "0".repeat(64);
        (1..=n)
            .map(|seq| {
                let line = format!(
                    "{{\"time\":\"t\",\"session\":\"{session}\",\"tool\":\"echo\",\"decision\":\"allow\",\"args_sha256\":\"00\",\"seq\":{seq},\"prev\":\"{last}\"}}\n"
                );
                last = hex(&Sha256::digest(line.as_bytes()));
                line
            })
            .collect()
    }

    fn check(lines: &[String]) -> Verdict {
        verify(&[("audit.jsonl".to_owned(), lines.concat().into_bytes())])
    }

    #[test]
    fn a_whole_log_and_interleaved_writers_verify() {
        let (a, b) = (chain("a", 5), chain("b", 4));
        let mut mixed = Vec::new();
        for i in 0..5 {
            mixed.push(a[i].clone());
            if i < 4 {
                mixed.push(b[i].clone());
            }
        }
        let verdict = check(&mixed);
        assert!(verdict.whole, "{}", verdict.report);
        assert!(verdict.report.contains("9 chained record(s) in 2 chain(s)"));
    }

    #[test]
    fn edited_removed_swapped_and_cut_lines_are_found() {
        let lines = chain("a", 6);
        let mut edited = lines.clone();
        edited[2] = edited[2].replace("allow", "deny");
        let verdict = check(&edited);
        assert!(!verdict.whole);
        assert!(
            verdict.report.contains("audit.jsonl:4: record 4")
                && verdict.report.contains("was changed"),
            "{}",
            verdict.report
        );

        let mut removed = lines.clone();
        removed.remove(3);
        let verdict = check(&removed);
        assert!(!verdict.whole);
        assert!(
            verdict.report.contains("1 record(s) missing"),
            "{}",
            verdict.report
        );

        let mut swapped = lines.clone();
        swapped.swap(1, 2);
        let verdict = check(&swapped);
        assert!(!verdict.whole);
        assert!(verdict.report.contains("moved"), "{}", verdict.report);

        // Cut from the end: the chain is whole; the last record shown is the anchor to compare.
        let verdict = check(&lines[..4]);
        assert!(verdict.whole);
        assert!(
            verdict.report.contains("last record 4"),
            "{}",
            verdict.report
        );
    }

    #[test]
    fn an_unchained_line_among_chained_ones_is_an_insertion() {
        let mut lines = chain("a", 3);
        lines.insert(2, "{\"time\":\"t\",\"session\":\"a\",\"tool\":\"echo\",\"decision\":\"allow\",\"args_sha256\":\"00\"}\n".to_owned());
        let verdict = check(&lines);
        assert!(!verdict.whole);
        assert!(
            verdict.report.contains("it was inserted"),
            "{}",
            verdict.report
        );
    }

    #[test]
    fn rotated_files_continue_the_chain() {
        let lines = chain("a", 6);
        let files = [
            ("audit.jsonl.1".to_owned(), lines[..3].concat().into_bytes()),
            ("audit.jsonl".to_owned(), lines[3..].concat().into_bytes()),
        ];
        let verdict = verify(&files);
        assert!(verdict.whole, "{}", verdict.report);
        // The oldest file rotated away: the chain starts later, said as a note.
        let verdict = verify(&files[1..]);
        assert!(verdict.whole, "{}", verdict.report);
        assert!(
            verdict.report.contains("starts at record 4"),
            "{}",
            verdict.report
        );
    }
}
