//! Children on Linux and macOS: each one leads a process group of its own, and a watchdog kills
//! that group when the proxy ends, however it ends.
//!
//! A launcher (`npx`, `uvx`, `sh -c`, `node`) makes the real server a grandchild, so signalling
//! the child's pid reaches only the launcher, and Linux's parent-death signal (which macOS does
//! not have) reaches only the direct child. So every child is started as the leader of a new
//! process group (or session), which its descendants inherit, and is watched by a small
//! watchdog: a `/bin/sh` of its own group that holds the read end of a pipe (the lifeline) whose
//! only write end is the proxy's. The child writes its group id into the lifeline before it runs
//! any code of its own (between fork and exec), so the watchdog knows the group from the start.
//! When the proxy ends by any means, a kill with SIGKILL included, the kernel closes the write
//! end, the watchdog reads end-of-file and kills the whole group. When the proxy ends the tree
//! itself, it disarms the watchdog first. The same mechanism runs on both systems, so the Linux
//! tests exercise the macOS path.

pub use super::super::{Detach, Stop};
use std::ffi::OsStr;
use std::io::{self, PipeWriter, Write as _};
use std::os::fd::AsRawFd as _;
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::process::{Command, ExitStatus, Stdio};

/// The watchdog's script. `$1` is unused; the group id arrives on stdin, then end-of-file (the
/// proxy is gone: kill the group) or `disarm` (the proxy ended the tree itself).
const WATCHDOG: &str = r#"trap '' HUP INT TERM QUIT PIPE
IFS= read -r group || exit 0
while IFS= read -r word; do
  [ "$word" = disarm ] && exit 0
done
kill -s KILL -- "-$group" 2>/dev/null
exit 0"#;

/// A command for `program`, found through `PATH` as a shell finds it (std does that here).
pub fn command(program: &OsStr) -> Command {
    Command::new(program)
}

/// Explains a failed start; on Unix std's own error says it all.
pub fn spawn_error(_command: &Command, err: io::Error) -> io::Error {
    err
}

/// A child being started: its watchdog is up and the command knows its lifeline.
#[derive(Debug)]
pub struct Guard {
    watchdog: Watchdog,
}

/// A started child's process tree: it never outlives this value, nor the proxy.
#[derive(Debug)]
pub struct Tree {
    group: libc::pid_t,
    watchdog: Watchdog,
}

#[derive(Debug)]
struct Watchdog {
    lifeline: Option<PipeWriter>,
    process: Option<std::process::Child>,
}

/// What a started child must tell [`Guard::started`].
pub trait Started {
    fn pid(&self) -> Option<u32>;
}

impl Started for std::process::Child {
    fn pid(&self) -> Option<u32> {
        Some(self.id())
    }
}

impl Started for tokio::process::Child {
    fn pid(&self) -> Option<u32> {
        self.id()
    }
}

/// Makes `command` start as the leader of its own group (or session) under a watchdog. Call
/// before spawning it; then hand the child to [`Guard::started`].
pub fn prepare(command: &mut Command, detach: Detach) -> io::Result<Guard> {
    let (reader, lifeline) = io::pipe()?;
    let watchdog_error = |err: io::Error| {
        io::Error::new(
            err.kind(),
            format!("cannot start the watchdog /bin/sh: {err}"),
        )
    };
    let process = Command::new("/bin/sh")
        .arg("-c")
        .arg(WATCHDOG)
        .arg("mcp-policy-proxy-watchdog")
        .stdin(reader)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(watchdog_error)?;
    let fd = lifeline.as_raw_fd();
    // SAFETY: the closure runs in the forked child before exec and calls only async-signal-safe
    // functions (setsid, setpgid, getpid, sigaction, write) on stack values; `fd` stays open in
    // the child until exec closes it (it is close-on-exec), and the parent keeps it open
    // meanwhile.
    unsafe {
        command.pre_exec(move || {
            let led = match detach {
                Detach::Group => libc::setpgid(0, 0),
                Detach::Session => libc::setsid(),
            };
            if led < 0 {
                return Err(io::Error::last_os_error());
            }
            let mut line = [0u8; 24];
            let len = decimal_line(libc::getpid() as u64, &mut line);
            // A watchdog that died makes the write fail with EPIPE, which fails the start,
            // rather than a SIGPIPE that would kill the child before it runs: SIGPIPE is
            // ignored around the write and restored before exec.
            let mut ignore: libc::sigaction = std::mem::zeroed();
            ignore.sa_sigaction = libc::SIG_IGN;
            let mut before: libc::sigaction = std::mem::zeroed();
            libc::sigaction(libc::SIGPIPE, &ignore, &mut before);
            let written = libc::write(fd, line.as_ptr().cast(), len);
            let error = io::Error::last_os_error();
            libc::sigaction(libc::SIGPIPE, &before, std::ptr::null_mut());
            if written != len as isize {
                return Err(error);
            }
            Ok(())
        });
    }
    Ok(Guard {
        watchdog: Watchdog {
            lifeline: Some(lifeline),
            process: Some(process),
        },
    })
}

impl Guard {
    /// The child started: its tree is watched from here on.
    pub fn started(self, child: &impl Started) -> io::Result<Tree> {
        let pid = child
            .pid()
            .ok_or_else(|| io::Error::other("the child ended before it could be watched"))?;
        let group = libc::pid_t::try_from(pid).map_err(io::Error::other)?;
        Ok(Tree {
            group,
            watchdog: self.watchdog,
        })
    }
}

impl Tree {
    /// Asks every process of the tree to stop; true when the OS has a way to ask (it has here).
    pub fn stop(&self, how: Stop) -> bool {
        let signal = match how {
            Stop::Terminate => libc::SIGTERM,
            Stop::Interrupt => libc::SIGINT,
        };
        self.signal(signal);
        true
    }

    /// Kills every process of the tree.
    pub fn kill(&self) {
        self.signal(libc::SIGKILL);
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) with a negative pid signals the group this tree leads; no memory is
        // touched. While the leader has not been reaped, or any member of the group is left, the
        // id is not reused. Once the leader was reaped and the group emptied, the id could in
        // principle be reused by a new group before this call: that needs the pid counter to
        // wrap around within the microseconds between the reap and this call.
        unsafe {
            libc::kill(-self.group, signal);
        }
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        self.kill();
        self.watchdog.disarm();
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // Unless disarmed, closing the lifeline tells the watchdog to kill the group: this is a
        // child that never started (its group does not exist) or a tree killed above.
        self.disarm();
    }
}

impl Watchdog {
    fn disarm(&mut self) {
        if let Some(mut lifeline) = self.lifeline.take() {
            let _ = lifeline.write_all(b"disarm\n");
        }
        if let Some(mut process) = self.process.take() {
            // Reaped off this thread: it exits at once, but nothing here waits for it.
            let _ = std::thread::Builder::new()
                .name("watchdog-reaper".into())
                .spawn(move || process.wait());
        }
    }
}

/// `n` and a newline in ASCII at the start of `out`; returns the length. No allocation: it runs
/// between fork and exec.
fn decimal_line(mut n: u64, out: &mut [u8; 24]) -> usize {
    let mut digits = [0u8; 20];
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in 0..len {
        out[i] = digits[len - 1 - i];
    }
    out[len] = b'\n';
    len + 1
}

/// The signal that ended a process, if one did.
pub fn signal_of(status: ExitStatus) -> Option<i32> {
    status.signal()
}

/// The status as a shell reports it: the exit code, or 128 + the signal that killed it.
pub fn exit_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code as u8,
        (None, Some(signal)) => (128 + signal) as u8,
        (None, None) => 1,
    }
}

/// How the child ended, for messages: "exit status 3", "killed by signal 9".
pub fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => "unknown status".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn decimal_lines() {
        let mut out = [0u8; 24];
        let len = decimal_line(0, &mut out);
        assert_eq!(&out[..len], b"0\n");
        let len = decimal_line(4_194_304, &mut out);
        assert_eq!(&out[..len], b"4194304\n");
        let len = decimal_line(u64::MAX, &mut out);
        assert_eq!(&out[..len], b"18446744073709551615\n");
    }

    fn alive(pid: libc::pid_t) -> bool {
        // A zombie (killed, not yet reaped by whoever adopted it) is not alive.
        #[cfg(target_os = "linux")]
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            return !stat
                .rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z'));
        }
        // SAFETY: signal 0 only checks that the process exists.
        unsafe { libc::kill(pid, 0) == 0 }
    }

    /// A grandchild that ignores SIGTERM, started through `sh -c`, ends when the tree is
    /// dropped: the whole group is killed, not the direct child only.
    #[test]
    fn dropping_a_tree_kills_the_grandchildren() {
        let dir = std::env::temp_dir().join(format!("os-tree-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pidfile = dir.join("grandchild.pid");
        let mut command = command(OsStr::new("/bin/sh"));
        command.arg("-c").arg(format!(
            "sh -c 'trap \"\" TERM; echo $$ > {}; exec sleep 60' & wait",
            pidfile.display()
        ));
        let guard = prepare(&mut command, Detach::Group).unwrap();
        let mut child = command.spawn().unwrap();
        let tree = guard.started(&child).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let grandchild = loop {
            if let Some(pid) = std::fs::read_to_string(&pidfile)
                .ok()
                .and_then(|text| text.trim().parse::<libc::pid_t>().ok())
            {
                break pid;
            }
            assert!(Instant::now() < deadline, "the grandchild never started");
            std::thread::sleep(Duration::from_millis(10));
        };
        assert!(alive(grandchild));
        drop(tree);
        let _ = child.wait();
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive(grandchild) {
            // It is not our child: once killed, init reaps it.
            assert!(
                Instant::now() < deadline,
                "the grandchild outlived its tree"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
