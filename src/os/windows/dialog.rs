//! The desktop question on Windows: a Win32 message box, shown by the approver itself.
//!
//! Windows has no dialog program to run with the question as arguments, so the approver (a
//! process of its own, run by the proxy as its approval command) shows a `MessageBoxW`. The
//! question is data: the title and text go in as UTF-16 strings, never into a script. A message
//! box has fixed buttons, so it asks one question, "approve this call once?", with OK and
//! Cancel, Cancel focused. Yes and No would carry the accelerators Y and N, so one stray "y"
//! typed for another window would approve; OK has no letter, and Return, Space and Escape all
//! deny. The box does not take the foreground by itself (it stays on top): a person clicks it.
//! Approval for the whole session is not offered here. It has no time-out of its own: after
//! `limit` the approver answers that nobody answered and exits, which takes the box away.

use std::sync::mpsc;
use std::time::Duration;

use windows_sys::Win32::Foundation::GetLastError;
use windows_sys::Win32::UI::WindowsAndMessaging::{
    IDOK, MB_DEFBUTTON2, MB_ICONWARNING, MB_OKCANCEL, MB_TOPMOST, MessageBoxW,
};

use super::super::{Asked, NativeAnswer};

/// The box's style: OK and Cancel with Cancel the default, a warning icon, above other windows.
pub const STYLE: u32 = MB_OKCANCEL | MB_DEFBUTTON2 | MB_ICONWARNING | MB_TOPMOST;

/// Shows the question and waits for the answer, at most `limit`.
pub fn ask(title: &str, text: &str, limit: Duration) -> Asked {
    let title = wide(title);
    let text = wide(&format!(
        "{text}\n\nOK: approve this call once.\nCancel: deny it (the default)."
    ));
    let (answer, answered) = mpsc::channel();
    let shown = std::thread::Builder::new()
        .name("message-box".into())
        .spawn(move || {
            // SAFETY: both strings are NUL-terminated UTF-16 that outlive the call; no owner
            // window.
            let pressed =
                unsafe { MessageBoxW(std::ptr::null_mut(), text.as_ptr(), title.as_ptr(), STYLE) };
            // SAFETY: reads this thread's last error, set by the call above when it failed.
            let error = unsafe { GetLastError() };
            let _ = answer.send((pressed, error));
        });
    if let Err(err) = shown {
        return Asked::Answered(NativeAnswer::Failed(format!(
            "cannot show the message box ({err})"
        )));
    }
    Asked::Answered(match answered.recv_timeout(limit) {
        Ok((IDOK, _)) => NativeAnswer::ApproveOnce,
        Ok((0, error)) => NativeAnswer::Failed(format!(
            "the message box could not be shown ({})",
            std::io::Error::from_raw_os_error(error as i32)
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
        assert_eq!(STYLE & MB_OKCANCEL, MB_OKCANCEL);
        let text = wide("a\0b \"quoted\" `$(rm)`");
        assert_eq!(text.last(), Some(&0));
        assert_eq!(text.iter().filter(|&&c| c == 0).count(), 1);
    }
}
