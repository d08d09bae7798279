//! `mcp-policy-proxy schema`: the JSON Schema (draft 2020-12) of the policy file.
//!
//! The schema is a file of the repository, `schema/mcp-policy-proxy.schema.json`, so that an
//! editor can point at it without running the proxy (Taplo / Even Better TOML read a
//! `#:schema ./schema/mcp-policy-proxy.schema.json` comment on a TOML file's first line). This
//! command prints the same bytes. `tests/schema.rs` keeps it in agreement with the config
//! reader: every config the reader accepts validates, and a config the reader refuses for a
//! type or an unknown key fails to.

use std::io::Write as _;
use std::process::ExitCode;

/// The schema, as shipped in the repository.
pub const SCHEMA: &str = include_str!("../../schema/mcp-policy-proxy.schema.json");

/// Prints the schema to stdout, which is this subcommand's own: no protocol runs then.
pub fn run() -> ExitCode {
    #[allow(clippy::print_stdout, clippy::disallowed_methods)]
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(SCHEMA.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("mcp-policy-proxy: error: cannot write the schema to stdout: {err}");
            ExitCode::FAILURE
        }
    }
}
