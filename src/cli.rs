//! The command line, and how it becomes what to run.
//!
//! Without a subcommand the proxy runs: `mcp-policy-proxy --config policy.toml -- uvx
//! awslabs.valkey-mcp-server@latest`. The words of the subcommands are reserved as the first
//! argument; a server program that happens to share one is still runnable after `--`
//! (`mcp-policy-proxy --config p.toml -- check`), since nothing after `--` is read as ours.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// A stdio MCP proxy that judges every tools/call against TOML rules before the server sees it.
///
/// Put it in place of an MCP server's command: `mcp-policy-proxy --config policy.toml -- uvx
/// awslabs.valkey-mcp-server@latest`. The `--` is optional: the first argument that is not an
/// option (nor a subcommand) starts the server's command, and everything after it belongs to the
/// server.
#[derive(Debug, Parser)]
// `--version` names the commit too where the build knew it (build.rs).
#[command(
    name = "mcp-policy-proxy",
    version = env!("MCP_POLICY_PROXY_VERSION"),
    subcommand_negates_reqs = true
)]
pub struct Cli {
    /// The policy file (TOML). Without one the proxy refuses to start.
    #[arg(
        short = 'c',
        long,
        visible_alias = "policy",
        env = "MCP_POLICY_PROXY_CONFIG",
        value_name = "PATH",
        global = true
    )]
    pub config: Option<PathBuf>,

    /// How much the proxy logs to stderr: error, warn, info, debug or trace, or a tracing filter
    /// such as "mcp_policy_proxy=debug". Without it, RUST_LOG is used, else "info".
    #[arg(long, value_name = "LEVEL", global = true)]
    pub log_level: Option<String>,

    /// The same as the `check` subcommand (kept for scripts written before it).
    #[arg(long)]
    pub check: bool,

    #[command(subcommand)]
    pub subcommand: Option<Sub>,

    /// The MCP server's command and its arguments. Overrides `[server]` in the config.
    #[arg(trailing_var_arg = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

#[derive(Debug, Subcommand)]
pub enum Sub {
    /// Run the proxy (the default): start the server and judge every tools/call.
    Run {
        /// The MCP server's command and its arguments. Overrides `[server]` in the config.
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "COMMAND"
        )]
        command: Vec<OsString>,
    },
    /// Check the configuration and print what it decides, without starting the server (exit
    /// status 0 when valid, 2 when not).
    Check,
    /// Show which rule decides a call and why each earlier rule passed it over.
    Explain {
        /// The tool's name.
        tool: String,
        /// The call's arguments as a JSON object, e.g. '{"command":"DEL","args":["k"]}'.
        arguments: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// A `tools/list` result saved from the server (`{"tools": [...]}`, or the array):
        /// the tool's inputSchema and annotations are judged as in a session. Without it the
        /// call is judged as if the server had listed no tools.
        #[arg(long, value_name = "FILE")]
        tools: Option<PathBuf>,
    },
    /// Run policy tests: each [[case]] of CASES (TOML) names a tool, its arguments and the
    /// decision expected; exit status 1 when a case fails.
    Test {
        /// The cases file.
        cases: PathBuf,
    },
    /// An approval command that asks the person at this screen in a native dialog: use it as
    /// `[approval] command = ["mcp-policy-proxy", "approve-desktop"]`. Reads the call as JSON on
    /// stdin; exit status 0 approves.
    ApproveDesktop,
    /// Print the JSON Schema (draft 2020-12) of the policy file. Editors use it: with Taplo or
    /// Even Better TOML, put `#:schema ./schema/mcp-policy-proxy.schema.json` on the policy's
    /// first line.
    Schema,
    /// Start an MCP server, read its tools (either protocol era) and print a commented starter
    /// policy that `check` accepts: every tool, grouped by class, with its description and a
    /// suggested action. Exit status 1 when the server cannot be scanned.
    Scan {
        /// The MCP server to scan and its arguments, e.g. `uvx awslabs.valkey-mcp-server@latest`.
        #[arg(
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "SERVER"
        )]
        server: Vec<OsString>,
    },
    /// Summarise audit logs: calls, decisions by kind and by rule, top tools, recent refusals
    /// with their reasons, and approvals with who answered them. Exit status 1 when no file can
    /// be read.
    Audit {
        /// The audit logs (JSON lines), e.g. audit.jsonl audit.jsonl.1.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Only calls at or after TIME: an RFC 3339 time (2026-11-29T19:00:00Z) or a duration
        /// back from now (30m, 1h, 2d).
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Only the calls of this session (the `session` field of the log).
        #[arg(long, value_name = "SESSION")]
        session: Option<String>,
        /// Print JSON for machines instead of the summary.
        #[arg(long)]
        json: bool,
    },
}

/// What to do, once the command line is read.
#[derive(Debug)]
pub enum Command {
    Run {
        command: Vec<OsString>,
    },
    Explain {
        tool: String,
        arguments: Option<String>,
        json: bool,
        tools: Option<PathBuf>,
    },
    Test {
        cases: PathBuf,
    },
    /// `to_stderr`: the `--check` flag, which printed its report to stderr before the
    /// subcommand existed and still does, for the scripts that read it there.
    Check {
        to_stderr: bool,
    },
    ApproveDesktop,
    Schema,
    Scan {
        server: Vec<OsString>,
    },
    Audit {
        files: Vec<PathBuf>,
        since: Option<String>,
        session: Option<String>,
        json: bool,
    },
}

impl Cli {
    pub fn command(&mut self) -> Command {
        match self.subcommand.take() {
            Some(Sub::Run { command }) => Command::Run { command },
            Some(Sub::Check) => Command::Check { to_stderr: false },
            Some(Sub::ApproveDesktop) => Command::ApproveDesktop,
            Some(Sub::Schema) => Command::Schema,
            Some(Sub::Scan { server }) => Command::Scan { server },
            Some(Sub::Audit {
                files,
                since,
                session,
                json,
            }) => Command::Audit {
                files,
                since,
                session,
                json,
            },
            Some(Sub::Explain {
                tool,
                arguments,
                json,
                tools,
            }) => Command::Explain {
                tool,
                arguments,
                json,
                tools,
            },
            Some(Sub::Test { cases }) => Command::Test { cases },
            None if self.check => Command::Check { to_stderr: true },
            None => Command::Run {
                command: std::mem::take(&mut self.command),
            },
        }
    }
}
