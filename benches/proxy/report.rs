//! The report: the end-to-end figures of every set-up with their ratios to the relay and the
//! targets, what the policy variants cost next to the standard proxy, and the micro-benchmarks.

use std::time::Duration;

use crate::end_to_end::Setup;
use crate::variants::{self, Variant};
use crate::{BASELINE_ENV, Extras, Figures, MIB, Plan, SMOKE, micro};

const DIRECT: usize = 0;
pub const RELAY: usize = 1;
const PROXY: usize = 2;

/// p50 latency a set-up adds over the direct one, in microseconds.
pub fn added_us(figures: &[Figures], k: usize) -> f64 {
    us(figures[k].p50) - us(figures[DIRECT].p50)
}

/// p99 latency a set-up adds over the direct one, in microseconds.
fn added_p99_us(figures: &[Figures], k: usize) -> f64 {
    us(figures[k].p99) - us(figures[DIRECT].p99)
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

pub fn median(mut values: Vec<f64>) -> f64 {
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

/// One row of the end-to-end table: its label, the figure, and its decimals.
type Row = (String, fn(&Figures) -> f64, usize);

pub fn report_end_to_end(plan: Plan, rounds: &[Vec<Figures>], setups: &[Setup], extras: &Extras) {
    let largest = plan.large_bytes as f64 / MIB as f64;
    // The proxy builds and policies, each judged against the relay: the proxy, the baseline and
    // the variants.
    let builds: Vec<usize> = (PROXY..setups.len()).collect();
    println!(
        "end to end, median of {} round(s); fast fixture server over pipes; the proxy runs a 50-rule policy",
        rounds.len()
    );
    if setups.contains(&Setup::Baseline) {
        println!("baseline: the build in ${BASELINE_ENV}, measured in the same rounds");
    }
    for setup in setups {
        if let Setup::Variant(variant) = setup {
            println!(
                "policy variant {:<10} this proxy with {}",
                variant.name(),
                variant.describe()
            );
        }
    }
    for (variant, why) in &extras.skipped {
        println!("policy variant {:<10} SKIPPED: {why}", variant.name());
    }
    let rows: Vec<Row> = vec![
        (
            format!(
                "latency p50, sequential calls (us) [{}]",
                plan.latency_calls
            ),
            |f| us(f.p50),
            1,
        ),
        ("latency p99 (us)".into(), |f| us(f.p99), 1),
        (
            format!("pipelined calls/s, {} in flight", plan.window),
            |f| f.calls_per_s,
            0,
        ),
        (
            format!(
                "{largest:.2} MiB results, MB/s ({} in flight)",
                plan.large_window
            ),
            |f| f.mb_per_s,
            0,
        ),
        (
            format!("{largest:.2} MiB results, MB/s (one at a time)"),
            |f| f.single_mb_per_s,
            0,
        ),
        (
            "peak RSS (MiB, VmHWM; direct: the server)".into(),
            |f| f.peak_rss as f64 / MIB as f64,
            1,
        ),
    ];
    // With up to four set-ups the ratios to the relay follow the figures on each line; with
    // more, they get a table of their own.
    let inline_ratios = setups.len() <= 4;
    let ratio_header = |k: usize| format!("{} / relay", setups[k].name());
    let mut header = format!("{:<44}", "");
    for setup in setups {
        header.push_str(&format!(" {:>10}", setup.name()));
    }
    if inline_ratios {
        for &k in &builds {
            let name = ratio_header(k);
            header.push_str(&format!(" {name:>w$}", w = name.len() + 1));
        }
    }
    println!("{header}");
    for (label, f, digits) in &rows {
        let mut line = format!("{label:<44}");
        for k in 0..setups.len() {
            let (m, _, _) = over_rounds(rounds, |r| f(&r[k]));
            line.push_str(&format!(" {m:>10.digits$}"));
        }
        if inline_ratios {
            for &k in &builds {
                let (ratio, _, _) = over_rounds(rounds, |r| f(&r[k]) / f(&r[RELAY]));
                line.push_str(&format!(" {ratio:>w$.2}", w = ratio_header(k).len() + 1));
            }
        }
        println!("{line}");
    }
    if !inline_ratios {
        println!();
        let mut header = format!("{:<44}", "ratio to the relay, within each round");
        for &k in &builds {
            header.push_str(&format!(" {:>10}", setups[k].name()));
        }
        println!("{header}");
        for (label, f, _) in &rows {
            let mut line = format!("{label:<44}");
            for &k in &builds {
                let (ratio, _, _) = over_rounds(rounds, |r| f(&r[k]) / f(&r[RELAY]));
                line.push_str(&format!(" {ratio:>10.2}"));
            }
            println!("{line}");
        }
    }

    println!();
    if plan.rounds == SMOKE.rounds && plan.large_bytes == SMOKE.large_bytes {
        println!("targets: not judged in a smoke test (debug build, tiny counts)");
    } else {
        println!("targets (ratios taken within each round; median [min - max] over rounds):");
        for &k in &builds {
            report_targets(plan, rounds, setups, k);
        }
    }
    report_variants(plan, rounds, setups, extras);
}

/// The targets of one proxy set-up, as ratios to the relay.
fn report_targets(plan: Plan, rounds: &[Vec<Figures>], setups: &[Setup], k: usize) {
    let largest = plan.large_bytes as f64 / MIB as f64;
    let name = setups[k].name();
    // Under the global variant every echo call waits for the store: a round trip over loopback
    // the relay never makes, so its echo figures are reported (below) rather than judged.
    let judged = setups[k] != Setup::Variant(Variant::Global);
    let (relay_added, _, _) = over_rounds(rounds, |r| added_us(r, RELAY));
    let (added, _, _) = over_rounds(rounds, |r| added_us(r, k));
    let echo_target = |label: &str, ratio, op, limit| {
        if judged {
            target(label, ratio, op, limit);
        } else {
            let (m, lo, hi) = ratio;
            println!(
                "  {label:<66} {m:>7.2} [{lo:.2} - {hi:.2}] (reported: each call waits for the store)"
            );
        }
    };
    echo_target(
        &format!(
            "added p50 latency: relay {relay_added:.1} us, {name} {added:.1} us; {name} / relay"
        ),
        over_rounds(rounds, |r| added_us(r, k) / added_us(r, RELAY)),
        "<=",
        1.25,
    );
    echo_target(
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
        let (m, lo, hi) = over_rounds(rounds, |r| r[k].single_mb_per_s / r[RELAY].single_mb_per_s);
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

/// What each policy variant costs next to the standard proxy in the same rounds, and what the
/// audit log and the store did.
fn report_variants(plan: Plan, rounds: &[Vec<Figures>], setups: &[Setup], extras: &Extras) {
    let variants: Vec<(usize, Variant)> = setups
        .iter()
        .enumerate()
        .filter_map(|(k, s)| match s {
            Setup::Variant(v) => Some((k, *v)),
            _ => None,
        })
        .collect();
    if variants.is_empty() {
        return;
    }
    println!();
    println!(
        "policy variants against the standard proxy, same rounds (variant / proxy; median [min - max]; 1.00 = no cost):"
    );
    let range = |(m, lo, hi): (f64, f64, f64)| format!("{m:.2} [{lo:.2} - {hi:.2}]");
    for &(k, variant) in &variants {
        let mut parts = Vec::new();
        if plan.latency_calls > 0 {
            parts.push(format!(
                "added p50 {}",
                range(over_rounds(rounds, |r| added_us(r, k) / added_us(r, PROXY)))
            ));
        }
        if plan.pipelined_calls > 0 {
            parts.push(format!(
                "calls/s {}",
                range(over_rounds(rounds, |r| r[k].calls_per_s / r[PROXY].calls_per_s))
            ));
        }
        if plan.large_calls > 0 {
            parts.push(format!(
                "large MB/s {}",
                range(over_rounds(rounds, |r| r[k].mb_per_s / r[PROXY].mb_per_s))
            ));
        }
        if plan.single_calls > 0 {
            parts.push(format!(
                "one at a time {}",
                range(over_rounds(rounds, |r| r[k].single_mb_per_s / r[PROXY].single_mb_per_s))
            ));
        }
        println!("  {:<10} {}", variant.name(), parts.join("; "));
    }
    for &(k, variant) in &variants {
        match variant {
            Variant::Approval => println!(
                "  approval: each round, a call of a require_approval tool was refused first (no channel approved it)"
            ),
            Variant::Conditions => println!(
                "  conditions: each round, an echo call meeting a condition was refused first; the measured calls meet none"
            ),
            Variant::Audit => {
                let (records, calls) = (extras.audit_records, extras.audit_calls);
                let note = if records == 0 {
                    " (NOTHING written: does this build write the audit log?)"
                } else if records == calls {
                    " (one a call)"
                } else {
                    ""
                };
                println!(
                    "  audit: {records} audit records written for {calls} tools/call requests, all rounds{note}"
                );
            }
            Variant::Global => report_global(plan, rounds, k, extras),
        }
    }
}

/// The fleet-wide limit: the latency one globally limited call adds, and whether the store's
/// round trips overlap when calls are pipelined.
fn report_global(plan: Plan, rounds: &[Vec<Figures>], k: usize, extras: &Extras) {
    let range = |(m, lo, hi): (f64, f64, f64)| format!("{m:.2} [{lo:.2} - {hi:.2}]");
    let abs = |f: &dyn Fn(&[Figures]) -> f64| over_rounds(rounds, f).0;
    println!(
        "  global: the echo rule's limit is kept in valkey-server at {} ([store] timeout = \"200ms\")",
        extras.store.as_deref().unwrap_or("?")
    );
    if plan.latency_calls > 0 {
        println!(
            "    one globally limited call, sequential: p50 {:.1} us, p99 {:.1} us; added over direct p50 {:.1} us, p99 {:.1} us",
            abs(&|r| us(r[k].p50)),
            abs(&|r| us(r[k].p99)),
            abs(&|r| added_us(r, k)),
            abs(&|r| added_p99_us(r, k)),
        );
        println!(
            "      (relay adds p50 {:.1} us, p99 {:.1} us; the proxy without a global rule p50 {:.1} us, p99 {:.1} us)",
            abs(&|r| added_us(r, RELAY)),
            abs(&|r| added_p99_us(r, RELAY)),
            abs(&|r| added_us(r, PROXY)),
            abs(&|r| added_p99_us(r, PROXY)),
        );
        println!(
            "    global / relay: added p50 latency {}; p99 latency {}",
            range(over_rounds(rounds, |r| added_us(r, k) / added_us(r, RELAY))),
            range(over_rounds(rounds, |r| r[k].p99.as_secs_f64()
                / r[RELAY].p99.as_secs_f64())),
        );
        println!(
            "    the store's share of one call (global p50 - proxy p50): {:.1} us",
            abs(&|r| us(r[k].p50) - us(r[PROXY].p50)),
        );
    }
    if plan.pipelined_calls > 0 {
        let calls = abs(&|r| r[k].calls_per_s);
        println!(
            "    pipelined globally limited calls, {} in flight: {calls:.0} calls/s (relay {:.0}, proxy {:.0}); global / relay {}, global / proxy {}",
            plan.window,
            abs(&|r| r[RELAY].calls_per_s),
            abs(&|r| r[PROXY].calls_per_s),
            range(over_rounds(rounds, |r| r[k].calls_per_s / r[RELAY].calls_per_s)),
            range(over_rounds(rounds, |r| r[k].calls_per_s / r[PROXY].calls_per_s)),
        );
        let (scripts, reads) = (extras.pipelined_scripts, extras.pipelined_reads);
        println!(
            "    overlap: in the pipelined bursts {reads} reads of the store held {scripts} decisions, {:.2} a read ({})",
            scripts as f64 / reads.max(1) as f64,
            if scripts > reads {
                "several decisions were in flight at once; one round trip at a time gives at most 1"
            } else {
                "NO evidence of decisions in flight together: one round trip at a time gives at most 1"
            }
        );
        if plan.latency_calls > 0 {
            let share = abs(&|r| us(r[k].p50) - us(r[PROXY].p50));
            println!(
                "      {calls:.0} calls/s x {share:.1} us (the store's share of a sequential call) = {:.1} decisions in flight on average",
                calls * share / 1e6
            );
        }
    }
    let (scripts, usec) = extras.store_scripts;
    if !extras.store_ping.is_empty() && scripts > 0 {
        println!(
            "    inside the store: {:.1} us a decision (its script, INFO commandstats); a PING round trip from the benchmark {:.1} us",
            usec as f64 / scripts as f64,
            us(median_duration(&extras.store_ping)),
        );
    }
    let commands: Vec<String> = extras
        .store_commands
        .iter()
        .map(|(name, calls)| format!("{name} {calls}"))
        .collect();
    println!(
        "    the store ran {scripts} scripts for {} echo calls of the global set-up, all rounds (commands: {})",
        extras.global_calls,
        if commands.is_empty() {
            "none".to_owned()
        } else {
            commands.join(", ")
        }
    );
}

fn median_duration(values: &[Duration]) -> Duration {
    let mut values = values.to_vec();
    values.sort();
    values[values.len() / 2]
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

pub fn report_micro(plan: Plan) {
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
    report_condition_cost(plan);
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

/// What a condition costs one decision: `Policy::evaluate` of a call with its arguments, with
/// and without rules whose conditions read them (and do not hold, so the call is allowed).
fn report_condition_cost(plan: Plan) {
    let (samples, iterations) = (plan.micro_samples, plan.micro_iterations);
    let ns = |d: Duration| d.as_secs_f64() * 1e9;
    let standard = crate::policy_text();
    println!(
        "argument conditions (Policy::evaluate of a call with its arguments, a tool judged before; median of {samples} samples), per decision:"
    );
    let read = |text: &str| {
        ns(micro::decision_with_arguments(
            text,
            "valkey_read",
            micro::TYPICAL_ARGUMENTS,
            samples,
            iterations,
        ))
    };
    let plain = read(standard);
    let with = read(&micro::policy_with_read_conditions());
    println!(
        "  valkey_read {}",
        String::from_utf8_lossy(micro::TYPICAL_ARGUMENTS)
    );
    println!("    {:<62} {plain:>7.0} ns", "the 50-rule policy as it is");
    println!(
        "    {:<62} {with:>7.0} ns (+{:.0} ns, +{:.0} ns a condition)",
        "+ 2 rules whose conditions read the arguments, neither holding",
        with - plain,
        (with - plain) / 2.0
    );
    println!(
        "      (command in [DEL, UNLINK, FLUSHDB, FLUSHALL] ignore_case; args[*] glob \"prod:*\" ignore_case)"
    );
    let echo = |text: &str| {
        ns(micro::decision_with_arguments(
            text,
            "echo",
            micro::ECHO_ARGUMENTS,
            samples,
            iterations,
        ))
    };
    let plain = echo(standard);
    let with = echo(variants::conditions_policy_text());
    println!(
        "  echo {} (the end-to-end call)",
        String::from_utf8_lossy(micro::ECHO_ARGUMENTS)
    );
    println!("    {:<62} {plain:>7.0} ns", "the 50-rule policy as it is");
    println!(
        "    {:<62} {with:>7.0} ns (+{:.0} ns)",
        "the conditions variant's (6 tests in 4 rules read the arguments)",
        with - plain
    );
}
