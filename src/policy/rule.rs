//! A compiled rule and its stable identity.

use std::fmt;
use std::sync::Arc;

use super::condition::Cond;
use crate::config::{Action, RateLimitSpec, RuleSpec, SessionGrant};

/// One `[[rules]]` entry, ready to match.
#[derive(Debug, Clone)]
pub struct Rule {
    /// 1-based position in the file, as messages name it.
    pub number: usize,
    pub name: Option<String>,
    /// The `tool` pattern as written.
    pub pattern: String,
    pub action: Action,
    pub reason: Option<String>,
    pub rate_limit: Option<RateLimitSpec>,
    pub hide: bool,
    /// What "approve for this session" covers.
    pub session_grant: SessionGrant,
    /// Conditions on the arguments: the rule matches only when they hold.
    pub when: Option<Cond>,
    /// The class whose tools the rule covers (beside `pattern`).
    pub class: Option<String>,
    /// The rule only logs what it would decide.
    pub shadow: bool,
    /// What state of this rule (its rate-limit window) is kept under, across reloads.
    pub key: RuleKey,
}

impl Rule {
    pub fn from_spec(spec: &RuleSpec, key: RuleKey) -> Rule {
        Rule {
            number: spec.number,
            name: spec.name.clone(),
            pattern: spec.tool.clone(),
            action: spec.action,
            reason: spec.reason.clone(),
            rate_limit: spec.rate_limit.clone(),
            hide: spec.hide,
            session_grant: spec.session_grant,
            when: spec.when.as_ref().map(|w| w.0.clone()),
            class: spec.class.clone(),
            shadow: spec.shadow,
            key,
        }
    }

    /// How messages name the rule: `rule 3 ("name", tool = "x")`.
    pub fn label(&self) -> String {
        let what = match &self.class {
            Some(class) if self.pattern == "*" => format!("class = {class:?}"),
            Some(class) => format!("tool = {:?}, class = {class:?}", self.pattern),
            None => format!("tool = {:?}", self.pattern),
        };
        match &self.name {
            Some(name) => format!("rule {} ({name:?}, {what})", self.number),
            None => format!("rule {} ({what})", self.number),
        }
    }
}

/// A rule's identity, stable across a reload that adds, removes or reorders rules: its `name`
/// when it has one, else its `tool` pattern (with `#2`, `#3`, ... for later unnamed rules of the
/// same pattern). A rule's position is not its identity: inserting a rule above it would hand
/// its rate-limit window to another rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RuleKey(pub(crate) Arc<str>);

impl RuleKey {
    /// The keys of `specs`, in order.
    pub fn assign(specs: &[RuleSpec]) -> Vec<RuleKey> {
        let mut seen = std::collections::HashMap::<String, usize>::new();
        specs
            .iter()
            .map(|spec| {
                let base = match &spec.name {
                    Some(name) => format!("name:{name}"),
                    None => format!("tool:{}", spec.tool),
                };
                let n = seen.entry(base.clone()).or_insert(0);
                *n += 1;
                let key = if *n == 1 { base } else { format!("{base}#{n}") };
                RuleKey(key.into())
            })
            .collect()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RuleKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq for Rule {
    /// Two rules are the same rule when they stand at the same place with the same identity and
    /// meaning; conditions compare by how they read.
    fn eq(&self, other: &Rule) -> bool {
        self.number == other.number
            && self.key == other.key
            && self.pattern == other.pattern
            && self.action == other.action
            && self.reason == other.reason
            && self.rate_limit == other.rate_limit
            && self.hide == other.hide
            && self.session_grant == other.session_grant
            && self.class == other.class
            && self.shadow == other.shadow
            && self.when.as_ref().map(Cond::describe) == other.when.as_ref().map(Cond::describe)
    }
}
