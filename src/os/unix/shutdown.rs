//! Requests from outside on Linux and macOS: signals.
//!
//! SIGTERM asks the proxy to stop (it passes the request on to the server's process group),
//! SIGINT likewise, and SIGHUP asks it to read its policy again.

use std::io;

use tokio::signal::unix::{Signal, SignalKind, signal};

pub use super::super::Request;

/// The signals the proxy listens to, from when this is made.
#[derive(Debug)]
pub struct Requests {
    terminate: Signal,
    interrupt: Signal,
    reload: Signal,
}

impl Requests {
    pub fn new() -> io::Result<Requests> {
        Ok(Requests {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
            reload: signal(SignalKind::hangup())?,
        })
    }

    /// The next request; pending until one comes.
    pub async fn next(&mut self) -> Request {
        tokio::select! {
            Some(()) = self.terminate.recv() => Request::Terminate,
            Some(()) = self.interrupt.recv() => Request::Interrupt,
            Some(()) = self.reload.recv() => Request::Reload,
            else => std::future::pending().await,
        }
    }
}
