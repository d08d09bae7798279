//! Requests from outside on Windows: console events.
//!
//! There is no SIGTERM. Ctrl-C asks as SIGINT does on Unix; Ctrl-Break, closing the console,
//! logging off and shutting down ask as SIGTERM does. There is no SIGHUP: the policy is read
//! again when its file changes.

use std::io;

use tokio::signal::windows::{
    CtrlBreak, CtrlC, CtrlClose, CtrlLogoff, CtrlShutdown, ctrl_break, ctrl_c, ctrl_close,
    ctrl_logoff, ctrl_shutdown,
};

pub use super::super::Request;

/// The console events the proxy listens to, from when this is made.
#[derive(Debug)]
pub struct Requests {
    interrupt: CtrlC,
    brk: CtrlBreak,
    close: CtrlClose,
    logoff: CtrlLogoff,
    shutdown: CtrlShutdown,
}

impl Requests {
    pub fn new() -> io::Result<Requests> {
        Ok(Requests {
            interrupt: ctrl_c()?,
            brk: ctrl_break()?,
            close: ctrl_close()?,
            logoff: ctrl_logoff()?,
            shutdown: ctrl_shutdown()?,
        })
    }

    /// The next request; pending until one comes.
    pub async fn next(&mut self) -> Request {
        tokio::select! {
            Some(()) = self.interrupt.recv() => Request::Interrupt,
            Some(()) = self.brk.recv() => Request::Terminate,
            Some(()) = self.close.recv() => Request::Terminate,
            Some(()) = self.logoff.recv() => Request::Terminate,
            Some(()) = self.shutdown.recv() => Request::Terminate,
            else => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The console control handler is installed for every event the proxy stops on (Wine runs
    /// this; it cannot send the events themselves).
    #[tokio::test]
    async fn the_console_handlers_register() {
        let requests = Requests::new();
        assert!(requests.is_ok(), "{requests:?}");
    }
}
