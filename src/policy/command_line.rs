//! Command lines: how a tool turns its arguments into the words of the command the server runs,
//! so that a rule can judge what runs (`@words[0]` is `FLUSHALL` whether the call says
//! `"FLUSHALL"`, `"flushall sync"` or `"ﬂushall"`) instead of how one field is spelt.
//!
//! A command line is a list of parts, each the value (or every element) at a path in the
//! arguments, turned into words as the server turns it: upper-cased with Python's `str.upper()`
//! (full Unicode mappings), split with Python's `str.split()` (on runs of Unicode whitespace,
//! ends trimmed), or taken as one word. The proxy knows the AWS Labs Valkey MCP server's three
//! command tools ([`CommandLine::builtin`]); a policy declares others in `[[command_lines]]`.
//!
//! Words are computed only for a call that a condition asks about, and once per call. A value
//! the proxy cannot read as the server would (not a string, a string the server would decode)
//! makes the command line unjudgeable, with the reason: the rules that ask for it refuse the
//! call.

use std::collections::HashMap;

use super::condition::{ArgPath, Segment, parse_path, walk_values};
use crate::json::{self, Kind};

/// How one tool turns its arguments into words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    pub parts: Vec<Part>,
    /// The server reads command names without regard to case, wherever they are in the line
    /// (Valkey: `CONFIG` with `args = ["set", ...]` runs CONFIG SET). Then a comparison that
    /// does not ignore case refuses a call whose verdict would change with the case of a word.
    pub names_ignore_case: bool,
}

/// One part of a command line: the value at `path` (every element, with `[*]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub path: ArgPath,
    /// Upper-cased as Python's `str.upper()` does.
    pub upper: bool,
    /// Split as Python's `str.split()` with no separator does; else the value is one word.
    pub split: bool,
}

/// The words of one call's command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Words {
    pub words: Vec<String>,
    /// How many of the words came from the first part (the command, for the Valkey tools).
    pub from_command: usize,
}

/// The names the proxy knows the command line of, whatever the policy says: the Valkey MCP
/// server's command tools (awslabs.valkey-mcp-server 1.1.x).
pub const BUILTIN_TOOLS: &[&str] = &["valkey_admin", "valkey_read", "valkey_write"];

impl CommandLine {
    /// What the Valkey MCP server runs for `tool`, read from its source (1.1.1):
    /// `valkey_admin` runs `command.upper().split() + (args or [])` (`tools/valkey_admin.py`);
    /// `valkey_read` and `valkey_write` run `[command.upper()] + (args or [])`, the command as
    /// one word, spaces and all (`tools/valkey_read.py`, `tools/valkey_write.py`).
    pub fn builtin(tool: &str) -> Option<CommandLine> {
        let split = match tool {
            "valkey_admin" => true,
            "valkey_read" | "valkey_write" => false,
            _ => return None,
        };
        Some(CommandLine {
            names_ignore_case: true,
            parts: vec![
                Part {
                    path: parse_path("command").expect("a valid path"),
                    upper: true,
                    split,
                },
                Part {
                    path: parse_path("args[*]").expect("a valid path"),
                    upper: false,
                    split: false,
                },
            ],
        })
    }

    /// The argument the command comes from: the first part's path when it names one value
    /// (no `[*]`). A condition on this argument is judged against what runs as well.
    pub fn command_path(&self) -> Option<&ArgPath> {
        let first = self.parts.first()?;
        (!first.path.segments.contains(&Segment::Each)).then_some(&first.path)
    }

    /// The words of the command line the server runs for `arguments`, or why the proxy cannot
    /// tell.
    pub fn words(&self, arguments: Option<&[u8]>, schema: Option<&[u8]>) -> Result<Words, String> {
        self.words_of(&self.parts, arguments, schema)
    }

    /// The words the first part (the command) makes, whatever the other parts hold.
    pub fn command_words(
        &self,
        arguments: Option<&[u8]>,
        schema: Option<&[u8]>,
    ) -> Result<Vec<String>, String> {
        let first = self.parts.get(..1).unwrap_or_default();
        self.words_of(first, arguments, schema).map(|w| w.words)
    }

    fn words_of(
        &self,
        parts: &[Part],
        arguments: Option<&[u8]>,
        schema: Option<&[u8]>,
    ) -> Result<Words, String> {
        let mut words = Vec::new();
        let mut from_command = 0;
        for (i, part) in parts.iter().enumerate() {
            if let Some(arguments) = arguments {
                walk_values(arguments, schema, &part.path, &mut |value, _typed| {
                    if json::kind(value) != Kind::String {
                        return Err(format!(
                            "`{}` holds a value that is not a string; the proxy cannot tell \
                             which words the server would make of it",
                            part.path.text
                        ));
                    }
                    let text = json::as_str(value).unwrap_or_default();
                    let text = if part.upper {
                        text.to_uppercase()
                    } else {
                        text.into_owned()
                    };
                    if part.split {
                        words.extend(python_split(&text).map(str::to_owned));
                    } else {
                        words.push(text);
                    }
                    Ok(())
                })?;
            }
            if i == 0 {
                from_command = words.len();
            }
        }
        Ok(Words {
            words,
            from_command,
        })
    }
}

/// Whether Python's `str.isspace()` holds for `c`: what `str.split()` splits on. That is
/// Unicode's White_Space (which Rust's `char::is_whitespace` follows) and the four ASCII
/// information separators U+001C to U+001F, which Python counts as whitespace and Rust does not.
/// Checked against Python 3.11 over every code point.
pub fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `s.split()`: the runs of non-whitespace, in order.
pub fn python_split(s: &str) -> impl Iterator<Item = &str> {
    s.split(is_python_space).filter(|w| !w.is_empty())
}

/// The command lines of a policy: those it declares, in file order, then the built-in ones.
#[derive(Debug, Clone, Default)]
pub struct CommandLines {
    exact: HashMap<String, usize>,
    globs: Vec<(globset::GlobMatcher, usize)>,
    lines: Vec<CommandLine>,
    builtin: Vec<(&'static str, CommandLine)>,
    /// The distinct command arguments of all of them (for the Valkey tools, `command` alone).
    command_paths: Vec<ArgPath>,
}

impl CommandLines {
    /// The declared command lines, each for an exact tool name or (with its parsed glob) a
    /// pattern, in file order; the first that matches a tool is its command line.
    pub fn new<'a>(
        declared: impl IntoIterator<Item = (&'a str, Option<&'a globset::Glob>, &'a CommandLine)>,
    ) -> CommandLines {
        let mut lines = CommandLines {
            builtin: BUILTIN_TOOLS
                .iter()
                .map(|&tool| (tool, CommandLine::builtin(tool).expect("a built-in tool")))
                .collect(),
            ..CommandLines::default()
        };
        for (tool, glob, line) in declared {
            let index = lines.lines.len();
            lines.lines.push(line.clone());
            match glob {
                Some(glob) => lines.globs.push((glob.compile_matcher(), index)),
                None => {
                    lines.exact.entry(tool.to_owned()).or_insert(index);
                }
            }
        }
        let all = lines
            .lines
            .iter()
            .chain(lines.builtin.iter().map(|(_, line)| line));
        for path in all.filter_map(CommandLine::command_path) {
            if !lines.command_paths.contains(path) {
                lines.command_paths.push(path.clone());
            }
        }
        lines
    }

    /// The command line of `tool`: the first declared one whose pattern matches it, else the
    /// built-in one of that name.
    pub fn for_tool(&self, tool: &str) -> Option<&CommandLine> {
        let exact = self.exact.get(tool).copied();
        let glob = self
            .globs
            .iter()
            .find(|(matcher, _)| matcher.is_match(tool))
            .map(|&(_, index)| index);
        let declared = match (exact, glob) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match declared {
            Some(index) => self.lines.get(index),
            None => self
                .builtin
                .iter()
                .find(|(name, _)| *name == tool)
                .map(|(_, line)| line),
        }
    }

    /// Whether `path` is the command argument of some command line: a cheap test, without
    /// looking the tool up, that spares most conditions the lookup.
    pub fn may_be_command(&self, path: &ArgPath) -> bool {
        self.command_paths
            .iter()
            .any(|command| command.segments == path.segments)
    }

    /// Whether a declared or built-in command line covers the exact tool name `tool`.
    pub fn knows(&self, tool: &str) -> bool {
        self.for_tool(tool).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(tool: &str, arguments: &str) -> Result<Vec<String>, String> {
        json::validate(arguments.as_bytes()).expect("strict JSON");
        CommandLine::builtin(tool)
            .unwrap()
            .words(Some(arguments.as_bytes()), None)
            .map(|w| w.words)
    }

    #[test]
    fn the_valkey_tools_run_what_their_source_says() {
        let cases: &[(&str, &str, &[&str])] = &[
            (
                "valkey_admin",
                r#"{"command":"FLUSHALL SYNC","args":[]}"#,
                &["FLUSHALL", "SYNC"],
            ),
            (
                "valkey_admin",
                r#"{"command":"  config\tset ","args":["maxmemory","1"]}"#,
                &["CONFIG", "SET", "maxmemory", "1"],
            ),
            (
                "valkey_admin",
                "{\"command\":\"\u{fb02}ushall\u{3000}sync\u{a0}\"}",
                &["FLUSHALL", "SYNC"],
            ),
            (
                "valkey_admin",
                "{\"command\":\"flushall\\u001fsync\"}",
                &["FLUSHALL", "SYNC"],
            ),
            (
                "valkey_admin",
                r#"{"command":"","args":["FLUSHALL"]}"#,
                &["FLUSHALL"],
            ),
            (
                "valkey_admin",
                r#"{"command":"FLUSHDB","args":null}"#,
                &["FLUSHDB"],
            ),
            (
                "valkey_read",
                r#"{"command":"get k","args":["x"]}"#,
                &["GET K", "x"],
            ),
            (
                "valkey_write",
                "{\"command\":\"\u{17f}et\",\"args\":[\"k\",\"v v\"]}",
                &["SET", "k", "v v"],
            ),
            ("valkey_write", r#"{"command":" del "}"#, &[" DEL "]),
        ];
        for (tool, arguments, expected) in cases {
            assert_eq!(
                words(tool, arguments).unwrap(),
                *expected,
                "{tool} {arguments}"
            );
        }
    }

    #[test]
    fn values_that_are_not_words_are_refused() {
        for arguments in [
            r#"{"command":"SET","args":["k",1]}"#,
            r#"{"command":["FLUSHALL"]}"#,
            r#"{"command":"SET","args":"[\"k\",\"v\"]"}"#,
        ] {
            assert!(words("valkey_write", arguments).is_err(), "{arguments}");
        }
    }

    #[test]
    fn python_whitespace_is_unicode_white_space_and_the_information_separators() {
        // Python 3.11: [c for c in range(0x110000) if chr(c).isspace()]
        let python: &[u32] = &[
            0x9, 0xa, 0xb, 0xc, 0xd, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680, 0x2000,
            0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028,
            0x2029, 0x202f, 0x205f, 0x3000,
        ];
        let ours: Vec<u32> = (0..=0x10ffff_u32)
            .filter_map(char::from_u32)
            .filter(|&c| is_python_space(c))
            .map(u32::from)
            .collect();
        assert_eq!(ours, python);
    }

    #[test]
    fn a_declared_line_comes_before_the_builtin_one() {
        let shell = CommandLine {
            names_ignore_case: false,
            parts: vec![Part {
                path: parse_path("line").unwrap(),
                upper: false,
                split: true,
            }],
        };
        let glob = globset::Glob::new("valkey_*").unwrap();
        let lines = CommandLines::new([("valkey_*", Some(&glob), &shell)]);
        assert_eq!(lines.for_tool("valkey_admin"), Some(&shell));
        let lines = CommandLines::new([]);
        assert_eq!(
            lines.for_tool("valkey_admin"),
            CommandLine::builtin("valkey_admin").as_ref()
        );
        assert!(lines.for_tool("json_get").is_none());
    }
}
