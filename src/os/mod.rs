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

/// How a child is detached from the proxy (`process::prepare`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detach {
    /// A process group of its own, in the proxy's session (the MCP server, `scan`'s server).
    Group,
    /// A session of its own as well: no controlling terminal (an approval command, which must
    /// never read the terminal an agent may share). On Windows both mean a job of its own and
    /// no console.
    Session,
}

/// How a tree is asked to stop before it is killed (`process::Tree::stop`; Windows has no
/// signal to ask with).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// As SIGTERM asks.
    Terminate,
    /// As SIGINT (Ctrl-C) asks.
    Interrupt,
}

/// What `pipe::wait` waits for.
#[derive(Debug, Clone, Copy)]
pub enum Ready {
    Read,
    Write,
}

/// What a request from outside asks (`shutdown::Requests`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// SIGTERM; on Windows Ctrl-Break, console close, log-off, shutdown.
    Terminate,
    /// SIGINT; on Windows Ctrl-C.
    Interrupt,
    /// SIGHUP: read the policy again (Windows has none).
    Reload,
}

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
