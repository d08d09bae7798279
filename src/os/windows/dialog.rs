//! The desktop question on Windows: a Win32 message box, shown by the approver itself.
//!
//! Windows has no dialog program to run with the question as arguments, so the approver (a
//! process of its own, run by the proxy as its approval command) shows a `MessageBoxW`. The
//! question is data: the title and text go in as UTF-16 strings, never into a script. A message
//! box has fixed buttons, so it asks one question, "approve this call once?", with Yes and No,
//! No focused (Return or Space denies; a keystroke meant for another window cannot approve);
//! approval for the whole session is not offered here. It has no time-out of its own: after
//! `limit` the approver answers that nobody answered and exits, which takes the box away.

use std::sync::mpsc;
use std::time::Duration;

use windows_sys::Win32::UI::WindowsAndMessaging::{
    IDYES, MB_DEFBUTTON2, MB_ICONWARNING, MB_SETFOREGROUND, MB_TOPMOST, MB_YESNO, MessageBoxW,
};

use super::super::{Asked, NativeAnswer};

/// The box's style: Yes and No with No the default, a warning icon, in front of other windows.
pub const STYLE: u32 = MB_YESNO | MB_DEFBUTTON2 | MB_ICONWARNING | MB_TOPMOST | MB_SETFOREGROUND;

/// Shows the question and waits for the answer, at most `limit`.
pub fn ask(title: &str, text: &str, limit: Duration) -> Asked {
    let title = wide(title);
    let text = wide(&format!(
        "{text}\n\nYes: approve this call once.\nNo: deny it (the default)."
    ));
    let (answer, answered) = mpsc::channel();
    let shown = std::thread::Builder::new()
        .name("message-box".into())
        .spawn(move || {
            // SAFETY: both strings are NUL-terminated UTF-16 that outlive the call; no owner
            // window.
            let pressed =
                unsafe { MessageBoxW(std::ptr::null_mut(), text.as_ptr(), title.as_ptr(), STYLE) };
            let _ = answer.send(pressed);
        });
    if let Err(err) = shown {
        return Asked::Answered(NativeAnswer::Failed(format!(
            "cannot show the message box ({err})"
        )));
    }
    Asked::Answered(match answered.recv_timeout(limit) {
        Ok(IDYES) => NativeAnswer::ApproveOnce,
        Ok(0) => NativeAnswer::Failed(format!(
            "the message box could not be shown ({})",
            std::io::Error::last_os_error()
        )),
        Ok(_) => NativeAnswer::Denied,
        Err(_) => NativeAnswer::TimedOut,
    })
}

fn wide(text: &str) -> Vec<u16> {
    // A NUL inside would end the string early: shown as U+2400 (the symbol for NUL) instead.
    text.chars()
        .map(|c| if c == '\0' { '\u{2400}' } else { c })
        .collect::<String>()
        .encode_utf16()
        .chain([0])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_is_the_default_and_the_text_is_data() {
        assert_eq!(STYLE & MB_DEFBUTTON2, MB_DEFBUTTON2);
        assert_eq!(STYLE & MB_YESNO, MB_YESNO);
        let text = wide("a\0b \"quoted\" `$(rm)`");
        assert_eq!(text.last(), Some(&0));
        assert_eq!(text.iter().filter(|&&c| c == 0).count(), 1);
    }
}
