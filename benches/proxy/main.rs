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

// The report is the benchmark's output; stdout is not a protocol channel here.
#![allow(clippy::print_stdout)]

mod byte_relay;
mod end_to_end;
mod micro;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;

use end_to_end::{Endpoint, Programs, Setup, Watchdog};

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
    // For profiling some parts: `--only latency,pipelined,large,single,micro` (any of them), `--rounds N`,
    // `--large-calls N` (per round and set-up), `--large-burst N` (the fewest results a burst).
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
    match run(plan) {
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

fn run(plan: Plan) -> anyhow::Result<()> {
    println!("mcp-policy-proxy benchmark, {} mode", plan.name);
    println!("{}", machine());
    println!();

    let dir = std::env::temp_dir().join(format!("mcp-policy-proxy-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).context("cannot create a temporary directory")?;
    let programs = Programs {
        fixture: PathBuf::from(env!("CARGO_BIN_EXE_mcp-fixture-server")),
        // Another build of the proxy can be measured in its place, for a before/after.
        proxy: std::env::var_os(PROXY_ENV).map_or_else(
            || env!("CARGO_BIN_EXE_mcp-policy-proxy").into(),
            PathBuf::from,
        ),
        baseline: std::env::var_os(BASELINE_ENV).map(PathBuf::from),
        relay: std::env::current_exe().context("cannot find the bench executable")?,
        policy: end_to_end::write_policy(&dir)?,
    };
    let mut setups = vec![Setup::Direct, Setup::Relay, Setup::Proxy];
    if programs.baseline.is_some() {
        setups.push(Setup::Baseline);
    }
    let result = end_to_end(plan, &programs, &setups);
    let _ = std::fs::remove_dir_all(&dir);
    let rounds = result?;
    if !rounds.is_empty() {
        report_end_to_end(plan, &rounds, &setups);
        println!();
    }
    if plan.micro_samples > 0 {
        report_micro(plan);
    }
    Ok(())
}

fn end_to_end(
    plan: Plan,
    programs: &Programs,
    setups: &[Setup],
) -> anyhow::Result<Vec<Vec<Figures>>> {
    let n = setups.len();
    let watchdog = Watchdog::start();
    let mut rounds = Vec::new();
    for round in 0..plan.rounds {
        // The order rotates, so no set-up is always first (or last) after a pause.
        let order: Vec<usize> = (0..n).map(|k| (k + round) % n).collect();
        let mut endpoints = setups
            .iter()
            .map(|&setup| Endpoint::start(setup, programs))
            .collect::<anyhow::Result<Vec<_>>>()?;
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
            endpoint.finish()?;
        }
        eprintln!(
            "round {}/{}: added p50 latency relay {:.1} us, proxy {:.1} us; calls/s relay {:.0}, proxy {:.0}; MB/s relay {:.0}, proxy {:.0}",
            round + 1,
            plan.rounds,
            added_us(&figures, RELAY),
            added_us(&figures, PROXY),
            figures[RELAY].calls_per_s,
            figures[PROXY].calls_per_s,
            figures[RELAY].mb_per_s,
            figures[PROXY].mb_per_s,
        );
        rounds.push(figures);
    }
    Ok(rounds)
}

const DIRECT: usize = 0;
const RELAY: usize = 1;
const PROXY: usize = 2;
const BASELINE: usize = 3;

/// p50 latency a set-up adds over the direct one, in microseconds.
fn added_us(figures: &[Figures], k: usize) -> f64 {
    us(figures[k].p50) - us(figures[DIRECT].p50)
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The median over rounds of `f`, and its range.
fn over_rounds(rounds: &[Vec<Figures>], f: impl Fn(&[Figures]) -> f64) -> (f64, f64, f64) {
    let values: Vec<f64> = rounds.iter().map(|r| f(r)).collect();
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (median(values), min, max)
}

fn report_end_to_end(plan: Plan, rounds: &[Vec<Figures>], setups: &[Setup]) {
    let largest = plan.large_bytes as f64 / MIB as f64;
    let baseline = setups.len() > BASELINE;
    println!(
        "end to end, median of {} round(s); fast fixture server over pipes; the proxy runs a 50-rule policy",
        rounds.len()
    );
    if baseline {
        println!("baseline: the build in ${BASELINE_ENV}, measured in the same rounds");
    }
    let mut header = format!("{:<44}", "");
    for setup in setups {
        header.push_str(&format!(" {:>10}", setup.name()));
    }
    header.push_str(&format!(" {:>14}", "proxy / relay"));
    if baseline {
        header.push_str(&format!(" {:>17}", "baseline / relay"));
    }
    println!("{header}");
    let row = |label: &str, f: &dyn Fn(&Figures) -> f64, digits: usize| {
        let mut line = format!("{label:<44}");
        for k in 0..setups.len() {
            let (m, _, _) = over_rounds(rounds, |r| f(&r[k]));
            line.push_str(&format!(" {m:>10.digits$}"));
        }
        let (ratio, _, _) = over_rounds(rounds, |r| f(&r[PROXY]) / f(&r[RELAY]));
        line.push_str(&format!(" {ratio:>14.2}"));
        if baseline {
            let (ratio, _, _) = over_rounds(rounds, |r| f(&r[BASELINE]) / f(&r[RELAY]));
            line.push_str(&format!(" {ratio:>17.2}"));
        }
        println!("{line}");
    };
    row(
        &format!(
            "latency p50, sequential calls (us) [{}]",
            plan.latency_calls
        ),
        &|f| us(f.p50),
        1,
    );
    row("latency p99 (us)", &|f| us(f.p99), 1);
    row(
        &format!("pipelined calls/s, {} in flight", plan.window),
        &|f| f.calls_per_s,
        0,
    );
    row(
        &format!(
            "{largest:.2} MiB results, MB/s ({} in flight)",
            plan.large_window
        ),
        &|f| f.mb_per_s,
        0,
    );
    row(
        &format!("{largest:.2} MiB results, MB/s (one at a time)"),
        &|f| f.single_mb_per_s,
        0,
    );
    row(
        "peak RSS (MiB, VmHWM; direct: the server)",
        &|f| f.peak_rss as f64 / MIB as f64,
        1,
    );

    println!();
    if plan.rounds == SMOKE.rounds && plan.large_bytes == SMOKE.large_bytes {
        println!("targets: not judged in a smoke test (debug build, tiny counts)");
        return;
    }
    println!("targets (ratios taken within each round; median [min - max] over rounds):");
    let builds: &[(usize, &str)] = if baseline {
        &[(PROXY, "proxy"), (BASELINE, "baseline")]
    } else {
        &[(PROXY, "proxy")]
    };
    for &(k, name) in builds {
        let (relay_added, _, _) = over_rounds(rounds, |r| added_us(r, RELAY));
        let (added, _, _) = over_rounds(rounds, |r| added_us(r, k));
        target(
            &format!(
                "added p50 latency: relay {relay_added:.1} us, {name} {added:.1} us; {name} / relay"
            ),
            over_rounds(rounds, |r| added_us(r, k) / added_us(r, RELAY)),
            "<=",
            1.25,
        );
        target(
            &format!("pipelined calls/s, {name} / relay"),
            over_rounds(rounds, |r| r[k].calls_per_s / r[RELAY].calls_per_s),
            ">=",
            0.9,
        );
        target(
            &format!("large results MB/s, {name} / relay"),
            over_rounds(rounds, |r| r[k].mb_per_s / r[RELAY].mb_per_s),
            ">=",
            0.9,
        );
        if plan.single_calls > 0 {
            let (m, lo, hi) =
                over_rounds(rounds, |r| r[k].single_mb_per_s / r[RELAY].single_mb_per_s);
            println!(
                "  {:<66} {m:>7.2} [{lo:.2} - {hi:.2}] (reported; see the README on store-and-forward)",
                format!("large results one at a time, {name} / relay")
            );
        }
        // The largest message is the `big` answer line: its text plus about 90 bytes of envelope.
        let budget = 3.0 * largest + 16.0;
        let worst_rss = rounds
            .iter()
            .map(|r| r[k].peak_rss as f64 / MIB as f64)
            .fold(0.0, f64::max);
        println!(
            "  {:<66} {:>7.1} MiB (target <= 3 x {largest:.0} MiB + 16 MiB = {budget:.0} MiB: {})",
            format!("{name} peak RSS, worst round"),
            worst_rss,
            verdict(worst_rss <= budget)
        );
    }
}

fn target(label: &str, (median, min, max): (f64, f64, f64), op: &str, limit: f64) {
    let met = if op == "<=" {
        median <= limit
    } else {
        median >= limit
    };
    println!(
        "  {label:<66} {median:>7.2} [{min:.2} - {max:.2}] (target {op} {limit}: {})",
        verdict(met)
    );
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

fn report_micro(plan: Plan) {
    let samples = plan.micro_samples;
    let iterations = plan.micro_iterations;
    println!(
        "policy evaluation alone (Policy::evaluate, median of {samples} samples; the deciding rule is a glob second from the end):"
    );
    for rules in [10, 100, 1000] {
        let (first_sight, repeated) = micro::policy_evaluation(rules, samples, iterations);
        let ns = first_sight.as_secs_f64() * 1e9;
        let note = if rules == 1000 {
            format!(" (target <= 2000 ns: {})", verdict(ns <= 2000.0))
        } else {
            String::new()
        };
        println!(
            "  {rules:>5} rules: {ns:>8.0} ns per decision for a new tool name, {:>5.0} ns for one already judged{note}",
            repeated.as_secs_f64() * 1e9
        );
    }
    println!();
    println!(
        "forwarding the original bytes after strict validation vs. parsing into serde_json::Value and re-serializing:"
    );
    let call = micro::TYPICAL_CALL;
    let strict = micro::median(samples, iterations, || micro::strict(call));
    let tree = micro::median(samples, iterations, || micro::tree_round_trip(call));
    println!(
        "  typical tools/call line ({} bytes): strict {:.0} ns, serde_json round trip {:.0} ns ({:.1}x)",
        call.len(),
        strict.as_secs_f64() * 1e9,
        tree.as_secs_f64() * 1e9,
        tree.as_secs_f64() / strict.as_secs_f64()
    );
    let line = micro::result_line(plan.large_bytes);
    let large_samples = (samples / 5).max(3);
    let strict = micro::median(large_samples, 1, || micro::strict(&line));
    let tree = micro::median(large_samples, 1, || micro::tree_round_trip(&line));
    let mbps = |d: Duration| line.len() as f64 / 1e6 / d.as_secs_f64();
    println!(
        "  {:.2} MiB result line: strict {:.2} ms ({:.0} MB/s), serde_json round trip {:.2} ms ({:.0} MB/s) ({:.1}x)",
        line.len() as f64 / MIB as f64,
        strict.as_secs_f64() * 1e3,
        mbps(strict),
        tree.as_secs_f64() * 1e3,
        mbps(tree),
        tree.as_secs_f64() / strict.as_secs_f64()
    );
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
