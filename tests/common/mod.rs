//! A harness around the real `mcp-policy-proxy` binary with the fixture server as its child,
//! over real pipes. Tests speak JSON to it and read back parsed JSON.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const PROXY: &str = env!("CARGO_BIN_EXE_mcp-policy-proxy");

/// The fixture MCP server, a binary of the workspace member `fixture/`. Cargo names only its own
/// package's binaries to a test (`CARGO_BIN_EXE_*`), so the fixture is found where cargo puts
/// every binary of the workspace: the folder above this test's `deps/` (`target/debug`, or
/// `target/<triple>/debug` in a cross build). A missing one fails the test with the fix.
pub fn fixture() -> &'static str {
    static PATH: OnceLock<String> = OnceLock::new();
    PATH.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test executable has a path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("the test executable lives in <target>/<profile>/deps");
        let name = format!("mcp-fixture-server{}", std::env::consts::EXE_SUFFIX);
        let path = profile_dir.join(name);
        assert!(
            path.is_file(),
            "the fixture server {} is missing; build it with `cargo build -p mcp-fixture-server` \
             (`cargo build` or `cargo test` at the workspace root build it too)",
            path.display()
        );
        path.into_os_string()
            .into_string()
            .expect("the target directory's path is UTF-8")
    })
}

/// How long a test waits for any one answer before it fails.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// A directory under the system temp dir, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "mcp-policy-proxy-test-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// How to start the proxy for one test.
pub struct Builder {
    config: Option<String>,
    env: Vec<(String, String)>,
    args: Vec<String>,
    child: Option<Vec<String>>,
    config_by_env: bool,
}

impl Builder {
    /// Sets an environment variable of the proxy (the fixture inherits it).
    pub fn env(mut self, key: &str, value: &str) -> Builder {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Extra proxy options, before the child command.
    pub fn arg(mut self, arg: &str) -> Builder {
        self.args.push(arg.into());
        self
    }

    /// The child command line instead of `-- <fixture>`; an empty one gives no child command.
    pub fn child(mut self, argv: &[&str]) -> Builder {
        self.child = Some(argv.iter().map(|s| s.to_string()).collect());
        self
    }

    /// Passes the config path in MCP_POLICY_PROXY_CONFIG instead of --config.
    pub fn config_by_env(mut self) -> Builder {
        self.config_by_env = true;
        self
    }

    #[track_caller]
    pub fn start(self) -> Proxy {
        let dir = TempDir::new();
        let fixture_log = dir.path().join("fixture.log");
        let pidfile = dir.path().join("fixture.pid");
        let mut cmd = Command::new(PROXY);
        cmd.env_remove("RUST_LOG")
            .env_remove("MCP_POLICY_PROXY_CONFIG")
            .env("FIXTURE_LOG", &fixture_log)
            .env("FIXTURE_PIDFILE", &pidfile);
        if let Some(config) = &self.config {
            let path = dir.write("policy.toml", config);
            if self.config_by_env {
                cmd.env("MCP_POLICY_PROXY_CONFIG", path);
            } else {
                cmd.arg("--config").arg(path);
            }
        }
        cmd.args(&self.args);
        match &self.child {
            Some(argv) => {
                cmd.args(argv);
            }
            None => {
                cmd.arg("--").arg(fixture());
            }
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start mcp-policy-proxy");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();

        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            loop {
                let mut line = Vec::new();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if tx.send(line).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        let stderr_text = Arc::new(Mutex::new(String::new()));
        let sink = stderr_text.clone();
        let stderr_done = thread::spawn(move || {
            let mut reader = BufReader::new(stderr);
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 {
                sink.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        Proxy {
            child,
            stdin,
            lines,
            stderr: stderr_text,
            stderr_done: Some(stderr_done),
            fixture_log,
            pidfile,
            _dir: dir,
        }
    }
}

/// The proxy with the fixture behind it, or whatever child the test chose.
pub struct Proxy {
    pub child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<Vec<u8>>,
    stderr: Arc<Mutex<String>>,
    /// The thread reading stderr; it ends when every writer has closed it.
    stderr_done: Option<thread::JoinHandle<()>>,
    fixture_log: PathBuf,
    pub pidfile: PathBuf,
    _dir: TempDir,
}

impl Proxy {
    /// The policy file the proxy was started with (written by the builder).
    pub fn config_path(&self) -> PathBuf {
        self._dir.path().join("policy.toml")
    }

    /// A proxy with this policy and the fixture server as its child.
    pub fn with_config(config: &str) -> Builder {
        Builder {
            config: Some(config.to_string()),
            env: Vec::new(),
            args: Vec::new(),
            child: None,
            config_by_env: false,
        }
    }

    /// A proxy started without any config.
    pub fn without_config() -> Builder {
        Builder {
            config: None,
            env: Vec::new(),
            args: Vec::new(),
            child: None,
            config_by_env: false,
        }
    }

    #[track_caller]
    pub fn start(config: &str) -> Proxy {
        Proxy::with_config(config).start()
    }

    pub fn send(&mut self, message: &Value) {
        let mut line = serde_json::to_vec(message).unwrap();
        line.push(b'\n');
        self.send_raw(&line);
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        stdin.write_all(bytes).unwrap();
        stdin.flush().unwrap();
    }

    /// The next line the proxy wrote to stdout, parsed; fails the test after the timeout.
    #[track_caller]
    pub fn recv(&mut self) -> Value {
        match self.recv_within(ANSWER_TIMEOUT) {
            Some(value) => value,
            None => panic!(
                "no message from the proxy within {ANSWER_TIMEOUT:?}; its stderr:\n{}",
                self.stderr()
            ),
        }
    }

    /// The next message, or `None` if nothing comes within `timeout`.
    #[track_caller]
    pub fn recv_within(&mut self, timeout: Duration) -> Option<Value> {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => Some(parse_line(&line)),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => None,
        }
    }

    /// Sends a request and returns the answer with the same id, keeping nothing else.
    #[track_caller]
    pub fn request(&mut self, id: Value, method: &str, params: Value) -> Value {
        self.send(&json!({"jsonrpc":"2.0","id":id,"method":method,"params":params}));
        loop {
            let message = self.recv();
            if message.get("id") == Some(&id) && message.get("method").is_none() {
                return message;
            }
        }
    }

    /// Calls a tool and returns the whole response.
    #[track_caller]
    pub fn call(&mut self, id: i64, tool: &str, arguments: Value) -> Value {
        self.request(
            json!(id),
            "tools/call",
            json!({"name": tool, "arguments": arguments}),
        )
    }

    /// The legacy handshake, as a 2025-11-25 client does it.
    #[track_caller]
    pub fn initialize(&mut self) -> Value {
        let answer = self.request(
            json!(0),
            "initialize",
            json!({"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"test","version":"0"}}),
        );
        self.send(&json!({"jsonrpc":"2.0","method":"notifications/initialized"}));
        answer
    }

    /// Closes the proxy's stdin, as a client does to end the session.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for the proxy to exit; fails the test after `timeout`.
    #[track_caller]
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.drain_stderr(Duration::from_secs(2));
                return status;
            }
            if start.elapsed() > timeout {
                let _ = self.child.kill();
                panic!(
                    "the proxy did not exit within {timeout:?}; its stderr:\n{}",
                    self.stderr()
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until stderr is closed (all of it read), for at most `timeout`.
    fn drain_stderr(&mut self, timeout: Duration) {
        let start = Instant::now();
        while let Some(handle) = &self.stderr_done {
            if handle.is_finished() {
                self.stderr_done = None;
            } else if start.elapsed() > timeout {
                break;
            } else {
                thread::sleep(Duration::from_millis(5));
            }
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Whether stderr comes to contain `needle` within [`ANSWER_TIMEOUT`]. A log line written
    /// before an answer on stdout may still be on its way through the thread that reads stderr
    /// when the answer arrives, so a test that expects a line waits for it.
    pub fn stderr_has(&self, needle: &str) -> bool {
        let start = Instant::now();
        loop {
            if self.stderr().contains(needle) {
                return true;
            }
            if start.elapsed() > ANSWER_TIMEOUT {
                return false;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Every line the fixture server received, exactly as it read them.
    pub fn fixture_received(&self) -> Vec<String> {
        std::fs::read_to_string(&self.fixture_log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The fixture's pid, once it has written it.
    #[track_caller]
    pub fn fixture_pid(&self) -> i32 {
        let start = Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(&self.pidfile)
                && let Ok(pid) = text.trim().parse()
            {
                return pid;
            }
            assert!(
                start.elapsed() < ANSWER_TIMEOUT,
                "the fixture never wrote its pid"
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    #[cfg(unix)]
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill has no memory effects.
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Parses one stdout line, failing the test if it is not exactly one JSON value and a newline.
#[track_caller]
pub fn parse_line(line: &[u8]) -> Value {
    assert_eq!(
        line.last(),
        Some(&b'\n'),
        "every stdout line ends in a newline"
    );
    serde_json::from_slice(line).unwrap_or_else(|err| {
        panic!(
            "the proxy wrote a line that is not JSON ({err}): {}",
            String::from_utf8_lossy(line)
        )
    })
}

/// Whether a process is still alive (and not a zombie).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Waits until `pid` is gone; fails after `timeout`.
#[track_caller]
pub fn wait_gone(pid: i32, timeout: Duration) {
    let start = Instant::now();
    while alive(pid) {
        assert!(start.elapsed() < timeout, "process {pid} is still alive");
        thread::sleep(Duration::from_millis(10));
    }
}

/// The text a refused call's result shows the model.
#[track_caller]
pub fn result_text(response: &Value) -> String {
    response["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no result text in {response}"))
        .to_string()
}

/// The `_meta` facts of a refusal.
pub fn facts(response: &Value) -> &Value {
    &response["result"]["_meta"]["mcp-policy-proxy/decision"]
}

/// Whether the fixture received a tools/call for `tool`.
pub fn reached_child(proxy: &Proxy, tool: &str) -> bool {
    proxy.fixture_received().iter().any(|line| {
        serde_json::from_str::<Value>(line)
            .ok()
            .is_some_and(|v| v["method"] == "tools/call" && v["params"]["name"] == tool)
    })
}
