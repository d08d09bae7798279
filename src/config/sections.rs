//! `[server]`, `[policy]` and `[limits]`: the settings around the rules.

use std::path::PathBuf;

use toml::de::DeValue;

use super::walk::{Checker, Value, describe, names, one_of};
use super::{
    DEFAULT_ACTIONS, Limits, MAX_MAX_LINE_BYTES, MIN_MAX_LINE_BYTES, POLICY_MODES, PolicySettings,
    RELOAD_MODES, ServerSpec, VIOLATION_STYLES,
};

pub(super) const SERVER_KEYS: &[&str] = &["command", "args", "env", "cwd"];
pub(super) const POLICY_KEYS: &[&str] = &["default", "violation", "mode", "reload"];
pub(super) const LIMITS_KEYS: &[&str] = &["max_line_bytes"];

impl Checker<'_> {
    pub(super) fn server(&mut self, value: &Value<'_>) -> Option<ServerSpec> {
        let table = self.table(value, "\"server\"", "a table ([server])")?;
        self.reject_unknown_keys(table, SERVER_KEYS, "in [server]");
        let place = "in [server]";

        let command = match table.get("command") {
            None => {
                self.report(
                    value.span(),
                    "[server] has no \"command\"; add the program to run, e.g. command = \"uvx\""
                        .to_owned(),
                );
                None
            }
            Some(value) => {
                let command = self.string(value, "\"command\"", place);
                if command.is_some_and(|c| c.trim().is_empty()) {
                    self.report(
                        value.span(),
                        "\"command\" in [server] is empty; give the program to run, e.g. \"uvx\""
                            .to_owned(),
                    );
                }
                command
            }
        };

        let mut args = Vec::new();
        if let Some(value) = table.get("args")
            && let Some(items) = self.array(value, "\"args\" in [server]", "an array of strings")
        {
            for (i, item) in items.iter().enumerate() {
                let what = format!("argument {} of \"args\"", i + 1);
                if let Some(arg) = self.string(item, &what, place) {
                    args.push(arg.to_owned());
                }
            }
        }

        let mut env = Vec::new();
        if let Some(value) = table.get("env")
            && let Some(vars) = self.table(value, "\"env\" in [server]", "a table of strings")
        {
            let mut entries: Vec<_> = vars.iter().collect();
            entries.sort_by_key(|(key, _)| key.span().start);
            for (key, value) in entries {
                let name: &str = key.get_ref();
                if name.is_empty() || name.contains(['=', '\0']) {
                    self.report(
                        key.span(),
                        format!(
                            "invalid environment variable name {name:?} in [server.env]; \
                                 a name must be non-empty and contain no \"=\" or NUL"
                        ),
                    );
                }
                match value.get_ref() {
                    DeValue::String(text) => env.push((name.to_owned(), text.to_string())),
                    other => {
                        let hint = match other {
                            DeValue::Array(_) | DeValue::Table(_) => "",
                            _ => "; quote the value",
                        };
                        self.report(
                            value.span(),
                            format!(
                                "{name:?} in [server.env] must be a string, found {}{hint}",
                                describe(other)
                            ),
                        );
                    }
                }
            }
        }

        let mut cwd = None;
        if let Some(value) = table.get("cwd")
            && let Some(dir) = self.string(value, "\"cwd\"", place)
        {
            if dir.is_empty() {
                self.report(
                    value.span(),
                    "\"cwd\" in [server] is empty; give a directory or remove the key".to_owned(),
                );
            }
            cwd = Some(PathBuf::from(dir));
        }

        Some(ServerSpec {
            command: command?.to_owned(),
            args,
            env,
            cwd,
        })
    }

    pub(super) fn policy(&mut self, value: &Value<'_>) -> PolicySettings {
        let mut policy = PolicySettings::default();
        let Some(table) = self.table(value, "\"policy\"", "a table ([policy])") else {
            return policy;
        };
        self.reject_unknown_keys(table, POLICY_KEYS, "in [policy]");
        let place = "in [policy]";

        if let Some(value) = table.get("default") {
            match self.string(value, "\"default\"", place) {
                Some(name) if DEFAULT_ACTIONS.contains(&name) => {
                    policy.default = DEFAULT_ACTIONS.parse(name).expect("a known name");
                }
                Some("require_approval") => self.report(
                    value.span(),
                    "default \"require_approval\" in [policy] is not supported; the default \
                     must be \"allow\" or \"deny\" (to ask about every other tool, add a last \
                     rule with tool = \"*\" and action = \"require_approval\")"
                        .to_owned(),
                ),
                Some(other) => self.report(
                    value.span(),
                    format!(
                        "unknown default {other:?} in [policy]; expected {}",
                        one_of(&names(&DEFAULT_ACTIONS))
                    ),
                ),
                None => {}
            }
        }

        if let Some(value) = table.get("violation") {
            match self.string(value, "\"violation\"", place) {
                Some(name) if VIOLATION_STYLES.contains(&name) => {
                    policy.violation = VIOLATION_STYLES.parse(name).expect("a known name");
                }
                Some(other) => self.report(
                    value.span(),
                    format!(
                        "unknown violation style {other:?} in [policy]; expected {}",
                        one_of(&names(&VIOLATION_STYLES))
                    ),
                ),
                None => {}
            }
        }

        if let Some(value) = table.get("mode") {
            match self.string(value, "\"mode\"", place) {
                Some(name) if POLICY_MODES.contains(&name) => {
                    policy.mode = POLICY_MODES.parse(name).expect("a known name");
                }
                Some(other) => self.report(
                    value.span(),
                    format!(
                        "unknown mode {other:?} in [policy]; expected {}",
                        one_of(&names(&POLICY_MODES))
                    ),
                ),
                None => {}
            }
        }

        if let Some(value) = table.get("reload") {
            match self.string(value, "\"reload\"", place) {
                Some(name) if RELOAD_MODES.contains(&name) => {
                    policy.reload = RELOAD_MODES.parse(name).expect("a known name");
                }
                Some(other) => self.report(
                    value.span(),
                    format!(
                        "unknown reload {other:?} in [policy]; expected {}",
                        one_of(&names(&RELOAD_MODES))
                    ),
                ),
                None => {}
            }
        }
        policy
    }

    pub(super) fn limits(&mut self, value: &Value<'_>) -> Limits {
        let mut limits = Limits::default();
        let Some(table) = self.table(value, "\"limits\"", "a table ([limits])") else {
            return limits;
        };
        self.reject_unknown_keys(table, LIMITS_KEYS, "in [limits]");

        if let Some(value) = table.get("max_line_bytes")
            && let Some(n) = self.integer(value, "\"max_line_bytes\"", "in [limits]")
        {
            match usize::try_from(n) {
                Ok(n) if (MIN_MAX_LINE_BYTES..=MAX_MAX_LINE_BYTES).contains(&n) => {
                    limits.max_line_bytes = n;
                }
                _ => self.report(
                    value.span(),
                    format!(
                        "max_line_bytes {} in [limits] is out of range; expected an integer \
                             from {MIN_MAX_LINE_BYTES} to {MAX_MAX_LINE_BYTES} (1 GiB)",
                        self.as_written(value)
                    ),
                ),
            }
        }
        limits
    }
}
