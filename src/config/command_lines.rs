//! `[[command_lines]]`: how a tool turns its arguments into the words of the command the server
//! runs, for conditions on `@words`. The Valkey MCP server's command tools need no entry (the
//! proxy knows them); an entry for one of them replaces what the proxy knows.

use std::ops::Range;

use super::CommandLineSpec;
use super::walk::{Checker, Value};
use crate::policy::command_line::{CommandLine, CommandLines, Part};
use crate::policy::condition::{Segment, parse_path};

const COMMAND_LINE_KEYS: &[&str] = &["tool", "words"];
const PART_KEYS: &[&str] = &["arg", "upper", "split"];
/// Characters that make a `tool` pattern a glob rather than an exact name.
const GLOB_META: &[char] = &['*', '?', '[', ']', '{', '}', '\\'];

impl Checker<'_> {
    pub(super) fn command_lines(&mut self, value: &Value<'_>) -> Vec<CommandLineSpec> {
        let Some(items) = self.array(
            value,
            "\"command_lines\"",
            "an array of tables ([[command_lines]])",
        ) else {
            return Vec::new();
        };
        let mut specs = Vec::new();
        for (i, item) in items.iter().enumerate() {
            if let Some(spec) = self.command_line(i + 1, item) {
                specs.push(spec);
            }
        }
        specs
    }

    fn command_line(&mut self, number: usize, value: &Value<'_>) -> Option<CommandLineSpec> {
        let place = format!("in command line {number}");
        let table = self.table(
            value,
            &format!("command line {number}"),
            "a table ([[command_lines]])",
        )?;
        self.reject_unknown_keys(table, COMMAND_LINE_KEYS, &place);
        let tool = match table.get("tool") {
            None => {
                self.report(
                    value.span(),
                    format!(
                        "command line {number} has no \"tool\"; add the tool's exact name or a \
                         glob, e.g. tool = \"run_command\""
                    ),
                );
                None
            }
            Some(tool) => self
                .string(tool, "\"tool\"", &place)
                .and_then(|name| self.command_line_tool(name, tool.span(), &place)),
        };
        let words = match table.get("words") {
            None => {
                self.report(
                    value.span(),
                    format!(
                        "command line {number} has no \"words\"; list the arguments that make \
                         the words, e.g. words = [ {{ arg = \"command\", upper = true, split = \
                         true }}, {{ arg = \"args[*]\" }} ]"
                    ),
                );
                None
            }
            Some(words) => self.parts(words, &place),
        };
        let (tool, glob) = tool?;
        Some(CommandLineSpec {
            tool,
            glob,
            line: CommandLine {
                parts: words?,
                names_ignore_case: false,
            },
        })
    }

    fn command_line_tool(
        &mut self,
        tool: &str,
        span: Range<usize>,
        place: &str,
    ) -> Option<(String, Option<globset::Glob>)> {
        if tool.is_empty() || tool.trim() != tool {
            self.report(
                span,
                format!("\"tool\" {place} is empty or has spaces at its ends"),
            );
            return None;
        }
        if !tool.contains(GLOB_META) {
            return Some((tool.to_owned(), None));
        }
        match globset::GlobBuilder::new(tool)
            .literal_separator(false)
            .build()
        {
            Ok(glob) => Some((tool.to_owned(), Some(glob))),
            Err(error) => {
                self.report(
                    span,
                    format!("invalid tool pattern {tool:?} {place}: {}", error.kind()),
                );
                None
            }
        }
    }

    fn parts(&mut self, value: &Value<'_>, place: &str) -> Option<Vec<Part>> {
        let items = self.array(
            value,
            &format!("\"words\" {place}"),
            "an array of tables such as { arg = \"command\", split = true }",
        )?;
        if items.is_empty() {
            self.report(
                value.span(),
                format!("\"words\" {place} is empty; list at least one argument"),
            );
            return None;
        }
        let mut parts = Some(Vec::new());
        for item in items {
            let part = self.part(item, place);
            match (&mut parts, part) {
                (Some(parts), Some(part)) => parts.push(part),
                _ => parts = None,
            }
        }
        parts
    }

    fn part(&mut self, value: &Value<'_>, place: &str) -> Option<Part> {
        let table = self.table(
            value,
            &format!("a part of \"words\" {place}"),
            "a table such as { arg = \"args[*]\" }",
        )?;
        self.reject_unknown_keys(table, PART_KEYS, place);
        let path = match table.get("arg") {
            None => {
                self.report(
                    value.span(),
                    format!(
                        "a part of \"words\" {place} has no \"arg\"; add the path of the \
                         argument, e.g. arg = \"command\" or arg = \"args[*]\""
                    ),
                );
                None
            }
            Some(arg) => self.string(arg, "\"arg\"", place).and_then(|text| {
                parse_path(text)
                    .map_err(|why| self.report(arg.span(), format!("{why} {place}")))
                    .ok()
            }),
        };
        let upper = table
            .get("upper")
            .and_then(|v| self.boolean(v, "\"upper\"", place))
            .unwrap_or(false);
        let split = table
            .get("split")
            .and_then(|v| self.boolean(v, "\"split\"", place))
            .unwrap_or(false);
        Some(Part {
            path: path?,
            upper,
            split,
        })
    }

    /// A rule for an exact tool name that tests `@words` needs the tool's command line: without
    /// it every call would be refused as unjudgeable, which is a mistake to report now.
    pub(super) fn check_words_references(&mut self, lines: &[CommandLineSpec]) {
        let known = CommandLines::new(
            lines
                .iter()
                .map(|spec| (spec.tool.as_str(), spec.glob.as_ref(), &spec.line)),
        );
        for (tool, span) in std::mem::take(&mut self.words_references) {
            if !known.knows(&tool) {
                self.report(
                    span,
                    format!(
                        "a condition tests @words, but the proxy does not know how tool {tool:?} \
                         turns its arguments into words; declare it with [[command_lines]] tool = \
                         {tool:?}, words = [ ... ]"
                    ),
                );
            }
        }
    }
}

/// Whether a path names the command line's words.
pub(super) fn is_words(segments: &[Segment]) -> bool {
    segments.first() == Some(&Segment::Words)
}
