//! `mcp-policy-proxy check`: is the policy valid, and what does it decide?

use std::fmt::Write as _;
use std::path::Path;

use crate::config::Config;
use crate::policy::command_line::{BUILTIN_TOOLS, CommandLine};
use crate::policy::{Policy, Rule};

/// A folder the server is given as an argument (`/srv/data`, `--root=/srv`) that holds the
/// policy file: a server that writes files there can loosen the policy that governs it.
pub fn within_reach(
    policy: &Path,
    args: &[std::ffi::OsString],
    cwd: Option<&Path>,
) -> Option<std::path::PathBuf> {
    // The file as the proxy reads it (its folder resolved, the name as given: a link the server
    // could replace) and what it points to.
    let as_read = policy
        .parent()
        .and_then(|dir| {
            std::fs::canonicalize(if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            })
            .ok()
        })
        .zip(policy.file_name())
        .map(|(dir, name)| dir.join(name));
    let target = std::fs::canonicalize(policy).ok();
    let holds = |dir: &Path| {
        as_read.as_deref().is_some_and(|p| p.starts_with(dir))
            || target.as_deref().is_some_and(|p| p.starts_with(dir))
    };
    // The server's working folder is within its reach too.
    if let Some(dir) = cwd.and_then(|cwd| std::fs::canonicalize(cwd).ok())
        && holds(&dir)
    {
        return Some(dir);
    }
    args.iter().find_map(|arg| {
        let text = arg.to_string_lossy();
        let value = text.split_once('=').map_or(&*text, |(_, value)| value);
        if value.is_empty() {
            return None;
        }
        let dir = match cwd {
            Some(cwd) => cwd.join(value),
            None => Path::new(value).to_owned(),
        };
        let dir = std::fs::canonicalize(dir).ok()?;
        // A folder that holds the policy, or the policy file itself.
        holds(&dir).then_some(dir)
    })
}

/// What `check` says when the server is given a folder that holds the policy file.
pub fn reach_warning(policy: &Path, dir: &Path, reload: crate::config::ReloadMode) -> String {
    let reload = match reload {
        crate::config::ReloadMode::File => {
            " and the proxy reloads it when it changes ([policy] reload = \"file\")"
        }
        _ => "",
    };
    format!(
        "warning: the server is given the folder {} as an argument, which holds this policy \
         file ({}){reload}: a server that can write files there can loosen its own policy. Keep \
         the policy outside every folder the server can write, or set [policy] reload = \
         \"never\" (or \"signal\")",
        dir.display(),
        policy.display()
    )
}

/// The report `check` prints: each rule and the default, as the proxy reads them.
pub fn report(path: &Path, config: &Config, policy: &Policy) -> String {
    let mut text = format!("{}: valid\n", path.display());
    if let Some(server) = &config.server {
        let args: Vec<std::ffi::OsString> = server.args.iter().map(Into::into).collect();
        if let Some(dir) = within_reach(path, &args, server.cwd.as_deref()) {
            let _ = writeln!(
                text,
                "  {}",
                reach_warning(path, &dir, config.policy.reload)
            );
        }
    }
    for rule in policy.rules() {
        let covers = match &rule.class {
            Some(class) if rule.pattern == "*" => format!("class {class:?}"),
            Some(class) => format!("tool {:?} in class {class:?}", rule.pattern),
            None => format!("tool {:?}", rule.pattern),
        };
        let _ = write!(
            text,
            "  rule {}: {covers}{} -> {}",
            rule.number,
            rule.when
                .as_ref()
                .map(|when| format!(" when {}", when.describe()))
                .unwrap_or_default(),
            rule.action.as_str()
        );
        if rule.shadow {
            text.push_str(" (shadow: only logged)");
        }
        if let Some(name) = &rule.name {
            let _ = write!(text, " [{name}]");
        }
        if let Some(limit) = &rule.rate_limit {
            let _ = write!(text, ", at most {} per {:?}", limit.max, limit.window);
        }
        if rule.hide {
            text.push_str(", hidden from tools/list");
        }
        if rule.session_grant == crate::config::SessionGrant::Tool {
            text.push_str(", approve-for-session covers the whole tool");
        }
        if let Some(reason) = &rule.reason {
            let _ = write!(text, " ({reason})");
        }
        text.push('\n');
        if let Some(note) = command_note(policy, rule) {
            let _ = writeln!(text, "    {note}");
        }
    }
    let _ = write!(
        text,
        "  any other tool -> {}",
        config.policy.default.as_str()
    );
    if config.policy.mode == crate::config::PolicyMode::Shadow {
        text.push_str(
            "\n  mode: shadow (every call is forwarded; what the rules would refuse is logged)",
        );
    }
    for class in &config.classes {
        let members: Vec<String> = class
            .members
            .iter()
            .map(|member| match member {
                crate::config::ClassMember::Tool(name, _) => name.clone(),
                crate::config::ClassMember::Hint { hint, wanted } => format!(
                    "@{}{}",
                    if *wanted { "" } else { "!" },
                    crate::config::HINTS.name_of(*hint)
                ),
            })
            .collect();
        let _ = write!(text, "\n  class {:?}: {}", class.name, members.join(", "));
    }
    let pinning = match config.pinning.mode {
        crate::config::PinMode::Refuse => "a tool whose definition changes mid-session is refused",
        crate::config::PinMode::Log => "a tool whose definition changes mid-session is logged",
        crate::config::PinMode::Off => "off",
    };
    let _ = write!(text, "\n  pinning: {pinning}");
    if let Some(file) = &config.pinning.file {
        let _ = write!(text, " (pins from {})", file.display());
    }
    let approval = &config.approval;
    let channels: Vec<&str> = approval.channels.iter().map(|c| c.as_str()).collect();
    let _ = write!(
        text,
        "\n  approval: ask by {} within {:?}",
        if channels.is_empty() {
            "nothing".to_owned()
        } else {
            channels.join(" and ")
        },
        approval.timeout
    );
    if let Some(command) = &approval.command {
        let _ = write!(text, " (command: {})", command.join(" "));
    }
    if let Some(server) = &config.server {
        let _ = write!(
            text,
            "\n  server: {} {}",
            server.command,
            server.args.join(" ")
        );
    }
    text
}

/// What `check` says of a rule that tests the command argument of a tool whose command line the
/// proxy knows: the shapes it refuses rather than judge, and how to judge what runs instead.
fn command_note(policy: &Policy, rule: &Rule) -> Option<String> {
    let when = rule.when.as_ref()?;
    let lines = policy.command_lines();
    let pattern = globset::Glob::new(&rule.pattern)
        .ok()
        .map(|g| g.compile_matcher());
    let covers =
        |tool: &str| rule.pattern == tool || pattern.as_ref().is_some_and(|m| m.is_match(tool));
    let mut tools: Vec<&str> = BUILTIN_TOOLS
        .iter()
        .copied()
        .chain(std::iter::once(rule.pattern.as_str()))
        .filter(|tool| covers(tool))
        .collect();
    tools.dedup();
    let mut path = None;
    tools.retain(|tool| {
        let command = lines.for_tool(tool).and_then(CommandLine::command_path);
        match command {
            Some(command) if when.reads(command) => {
                path = Some(command.text.clone());
                true
            }
            _ => false,
        }
    });
    let path = path?;
    let names: Vec<String> = tools.iter().map(|t| format!("{t:?}")).collect();
    Some(format!(
        "note: the proxy knows how {} turn{} `{path}` and the other arguments into the command \
         that runs; a call that this condition would read otherwise than what runs (\"FLUSHALL \
         SYNC\" to valkey_admin, which runs FLUSHALL then SYNC; \"flushall\" without \
         ignore_case; CONFIG with SET in args, against \"CONFIG SET\") is refused as \
         unjudgeable_arguments, with the reason. Test @words[0], @words[1], ... to judge what \
         runs",
        names.join(", "),
        if names.len() == 1 { "s" } else { "" },
    ))
}
