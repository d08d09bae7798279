//! Children on Windows: each one runs in a Job Object that kills it, and everything it starts,
//! when the last handle to the job closes, which the OS does when the proxy ends, however it
//! ends (`TerminateProcess` included).
//!
//! The child is created suspended, put in the job, and only then resumed, so it runs no code of
//! its own outside the job; what it starts is in the job too. The job's handle is not
//! inheritable, so no child keeps it open. A bare program name is resolved the way a Windows
//! shell resolves it, through `PATH` and `PATHEXT` (`npx` is `npx.cmd`), to a full path that
//! std then runs: std runs `.cmd` and `.bat` files through `cmd.exe` with its own escaping and
//! refuses arguments it cannot pass safely (CVE-2024-24576); we never build a `cmd.exe` line.
//! There are no signals to ask a tree to stop: the proxy closes the child's stdin, waits, then
//! ends the job.

pub use super::super::{Detach, Stop};
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::windows::io::{AsRawHandle as _, FromRawHandle as _, OwnedHandle, RawHandle};
use std::os::windows::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, ExitStatus};

use windows_sys::Win32::Foundation::{CloseHandle, HANDLE, INVALID_HANDLE_VALUE};
use windows_sys::Win32::System::Diagnostics::ToolHelp::{
    CreateToolhelp32Snapshot, TH32CS_SNAPTHREAD, THREADENTRY32, Thread32First, Thread32Next,
};
use windows_sys::Win32::System::JobObjects::{
    AssignProcessToJobObject, CreateJobObjectW, JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
    JOBOBJECT_EXTENDED_LIMIT_INFORMATION, JobObjectExtendedLimitInformation,
    SetInformationJobObject, TerminateJobObject,
};
use windows_sys::Win32::System::Threading::{
    CREATE_NO_WINDOW, CREATE_SUSPENDED, OpenThread, ResumeThread, THREAD_SUSPEND_RESUME,
    TerminateProcess,
};

/// The flags every child is created with: no console window of its own, and suspended until it
/// is in its job.
pub const CREATION_FLAGS: u32 = CREATE_NO_WINDOW | CREATE_SUSPENDED;

/// The exit code of a process ended by [`Tree::kill`].
const KILLED: u32 = 1;

/// A command for `program`: a bare name is resolved through `PATH` and `PATHEXT` to a full
/// path (std alone appends only `.exe`). A name that is not found is left as it is, for std to
/// report.
pub fn command(program: &OsStr) -> Command {
    Command::new(resolve(program))
}

fn resolve(program: &OsStr) -> OsString {
    let path = Path::new(program);
    let bare = path.components().count() == 1 && !path.has_root();
    if !bare {
        return program.to_owned();
    }
    match which::which(program) {
        Ok(found) => found.into_os_string(),
        Err(_) => program.to_owned(),
    }
}

/// Explains a failed start: std refuses to run a batch file with an argument that `cmd.exe`
/// could read as a second command, and says only "invalid argument"; this names it.
pub fn spawn_error(command: &Command, err: io::Error) -> io::Error {
    let program = Path::new(command.get_program());
    let batch = program
        .extension()
        .and_then(OsStr::to_str)
        .is_some_and(|ext| ext.eq_ignore_ascii_case("cmd") || ext.eq_ignore_ascii_case("bat"));
    if !batch || err.kind() != io::ErrorKind::InvalidInput {
        return err;
    }
    let unsafe_args: Vec<String> = command
        .get_args()
        .filter(|arg| {
            arg.to_string_lossy()
                .chars()
                .any(|c| matches!(c, '\r' | '\n' | '\0' | '%' | '"'))
        })
        .map(|arg| format!("`{}`", arg.to_string_lossy()))
        .collect();
    let which = if unsafe_args.is_empty() {
        "one of its arguments".to_owned()
    } else {
        format!("the argument {}", unsafe_args.join(", "))
    };
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "{} is a batch file, which Windows runs through cmd.exe, and {which} cannot be passed \
             to cmd.exe safely (it could run a second command); start the server's program \
             directly (for example node.exe with the script) or change the argument ({err})",
            program.display()
        ),
    )
}

/// A child being started: its job exists and the command is set to start suspended.
#[derive(Debug)]
pub struct Guard {
    job: OwnedHandle,
}

/// A started child's process tree: it never outlives this value, nor the proxy.
#[derive(Debug)]
pub struct Tree {
    job: OwnedHandle,
}

/// What a started child must tell [`Guard::started`].
pub trait Started {
    fn pid(&self) -> Option<u32>;
    fn handle(&self) -> Option<RawHandle>;
}

impl Started for std::process::Child {
    fn pid(&self) -> Option<u32> {
        Some(self.id())
    }
    fn handle(&self) -> Option<RawHandle> {
        Some(self.as_raw_handle())
    }
}

impl Started for tokio::process::Child {
    fn pid(&self) -> Option<u32> {
        self.id()
    }
    fn handle(&self) -> Option<RawHandle> {
        self.raw_handle()
    }
}

/// Makes a job that kills its processes when its last handle closes, and sets `command` to
/// start suspended, with no console window. Call before spawning it; then hand the child to
/// [`Guard::started`], which puts it in the job and lets it run.
pub fn prepare(command: &mut Command, _detach: Detach) -> io::Result<Guard> {
    // SAFETY: no security attributes (so the handle is not inheritable) and no name; the
    // returned handle is owned here from now on.
    let raw = unsafe { CreateJobObjectW(std::ptr::null(), std::ptr::null()) };
    if raw.is_null() {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a valid handle that nothing else owns.
    let job = unsafe { OwnedHandle::from_raw_handle(raw as RawHandle) };
    let mut limits = JOBOBJECT_EXTENDED_LIMIT_INFORMATION::default();
    limits.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
    // SAFETY: the pointer and size describe `limits`, which lives across the call.
    let set = unsafe {
        SetInformationJobObject(
            job.as_raw_handle() as HANDLE,
            JobObjectExtendedLimitInformation,
            (&raw const limits).cast(),
            size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>() as u32,
        )
    };
    if set == 0 {
        return Err(io::Error::last_os_error());
    }
    command.creation_flags(CREATION_FLAGS);
    Ok(Guard { job })
}

impl Guard {
    /// The child was created suspended: put it in the job, then let it run. If it cannot be put
    /// in the job, it is ended before it runs any code.
    pub fn started(self, child: &impl Started) -> io::Result<Tree> {
        let (Some(pid), Some(process)) = (child.pid(), child.handle()) else {
            return Err(io::Error::other(
                "the child ended before it could be put in its job",
            ));
        };
        // SAFETY: both handles are valid for the call: the job is ours, the process handle
        // belongs to `child`, which outlives the call.
        let assigned = unsafe {
            AssignProcessToJobObject(self.job.as_raw_handle() as HANDLE, process as HANDLE)
        };
        if assigned == 0 {
            let err = io::Error::last_os_error();
            // SAFETY: as above; a suspended process that is not ours to run.
            unsafe {
                TerminateProcess(process as HANDLE, KILLED);
            }
            return Err(err);
        }
        // Should it fail, the job ends the process when `self.job` is dropped on return.
        resume(pid)?;
        Ok(Tree { job: self.job })
    }
}

/// Resumes every thread of the suspended process `pid` (a new process has one).
fn resume(pid: u32) -> io::Result<()> {
    // SAFETY: a snapshot of every thread in the system; the handle is closed below.
    let snapshot = unsafe { CreateToolhelp32Snapshot(TH32CS_SNAPTHREAD, 0) };
    if snapshot == INVALID_HANDLE_VALUE {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `snapshot` is a valid handle that nothing else owns.
    let snapshot = unsafe { OwnedHandle::from_raw_handle(snapshot as RawHandle) };
    let mut entry = THREADENTRY32 {
        dwSize: size_of::<THREADENTRY32>() as u32,
        ..THREADENTRY32::default()
    };
    let mut resumed = 0;
    // SAFETY: `entry` is a valid THREADENTRY32 with its size set, for every call.
    let mut more = unsafe { Thread32First(snapshot.as_raw_handle() as HANDLE, &mut entry) } != 0;
    while more {
        if entry.th32OwnerProcessID == pid {
            // SAFETY: OpenThread returns a new handle or null; a valid one is closed below.
            let thread = unsafe { OpenThread(THREAD_SUSPEND_RESUME, 0, entry.th32ThreadID) };
            if !thread.is_null() {
                // SAFETY: `thread` is a valid handle opened above.
                unsafe {
                    if ResumeThread(thread) != u32::MAX {
                        resumed += 1;
                    }
                    CloseHandle(thread);
                }
            }
        }
        // SAFETY: as for Thread32First.
        more = unsafe { Thread32Next(snapshot.as_raw_handle() as HANDLE, &mut entry) } != 0;
    }
    if resumed == 0 {
        return Err(io::Error::other("the child's thread could not be resumed"));
    }
    Ok(())
}

impl Tree {
    /// Windows has no signal to ask a tree to stop with: false, and the caller closes the
    /// child's stdin instead.
    pub fn stop(&self, _how: Stop) -> bool {
        false
    }

    /// Ends every process in the job.
    pub fn kill(&self) {
        // SAFETY: the job handle is ours and valid.
        unsafe {
            TerminateJobObject(self.job.as_raw_handle() as HANDLE, KILLED);
        }
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        // Closing the handle would end them too (kill on close); this makes it immediate.
        self.kill();
    }
}

/// The signal that ended a process: never one on Windows, which has none.
pub fn signal_of(_status: ExitStatus) -> Option<i32> {
    None
}

/// The exit code, as the proxy ends with it.
pub fn exit_code(status: ExitStatus) -> u8 {
    status.code().map_or(1, |code| code as u8)
}

/// How the child ended, for messages.
pub fn describe(status: ExitStatus) -> String {
    match status.code() {
        Some(code) => format!("exit status {code}"),
        None => "unknown status".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_start_suspended_without_a_console() {
        assert_eq!(CREATION_FLAGS & CREATE_SUSPENDED, CREATE_SUSPENDED);
        assert_eq!(CREATION_FLAGS & CREATE_NO_WINDOW, CREATE_NO_WINDOW);
    }

    #[test]
    fn a_batch_files_refused_argument_is_named() {
        let mut command = Command::new(r"C:\tools\npx.cmd");
        command.arg("ok").arg("a&b>c\"%x%");
        let err = spawn_error(&command, io::Error::from(io::ErrorKind::InvalidInput));
        let text = err.to_string();
        assert!(text.contains("a&b>c\"%x%"), "{text}");
        assert!(text.contains("batch file"), "{text}");
    }
}
