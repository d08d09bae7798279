//! The one user-facing error type: what went wrong before or around the relay, with the exit
//! status each kind ends the process with.

use std::path::PathBuf;

use crate::config::ConfigError;

/// Exit status for a configuration or usage problem: the server was not started.
pub const EXIT_CONFIG: u8 = 2;
/// Exit status when the server's command cannot be started (as a shell reports it).
pub const EXIT_SPAWN: u8 = 127;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "no policy given: pass --config PATH or set MCP_POLICY_PROXY_CONFIG (the proxy never \
         starts a server without a policy)"
    )]
    NoPolicy,
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(
        "no MCP server to run: give its command after the options (mcp-policy-proxy --config {} \
         -- uvx awslabs.valkey-mcp-server@latest) or in the config's [server] table",
        .config.display()
    )]
    NoServer { config: PathBuf },
    /// The command line asks for something that cannot be done.
    #[error("{0}")]
    Usage(String),
    #[error("cannot use the pin file {}: {why}", .path.display())]
    Pins { path: PathBuf, why: String },
    #[error("cannot start the MCP server `{command}`")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Runtime(#[from] anyhow::Error),
}

impl Error {
    /// The process's exit status for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::NoPolicy
            | Error::Config(_)
            | Error::NoServer { .. }
            | Error::Pins { .. }
            | Error::Usage(_) => EXIT_CONFIG,
            Error::Spawn { .. } => EXIT_SPAWN,
            Error::Runtime(_) => 1,
        }
    }
}
