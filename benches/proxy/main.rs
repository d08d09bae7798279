//! The benchmark behind `scripts/bench`: what the proxy costs, side by side with a plain byte
//! relay (the floor of any stdio proxy) and with no proxy at all.
//!
//! `cargo bench --bench proxy` runs it in full, `-- --quick` briefly (CI). Run by `cargo test`
//! (without `--bench`), it is a smoke test with tiny counts, so it cannot rot. Timings are only
//! reported, never asserted; a failed correctness check (an id not answered exactly once, an
//! answer of the wrong size, a set-up that does not exit when its input closes) fails the run.
//!
//! End-to-end figures come in rounds. Each round starts every set-up afresh, interleaves their
//! latency samples call by call and runs their throughput bursts one after the other, in an
//! order that rotates, so a noisy neighbour hits all three alike. Ratios are taken within each
//! round and their median reported.
//!
//! Options (after `--` of `cargo bench`, or given to `scripts/bench`):
//!
//! - `--quick`: the short run CI uses (3 rounds, small counts).
//! - `--only latency,pipelined,large,single,micro` (any of them): run only those phases.
//! - `--rounds N`, `--large-calls N` (large results per round and set-up), `--large-burst N`
//!   (the fewest large results in one burst).
//! - `--policy-variant NAME` (repeatable, or comma-separated; `all` for every one): more proxy
//!   set-ups in the same rounds, each with another policy (see `variants.rs`), each reported with
//!   its ratios to the relay like the standard proxy, and to the standard proxy itself:
//!   `approval` (approval rules and channels on tools never called), `conditions` (a 50-rule
//!   policy with argument conditions, some read by every call), `audit` (the audit log on),
//!   `global` (the called tool's limit fleet-wide, in a `valkey-server` the benchmark starts from
//!   `$MCP_POLICY_PROXY_VALKEY_BIN`, and kills at the end; skipped with a note without it). A
//!   variant whose policy the proxy refuses (`--check`) is skipped with a note. By default a
//!   measured run has none (only the standard policy); the smoke test has all of them. Each
//!   variant adds about one proxy set-up's time to every round (`global` more: its pipelined
//!   calls wait for the store); a quick run with all four and a baseline took 11 s.
//!
//! Environment: `MCP_POLICY_PROXY_BENCH_PROXY=/path/to/mcp-policy-proxy` measures another build
//! in place of this one (the variants run it too); `MCP_POLICY_PROXY_BENCH_BASELINE=/path/to/it`
//! adds another build as a set-up of its own, `baseline`, with the standard policy, for a
//! before/after in the same rounds.

// The report is the benchmark's output; stdout is not a protocol channel here.
#![allow(clippy::print_stdout)]

mod byte_relay;
mod end_to_end;
mod micro;
mod report;
mod valkey;
mod variants;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;

use end_to_end::{Endpoint, Programs, Setup, Watchdog};
use report::{RELAY, added_us, median, report_end_to_end, report_micro};
use variants::Variant;

/// The realistic 50-rule policy the proxy runs with.
pub fn policy_text() -> &'static str {
    include_str!("policy.toml")
}

const MIB: usize = 1024 * 1024;

/// The proxy executable to measure instead of this build's.
const PROXY_ENV: &str = "MCP_POLICY_PROXY_BENCH_PROXY";
/// Another proxy executable to measure beside this one in the same rounds (a before/after).
const BASELINE_ENV: &str = "MCP_POLICY_PROXY_BENCH_BASELINE";

/// Throughput bursts per set-up and round (see `end_to_end`).
const BURSTS: usize = 5;

/// How much of everything to run.
#[derive(Debug, Clone, Copy)]
struct Plan {
    name: &'static str,
    rounds: usize,
    warmup_calls: usize,
    latency_calls: usize,
    pipelined_calls: usize,
    window: usize,
    large_calls: usize,
    large_window: usize,
    /// The fewest large results in one burst.
    large_burst: usize,
    large_bytes: usize,
    /// Large results one at a time (as an agent calls tools: one in flight), per burst.
    single_calls: usize,
    micro_samples: usize,
    /// Iterations per sample of the small micro-benchmarks (scaled down for large inputs).
    micro_iterations: usize,
}

const FULL: Plan = Plan {
    name: "full",
    rounds: 7,
    warmup_calls: 300,
    latency_calls: 3000,
    pipelined_calls: 100_000,
    window: 64,
    large_calls: 120,
    large_window: 2,
    large_burst: 24,
    large_bytes: 8 * MIB,
    single_calls: 12,
    micro_samples: 101,
    micro_iterations: 2000,
};

const QUICK: Plan = Plan {
    name: "quick",
    rounds: 3,
    warmup_calls: 100,
    latency_calls: 500,
    pipelined_calls: 10_000,
    large_calls: 8,
    single_calls: 4,
    micro_samples: 21,
    micro_iterations: 500,
    ..FULL
};

/// Under `cargo test`: debug builds, so only enough to prove every path still works.
const SMOKE: Plan = Plan {
    name: "smoke test (not a measurement)",
    rounds: 1,
    warmup_calls: 5,
    latency_calls: 20,
    pipelined_calls: 300,
    large_calls: 2,
    large_bytes: MIB / 4,
    single_calls: 1,
    micro_samples: 3,
    micro_iterations: 10,
    ..FULL
};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if std::env::var_os(byte_relay::RELAY_ENV).is_some() {
        return byte_relay::run(&args);
    }
    let mut plan = if args.iter().any(|a| a == "--quick") {
        QUICK
    } else if args.iter().any(|a| a == "--bench") {
        FULL
    } else {
        SMOKE
    };
    // The options are described at the top of this file.
    let variants = match variants::from_args(&args) {
        Ok(Some(variants)) => variants,
        // The smoke test runs every variant, so none can rot; a measurement only the standard.
        Ok(None) if plan.name == SMOKE.name => Variant::ALL.to_vec(),
        Ok(None) => Vec::new(),
        Err(err) => {
            eprintln!("bench: {err}");
            return ExitCode::from(2);
        }
    };
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
    };
    if let Some(n) = value("--large-calls").and_then(|n| n.parse().ok()) {
        plan.large_calls = n;
    }
    if let Some(n) = value("--large-burst").and_then(|n| n.parse::<usize>().ok()) {
        plan.large_burst = n.max(1);
    }
    if let Some(rounds) = value("--rounds").and_then(|n| n.parse().ok()) {
        plan.rounds = rounds;
    }
    if let Some(only) = value("--only") {
        let keep = |phase: &str| only.split(',').any(|p| p == phase);
        if !keep("latency") {
            plan.latency_calls = 0;
        }
        if !keep("pipelined") {
            plan.pipelined_calls = 0;
        }
        if !keep("large") {
            plan.large_calls = 0;
        }
        if !keep("single") {
            plan.single_calls = 0;
        }
        if !keep("micro") {
            plan.micro_samples = 0;
        }
        if only == "micro" {
            plan.rounds = 0;
        }
    }
    match run(plan, &variants) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bench: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// One round's figures for one set-up.
#[derive(Debug, Clone, Copy, Default)]
struct Figures {
    p50: Duration,
    p99: Duration,
    calls_per_s: f64,
    mb_per_s: f64,
    /// Large results with one in flight.
    single_mb_per_s: f64,
    peak_rss: u64,
}

/// What the variants' set-ups did besides their timings, over all rounds.
#[derive(Debug, Default)]
struct Extras {
    /// Lines in the audit log, and the `tools/call` requests of the audit set-up.
    audit_records: u64,
    audit_calls: u64,
    /// Calls of each command the store ran, and the `echo` calls of the global set-up (those its
    /// fleet-wide limit governs).
    store_commands: BTreeMap<String, u64>,
    global_calls: u64,
    /// Store decisions (scripts) and the microseconds the store spent in them, all phases.
    store_scripts: (u64, u64),
    /// Store decisions, and reads of requests by the store, in the pipelined bursts.
    pipelined_scripts: u64,
    pipelined_reads: u64,
    /// Why variants did not run.
    skipped: Vec<(Variant, String)>,
    /// The store's address.
    store: Option<String>,
    /// The loopback round trip of a PING to the store, measured after each round.
    store_ping: Vec<Duration>,
}

impl Extras {
    /// Adds what the store did since its statistics were last reset, and resets them; `pipelined`
    /// when that was the pipelined bursts.
    fn absorb_store(
        &mut self,
        store: Option<&valkey::Valkey>,
        pipelined: bool,
    ) -> anyhow::Result<()> {
        let Some(store) = store else {
            return Ok(());
        };
        let stats = store.stats()?;
        for (command, calls, _) in &stats.commands {
            *self.store_commands.entry(command.clone()).or_default() += calls;
        }
        let (scripts, usec) = stats.scripts();
        self.store_scripts.0 += scripts;
        self.store_scripts.1 += usec;
        if pipelined {
            self.pipelined_scripts += scripts;
            self.pipelined_reads += stats.reads;
        }
        store.reset_stats()
    }
}

fn run(plan: Plan, variants: &[Variant]) -> anyhow::Result<()> {
    println!("mcp-policy-proxy benchmark, {} mode", plan.name);
    println!("{}", machine());
    println!();

    let dir = std::env::temp_dir().join(format!("mcp-policy-proxy-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).context("cannot create a temporary directory")?;
    let mut programs = Programs {
        fixture: fixture_path()?,
        // Another build of the proxy can be measured in its place, for a before/after.
        proxy: std::env::var_os(PROXY_ENV).map_or_else(
            || env!("CARGO_BIN_EXE_mcp-policy-proxy").into(),
            PathBuf::from,
        ),
        baseline: std::env::var_os(BASELINE_ENV).map(PathBuf::from),
        relay: std::env::current_exe().context("cannot find the bench executable")?,
        policy: end_to_end::write_policy(&dir)?,
        variants: Vec::new(),
    };
    let prepared = if plan.rounds > 0 {
        variants::prepare(variants, &programs.proxy, &dir)
    } else {
        variants::Prepared::default()
    };
    programs.variants = prepared.policies.clone();
    let mut setups = vec![Setup::Direct, Setup::Relay, Setup::Proxy];
    if programs.baseline.is_some() {
        setups.push(Setup::Baseline);
    }
    setups.extend(prepared.policies.iter().map(|&(v, _)| Setup::Variant(v)));
    let mut extras = Extras {
        skipped: prepared.skipped.clone(),
        store: prepared.valkey.as_ref().map(valkey::Valkey::url),
        ..Extras::default()
    };
    let result = end_to_end(plan, &programs, &setups, &prepared, &mut extras);
    // The store is killed before the report, and whatever happened.
    drop(prepared);
    let _ = std::fs::remove_dir_all(&dir);
    let rounds = result?;
    if !rounds.is_empty() {
        report_end_to_end(plan, &rounds, &setups, &extras);
        println!();
    }
    if plan.micro_samples > 0 {
        report_micro(plan);
    }
    Ok(())
}

/// Checks, once per round and before anything is measured, that a variant's policy is in force:
/// a call its policy refuses is refused.
/// The fixture server, a binary of the workspace member `fixture/`: cargo names only this
/// package's binaries to a bench, so it is found where cargo puts every binary of the workspace,
/// the folder above this bench's `deps/` (scripts/bench builds it there first).
fn fixture_path() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find the bench executable")?;
    let profile_dir = exe
        .parent()
        .and_then(std::path::Path::parent)
        .context("the bench executable is not in <target>/<profile>/deps")?;
    let path = profile_dir.join(format!(
        "mcp-fixture-server{}",
        std::env::consts::EXE_SUFFIX
    ));
    anyhow::ensure!(
        path.is_file(),
        "the fixture server {} is missing; build it with `cargo build --release -p mcp-fixture-server` \
         (scripts/bench does)",
        path.display()
    );
    Ok(path)
}

fn probe(endpoint: &mut Endpoint) -> anyhow::Result<()> {
    match endpoint.setup {
        Setup::Variant(Variant::Conditions) => endpoint.expect_refusal(
            "echo",
            r#"{"text":"unlink","n":1}"#,
            "benchmark condition: a delete command",
        ),
        Setup::Variant(Variant::Approval) => endpoint.expect_refusal(
            variants::APPROVAL_PROBE_TOOL,
            "{}",
            "the benchmark's approval probe",
        ),
        _ => Ok(()),
    }
}

fn end_to_end(
    plan: Plan,
    programs: &Programs,
    setups: &[Setup],
    prepared: &variants::Prepared,
    extras: &mut Extras,
) -> anyhow::Result<Vec<Vec<Figures>>> {
    let n = setups.len();
    let watchdog = Watchdog::start();
    let mut rounds = Vec::new();
    for round in 0..plan.rounds {
        // The order rotates, so no set-up is always first (or last) after a pause.
        let order: Vec<usize> = (0..n).map(|k| (k + round) % n).collect();
        if let Some(store) = &prepared.valkey {
            // Every round starts with an empty store: no round inherits the last one's windows.
            store.reset()?;
        }
        let mut endpoints = setups
            .iter()
            .map(|&setup| Endpoint::start(setup, programs))
            .collect::<anyhow::Result<Vec<_>>>()?;
        for endpoint in &mut endpoints {
            probe(endpoint)?;
        }
        let mut figures = vec![Figures::default(); n];

        let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); n];
        let warmup = if plan.latency_calls > 0 {
            plan.warmup_calls
        } else {
            0
        };
        for i in 0..warmup + plan.latency_calls {
            for &k in &order {
                let k = (k + i) % n;
                let took = endpoints[k].echo_round_trip()?;
                if i >= warmup {
                    samples[k].push(took);
                }
            }
            watchdog.tick();
        }
        for (k, samples) in samples.iter_mut().enumerate() {
            if samples.is_empty() {
                continue;
            }
            samples.sort();
            figures[k].p50 = samples[samples.len() / 2];
            figures[k].p99 = samples[samples.len() * 99 / 100];
        }
        // Throughput runs in bursts that alternate between the set-ups, so a slow stretch of
        // the machine lands on all of them; each set-up's figure is the median of its bursts.
        let mut calls_per_s: Vec<Vec<f64>> = vec![Vec::new(); n];
        // The store's statistics of the pipelined bursts alone tell whether its round trips overlap.
        extras.absorb_store(prepared.valkey.as_ref(), false)?;
        if plan.pipelined_calls > 0 {
            for &k in &order {
                // A short unmeasured warm-up.
                endpoints[k].pipelined(plan.window * 4, plan.window)?;
            }
            for _ in 0..BURSTS {
                for &k in &order {
                    let calls = plan.pipelined_calls / BURSTS;
                    calls_per_s[k].push(endpoints[k].pipelined(calls, plan.window)?);
                    watchdog.tick();
                }
            }
        }
        extras.absorb_store(prepared.valkey.as_ref(), true)?;
        let mut mb_per_s: Vec<Vec<f64>> = vec![Vec::new(); n];
        if plan.large_calls > 0 {
            for &k in &order {
                // A short unmeasured warm-up: every set-up's buffers are grown once.
                endpoints[k].large(plan.large_window, plan.large_window, plan.large_bytes)?;
            }
            // At least `large_burst` results a burst (24 by default, about 0.2 GB): the figure
            // is for a steady stream, not its start. Shorter bursts measure how fast the
            // kernel's scheduler spreads a set-up's busy threads over the CPUs after they were
            // idle, which favours the relay's one thread a direction over the proxy's reader
            // and writer.
            let bursts = (plan.large_calls / plan.large_burst).clamp(1, BURSTS);
            for _ in 0..bursts {
                for &k in &order {
                    let calls = plan.large_calls / bursts;
                    let rate = endpoints[k].large(calls, plan.large_window, plan.large_bytes)?;
                    mb_per_s[k].push(rate);
                    watchdog.tick();
                }
            }
        }
        // One large result at a time, as an agent calls tools: nothing overlaps, so each result
        // pays the whole of the proxy's store-and-forward.
        let mut single: Vec<Vec<f64>> = vec![Vec::new(); n];
        if plan.single_calls > 0 {
            for _ in 0..BURSTS.min(plan.single_calls.max(1)) {
                for &k in &order {
                    let rate = endpoints[k].large(plan.single_calls, 1, plan.large_bytes)?;
                    single[k].push(rate);
                    watchdog.tick();
                }
            }
        }
        if plan.large_calls > 0 || plan.single_calls > 0 {
            for &k in &order {
                figures[k].peak_rss = endpoints[k].peak_rss()?;
            }
        }
        for k in 0..n {
            if !single[k].is_empty() {
                figures[k].single_mb_per_s = median(std::mem::take(&mut single[k]));
            }
            if !calls_per_s[k].is_empty() {
                figures[k].calls_per_s = median(std::mem::take(&mut calls_per_s[k]));
            }
            if !mb_per_s[k].is_empty() {
                figures[k].mb_per_s = median(std::mem::take(&mut mb_per_s[k]));
            }
        }
        for endpoint in endpoints {
            match endpoint.setup {
                Setup::Variant(Variant::Audit) => extras.audit_calls += endpoint.calls(),
                Setup::Variant(Variant::Global) => extras.global_calls += endpoint.echo_calls(),
                _ => {}
            }
            endpoint.finish()?;
        }
        // Read once the set-ups have exited: the audit log is flushed at exit.
        if let Some(log) = &prepared.audit_log {
            let text = std::fs::read(log).unwrap_or_default();
            extras.audit_records += memchr::memchr_iter(b'\n', &text).count() as u64;
            // Each round starts a new log, so a full run does not fill the disk.
            let _ = std::fs::remove_file(log);
        }
        extras.absorb_store(prepared.valkey.as_ref(), false)?;
        if let Some(store) = &prepared.valkey {
            extras.store_ping.push(store.ping_round_trip(1000)?);
        }
        let mut line = format!(
            "round {}/{}: added p50 us, calls/s, MB/s:",
            round + 1,
            plan.rounds
        );
        for (k, setup) in setups.iter().enumerate().skip(RELAY) {
            line.push_str(&format!(
                " {setup} {:.1}, {:.0}, {:.0};",
                added_us(&figures, k),
                figures[k].calls_per_s,
                figures[k].mb_per_s,
            ));
        }
        eprintln!("{}", line.trim_end_matches(';'));
        rounds.push(figures);
    }
    Ok(rounds)
}

/// The machine, as the README records it.
fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, m)| m.trim())
        .to_string();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|k| k.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let rustc = std::process::Command::new(std::env::var("RUSTC").unwrap_or("rustc".into()))
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map_or("rustc unknown".into(), |v| v.trim().to_string());
    format!("machine: {cpus} CPUs, {model}, Linux {kernel}, {rustc}")
}
