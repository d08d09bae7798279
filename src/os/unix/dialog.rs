//! The desktop question on Linux and macOS: asked by a dialog program (zenity or kdialog on
//! Linux desktops, osascript on macOS), which the desktop approver finds on PATH and runs as a
//! child (`approval::dialog`). Those programs are the OS's own dialogs here; there is no
//! in-process one.

use std::time::Duration;

use super::super::Asked;

/// Says that this OS asks through a dialog program.
pub fn ask(_title: &str, _text: &str, _limit: Duration) -> Asked {
    Asked::ByProgram
}
