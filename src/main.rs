use std::process::ExitCode;
use std::time::Duration;

use clap::Parser as _;
use mcp_policy_proxy::cli::Cli;
use mcp_policy_proxy::logging;

/// How long the exit waits for log lines that stderr has not taken yet.
const EXIT_FLUSH_LIMIT: Duration = Duration::from_secs(1);

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_level.as_deref());
    let code = match mcp_policy_proxy::run(cli) {
        Ok(code) => code,
        Err(err) => {
            // stderr is the log channel; stdout belongs to the protocol.
            let mut message = err.to_string();
            let mut source = std::error::Error::source(&err);
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            // Through the log's queue, after the lines before it, never blocking the exit.
            logging::line(format!("mcp-policy-proxy: error: {message}\n").into_bytes());
            ExitCode::from(err.exit_code())
        }
    };
    // A host that reads stderr gets every line; one that does not is not kept waiting.
    logging::flush(EXIT_FLUSH_LIMIT);
    code
}
