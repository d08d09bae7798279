//! Runs the approval command: the call as JSON on its stdin, no terminal, killed at the
//! time-out or when its question is withdrawn.
//!
//! This runs on the supervisor's runtime, never on a pump: the call waits in the session while
//! the program runs, and every other message keeps flowing.

use std::process::Stdio;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tracing::{info, warn};

use super::{Answer, ApproverJob, read_command_output};
use crate::os::process::{self, Detach};

/// How long past its time-out the program may run before it kills itself here, should the
/// session's withdrawal not come (it always comes first: see `run`).
const KILL_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// The most of the program's stdout that is read: one line of JSON is all it may say.
const MAX_OUTPUT: u64 = 64 * 1024;

/// Runs `job` and reads its answer. Any failure is a refusal with a note saying why.
pub async fn run(job: ApproverJob) -> Answer {
    let Some((program, args)) = job.command.split_first() else {
        return deny("no approval command is configured");
    };
    let mut command =
        tokio::process::Command::from(process::command(std::ffi::OsStr::new(program)));
    command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // A session of its own: away from any controlling terminal (the person answers in a dialog
    // or a chat, never on a terminal the agent may share), and a tree that ends at the time-out,
    // when the question is withdrawn, or with the proxy.
    let started = process::prepare(command.as_std_mut(), Detach::Session).and_then(|guard| {
        let child = command
            .spawn()
            .map_err(|err| process::spawn_error(command.as_std(), err))?;
        let tree = guard.started(&child)?;
        Ok((child, tree))
    });
    let (mut child, tree) = match started {
        Ok(started) => started,
        Err(err) => {
            warn!("cannot start the approval command `{program}`: {err}");
            return deny(&format!(
                "the approval command could not be started ({err})"
            ));
        }
    };
    // Its stderr joins the proxy's log, marked as its own, never waited on.
    if let Some(stderr) = child.stderr.take().map(crate::os::pipe::child_stderr)
        && let Ok(stderr) = stderr
    {
        let _ = std::thread::Builder::new()
            .name("approver-stderr".into())
            .spawn(move || crate::logging::pass_on("approval command", stderr));
    }
    // The session's own deadline refuses the call at `job.timeout` and withdraws this run; the
    // grace keeps the two from racing, so a slow program always ends as a time-out.
    let outcome = tokio::time::timeout(job.timeout + KILL_GRACE, async {
        if let Some(mut stdin) = child.stdin.take() {
            // A program that exits without reading its input is not an error here.
            let _ = stdin.write_all(&job.input).await;
        }
        let mut stdout = Vec::new();
        if let Some(out) = child.stdout.take() {
            let _ = out.take(MAX_OUTPUT).read_to_end(&mut stdout).await;
        }
        let status = child.wait().await;
        (status, stdout)
    })
    .await;
    let answer = match outcome {
        Err(_) => {
            info!(
                job = job.id,
                "the approval command did not answer in time; killing it"
            );
            return deny("the approval command did not answer in time");
        }
        Ok((Err(err), _)) => deny(&format!("cannot wait for the approval command ({err})")),
        Ok((Ok(status), stdout)) => read_command_output(status.success(), &stdout),
    };
    // The program has exited; its tree may still hold children it left behind.
    drop(tree);
    answer
}

fn deny(why: &str) -> Answer {
    Answer::unclear(why)
}
