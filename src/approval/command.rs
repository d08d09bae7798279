//! Runs the approval command: the call as JSON on its stdin, no terminal, killed at the
//! time-out or when its question is withdrawn.
//!
//! This runs on the supervisor's runtime, never on a pump: the call waits in the session while
//! the program runs, and every other message keeps flowing.

use std::process::Stdio;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tracing::{info, warn};

use super::{Answer, ApproverJob, read_command_output};

/// How long past its time-out the program may run before it kills itself here, should the
/// session's withdrawal not come (it always comes first: see `run`).
const KILL_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// The most of the program's stdout that is read: one line of JSON is all it may say.
const MAX_OUTPUT: u64 = 64 * 1024;

/// Kills the program's whole process group when dropped: on the time-out, or when the task
/// running it is aborted because the question was answered another way.
struct GroupGuard(Option<u32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0.and_then(|pid| i32::try_from(pid).ok()) {
            // SAFETY: kill(2) with a negative pid signals a process group; it has no memory
            // effects. The group is the program's own (it called setsid), so nothing else is hit.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
    }
}

/// Runs `job` and reads its answer. Any failure is a refusal with a note saying why.
pub async fn run(job: ApproverJob) -> Answer {
    let Some((program, args)) = job.command.split_first() else {
        return deny("no approval command is configured");
    };
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    // SAFETY: setsid(2) is async-signal-safe, and nothing else runs between fork and exec. It
    // takes the program away from any controlling terminal (the person answers in a dialog or a
    // chat, never on a terminal the agent may share) and makes it the leader of its own process
    // group, so that the whole group can be killed at the time-out.
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) => {
            warn!("cannot start the approval command `{program}`: {err}");
            return deny(&format!(
                "the approval command could not be started ({err})"
            ));
        }
    };
    let guard = GroupGuard(child.id());
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
    // The program has exited; its group may still hold children it left behind.
    drop(guard);
    answer
}

fn deny(why: &str) -> Answer {
    Answer::unclear(why)
}
