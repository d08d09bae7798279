//! Stream ends on Windows: handles.

use std::fs::File;
use std::io;
use std::os::windows::io::AsHandle as _;

/// A duplicate of the proxy's stdin: the original stays open and untouched.
pub fn stdin() -> io::Result<File> {
    io::stdin().as_handle().try_clone_to_owned().map(File::from)
}

/// A duplicate of the proxy's stdout, for the one writer of the protocol channel.
pub fn stdout() -> io::Result<File> {
    #[allow(clippy::disallowed_methods)] // the one place that takes the protocol channel
    io::stdout()
        .as_handle()
        .try_clone_to_owned()
        .map(File::from)
}

/// The child's stdin, as a plain blocking file: ours alone.
pub fn child_stdin(pipe: tokio::process::ChildStdin) -> io::Result<File> {
    pipe.into_owned_handle().map(File::from)
}

/// The child's stdout, as [`child_stdin`].
pub fn child_stdout(pipe: tokio::process::ChildStdout) -> io::Result<File> {
    pipe.into_owned_handle().map(File::from)
}

/// The child's stderr, as [`child_stdin`].
pub fn child_stderr(pipe: tokio::process::ChildStderr) -> io::Result<File> {
    pipe.into_owned_handle().map(File::from)
}

pub use super::super::Ready;

/// Anonymous pipes, consoles and files are never non-blocking on Windows, so a read or write
/// cannot report "would block"; a handle that does (a named pipe someone set to `PIPE_NOWAIT`)
/// is not one the proxy can wait on, and says so rather than spinning.
pub fn wait(_file: &File, ready: Ready) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        format!("a non-blocking handle cannot be waited on for {ready:?}"),
    ))
}

/// Windows sizes an anonymous pipe when it is created; there is nothing to grow afterwards.
pub fn grow(_file: &File) {}
