//! The plain byte relay: the floor any stdio proxy can reach.
//!
//! It starts the server as its child and copies bytes both ways with one thread per direction,
//! a read of whatever the pipe holds and one write of it: two extra pipe hops, no framing, no
//! parsing. The benchmark runs it as a separate process (this same executable, re-run with
//! [`RELAY_ENV`] set), so it pays the same process and pipe costs as the proxy.

use std::io::{self, Read, Write};
use std::process::{Command, ExitCode, Stdio};
use std::thread;

use mcp_policy_proxy::os;

/// Set in the environment of the bench executable to run it as the relay.
pub const RELAY_ENV: &str = "MCP_POLICY_PROXY_BENCH_RELAY";

/// As large as a default pipe buffer: one read takes whatever the pipe holds.
const CHUNK: usize = 64 * 1024;

/// Runs `command` as the child and relays until it exits.
pub fn run(command: &[String]) -> ExitCode {
    let Some((program, args)) = command.split_first() else {
        eprintln!("byte relay: no command to run");
        return ExitCode::from(2);
    };
    let mut child = match Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(err) => {
            eprintln!("byte relay: cannot start `{program}`: {err}");
            return ExitCode::from(127);
        }
    };
    let mut child_in = child.stdin.take().expect("piped");
    let mut child_out = child.stdout.take().expect("piped");
    // Unbuffered duplicates of our stdin and stdout: std's own handles buffer stdout by line.
    let (mut stdin, mut stdout) = match (os::pipe::stdin(), os::pipe::stdout()) {
        (Ok(stdin), Ok(stdout)) => (stdin, stdout),
        (Err(err), _) | (_, Err(err)) => {
            eprintln!("byte relay: cannot duplicate stdio: {err}");
            return ExitCode::FAILURE;
        }
    };
    // Upstream ends at the client's EOF, which it passes on by dropping the child's stdin.
    thread::spawn(move || copy(&mut stdin, &mut child_in));
    let downstream = thread::spawn(move || copy(&mut child_out, &mut stdout));
    let status = child.wait();
    let _ = downstream.join();
    match status {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}

fn copy(from: &mut impl Read, to: &mut impl Write) {
    let mut buf = vec![0; CHUNK];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        if to.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}
