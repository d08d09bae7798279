//! `mcp-policy-proxy scan [--] SERVER...`: starts an MCP server, reads its tools, and prints a
//! commented starter policy that `check` accepts.
//!
//! This module owns a short client conversation with a server of either protocol era: it probes
//! with `server/discover` (2026-07-28) and falls back to `initialize` (2025-11-25) on any answer
//! that is not modern, as the specification asks of dual-era clients; a server that exits on the
//! probe (some legacy servers do) is started again for the fallback. Then `tools/list`, page by
//! page. Everything is bounded by time-outs, and the server is stopped at the end, whatever
//! happened. Sorting the tools into classes ([`classify`]) and writing the policy
//! ([`starter_policy`]) are pure functions of the tools.
//!
//! It does not judge anything: no policy is loaded, and stdout is the report's own.

mod classify;
mod client;
mod starter;

use std::collections::HashSet;
use std::ffi::OsString;
use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::{Map, Value, json};

pub use classify::{Basis, Class, classify, classify_name};
use client::Server;
pub use starter::starter_policy;

use crate::error::Error;

/// How long the conversation with one server process may take, its start included. The AWS
/// Labs Valkey MCP server takes about 1.5 s to start from an installed environment; `uvx`
/// fetching a server for the first time takes several seconds more. Past 30 s it is hung.
pub const SCAN_TIMEOUT: Duration = Duration::from_secs(30);

/// `tools/list` pages read at most: a server that keeps returning cursors is looping.
const MAX_PAGES: usize = 1000;

/// The stateless era, reached through `server/discover`.
const MODERN_VERSION: &str = "2026-07-28";
/// The `initialize` era's version we ask for.
const LEGACY_VERSION: &str = "2025-11-25";

/// What the server says about itself and its tools.
#[derive(Debug, Clone, PartialEq)]
pub struct Scan {
    /// The server's command line, as a person reads it.
    pub command: String,
    /// The protocol version spoken: `2026-07-28`, or the one `initialize` agreed on.
    pub protocol: String,
    /// `serverInfo` name and version, when the server gives them.
    pub server_name: Option<String>,
    pub server_version: Option<String>,
    /// In the server's order, without duplicate names.
    pub tools: Vec<Tool>,
}

/// One tool, as `tools/list` describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    pub name: String,
    pub description: Option<String>,
    pub class: Class,
    /// What the class was decided from.
    pub basis: Basis,
}

/// Scans the server and prints the starter policy to stdout, which is this subcommand's own.
pub fn run(server: &[OsString]) -> Result<ExitCode, Error> {
    let text = policy_text(server)?;
    #[allow(clippy::disallowed_methods)]
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .context("cannot write the policy to stdout")?;
    Ok(ExitCode::SUCCESS)
}

/// What `scan` prints for this command line: the starter policy.
pub fn policy_text(server: &[OsString]) -> Result<String, Error> {
    Ok(starter_policy(&scan(server, SCAN_TIMEOUT)?))
}

/// Starts the server, reads its tools in whichever era it speaks, and stops it. Each process
/// started has `timeout` for its whole conversation, its start included; a server that falls
/// silent on the probe is started a second time, so the scan then takes up to twice that.
pub fn scan(server: &[OsString], timeout: Duration) -> Result<Scan, Error> {
    let Some((program, args)) = server.split_first() else {
        return Err(Error::Usage(
            "no MCP server to scan; give its command, e.g. `mcp-policy-proxy scan -- uvx \
             awslabs.valkey-mcp-server@latest`"
                .to_owned(),
        ));
    };
    let command = display(server);
    let mut process = Server::start(program, args, &command, timeout)?;
    let outcome = match process.request("server/discover", modern_params(Map::new())) {
        Ok(Ok(discovered)) if speaks_modern(&discovered) => list_tools(&mut process, true)
            .map(|tools| (MODERN_VERSION.to_owned(), discovered, tools)),
        // An error or an older version: the same process goes on in the `initialize` era,
        // unless it exited after saying so.
        Ok(_) => match legacy(&mut process) {
            Err(_) if process.exited() => {
                process.stop();
                process = Server::start(program, args, &command, timeout)?;
                legacy(&mut process)
            }
            outcome => outcome,
        },
        // It exited, or fell silent: some legacy servers exit on any request before
        // `initialize`. The fallback gets a fresh process.
        Err(_) => {
            process.stop();
            process = Server::start(program, args, &command, timeout)?;
            legacy(&mut process)
        }
    };
    process.stop();
    outcome.map(|(protocol, info, tools)| build(command, protocol, &info, tools))
}

/// A `server/discover` result that offers the 2026-07-28 era.
fn speaks_modern(discovered: &Value) -> bool {
    discovered
        .get("supportedVersions")
        .and_then(Value::as_array)
        .is_some_and(|versions| versions.iter().any(|v| v == MODERN_VERSION))
}

/// The `initialize` era: the handshake, then the tools.
fn legacy(server: &mut Server) -> Result<(String, Value, Vec<Value>), Error> {
    let params = json!({
        "protocolVersion": LEGACY_VERSION,
        "capabilities": {},
        "clientInfo": {"name": "mcp-policy-proxy scan", "version": env!("CARGO_PKG_VERSION")},
    });
    let result = server
        .request("initialize", params)?
        .map_err(|error| server.failure(format!("refused initialize: {}", brief(&error))))?;
    let protocol = result
        .get("protocolVersion")
        .and_then(Value::as_str)
        .unwrap_or(LEGACY_VERSION)
        .to_owned();
    server.notify("notifications/initialized", json!({}));
    let tools = list_tools(server, false)?;
    Ok((protocol, result, tools))
}

/// Every page of `tools/list`.
fn list_tools(server: &mut Server, modern: bool) -> Result<Vec<Value>, Error> {
    let mut tools = Vec::new();
    let mut cursor: Option<String> = None;
    let mut seen = HashSet::new();
    for _ in 0..MAX_PAGES {
        let mut params = Map::new();
        if let Some(cursor) = &cursor {
            params.insert("cursor".to_owned(), json!(cursor));
        }
        let params = if modern {
            modern_params(params)
        } else {
            Value::Object(params)
        };
        let result = server
            .request("tools/list", params)?
            .map_err(|error| server.failure(format!("refused tools/list: {}", brief(&error))))?;
        let page = result
            .get("tools")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                server.failure("answered tools/list without a \"tools\" array".into())
            })?;
        tools.extend(page.iter().cloned());
        match result.get("nextCursor") {
            Some(Value::String(next)) => {
                if !seen.insert(next.clone()) {
                    return Err(server.failure(format!(
                        "returned the tools/list cursor {next:?} twice; its pages loop"
                    )));
                }
                cursor = Some(next.clone());
            }
            _ => return Ok(tools),
        }
    }
    Err(server.failure(format!("returned more than {MAX_PAGES} pages of tools")))
}

/// Params with the per-request `_meta` of the 2026-07-28 era.
fn modern_params(mut params: Map<String, Value>) -> Value {
    params.insert(
        "_meta".to_owned(),
        json!({
            "io.modelcontextprotocol/protocolVersion": MODERN_VERSION,
            "io.modelcontextprotocol/clientCapabilities": {},
        }),
    );
    Value::Object(params)
}

fn build(command: String, protocol: String, info: &Value, listed: Vec<Value>) -> Scan {
    let server_info = info
        .get("serverInfo")
        .or_else(|| info.pointer("/_meta/io.modelcontextprotocol~1serverInfo"));
    let text = |key: &str| {
        server_info
            .and_then(|i| i.get(key))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let mut names = HashSet::new();
    let tools = listed
        .iter()
        .filter_map(|tool| {
            let name = tool.get("name").and_then(Value::as_str)?;
            if !names.insert(name.to_owned()) {
                return None;
            }
            let (class, basis) = classify(tool);
            Some(Tool {
                name: name.to_owned(),
                description: tool
                    .get("description")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                class,
                basis,
            })
        })
        .collect();
    Scan {
        command,
        protocol,
        server_name: text("name"),
        server_version: text("version"),
        tools,
    }
}

/// An error object, short: its message, else the whole of it.
fn brief(error: &Value) -> String {
    match error.get("message").and_then(Value::as_str) {
        Some(message) => format!("{message:?}"),
        None => error.to_string(),
    }
}

fn display(argv: &[OsString]) -> String {
    argv.iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}
