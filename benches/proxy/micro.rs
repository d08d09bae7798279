//! Micro-benchmarks of the proxy's own work, without processes: one policy decision, and
//! forwarding the original bytes after strict validation against parsing into a tree and
//! serializing it again.
//!
//! The harness is deliberately small instead of criterion (heavy to compile on two cores): each
//! sample times a batch of iterations, and the median sample is reported.

use std::hint::black_box;
use std::time::{Duration, Instant};

use mcp_policy_proxy::config::Config;
use mcp_policy_proxy::json;
use mcp_policy_proxy::message::{self, Message};
use mcp_policy_proxy::policy::{Call, DECIDING_CACHE_NAMES, Policy};

/// The median time of one call of `f`, over `samples` batches of `iterations` calls.
pub fn median(samples: usize, iterations: usize, mut f: impl FnMut()) -> Duration {
    // One unmeasured batch warms caches and the branch predictor.
    for _ in 0..iterations {
        f();
    }
    let mut times: Vec<Duration> = (0..samples.max(1))
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iterations {
                f();
            }
            start.elapsed() / iterations as u32
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

/// The tool every generated policy allows, through a glob rule second from the end.
pub const TARGET_TOOL: &str = "bench_target_tool";

/// A policy of `n` rules: exact names and globs of several shapes, mixed actions, some rate
/// limits, default deny. [`TARGET_TOOL`] is decided by rule `n - 1`, a glob; rule `n` names it
/// exactly but is shadowed, so every index structure must be consulted for the worst case.
pub fn generated_policy(n: usize) -> String {
    use std::fmt::Write as _;
    let mut text = String::from("[policy]\ndefault = \"deny\"\n");
    for i in 0..n.saturating_sub(2) {
        let (tool, action) = match i % 5 {
            0 => (format!("svc{i}_read_item"), "allow"),
            1 => (format!("svc{i}_admin_*"), "deny"),
            2 => (format!("team{i}.list"), "allow"),
            3 => (format!("*_{i}_delete"), "require_approval"),
            _ => (format!("{{alpha,beta}}{i}_?_sync"), "allow"),
        };
        let _ = write!(
            text,
            "\n[[rules]]\ntool = \"{tool}\"\naction = \"{action}\"\n"
        );
        if action == "allow" && i % 3 == 0 {
            text.push_str("rate_limit = { max = 1000, window = \"1m\" }\n");
        }
    }
    text.push_str("\n[[rules]]\ntool = \"bench_target_*\"\naction = \"allow\"\n");
    text.push_str("\n[[rules]]\ntool = \"bench_target_tool\"\naction = \"deny\"\n");
    text
}

/// Median time of one `Policy::evaluate` over `rules` rules, twice: for tool names the session
/// has not judged before (the globs run, the worst case), and for [`TARGET_TOOL`] again and again
/// (the session remembers its deciding rule, the common case).
pub fn policy_evaluation(rules: usize, samples: usize, iterations: usize) -> (Duration, Duration) {
    let config = Config::parse(&generated_policy(rules)).expect("the generated policy is valid");
    assert_eq!(config.rules.len(), rules);
    let policy = Policy::new(&config).expect("the generated policy compiles");
    let mut state = policy.new_state();
    let now = Instant::now();
    let decision = policy.evaluate(&Call::named(TARGET_TOOL), &mut state, now);
    assert!(decision.is_allowed(), "{decision:?}");
    // More names than the session remembers, so every one is judged from scratch.
    let names: Vec<String> = (0..4 * DECIDING_CACHE_NAMES)
        .map(|k| format!("bench_target_{k}"))
        .collect();
    let mut next = 0;
    let first_sight = median(samples, iterations, || {
        let name = &names[next % names.len()];
        next += 1;
        let decision = policy.evaluate(&Call::named(black_box(name)), &mut state, now);
        policy.admit(&decision, &mut state, now);
        black_box(decision.is_allowed());
    });
    let repeated = median(samples, iterations, || {
        let decision = policy.evaluate(&Call::named(black_box(TARGET_TOOL)), &mut state, now);
        policy.admit(&decision, &mut state, now);
        black_box(decision.is_allowed());
    });
    (first_sight, repeated)
}

/// A typical `tools/call` line, as a client sends it (without its newline).
pub const TYPICAL_CALL: &[u8] = br#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"valkey_read","arguments":{"command":"HGETALL","args":["user:1234:profile"]},"_meta":{"progressToken":"call-42"}}}"#;

/// A tool result line of `bytes` bytes of text (without its newline).
pub fn result_line(bytes: usize) -> Vec<u8> {
    let mut line =
        br#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":""#.to_vec();
    line.resize(line.len() + bytes, b'x');
    line.extend_from_slice(br#""}],"isError":false}}"#);
    line
}

/// What the proxy does with a line before forwarding its original bytes: strict validation,
/// then classification (and, for a call, reading the tool's name).
pub fn strict(line: &[u8]) {
    let outline = json::validate(line).expect("a valid line");
    match message::classify_outlined(line, &outline).expect("a valid message") {
        Message::Request { name, .. } => {
            black_box(message::tool_name(name));
        }
        other => {
            black_box(other);
        }
    }
}

/// The alternative design: parse into a `serde_json::Value`, read what is needed, and serialize
/// the tree again to forward it.
pub fn tree_round_trip(line: &[u8]) {
    let value: serde_json::Value = serde_json::from_slice(line).expect("a valid line");
    black_box(value.get("method"));
    black_box(value.get("params").and_then(|p| p.get("name")));
    let out = serde_json::to_vec(&value).expect("a Value serializes");
    black_box(out);
}

/// The `arguments` of [`TYPICAL_CALL`], as the proxy hands them to the policy.
pub const TYPICAL_ARGUMENTS: &[u8] = br#"{"command":"HGETALL","args":["user:1234:profile"]}"#;

/// The `arguments` of the end-to-end `echo` calls (see `end_to_end`).
pub const ECHO_ARGUMENTS: &[u8] = br#"{"text":"hello from the benchmark","n":4242}"#;

/// Two rules inserted before the `valkey_read` rule of the standard policy: conditions that read
/// the typical call's arguments and do not hold for it, so both are judged on every call.
const READ_CONDITIONS: &str = r#"[[rules]]
name = "no deletes"
tool = "valkey_read"
action = "deny"
reason = "deleting keys needs an operator"
when = [ { arg = "command", in = ["DEL", "UNLINK", "FLUSHDB", "FLUSHALL"], ignore_case = true } ]

[[rules]]
name = "no production keys"
tool = "valkey_read"
action = "deny"
reason = "production keys are off limits"
when = [ { arg = "args[*]", glob = "prod:*", ignore_case = true } ]

"#;

/// The standard policy with [`READ_CONDITIONS`] before its `valkey_read` rule.
pub fn policy_with_read_conditions() -> String {
    const READ_RULE: &str = "[[rules]]\ntool = \"valkey_read\"\n";
    let standard = crate::policy_text();
    assert_eq!(
        standard.matches(READ_RULE).count(),
        1,
        "policy.toml changed"
    );
    standard.replace(READ_RULE, &format!("{READ_CONDITIONS}{READ_RULE}"))
}

/// Median time of one `Policy::evaluate` (and `admit`) of a call of `tool` with `arguments` under
/// `policy_text`, for a tool the session has judged before (the common case). The call must be
/// allowed.
pub fn decision_with_arguments(
    policy_text: &str,
    tool: &str,
    arguments: &[u8],
    samples: usize,
    iterations: usize,
) -> Duration {
    let config = Config::parse(policy_text).expect("the policy is valid");
    let policy = Policy::new(&config).expect("the policy compiles");
    let mut state = policy.new_state();
    let now = Instant::now();
    let call = |arguments| Call {
        tool,
        arguments: Some(arguments),
        tool_info: None,
    };
    let decision = policy.evaluate(&call(arguments), &mut state, now);
    assert!(decision.is_allowed(), "{tool} {arguments:?}: {decision:?}");
    median(samples, iterations, || {
        let decision = policy.evaluate(&call(black_box(arguments)), &mut state, now);
        policy.admit(&decision, &mut state, now);
        black_box(decision.is_allowed());
    })
}
