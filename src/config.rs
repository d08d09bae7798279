//! The configuration file: TOML text in, a validated [`Config`] out.
//!
//! This module owns the file format and every check that needs nothing but the text: syntax,
//! unknown keys, types, actions, tool globs, rate limits and size limits. It reports every
//! problem at once, each with its line and column, and a text with any problem never becomes a
//! `Config`, so a mistyped policy leaves the proxy nothing to start a server with. What the rules
//! mean at run time (matching a call, counting calls, asking for approval) belongs to the policy
//! engine; this module only guarantees that it receives well-formed rules.
//!
//! House style (STYLE.md, point 6) suggests serde structs with `deny_unknown_fields`. Serde stops
//! at the first error, though, and we want all of them, so the document is parsed into
//! `toml::de::DeTable` (which keeps the span of every key and value) and walked by hand.

use std::fmt;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// The default for `[limits] max_line_bytes`. Every MCP message over stdio is one line, and a
/// tool result can legitimately carry a few MiB (a base64 image, a large JSON document); 16 MiB
/// leaves room for those while capping what a runaway peer can make the proxy buffer.
pub const DEFAULT_MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// The smallest accepted `max_line_bytes`: below this even an `initialize` exchange or a
/// `tools/list` answer from a small server does not fit, so a smaller value is a mistake.
pub const MIN_MAX_LINE_BYTES: usize = 1024;

/// The largest accepted `max_line_bytes`: a line is held in memory whole before it is judged, so
/// the limit is also a memory bound; beyond 1 GiB it no longer protects anything.
pub const MAX_MAX_LINE_BYTES: usize = 1024 * 1024 * 1024;

/// The largest accepted `rate_limit.max`. The sliding-window limiter remembers one timestamp
/// per admitted call, so this bounds its memory per rule and session (about 16 MB); a budget
/// larger than this is no limit in practice.
pub const MAX_RATE_LIMIT_MAX: u32 = 1_000_000;

/// The longest accepted `rate_limit.window`. A week outlives any realistic session, so a longer
/// window is almost always a unit mistake ("60d" for "60s"); the bound also keeps
/// `Instant + window` far from overflow.
pub const MAX_RATE_WINDOW: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// A validated configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    /// The child to spawn when none is given on the command line.
    pub server: Option<ServerSpec>,
    pub policy: PolicySettings,
    /// In file order: the first rule whose `tool` matches decides.
    pub rules: Vec<RuleSpec>,
    pub limits: Limits,
}

/// `[server]`: the MCP server to run behind the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSpec {
    pub command: String,
    pub args: Vec<String>,
    /// Added to the proxy's own environment, in file order.
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
}

/// `[policy]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PolicySettings {
    /// What happens to a tool no rule matches.
    pub default: DefaultAction,
    /// How a refused call is answered.
    pub violation: ViolationStyle,
}

/// The action for a tool no rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DefaultAction {
    #[default]
    Allow,
    Deny,
}

impl DefaultAction {
    pub fn as_str(&self) -> &'static str {
        match self {
            DefaultAction::Allow => "allow",
            DefaultAction::Deny => "deny",
        }
    }
}

impl From<DefaultAction> for Action {
    fn from(action: DefaultAction) -> Action {
        match action {
            DefaultAction::Allow => Action::Allow,
            DefaultAction::Deny => Action::Deny,
        }
    }
}

/// How a refused `tools/call` is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ViolationStyle {
    /// A `CallToolResult` with `isError: true`, which the model sees and can react to.
    #[default]
    Result,
    /// A JSON-RPC error response.
    JsonRpcError,
}

impl ViolationStyle {
    pub fn as_str(&self) -> &'static str {
        match self {
            ViolationStyle::Result => "result",
            ViolationStyle::JsonRpcError => "jsonrpc_error",
        }
    }
}

/// `[limits]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The longest message accepted in either direction, in bytes.
    pub max_line_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
        }
    }
}

/// One `[[rules]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSpec {
    /// 1-based position among the rules.
    pub number: usize,
    /// The line of the rule's `[[rules]]` header (or of its `{` when written inline).
    pub line: usize,
    pub name: Option<String>,
    /// The pattern as written: an exact tool name or a glob; known to compile.
    pub tool: String,
    pub action: Action,
    pub reason: Option<String>,
    /// Only with `Action::Allow`.
    pub rate_limit: Option<RateLimitSpec>,
    /// Also remove the tool from `tools/list`; only with `Action::Deny`.
    pub hide: bool,
}

/// What a rule does with a matching call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Allow,
    Deny,
    RequireApproval,
}

impl Action {
    pub fn as_str(&self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Deny => "deny",
            Action::RequireApproval => "require_approval",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// At most `max` calls in any sliding `window`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitSpec {
    pub max: u32,
    pub window: Duration,
}

/// Everything wrong with a configuration text, sorted by position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// One problem, at a 1-based line and column (the column counts characters, not bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

/// Why a configuration file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {}", .path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("invalid configuration in {}:{}", .path.display(), Indented(.errors))]
    Invalid { path: PathBuf, errors: ConfigErrors },
}

/// Shows each problem on its own indented line, after a header line.
struct Indented<'a>(&'a ConfigErrors);

impl fmt::Display for Indented<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for problem in &self.0.problems {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}

impl Config {
    /// Parses and validates `text`, collecting every problem rather than stopping at the first.
    pub fn parse(text: &str) -> Result<Config, ConfigErrors> {
        let mut checker = Checker::new(text);
        let (document, syntax_errors) = DeTable::parse_recoverable(text);
        // A document with syntax errors is only partly recovered; walking it would add
        // problems (a missing `tool`, say) that are just echoes of the syntax error.
        let config = if syntax_errors.is_empty() {
            checker.document(document.get_ref())
        } else {
            for error in &syntax_errors {
                checker.syntax_error(error);
            }
            Config::default()
        };
        checker.finish(config)
    }

    /// Reads the file at `path`, then [`Config::parse`]s it.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text).map_err(|errors| ConfigError::Invalid {
            path: path.to_owned(),
            errors,
        })
    }
}

/// Parses a duration written as `<whole number><unit>`, the unit one of `ms`, `s`, `m`, `h`,
/// `d` ("500ms", "90s", "5m", "1h", "1d"). Returns `None` for anything else; a value too large
/// to represent saturates to `Duration::MAX` so that range checks reject it as too long.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    if number.is_empty() {
        return None;
    }
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    let millis = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(millis_per_unit));
    Some(millis.map_or(Duration::MAX, Duration::from_millis))
}

const TOP_LEVEL_KEYS: &[&str] = &["server", "policy", "limits", "rules"];
const SERVER_KEYS: &[&str] = &["command", "args", "env", "cwd"];
const POLICY_KEYS: &[&str] = &["default", "violation"];
const LIMITS_KEYS: &[&str] = &["max_line_bytes"];
const RULE_KEYS: &[&str] = &["name", "tool", "action", "reason", "rate_limit", "hide"];
const RATE_LIMIT_KEYS: &[&str] = &["max", "window"];
const ACTIONS: &[&str] = &["allow", "deny", "require_approval"];
const DEFAULT_ACTIONS: &[&str] = &["allow", "deny"];
const VIOLATION_STYLES: &[&str] = &["result", "jsonrpc_error"];

/// What the window messages say is accepted.
const WINDOW_FORMS: &str = "whole seconds such as 60, or a whole number with a unit: \
                            \"500ms\", \"90s\", \"5m\", \"1h\", \"1d\"";

type Value<'i> = Spanned<DeValue<'i>>;

/// Walks a parsed document, turning it into a `Config` and collecting problems on the way.
/// The partial `Config` it builds is thrown away if any problem was found.
struct Checker<'t> {
    text: &'t str,
    /// Byte offset at which each line starts.
    line_starts: Vec<usize>,
    problems: Vec<Problem>,
}

impl<'t> Checker<'t> {
    fn new(text: &'t str) -> Checker<'t> {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Checker {
            text,
            line_starts,
            problems: Vec::new(),
        }
    }

    fn finish(mut self, config: Config) -> Result<Config, ConfigErrors> {
        if self.problems.is_empty() {
            return Ok(config);
        }
        // Stable, so problems at the same place keep the order they were found in.
        self.problems.sort_by_key(|p| (p.line, p.column));
        Err(ConfigErrors {
            problems: self.problems,
        })
    }

    /// The 1-based line and character column of a byte offset.
    fn position(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let line_start = self.line_starts[line - 1];
        let column = self.text[line_start..offset].chars().count() + 1;
        (line, column)
    }

    fn report(&mut self, span: Range<usize>, message: String) {
        let (line, column) = self.position(span.start);
        self.problems.push(Problem {
            line,
            column,
            message,
        });
    }

    fn syntax_error(&mut self, error: &toml::de::Error) {
        let span = error.span().unwrap_or(0..0);
        let mut message = format!("invalid toml: {}", error.message());
        // The parser's "duplicate key" does not say which key.
        if let Some(key) = self.text.get(span.clone()).filter(|key| !key.is_empty()) {
            if error.message() == "duplicate key" {
                message.push_str(&format!(" {key:?}"));
            }
        }
        self.report(span, message);
    }

    fn document(&mut self, root: &DeTable<'_>) -> Config {
        self.reject_unknown_keys(root, TOP_LEVEL_KEYS, "at the top level");
        let mut config = Config::default();
        if let Some(value) = root.get("server") {
            config.server = self.server(value);
        }
        if let Some(value) = root.get("policy") {
            config.policy = self.policy(value);
        }
        if let Some(value) = root.get("limits") {
            config.limits = self.limits(value);
        }
        if let Some(value) = root.get("rules") {
            config.rules = self.rules(value);
        }
        config
    }

    fn server(&mut self, value: &Value<'_>) -> Option<ServerSpec> {
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
        if let Some(value) = table.get("args") {
            if let Some(items) = self.array(value, "\"args\" in [server]", "an array of strings") {
                for (i, item) in items.iter().enumerate() {
                    let what = format!("argument {} of \"args\"", i + 1);
                    if let Some(arg) = self.string(item, &what, place) {
                        args.push(arg.to_owned());
                    }
                }
            }
        }

        let mut env = Vec::new();
        if let Some(value) = table.get("env") {
            if let Some(vars) = self.table(value, "\"env\" in [server]", "a table of strings") {
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
        }

        let mut cwd = None;
        if let Some(value) = table.get("cwd") {
            if let Some(dir) = self.string(value, "\"cwd\"", place) {
                if dir.is_empty() {
                    self.report(
                        value.span(),
                        "\"cwd\" in [server] is empty; give a directory or remove the key"
                            .to_owned(),
                    );
                }
                cwd = Some(PathBuf::from(dir));
            }
        }

        Some(ServerSpec {
            command: command?.to_owned(),
            args,
            env,
            cwd,
        })
    }

    fn policy(&mut self, value: &Value<'_>) -> PolicySettings {
        let mut policy = PolicySettings::default();
        let Some(table) = self.table(value, "\"policy\"", "a table ([policy])") else {
            return policy;
        };
        self.reject_unknown_keys(table, POLICY_KEYS, "in [policy]");
        let place = "in [policy]";

        if let Some(value) = table.get("default") {
            match self.string(value, "\"default\"", place) {
                Some("allow") => policy.default = DefaultAction::Allow,
                Some("deny") => policy.default = DefaultAction::Deny,
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
                        one_of(DEFAULT_ACTIONS)
                    ),
                ),
                None => {}
            }
        }

        if let Some(value) = table.get("violation") {
            match self.string(value, "\"violation\"", place) {
                Some("result") => policy.violation = ViolationStyle::Result,
                Some("jsonrpc_error") => policy.violation = ViolationStyle::JsonRpcError,
                Some(other) => self.report(
                    value.span(),
                    format!(
                        "unknown violation style {other:?} in [policy]; expected {}",
                        one_of(VIOLATION_STYLES)
                    ),
                ),
                None => {}
            }
        }
        policy
    }

    fn limits(&mut self, value: &Value<'_>) -> Limits {
        let mut limits = Limits::default();
        let Some(table) = self.table(value, "\"limits\"", "a table ([limits])") else {
            return limits;
        };
        self.reject_unknown_keys(table, LIMITS_KEYS, "in [limits]");

        if let Some(value) = table.get("max_line_bytes") {
            if let Some(n) = self.integer(value, "\"max_line_bytes\"", "in [limits]") {
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
        }
        limits
    }

    fn rules(&mut self, value: &Value<'_>) -> Vec<RuleSpec> {
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

    fn rule(&mut self, number: usize, value: &Value<'_>) -> Option<RuleSpec> {
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

        let tool = match table.get("tool") {
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
            Some(pattern) => self
                .string(pattern, "\"tool\"", &place)
                .filter(|tool| self.check_tool_pattern(number, tool, pattern.span())),
        };

        let action = match table.get("action") {
            None => {
                self.report(
                    value.span(),
                    format!(
                        "rule {number} has no \"action\"; expected one of {}",
                        list(ACTIONS)
                    ),
                );
                None
            }
            Some(value) => match self.string(value, "\"action\"", &place) {
                Some("allow") => Some(Action::Allow),
                Some("deny") => Some(Action::Deny),
                Some("require_approval") => Some(Action::RequireApproval),
                Some(other) => {
                    self.report(
                        value.span(),
                        format!(
                            "unknown action {other:?} in rule {number}; expected {}",
                            one_of(ACTIONS)
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
        if let Some((key, value)) = table.get_key_value("hide") {
            if let Some(flag) = self.boolean(value, "\"hide\"", &place) {
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
        }

        Some(RuleSpec {
            number,
            line: self.position(value.span().start).0,
            name,
            tool: tool?.to_owned(),
            action: action?,
            reason,
            rate_limit,
            hide,
        })
    }

    /// Whether `tool` is usable as a pattern; reports why not.
    fn check_tool_pattern(&mut self, number: usize, tool: &str, span: Range<usize>) -> bool {
        if tool.is_empty() {
            self.report(
                span,
                format!(
                    "\"tool\" in rule {number} is empty; give an exact tool name or a glob such \
                     as \"valkey_*\""
                ),
            );
            return false;
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
            return false;
        }
        match globset::GlobBuilder::new(tool)
            .literal_separator(false)
            .build()
        {
            Ok(_) => true,
            Err(error) => {
                self.report(
                    span,
                    format!(
                        "invalid tool pattern {tool:?} in rule {number}: {}; a pattern is an exact \
                         name or a glob using * ? [...] {{a,b}}",
                        error.kind()
                    ),
                );
                false
            }
        }
    }

    fn rate_limit(&mut self, number: usize, value: &Value<'_>) -> Option<RateLimitSpec> {
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

        Some(RateLimitSpec {
            max: max?,
            window: window?,
        })
    }

    fn window(&mut self, value: &Value<'_>, place: &str) -> Option<Duration> {
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

    fn reject_unknown_keys(&mut self, table: &DeTable<'_>, allowed: &[&str], place: &str) {
        for key in table.keys() {
            let name: &str = key.get_ref();
            if !allowed.contains(&name) {
                self.report(
                    key.span(),
                    format!("unknown key {name:?} {place}; expected {}", one_of(allowed)),
                );
            }
        }
    }

    /// The value as a table, or a problem saying `what` must be `expected`.
    fn table<'a, 'i>(
        &mut self,
        value: &'a Value<'i>,
        what: &str,
        expected: &str,
    ) -> Option<&'a DeTable<'i>> {
        match value.get_ref() {
            DeValue::Table(table) => Some(table),
            other => {
                self.report(
                    value.span(),
                    format!("{what} must be {expected}, found {}", describe(other)),
                );
                None
            }
        }
    }

    /// The value as an array, or a problem saying `what` must be `expected`.
    fn array<'a, 'i>(
        &mut self,
        value: &'a Value<'i>,
        what: &str,
        expected: &str,
    ) -> Option<&'a [Value<'i>]> {
        match value.get_ref() {
            DeValue::Array(items) => Some(items),
            other => {
                self.report(
                    value.span(),
                    format!("{what} must be {expected}, found {}", describe(other)),
                );
                None
            }
        }
    }

    fn string<'a>(&mut self, value: &'a Value<'_>, what: &str, place: &str) -> Option<&'a str> {
        match value.get_ref() {
            DeValue::String(text) => Some(text),
            other => {
                self.report(
                    value.span(),
                    format!("{what} {place} must be a string, found {}", describe(other)),
                );
                None
            }
        }
    }

    fn boolean(&mut self, value: &Value<'_>, what: &str, place: &str) -> Option<bool> {
        match value.get_ref() {
            DeValue::Boolean(flag) => Some(*flag),
            other => {
                self.report(
                    value.span(),
                    format!(
                        "{what} {place} must be true or false, found {}",
                        describe(other)
                    ),
                );
                None
            }
        }
    }

    fn integer(&mut self, value: &Value<'_>, what: &str, place: &str) -> Option<i128> {
        let n = integer_value(value.get_ref());
        if n.is_none() {
            self.report(
                value.span(),
                format!(
                    "{what} {place} must be an integer, found {}",
                    describe(value.get_ref())
                ),
            );
        }
        n
    }

    /// The value's source text, for quoting numbers exactly as the user wrote them.
    fn as_written(&self, value: &Value<'_>) -> &'t str {
        self.text.get(value.span()).unwrap_or_default()
    }
}

/// An integer value; one too large even for `i128` saturates, so range checks reject it.
fn integer_value(value: &DeValue<'_>) -> Option<i128> {
    let DeValue::Integer(n) = value else {
        return None;
    };
    let parsed =
        i128::from_str_radix(n.as_str(), n.radix()).unwrap_or(if n.as_str().starts_with('-') {
            i128::MIN
        } else {
            i128::MAX
        });
    Some(parsed)
}

/// A value's type and, for scalars, the value itself, for "found ..." in messages.
fn describe(value: &DeValue<'_>) -> String {
    match value {
        DeValue::String(text) => format!("string {text:?}"),
        DeValue::Integer(n) => format!("integer {n}"),
        DeValue::Float(x) => format!("float {}", x.as_str()),
        DeValue::Boolean(flag) => format!("boolean {flag}"),
        DeValue::Datetime(when) => format!("datetime {when}"),
        DeValue::Array(_) => "an array".to_owned(),
        DeValue::Table(_) => "a table".to_owned(),
    }
}

/// `"a"`, `"a" or "b"`, or `one of "a", "b", "c"`.
fn one_of(options: &[&str]) -> String {
    match options {
        [only] => format!("{only:?}"),
        [a, b] => format!("{a:?} or {b:?}"),
        _ => format!("one of {}", list(options)),
    }
}

/// `"a", "b", "c"`.
fn list(options: &[&str]) -> String {
    options
        .iter()
        .map(|o| format!("{o:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../config.example.toml");

    fn problems(text: &str) -> Vec<Problem> {
        match Config::parse(text) {
            Ok(config) => panic!("expected problems, got {config:#?}"),
            Err(errors) => errors.problems,
        }
    }

    #[track_caller]
    fn assert_one_problem(text: &str, line: usize, column: usize, message: &str) {
        let found = problems(text);
        let expected = vec![Problem {
            line,
            column,
            message: message.to_owned(),
        }];
        assert_eq!(found, expected, "for config:\n{text}");
    }

    const RULE: &str = "[[rules]]\ntool = \"t\"\naction = \"allow\"\n";

    /// Each case: the config text, then the line, column and exact message of its only problem.
    const CASES: &[(&str, usize, usize, &str)] = &[
        // Syntax.
        (
            "[policy\ndefault = \"deny\"\n",
            1,
            8,
            "invalid toml: unclosed table, expected `]`",
        ),
        (
            "[policy]\ndefault = \"deny\"\ndefault = \"allow\"\n",
            3,
            1,
            "invalid toml: duplicate key \"default\"",
        ),
        // Unknown keys, at every level.
        (
            "[polcy]\ndefault = \"deny\"\n",
            1,
            2,
            "unknown key \"polcy\" at the top level; expected one of \"server\", \"policy\", \
             \"limits\", \"rules\"",
        ),
        (
            "[server]\ncommand = \"uvx\"\nargv = []\n",
            3,
            1,
            "unknown key \"argv\" in [server]; expected one of \"command\", \"args\", \"env\", \
             \"cwd\"",
        ),
        (
            "[policy]\ndefault = \"deny\"\nmode = 1\n",
            3,
            1,
            "unknown key \"mode\" in [policy]; expected \"default\" or \"violation\"",
        ),
        (
            "[limits]\nmax_line = 2048\n",
            2,
            1,
            "unknown key \"max_line\" in [limits]; expected \"max_line_bytes\"",
        ),
        (
            "[[rules]]\ntool = \"t\"\naction = \"deny\"\nreasn = \"x\"\n",
            4,
            1,
            "unknown key \"reasn\" in rule 1; expected one of \"name\", \"tool\", \"action\", \
             \"reason\", \"rate_limit\", \"hide\"",
        ),
        (
            "[[rules]]\ntool = \"t\"\naction = \"allow\"\n\
             rate_limit = { max = 1, window = 60, burst = 2 }\n",
            4,
            38,
            "unknown key \"burst\" in the rate_limit of rule 1; expected \"max\" or \"window\"",
        ),
        // Wrong types.
        (
            "server = \"uvx\"\n",
            1,
            10,
            "\"server\" must be a table ([server]), found string \"uvx\"",
        ),
        (
            "[rules]\ntool = \"t\"\naction = \"deny\"\n",
            1,
            1,
            "\"rules\" must be an array of tables ([[rules]]), found a table",
        ),
        (
            "rules = [\"t\"]\n",
            1,
            10,
            "rule 1 must be a table ([[rules]]), found string \"t\"",
        ),
        (
            "[server]\ncommand = 5\n",
            2,
            11,
            "\"command\" in [server] must be a string, found integer 5",
        ),
        (
            "[server]\ncommand = \"uvx\"\nargs = \"serve\"\n",
            3,
            8,
            "\"args\" in [server] must be an array of strings, found string \"serve\"",
        ),
        (
            "[server]\ncommand = \"uvx\"\nargs = [\"serve\", 8080]\n",
            3,
            18,
            "argument 2 of \"args\" in [server] must be a string, found integer 8080",
        ),
        (
            "[server]\ncommand = \"uvx\"\nenv = { VALKEY_PORT = 6379 }\n",
            3,
            23,
            "\"VALKEY_PORT\" in [server.env] must be a string, found integer 6379; quote the value",
        ),
        (
            "[server]\ncommand = \"uvx\"\nenv = [\"A=1\"]\n",
            3,
            7,
            "\"env\" in [server] must be a table of strings, found an array",
        ),
        (
            "[[rules]]\ntool = \"t\"\naction = \"allow\"\nrate_limit = { max = \"10\", window = 60 }\n",
            4,
            22,
            "\"max\" in the rate_limit of rule 1 must be an integer, found string \"10\"",
        ),
        (
            "[[rules]]\ntool = \"t\"\naction = \"allow\"\nrate_limit = 10\n",
            4,
            14,
            "\"rate_limit\" in rule 1 must be a table such as { max = 10, window = \"60s\" }, \
             found integer 10",
        ),
        (
            "[[rules]]\ntool = \"t\"\naction = \"deny\"\nhide = \"yes\"\n",
            4,
            8,
            "\"hide\" in rule 1 must be true or false, found string \"yes\"",
        ),
        (
            "[[rules]]\ntool = [\"a\", \"b\"]\naction = \"deny\"\n",
            2,
            8,
            "\"tool\" in rule 1 must be a string, found an array",
        ),
        (
            "[[rules]]\nname = 1\ntool = \"t\"\naction = \"deny\"\n",
            2,
            8,
            "\"name\" in rule 1 must be a string, found integer 1",
        ),
        (
            "[limits]\nmax_line_bytes = 1.5e6\n",
            2,
            18,
            "\"max_line_bytes\" in [limits] must be an integer, found float 1.5e6",
        ),
        // [policy] values.
        (
            "[policy]\ndefault = \"alow\"\n",
            2,
            11,
            "unknown default \"alow\" in [policy]; expected \"allow\" or \"deny\"",
        ),
        (
            "[policy]\ndefault = \"require_approval\"\n",
            2,
            11,
            "default \"require_approval\" in [policy] is not supported; the default must be \
             \"allow\" or \"deny\" (to ask about every other tool, add a last rule with \
             tool = \"*\" and action = \"require_approval\")",
        ),
        (
            "[policy]\nviolation = \"error\"\n",
            2,
            13,
            "unknown violation style \"error\" in [policy]; expected \"result\" or \
             \"jsonrpc_error\"",
        ),
        // Rules.
        (
            "[[rules]]\naction = \"deny\"\n",
            1,
            1,
            "rule 1 has no \"tool\"; add tool = \"<exact name or glob>\", e.g. tool = \"valkey_*\"",
        ),
        (
            "[[rules]]\ntool = \"t\"\naction = \"allow\"\n\n[[rules]]\ntool = \"u\"\n",
            5,
            1,
            "rule 2 has no \"action\"; expected one of \"allow\", \"deny\", \"require_approval\"",
        ),
        (
            "[[rules]]\ntool = \"t\"\naction = \"alow\"\n",
            3,
            10,
            "unknown action \"alow\" in rule 1; expected one of \"allow\", \"deny\", \
             \"require_approval\"",
        ),
        (
            "[[rules]]\ntool = \"\"\naction = \"deny\"\n",
            2,
            8,
            "\"tool\" in rule 1 is empty; give an exact tool name or a glob such as \"valkey_*\"",
        ),
        (
            "[[rules]]\ntool = \"valkey_read \"\naction = \"allow\"\n",
            2,
            8,
            "tool \"valkey_read \" in rule 1 has leading or trailing whitespace, so it would \
             never match; remove the whitespace",
        ),
        (
            "[[rules]]\ntool = \"valkey_[\"\naction = \"deny\"\n",
            2,
            8,
            "invalid tool pattern \"valkey_[\" in rule 1: unclosed character class; missing \
             ']'; a pattern is an exact name or a glob using * ? [...] {a,b}",
        ),
        (
            "[[rules]]\ntool = \"json_{get,set\"\naction = \"deny\"\n",
            2,
            8,
            "invalid tool pattern \"json_{get,set\" in rule 1: unclosed alternate group; \
             missing '}' (maybe escape '{' with '[{]'?); a pattern is an exact name or a glob \
             using * ? [...] {a,b}",
        ),
        (
            "[[rules]]\ntool = \"t\"\naction = \"allow\"\nhide = true\n",
            4,
            1,
            "\"hide\" in rule 1 only applies to action \"deny\", but the action is \"allow\"; \
             remove hide = true or change the action",
        ),
        // Rate limits.
        (
            "[[rules]]\ntool = \"t\"\naction = \"deny\"\nrate_limit = { max = 1, window = 60 }\n",
            4,
            1,
            "\"rate_limit\" in rule 1 only applies to action \"allow\" (it limits calls that \
             would otherwise be allowed), but the action is \"deny\"; remove the rate_limit or \
             change the action",
        ),
        (
            "[[rules]]\ntool = \"t\"\naction = \"allow\"\nrate_limit = { window = 60 }\n",
            4,
            14,
            "the rate_limit of rule 1 has no \"max\"; add e.g. max = 10",
        ),
        (
            "[[rules]]\ntool = \"t\"\naction = \"allow\"\n[rules.rate_limit]\nmax = 10\n",
            4,
            1,
            "the rate_limit of rule 1 has no \"window\"; add e.g. window = \"60s\"",
        ),
        (
            "[[rules]]\ntool = \"t\"\naction = \"allow\"\nrate_limit = { max = 0, window = 60 }\n",
            4,
            22,
            "max 0 in the rate_limit of rule 1 is out of range; expected an integer from 1 to \
             1000000",
        ),
        (
            "[[rules]]\ntool = \"t\"\naction = \"allow\"\n\
             rate_limit = { max = 1_000_001, window = 60 }\n",
            4,
            22,
            "max 1_000_001 in the rate_limit of rule 1 is out of range; expected an integer \
             from 1 to 1000000",
        ),
        (
            "[[rules]]\ntool = \"t\"\naction = \"allow\"\n\
             rate_limit = { max = 1, window = \"1.5m\" }\n",
            4,
            34,
            "invalid window \"1.5m\" in the rate_limit of rule 1; expected whole seconds such as \
             60, or a whole number with a unit: \"500ms\", \"90s\", \"5m\", \"1h\", \"1d\"",
        ),
        (
            "[[rules]]\ntool = \"t\"\naction = \"allow\"\n\
             rate_limit = { max = 1, window = \"0s\" }\n",
            4,
            34,
            "window \"0s\" in the rate_limit of rule 1 is zero; expected a duration from \"1ms\" \
             to \"7d\"",
        ),
        (
            "[[rules]]\ntool = \"t\"\naction = \"allow\"\n\
             rate_limit = { max = 1, window = \"8d\" }\n",
            4,
            34,
            "window \"8d\" in the rate_limit of rule 1 is longer than 7 days; expected a duration \
             from \"1ms\" to \"7d\"",
        ),
        (
            "[[rules]]\ntool = \"t\"\naction = \"allow\"\n\
             rate_limit = { max = 1, window = 604801 }\n",
            4,
            34,
            "window 604801 in the rate_limit of rule 1 is longer than 7 days; expected a \
             duration from \"1ms\" to \"7d\"",
        ),
        (
            "[[rules]]\ntool = \"t\"\naction = \"allow\"\n\
             rate_limit = { max = 1, window = -5 }\n",
            4,
            34,
            "window -5 in the rate_limit of rule 1 is negative; expected whole seconds such as \
             60, or a whole number with a unit: \"500ms\", \"90s\", \"5m\", \"1h\", \"1d\"",
        ),
        (
            "[[rules]]\ntool = \"t\"\naction = \"allow\"\n\
             rate_limit = { max = 1, window = 1.5 }\n",
            4,
            34,
            "\"window\" in the rate_limit of rule 1 must be a duration, found float 1.5; \
             expected whole seconds such as 60, or a whole number with a unit: \"500ms\", \
             \"90s\", \"5m\", \"1h\", \"1d\"",
        ),
        // [server].
        (
            "[server]\nargs = [\"x\"]\n",
            1,
            1,
            "[server] has no \"command\"; add the program to run, e.g. command = \"uvx\"",
        ),
        (
            "[server]\ncommand = \" \"\n",
            2,
            11,
            "\"command\" in [server] is empty; give the program to run, e.g. \"uvx\"",
        ),
        (
            "[server]\ncommand = \"uvx\"\ncwd = \"\"\n",
            3,
            7,
            "\"cwd\" in [server] is empty; give a directory or remove the key",
        ),
        (
            "[server]\ncommand = \"uvx\"\n[server.env]\n\"A=B\" = \"1\"\n",
            4,
            1,
            "invalid environment variable name \"A=B\" in [server.env]; a name must be \
             non-empty and contain no \"=\" or NUL",
        ),
        // [limits].
        (
            "[limits]\nmax_line_bytes = 1023\n",
            2,
            18,
            "max_line_bytes 1023 in [limits] is out of range; expected an integer from 1024 to \
             1073741824 (1 GiB)",
        ),
        (
            "[limits]\nmax_line_bytes = 0x4000_0001\n",
            2,
            18,
            "max_line_bytes 0x4000_0001 in [limits] is out of range; expected an integer from \
             1024 to 1073741824 (1 GiB)",
        ),
    ];

    #[test]
    fn each_kind_of_problem_is_reported_where_it_is() {
        let mut failures = Vec::new();
        for &(text, line, column, message) in CASES {
            let expected = vec![Problem {
                line,
                column,
                message: message.to_owned(),
            }];
            let found = Config::parse(text).map_err(|e| e.problems);
            if found.as_ref().err() != Some(&expected) {
                failures.push(format!(
                    "config:\n{text}expected: {expected:#?}\nfound: {found:#?}\n"
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn reports_every_problem_in_position_order() {
        let text = "\
[policy]
default = \"maybe\"
colour = \"red\"

[[rules]]
tool = \"valkey_write\"
action = \"allow\"
rate_limit = { max = 0, window = \"soon\" }

[[rules]]
action = \"deny\"
hide = 1

[[rules]]
tool = \"CreateCodeConnection\"
action = \"forbid\"
";
        let found: Vec<String> = problems(text).iter().map(ToString::to_string).collect();
        assert_eq!(
            found,
            [
                "line 2, column 11: unknown default \"maybe\" in [policy]; expected \"allow\" or \
                 \"deny\"",
                "line 3, column 1: unknown key \"colour\" in [policy]; expected \"default\" or \
                 \"violation\"",
                "line 8, column 22: max 0 in the rate_limit of rule 1 is out of range; expected \
                 an integer from 1 to 1000000",
                "line 8, column 34: invalid window \"soon\" in the rate_limit of rule 1; expected \
                 whole seconds such as 60, or a whole number with a unit: \"500ms\", \"90s\", \
                 \"5m\", \"1h\", \"1d\"",
                "line 10, column 1: rule 2 has no \"tool\"; add tool = \"<exact name or glob>\", \
                 e.g. tool = \"valkey_*\"",
                "line 12, column 8: \"hide\" in rule 2 must be true or false, found integer 1",
                "line 16, column 10: unknown action \"forbid\" in rule 3; expected one of \
                 \"allow\", \"deny\", \"require_approval\"",
            ]
        );
    }

    #[test]
    fn every_syntax_error_is_reported_and_nothing_else() {
        // The second rule has no action only because its line is broken; that is not reported.
        let text =
            "[[rules]]\ntool = \"a\"\naction = \"deny\n\n[[rules]]\ntool = \"b\"\naction = \n";
        let found = problems(text);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(
            found
                .iter()
                .all(|p| p.message.starts_with("invalid toml: "))
        );
        assert_eq!((found[0].line, found[1].line), (3, 7));
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        // "É" is two bytes; the column of the 1 after it counts it once.
        assert_one_problem(
            "[server]\ncommand = \"uvx\"\nenv = { \"CAFÉ\" = \"1\", PORT = 1 }\n",
            3,
            30,
            "\"PORT\" in [server.env] must be a string, found integer 1; quote the value",
        );
    }

    #[test]
    fn near_misses_of_problems_are_valid() {
        for text in [
            "[[rules]]\ntool = \"t\"\naction = \"deny\"\nhide = true\n",
            "[[rules]]\ntool = \"t\"\naction = \"allow\"\nhide = false\n",
            "[[rules]]\ntool = \"*\"\naction = \"require_approval\"\n",
            "[[rules]]\ntool = \"json_{get,set}\"\naction = \"allow\"\n\
             rate_limit = { max = 1_000_000, window = 604800 }\n",
            "[[rules]]\ntool = \"t\"\naction = \"allow\"\n\
             [rules.rate_limit]\nmax = 1\nwindow = \"7d\"\n",
            "[limits]\nmax_line_bytes = 1024\n",
            "[limits]\nmax_line_bytes = 1073741824\n",
            "[server]\ncommand = \"uvx\"\nargs = []\nenv = {}\n",
            "[policy]\nviolation = \"jsonrpc_error\"\n",
        ] {
            if let Err(errors) = Config::parse(text) {
                panic!("expected a valid config, got:\n{errors}\nfor config:\n{text}");
            }
        }
    }

    #[test]
    fn omitted_sections_take_their_defaults() {
        let config = Config::parse("").unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.server, None);
        assert_eq!(config.policy.default, DefaultAction::Allow);
        assert_eq!(config.policy.violation, ViolationStyle::Result);
        assert_eq!(config.limits.max_line_bytes, DEFAULT_MAX_LINE_BYTES);
        assert!(config.rules.is_empty());

        let config = Config::parse("[policy]\n[limits]\n[server]\ncommand = \"srv\"\n").unwrap();
        assert_eq!(config.policy, PolicySettings::default());
        assert_eq!(config.limits, Limits::default());
        assert_eq!(
            config.server,
            Some(ServerSpec {
                command: "srv".to_owned(),
                args: Vec::new(),
                env: Vec::new(),
                cwd: None,
            })
        );

        let config = Config::parse(RULE).unwrap();
        assert_eq!(
            config.rules,
            [RuleSpec {
                number: 1,
                line: 1,
                name: None,
                tool: "t".to_owned(),
                action: Action::Allow,
                reason: None,
                rate_limit: None,
                hide: false,
            }]
        );
    }

    #[test]
    fn every_field_is_read() {
        let text = "\
# comment
[server]
command = \"uvx\"
args = [\"awslabs.valkey-mcp-server@latest\", \"--verbose\"]
env = { VALKEY_PORT = \"6379\", VALKEY_HOST = \"127.0.0.1\" }
cwd = \"/srv\"

[policy]
default = \"deny\"
violation = \"jsonrpc_error\"

[limits]
max_line_bytes = 1024

[[rules]]
name = \"no code connections\"
tool = \"CreateCodeConnection\"
action = \"deny\"
reason = \"exposes source\"
hide = true

[[rules]]
tool = \"valkey_*\"
action = \"allow\"
rate_limit = { max = 10, window = \"60s\" }
";
        let config = Config::parse(text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            config.server,
            Some(ServerSpec {
                command: "uvx".to_owned(),
                args: vec![
                    "awslabs.valkey-mcp-server@latest".to_owned(),
                    "--verbose".to_owned()
                ],
                // File order, not alphabetical.
                env: vec![
                    ("VALKEY_PORT".to_owned(), "6379".to_owned()),
                    ("VALKEY_HOST".to_owned(), "127.0.0.1".to_owned()),
                ],
                cwd: Some(PathBuf::from("/srv")),
            })
        );
        assert_eq!(
            config.policy,
            PolicySettings {
                default: DefaultAction::Deny,
                violation: ViolationStyle::JsonRpcError,
            }
        );
        assert_eq!(config.limits.max_line_bytes, 1024);
        assert_eq!(
            config.rules,
            [
                RuleSpec {
                    number: 1,
                    line: 15,
                    name: Some("no code connections".to_owned()),
                    tool: "CreateCodeConnection".to_owned(),
                    action: Action::Deny,
                    reason: Some("exposes source".to_owned()),
                    rate_limit: None,
                    hide: true,
                },
                RuleSpec {
                    number: 2,
                    line: 22,
                    name: None,
                    tool: "valkey_*".to_owned(),
                    action: Action::Allow,
                    reason: None,
                    rate_limit: Some(RateLimitSpec {
                        max: 10,
                        window: Duration::from_secs(60),
                    }),
                    hide: false,
                },
            ]
        );
    }

    #[test]
    fn inline_rules_are_accepted_too() {
        let text = "rules = [\n  { tool = \"a\", action = \"deny\" },\n  { tool = \"b\", action = \"require_approval\" },\n]\n";
        let config = Config::parse(text).unwrap();
        let summary: Vec<_> = config
            .rules
            .iter()
            .map(|r| (r.number, r.line, r.tool.as_str(), r.action))
            .collect();
        assert_eq!(
            summary,
            [
                (1, 2, "a", Action::Deny),
                (2, 3, "b", Action::RequireApproval)
            ]
        );
    }

    #[test]
    fn window_forms_parse_to_durations() {
        let cases: &[(&str, Duration)] = &[
            ("\"500ms\"", Duration::from_millis(500)),
            ("\"60s\"", Duration::from_secs(60)),
            ("60", Duration::from_secs(60)),
            ("\"1m\"", Duration::from_secs(60)),
            ("\"90s\"", Duration::from_secs(90)),
            ("\"1h\"", Duration::from_secs(3_600)),
            ("\"1d\"", Duration::from_secs(86_400)),
            ("\"7d\"", MAX_RATE_WINDOW),
            ("\"1ms\"", Duration::from_millis(1)),
        ];
        for &(window, expected) in cases {
            let text = format!("{RULE}rate_limit = {{ max = 3, window = {window} }}\n");
            let config = Config::parse(&text).unwrap_or_else(|e| panic!("{window}: {e}"));
            assert_eq!(
                config.rules[0].rate_limit,
                Some(RateLimitSpec {
                    max: 3,
                    window: expected
                }),
                "{window}"
            );
        }
    }

    #[test]
    fn malformed_durations_are_rejected() {
        for text in [
            "", "s", "60", "1.5s", "-1s", "+1s", "1 s", " 1s", "1S", "1sec", "1w", "1hs", "١s",
        ] {
            assert_eq!(parse_duration(text), None, "{text:?}");
        }
        assert_eq!(parse_duration("99999999999999999999d"), Some(Duration::MAX));
        assert_eq!(parse_duration("0ms"), Some(Duration::ZERO));
    }

    #[test]
    fn example_config_is_valid_and_refuses_code_connections() {
        let config = Config::parse(EXAMPLE).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.policy.default, DefaultAction::Deny);
        let server = config.server.as_ref().expect("[server]");
        assert_eq!(server.command, "uvx");
        assert_eq!(server.args, ["awslabs.valkey-mcp-server@latest"]);

        let deny = config
            .rules
            .iter()
            .find(|r| r.tool == "CreateCodeConnection")
            .expect("a CreateCodeConnection rule");
        assert_eq!(deny.action, Action::Deny);
        assert_eq!(
            deny.reason.as_deref(),
            Some("creating code connections can expose source code and CI/CD pipelines")
        );

        let rule_for = |tool: &str| {
            config
                .rules
                .iter()
                .find(|r| {
                    let glob = globset::Glob::new(&r.tool).unwrap().compile_matcher();
                    glob.is_match(tool)
                })
                .unwrap_or_else(|| panic!("no rule matches {tool}"))
        };
        assert_eq!(rule_for("valkey_read").action, Action::Allow);
        assert_eq!(rule_for("valkey_admin").action, Action::Deny);
        assert_eq!(rule_for("manage_index").action, Action::RequireApproval);
        assert_eq!(
            rule_for("valkey_write").rate_limit,
            Some(RateLimitSpec {
                max: 10,
                window: Duration::from_secs(60)
            })
        );
        for tool in ["json_set", "json_arrappend", "json_arrpop", "json_arrtrim"] {
            let rule = rule_for(tool);
            assert_eq!(rule.action, Action::Allow, "{tool}");
            assert!(rule.rate_limit.is_some(), "{tool} should be rate-limited");
        }
        // Every tool the Valkey server has is decided by a rule, not left to the default.
        for tool in [
            "json_get",
            "add_documents",
            "aggregate",
            "search",
            "valkey_read",
        ] {
            rule_for(tool);
        }
    }

    #[test]
    fn load_names_the_path() {
        let dir =
            std::env::temp_dir().join(format!("mcp-policy-proxy-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();

        let missing = dir.join("missing.toml");
        let error = Config::load(&missing).unwrap_err();
        assert!(matches!(error, ConfigError::Read { .. }));
        assert_eq!(
            error.to_string(),
            format!("cannot read configuration file {}", missing.display())
        );
        assert!(std::error::Error::source(&error).is_some());

        let invalid = dir.join("invalid.toml");
        std::fs::write(&invalid, "[policy]\ndefault = \"alow\"\nviolation = 3\n").unwrap();
        let error = Config::load(&invalid).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "invalid configuration in {}:\n  line 2, column 11: unknown default \"alow\" in \
                 [policy]; expected \"allow\" or \"deny\"\n  line 3, column 13: \"violation\" in \
                 [policy] must be a string, found integer 3",
                invalid.display()
            )
        );

        let valid = dir.join("valid.toml");
        std::fs::write(&valid, RULE).unwrap();
        assert_eq!(Config::load(&valid).unwrap().rules.len(), 1);

        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn action_names_round_trip() {
        for (action, name) in [
            (Action::Allow, "allow"),
            (Action::Deny, "deny"),
            (Action::RequireApproval, "require_approval"),
        ] {
            assert_eq!(action.as_str(), name);
            assert!(ACTIONS.contains(&name));
        }
        assert_eq!(Action::from(DefaultAction::Deny), Action::Deny);
        assert_eq!(ViolationStyle::JsonRpcError.as_str(), "jsonrpc_error");
    }
}
