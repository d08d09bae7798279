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

mod approval;
mod audit;
mod classes;
mod command_lines;
mod conditions;
mod problems;
mod rules;
mod sections;
mod store;
#[cfg(test)]
mod tests;
mod walk;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::de::DeTable;

pub use problems::{ConfigError, ConfigErrors, Problem};
use walk::Checker;

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
    pub approval: crate::approval::ApprovalSettings,
    /// `[classes]`: named sets of tools, in file order.
    pub classes: Vec<ClassSpec>,
    /// `[pinning]`: what happens when a tool's definition changes mid-session.
    pub pinning: Pinning,
    /// `[store]`: the Valkey (or Redis) that fleet-wide limits count in.
    pub store: Option<crate::store::StoreSettings>,
    /// `[audit]`: the audit log.
    pub audit: Option<crate::audit::AuditSettings>,
    /// `[[command_lines]]`: how tools turn their arguments into the words of a command, in file
    /// order.
    pub command_lines: Vec<CommandLineSpec>,
}

/// One `[[command_lines]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLineSpec {
    /// The pattern as written: an exact tool name or a glob.
    pub tool: String,
    /// The parsed glob when `tool` is one.
    pub glob: Option<globset::Glob>,
    pub line: crate::policy::command_line::CommandLine,
}

/// One class of `[classes]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassSpec {
    pub name: String,
    pub members: Vec<ClassMember>,
}

/// A member of a class: a tool name or glob, or what a tool's annotations say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClassMember {
    /// A tool name, or a glob (then parsed).
    Tool(String, Option<globset::Glob>),
    /// `@readOnly`, `@!destructive`, ...: the server's annotation hint, with the spec's default
    /// when the tool does not give it.
    Hint { hint: Hint, wanted: bool },
}

/// The tool annotation hints of the MCP specification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hint {
    ReadOnly,
    Destructive,
    Idempotent,
    OpenWorld,
}

/// The names of the hints as class members write them (after `@` or `@!`).
pub const HINTS: Vocabulary<Hint> = Vocabulary(&[
    ("readOnly", Hint::ReadOnly),
    ("destructive", Hint::Destructive),
    ("idempotent", Hint::Idempotent),
    ("openWorld", Hint::OpenWorld),
]);

/// `[pinning]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pinning {
    pub mode: PinMode,
    /// Pins written by an operator: tool name to the SHA-256 of its definition.
    pub file: Option<PathBuf>,
}

/// What happens to a call to a tool whose definition changed since it was first listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PinMode {
    /// Refused, saying what changed.
    #[default]
    Refuse,
    /// Forwarded, and the change logged.
    Log,
    /// Not checked.
    Off,
}

/// The names of `[pinning] mode`.
pub const PIN_MODES: Vocabulary<PinMode> = Vocabulary(&[
    ("refuse", PinMode::Refuse),
    ("log", PinMode::Log),
    ("off", PinMode::Off),
]);

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
    /// `enforce` (the default) or `shadow`: forward every call, logging what would be refused.
    pub mode: PolicyMode,
    /// When the policy file is read again while the proxy runs.
    pub reload: ReloadMode,
}

/// `[policy] reload`: when the policy file is read again. A server behind the proxy that can
/// write files (a filesystem or shell server) may be able to write the policy: an operator who
/// cannot keep it out of the server's reach chooses `signal` or `never`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReloadMode {
    /// When the file changes, or on SIGHUP (the default).
    #[default]
    File,
    /// On SIGHUP only (Windows has none: there, never).
    Signal,
    /// Never: the policy the proxy started with stays until it restarts.
    Never,
}

/// The names of `[policy] reload`.
pub const RELOAD_MODES: Vocabulary<ReloadMode> = Vocabulary(&[
    ("file", ReloadMode::File),
    ("signal", ReloadMode::Signal),
    ("never", ReloadMode::Never),
]);

/// `[policy] mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PolicyMode {
    #[default]
    Enforce,
    /// Every call is forwarded; what the rules would have refused is logged.
    Shadow,
}

/// The names of `[policy] mode`.
pub const POLICY_MODES: Vocabulary<PolicyMode> = Vocabulary(&[
    ("enforce", PolicyMode::Enforce),
    ("shadow", PolicyMode::Shadow),
]);

/// The action for a tool no rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DefaultAction {
    #[default]
    Allow,
    Deny,
}

/// The names of `[policy] default`.
pub const DEFAULT_ACTIONS: Vocabulary<DefaultAction> = Vocabulary(&[
    ("allow", DefaultAction::Allow),
    ("deny", DefaultAction::Deny),
]);

impl DefaultAction {
    pub fn as_str(&self) -> &'static str {
        DEFAULT_ACTIONS.name_of(*self)
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

/// The names of `[policy] violation`.
pub const VIOLATION_STYLES: Vocabulary<ViolationStyle> = Vocabulary(&[
    ("result", ViolationStyle::Result),
    ("jsonrpc_error", ViolationStyle::JsonRpcError),
]);

impl ViolationStyle {
    pub fn as_str(&self) -> &'static str {
        VIOLATION_STYLES.name_of(*self)
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
    /// The pattern as written: an exact tool name or a glob.
    pub tool: String,
    /// The parsed glob when `tool` is one (it has glob characters); `None` for an exact name.
    /// Parsed once here; the policy compiles all of them together.
    pub glob: Option<globset::Glob>,
    pub action: Action,
    pub reason: Option<String>,
    /// Only with `Action::Allow`.
    pub rate_limit: Option<RateLimitSpec>,
    /// Also remove the tool from `tools/list`; only with `Action::Deny`.
    pub hide: bool,
    /// What a person's "approve for this session" covers; only with `Action::RequireApproval`.
    pub session_grant: SessionGrant,
    /// `when = [...]`: conditions on the arguments; the rule matches only when they hold.
    pub when: Option<When>,
    /// `class = "..."`: the rule covers the tools of this class (beside `tool`, if given).
    pub class: Option<String>,
    /// `shadow = true`: the rule only logs what it would decide; the next rules decide.
    pub shadow: bool,
}

/// A rule's conditions. Compared by how they read, since compiled globs and regexes have no
/// equality of their own.
#[derive(Debug, Clone)]
pub struct When(pub crate::policy::condition::Cond);

impl PartialEq for When {
    fn eq(&self, other: &When) -> bool {
        self.0.describe() == other.0.describe()
    }
}

impl Eq for When {}

/// What "approve for this session" lets run again without asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SessionGrant {
    /// The same exact call: the same tool with the same arguments.
    #[default]
    Call,
    /// Any call to the same tool.
    Tool,
}

/// The names of a rule's `session_grant`.
pub const SESSION_GRANTS: Vocabulary<SessionGrant> =
    Vocabulary(&[("call", SessionGrant::Call), ("tool", SessionGrant::Tool)]);

/// What a rule does with a matching call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Allow,
    Deny,
    RequireApproval,
}

/// The names of a rule's `action`.
pub const ACTIONS: Vocabulary<Action> = Vocabulary(&[
    ("allow", Action::Allow),
    ("deny", Action::Deny),
    ("require_approval", Action::RequireApproval),
]);

impl Action {
    pub fn as_str(&self) -> &'static str {
        ACTIONS.name_of(*self)
    }
}

/// A closed set of names a user writes and what each means, written once: parsing, printing
/// and the "expected one of" of a message all read the same table.
#[derive(Debug)]
pub struct Vocabulary<T: 'static>(pub &'static [(&'static str, T)]);

impl<T: Copy + PartialEq + 'static> Vocabulary<T> {
    /// The meaning of `name`, if it is one of the names.
    pub fn parse(&self, name: &str) -> Option<T> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }

    /// The name of `value`.
    pub fn name_of(&self, value: T) -> &'static str {
        self.0
            .iter()
            .find(|(_, v)| *v == value)
            .map(|(n, _)| *n)
            .expect("every value of a vocabulary has a name")
    }

    pub fn contains(&self, name: &&str) -> bool {
        self.parse(name).is_some()
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
    /// Who shares the count.
    pub scope: LimitScope,
}

/// Who shares a rate limit's count.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LimitScope {
    /// This proxy process (one session): counted in memory.
    #[default]
    Session,
    /// Every proxy sharing the `[store]`.
    Global,
    /// Every proxy sharing the store whose key expands to the same text (`${ENV}` parts are
    /// read from the environment when the config is read), e.g. `agent:${CI_JOB_ID}`.
    Key(String),
}

impl LimitScope {
    /// Whether the count lives in the store.
    pub fn is_fleet(&self) -> bool {
        !matches!(self, LimitScope::Session)
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

const TOP_LEVEL_KEYS: &[&str] = &[
    "server", "policy", "limits", "rules", "approval", "classes", "pinning", "store", "audit",
];
/// Top-level keys accepted beside [`TOP_LEVEL_KEYS`] but not offered when a key is misspelt:
/// `[[command_lines]]` is a specialist's section (it serves conditions on `@words` for servers
/// the proxy does not know), and the list a typo gets stays the sections most policies use.
const SPECIALIST_KEYS: &[&str] = &["command_lines"];

impl Checker<'_> {
    fn document(&mut self, root: &DeTable<'_>) -> Config {
        for key in root.keys() {
            let name: &str = key.get_ref();
            if !TOP_LEVEL_KEYS.contains(&name) && !SPECIALIST_KEYS.contains(&name) {
                self.report(
                    key.span(),
                    format!(
                        "unknown key {name:?} at the top level; expected {}",
                        walk::one_of(TOP_LEVEL_KEYS)
                    ),
                );
            }
        }
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
        if let Some(value) = root.get("approval") {
            config.approval = self.approval(value);
        }
        if let Some(value) = root.get("classes") {
            config.classes = self.classes(value);
        }
        if let Some(value) = root.get("pinning") {
            config.pinning = self.pinning(value);
        }
        if let Some(value) = root.get("store") {
            config.store = self.store(value);
        }
        if let Some(value) = root.get("audit") {
            config.audit = self.audit(value);
        }
        if let Some(value) = root.get("command_lines") {
            config.command_lines = self.command_lines(value);
        }
        self.check_class_references(&config.classes);
        self.check_words_references(&config.command_lines);
        if config.store.is_none() {
            for span in std::mem::take(&mut self.fleet_scopes) {
                self.report(
                    span,
                    "a rate limit shared by the fleet needs a [store] to count in; add [store] \
                     url = \"redis://host:6379\", or use scope = \"session\""
                        .to_owned(),
                );
            }
        }
        config
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
