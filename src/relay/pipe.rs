//! Blocking I/O on the proxy's four stream ends: its stdin and stdout, and the child's stdin and
//! stdout.
//!
//! The pumps are plain threads doing blocking reads and writes, the way a byte relay does, so a
//! message costs a read and a write and no hand-off to an async runtime. [`Pipe`] owns a file
//! descriptor and reads or writes it directly, with no buffer of its own. It leaves the
//! descriptor's flags alone (a terminal or a pipe shared with other processes keeps its mode);
//! if someone else made the descriptor non-blocking, it waits for readiness with `poll` instead
//! of failing, and it retries a call a signal interrupted.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

/// The capacity [`Pipe::grow`] asks for: the largest an unprivileged process may set by default
/// (`/proc/sys/fs/pipe-max-size`). A large result then crosses in a sixteenth of the reads,
/// writes and wake-ups that the default 64 KiB needs.
#[cfg(target_os = "linux")]
const PIPE_BYTES: libc::c_int = 1024 * 1024;

/// The default capacity of a Linux pipe: [`Pipe::grow_for`] grows a pipe for messages longer.
const GROW_AFTER: usize = 64 * 1024;

/// A blocking stream end: stdin, stdout, or one end of a pipe.
#[derive(Debug)]
pub struct Pipe {
    file: File,
    /// Whether [`Pipe::grow_for`] has grown it (or tried to).
    grown: bool,
}

impl Pipe {
    pub fn new(fd: OwnedFd) -> Pipe {
        Pipe {
            file: File::from(fd),
            grown: false,
        }
    }

    /// A duplicate of the proxy's stdin (or stdout): the original stays open and untouched.
    pub fn duplicate(fd: BorrowedFd<'_>) -> io::Result<Pipe> {
        fd.try_clone_to_owned().map(Pipe::new)
    }

    /// Grows the pipe (see [`Pipe::grow`]) the first time a message of `len` bytes would not
    /// fit a default pipe buffer. Pipe buffers count against a per-user limit
    /// (`/proc/sys/fs/pipe-user-pages-soft`, 64 MiB by default; past it, the user's new pipes
    /// get 8 KiB), so a session whose messages are all small keeps the default size.
    pub fn grow_for(&mut self, len: usize) {
        if len > GROW_AFTER && !self.grown {
            self.grown = true;
            self.grow();
        }
    }

    /// Grows the buffer of a pipe to [`PIPE_BYTES`] unless it is that large already, as far as
    /// the system allows. Anything else (a socket, a terminal, a file) is left alone, and so is
    /// a pipe the system will not grow: the default size works too, only slower.
    fn grow(&self) {
        #[cfg(target_os = "linux")]
        {
            let fd = self.file.as_raw_fd();
            // SAFETY: F_GETPIPE_SZ and F_SETPIPE_SZ on a descriptor we own take and return plain
            // integers; on anything but a pipe they fail with EBADF and change nothing.
            unsafe {
                let size = libc::fcntl(fd, libc::F_GETPIPE_SZ);
                if (0..PIPE_BYTES).contains(&size) {
                    libc::fcntl(fd, libc::F_SETPIPE_SZ, PIPE_BYTES);
                }
            }
        }
    }

    /// Waits until the descriptor is ready for `events` (`POLLIN` or `POLLOUT`).
    fn wait(&self, events: libc::c_short) -> io::Result<()> {
        let mut poll = libc::pollfd {
            fd: self.file.as_raw_fd(),
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
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.file.read(buf) {
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => self.wait(libc::POLLIN)?,
                result => return result,
            }
        }
    }
}

impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            match self.file.write(buf) {
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => self.wait(libc::POLLOUT)?,
                result => return result,
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsFd for Pipe {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}
