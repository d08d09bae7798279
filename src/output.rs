//! The proxy's stdout: the protocol channel to the client.
//!
//! [`ClientWriter`] is the one place in the program that writes to stdout. Lines from the child
//! and answers the proxy makes itself both go through it, a whole line at a time, so they can
//! never interleave mid-line. Logs go to stderr.

use std::io;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Mutex;

/// Writes whole lines to the client.
pub struct ClientWriter {
    out: Mutex<Box<dyn AsyncWrite + Send + Unpin>>,
}

impl ClientWriter {
    /// The proxy's own stdout.
    pub fn stdout() -> ClientWriter {
        ClientWriter::new(Box::new(tokio::io::stdout()))
    }

    pub fn new(out: Box<dyn AsyncWrite + Send + Unpin>) -> ClientWriter {
        ClientWriter {
            out: Mutex::new(out),
        }
    }

    /// Writes one line, which must end in `\n`, and flushes it.
    pub async fn write_line(&self, line: &[u8]) -> io::Result<()> {
        debug_assert_eq!(line.last(), Some(&b'\n'));
        let mut out = self.out.lock().await;
        out.write_all(line).await?;
        out.flush().await
    }
}
