use std::process::ExitCode;

use clap::Parser as _;
use mcp_policy_proxy::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    mcp_policy_proxy::init_logging(cli.log_level.as_deref());
    match mcp_policy_proxy::run(cli) {
        Ok(code) => code,
        Err(err) => {
            // stderr is the log channel; stdout belongs to the protocol.
            let mut message = err.to_string();
            let mut source = std::error::Error::source(&err);
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            eprintln!("mcp-policy-proxy: error: {message}");
            ExitCode::from(err.exit_code())
        }
    }
}
