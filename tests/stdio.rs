//! The proxy's own stdin and stdout as whatever the client hands it: regular files, a socket,
//! a pipe someone else made non-blocking. The pumps use blocking reads and writes and never
//! change the descriptors' flags; these tests drive the real binary through each kind.
// Unix: descriptors, sockets and O_NONBLOCK; the test of pipe sizes is Linux only (F_GETPIPE_SZ,
// /proc). Windows has no non-blocking anonymous pipes; its stdio is driven by the Wine smoke test.
#![cfg(unix)]

mod common;

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const POLICY: &str = r#"
[policy]
default = "allow"

[[rules]]
tool = "CreateCodeConnection"
action = "deny"
reason = "creating code connections can expose source code and CI/CD pipelines"
"#;

/// A session's worth of client lines: a handshake, an allowed call, a denied one, a ping.
const SESSION: &str = concat!(
    r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
    "\n",
    r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    "\n",
    r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}"#,
    "\n",
    r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"CreateCodeConnection","arguments":{}}}"#,
    "\n",
    r#"{"jsonrpc":"2.0","id":4,"method":"ping"}"#,
    "\n",
);

fn proxy_command(dir: &TempDir) -> Command {
    let mut cmd = Command::new(PROXY);
    cmd.env_remove("RUST_LOG")
        .env_remove("MCP_POLICY_PROXY_CONFIG")
        .arg("--config")
        .arg(dir.write("policy.toml", POLICY))
        .arg("--")
        .arg(fixture())
        .stderr(Stdio::null());
    cmd
}

#[track_caller]
fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + ANSWER_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "the proxy did not exit");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Checks the answers to [`SESSION`], in any order: each id once, the call allowed, the
/// denied call refused.
#[track_caller]
fn check_answers(text: &str) {
    let answers: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("every output line is JSON"))
        .collect();
    let mut ids: Vec<i64> = answers.iter().map(|a| a["id"].as_i64().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, [1, 2, 3, 4], "{text}");
    let by_id = |id: i64| answers.iter().find(|a| a["id"] == id).unwrap();
    assert_eq!(by_id(2)["result"]["isError"], false, "{text}");
    assert_eq!(by_id(3)["result"]["isError"], true, "{text}");
    assert_eq!(
        facts(by_id(3))["decision"],
        "deny",
        "the refusal carries its decision: {text}"
    );
}

#[test]
fn stdin_and_stdout_can_be_regular_files() {
    let dir = TempDir::new();
    let input = dir.write("input.jsonl", SESSION);
    let output = dir.path().join("output.jsonl");
    let mut child = proxy_command(&dir)
        .stdin(File::open(&input).unwrap())
        .stdout(File::create(&output).unwrap())
        .spawn()
        .unwrap();
    let status = wait_exit(&mut child);
    assert!(status.success(), "{status}");
    check_answers(&std::fs::read_to_string(&output).unwrap());
}

#[test]
fn stdin_and_stdout_can_be_a_socket() {
    let dir = TempDir::new();
    let (mut ours, theirs) = UnixStream::pair().unwrap();
    let mut child = proxy_command(&dir)
        .stdin(OwnedFd::from(theirs.try_clone().unwrap()))
        .stdout(OwnedFd::from(theirs))
        .spawn()
        .unwrap();
    ours.write_all(SESSION.as_bytes()).unwrap();
    let mut reader = BufReader::new(ours.try_clone().unwrap());
    let mut text = String::new();
    for _ in 0..4 {
        reader.read_line(&mut text).unwrap();
    }
    ours.shutdown(std::net::Shutdown::Write).unwrap();
    let status = wait_exit(&mut child);
    assert!(status.success(), "{status}");
    check_answers(&text);
}

/// A client (Node's libuv, for one) may hand over a pipe whose open file description is
/// non-blocking. The proxy must wait for input rather than take EAGAIN for an error, and must
/// leave the flag as it found it.
#[test]
fn a_non_blocking_stdin_pipe_is_waited_on_and_left_as_it_was() {
    let dir = TempDir::new();
    let (read_end, mut write_end) = pipe();
    let flags = set_nonblocking(&read_end);
    let mut child = proxy_command(&dir)
        .stdin(read_end.try_clone().unwrap())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    // Let the proxy find its input empty first.
    std::thread::sleep(Duration::from_millis(300));
    write_end.write_all(SESSION.as_bytes()).unwrap();
    drop(write_end);
    let mut text = String::new();
    stdout.read_to_string(&mut text).unwrap();
    let status = wait_exit(&mut child);
    assert!(status.success(), "{status}");
    check_answers(&text);
    // SAFETY: F_GETFL on a descriptor we own.
    let now = unsafe { libc::fcntl(read_end.as_raw_fd(), libc::F_GETFL) };
    assert_eq!(now, flags, "the proxy changed its stdin's flags");
}

/// A pipe as two files (close-on-exec, as std makes every pipe).
fn pipe() -> (File, File) {
    let (read, write) = std::io::pipe().expect("a pipe");
    (
        File::from(OwnedFd::from(read)),
        File::from(OwnedFd::from(write)),
    )
}

/// Sets O_NONBLOCK on the file's open description; returns the new flags.
fn set_nonblocking(file: &File) -> i32 {
    let fd = file.as_raw_fd();
    // SAFETY: F_GETFL and F_SETFL on a descriptor we own, with valid flags.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL) | libc::O_NONBLOCK;
        assert_eq!(libc::fcntl(fd, libc::F_SETFL, flags), 0);
        flags
    }
}

#[cfg(target_os = "linux")]
fn pipe_size(file: &File) -> i32 {
    // SAFETY: F_GETPIPE_SZ on a descriptor we own.
    unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETPIPE_SZ) }
}

/// The size of the pipe a process's descriptor `fd` is, read through `/proc`.
#[cfg(target_os = "linux")]
fn pipe_size_of(pid: u32, fd: u32) -> i32 {
    let file = File::open(format!("/proc/{pid}/fd/{fd}")).unwrap();
    pipe_size(&file)
}

/// The proxy's child, the fixture server (not its watchdog, a `sh`).
#[cfg(target_os = "linux")]
fn child_of(pid: u32) -> u32 {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap();
    children
        .split_whitespace()
        .map(|child| child.parse().unwrap())
        .find(|child| {
            std::fs::read(format!("/proc/{child}/cmdline"))
                .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains("mcp-fixture"))
        })
        .expect("the fixture is a child of the proxy")
}

/// Pipes keep their default 64 KiB while messages are small (pipe buffers count against a
/// per-user limit); the first message over 64 KiB grows the stdout pipe to the client and the
/// child's stdout pipe to 1 MiB, so later large results cross in fewer writes, reads and
/// wake-ups. A stdout pipe already larger is never shrunk. Either way the session works as
/// before.
#[cfg(target_os = "linux")]
#[test]
fn pipes_grow_for_the_first_large_message_and_never_shrink() {
    const MIB: i32 = 1024 * 1024;
    const BIG: &str = r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"big","arguments":{"bytes":100000}}}"#;
    // A pipe larger than 1 MiB needs CAP_SYS_RESOURCE; without it, only growing is checked.
    let larger = {
        let (read_end, _write_end) = pipe();
        // SAFETY: F_SETPIPE_SZ on a descriptor we own.
        unsafe { libc::fcntl(read_end.as_raw_fd(), libc::F_SETPIPE_SZ, 4 * MIB) >= 4 * MIB }
    };
    let mut cases = vec![(None, MIB)];
    if larger {
        cases.push((Some(4 * MIB), 4 * MIB));
    }
    for (set, expected) in cases {
        let dir = TempDir::new();
        let (read_end, write_end) = pipe();
        if let Some(size) = set {
            // SAFETY: F_SETPIPE_SZ on a descriptor we own.
            assert!(unsafe { libc::fcntl(read_end.as_raw_fd(), libc::F_SETPIPE_SZ, size) } >= size);
        }
        let before = pipe_size(&read_end);
        let mut child = proxy_command(&dir)
            .stdin(Stdio::piped())
            .stdout(write_end)
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(SESSION.as_bytes()).unwrap();
        let mut reader = BufReader::new(read_end);
        let mut text = String::new();
        for _ in 0..4 {
            reader.read_line(&mut text).unwrap();
        }
        check_answers(&text);
        let server = child_of(child.id());
        assert_eq!(
            pipe_size(reader.get_ref()),
            before,
            "small messages: stdout as it was"
        );
        assert_eq!(
            pipe_size_of(server, 1),
            64 * 1024,
            "small messages: the server's stdout"
        );

        writeln!(stdin, "{BIG}").unwrap();
        let mut answer = String::new();
        reader.read_line(&mut answer).unwrap();
        let answer: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(answer["id"], 5);
        assert!(
            answer["result"]["content"][0]["text"]
                .as_str()
                .unwrap()
                .len()
                >= 100_000
        );
        assert_eq!(
            pipe_size(reader.get_ref()),
            expected,
            "stdout set to {set:?} before"
        );
        // The proxy grows the server's pipe once it is done with the line, perhaps just after
        // the client has it.
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        while pipe_size_of(server, 1) != MIB && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(pipe_size_of(server, 1), MIB, "the server's stdout");

        drop(stdin);
        let status = wait_exit(&mut child);
        assert!(status.success(), "{status}");
    }
}
