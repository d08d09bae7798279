//! `tools/list` results: hidden tools taken out, and what the server declared remembered.

use std::collections::HashMap;

use tracing::{debug, warn};

use super::Session;
use crate::approval::digest::{hex, write_canonical};
use crate::json;
use crate::message;
use crate::policy::ToolInfo;

/// How many tool definitions a session remembers. Servers declare tens of tools; the bound
/// only keeps a server that lists endless tools from growing the proxy's memory.
const CATALOG_TOOLS: usize = 4096;

/// The tools the server declared in its latest `tools/list` results, by name, and what changed.
#[derive(Debug, Default)]
pub(super) struct Catalog {
    tools: HashMap<Box<str>, ToolInfo>,
    /// The digest of each tool's definition when this session first saw it (its pin).
    first: HashMap<Box<str>, [u8; 32]>,
    /// Tools whose definition differs from their pin, with what changed.
    changed: HashMap<Box<str>, String>,
}

impl Catalog {
    pub(super) fn get(&self, tool: &str) -> Option<&ToolInfo> {
        self.tools.get(tool)
    }

    /// What changed in `tool`'s definition since it was pinned, if it did.
    pub(super) fn changed(&self, tool: &str) -> Option<&str> {
        if self.changed.is_empty() {
            return None;
        }
        self.changed.get(tool).map(String::as_str)
    }

    /// Compares a listed definition with its pin: the operator's, else the first this session
    /// saw. A change is kept for the rest of the session: a later listing that matches the pin
    /// again does not clear it, so a name listed twice (the original and a changed copy, in
    /// one page or across pages, in either order) is a changed tool, never first-wins or
    /// last-wins.
    fn pin(&mut self, name: &str, definition: &[u8], pins: &HashMap<String, String>) {
        if self.changed.contains_key(name) {
            return;
        }
        let digest = definition_digest(definition);
        if let Some(pinned) = pins.get(name) {
            if !pinned.eq_ignore_ascii_case(&hex(&digest)) {
                let what = "its definition differs from the one pinned in the pin file".to_owned();
                warn!(tool = ?name, "{what}");
                self.changed.insert(name.into(), what);
            }
            return;
        }
        let Some(first) = self.first.get(name) else {
            self.first.insert(name.into(), digest);
            return;
        };
        if *first == digest {
            return;
        }
        let before = self.tools.get(name).map(|info| &*info.definition);
        let what = describe_change(before, definition);
        warn!(tool = ?name, "the server changed a tool mid-session, or listed it twice: {what}");
        self.changed.insert(name.into(), what);
    }
}

/// The digest of a tool's definition, read as the canonical JSON (whitespace and member order do
/// not count).
fn definition_digest(definition: &[u8]) -> [u8; 32] {
    use sha2::{Digest as _, Sha256};
    let mut canonical = Vec::with_capacity(definition.len());
    write_canonical(definition, &mut canonical);
    Sha256::digest(&canonical).into()
}

/// Which members of a tool's definition differ between two listings.
fn describe_change(before: Option<&[u8]>, after: &[u8]) -> String {
    let Some(before) = before else {
        return "its definition changed since the session first listed it".to_owned();
    };
    let canonical = |value: Option<&[u8]>| {
        value.map(|v| {
            let mut out = Vec::new();
            write_canonical(v, &mut out);
            out
        })
    };
    let mut keys: Vec<String> = json::members(before)
        .chain(json::members(after))
        .map(|(key, _)| key.into_owned())
        .collect();
    keys.sort();
    keys.dedup();
    let differing: Vec<String> = keys
        .into_iter()
        .filter(|key| canonical(json::get(before, key)) != canonical(json::get(after, key)))
        // The server's own words, logged and shown: escaped like everything a person reads.
        .map(|key| crate::approval::display::visible(&key, 100))
        .collect();
    format!(
        "its {} changed since the session first listed it",
        differing.join(", ")
    )
}

impl Session {
    /// Reads a `tools/list` result (`result`, inside the line `content` without its newline):
    /// remembers each tool's definition, and returns the line without the hidden tools (`None`
    /// when nothing is hidden).
    pub(super) fn on_tools_list(&mut self, content: &[u8], result: &[u8]) -> Option<Vec<u8>> {
        let pinning = self.settings.pinning != crate::config::PinMode::Off;
        let tools = json::get(result, "tools")?;
        let hides = self.policy.hides_any();
        let mut kept = Vec::new();
        let mut hidden = 0;
        for tool in json::elements(tools) {
            let name = json::get(tool, "name").and_then(json::as_str);
            // Every tool is pinned (32 bytes each), however many a server lists: a server that
            // listed thousands first could otherwise change one unnoticed.
            if let Some(name) = &name
                && pinning
            {
                self.catalog.pin(name, tool, &self.settings.pins);
            }
            if let Some(name) = &name
                && (self.catalog.tools.len() < CATALOG_TOOLS
                    || self.catalog.tools.contains_key(name.as_ref()))
            {
                let info = ToolInfo {
                    definition: tool.into(),
                };
                self.catalog.tools.insert(name.as_ref().into(), info);
            }
            if hides && name.as_deref().is_some_and(|n| self.policy.hides(n)) {
                hidden += 1;
            } else {
                kept.push(tool);
            }
        }
        if hidden == 0 {
            return None;
        }
        debug!(hidden, "removed hidden tools from a tools/list result");
        let mut array = Vec::with_capacity(tools.len());
        array.push(b'[');
        for (i, tool) in kept.iter().enumerate() {
            if i > 0 {
                array.push(b',');
            }
            array.extend_from_slice(tool);
        }
        array.push(b']');
        Some(message::splice_line(content, tools, &array))
    }
}
