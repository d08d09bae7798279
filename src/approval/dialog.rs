//! The dialog programs the desktop approver drives (zenity, kdialog, osascript): how each is
//! found, called and read, and how its process is kept from outliving the approver.

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::desktop::*;
use super::display::visible;
use crate::os::process::{self, Detach};

/// A dialog program we know how to drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialog {
    Zenity,
    Kdialog,
    Osascript,
}

impl Dialog {
    /// In order of preference.
    pub const ALL: [Dialog; 3] = [Dialog::Zenity, Dialog::Kdialog, Dialog::Osascript];

    pub fn program(self) -> &'static str {
        match self {
            Dialog::Zenity => "zenity",
            Dialog::Kdialog => "kdialog",
            Dialog::Osascript => "osascript",
        }
    }

    /// X11 and Wayland programs need a display to draw on; osascript asks macOS's window server.
    fn needs_display(self) -> bool {
        self != Dialog::Osascript
    }

    /// The arguments (after the program's name) that show `text` under `title` with the three
    /// answers, Deny focused, for at most `secs` seconds where the program can time out itself.
    pub fn args(self, title: &str, text: &str, secs: u64) -> Vec<String> {
        match self {
            // `--opt=value`, never `--opt value`: a value that starts with '-' stays a value.
            Dialog::Zenity => vec![
                "--question".to_owned(),
                "--no-markup".to_owned(),
                "--default-cancel".to_owned(),
                "--width=640".to_owned(),
                format!("--title={title}"),
                format!("--text={text}"),
                format!("--ok-label={APPROVE_ONCE_LABEL}"),
                format!("--cancel-label={DENY_LABEL}"),
                format!("--extra-button={APPROVE_FOR_SESSION_LABEL}"),
                format!("--timeout={secs}"),
            ],
            // A menu rather than --yesnocancel: yes/no/cancel answer with exit statuses 0, 1 and 2,
            // and kdialog also exits 1 on its own errors; a menu answers with the tag of the entry
            // on stdout, so only a chosen entry can approve. kdialog has no time-out of its own.
            Dialog::Kdialog => vec![
                format!("--title={title}"),
                format!("--menu={}", text.replace('\\', "\\\\")),
                format!("--default={DENY_LABEL}"),
                "--".to_owned(),
                Decision::ApproveOnce.as_str().to_owned(),
                APPROVE_ONCE_LABEL.to_owned(),
                Decision::ApproveForSession.as_str().to_owned(),
                APPROVE_FOR_SESSION_LABEL.to_owned(),
                Decision::Deny.as_str().to_owned(),
                DENY_LABEL.to_owned(),
            ],
            // The text, the title and the seconds are the run handler's argv; none of them is
            // ever part of the script. The text is first: it starts with fixed prose, never '-'.
            Dialog::Osascript => {
                let script = [
                    "on run argv",
                    &format!(
                        "set answer to display dialog (item 1 of argv) with title (item 2 of argv) \
                         buttons {{\"{DENY_LABEL}\", \"{APPROVE_FOR_SESSION_LABEL}\", \
                         \"{APPROVE_ONCE_LABEL}\"}} default button \"{DENY_LABEL}\" \
                         cancel button \"{DENY_LABEL}\" with icon caution \
                         giving up after ((item 3 of argv) as integer)"
                    ),
                    "if gave up of answer then return \"gave up\"",
                    "return button returned of answer",
                    "end run",
                ];
                let mut args = Vec::new();
                for line in script {
                    args.push("-e".to_owned());
                    args.push(line.to_owned());
                }
                args.extend([text.to_owned(), title.to_owned(), secs.to_string()]);
                args
            }
        }
    }

    /// What the way the dialog program ended means. Only positive evidence approves.
    pub fn interpret(self, finished: &Finished, secs: u64) -> DesktopOutcome {
        let name = self.program();
        let out = finished.stdout.trim_end_matches(['\n', '\r']);
        let code = match finished.ended {
            Ended::Code(code) => code,
            Ended::Killed => {
                return DesktopOutcome::deny(format!(
                    "{name} was still open after its {secs} s time-out; closed it and refused"
                ));
            }
            Ended::Signal(signal) => {
                return DesktopOutcome::deny(format!(
                    "{name} was killed by signal {signal}; refused"
                ));
            }
        };
        let once = || {
            DesktopOutcome::approve(
                Decision::ApproveOnce,
                format!("approved once in the desktop dialog ({name})"),
            )
        };
        let session = || {
            DesktopOutcome::approve(
                Decision::ApproveForSession,
                format!("approved for this session in the desktop dialog ({name})"),
            )
        };
        let denied = || DesktopOutcome::deny(format!("denied in the desktop dialog ({name})"));
        let closed =
            || DesktopOutcome::deny(format!("denied: the desktop dialog was closed ({name})"));
        let timed_out = || {
            DesktopOutcome::deny(format!(
                "no answer in the desktop dialog within {secs} s ({name})"
            ))
        };
        let unexpected = || {
            DesktopOutcome::deny(format!(
                "{name} ended with exit status {code} and printed \"{}\"{}, which is no answer \
                 we know; refused",
                visible(out, 100),
                finished.stderr_hint()
            ))
        };
        match (self, code) {
            // OK is exit 0 with nothing printed. Deny, Escape and the window's close button are
            // all exit 1 with nothing printed (zenity cannot tell them apart); the extra button
            // is exit 1 with its label on stdout. --timeout is exit 5.
            (Dialog::Zenity, 0) if out.is_empty() => once(),
            (Dialog::Zenity, 1) if out == APPROVE_FOR_SESSION_LABEL => session(),
            (Dialog::Zenity, 1) if out.is_empty() => DesktopOutcome::deny(format!(
                "denied in the desktop dialog: Deny, Escape or the window closed ({name})"
            )),
            (Dialog::Zenity, 5) => timed_out(),
            // The menu prints the tag of the chosen entry and exits 0; Cancel or closing is 1.
            (Dialog::Kdialog, 0) if out == Decision::ApproveOnce.as_str() => once(),
            (Dialog::Kdialog, 0) if out == Decision::ApproveForSession.as_str() => session(),
            (Dialog::Kdialog, 0) if out == Decision::Deny.as_str() => denied(),
            (Dialog::Kdialog, 1) if out.is_empty() => closed(),
            // The run handler returns the button's name; the cancel button (Deny) is error -128.
            (Dialog::Osascript, 0) if out == APPROVE_ONCE_LABEL => once(),
            (Dialog::Osascript, 0) if out == APPROVE_FOR_SESSION_LABEL => session(),
            (Dialog::Osascript, 0) if out == "gave up" => timed_out(),
            (Dialog::Osascript, 1) if finished.stderr.contains("(-128)") => denied(),
            (_, 0) => unexpected(),
            (_, code) => DesktopOutcome::deny(format!(
                "{name} failed with exit status {code}{}; refused",
                finished.stderr_hint()
            )),
        }
    }
}

/// How a dialog program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// It exited with this status.
    Code(i32),
    /// A signal ended it (not ours).
    Signal(i32),
    /// It outlived its time and we killed it.
    Killed,
}

impl From<ExitStatus> for Ended {
    fn from(status: ExitStatus) -> Self {
        if let Some(signal) = process::signal_of(status) {
            return Ended::Signal(signal);
        }
        // Without a code and without a signal: anything but 0.
        Ended::Code(status.code().unwrap_or(-1))
    }
}

/// A dialog program's end and what it printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub ended: Ended,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// The last line of stderr, for a note: ` (<line>)`, or nothing.
    fn stderr_hint(&self) -> String {
        match self
            .stderr
            .lines()
            .rev()
            .map(str::trim)
            .find(|line| !line.is_empty())
        {
            Some(line) => format!(" ({})", visible(line, 300)),
            None => String::new(),
        }
    }
}

/// The first dialog program `lookup` finds that can show a window here.
pub(super) fn choose_dialog(
    lookup: impl Fn(&str) -> Option<PathBuf>,
    has_display: bool,
) -> Result<(Dialog, PathBuf), String> {
    let mut without_display = Vec::new();
    for dialog in Dialog::ALL {
        if let Some(path) = lookup(dialog.program()) {
            if dialog.needs_display() && !has_display {
                without_display.push(dialog.program());
                continue;
            }
            return Ok((dialog, path));
        }
    }
    if without_display.is_empty() {
        Err(
            "no dialog program found on PATH (looked for zenity, kdialog and osascript), so no \
             one could be asked; refused. Install zenity (Linux) to approve calls from the desktop"
                .to_owned(),
        )
    } else {
        Err(format!(
            "{} {} installed but there is no display to show a window on (DISPLAY and \
             WAYLAND_DISPLAY are unset), so no one could be asked; refused",
            without_display.join(" and "),
            if without_display.len() == 1 {
                "is"
            } else {
                "are"
            }
        ))
    }
}

/// `name` in the directories of `path` (a PATH value), if it is an executable file there. Empty
/// entries, which mean the current directory, are skipped: the cwd is the MCP client's.
pub(super) fn find_program(name: &str, path: Option<&OsStr>) -> Option<PathBuf> {
    std::env::split_paths(path?)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

pub(super) fn is_executable(path: &Path) -> bool {
    crate::os::file::is_executable(path)
}

/// Runs the dialog with no stdin, collects what it prints, and kills it if it is still up after
/// `limit`.
pub(super) fn run_dialog(
    dialog: Dialog,
    program: &Path,
    args: &[String],
    limit: Duration,
) -> std::io::Result<Finished> {
    let mut command = process::command(program.as_os_str());
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if dialog == Dialog::Zenity {
        for name in ZENITY_EXIT_VARIABLES {
            command.env_remove(name);
        }
    }
    // Its tree ends when we return, and with us if the proxy kills us at its time-out: the
    // dialog must not stay on screen asking a question whose answer nobody reads.
    let guard = process::prepare(&mut command, Detach::Group)?;
    let mut child = command
        .spawn()
        .map_err(|err| process::spawn_error(&command, err))?;
    let _tree = guard.started(&child)?;
    let stdout = collect(child.stdout.take());
    let stderr = collect(child.stderr.take());
    let deadline = Instant::now() + limit;
    let ended = loop {
        if let Some(status) = child.try_wait()? {
            break Ended::from(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break Ended::Killed;
        }
        std::thread::sleep(Duration::from_millis(25));
    };
    // Something the dialog started could keep its pipes open after it ended; don't wait on that.
    let take = |rx: mpsc::Receiver<Vec<u8>>| {
        let bytes = rx.recv_timeout(Duration::from_secs(1)).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    Ok(Finished {
        ended,
        stdout: take(stdout),
        stderr: take(stderr),
    })
}

/// Reads `pipe` to its end on a thread of its own (keeping the first [`MAX_CAPTURE_BYTES`]), so
/// that neither pipe can fill up and stall the dialog.
pub(super) fn collect(pipe: Option<impl Read + Send + 'static>) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    if let Some(mut pipe) = pipe {
        std::thread::spawn(move || {
            let mut kept = Vec::new();
            let mut buf = [0u8; 8192];
            loop {
                match pipe.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let room = MAX_CAPTURE_BYTES.saturating_sub(kept.len());
                        kept.extend_from_slice(&buf[..n.min(room)]);
                    }
                }
            }
            let _ = tx.send(kept);
        });
    }
    rx
}
