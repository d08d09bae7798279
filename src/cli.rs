//! The command line, and how it becomes what to run.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Parser;

/// A stdio MCP proxy that judges every tools/call against TOML rules before the server sees it.
///
/// Put it in place of an MCP server's command: `mcp-policy-proxy --config policy.toml -- uvx
/// awslabs.valkey-mcp-server@latest`. The `--` is optional: the first argument that is not an
/// option starts the server's command, and everything after it belongs to the server.
#[derive(Debug, Parser)]
#[command(name = "mcp-policy-proxy", version)]
pub struct Cli {
    /// The policy file (TOML). Without one the proxy refuses to start.
    #[arg(
        short = 'c',
        long,
        visible_alias = "policy",
        env = "MCP_POLICY_PROXY_CONFIG",
        value_name = "PATH"
    )]
    pub config: Option<PathBuf>,

    /// How much the proxy logs to stderr: error, warn, info, debug or trace, or a tracing filter
    /// such as "mcp_policy_proxy=debug". Without it, RUST_LOG is used, else "info".
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,

    /// Check the configuration, print what it decides, and exit without starting the server
    /// (exit status 0 when valid, 2 when not).
    #[arg(long)]
    pub check: bool,

    /// The MCP server's command and its arguments. Overrides `[server]` in the config.
    #[arg(trailing_var_arg = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}
