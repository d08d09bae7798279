//! The policy engine: which rule decides a `tools/call`, and what it decides.
//!
//! It is pure: a decision is a function of the tool name, the rules, the session's rate-limit
//! state and the time passed in. No I/O, no clock, no logging, so it can be tested with tables
//! and benchmarked on its own. A refusal is a [`Decision`], not an error.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::config::{Action, Config, DefaultAction, RateLimitSpec};
use crate::rate_limit::RateLimiter;

/// One `[[rules]]` entry, ready to match.
#[derive(Debug, Clone, PartialEq)]
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
}

/// What the policy says about one call.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision<'p> {
    /// Let it through; `rule` is `None` when no rule matched and the default is allow.
    Allow {
        rule: Option<&'p Rule>,
    },
    Deny {
        rule: &'p Rule,
    },
    /// An allow rule whose rate limit is used up; a call would pass after `retry_after`.
    RateLimited {
        rule: &'p Rule,
        retry_after: Duration,
    },
    ApprovalRequired {
        rule: &'p Rule,
    },
    /// No rule matched and the default is deny.
    DefaultDeny,
}

impl Decision<'_> {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow { .. })
    }
}

/// The rules of one configuration, compiled once.
#[derive(Debug, Clone)]
pub struct Policy {
    rules: Vec<Rule>,
    default: DefaultAction,
    /// Exact-name rules: the first rule (index into `rules`) for each name.
    exact: HashMap<String, usize>,
    /// Glob rules, compiled together; `glob_rules[i]` is the rule of glob `i`.
    globs: GlobSet,
    glob_rules: Vec<usize>,
}

/// What one session remembers between calls: the rate limiters of its rules, and which rule
/// decides each tool name seen so far.
#[derive(Debug, Clone)]
pub struct PolicyState {
    limiters: Vec<Option<RateLimiter>>,
    /// The deciding rule (index into the rules) of each tool name already judged, so the globs
    /// run once per name rather than once per call. Bounded by [`DECIDING_CACHE_NAMES`].
    deciding: HashMap<Box<str>, Option<usize>>,
    /// Reused buffer for glob matches, so a decision allocates nothing.
    matches: Vec<usize>,
}

/// How many tool names a session remembers the deciding rule of. A server has tens of tools, so
/// this is never reached in honest use; a client calling endless made-up names only makes the
/// cache start over, never grow without bound.
pub const DECIDING_CACHE_NAMES: usize = 1024;

/// Characters that make a `tool` pattern a glob rather than an exact name.
const GLOB_META: &[char] = &['*', '?', '[', ']', '{', '}', '\\'];

impl Policy {
    /// Compiles the rules of a validated configuration.
    pub fn new(config: &Config) -> anyhow::Result<Policy> {
        let rules: Vec<Rule> = config
            .rules
            .iter()
            .map(|spec| Rule {
                number: spec.number,
                name: spec.name.clone(),
                pattern: spec.tool.clone(),
                action: spec.action,
                reason: spec.reason.clone(),
                rate_limit: spec.rate_limit.clone(),
                hide: spec.hide,
            })
            .collect();
        Policy::from_rules(rules, config.policy.default)
    }

    pub fn from_rules(rules: Vec<Rule>, default: DefaultAction) -> anyhow::Result<Policy> {
        let mut exact = HashMap::new();
        let mut globs = GlobSetBuilder::new();
        let mut glob_rules = Vec::new();
        for (index, rule) in rules.iter().enumerate() {
            if rule.pattern.contains(GLOB_META) {
                let glob = Glob::new(&rule.pattern).map_err(|err| {
                    anyhow::anyhow!("rule {} has an invalid tool pattern: {err}", rule.number)
                })?;
                globs.add(glob);
                glob_rules.push(index);
            } else {
                exact.entry(rule.pattern.clone()).or_insert(index);
            }
        }
        let globs = globs.build()?;
        Ok(Policy {
            rules,
            default,
            exact,
            globs,
            glob_rules,
        })
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn default_action(&self) -> DefaultAction {
        self.default
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
                        .map(|limit| RateLimiter::new(limit.max, limit.window))
                })
                .collect(),
            deciding: HashMap::new(),
            matches: Vec::new(),
        }
    }

    /// The index of the first rule, in file order, whose pattern matches `tool`.
    fn first_match(&self, tool: &str, matches: &mut Vec<usize>) -> Option<usize> {
        let exact = self.exact.get(tool).copied();
        self.globs.matches_into(tool, matches);
        let glob = matches.first().map(|&i| self.glob_rules[i]);
        match (exact, glob) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The rule that decides calls to `tool`, if any.
    pub fn rule_for(&self, tool: &str) -> Option<&Rule> {
        let mut matches = Vec::new();
        self.first_match(tool, &mut matches).map(|i| &self.rules[i])
    }

    /// Whether `tool` is hidden from `tools/list`: its deciding rule denies it with `hide`.
    pub fn hides(&self, tool: &str) -> bool {
        self.rule_for(tool)
            .is_some_and(|rule| rule.hide && rule.action == Action::Deny)
    }

    /// Decides a call to `tool` at `now`. An allowed call counts against its rule's rate limit.
    pub fn evaluate<'p>(
        &'p self,
        tool: &str,
        state: &mut PolicyState,
        now: Instant,
    ) -> Decision<'p> {
        let deciding = match state.deciding.get(tool) {
            Some(&index) => index,
            None => {
                let index = self.first_match(tool, &mut state.matches);
                if state.deciding.len() >= DECIDING_CACHE_NAMES {
                    state.deciding.clear();
                }
                state.deciding.insert(tool.into(), index);
                index
            }
        };
        let Some(index) = deciding else {
            return match self.default {
                DefaultAction::Allow => Decision::Allow { rule: None },
                DefaultAction::Deny => Decision::DefaultDeny,
            };
        };
        let rule = &self.rules[index];
        match rule.action {
            Action::Deny => Decision::Deny { rule },
            Action::RequireApproval => Decision::ApprovalRequired { rule },
            Action::Allow => match state.limiters.get_mut(index).and_then(Option::as_mut) {
                None => Decision::Allow { rule: Some(rule) },
                Some(limiter) => match limiter.try_admit(now) {
                    Ok(()) => Decision::Allow { rule: Some(rule) },
                    Err(retry_after) => Decision::RateLimited { rule, retry_after },
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(number: usize, pattern: &str, action: Action) -> Rule {
        Rule {
            number,
            name: None,
            pattern: pattern.to_string(),
            action,
            reason: None,
            rate_limit: None,
            hide: false,
        }
    }

    fn limited(number: usize, pattern: &str, max: u32, window_s: u64) -> Rule {
        Rule {
            rate_limit: Some(RateLimitSpec {
                max,
                window: Duration::from_secs(window_s),
            }),
            ..rule(number, pattern, Action::Allow)
        }
    }

    /// What a decision looks like in a table: its kind and the deciding rule's number.
    fn summary(decision: &Decision) -> (&'static str, Option<usize>) {
        match decision {
            Decision::Allow { rule } => ("allow", rule.map(|r| r.number)),
            Decision::Deny { rule } => ("deny", Some(rule.number)),
            Decision::RateLimited { rule, .. } => ("rate_limited", Some(rule.number)),
            Decision::ApprovalRequired { rule } => ("approval", Some(rule.number)),
            Decision::DefaultDeny => ("default_deny", None),
        }
    }

    #[test]
    fn first_matching_rule_in_file_order_decides() {
        let policy = Policy::from_rules(
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
                summary(&policy.evaluate(tool, &mut state, now)),
                expected,
                "tool {tool:?}"
            );
        }
    }

    #[test]
    fn an_exact_rule_after_a_glob_does_not_win() {
        let policy = Policy::from_rules(
            vec![
                rule(1, "valkey_*", Action::Deny),
                rule(2, "valkey_read", Action::Allow),
            ],
            DefaultAction::Allow,
        )
        .unwrap();
        let mut state = policy.new_state();
        let decision = policy.evaluate("valkey_read", &mut state, Instant::now());
        assert_eq!(summary(&decision), ("deny", Some(1)));
    }

    #[test]
    fn default_applies_when_no_rule_matches() {
        for (default, expected) in [
            (DefaultAction::Allow, ("allow", None)),
            (DefaultAction::Deny, ("default_deny", None)),
        ] {
            let policy =
                Policy::from_rules(vec![rule(1, "valkey_read", Action::Allow)], default).unwrap();
            let mut state = policy.new_state();
            let decision = policy.evaluate("valkey_write", &mut state, Instant::now());
            assert_eq!(summary(&decision), expected);
        }
    }

    #[test]
    fn rate_limit_refuses_over_the_limit_and_reopens() {
        let policy = Policy::from_rules(
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
            let decision = policy.evaluate(tool, &mut state, at(t));
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
            Policy::from_rules(vec![limited(1, "valkey_write", 1, 60)], DefaultAction::Deny)
                .unwrap();
        let now = Instant::now();
        let mut first = policy.new_state();
        let mut second = policy.new_state();
        assert!(
            policy
                .evaluate("valkey_write", &mut first, now)
                .is_allowed()
        );
        assert!(
            !policy
                .evaluate("valkey_write", &mut first, now)
                .is_allowed()
        );
        assert!(
            policy
                .evaluate("valkey_write", &mut second, now)
                .is_allowed()
        );
    }

    #[test]
    fn remembered_decisions_stay_right_past_the_cache_bound() {
        let policy = Policy::from_rules(
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
                let decision = policy.evaluate(&tool, &mut state, now);
                assert_eq!(summary(&decision), expected, "{tool} in round {round}");
            }
            assert!(state.deciding.len() <= DECIDING_CACHE_NAMES);
        }
    }

    #[test]
    fn hides_only_tools_whose_deciding_rule_is_a_hiding_deny() {
        let mut hidden = rule(2, "secret_*", Action::Deny);
        hidden.hide = true;
        let policy = Policy::from_rules(
            vec![rule(1, "secret_ok", Action::Allow), hidden],
            DefaultAction::Deny,
        )
        .unwrap();
        assert!(policy.hides("secret_key"));
        assert!(!policy.hides("secret_ok"));
        assert!(!policy.hides("other"));
    }
}
