//! The JSON-RPC lines the proxy writes itself: error responses and results, with the codes.
//!
//! This is protocol, not policy: what a refusal says lives with the session
//! (`session/refusal.rs`); here is only how any answer of the proxy's own is framed.

use serde_json::{Value, json};

use crate::message::RequestId;

/// JSON-RPC error code of a policy refusal in `jsonrpc_error` style. It lies outside the range
/// JSON-RPC and MCP reserve (-32768..=-32000), as the 2026-07-28 revision asks of new codes.
pub const POLICY_VIOLATION: i64 = -31001;

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;

/// `{"jsonrpc":"2.0","id":ID,"<key>":VALUE}\n`; `id: None` writes `"id":null`.
pub fn response(id: Option<&RequestId>, key: &str, value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    match id {
        Some(id) => id.write_json(&mut out),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
    serde_json::to_writer(&mut out, value).expect("a Value always serializes");
    out.extend_from_slice(b"}\n");
    out
}

/// A JSON-RPC error response line.
pub fn error(id: Option<&RequestId>, code: i64, message: &str, data: Option<Value>) -> Vec<u8> {
    let mut error = json!({ "code": code, "message": message });
    if let Some(data) = data {
        error["data"] = data;
    }
    response(id, "error", &error)
}

/// A request of the proxy's own to the client: `{"jsonrpc":"2.0","id":N,"method":M,"params":P}`.
pub fn request(id: u64, method: &str, params: &Value) -> Vec<u8> {
    let mut line = serde_json::to_vec(&json!({
        "jsonrpc": "2.0",
        "id": id,
        "method": method,
        "params": params,
    }))
    .expect("a Value always serializes");
    line.push(b'\n');
    line
}

/// A notification line.
pub fn notification(method: &str, params: &Value) -> Vec<u8> {
    let mut line = serde_json::to_vec(&json!({
        "jsonrpc": "2.0",
        "method": method,
        "params": params,
    }))
    .expect("a Value always serializes");
    line.push(b'\n');
    line
}
