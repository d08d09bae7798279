//! Stream ends on Linux and macOS: file descriptors.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd as _, AsRawFd as _};

/// The capacity [`grow`] asks for on Linux: the largest an unprivileged process may set by
/// default (`/proc/sys/fs/pipe-max-size`).
#[cfg(target_os = "linux")]
const PIPE_BYTES: libc::c_int = 1024 * 1024;

/// A duplicate of the proxy's stdin: the original stays open and untouched.
pub fn stdin() -> io::Result<File> {
    io::stdin().as_fd().try_clone_to_owned().map(File::from)
}

/// A duplicate of the proxy's stdout, for the one writer of the protocol channel.
pub fn stdout() -> io::Result<File> {
    #[allow(clippy::disallowed_methods)] // the one place that takes the protocol channel
    io::stdout().as_fd().try_clone_to_owned().map(File::from)
}

/// The child's stdin, out of the async runtime's reactor and blocking again: ours alone.
pub fn child_stdin(pipe: tokio::process::ChildStdin) -> io::Result<File> {
    pipe.into_owned_fd().map(File::from)
}

/// The child's stdout, as [`child_stdin`].
pub fn child_stdout(pipe: tokio::process::ChildStdout) -> io::Result<File> {
    pipe.into_owned_fd().map(File::from)
}

/// The child's stderr, as [`child_stdin`].
pub fn child_stderr(pipe: tokio::process::ChildStderr) -> io::Result<File> {
    pipe.into_owned_fd().map(File::from)
}

pub use super::super::Ready;

/// Waits until a descriptor that someone else made non-blocking is ready.
pub fn wait(file: &File, ready: Ready) -> io::Result<()> {
    let events = match ready {
        Ready::Read => libc::POLLIN,
        Ready::Write => libc::POLLOUT,
    };
    let mut poll = libc::pollfd {
        fd: file.as_raw_fd(),
        events,
        revents: 0,
    };
    loop {
        // SAFETY: `poll` points to one valid, initialized pollfd for the whole call.
        let ready = unsafe { libc::poll(&mut poll, 1, -1) };
        if ready >= 0 {
            // Ready, or hung up / in error: the next read or write reports which.
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Grows a pipe's buffer to 1 MiB unless it is that large already, as far as the system
/// allows (Linux). Anything else (a socket, a terminal, a file) is left alone, and so is a pipe
/// the system will not grow: the default size works too, only slower. macOS has no way to
/// size a pipe (its pipes grow on their own up to 64 KiB), so there this does nothing.
pub fn grow(file: &File) {
    #[cfg(target_os = "linux")]
    {
        let fd = file.as_raw_fd();
        // SAFETY: F_GETPIPE_SZ and F_SETPIPE_SZ on a descriptor we own take and return plain
        // integers; on anything but a pipe they fail with EBADF and change nothing.
        unsafe {
            let size = libc::fcntl(fd, libc::F_GETPIPE_SZ);
            if (0..PIPE_BYTES).contains(&size) {
                libc::fcntl(fd, libc::F_SETPIPE_SZ, PIPE_BYTES);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = file;
}
