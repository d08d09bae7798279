//! The operating system's room: everything that differs between Linux, macOS and Windows, one
//! implementation per OS behind one interface. Nothing outside this folder says `cfg` about an
//! OS.
//!
//! - `process`: starting a program so that its whole process tree ends with the proxy, however
//!   the proxy ends (a process group watched by a watchdog on Unix, a Job Object on Windows),
//!   asking it to stop, killing the tree, and how it ended. Every child the proxy starts (the
//!   MCP server, the approval command, the desktop dialog, `scan`'s server) goes through it.
//! - `pipe`: the proxy's own stdin and stdout, the child's pipes as plain files, waiting on a
//!   descriptor someone else made non-blocking, and growing a pipe's buffer where the OS lets us.
//! - `shutdown`: the requests to stop or reload that arrive from outside (signals on Unix,
//!   console events on Windows).
//! - `file`: a file's identity (to notice that a log was rotated under us) and files private to
//!   their owner.
//! - `dialog`: the desktop question asked in the OS's own dialog.
//!
//! Randomness needs no room of its own: the `getrandom` crate asks each OS's own source.

#[cfg(unix)]
mod unix;
#[cfg(unix)]
use unix as imp;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
use windows as imp;

pub use imp::{dialog, file, own, pipe, process, shutdown};

/// What `dialog::ask` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Asked {
    /// The OS showed its own dialog in this process, and this is what came of it.
    Answered(NativeAnswer),
    /// This OS asks through a dialog program (zenity, kdialog, osascript), which the desktop
    /// approver runs itself.
    ByProgram,
}

/// The answer of an in-process dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NativeAnswer {
    ApproveOnce,
    Denied,
    TimedOut,
    /// The dialog could not be shown; why.
    Failed(String),
}
