//! End-to-end measurements: a client on real pipes, talking to the fixture server directly,
//! behind the plain byte relay, and behind the proxy (with the standard policy, or a variant's).
//!
//! Every answer is checked: its id must be one the client is waiting for (so each id comes back
//! exactly once), an `echo` must be an allowed call's result, and a `big` result must have the
//! exact size. A failed check fails the run; timings are only reported.

use std::fmt;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};

use crate::byte_relay::RELAY_ENV;
use crate::variants::Variant;

/// How long any one answer may take before the run fails instead of hanging.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a set-up may take to exit once its input is closed.
const EXIT_TIMEOUT: Duration = Duration::from_secs(5);
/// The client's read buffer: large, so a pipelined burst of answers takes few reads.
const CLIENT_BUFFER: usize = 1 << 20;

/// One way of reaching the fixture server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    Direct,
    Relay,
    Proxy,
    /// Another build of the proxy, measured in the same rounds for a before/after.
    Baseline,
    /// This proxy with a variant's policy (see `variants`).
    Variant(Variant),
}

impl Setup {
    pub fn name(self) -> &'static str {
        match self {
            Setup::Direct => "direct",
            Setup::Relay => "relay",
            Setup::Proxy => "proxy",
            Setup::Baseline => "baseline",
            Setup::Variant(variant) => variant.name(),
        }
    }
}

impl fmt::Display for Setup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The programs a round starts.
pub struct Programs {
    pub fixture: PathBuf,
    pub proxy: PathBuf,
    /// The proxy build to compare with, if any.
    pub baseline: Option<PathBuf>,
    /// This executable, which is the byte relay when [`RELAY_ENV`] is set.
    pub relay: PathBuf,
    pub policy: PathBuf,
    /// The policy of each variant that runs.
    pub variants: Vec<(Variant, PathBuf)>,
}

/// A running set-up and the client's end of its pipes.
pub struct Endpoint {
    pub setup: Setup,
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
    line: Vec<u8>,
    request: Vec<u8>,
    next_id: u64,
    /// `echo` calls sent (the others are `big` calls and probes).
    echo_calls: u64,
}

impl Endpoint {
    pub fn start(setup: Setup, programs: &Programs) -> anyhow::Result<Endpoint> {
        let mut command = match setup {
            Setup::Direct => Command::new(&programs.fixture),
            Setup::Relay => {
                let mut command = Command::new(&programs.relay);
                command.env(RELAY_ENV, "1").arg(&programs.fixture);
                command
            }
            Setup::Proxy | Setup::Baseline | Setup::Variant(_) => {
                let program = match setup {
                    Setup::Baseline => programs.baseline.as_ref().context("no baseline build")?,
                    _ => &programs.proxy,
                };
                let policy = match setup {
                    Setup::Variant(variant) => programs
                        .variants
                        .iter()
                        .find_map(|(v, path)| (*v == variant).then_some(path))
                        .with_context(|| format!("no policy for the {variant:?} variant"))?,
                    _ => &programs.policy,
                };
                let mut command = Command::new(program);
                command
                    .arg("--config")
                    .arg(policy)
                    .args(["--log-level", "warn", "--"])
                    .arg(&programs.fixture);
                command
            }
        };
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start the {setup} set-up"))?;
        let input = child.stdin.take().expect("piped");
        let output = BufReader::with_capacity(CLIENT_BUFFER, child.stdout.take().expect("piped"));
        let mut endpoint = Endpoint {
            setup,
            child,
            input,
            output,
            line: Vec::new(),
            request: Vec::new(),
            next_id: 1,
            echo_calls: 0,
        };
        endpoint.handshake()?;
        Ok(endpoint)
    }

    fn handshake(&mut self) -> anyhow::Result<()> {
        self.input.write_all(
            b"{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},\"clientInfo\":{\"name\":\"bench\",\"version\":\"1\"}}}\n",
        )?;
        self.read_line()?;
        ensure!(
            self.line
                .starts_with(b"{\"jsonrpc\":\"2.0\",\"id\":0,\"result\":"),
            "{}: unexpected answer to initialize: {}",
            self.setup,
            String::from_utf8_lossy(&self.line)
        );
        self.input
            .write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n")?;
        Ok(())
    }

    /// How many `tools/call` requests this set-up was sent.
    pub fn calls(&self) -> u64 {
        self.next_id - 1
    }

    /// How many of them were allowed `echo` calls.
    pub fn echo_calls(&self) -> u64 {
        self.echo_calls
    }

    /// Sends one `tools/call` of `tool` with `arguments` (a JSON object) and checks that the
    /// answer is a refusal (a tool result with `isError: true`) that mentions `reason`: the
    /// proof that a variant's policy is in force, not only present.
    pub fn expect_refusal(
        &mut self,
        tool: &str,
        arguments: &str,
        reason: &str,
    ) -> anyhow::Result<()> {
        let id = self.next_id;
        self.next_id += 1;
        let _ = writeln!(
            self.request,
            "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"tools/call\",\"params\":{{\"name\":\"{tool}\",\"arguments\":{arguments}}}}}"
        );
        self.send()?;
        self.read_line()?;
        let line = String::from_utf8_lossy(&self.line);
        ensure!(
            answer_id(&self.line) == Some(id)
                && line.contains("\"isError\":true")
                && line.contains(reason),
            "{}: a call of {tool} with {arguments} was not refused with {reason:?}: {line}",
            self.setup
        );
        Ok(())
    }

    /// The process whose memory is reported: the relay or the proxy (or the fixture, direct).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn read_line(&mut self) -> anyhow::Result<()> {
        self.line.clear();
        let n = self.output.read_until(b'\n', &mut self.line)?;
        if n == 0 || self.line.last() != Some(&b'\n') {
            bail!("{}: the output ended before an answer", self.setup);
        }
        Ok(())
    }

    /// Appends an allowed `tools/call` of `echo` with a fresh id; returns the id.
    fn push_echo(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.echo_calls += 1;
        let _ = writeln!(
            self.request,
            "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"tools/call\",\"params\":{{\"name\":\"echo\",\"arguments\":{{\"text\":\"hello from the benchmark\",\"n\":{id}}}}}}}"
        );
        id
    }

    fn push_big(&mut self, bytes: usize) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let _ = writeln!(
            self.request,
            "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"tools/call\",\"params\":{{\"name\":\"big\",\"arguments\":{{\"bytes\":{bytes}}}}}}}"
        );
        id
    }

    fn send(&mut self) -> anyhow::Result<()> {
        self.input
            .write_all(&self.request)
            .with_context(|| format!("{}: cannot write to its input", self.setup))?;
        self.request.clear();
        Ok(())
    }

    /// One sequential `echo` call: its round trip.
    pub fn echo_round_trip(&mut self) -> anyhow::Result<Duration> {
        let id = self.push_echo();
        let start = Instant::now();
        self.send()?;
        self.read_line()?;
        let elapsed = start.elapsed();
        let got = self.check_echo()?;
        ensure!(
            got == id,
            "{}: answer for id {got}, expected {id}",
            self.setup
        );
        Ok(elapsed)
    }

    /// The id of the `echo` answer in `self.line`, after checking it is an allowed call's result.
    fn check_echo(&self) -> anyhow::Result<u64> {
        let id = answer_id(&self.line).with_context(|| {
            format!(
                "{}: not an answer: {}",
                self.setup,
                String::from_utf8_lossy(&self.line)
            )
        })?;
        ensure!(
            memchr::memmem::find(&self.line, b"\"isError\":false").is_some()
                && memchr::memmem::find(&self.line, b"hello from the benchmark").is_some(),
            "{}: not the echo's result: {}",
            self.setup,
            String::from_utf8_lossy(&self.line)
        );
        Ok(id)
    }

    /// `calls` `echo` calls with `window` in flight; calls per second. Requests are written in
    /// bursts, one for the answers that arrived together, as a real pipelining client does.
    pub fn pipelined(&mut self, calls: usize, window: usize) -> anyhow::Result<f64> {
        let first = self.next_id;
        let mut seen = vec![false; calls];
        let mut sent = 0;
        let mut received = 0;
        let start = Instant::now();
        while sent < calls.min(window) {
            self.push_echo();
            sent += 1;
        }
        self.send()?;
        while received < calls {
            let mut completed = 0;
            loop {
                self.read_line()?;
                let id = self.check_echo()?;
                self.mark_answered(&mut seen, first, sent, id)?;
                completed += 1;
                received += 1;
                if memchr::memchr(b'\n', self.output.buffer()).is_none() {
                    break;
                }
            }
            let more = completed.min(calls - sent);
            for _ in 0..more {
                self.push_echo();
            }
            sent += more;
            if more > 0 {
                self.send()?;
            }
        }
        let elapsed = start.elapsed();
        ensure!(
            seen.iter().all(|&s| s),
            "{}: not every id came back",
            self.setup
        );
        Ok(calls as f64 / elapsed.as_secs_f64())
    }

    /// Records the answer to `id`, one of the `sent` requests numbered from `first`; fails if
    /// it is not one of them or was answered before.
    fn mark_answered(
        &self,
        seen: &mut [bool],
        first: u64,
        sent: usize,
        id: u64,
    ) -> anyhow::Result<()> {
        let slot = id
            .checked_sub(first)
            .map(|i| i as usize)
            .filter(|&i| i < sent)
            .with_context(|| format!("{}: answer for unknown id {id}", self.setup))?;
        ensure!(!seen[slot], "{}: id {id} answered twice", self.setup);
        seen[slot] = true;
        Ok(())
    }

    /// `calls` calls of `big` with `bytes` of text each, `window` in flight; MB/s of answers.
    pub fn large(&mut self, calls: usize, window: usize, bytes: usize) -> anyhow::Result<f64> {
        let first = self.next_id;
        let mut seen = vec![false; calls];
        let mut sent = 0;
        let mut total = 0usize;
        let start = Instant::now();
        while sent < calls.min(window) {
            self.push_big(bytes);
            sent += 1;
        }
        self.send()?;
        for _ in 0..calls {
            self.read_line()?;
            let id = answer_id(&self.line)
                .with_context(|| format!("{}: a large answer without an id", self.setup))?;
            self.mark_answered(&mut seen, first, sent, id)?;
            let expected = big_answer_len(id, bytes);
            ensure!(
                self.line.len() == expected && self.line.ends_with(BIG_SUFFIX),
                "{}: a large answer of {} bytes, expected {expected}",
                self.setup,
                self.line.len()
            );
            total += self.line.len();
            if sent < calls {
                self.push_big(bytes);
                sent += 1;
                self.send()?;
            }
        }
        let elapsed = start.elapsed();
        Ok(total as f64 / 1e6 / elapsed.as_secs_f64())
    }

    /// The peak resident memory of [`Endpoint::pid`] so far, in bytes (VmHWM).
    pub fn peak_rss(&self) -> anyhow::Result<u64> {
        peak_rss(self.pid())
    }

    /// Closes the input and checks the set-up exits on its own, successfully and in time.
    pub fn finish(mut self) -> anyhow::Result<()> {
        drop(self.input);
        let deadline = Instant::now() + EXIT_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                ensure!(
                    status.success(),
                    "{}: exited with {status} after its input closed",
                    self.setup
                );
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                bail!(
                    "{}: still running {EXIT_TIMEOUT:?} after its input closed",
                    self.setup
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

const BIG_SUFFIX: &[u8] = b"\"}],\"isError\":false}}\n";

/// The exact length of the fixture's `big` answer line.
fn big_answer_len(id: u64, bytes: usize) -> usize {
    let prefix = "{\"jsonrpc\":\"2.0\",\"id\":".len()
        + id.to_string().len()
        + ",\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"".len();
    prefix + bytes + BIG_SUFFIX.len()
}

/// The integer id of an answer line as the fixture writes it (`{"jsonrpc":"2.0","id":N,...`).
fn answer_id(line: &[u8]) -> Option<u64> {
    let rest = line.strip_prefix(b"{\"jsonrpc\":\"2.0\",\"id\":")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

/// VmHWM of a process, in bytes.
pub fn peak_rss(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .with_context(|| format!("no VmHWM in {path}"))?;
    Ok(kib * 1024)
}

/// Fails with a clear message instead of hanging forever when a set-up stops answering: a
/// watchdog thread kills the run after [`ANSWER_TIMEOUT`] without progress.
pub struct Watchdog {
    progress: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Watchdog {
    pub fn start() -> Watchdog {
        use std::sync::atomic::Ordering;
        let progress = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let seen = progress.clone();
        std::thread::spawn(move || {
            let mut last = u64::MAX;
            loop {
                std::thread::sleep(ANSWER_TIMEOUT);
                let now = seen.load(Ordering::Relaxed);
                if now == last {
                    eprintln!("bench: no progress for {ANSWER_TIMEOUT:?}; giving up");
                    // Exiting runs no destructor: the store would outlive the run.
                    crate::valkey::kill_all();
                    std::process::exit(1);
                }
                last = now;
            }
        });
        Watchdog { progress }
    }

    pub fn tick(&self) {
        self.progress
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Writes the benchmark's policy into `dir`; returns its path.
pub fn write_policy(dir: &Path) -> anyhow::Result<PathBuf> {
    let path = dir.join("bench-policy.toml");
    std::fs::write(&path, crate::policy_text()).context("cannot write the policy")?;
    Ok(path)
}
