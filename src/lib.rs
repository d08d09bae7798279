//! mcp-policy-proxy: a stdio MCP proxy that judges every `tools/call` against TOML rules.
//!
//! The modules follow the data path: the command line and config (`cli`, `config`), bytes in
//! (`framing`), strict JSON (`json`), message classification (`message`), the policy decision
//! (`policy`, `rate_limit`), the proxy's own answers (`refusal`), the session state that ties
//! requests to answers (`session`), and the relay with its child process, its blocking pipe ends
//! and the one writer of stdout (`relay`, `child`, `pipe`, `output`).

pub mod child;
pub mod cli;
pub mod config;
pub mod framing;
pub mod json;
pub mod message;
pub mod output;
pub mod pipe;
pub mod policy;
pub mod rate_limit;
pub mod refusal;
pub mod relay;
pub mod session;

use std::process::ExitCode;

use anyhow::Context as _;
use tracing_subscriber::EnvFilter;

use crate::child::ChildCommand;
use crate::cli::Cli;
use crate::config::{Config, ConfigError};
use crate::policy::Policy;
use crate::session::Session;

/// Exit status for a configuration or usage problem: the server was not started.
pub const EXIT_CONFIG: u8 = 2;
/// Exit status when the server's command cannot be started (as a shell reports it).
pub const EXIT_SPAWN: u8 = 127;

/// Sends logs to stderr: `--log-level`, else RUST_LOG, else "info".
pub fn init_logging(level: Option<&str>) {
    let filter = match level {
        Some(level) => EnvFilter::try_new(level),
        None => EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new("info")),
    }
    .unwrap_or_else(|err| {
        eprintln!("mcp-policy-proxy: invalid log level ({err}); using \"info\"");
        EnvFilter::new("info")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

/// Loads the policy, starts the server and relays until it exits.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let Some(path) = cli.config else {
        eprintln!(
            "mcp-policy-proxy: no policy given: pass --config PATH or set MCP_POLICY_PROXY_CONFIG \
             (the proxy never starts a server without a policy)"
        );
        return Ok(ExitCode::from(EXIT_CONFIG));
    };
    let config = match Config::load(&path) {
        Ok(config) => config,
        Err(err @ ConfigError::Invalid { .. }) => {
            eprintln!("mcp-policy-proxy: {err}");
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
        Err(err) => {
            eprintln!("mcp-policy-proxy: {:#}", anyhow::Error::from(err));
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    let policy = Policy::new(&config).context("cannot compile the policy")?;
    if cli.check {
        eprintln!("{}", describe_policy(&path, &config, &policy));
        return Ok(ExitCode::SUCCESS);
    }

    let command = match (cli.command.split_first(), &config.server) {
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
            eprintln!(
                "mcp-policy-proxy: no MCP server to run: give its command after the options \
                 (mcp-policy-proxy --config {} -- uvx awslabs.valkey-mcp-server@latest) or in \
                 the config's [server] table",
                path.display()
            );
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };

    let session = Session::new(policy, config.policy.violation);
    // The messages flow through two pump threads of their own (see `relay`); the runtime only
    // supervises the child, signals and timers, so one thread is all it needs.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // The child is spawned inside `block_on`, on this (the main) thread, which lives as long as
    // the process: the parent-death signal is tied to the thread that forked.
    let result = runtime.block_on(relay::run(&command, session, config.limits.max_line_bytes));
    // The client pump may still be blocked reading stdin; the process exits without it.
    runtime.shutdown_background();
    match result {
        Ok(code) => Ok(ExitCode::from(code)),
        Err(err) if is_spawn_error(&err) => {
            eprintln!("mcp-policy-proxy: error: {err:#}");
            Ok(ExitCode::from(EXIT_SPAWN))
        }
        Err(err) => Err(err),
    }
}

fn is_spawn_error(err: &anyhow::Error) -> bool {
    err.to_string().starts_with("cannot start the MCP server")
}

/// What `--check` prints: each rule and the default, as the proxy reads them.
fn describe_policy(path: &std::path::Path, config: &Config, policy: &Policy) -> String {
    use std::fmt::Write as _;
    let mut text = format!("{}: valid\n", path.display());
    for rule in policy.rules() {
        let _ = write!(
            text,
            "  rule {}: tool {:?} -> {}",
            rule.number,
            rule.pattern,
            rule.action.as_str()
        );
        if let Some(limit) = &rule.rate_limit {
            let _ = write!(text, ", at most {} per {:?}", limit.max, limit.window);
        }
        if rule.hide {
            text.push_str(", hidden from tools/list");
        }
        if let Some(reason) = &rule.reason {
            let _ = write!(text, " ({reason})");
        }
        text.push('\n');
    }
    let _ = write!(
        text,
        "  any other tool -> {}",
        match config.policy.default {
            config::DefaultAction::Allow => "allow",
            config::DefaultAction::Deny => "deny",
        }
    );
    if let Some(server) = &config.server {
        let _ = write!(
            text,
            "\n  server: {} {}",
            server.command,
            server.args.join(" ")
        );
    }
    text
}
