//! `[[rules]]`: which tools each rule covers, what it does, and its rate limit.

use std::ops::Range;
use std::time::Duration;

use toml::de::DeValue;

use super::walk::{Checker, Value, describe, integer_value, list, names, one_of};
use super::{
    ACTIONS, Action, LimitScope, MAX_RATE_LIMIT_MAX, MAX_RATE_WINDOW, RateLimitSpec, RuleSpec,
    SESSION_GRANTS, SessionGrant, parse_duration,
};

pub(super) const RULE_KEYS: &[&str] = &[
    "name",
    "tool",
    "action",
    "reason",
    "rate_limit",
    "hide",
    "session_grant",
    "when",
    "class",
    "shadow",
];
/// Characters that make a `tool` pattern a glob rather than an exact name.
const GLOB_META: &[char] = &['*', '?', '[', ']', '{', '}', '\\'];
const RATE_LIMIT_KEYS: &[&str] = &["max", "window", "scope"];

/// What the window messages say is accepted.
const WINDOW_FORMS: &str = "whole seconds such as 60, or a whole number with a unit: \
                            \"500ms\", \"90s\", \"5m\", \"1h\", \"1d\"";

impl Checker<'_> {
    pub(super) fn rules(&mut self, value: &Value<'_>) -> Vec<RuleSpec> {
        let Some(items) = self.array(value, "\"rules\"", "an array of tables ([[rules]])") else {
            return Vec::new();
        };
        let mut rules = Vec::new();
        for (i, item) in items.iter().enumerate() {
            if let Some(rule) = self.rule(i + 1, item) {
                rules.push(rule);
            }
        }
        rules
    }

    pub(super) fn rule(&mut self, number: usize, value: &Value<'_>) -> Option<RuleSpec> {
        let what = format!("rule {number}");
        let table = self.table(value, &what, "a table ([[rules]])")?;
        let place = format!("in rule {number}");
        self.reject_unknown_keys(table, RULE_KEYS, &place);

        let name = table
            .get("name")
            .and_then(|value| self.string(value, "\"name\"", &place))
            .map(str::to_owned);
        let reason = table
            .get("reason")
            .and_then(|value| self.string(value, "\"reason\"", &place))
            .map(str::to_owned);

        let class = match table.get("class") {
            Some(value) => self.string(value, "\"class\"", &place).map(|name| {
                self.class_references.push((name.to_owned(), value.span()));
                name.to_owned()
            }),
            None => None,
        };
        let tool = match table.get("tool") {
            // A rule about a class covers every tool of the class.
            None if class.is_some() => {
                Some(("*", Some(globset::Glob::new("*").expect("a valid glob"))))
            }
            None => {
                self.report(
                    value.span(),
                    format!(
                        "rule {number} has no \"tool\"; add tool = \"<exact name or glob>\", \
                         e.g. tool = \"valkey_*\""
                    ),
                );
                None
            }
            Some(pattern) => self.string(pattern, "\"tool\"", &place).and_then(|tool| {
                let glob = self.tool_pattern(number, tool, pattern.span())?;
                Some((tool, glob))
            }),
        };

        let action = match table.get("action") {
            None => {
                self.report(
                    value.span(),
                    format!(
                        "rule {number} has no \"action\"; expected one of {}",
                        list(&names(&ACTIONS))
                    ),
                );
                None
            }
            Some(value) => match self.string(value, "\"action\"", &place) {
                Some(name) if ACTIONS.contains(&name) => ACTIONS.parse(name),
                Some(other) => {
                    self.report(
                        value.span(),
                        format!(
                            "unknown action {other:?} in rule {number}; expected {}",
                            one_of(&names(&ACTIONS))
                        ),
                    );
                    None
                }
                None => None,
            },
        };

        let mut rate_limit = None;
        if let Some((key, value)) = table.get_key_value("rate_limit") {
            if let Some(action) = action.filter(|&a| a != Action::Allow) {
                self.report(
                    key.span(),
                    format!(
                        "\"rate_limit\" in rule {number} only applies to action \"allow\" (it \
                         limits calls that would otherwise be allowed), but the action is \
                         \"{action}\"; remove the rate_limit or change the action"
                    ),
                );
            }
            rate_limit = self.rate_limit(number, value);
        }

        let mut hide = false;
        if let Some((key, value)) = table.get_key_value("hide")
            && let Some(flag) = self.boolean(value, "\"hide\"", &place)
        {
            hide = flag;
            if let Some(action) = action.filter(|&a| flag && a != Action::Deny) {
                self.report(
                    key.span(),
                    format!(
                        "\"hide\" in rule {number} only applies to action \"deny\", but the \
                             action is \"{action}\"; remove hide = true or change the action"
                    ),
                );
            }
        }

        let mut session_grant = SessionGrant::default();
        if let Some((key, value)) = table.get_key_value("session_grant") {
            match self.string(value, "\"session_grant\"", &place) {
                Some(name) if SESSION_GRANTS.contains(&name) => {
                    session_grant = SESSION_GRANTS.parse(name).expect("a known name");
                    if let Some(action) = action.filter(|&a| a != Action::RequireApproval) {
                        self.report(
                            key.span(),
                            format!(
                                "\"session_grant\" in rule {number} only applies to action \
                                 \"require_approval\", but the action is \"{action}\"; remove it \
                                 or change the action"
                            ),
                        );
                    }
                }
                Some(other) => self.report(
                    value.span(),
                    format!(
                        "unknown session_grant {other:?} in rule {number}; expected {}",
                        one_of(&names(&SESSION_GRANTS))
                    ),
                ),
                None => {}
            }
        }

        let when = table
            .get("when")
            .and_then(|value| self.when(number, value))
            .map(super::When);
        if let (Some(when), Some((tool, None)), None, Some(value)) =
            (&when, &tool, &class, table.get("when"))
            && when.0.reads_words()
        {
            self.words_references
                .push(((*tool).to_owned(), value.span()));
        }
        let shadow = table
            .get("shadow")
            .and_then(|value| self.boolean(value, "\"shadow\"", &place))
            .unwrap_or(false);

        Some(RuleSpec {
            number,
            line: self.position(value.span().start).0,
            name,
            tool: tool.as_ref().map(|(tool, _)| tool.to_string())?,
            glob: tool.and_then(|(_, glob)| glob),
            action: action?,
            reason,
            rate_limit,
            hide,
            session_grant,
            when,
            class,
            shadow,
        })
    }

    /// `tool` as a pattern: `Some(None)` for an exact name, `Some(Some(glob))` for a glob, and
    /// `None` (with the problem reported) when it is unusable.
    pub(super) fn tool_pattern(
        &mut self,
        number: usize,
        tool: &str,
        span: Range<usize>,
    ) -> Option<Option<globset::Glob>> {
        if tool.is_empty() {
            self.report(
                span,
                format!(
                    "\"tool\" in rule {number} is empty; give an exact tool name or a glob such \
                     as \"valkey_*\""
                ),
            );
            return None;
        }
        if tool.trim() != tool {
            // Tool names never carry spaces at their ends, so such a rule would never match.
            self.report(
                span,
                format!(
                    "tool {tool:?} in rule {number} has leading or trailing whitespace, so it \
                     would never match; remove the whitespace"
                ),
            );
            return None;
        }
        match globset::GlobBuilder::new(tool)
            .literal_separator(false)
            .build()
        {
            // Exact names are matched by a map lookup; only patterns with glob characters go
            // into the policy's glob set.
            Ok(glob) => Some(tool.contains(GLOB_META).then_some(glob)),
            Err(error) => {
                self.report(
                    span,
                    format!(
                        "invalid tool pattern {tool:?} in rule {number}: {}; a pattern is an exact \
                         name or a glob using * ? [...] {{a,b}}",
                        error.kind()
                    ),
                );
                None
            }
        }
    }

    pub(super) fn rate_limit(&mut self, number: usize, value: &Value<'_>) -> Option<RateLimitSpec> {
        let what = format!("\"rate_limit\" in rule {number}");
        let table = self.table(
            value,
            &what,
            "a table such as { max = 10, window = \"60s\" }",
        )?;
        let place = format!("in the rate_limit of rule {number}");
        self.reject_unknown_keys(table, RATE_LIMIT_KEYS, &place);

        let max = match table.get("max") {
            None => {
                self.report(
                    value.span(),
                    format!("the rate_limit of rule {number} has no \"max\"; add e.g. max = 10"),
                );
                None
            }
            Some(max) => self.integer(max, "\"max\"", &place).and_then(|n| {
                let valid = u32::try_from(n)
                    .ok()
                    .filter(|n| (1..=MAX_RATE_LIMIT_MAX).contains(n));
                if valid.is_none() {
                    self.report(
                        max.span(),
                        format!(
                            "max {} {place} is out of range; expected an integer from 1 to \
                             {MAX_RATE_LIMIT_MAX}",
                            self.as_written(max)
                        ),
                    );
                }
                valid
            }),
        };

        let window = match table.get("window") {
            None => {
                self.report(
                    value.span(),
                    format!(
                        "the rate_limit of rule {number} has no \"window\"; add e.g. \
                         window = \"60s\""
                    ),
                );
                None
            }
            Some(window) => self.window(window, &place),
        };

        let scope = match table.get("scope") {
            None => LimitScope::Session,
            Some(value) => self.scope(value, &place)?,
        };

        Some(RateLimitSpec {
            max: max?,
            window: window?,
            scope,
        })
    }

    /// `scope`: "session", "global", or a key with `${ENV}` parts, expanded now.
    fn scope(&mut self, value: &Value<'_>, place: &str) -> Option<LimitScope> {
        let text = self.string(value, "\"scope\"", place)?;
        let scope = match text {
            "session" => LimitScope::Session,
            "global" => LimitScope::Global,
            template => {
                let mut expanded = String::new();
                let mut rest = template;
                while let Some(start) = rest.find("${") {
                    expanded.push_str(&rest[..start]);
                    let Some(end) = rest[start..].find('}') else {
                        self.report(
                            value.span(),
                            format!("unclosed \"${{\" in scope {template:?} {place}"),
                        );
                        return None;
                    };
                    let name = &rest[start + 2..start + end];
                    match std::env::var(name) {
                        Ok(part) if !part.is_empty() => expanded.push_str(&part),
                        _ => {
                            self.report(
                                value.span(),
                                format!(
                                    "the environment variable {name:?} in scope {template:?} \
                                     {place} is not set (or empty), so the key it names is \
                                     unknown"
                                ),
                            );
                            return None;
                        }
                    }
                    rest = &rest[start + end + 1..];
                }
                expanded.push_str(rest);
                if expanded.trim().is_empty() {
                    self.report(
                        value.span(),
                        format!(
                            "scope {template:?} {place} is empty; use \"session\", \"global\" \
                             or a key such as \"agent:${{CI_JOB_ID}}\""
                        ),
                    );
                    return None;
                }
                LimitScope::Key(expanded)
            }
        };
        if scope.is_fleet() {
            self.fleet_scopes.push(value.span());
        }
        Some(scope)
    }

    pub(super) fn window(&mut self, value: &Value<'_>, place: &str) -> Option<Duration> {
        let (shown, parsed) = match value.get_ref() {
            DeValue::String(text) => (format!("{text:?}"), parse_duration(text)),
            DeValue::Integer(_) => {
                let seconds = integer_value(value.get_ref())?;
                let shown = self.as_written(value).to_owned();
                if seconds < 0 {
                    self.report(
                        value.span(),
                        format!("window {shown} {place} is negative; expected {WINDOW_FORMS}"),
                    );
                    return None;
                }
                let seconds = u64::try_from(seconds).unwrap_or(u64::MAX);
                (shown, Some(Duration::from_secs(seconds)))
            }
            other => {
                self.report(
                    value.span(),
                    format!(
                        "\"window\" {place} must be a duration, found {}; expected {WINDOW_FORMS}",
                        describe(other)
                    ),
                );
                return None;
            }
        };
        let Some(window) = parsed else {
            self.report(
                value.span(),
                format!("invalid window {shown} {place}; expected {WINDOW_FORMS}"),
            );
            return None;
        };
        let problem = if window.is_zero() {
            "is zero"
        } else if window > MAX_RATE_WINDOW {
            "is longer than 7 days"
        } else {
            return Some(window);
        };
        self.report(
            value.span(),
            format!("window {shown} {place} {problem}; expected a duration from \"1ms\" to \"7d\""),
        );
        None
    }
}
