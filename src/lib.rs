//! mcp-policy-proxy: a stdio MCP proxy that judges every `tools/call` against TOML rules.
//!
//! The modules follow the data path: the command line, its errors and the operator's
//! subcommands (`cli`, `error`, `commands`); the policy file (`config`); bytes in (`framing`),
//! strict JSON (`json`), message classification (`message`) and the proxy's own JSON-RPC lines
//! (`reply`); the policy decision (`policy`); the session state that ties requests to answers and
//! turns decisions into effects (`session`, where `session/judge.rs` judges a `tools/call`);
//! asking a person (`approval`); and the relay with its pumps, supervisor, child process and the
//! writers of stdout and of the child's stdin (`relay`).

pub mod approval;
pub mod audit;
pub mod cli;
pub mod commands;
pub mod config;
pub mod error;
pub mod framing;
pub mod json;
pub mod logging;
pub mod message;
pub mod os;
pub mod policy;
pub mod relay;
pub mod reload;
pub mod reply;
pub mod session;
pub mod store;

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::cli::{Cli, Command};
use crate::config::Config;
pub use crate::error::{EXIT_CONFIG, EXIT_SPAWN, Error};
use crate::policy::Policy;
use crate::relay::child::ChildCommand;
use crate::session::{Session, Settings};

/// How long the exit waits for the audit log to be written: a disk that hangs must not keep
/// the proxy from exiting.
const AUDIT_FLUSH_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Does what the command line says; the caller prints an error once and exits with its code.
pub fn run(mut cli: Cli) -> Result<ExitCode, Error> {
    match cli.command() {
        Command::ApproveDesktop => Ok(approval::desktop::run_stdio()),
        Command::Schema => Ok(commands::schema::run()),
        Command::Scan { server } => commands::scan::run(&server),
        // `audit verify FILE...`: the chains of the logs (a log named `verify` is `./verify`).
        Command::Audit { files, .. }
            if files.first().is_some_and(|f| f.as_os_str() == "verify") =>
        {
            let verdict = commands::audit::verify::run(&files[1..])?;
            print_report(verdict.report.trim_end());
            Ok(if verdict.whole {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Audit {
            files,
            since,
            session,
            json,
        } => commands::audit::run(&files, since.as_deref(), session.as_deref(), json),
        Command::Check { to_stderr } => {
            let path = cli.config.ok_or(Error::NoPolicy)?;
            let (config, policy) = load(&path)?;
            let report = commands::check::report(&path, &config, &policy);
            if to_stderr {
                eprintln!("{report}");
            } else {
                print_report(&report);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Explain {
            tool,
            arguments,
            json,
            tools,
        } => {
            let path = cli.config.ok_or(Error::NoPolicy)?;
            let (_, policy) = load(&path)?;
            let arguments =
                commands::explain::check_arguments(arguments.as_deref()).map_err(Error::Usage)?;
            let tool_info = match &tools {
                None => None,
                Some(file) => {
                    let text = std::fs::read(file).map_err(|err| {
                        Error::Usage(format!(
                            "cannot read the tools file {}: {err}",
                            file.display()
                        ))
                    })?;
                    Some(
                        commands::explain::tool_info(&text, &tool)
                            .map_err(|why| Error::Usage(format!("{}: {why}", file.display())))?,
                    )
                }
            };
            let explanation = commands::explain::explain(
                &policy,
                &tool,
                arguments.as_deref(),
                tool_info.as_ref(),
            );
            if json {
                print_report(&commands::explain::to_json(&tool, &explanation).to_string());
            } else {
                print_report(commands::explain::text(&tool, &explanation).trim_end());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Test { cases } => {
            let path = cli.config.ok_or(Error::NoPolicy)?;
            let (_, policy) = load(&path)?;
            let text = std::fs::read_to_string(&cases).map_err(|err| {
                Error::Usage(format!(
                    "cannot read the cases file {}: {err}",
                    cases.display()
                ))
            })?;
            let outcome = commands::test::run(&policy, &text)
                .map_err(|why| Error::Usage(format!("{}: {why}", cases.display())))?;
            print_report(outcome.report.trim_end());
            Ok(if outcome.passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Run { command } => {
            let path = cli.config.ok_or(Error::NoPolicy)?;
            let (config, policy) = load(&path)?;
            proxy(&path, config, policy, &command).map(ExitCode::from)
        }
    }
}

/// A subcommand's report on stdout, which is the subcommand's own: no protocol runs then.
fn print_report(report: &str) {
    use std::io::Write as _;
    #[allow(clippy::disallowed_methods)]
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{report}").and_then(|()| stdout.flush());
}

fn load(path: &Path) -> Result<(Config, Policy), Error> {
    let config = Config::load(path)?;
    let policy = Policy::new(&config).context("cannot compile the policy")?;
    Ok((config, policy))
}

/// Starts the server and relays until it exits.
fn proxy(path: &Path, config: Config, policy: Policy, argv: &[OsString]) -> Result<u8, Error> {
    let command = match (argv.split_first(), &config.server) {
        (Some((program, args)), server) => ChildCommand {
            program: program.clone(),
            args: args.to_vec(),
            env: server.as_ref().map(|s| s.env.clone()).unwrap_or_default(),
            cwd: server.as_ref().and_then(|s| s.cwd.clone()),
        },
        (None, Some(server)) => ChildCommand {
            program: server.command.clone().into(),
            args: server.args.iter().map(Into::into).collect(),
            env: server.env.clone(),
            cwd: server.cwd.clone(),
        },
        (None, None) => {
            return Err(Error::NoServer {
                config: path.to_owned(),
            });
        }
    };
    if let Some(dir) = commands::check::within_reach(path, &command.args, command.cwd.as_deref()) {
        tracing::warn!(
            "{}",
            commands::check::reach_warning(path, &dir, config.policy.reload)
        );
    }
    // The audit log's writer starts before the server, so that the first decision is kept.
    let auditor = match &config.audit {
        None => None,
        Some(audit) => {
            let mut audit = audit.clone();
            // A relative path is relative to the configuration file, as an operator writes it.
            if audit.path.is_relative()
                && let Some(dir) = path.parent()
            {
                audit.path = dir.join(&audit.path);
            }
            Some(
                audit::Auditor::start(audit)
                    .context("cannot start the audit log's writer thread")?,
            )
        }
    };
    let settings = Settings {
        audit: auditor.as_ref().map(audit::Auditor::handle),
        violation: config.policy.violation,
        approval: config.approval.clone(),
        server: command.display(),
        session_id: format!("{}-{}", std::process::id(), unix_millis()),
        mode: config.policy.mode,
        pinning: config.pinning.mode,
        pins: load_pins(path, &config)?,
        store_on_error: config
            .store
            .as_ref()
            .map(|s| s.on_error)
            .unwrap_or_default(),
    };
    // One limiter per process, shared by every call; it connects when first asked.
    let fleet = config.store.clone().map(store::FleetLimiter::new);
    let session = Session::with_settings(policy, settings);
    let reloader = reload::Reloader::new(path.to_owned(), config.clone());
    // The messages flow through two pump threads of their own (see `relay`); the runtime only
    // supervises the child, signals, timers and approval commands, so one thread is all it
    // needs.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // The child is spawned inside `block_on`; its tree ends with the process however the
    // process ends (src/os).
    let result = runtime.block_on(relay::run(
        &command,
        session,
        config.limits.max_line_bytes,
        Some(reloader),
        fleet,
    ));
    // The client pump may still be blocked reading stdin; the process exits without it.
    runtime.shutdown_background();
    // Every decision made is on disk before the process exits (SIGTERM included: the relay
    // ends normally once the server has exited).
    if let Some(auditor) = auditor {
        auditor.finish(AUDIT_FLUSH_LIMIT);
    }
    result
}

/// The operator's pin file, if `[pinning] file` names one: a JSON object of tool names to the
/// SHA-256 (hex) of each tool's canonical definition. A file that cannot be read is an error
/// before start, as an invalid configuration is.
fn load_pins(config_path: &Path, config: &Config) -> Result<HashMap<String, String>, Error> {
    let Some(file) = &config.pinning.file else {
        return Ok(HashMap::new());
    };
    // A relative path is relative to the configuration file, as an operator writes it.
    let path = config_path
        .parent()
        .map_or_else(|| file.clone(), |dir| dir.join(file));
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Pins {
        path: path.clone(),
        why: source.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|err| Error::Pins {
        path,
        why: format!(
            "{err}; expected a JSON object of tool names to SHA-256 digests, such as \
             {{\"valkey_write\": \"3f2a...\"}}"
        ),
    })
}

fn unix_millis() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default()
}
