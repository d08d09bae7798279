//! The policy engine: which rule decides a `tools/call`, and what it decides.
//!
//! It is pure: a decision is a function of the call, the rules, the session's rate-limit state
//! and the time passed in. No I/O, no clock, no logging, so it can be tested with tables and
//! benchmarked on its own. A refusal is a [`Decision`], not an error.
//!
//! Deciding and counting are two steps: [`Policy::evaluate`] says what the rules make of a call
//! without changing anything, and [`Policy::admit`] counts it against its rate limit once it is
//! actually forwarded. A call that waits for a person between the two is counted only if it
//! goes through.

pub mod command_line;
pub mod condition;
mod decision;
pub mod explain;
pub mod rate_limit;
mod rule;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use globset::{GlobSet, GlobSetBuilder};

use crate::config::{Action, ClassMember, ClassSpec, Config, DefaultAction, Hint};
use command_line::CommandLines;
use condition::{Holds, Subject};
pub use decision::{Call, Decision, ToolInfo};
use rate_limit::RateLimiter;
pub use rule::{Rule, RuleKey};

/// The rules of one configuration, compiled once.
#[derive(Debug, Clone)]
pub struct Policy {
    rules: Vec<Arc<Rule>>,
    default: DefaultAction,
    /// Exact-name rules: the rules (indexes into `rules`, in order) for each name.
    exact: HashMap<String, Vec<usize>>,
    /// Glob rules, compiled together; `glob_rules[i]` is the rule of glob `i`.
    globs: GlobSet,
    glob_rules: Vec<usize>,
    /// `[classes]`, by name.
    classes: HashMap<String, Class>,
    /// How tools turn their arguments into the words of a command: `[[command_lines]]` and the
    /// built-in ones.
    command_lines: CommandLines,
}

/// A class of `[classes]`, compiled.
#[derive(Debug, Clone)]
struct Class {
    exact: std::collections::HashSet<String>,
    globs: GlobSet,
    /// Annotation hints and the value each wants.
    hints: Vec<(Hint, bool)>,
}

/// Whether a tool belongs to a class, as far as its name tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Membership {
    Yes,
    No,
    /// Only its annotations can tell.
    ByHints,
}

impl Class {
    fn compile(spec: &ClassSpec) -> anyhow::Result<Class> {
        let mut exact = std::collections::HashSet::new();
        let mut globs = GlobSetBuilder::new();
        let mut hints = Vec::new();
        for member in &spec.members {
            match member {
                ClassMember::Tool(name, None) => {
                    exact.insert(name.clone());
                }
                ClassMember::Tool(_, Some(glob)) => {
                    globs.add(glob.clone());
                }
                ClassMember::Hint { hint, wanted } => hints.push((*hint, *wanted)),
            }
        }
        Ok(Class {
            exact,
            globs: globs.build()?,
            hints,
        })
    }

    fn by_name(&self, tool: &str) -> Membership {
        if self.exact.contains(tool) || self.globs.is_match(tool) {
            Membership::Yes
        } else if self.hints.is_empty() {
            Membership::No
        } else {
            Membership::ByHints
        }
    }

    fn by_hints(&self, info: Option<&ToolInfo>) -> bool {
        self.hints
            .iter()
            .any(|&(hint, wanted)| ToolInfo::hint(info, hint) == wanted)
    }
}

/// What one session remembers between calls: the rate limiters of its rules, and which rule
/// decides each tool name seen so far.
#[derive(Debug, Clone)]
pub struct PolicyState {
    /// By rule index; `None` for a rule without a rate limit.
    limiters: Vec<Option<RateLimiter>>,
    /// The candidate rules (indexes into the rules, in order) of each tool name already judged,
    /// so the globs run once per name rather than once per call: the rules whose pattern (and
    /// class, by name) match, up to the first that decides whatever the arguments. Bounded by
    /// [`DECIDING_CACHE_NAMES`].
    deciding: HashMap<Box<str>, Arc<[usize]>>,
    /// Reused buffer for glob matches, so a decision allocates nothing.
    matches: Vec<usize>,
}

/// How many tool names a session remembers the deciding rule of. A server has tens of tools, so
/// this is never reached in honest use; a client calling endless made-up names only makes the
/// cache start over, never grow without bound.
pub const DECIDING_CACHE_NAMES: usize = 1024;

impl Policy {
    /// Compiles the rules of a validated configuration. The globs were parsed while the
    /// configuration was validated; here they are compiled into one set, once.
    pub fn new(config: &Config) -> anyhow::Result<Policy> {
        let keys = RuleKey::assign(&config.rules);
        let rules = config
            .rules
            .iter()
            .zip(keys)
            .map(|(spec, key)| (Rule::from_spec(spec, key), spec.glob.clone()))
            .collect();
        let mut policy = Policy::compile(rules, config.policy.default)?;
        policy.command_lines = CommandLines::new(
            config
                .command_lines
                .iter()
                .map(|spec| (spec.tool.as_str(), spec.glob.as_ref(), &spec.line)),
        );
        for class in &config.classes {
            policy
                .classes
                .insert(class.name.clone(), Class::compile(class)?);
        }
        Ok(policy)
    }

    /// Compiles `rules`, each with its parsed glob (`None` for an exact name).
    pub fn compile(
        rules: Vec<(Rule, Option<globset::Glob>)>,
        default: DefaultAction,
    ) -> anyhow::Result<Policy> {
        let mut exact = HashMap::new();
        let mut globs = GlobSetBuilder::new();
        let mut glob_rules = Vec::new();
        let mut compiled = Vec::with_capacity(rules.len());
        for (index, (rule, glob)) in rules.into_iter().enumerate() {
            match glob {
                Some(glob) => {
                    globs.add(glob);
                    glob_rules.push(index);
                }
                None => {
                    exact
                        .entry(rule.pattern.clone())
                        .or_insert_with(Vec::new)
                        .push(index);
                }
            }
            compiled.push(Arc::new(rule));
        }
        // Each glob already parsed; only the regex engine's own size limit could refuse the set.
        let globs = globs
            .build()
            .map_err(|err| anyhow::anyhow!("the rules' tool patterns cannot be compiled: {err}"))?;
        Ok(Policy {
            rules: compiled,
            default,
            exact,
            globs,
            glob_rules,
            classes: HashMap::new(),
            command_lines: CommandLines::new([]),
        })
    }

    pub fn rules(&self) -> &[Arc<Rule>] {
        &self.rules
    }

    pub fn default_action(&self) -> DefaultAction {
        self.default
    }

    /// How tools turn their arguments into the words of the command the server runs.
    pub fn command_lines(&self) -> &CommandLines {
        &self.command_lines
    }

    /// What a condition judges of `call`.
    pub fn subject<'a>(&'a self, call: &Call<'a>) -> Subject<'a> {
        Subject::new(
            call.tool,
            call.arguments,
            call.tool_info.and_then(ToolInfo::input_schema),
            Some(&self.command_lines),
        )
    }

    /// A fresh session: every rate limit unused.
    pub fn new_state(&self) -> PolicyState {
        PolicyState {
            limiters: self
                .rules
                .iter()
                .map(|rule| {
                    rule.rate_limit
                        .as_ref()
                        .filter(|limit| !limit.scope.is_fleet())
                        .map(|limit| RateLimiter::new(limit.max, limit.window))
                })
                .collect(),
            deciding: HashMap::new(),
            matches: Vec::new(),
        }
    }

    /// The state of a session moving from `old` to this policy: each rate-limit window stays
    /// with the rule of the same [`RuleKey`], wherever it now stands and whatever its new limit;
    /// the remembered deciding rules start over.
    pub fn carry_over(&self, old: &Policy, state: PolicyState) -> PolicyState {
        let mut by_key: HashMap<&RuleKey, RateLimiter> = old
            .rules
            .iter()
            .zip(state.limiters)
            .filter_map(|(rule, limiter)| Some((&rule.key, limiter?)))
            .collect();
        let mut fresh = self.new_state();
        for (rule, slot) in self.rules.iter().zip(fresh.limiters.iter_mut()) {
            if let (Some(limiter), Some(limit)) = (slot.as_mut(), &rule.rate_limit)
                && let Some(mut kept) = by_key.remove(&rule.key)
            {
                kept.reconfigure(limit.max, limit.window);
                *limiter = kept;
            }
        }
        fresh
    }

    /// The candidate rules of `tool`, in file order: those whose pattern matches and whose
    /// class may hold it, up to and including the first that decides whatever the call says.
    fn candidates(&self, tool: &str, matches: &mut Vec<usize>) -> Arc<[usize]> {
        self.globs.matches_into(tool, matches);
        let mut all: Vec<usize> = matches.iter().map(|&i| self.glob_rules[i]).collect();
        if let Some(exact) = self.exact.get(tool) {
            all.extend_from_slice(exact);
        }
        all.sort_unstable();
        let mut candidates = Vec::new();
        for index in all {
            let rule = &self.rules[index];
            let membership = match &rule.class {
                None => Membership::Yes,
                Some(class) => self
                    .classes
                    .get(class)
                    .map_or(Membership::No, |c| c.by_name(tool)),
            };
            if membership == Membership::No {
                continue;
            }
            candidates.push(index);
            let decides_alone =
                membership == Membership::Yes && rule.when.is_none() && !rule.shadow;
            if decides_alone {
                break;
            }
        }
        candidates.into()
    }

    /// The rule that decides calls to `tool` whatever their arguments, if one does before any
    /// rule that looks at the call.
    pub fn rule_for(&self, tool: &str) -> Option<&Arc<Rule>> {
        let mut matches = Vec::new();
        let candidates = self.candidates(tool, &mut matches);
        let first = self.rules.get(*candidates.first()?)?;
        (candidates.len() == 1 && first.when.is_none() && !first.shadow).then_some(first)
    }

    /// Whether any rule hides tools, so that `tools/list` results need reading at all.
    pub fn hides_any(&self) -> bool {
        self.rules.iter().any(|rule| rule.hide)
    }

    /// Whether `tool` is hidden from `tools/list`: its deciding rule denies it with `hide`.
    pub fn hides(&self, tool: &str) -> bool {
        self.rule_for(tool)
            .is_some_and(|rule| rule.hide && rule.action == Action::Deny)
    }

    /// Decides `call` at `now`. Nothing is counted: see [`Policy::admit`].
    pub fn evaluate(&self, call: &Call<'_>, state: &mut PolicyState, now: Instant) -> Decision {
        self.judge(call, state, now).0
    }

    /// Decides `call` at `now`, and says what the first shadow rule that matched would have
    /// decided (shadow rules only log; the rules after them decide).
    pub fn judge(
        &self,
        call: &Call<'_>,
        state: &mut PolicyState,
        now: Instant,
    ) -> (Decision, Option<Decision>) {
        let candidates = match state.deciding.get(call.tool) {
            Some(candidates) => candidates.clone(),
            None => {
                let candidates = self.candidates(call.tool, &mut state.matches);
                if state.deciding.len() >= DECIDING_CACHE_NAMES {
                    state.deciding.clear();
                }
                state.deciding.insert(call.tool.into(), candidates.clone());
                candidates
            }
        };
        let mut shadow = None;
        let subject = self.subject(call);
        for &index in candidates.iter() {
            let rule = &self.rules[index];
            if let Some(class) = rule.class.as_ref().and_then(|c| self.classes.get(c))
                && class.by_name(call.tool) == Membership::ByHints
                && !class.by_hints(call.tool_info)
            {
                continue;
            }
            if let Some(when) = &rule.when {
                match when.judge(&subject) {
                    Holds::Yes => {}
                    Holds::No => continue,
                    Holds::Unjudgeable(reason) => {
                        let decision = Decision::Unjudgeable {
                            rule: rule.clone(),
                            reason,
                        };
                        if rule.shadow {
                            shadow.get_or_insert(decision);
                            continue;
                        }
                        return (decision, shadow);
                    }
                }
            }
            let decision = self.decide(index, state, now);
            if rule.shadow {
                shadow.get_or_insert(decision);
                continue;
            }
            return (decision, shadow);
        }
        let decision = match self.default {
            DefaultAction::Allow => Decision::Allow { rule: None },
            DefaultAction::Deny => Decision::DefaultDeny,
        };
        (decision, shadow)
    }

    /// What rule `index` decides for a call it matches.
    fn decide(&self, index: usize, state: &mut PolicyState, now: Instant) -> Decision {
        let rule = &self.rules[index];
        match rule.action {
            Action::Deny => Decision::Deny { rule: rule.clone() },
            Action::RequireApproval => Decision::ApprovalRequired { rule: rule.clone() },
            Action::Allow if rule.rate_limit.as_ref().is_some_and(|l| l.scope.is_fleet()) => {
                Decision::StoreCheck { rule: rule.clone() }
            }
            Action::Allow => match state.limiters.get_mut(index).and_then(Option::as_mut) {
                None => Decision::Allow {
                    rule: Some(rule.clone()),
                },
                Some(limiter) => match limiter.check(now) {
                    Ok(()) => Decision::Allow {
                        rule: Some(rule.clone()),
                    },
                    Err(retry_after) => Decision::RateLimited {
                        rule: rule.clone(),
                        retry_after,
                    },
                },
            },
        }
    }

    /// Counts a call the proxy forwards under `decision` against its rule's rate limit.
    pub fn admit(&self, decision: &Decision, state: &mut PolicyState, now: Instant) {
        let Decision::Allow { rule: Some(rule) } = decision else {
            return;
        };
        if rule.rate_limit.is_none() {
            return;
        }
        // The rule is found by identity: a decision made under an earlier policy counts with the
        // rule of the same key in this one.
        let index = Some(rule.number - 1)
            .filter(|&i| self.rules.get(i).is_some_and(|r| Arc::ptr_eq(r, rule)))
            .or_else(|| self.rules.iter().position(|r| r.key == rule.key));
        if let Some(limiter) = index
            .and_then(|i| state.limiters.get_mut(i))
            .and_then(Option::as_mut)
        {
            limiter.admit(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::RateLimitSpec;

    fn rule(number: usize, pattern: &str, action: Action) -> Rule {
        Rule {
            number,
            name: None,
            pattern: pattern.to_string(),
            action,
            reason: None,
            rate_limit: None,
            hide: false,
            session_grant: Default::default(),
            when: None,
            class: None,
            shadow: false,
            key: RuleKey(format!("tool:{pattern}").into()),
        }
    }

    /// A policy of `rules`, each a glob when its pattern has glob characters.
    fn from_rules(rules: Vec<Rule>, default: DefaultAction) -> anyhow::Result<Policy> {
        let rules = rules
            .into_iter()
            .map(|rule| {
                let glob = rule
                    .pattern
                    .contains(['*', '?', '[', '{'])
                    .then(|| globset::Glob::new(&rule.pattern).unwrap());
                (rule, glob)
            })
            .collect();
        Policy::compile(rules, default)
    }

    /// Decides a call to `tool` and, when it is allowed, counts it, as the session does for a
    /// call it forwards.
    fn decide(policy: &Policy, tool: &str, state: &mut PolicyState, now: Instant) -> Decision {
        let decision = policy.evaluate(&Call::named(tool), state, now);
        policy.admit(&decision, state, now);
        decision
    }

    fn limited(number: usize, pattern: &str, max: u32, window_s: u64) -> Rule {
        Rule {
            rate_limit: Some(RateLimitSpec {
                max,
                window: Duration::from_secs(window_s),
                scope: crate::config::LimitScope::Session,
            }),
            ..rule(number, pattern, Action::Allow)
        }
    }

    /// What a decision looks like in a table: its kind and the deciding rule's number.
    fn summary(decision: &Decision) -> (&'static str, Option<usize>) {
        match decision {
            Decision::Allow { rule } => ("allow", rule.as_ref().map(|r| r.number)),
            Decision::Deny { rule } => ("deny", Some(rule.number)),
            Decision::RateLimited { rule, .. } => ("rate_limited", Some(rule.number)),
            Decision::ApprovalRequired { rule } => ("approval", Some(rule.number)),
            Decision::DefaultDeny => ("default_deny", None),
            Decision::Unjudgeable { rule, .. } => ("unjudgeable", Some(rule.number)),
            Decision::StoreCheck { rule } => ("store_check", Some(rule.number)),
        }
    }

    #[test]
    fn first_matching_rule_in_file_order_decides() {
        let policy = from_rules(
            vec![
                rule(1, "CreateCodeConnection", Action::Deny),
                rule(2, "valkey_admin", Action::RequireApproval),
                rule(3, "valkey_*", Action::Allow),
                rule(4, "valkey_read", Action::Deny), // shadowed by rule 3
                rule(5, "json_{get,set}", Action::Allow),
                rule(6, "*", Action::Deny),
            ],
            DefaultAction::Allow,
        )
        .unwrap();
        let now = Instant::now();
        let mut state = policy.new_state();
        let cases = [
            ("CreateCodeConnection", ("deny", Some(1))),
            ("valkey_admin", ("approval", Some(2))),
            ("valkey_read", ("allow", Some(3))),
            ("valkey_write", ("allow", Some(3))),
            ("json_get", ("allow", Some(5))),
            ("json_set", ("allow", Some(5))),
            ("json_del", ("deny", Some(6))),
            ("createcodeconnection", ("deny", Some(6))), // names are case-sensitive
            ("", ("deny", Some(6))),
        ];
        for (tool, expected) in cases {
            assert_eq!(
                summary(&decide(&policy, tool, &mut state, now)),
                expected,
                "tool {tool:?}"
            );
        }
    }

    #[test]
    fn an_exact_rule_after_a_glob_does_not_win() {
        let policy = from_rules(
            vec![
                rule(1, "valkey_*", Action::Deny),
                rule(2, "valkey_read", Action::Allow),
            ],
            DefaultAction::Allow,
        )
        .unwrap();
        let mut state = policy.new_state();
        let decision = decide(&policy, "valkey_read", &mut state, Instant::now());
        assert_eq!(summary(&decision), ("deny", Some(1)));
    }

    #[test]
    fn default_applies_when_no_rule_matches() {
        for (default, expected) in [
            (DefaultAction::Allow, ("allow", None)),
            (DefaultAction::Deny, ("default_deny", None)),
        ] {
            let policy = from_rules(vec![rule(1, "valkey_read", Action::Allow)], default).unwrap();
            let mut state = policy.new_state();
            let decision = decide(&policy, "valkey_write", &mut state, Instant::now());
            assert_eq!(summary(&decision), expected);
        }
    }

    #[test]
    fn rate_limit_refuses_over_the_limit_and_reopens() {
        let policy = from_rules(
            vec![
                limited(1, "valkey_write", 2, 60),
                limited(2, "valkey_read", 1, 10),
            ],
            DefaultAction::Deny,
        )
        .unwrap();
        let start = Instant::now();
        let mut state = policy.new_state();
        let at = |s: u64| start + Duration::from_secs(s);
        let steps = [
            ("valkey_write", 0, ("allow", Some(1)), None),
            ("valkey_write", 1, ("allow", Some(1)), None),
            ("valkey_write", 2, ("rate_limited", Some(1)), Some(58)),
            // Each rule has its own window.
            ("valkey_read", 2, ("allow", Some(2)), None),
            ("valkey_read", 3, ("rate_limited", Some(2)), Some(9)),
            ("valkey_write", 59, ("rate_limited", Some(1)), Some(1)),
            ("valkey_write", 60, ("allow", Some(1)), None),
            ("valkey_write", 61, ("allow", Some(1)), None),
            ("valkey_write", 62, ("rate_limited", Some(1)), Some(58)),
        ];
        for (tool, t, expected, retry) in steps {
            let decision = decide(&policy, tool, &mut state, at(t));
            assert_eq!(summary(&decision), expected, "{tool} at {t}s");
            if let Decision::RateLimited { retry_after, .. } = decision {
                assert_eq!(
                    Some(retry_after),
                    retry.map(Duration::from_secs),
                    "{tool} at {t}s"
                );
            }
        }
    }

    #[test]
    fn sessions_do_not_share_rate_limits() {
        let policy =
            from_rules(vec![limited(1, "valkey_write", 1, 60)], DefaultAction::Deny).unwrap();
        let now = Instant::now();
        let mut first = policy.new_state();
        let mut second = policy.new_state();
        assert!(decide(&policy, "valkey_write", &mut first, now).is_allowed());
        assert!(!decide(&policy, "valkey_write", &mut first, now).is_allowed());
        assert!(decide(&policy, "valkey_write", &mut second, now).is_allowed());
    }

    #[test]
    fn remembered_decisions_stay_right_past_the_cache_bound() {
        let policy = from_rules(
            vec![
                rule(1, "keep_*", Action::Allow),
                rule(2, "drop_*", Action::Deny),
            ],
            DefaultAction::Deny,
        )
        .unwrap();
        let mut state = policy.new_state();
        let now = Instant::now();
        for round in 0..3 {
            for n in 0..DECIDING_CACHE_NAMES + 10 {
                let (tool, expected) = match n % 3 {
                    0 => (format!("keep_{n}"), ("allow", Some(1))),
                    1 => (format!("drop_{n}"), ("deny", Some(2))),
                    _ => (format!("other_{n}"), ("default_deny", None)),
                };
                let decision = decide(&policy, &tool, &mut state, now);
                assert_eq!(summary(&decision), expected, "{tool} in round {round}");
            }
            assert!(state.deciding.len() <= DECIDING_CACHE_NAMES);
        }
    }

    #[test]
    fn hides_only_tools_whose_deciding_rule_is_a_hiding_deny() {
        let mut hidden = rule(2, "secret_*", Action::Deny);
        hidden.hide = true;
        let policy = from_rules(
            vec![rule(1, "secret_ok", Action::Allow), hidden],
            DefaultAction::Deny,
        )
        .unwrap();
        assert!(policy.hides("secret_key"));
        assert!(!policy.hides("secret_ok"));
        assert!(!policy.hides("other"));
    }
}
