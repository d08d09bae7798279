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

use crate::os::pipe::{self as os_pipe, Ready};

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
    pub fn new(file: File) -> Pipe {
        Pipe { file, grown: false }
    }

    /// A duplicate of the proxy's stdin: the original stays open and untouched.
    pub fn stdin() -> io::Result<Pipe> {
        os_pipe::stdin().map(Pipe::new)
    }

    /// A duplicate of the proxy's stdout.
    pub fn stdout() -> io::Result<Pipe> {
        os_pipe::stdout().map(Pipe::new)
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

    /// Grows the pipe's buffer as far as the OS lets us (`os::pipe::grow`).
    fn grow(&self) {
        os_pipe::grow(&self.file);
    }
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.file.read(buf) {
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    os_pipe::wait(&self.file, Ready::Read)?
                }
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
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    os_pipe::wait(&self.file, Ready::Write)?
                }
                result => return result,
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
