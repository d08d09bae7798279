//! `when = [...]` on a rule: argument conditions, read into [`Cond`] trees with every problem
//! at its line and column. Globs and regexes are compiled here, once; an invalid one is an error
//! before start.

use toml::de::{DeTable, DeValue};

use super::command_lines::is_words;
use super::walk::{Checker, Value, describe, list};
use crate::policy::condition::{Cond, Literal, Op, Test, parse_condition_path};

/// The operators a test may use, in the order messages list them.
const OPERATORS: &[&str] = &[
    "eq", "ne", "in", "not_in", "glob", "regex", "prefix", "lt", "le", "gt", "ge", "exists",
];
/// The other keys of a test.
const TEST_KEYS: &[&str] = &["arg", "ignore_case", "every"];

impl Checker<'_> {
    /// `when = [ ... ]`: every item must hold.
    pub(super) fn when(&mut self, number: usize, value: &Value<'_>) -> Option<Cond> {
        let what = format!("\"when\" in rule {number}");
        let items = self.array(
            value,
            &what,
            "an array of conditions such as [ { arg = \"command\", eq = \"SET\" } ]",
        )?;
        let mut all = Vec::new();
        let mut ok = true;
        for item in items {
            match self.condition(number, item) {
                Some(cond) => all.push(cond),
                None => ok = false,
            }
        }
        if all.is_empty() && ok {
            self.report(
                value.span(),
                format!("\"when\" in rule {number} is empty; remove it or add a condition"),
            );
            return None;
        }
        ok.then_some(Cond::All(all))
    }

    /// One condition: a test, `{ any = [...] }`, `{ all = [...] }` or `{ not = {...} }`.
    fn condition(&mut self, number: usize, value: &Value<'_>) -> Option<Cond> {
        let place = format!("in a condition of rule {number}");
        let table = self.table(
            value,
            &format!("a condition of rule {number}"),
            "a table such as { arg = \"command\", eq = \"SET\" }",
        )?;
        for group in ["any", "all"] {
            if let Some(items) = table.get(group) {
                self.only_key(table, group, &place);
                let items = self.array(
                    items,
                    &format!("\"{group}\" {place}"),
                    "an array of conditions",
                )?;
                let mut conds = Vec::new();
                for item in items {
                    conds.push(self.condition(number, item));
                }
                let conds: Option<Vec<Cond>> = conds.into_iter().collect();
                let conds = conds?;
                if conds.is_empty() {
                    self.report(value.span(), format!("\"{group}\" {place} is empty"));
                    return None;
                }
                return Some(if group == "any" {
                    Cond::Any(conds)
                } else {
                    Cond::All(conds)
                });
            }
        }
        if let Some(inner) = table.get("not") {
            self.only_key(table, "not", &place);
            return self
                .condition(number, inner)
                .map(|c| Cond::Not(Box::new(c)));
        }
        self.test(number, value, table, &place)
    }

    fn only_key(&mut self, table: &DeTable<'_>, key: &str, place: &str) {
        for other in table.keys() {
            let name: &str = other.get_ref();
            if name != key {
                self.report(
                    other.span(),
                    format!("{name:?} {place} cannot stand beside {key:?}; put it in a condition of its own"),
                );
            }
        }
    }

    fn test(
        &mut self,
        number: usize,
        value: &Value<'_>,
        table: &DeTable<'_>,
        place: &str,
    ) -> Option<Cond> {
        let mut known: Vec<&str> = TEST_KEYS.to_vec();
        known.extend(OPERATORS);
        known.extend(["any", "all", "not"]);
        self.reject_unknown_keys(table, &known, place);
        let path = match table.get("arg") {
            None => {
                self.report(
                    value.span(),
                    format!(
                        "a condition of rule {number} has no \"arg\"; add the path of the argument \
                         it tests, e.g. arg = \"command\" or arg = \"args[0]\""
                    ),
                );
                None
            }
            Some(arg) => self.string(arg, "\"arg\"", place).and_then(|text| {
                parse_condition_path(text)
                    .map_err(|why| self.report(arg.span(), format!("{why} {place}")))
                    .ok()
            }),
        };
        let ignore_case = table
            .get("ignore_case")
            .and_then(|v| self.boolean(v, "\"ignore_case\"", place))
            .unwrap_or(false);
        let every = table
            .get("every")
            .and_then(|v| self.boolean(v, "\"every\"", place))
            .unwrap_or(false);
        let ops: Vec<_> = table
            .iter()
            .filter(|(key, _)| OPERATORS.contains(&key.get_ref().as_ref()))
            .collect();
        let misspelt = table
            .keys()
            .any(|key| !known.contains(&key.get_ref().as_ref()));
        let (key, operand) = match ops.as_slice() {
            // A misspelt operator was reported as an unknown key already.
            [] if misspelt => return None,
            [] => {
                self.report(
                    value.span(),
                    format!(
                        "a condition of rule {number} has no operator; add one of {}",
                        list(OPERATORS)
                    ),
                );
                return None;
            }
            [one] => *one,
            [_, second, ..] => {
                self.report(
                    second.0.span(),
                    format!(
                        "a condition of rule {number} has more than one operator; write one \
                         condition per operator (all conditions of a rule must hold)"
                    ),
                );
                return None;
            }
        };
        let name: &str = key.get_ref();
        let op = self.operator(name, operand, ignore_case, place)?;
        let path = path?;
        if is_words(&path.segments) && !self.words_operator(&op, operand, place) {
            return None;
        }
        if every
            && !path
                .segments
                .contains(&crate::policy::condition::Segment::Each)
        {
            self.report(
                value.span(),
                format!(
                    "\"every\" {place} needs a path with [*], such as \"args[*]\"; without one \
                     there is one value to test"
                ),
            );
            return None;
        }
        Some(Cond::Test(Box::new(Test::new(
            path,
            op,
            ignore_case,
            every,
        ))))
    }

    fn operator(
        &mut self,
        name: &str,
        operand: &Value<'_>,
        ignore_case: bool,
        place: &str,
    ) -> Option<Op> {
        let what = format!("\"{name}\" {place}");
        let fold = |s: &str| {
            if ignore_case {
                s.to_uppercase()
            } else {
                s.to_owned()
            }
        };
        Some(match name {
            "eq" => Op::Eq(self.literal(operand, &what)?),
            "ne" => Op::Ne(self.literal(operand, &what)?),
            "in" | "not_in" => {
                let items = self.array(operand, &what, "an array of values")?;
                let mut literals = Vec::new();
                for item in items {
                    literals.push(self.literal(item, &what)?);
                }
                if name == "in" {
                    Op::In(literals)
                } else {
                    Op::NotIn(literals)
                }
            }
            "glob" => {
                let pattern = self.string(operand, &format!("\"{name}\""), place)?;
                match globset::GlobBuilder::new(&fold(pattern))
                    .literal_separator(false)
                    .backslash_escape(true)
                    .build()
                {
                    Ok(glob) => Op::Glob(glob.compile_matcher(), pattern.to_owned()),
                    Err(err) => {
                        self.report(
                            operand.span(),
                            format!("invalid glob {pattern:?} {place}: {}", err.kind()),
                        );
                        return None;
                    }
                }
            }
            "regex" => {
                let pattern = self.string(operand, &format!("\"{name}\""), place)?;
                match regex::RegexBuilder::new(pattern)
                    .case_insensitive(ignore_case)
                    .size_limit(1 << 20)
                    .build()
                {
                    Ok(regex) => Op::Regex(regex),
                    Err(err) => {
                        let why = err.to_string();
                        let why = why.lines().last().unwrap_or_default().trim().to_owned();
                        self.report(
                            operand.span(),
                            format!("invalid regex {pattern:?} {place}: {why}"),
                        );
                        return None;
                    }
                }
            }
            "prefix" => Op::Prefix(
                self.string(operand, &format!("\"{name}\""), place)?
                    .to_owned(),
            ),
            "lt" | "le" | "gt" | "ge" => {
                let x = match operand.get_ref() {
                    DeValue::Integer(_) => super::walk::integer_value(operand.get_ref())? as f64,
                    DeValue::Float(x) => x.as_str().parse::<f64>().ok()?,
                    other => {
                        self.report(
                            operand.span(),
                            format!("{what} must be a number, found {}", describe(other)),
                        );
                        return None;
                    }
                };
                match name {
                    "lt" => Op::Lt(x),
                    "le" => Op::Le(x),
                    "gt" => Op::Gt(x),
                    _ => Op::Ge(x),
                }
            }
            "exists" => Op::Exists(self.boolean(operand, &format!("\"{name}\""), place)?),
            _ => unreachable!("only operators reach here, got {name}"),
        })
    }

    /// Words are text: a test on `@words` compares strings, never numbers or booleans.
    fn words_operator(&mut self, op: &Op, operand: &Value<'_>, place: &str) -> bool {
        let literals: &[Literal] = match op {
            Op::Eq(l) | Op::Ne(l) => std::slice::from_ref(l),
            Op::In(ls) | Op::NotIn(ls) => ls,
            Op::Lt(_) | Op::Le(_) | Op::Gt(_) | Op::Ge(_) => {
                self.report(
                    operand.span(),
                    format!(
                        "\"{}\" {place} compares numbers, but the words of a command line are \
                         text; use eq, in, glob, regex or prefix",
                        op.name()
                    ),
                );
                return false;
            }
            _ => &[],
        };
        if literals.iter().all(|l| matches!(l, Literal::Str(_))) {
            return true;
        }
        self.report(
            operand.span(),
            format!(
                "\"{}\" {place} compares a word of the command line with something that is not \
                 a string; the words are text, so write \"5\" rather than 5",
                op.name()
            ),
        );
        false
    }

    fn literal(&mut self, value: &Value<'_>, what: &str) -> Option<Literal> {
        match value.get_ref() {
            DeValue::String(s) => Some(Literal::Str(s.to_string())),
            DeValue::Integer(_) => {
                let n = super::walk::integer_value(value.get_ref())?;
                match i64::try_from(n) {
                    Ok(n) => Some(Literal::Int(n)),
                    Err(_) => {
                        self.report(value.span(), format!("{what}: {n} is out of range"));
                        None
                    }
                }
            }
            DeValue::Float(x) => match x.as_str().parse::<f64>() {
                Ok(x) if x.is_finite() => Some(Literal::Float(x)),
                _ => {
                    self.report(value.span(), format!("{what}: a finite number is expected"));
                    None
                }
            },
            DeValue::Boolean(b) => Some(Literal::Bool(*b)),
            other => {
                self.report(
                    value.span(),
                    format!(
                        "{what} must be a string, a number or a boolean, found {}",
                        describe(other)
                    ),
                );
                None
            }
        }
    }
}
