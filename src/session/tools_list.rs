//! `tools/list` results: hidden tools taken out, and what the server declared remembered.

use std::collections::HashMap;

use tracing::debug;

use super::Session;
use crate::json;
use crate::message;
use crate::policy::ToolInfo;

/// How many tool definitions a session remembers. Servers declare tens of tools; the bound
/// only keeps a server that lists endless tools from growing the proxy's memory.
const CATALOG_TOOLS: usize = 4096;

/// The tools the server declared in its latest `tools/list` results, by name.
#[derive(Debug, Default)]
pub(super) struct Catalog {
    tools: HashMap<Box<str>, ToolInfo>,
}

impl Catalog {
    pub(super) fn get(&self, tool: &str) -> Option<&ToolInfo> {
        self.tools.get(tool)
    }
}

impl Session {
    /// Reads a `tools/list` result (`result`, inside the line `content` without its newline):
    /// remembers each tool's definition, and returns the line without the hidden tools (`None`
    /// when nothing is hidden).
    pub(super) fn on_tools_list(&mut self, content: &[u8], result: &[u8]) -> Option<Vec<u8>> {
        let tools = json::get(result, "tools")?;
        let hides = self.policy.hides_any();
        let mut kept = Vec::new();
        let mut hidden = 0;
        for tool in json::elements(tools) {
            let name = json::get(tool, "name").and_then(json::as_str);
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
