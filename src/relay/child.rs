//! The child: the real MCP server, started, asked to stop, and reaped.
//!
//! It starts through the OS room (`os::process`), so its whole process tree, a launcher's
//! grandchildren included, ends with the proxy however the proxy ends. It inherits the proxy's
//! environment plus the configured additions. Its stderr is a pipe that a thread of the proxy's
//! reads and passes on to the proxy's own stderr through the log's queue (`logging`), so a host
//! that never reads stderr stalls neither the child nor the proxy.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;

use tokio::process::{Child, Command};

use super::pipe::Pipe;
use crate::os::pipe as os_pipe;
use crate::os::process::{self, Detach, Tree};

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
/// `Child` stays with the async runtime, which reaps it; the `Tree` ends what it started.
pub struct Spawned {
    pub child: Child,
    pub tree: Tree,
    pub stdin: Pipe,
    pub stdout: Pipe,
}

/// Starts the child.
pub fn spawn(command: &ChildCommand) -> std::io::Result<Spawned> {
    let mut cmd = Command::from(process::command(&command.program));
    cmd.args(&command.args)
        .envs(command.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(cwd) = &command.cwd {
        cmd.current_dir(cwd);
    }
    let guard = process::prepare(cmd.as_std_mut(), Detach::Group)?;
    let mut child = cmd
        .spawn()
        .map_err(|err| process::spawn_error(cmd.as_std(), err))?;
    let tree = guard.started(&child)?;
    let stderr = os_pipe::child_stderr(child.stderr.take().expect("stderr is piped"))?;
    std::thread::Builder::new()
        .name("child-stderr".into())
        .spawn(move || crate::logging::pass_on("server", stderr))?;
    let stdin = Pipe::new(os_pipe::child_stdin(
        child.stdin.take().expect("stdin is piped"),
    )?);
    let stdout = Pipe::new(os_pipe::child_stdout(
        child.stdout.take().expect("stdout is piped"),
    )?);
    Ok(Spawned {
        child,
        tree,
        stdin,
        stdout,
    })
}
