//! `mcp-policy-proxy check`: is the policy valid, and what does it decide?

use std::fmt::Write as _;
use std::path::Path;

use crate::config::Config;
use crate::policy::Policy;

/// The report `check` prints: each rule and the default, as the proxy reads them.
pub fn report(path: &Path, config: &Config, policy: &Policy) -> String {
    let mut text = format!("{}: valid\n", path.display());
    for rule in policy.rules() {
        let _ = write!(
            text,
            "  rule {}: tool {:?} -> {}",
            rule.number,
            rule.pattern,
            rule.action.as_str()
        );
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
    }
    let _ = write!(
        text,
        "  any other tool -> {}",
        config.policy.default.as_str()
    );
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
