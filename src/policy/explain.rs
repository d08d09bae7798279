//! Why the policy decides what it does about a call: every rule in order, and what it made of
//! the call, for `mcp-policy-proxy explain` and policy tests.

use std::sync::Arc;
use std::time::Instant;

use super::condition::Holds;
use super::{Call, Decision, Membership, Policy, PolicyState, Rule};

/// What one rule made of the call.
#[derive(Debug, Clone)]
pub enum Step {
    /// Its `tool` pattern does not match the tool's name.
    PatternMismatch,
    /// The tool is not in the rule's class.
    NotInClass(String),
    /// A condition did not hold.
    ConditionFalse(String),
    /// It would decide this, but it is a shadow rule: only logged.
    Shadow(Decision),
    /// It decided.
    Decided(Decision),
    /// Not reached: an earlier rule decided.
    NotReached,
}

/// The whole story of one decision.
#[derive(Debug, Clone)]
pub struct Explanation {
    pub steps: Vec<(Arc<Rule>, Step)>,
    pub decision: Decision,
    /// The words of the command line the server would run, when the proxy knows how the tool
    /// makes them; or why it cannot read them from these arguments.
    pub command_line: Option<Result<Vec<String>, String>>,
    /// The words the command argument alone makes: all that a test on the command reads when
    /// the rest of the line cannot be read.
    pub command_words: Option<Vec<String>>,
}

impl Policy {
    /// Explains what the policy decides about `call` in a fresh session (no rate limit used).
    pub fn explain(&self, call: &Call<'_>) -> Explanation {
        let mut state = self.new_state();
        self.explain_with(call, &mut state, Instant::now())
    }

    /// Explains what the policy decides about `call` with `state` at `now`.
    pub fn explain_with(
        &self,
        call: &Call<'_>,
        state: &mut PolicyState,
        now: Instant,
    ) -> Explanation {
        let decision = self.evaluate(call, state, now);
        let subject = self.subject(call);
        let command_line = subject
            .line()
            .map(|_| subject.words().map(|words| words.words.clone()));
        let command_words = subject
            .line()
            .and_then(|line| line.command_words(call.arguments, subject.schema).ok());
        let mut steps = Vec::new();
        let mut decided = false;
        for (index, rule) in self.rules.iter().enumerate() {
            if decided {
                steps.push((rule.clone(), Step::NotReached));
                continue;
            }
            let pattern_matches = match globset::Glob::new(&rule.pattern) {
                Ok(glob) if rule.pattern.contains(['*', '?', '[', ']', '{', '}', '\\']) => {
                    glob.compile_matcher().is_match(call.tool)
                }
                _ => rule.pattern == call.tool,
            };
            if !pattern_matches {
                steps.push((rule.clone(), Step::PatternMismatch));
                continue;
            }
            if let Some(class_name) = &rule.class {
                let member = self.classes.get(class_name).is_some_and(|class| {
                    match class.by_name(call.tool) {
                        Membership::Yes => true,
                        Membership::No => false,
                        Membership::ByHints => class.by_hints(call.tool_info),
                    }
                });
                if !member {
                    steps.push((rule.clone(), Step::NotInClass(class_name.clone())));
                    continue;
                }
            }
            if let Some(when) = &rule.when {
                match when.judge(&subject) {
                    Holds::Yes => {}
                    Holds::No => {
                        steps.push((rule.clone(), Step::ConditionFalse(when.describe())));
                        continue;
                    }
                    Holds::Unjudgeable(reason) => {
                        let decision = Decision::Unjudgeable {
                            rule: rule.clone(),
                            reason,
                        };
                        if rule.shadow {
                            steps.push((rule.clone(), Step::Shadow(decision)));
                            continue;
                        }
                        steps.push((rule.clone(), Step::Decided(decision)));
                        decided = true;
                        continue;
                    }
                }
            }
            let mut scratch = state.clone();
            let this = self.decide(index, &mut scratch, now);
            if rule.shadow {
                steps.push((rule.clone(), Step::Shadow(this)));
                continue;
            }
            steps.push((rule.clone(), Step::Decided(this)));
            decided = true;
        }
        Explanation {
            steps,
            decision,
            command_line,
            command_words,
        }
    }
}
