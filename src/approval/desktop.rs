//! `mcp-policy-proxy approve-desktop`: an approval command for people who run MCP servers from a
//! desktop client such as Claude Desktop, where there is no terminal to ask in.
//!
//! The proxy runs an approval command with the call on stdin and no terminal, and takes exit 0
//! as a yes. This one asks the person at the screen with the platform's own dialog: on Windows
//! a Win32 message box shown by this process (`os::dialog`), elsewhere a dialog program
//! (zenity, else kdialog, else macOS's osascript) rather than a GUI toolkit of our own: those
//! programs are already installed where a desktop is, they keep the proxy free of GUI
//! dependencies, and a crash of theirs is an exit status we read as a no.
//!
//! Whatever goes wrong must end in a refusal, never in an approval: a missing dialog program, no
//! display, a malformed request, a window closed, a time-out, a dialog killed, output we do not
//! recognise. So an approval needs positive evidence (zenity's exit 0, or the exact label of the
//! button on stdout), and everything else is a denial with a note that says why.
//!
//! The person decides on what the dialog shows, and most of it comes from the model, so every
//! piece goes through [`super::display`] (no bidi tricks, no invisible characters, bounded
//! lengths) and reaches the dialog program as one argv element that it shows as plain text:
//! zenity gets `--no-markup`; kdialog, which reads `\n` and `\\` in its text as escapes, gets
//! every backslash doubled; AppleScript gets the text through `on run argv`, never spliced into
//! the script's source.
//!
//! The dialog is built so that a keystroke meant for another window cannot approve: it opens
//! with the Deny button focused (zenity's `--default-cancel`, kdialog's `--default`, AppleScript's
//! `default button`), so Return or Space there denies.
//!
//! The dialog gives up on its own a little before the proxy's time-out (`timeout_ms`), so the
//! answer is a clean "deny" rather than a killed process; we also kill the dialog ourselves if it
//! outlives that, and on Linux it dies with us if the proxy kills us first.

use std::io::Read;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{Value, json};

use crate::os::{Asked, NativeAnswer};

pub use super::dialog::{Dialog, Ended, Finished};
use super::dialog::{choose_dialog, find_program, run_dialog};
use super::display::{describe_arguments_within, visible};

/// The labels of the three answers, as the dialog shows them.
pub const APPROVE_ONCE_LABEL: &str = "Approve once";
pub const APPROVE_FOR_SESSION_LABEL: &str = "Approve for this session";
pub const DENY_LABEL: &str = "Deny";

/// How long the dialog stays up when the request names no `timeout_ms`.
pub const DEFAULT_TIMEOUT_MS: u64 = 120_000;

/// The largest request read from stdin; a larger one is refused unread.
pub const MAX_REQUEST_BYTES: u64 = 16 << 20;

/// Bounds of what the dialog shows (in characters, or lines): one value, all the arguments, the
/// rest. A GTK or Qt label does not scroll, so the arguments are kept to what fits on a laptop
/// screen with the buttons still below them.
const MAX_VALUE_CHARS: usize = 200;
const MAX_ARGUMENTS_CHARS: usize = 1500;
const MAX_ARGUMENTS_LINES: usize = 20;
const MAX_FIELD_CHARS: usize = 300;
const MAX_REASON_CHARS: usize = 600;
const MAX_CODE_CHARS: usize = 40;
const MAX_TITLE_TOOL_CHARS: usize = 60;
/// The most of a dialog program's stdout and stderr we keep.
pub(super) const MAX_CAPTURE_BYTES: usize = 64 << 10;

/// Variables with which zenity lets its caller renumber its exit statuses (`ZENITY_CANCEL=0` would
/// turn Deny into an approval); they are removed from the dialog's environment.
pub(super) const ZENITY_EXIT_VARIABLES: &[&str] = &[
    "ZENITY_OK",
    "ZENITY_CANCEL",
    "ZENITY_ESC",
    "ZENITY_ERROR",
    "ZENITY_EXTRA",
    "ZENITY_TIMEOUT",
    "DIALOG_OK",
    "DIALOG_CANCEL",
    "DIALOG_ESC",
    "DIALOG_ERROR",
    "DIALOG_EXTRA",
    "DIALOG_TIMEOUT",
];

/// What the person decided, as the approval-command protocol spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    ApproveOnce,
    ApproveForSession,
    Deny,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::ApproveOnce => "approve_once",
            Decision::ApproveForSession => "approve_for_session",
            Decision::Deny => "deny",
        }
    }

    pub fn approves(self) -> bool {
        self != Decision::Deny
    }
}

/// The approver's answer: what it prints and how it exits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesktopOutcome {
    pub decision: Decision,
    /// Why, in words for the proxy's log.
    pub note: String,
}

impl DesktopOutcome {
    pub(super) fn approve(decision: Decision, note: String) -> Self {
        DesktopOutcome { decision, note }
    }

    pub(super) fn deny(note: impl Into<String>) -> Self {
        DesktopOutcome {
            decision: Decision::Deny,
            note: note.into(),
        }
    }

    /// The line for stdout: `{"decision":"...","note":"..."}` and a newline.
    pub fn stdout_line(&self) -> String {
        let mut line = json!({"decision": self.decision.as_str(), "note": self.note}).to_string();
        line.push('\n');
        line
    }

    /// 0 for an approval, 1 for anything else.
    pub fn exit_code(&self) -> u8 {
        if self.decision.approves() { 0 } else { 1 }
    }
}

/// The subcommand: reads one request from stdin, asks, prints the answer on stdout and returns
/// the exit status. Reading stops at the end of the first JSON value, so it does not matter
/// whether the proxy closes stdin after it.
pub fn run_stdio() -> ExitCode {
    use std::io::Write as _;
    let stdin = std::io::stdin().lock().take(MAX_REQUEST_BYTES + 1);
    let outcome = match serde_json::Deserializer::from_reader(stdin)
        .into_iter::<Value>()
        .next()
    {
        Some(Ok(value)) => decide(&value),
        Some(Err(err)) if err.is_eof() => DesktopOutcome::deny(format!(
            "the approval request on stdin is incomplete or longer than {MAX_REQUEST_BYTES} bytes; \
             refused without asking"
        )),
        Some(Err(err)) => DesktopOutcome::deny(format!(
            "the approval request on stdin is not JSON ({err}); refused without asking"
        )),
        None => DesktopOutcome::deny("no approval request on stdin; refused without asking"),
    };
    // approve-desktop is a program of its own: its one answer line is its stdout's purpose.
    #[allow(clippy::disallowed_methods)]
    let mut stdout = std::io::stdout().lock();
    // If the proxy is gone, nobody reads the answer; the exit status still says it.
    let _ = stdout
        .write_all(outcome.stdout_line().as_bytes())
        .and_then(|()| stdout.flush());
    ExitCode::from(outcome.exit_code())
}

/// Asks the person about the request in `input` (one JSON object, as the proxy writes it to an
/// approval command's stdin) and returns the answer.
pub fn run(input: &[u8]) -> DesktopOutcome {
    if input.len() as u64 > MAX_REQUEST_BYTES {
        return DesktopOutcome::deny(format!(
            "the approval request is larger than {MAX_REQUEST_BYTES} bytes; refused without asking"
        ));
    }
    match serde_json::from_slice::<Value>(input) {
        Ok(value) => decide(&value),
        Err(err) => DesktopOutcome::deny(format!(
            "the approval request is not JSON ({err}); refused without asking"
        )),
    }
}

fn decide(value: &Value) -> DesktopOutcome {
    let request = match Request::from_json(value) {
        Ok(request) => request,
        Err(why) => {
            return DesktopOutcome::deny(format!("{why}; refused without asking"));
        }
    };
    let secs = dialog_seconds(request.timeout_ms);
    let title = request.title();
    let text = request.text(secs);
    match crate::os::dialog::ask(&title, &text, Duration::from_secs(secs)) {
        Asked::ByProgram => {}
        Asked::Answered(NativeAnswer::ApproveOnce) => {
            return DesktopOutcome::approve(
                Decision::ApproveOnce,
                "approved once in the message box".to_owned(),
            );
        }
        Asked::Answered(NativeAnswer::Denied) => {
            return DesktopOutcome::deny("the person chose No in the message box");
        }
        Asked::Answered(NativeAnswer::TimedOut) => {
            return DesktopOutcome::deny(format!(
                "nobody answered the message box within {secs} s"
            ));
        }
        Asked::Answered(NativeAnswer::Failed(why)) => {
            return DesktopOutcome::deny(format!("{why}; refused"));
        }
    }
    let path = std::env::var_os("PATH");
    let has_display = ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()));
    let (dialog, program) =
        match choose_dialog(|name| find_program(name, path.as_deref()), has_display) {
            Ok(found) => found,
            Err(why) => return DesktopOutcome::deny(why),
        };
    let args = dialog.args(&title, &text, secs);
    // The dialog closes itself after `secs`; this bound is for one that does not.
    let limit = Duration::from_secs(secs + 1);
    match run_dialog(dialog, &program, &args, limit) {
        Ok(finished) => dialog.interpret(&finished, secs),
        Err(err) => {
            DesktopOutcome::deny(format!("cannot run {} ({err}); refused", program.display()))
        }
    }
}

/// The request as the proxy sends it. Only `tool` is required; a field that is missing or of
/// another type than expected is shown as absent.
#[derive(Debug, Clone, PartialEq)]
struct Request {
    tool: String,
    arguments: Value,
    rule: Option<RuleInfo>,
    reason: Option<String>,
    server: Option<String>,
    code: Option<String>,
    timeout_ms: Option<u64>,
    /// What "approve for this session" covers: `"tool"` is any call to the tool; anything
    /// else is the exact call.
    whole_tool: bool,
}

#[derive(Debug, Clone, PartialEq)]
struct RuleInfo {
    number: Option<u64>,
    name: Option<String>,
    pattern: Option<String>,
}

fn string_field(value: &Value, key: &str) -> Option<String> {
    value.get(key).and_then(Value::as_str).map(str::to_owned)
}

impl Request {
    fn from_json(value: &Value) -> Result<Request, String> {
        if !value.is_object() {
            return Err("the approval request is not a JSON object".to_owned());
        }
        let Some(tool) = string_field(value, "tool") else {
            return Err("the approval request has no \"tool\" string".to_owned());
        };
        let rule = value
            .get("rule")
            .filter(|r| r.is_object())
            .map(|rule| RuleInfo {
                number: rule.get("number").and_then(Value::as_u64),
                name: string_field(rule, "name"),
                pattern: string_field(rule, "pattern"),
            });
        Ok(Request {
            tool,
            arguments: value.get("arguments").cloned().unwrap_or(Value::Null),
            rule,
            reason: string_field(value, "reason"),
            server: string_field(value, "server"),
            code: string_field(value, "code"),
            timeout_ms: value.get("timeout_ms").and_then(Value::as_u64),
            whole_tool: value.get("session_grant").and_then(Value::as_str) == Some("tool"),
        })
    }

    fn code(&self) -> String {
        match &self.code {
            Some(code) => visible(code, MAX_CODE_CHARS),
            None => "none".to_owned(),
        }
    }

    /// The window title: names the proxy and the approval code, so that the person can match the
    /// window to what their client shows and a test can find it.
    fn title(&self) -> String {
        format!(
            "mcp-policy-proxy: approve {}? (code {})",
            visible(&self.tool, MAX_TITLE_TOOL_CHARS),
            self.code()
        )
    }

    /// The dialog's text. Its first line is fixed prose, which also keeps Qt (kdialog) from
    /// taking the text for rich text: Qt decides that from the first line.
    fn text(&self, secs: u64) -> String {
        let mut text = String::from("A tool call is waiting for your approval.\n\n");
        text.push_str(&format!("Tool: {}\n", visible(&self.tool, MAX_FIELD_CHARS)));
        if let Some(server) = &self.server {
            text.push_str(&format!("Server: {}\n", visible(server, MAX_FIELD_CHARS)));
        }
        if let Some(rule) = &self.rule {
            let mut line = String::from("Rule:");
            if let Some(number) = rule.number {
                line.push_str(&format!(" {number}"));
            }
            if let Some(name) = &rule.name {
                line.push_str(&format!(" \"{}\"", visible(name, MAX_FIELD_CHARS)));
            }
            if let Some(pattern) = &rule.pattern {
                line.push_str(&format!(
                    " (tool pattern {})",
                    visible(pattern, MAX_FIELD_CHARS)
                ));
            }
            text.push_str(&line);
            text.push('\n');
        }
        if let Some(reason) = &self.reason {
            text.push_str(&format!("Reason: {}\n", visible(reason, MAX_REASON_CHARS)));
        }
        text.push_str(&format!("Approval code: {}\n\n", self.code()));
        text.push_str("Arguments:\n");
        text.push_str(&describe_arguments_within(
            &self.arguments,
            MAX_VALUE_CHARS,
            MAX_ARGUMENTS_CHARS,
            MAX_ARGUMENTS_LINES,
        ));
        let covers = if self.whole_tool {
            "lets ANY call to this tool run in this session"
        } else {
            "lets this exact call run again in this session"
        };
        text.push_str(&format!(
            "\n\n\"{APPROVE_FOR_SESSION_LABEL}\" {covers} without asking. Closing this window \
             denies the call, and so does waiting {secs} s."
        ));
        text
    }
}

/// Whole seconds the dialog stays up: the proxy's time-out less a margin to answer in before the
/// proxy kills us, at least 1 s.
fn dialog_seconds(timeout_ms: Option<u64>) -> u64 {
    let ms = timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
    (ms.saturating_sub(1500) / 1000).clamp(1, 86_400)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn request() -> Value {
        json!({
            "tool": "CreateCodeConnection",
            "arguments": {"name": "prod", "url": "https://example.com/\u{202E}gpj.exe"},
            "rule": {"number": 3, "name": "code-connections", "pattern": "CreateCodeConnection"},
            "reason": "code connections reach production",
            "server": "uvx awslabs.valkey-mcp-server@latest",
            "code": "K7P-4QX",
            "session": "s-1",
            "timeout_ms": 120000
        })
    }

    fn finished(ended: Ended, stdout: &str, stderr: &str) -> Finished {
        Finished {
            ended,
            stdout: stdout.to_owned(),
            stderr: stderr.to_owned(),
        }
    }

    #[test]
    fn request_is_shown_in_full_and_safely() {
        let request = Request::from_json(&request()).unwrap();
        assert_eq!(
            request.title(),
            "mcp-policy-proxy: approve CreateCodeConnection? (code K7P-4QX)"
        );
        assert_eq!(
            request.text(118),
            "A tool call is waiting for your approval.\n\n\
             Tool: CreateCodeConnection\n\
             Server: uvx awslabs.valkey-mcp-server@latest\n\
             Rule: 3 \"code-connections\" (tool pattern CreateCodeConnection)\n\
             Reason: code connections reach production\n\
             Approval code: K7P-4QX\n\n\
             Arguments:\n\
             name = \"prod\"\n\
             url = \"https://example.com/\\u{202E}gpj.exe\"\n\n\
             \"Approve for this session\" lets this exact call run again in this session \
             without asking. Closing this window denies the call, and so does waiting 118 s."
        );
    }

    #[test]
    fn optional_fields_may_be_null_or_missing() {
        let request = Request::from_json(&json!({
            "tool": "t\u{202E}x",
            "arguments": {},
            "rule": {"number": 1, "name": null, "pattern": "*"},
            "reason": null,
        }))
        .unwrap();
        assert_eq!(
            request.title(),
            "mcp-policy-proxy: approve t\\u{202E}x? (code none)"
        );
        let text = request.text(5);
        assert!(text.contains("Rule: 1 (tool pattern *)\n"), "{text}");
        assert!(text.contains("Arguments:\n(no arguments)\n"), "{text}");
        assert!(
            !text.contains("Reason:") && !text.contains("Server:"),
            "{text}"
        );
    }

    #[test]
    fn malformed_requests_are_refused_without_asking() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "not JSON"),
            (b"{", "not JSON"),
            (b"[1]", "not a JSON object"),
            (b"{\"arguments\":{}}", "no \"tool\" string"),
            (b"{\"tool\":7}", "no \"tool\" string"),
            (b"{\"tool\":\"x\"} {\"tool\":\"y\"}", "not JSON"),
        ];
        for (input, why) in cases {
            let outcome = run(input);
            assert_eq!(outcome.decision, Decision::Deny, "{input:?}");
            assert!(outcome.note.contains(why), "{input:?}: {}", outcome.note);
            assert_eq!(outcome.exit_code(), 1);
        }
    }

    #[test]
    fn dialog_time_leaves_a_margin_before_the_proxy_kills_us() {
        let cases = [
            (Some(120_000), 118),
            (Some(10_000), 8),
            (Some(2_600), 1),
            (Some(1_000), 1),
            (Some(0), 1),
            (None, 118),
            (Some(u64::MAX), 86_400),
        ];
        for (timeout_ms, want) in cases {
            assert_eq!(dialog_seconds(timeout_ms), want, "{timeout_ms:?}");
        }
    }

    #[test]
    fn zenity_gets_plain_text_deny_focused_and_the_three_answers() {
        let args = Dialog::Zenity.args("T -x", "-text\n\\u{202E}", 9);
        assert_eq!(
            args,
            [
                "--question",
                "--no-markup",
                "--default-cancel",
                "--width=640",
                "--title=T -x",
                "--text=-text\n\\u{202E}",
                "--ok-label=Approve once",
                "--cancel-label=Deny",
                "--extra-button=Approve for this session",
                "--timeout=9",
            ]
        );
    }

    #[test]
    fn kdialog_text_keeps_its_backslashes() {
        // kdialog turns `\n` into a newline and `\\` into `\`: doubled, an escape shown by
        // `visible` reaches the screen as it is, and cannot forge a line.
        let args = Dialog::Kdialog.args("T", "a = \"x\\nproxy: approved \\u{202E}\"\nb", 9);
        assert_eq!(
            args,
            [
                "--title=T",
                "--menu=a = \"x\\\\nproxy: approved \\\\u{202E}\"\nb",
                "--default=Deny",
                "--",
                "approve_once",
                "Approve once",
                "approve_for_session",
                "Approve for this session",
                "deny",
                "Deny",
            ]
        );
    }

    #[test]
    fn osascript_takes_the_text_as_argv_not_as_script() {
        let text = "\" & (do shell script \"touch /tmp/pwned\") & \"";
        let args = Dialog::Osascript.args("title", text, 9);
        let (script, argv) = args.split_at(args.len() - 3);
        assert_eq!(argv, [text, "title", "9"]);
        assert!(script.iter().step_by(2).all(|a| a == "-e"), "{script:?}");
        assert!(!script.iter().any(|a| a.contains("pwned")), "{script:?}");
        assert!(script[1] == "on run argv" && script[script.len() - 1] == "end run");
    }

    #[test]
    fn exit_statuses_map_to_decisions() {
        use Decision::*;
        use Dialog::*;
        let cases: &[(Dialog, Ended, &str, &str, Decision, &str)] = &[
            (Zenity, Ended::Code(0), "", "", ApproveOnce, "approved once"),
            (
                Zenity,
                Ended::Code(0),
                "\n",
                "Gtk-WARNING",
                ApproveOnce,
                "approved once",
            ),
            (
                Zenity,
                Ended::Code(1),
                "Approve for this session\n",
                "",
                ApproveForSession,
                "for this session",
            ),
            (
                Zenity,
                Ended::Code(1),
                "",
                "",
                Deny,
                "Deny, Escape or the window closed",
            ),
            (Zenity, Ended::Code(5), "", "", Deny, "within 7 s"),
            (
                Zenity,
                Ended::Code(255),
                "",
                "x\ncannot open display\n",
                Deny,
                "exit status 255 (cannot open display); refused",
            ),
            (
                Zenity,
                Ended::Code(0),
                "Approve for this session\n",
                "",
                Deny,
                "no answer we know",
            ),
            (
                Zenity,
                Ended::Code(1),
                "Approve once\n",
                "",
                Deny,
                "exit status 1",
            ),
            (Zenity, Ended::Code(2), "", "", Deny, "exit status 2"),
            (Zenity, Ended::Signal(9), "", "", Deny, "signal 9"),
            (Zenity, Ended::Killed, "", "", Deny, "still open"),
            (
                Kdialog,
                Ended::Code(0),
                "approve_once\n",
                "",
                ApproveOnce,
                "approved once",
            ),
            (
                Kdialog,
                Ended::Code(0),
                "approve_for_session\n",
                "",
                ApproveForSession,
                "for this session",
            ),
            (
                Kdialog,
                Ended::Code(0),
                "deny\n",
                "",
                Deny,
                "denied in the desktop dialog",
            ),
            (Kdialog, Ended::Code(0), "", "", Deny, "no answer we know"),
            (Kdialog, Ended::Code(1), "", "", Deny, "closed"),
            (
                Kdialog,
                Ended::Code(1),
                "approve_once\n",
                "",
                Deny,
                "exit status 1",
            ),
            (
                Kdialog,
                Ended::Code(255),
                "",
                "Syntax",
                Deny,
                "exit status 255 (Syntax)",
            ),
            (
                Osascript,
                Ended::Code(0),
                "Approve once\n",
                "",
                ApproveOnce,
                "approved once",
            ),
            (
                Osascript,
                Ended::Code(0),
                "Approve for this session\n",
                "",
                ApproveForSession,
                "for this session",
            ),
            (
                Osascript,
                Ended::Code(0),
                "gave up\n",
                "",
                Deny,
                "within 7 s",
            ),
            (
                Osascript,
                Ended::Code(0),
                "Deny\n",
                "",
                Deny,
                "no answer we know",
            ),
            (
                Osascript,
                Ended::Code(1),
                "",
                "execution error: User canceled. (-128)",
                Deny,
                "denied in the desktop dialog",
            ),
            (
                Osascript,
                Ended::Code(1),
                "",
                "execution error: (-1743)",
                Deny,
                "(-1743)",
            ),
        ];
        for (dialog, ended, stdout, stderr, want, note) in cases {
            let outcome = dialog.interpret(&finished(*ended, stdout, stderr), 7);
            assert_eq!(
                outcome.decision, *want,
                "{dialog:?} {ended:?} {stdout:?}: {}",
                outcome.note
            );
            assert!(
                outcome.note.contains(note),
                "{dialog:?} {ended:?} {stdout:?}: {}",
                outcome.note
            );
            assert_eq!(outcome.exit_code() == 0, want.approves());
        }
    }

    #[test]
    fn outcome_is_one_json_line() {
        let outcome = DesktopOutcome::deny("said \"no\"\n");
        assert_eq!(
            outcome.stdout_line(),
            "{\"decision\":\"deny\",\"note\":\"said \\\"no\\\"\\n\"}\n"
        );
        assert_eq!(outcome.exit_code(), 1);
        let outcome = DesktopOutcome::approve(Decision::ApproveForSession, "ok".to_owned());
        assert_eq!(
            outcome.stdout_line(),
            "{\"decision\":\"approve_for_session\",\"note\":\"ok\"}\n"
        );
        assert_eq!(outcome.exit_code(), 0);
    }

    #[test]
    fn the_first_program_that_can_show_a_window_is_chosen() {
        let on = |names: &'static [&'static str]| {
            move |name: &str| {
                names
                    .contains(&name)
                    .then(|| PathBuf::from(format!("/bin/{name}")))
            }
        };
        let cases: &[(&'static [&'static str], bool, Result<Dialog, &str>)] = &[
            (
                &["zenity", "kdialog", "osascript"],
                true,
                Ok(Dialog::Zenity),
            ),
            (&["kdialog", "osascript"], true, Ok(Dialog::Kdialog)),
            (&["osascript"], false, Ok(Dialog::Osascript)),
            (&["zenity", "osascript"], false, Ok(Dialog::Osascript)),
            (
                &["zenity", "kdialog"],
                false,
                Err("zenity and kdialog are installed but there is no display"),
            ),
            (&[], true, Err("no dialog program found on PATH")),
        ];
        for (names, display, want) in cases {
            match (choose_dialog(on(names), *display), want) {
                (Ok((dialog, path)), Ok(want)) => {
                    assert_eq!(dialog, *want);
                    assert_eq!(path, PathBuf::from(format!("/bin/{}", want.program())));
                }
                (Err(note), Err(want)) => assert!(note.contains(want), "{note}"),
                (got, want) => panic!("{names:?} display={display}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[cfg(unix)]
    #[test]
    fn find_program_wants_an_executable_file_and_skips_empty_entries() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("approve-desktop-test-{}", std::process::id()));
        let (bin, other) = (dir.join("bin"), dir.join("other"));
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(other.join("zenity")).unwrap(); // a directory, not a program
        std::fs::write(bin.join("zenity"), "#!/bin/sh\n").unwrap();
        std::fs::write(bin.join("kdialog"), "not executable").unwrap();
        std::fs::set_permissions(bin.join("zenity"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        let path =
            std::env::join_paths(["", other.to_str().unwrap(), bin.to_str().unwrap()]).unwrap();
        assert_eq!(
            find_program("zenity", Some(&path)),
            Some(bin.join("zenity"))
        );
        assert_eq!(find_program("kdialog", Some(&path)), None);
        assert_eq!(find_program("osascript", Some(&path)), None);
        assert_eq!(find_program("zenity", None), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
