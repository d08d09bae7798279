//! The child: the real MCP server, started, signalled and reaped.
//!
//! The child inherits the proxy's environment plus the configured additions. Its stderr is a
//! pipe that a thread of the proxy's reads and passes on to the proxy's own stderr through the
//! log's queue (`logging`), so a host that never reads stderr stalls neither the child nor the
//! proxy. On Linux it gets
//! a parent-death signal, so it cannot outlive a proxy that was killed.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};

use tokio::process::{Child, Command};

use super::pipe::Pipe;

/// What to run as the child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildCommand {
    pub program: OsString,
    pub args: Vec<OsString>,
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
}

impl ChildCommand {
    /// The command line as a person would read it, for messages.
    pub fn display(&self) -> String {
        std::iter::once(&self.program)
            .chain(&self.args)
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A running child with its protocol pipes, as blocking pipe ends for the pump threads. The
/// `Child` stays with the async runtime, which reaps it.
pub struct Spawned {
    pub child: Child,
    pub stdin: Pipe,
    pub stdout: Pipe,
}

/// Starts the child. Must be called from the thread that lives as long as the proxy (the main
/// thread): Linux delivers the parent-death signal when the thread that forked exits.
pub fn spawn(command: &ChildCommand) -> std::io::Result<Spawned> {
    let mut cmd = Command::new(&command.program);
    cmd.args(&command.args)
        .envs(command.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(cwd) = &command.cwd {
        cmd.current_dir(cwd);
    }
    #[cfg(target_os = "linux")]
    {
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: the closure runs in the forked child before exec and calls only
        // async-signal-safe functions (prctl, getppid, _exit).
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The proxy may have died before prctl took effect.
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
    }
    let mut child = cmd.spawn()?;
    let stderr = std::fs::File::from(
        child
            .stderr
            .take()
            .expect("stderr is piped")
            .into_owned_fd()?,
    );
    std::thread::Builder::new()
        .name("child-stderr".into())
        .spawn(move || crate::logging::pass_on(stderr))?;
    // Taken out of the runtime's reactor and made blocking again: these ends are ours alone.
    let stdin = Pipe::new(
        child
            .stdin
            .take()
            .expect("stdin is piped")
            .into_owned_fd()?,
    );
    let stdout = Pipe::new(
        child
            .stdout
            .take()
            .expect("stdout is piped")
            .into_owned_fd()?,
    );
    Ok(Spawned {
        child,
        stdin,
        stdout,
    })
}

/// Sends `signal` to the child, if it is still there to receive it.
pub fn signal(child: &Child, signal: i32) {
    if let Some(pid) = child.id() {
        // SAFETY: kill has no memory effects; a stale pid is not possible because the child
        // is not reaped while `child` reports an id.
        unsafe {
            libc::kill(pid as libc::pid_t, signal);
        }
    }
}

/// The status as a shell reports it: the exit code, or 128 + the signal that killed it.
pub fn exit_code(status: ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => code as u8,
        (None, Some(signal)) => (128 + signal) as u8,
        (None, None) => 1,
    }
}

/// How the child ended, for messages: "exit status 3", "killed by signal 9".
pub fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => "unknown status".to_string(),
    }
}
