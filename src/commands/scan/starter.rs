//! The starter policy `scan` prints: a commented TOML policy that `check` accepts, written from
//! what the server said of itself. Pure: a [`Scan`] in, text out. Everything the server wrote is
//! made safe for a comment first.

use std::fmt::Write as _;

use super::{Basis, Class, Scan, Tool};

/// What a starter policy suggests for a `write` tool: a loop cannot run away with it.
const WRITE_RATE_LIMIT: &str = "{ max = 10, window = \"60s\" }";

/// A description longer than this many lines is cut in the starter policy: the rest is in the
/// server's own documentation.
const MAX_DESCRIPTION_LINES: usize = 40;

/// Comment lines are wrapped at this width, the house width of the example configs.
const COMMENT_WIDTH: usize = 100;

/// The starter policy: a header, `[policy] default = "deny"`, `[classes]`, and one rule per
/// tool, grouped by class, each with the tool's description as a comment.
pub fn starter_policy(scan: &Scan) -> String {
    let mut out = String::new();
    let server = match (&scan.server_name, &scan.server_version) {
        (Some(name), Some(version)) => format!("{} {}", clean(name), clean(version)),
        (Some(name), None) => clean(name),
        _ => "a server that did not name itself".to_owned(),
    };
    let command = clean(&scan.command);
    let count = scan.tools.len();
    let _ = write!(
        out,
        "# A starter policy for the MCP server\n\
         #   {command}\n\
         # written by `mcp-policy-proxy scan` from the {count} tool{} it listed.\n\
         # Server: {server}; protocol {}.\n\
         #\n\
         # Each tool has a rule with a suggested action, by its class: from the tool's annotations\n\
         # (readOnlyHint, destructiveHint) when it gives them, else from a word of its name.\n",
        if count == 1 { "" } else { "s" },
        clean(&scan.protocol),
    );
    for class in Class::ALL {
        let _ = writeln!(out, "#   {:<12} {}", class.as_str(), summary(class));
    }
    let _ = write!(
        out,
        "# A suggestion is not a review: read each description, then tighten what is too loose\n\
         # (conditions on the arguments with `when`, `deny` with a `reason`) and check the file:\n\
         #   mcp-policy-proxy check --config THIS_FILE\n\
         # and run the server behind it:\n\
         #   mcp-policy-proxy --config THIS_FILE -- {command}\n\
         \n\
         [policy]\n\
         # A tool no rule names (one a later version of the server adds, say) is refused until a\n\
         # rule names it.\n\
         default = \"deny\"\n",
    );

    let by_class = |class: Class| scan.tools.iter().filter(move |t| t.class == class);
    let nameable = |tool: &&Tool| nameable(&tool.name);
    let present: Vec<Class> = Class::ALL
        .into_iter()
        .filter(|&class| by_class(class).any(|t| nameable(&t)))
        .collect();
    if !present.is_empty() {
        out.push_str(
            "\n# The tools by class, for rules that cover a whole class (class = \"read\"). The\n\
             # rules below name each tool instead, so that each can be changed on its own.\n\
             [classes]\n",
        );
        for &class in &present {
            let members: Vec<String> = by_class(class)
                .filter(nameable)
                .map(|tool| toml_string(&glob_literal(&tool.name)))
                .collect();
            let line = format!("{} = [{}]", class.as_str(), members.join(", "));
            if line.chars().count() <= COMMENT_WIDTH {
                let _ = writeln!(out, "{line}");
            } else {
                let _ = writeln!(out, "{} = [", class.as_str());
                for member in members {
                    let _ = writeln!(out, "    {member},");
                }
                out.push_str("]\n");
            }
        }
    }

    for class in Class::ALL {
        let tools: Vec<&Tool> = by_class(class).collect();
        if tools.is_empty() {
            continue;
        }
        let _ = write!(
            out,
            "\n# ---- {}: {} tool{} ----\n",
            class.as_str(),
            tools.len(),
            if tools.len() == 1 { "" } else { "s" }
        );
        for tool in tools {
            out.push('\n');
            let basis = match tool.basis {
                Basis::Annotations => "its annotations",
                Basis::Name => "its name",
                Basis::Nothing => "nothing it says: review it",
            };
            let _ = writeln!(
                out,
                "# {} ({} by {basis})",
                clean(&tool.name),
                class.as_str()
            );
            for line in description_lines(tool.description.as_deref().unwrap_or_default()) {
                if line.is_empty() {
                    out.push_str("#\n");
                } else {
                    let _ = writeln!(out, "#   {line}");
                }
            }
            if !nameable(&tool) {
                out.push_str(
                    "# No rule can name this tool: its name is empty or has spaces at its ends.\n\
                     # [policy] default = \"deny\" refuses it.\n",
                );
                continue;
            }
            if scan.server_name.as_deref() == Some(VALKEY_SERVER)
                && let Some(guard) = valkey_guard(&tool.name)
            {
                out.push_str("#\n");
                out.push_str(guard);
            }
            let _ = write!(
                out,
                "[[rules]]\ntool = {}\n{}",
                toml_string(&glob_literal(&tool.name)),
                suggestion(class)
            );
        }
    }
    out
}

/// The name the AWS Labs Valkey MCP server gives itself in `serverInfo`: the server whose
/// command tools the proxy knows (`policy::command_line`).
const VALKEY_SERVER: &str = "awslabs.valkey-mcp-server";

/// For the Valkey server's command tools, a rule to put before the tool's own: it refuses the
/// dangerous commands by what the server runs (`@words`), however the call spells them.
fn valkey_guard(tool: &str) -> Option<&'static str> {
    match tool {
        "valkey_admin" => Some(
            "# The proxy knows how this tool turns `command` and `args` into the command that\n\
             # runs (`command` upper-cased and split on whitespace, then `args`): @words[0] is its\n\
             # first word, @words[1] the second, whatever the spelling (\"FLUSHALL SYNC\",\n\
             # \"\\uFB02ushall\", \"CONFIG\" with args = [\"SET\", ...]). Words from `args` keep their case\n\
             # and Valkey reads command names in any case, hence ignore_case on @words[1]. These are\n\
             # refused outright; the next rule sends the other admin commands to a person.\n\
             [[rules]]\n\
             tool = \"valkey_admin\"\n\
             action = \"deny\"\n\
             reason = \"flushing, shutting down or reconfiguring the server needs an operator\"\n\
             when = [ { any = [\n    \
             { arg = \"@words[0]\", in = [\"FLUSHALL\", \"FLUSHDB\", \"SHUTDOWN\", \"SWAPDB\", \"DEBUG\", \"MODULE\", \"MIGRATE\"] },\n    \
             { all = [ { arg = \"@words[0]\", eq = \"CONFIG\" }, { arg = \"@words[1]\", eq = \"SET\", ignore_case = true } ] },\n\
             ] } ]\n\n",
        ),
        "valkey_write" => Some(
            "# What runs, not how it is spelt: valkey_write upper-cases `command` and runs it as one\n\
             # word, then `args`. Commands that remove keys are refused; change to\n\
             # require_approval if a person may allow them.\n\
             [[rules]]\n\
             tool = \"valkey_write\"\n\
             action = \"deny\"\n\
             reason = \"removing keys needs an operator\"\n\
             when = [ { arg = \"@words[0]\", in = [\"DEL\", \"UNLINK\", \"GETDEL\", \"FLUSHALL\", \"FLUSHDB\"] } ]\n\n",
        ),
        _ => None,
    }
}

/// A rule's `tool` cannot be empty nor have spaces at its ends.
fn nameable(name: &str) -> bool {
    !name.is_empty() && name.trim() == name
}

/// The name as a glob that matches exactly it: glob characters escaped with a backslash.
fn glob_literal(name: &str) -> String {
    let mut glob = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '{' | '}' | '\\') {
            glob.push('\\');
        }
        glob.push(c);
    }
    glob
}

/// A TOML basic string.
fn toml_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Text from the server made safe for a one-line comment: no control characters (a newline
/// would end the comment; an escape sequence would reach the terminal) and no invisible
/// formatting characters (bidirectional overrides can make a comment read other than it is).
pub(super) fn clean(text: &str) -> String {
    text.chars()
        .filter_map(|c| {
            if c == '\t' {
                Some(' ')
            } else if c.is_control() {
                Some('\u{FFFD}')
            } else if is_invisible(c) {
                None
            } else {
                Some(c)
            }
        })
        .collect()
}

fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}'
    )
}

/// A description as comment lines: line breaks kept, the common indentation of a docstring
/// removed, runs of blank lines folded, long lines wrapped, and very long ones cut.
fn description_lines(description: &str) -> Vec<String> {
    let normalized = description.replace("\r\n", "\n").replace('\r', "\n");
    let lines: Vec<String> = normalized
        .split('\n')
        .map(|line| clean(line).trim_end().to_owned())
        .collect();
    // Python docstrings: the first line starts at once, the others are indented with the code.
    let indent = lines
        .iter()
        .skip(1)
        .filter(|line| !line.is_empty())
        .map(|line| line.len() - line.trim_start_matches(' ').len())
        .min()
        .unwrap_or(0);
    let mut out: Vec<String> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let line = if i == 0 {
            line.trim_start()
        } else {
            line.get(indent..).unwrap_or(line.trim_start())
        };
        if line.is_empty() {
            if out.last().is_some_and(|last| !last.is_empty()) {
                out.push(String::new());
            }
            continue;
        }
        out.extend(wrap(line, COMMENT_WIDTH - 4));
    }
    while out.last().is_some_and(String::is_empty) {
        out.pop();
    }
    if out.len() > MAX_DESCRIPTION_LINES {
        let more = out.len() - MAX_DESCRIPTION_LINES;
        out.truncate(MAX_DESCRIPTION_LINES);
        out.push(format!(
            "[... {more} more line{} of the description]",
            if more == 1 { "" } else { "s" }
        ));
    }
    out
}

/// Wraps a line at spaces to at most `width` characters where it can, keeping its indentation
/// on the lines it continues on.
fn wrap(line: &str, width: usize) -> Vec<String> {
    let indent: String = line.chars().take_while(|&c| c == ' ').collect();
    let mut out = Vec::new();
    let mut current = indent.clone();
    for word in line.split(' ').filter(|w| !w.is_empty()) {
        let used = current.chars().count();
        if used > indent.len() && used + 1 + word.chars().count() > width {
            out.push(std::mem::replace(&mut current, indent.clone()));
        }
        if current.len() > indent.len() {
            current.push(' ');
        }
        current.push_str(word);
    }
    out.push(current);
    out
}

/// The suggested rule body for a class (after `tool = ...`), one key per line.
fn suggestion(class: Class) -> String {
    match class {
        Class::Read => "action = \"allow\"\n".to_owned(),
        Class::Write => format!("action = \"allow\"\nrate_limit = {WRITE_RATE_LIMIT}\n"),
        Class::Destructive => "action = \"require_approval\"\n\
             reason = \"a destructive tool: a person approves each call\"\n"
            .to_owned(),
        Class::Other => "action = \"require_approval\"\n\
             reason = \"not yet reviewed: a person approves each call\"\n"
            .to_owned(),
    }
}

/// What the header says a class gets.
fn summary(class: Class) -> &'static str {
    match class {
        Class::Read => "allow",
        Class::Write => "allow, at most 10 calls a minute",
        Class::Destructive | Class::Other => "require_approval (a person approves each call)",
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn descriptions_are_dedented_cleaned_and_bounded() {
        let docstring = "Get a JSON value.\n\n    Args:\n        key: Valkey key name\n\n\n    Returns:\n        a dict\n    ";
        assert_eq!(
            description_lines(docstring),
            [
                "Get a JSON value.",
                "",
                "Args:",
                "    key: Valkey key name",
                "",
                "Returns:",
                "    a dict"
            ]
        );
        assert_eq!(
            description_lines("bell\u{7} and \u{1b}[31mred\u{1b}[0m\r\nrtl \u{202E}txt"),
            ["bell\u{FFFD} and \u{FFFD}[31mred\u{FFFD}[0m", "rtl txt"]
        );
        let long = "word ".repeat(60);
        let wrapped = description_lines(&long);
        assert!(wrapped.len() > 1);
        assert!(
            wrapped
                .iter()
                .all(|l| l.chars().count() <= COMMENT_WIDTH - 4)
        );
        let many = "line\n".repeat(MAX_DESCRIPTION_LINES + 5);
        let cut = description_lines(&many);
        assert_eq!(cut.len(), MAX_DESCRIPTION_LINES + 1);
        assert_eq!(cut.last().unwrap(), "[... 5 more lines of the description]");
        assert!(description_lines("").is_empty());
    }

    fn tool(name: &str, class: Class, description: &str) -> Tool {
        Tool {
            name: name.to_owned(),
            description: Some(description.to_owned()),
            class,
            basis: Basis::Name,
        }
    }

    #[test]
    fn for_the_valkey_server_dangerous_commands_are_refused_by_what_runs() {
        let scan = Scan {
            command: "uvx awslabs.valkey-mcp-server@latest".to_owned(),
            protocol: "2025-11-25".to_owned(),
            server_name: Some(VALKEY_SERVER.to_owned()),
            server_version: None,
            tools: vec![
                tool("valkey_read", Class::Read, ""),
                tool("valkey_write", Class::Write, ""),
                tool("valkey_admin", Class::Destructive, ""),
            ],
        };
        let text = starter_policy(&scan);
        let config = crate::config::Config::parse(&text)
            .unwrap_or_else(|errors| panic!("{errors}\n---\n{text}"));
        let policy = crate::policy::Policy::new(&config).expect("compiles");
        let decide = |tool: &str, arguments: &str| {
            let call = crate::policy::Call {
                tool,
                arguments: Some(arguments.as_bytes()),
                tool_info: None,
            };
            policy.explain(&call).decision.kind()
        };
        let cases = [
            (
                "valkey_admin",
                r#"{"command":"FLUSHALL SYNC","args":[],"confirm":true}"#,
                "deny",
            ),
            ("valkey_admin", r#"{"command":"\uFB02ushdb"}"#, "deny"),
            (
                "valkey_admin",
                r#"{"command":"config","args":["SET","maxmemory","1"]}"#,
                "deny",
            ),
            (
                "valkey_admin",
                r#"{"command":"CONFIG GET","args":["maxmemory"]}"#,
                "approval_required",
            ),
            (
                "valkey_write",
                r#"{"command":"unlink","args":["k"]}"#,
                "deny",
            ),
            (
                "valkey_write",
                r#"{"command":"SET","args":["k","v"]}"#,
                "allow",
            ),
            ("valkey_read", r#"{"command":"GET","args":["k"]}"#, "allow"),
        ];
        for (tool, arguments, expected) in cases {
            assert_eq!(decide(tool, arguments), expected, "{tool} {arguments}");
        }
        // Another server with tools of the same names gets one rule a tool, as before.
        let other = Scan {
            server_name: Some("mcp-fixture-server".to_owned()),
            ..scan
        };
        let config = crate::config::Config::parse(&starter_policy(&other)).expect("valid");
        assert_eq!(config.rules.len(), 3);
    }

    #[test]
    fn the_starter_policy_is_a_valid_config_with_a_rule_per_tool() {
        let scan = Scan {
            command: "uvx odd-server".to_owned(),
            protocol: "2025-11-25".to_owned(),
            server_name: Some("odd".to_owned()),
            server_version: None,
            tools: vec![
                tool("get_thing", Class::Read, "Reads.\n# not a key = 1"),
                tool("put*thing", Class::Write, "Writes \"quoted\"\u{0}."),
                tool("rm", Class::Destructive, ""),
                tool("weird[1]{a,b}\\", Class::Other, "Odd name."),
                tool(" padded", Class::Other, "Cannot be named."),
            ],
        };
        let text = starter_policy(&scan);
        let config = crate::config::Config::parse(&text)
            .unwrap_or_else(|errors| panic!("{errors}\n---\n{text}"));
        let policy = crate::policy::Policy::new(&config).expect("compiles");
        assert_eq!(config.policy.default, crate::config::DefaultAction::Deny);
        let rules: Vec<(&str, &str)> = config
            .rules
            .iter()
            .map(|r| (r.tool.as_str(), r.action.as_str()))
            .collect();
        assert_eq!(
            rules,
            [
                ("get_thing", "allow"),
                ("put\\*thing", "allow"),
                ("rm", "require_approval"),
                ("weird\\[1\\]\\{a,b\\}\\\\", "require_approval"),
            ]
        );
        let limit = config.rules[1].rate_limit.as_ref().expect("a rate limit");
        assert_eq!((limit.max, limit.window), (10, Duration::from_secs(60)));
        // Each escaped glob matches its own tool, and only it.
        for (i, name) in ["get_thing", "put*thing", "rm", "weird[1]{a,b}\\"]
            .iter()
            .enumerate()
        {
            let rule = &config.rules[i];
            let matches = |tool: &str| match &rule.glob {
                Some(glob) => glob.compile_matcher().is_match(tool),
                None => rule.tool == tool,
            };
            assert!(matches(name), "{name}");
            assert!(!matches("putXthing") && !matches("weird1a"), "{name}");
        }
        let classes: Vec<(&str, usize)> = config
            .classes
            .iter()
            .map(|c| (c.name.as_str(), c.members.len()))
            .collect();
        assert_eq!(
            classes,
            [("read", 1), ("write", 1), ("destructive", 1), ("other", 1)]
        );
        assert!(text.contains("#   Reads.\n#   # not a key = 1\n"), "{text}");
        assert!(text.contains("No rule can name this tool"), "{text}");
        drop(policy);
    }
}
