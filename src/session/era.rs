//! Which protocol era the session speaks, and what the client can do.
//!
//! The era is learned from the server's answer to `initialize` (the handshake era) or
//! `server/discover` (2026-07-28), and a 2026-07-28 request says so in its own `_meta`. What the
//! client can do is read from its `initialize` request in the handshake era, and from each
//! request's `_meta` in 2026-07-28, where capabilities are declared per request. This is the one
//! place that knows either.

use crate::json;
use crate::message;

/// The protocol revision without the `initialize` handshake.
pub const MODERN_PROTOCOL: &str = "2026-07-28";
/// The only protocol revision that allowed JSON-RPC batches.
pub const BATCH_PROTOCOL: &str = "2025-03-26";
/// Where a 2026-07-28 request declares the client's capabilities.
pub const CLIENT_CAPABILITIES_META: &str = "io.modelcontextprotocol/clientCapabilities";

/// What the client said it can do, as far as the proxy cares.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientCaps {
    /// The client can show a form (`elicitation` declared with form mode, or as an empty
    /// object, which means form mode only).
    pub elicitation_form: bool,
}

impl ClientCaps {
    /// Reads a `capabilities` object (of `initialize`, or of a request's `_meta`).
    pub fn read(capabilities: Option<&[u8]>) -> ClientCaps {
        let elicitation = capabilities.and_then(|c| json::get(c, "elicitation"));
        let elicitation_form = elicitation.is_some_and(|e| {
            json::kind(e) == json::Kind::Object
                && (json::members(e).next().is_none() || json::get(e, "form").is_some())
        });
        ClientCaps { elicitation_form }
    }
}

#[derive(Debug, Default)]
pub struct Era {
    /// The protocol version the server answered with, once known.
    server_version: Option<String>,
    /// What the client declared in `initialize` (handshake era).
    initialize_caps: ClientCaps,
}

impl Era {
    pub fn server_version(&self) -> Option<&str> {
        self.server_version.as_deref()
    }

    pub fn has_batches(&self) -> bool {
        self.server_version.as_deref() == Some(BATCH_PROTOCOL)
    }

    /// Whether the request with this `_meta` belongs to 2026-07-28.
    pub fn is_modern(&self, meta: Option<&[u8]>) -> bool {
        message::request_protocol_version(meta).is_some()
            || self.server_version.as_deref() == Some(MODERN_PROTOCOL)
    }

    /// What the client can do for the request with this `_meta`: in 2026-07-28 what the
    /// request itself declares, else what `initialize` declared.
    pub fn caps_for(&self, meta: Option<&[u8]>) -> ClientCaps {
        if self.is_modern(meta) {
            ClientCaps::read(meta.and_then(|m| json::get(m, CLIENT_CAPABILITIES_META)))
        } else {
            self.initialize_caps
        }
    }

    /// The client's `initialize` request.
    pub fn on_initialize_request(&mut self, params: Option<&[u8]>) {
        self.initialize_caps = ClientCaps::read(params.and_then(|p| json::get(p, "capabilities")));
    }

    /// The server's answer to `initialize`.
    pub fn on_initialize_result(&mut self, result: &[u8]) {
        self.server_version = json::get(result, "protocolVersion")
            .and_then(json::as_str)
            .map(std::borrow::Cow::into_owned);
    }

    /// The server's answer to `server/discover`.
    pub fn on_discover_result(&mut self, result: &[u8]) {
        let modern = json::get(result, "supportedVersions").is_some_and(|versions| {
            json::elements(versions).any(|v| json::as_str(v).as_deref() == Some(MODERN_PROTOCOL))
        });
        if modern {
            self.server_version = Some(MODERN_PROTOCOL.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_elicitation_is_read_from_capabilities() {
        for (caps, form) in [
            (r#"{}"#, false),
            (r#"{"elicitation":{}}"#, true),
            (r#"{"elicitation":{"form":{}}}"#, true),
            (r#"{"elicitation":{"form":{},"url":{}}}"#, true),
            (r#"{"elicitation":{"url":{}}}"#, false),
            (r#"{"elicitation":true}"#, false),
            (r#"{"sampling":{}}"#, false),
        ] {
            assert_eq!(
                ClientCaps::read(Some(caps.as_bytes())).elicitation_form,
                form,
                "{caps}"
            );
        }
        assert!(!ClientCaps::read(None).elicitation_form);
    }
}
