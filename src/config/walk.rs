//! The toolkit for walking a parsed TOML document: a span-aware `Checker` that collects
//! problems, typed readers that report a wrong type where it is, and the wording helpers every
//! section shares ("expected one of ...").

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::problems::{ConfigErrors, Problem};
use super::{Config, Vocabulary};

pub(super) type Value<'i> = Spanned<DeValue<'i>>;

/// Walks a parsed document, turning it into a `Config` and collecting problems on the way.
/// The partial `Config` it builds is thrown away if any problem was found.
pub(super) struct Checker<'t> {
    pub(super) text: &'t str,
    /// Byte offset at which each line starts.
    line_starts: Vec<usize>,
    pub(super) problems: Vec<Problem>,
    /// `class = "..."` of the rules, checked once `[classes]` is read (it may come later).
    pub(super) class_references: Vec<(String, Range<usize>)>,
    /// Where a rate limit is shared through the store, checked once `[store]` is read.
    pub(super) fleet_scopes: Vec<Range<usize>>,
    /// The exact tool names of rules whose conditions test `@words`, with where, checked once
    /// `[[command_lines]]` is read.
    pub(super) words_references: Vec<(String, Range<usize>)>,
}

impl<'t> Checker<'t> {
    pub(super) fn new(text: &'t str) -> Checker<'t> {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Checker {
            text,
            line_starts,
            problems: Vec::new(),
            class_references: Vec::new(),
            fleet_scopes: Vec::new(),
            words_references: Vec::new(),
        }
    }

    pub(super) fn finish(mut self, config: Config) -> Result<Config, ConfigErrors> {
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
    pub(super) fn position(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let line_start = self.line_starts[line - 1];
        let column = self.text[line_start..offset].chars().count() + 1;
        (line, column)
    }

    pub(super) fn report(&mut self, span: Range<usize>, message: String) {
        let (line, column) = self.position(span.start);
        self.problems.push(Problem {
            line,
            column,
            message,
        });
    }

    pub(super) fn syntax_error(&mut self, error: &toml::de::Error) {
        let span = error.span().unwrap_or(0..0);
        let mut message = format!("invalid toml: {}", error.message());
        // The parser's "duplicate key" does not say which key.
        if let Some(key) = self.text.get(span.clone()).filter(|key| !key.is_empty())
            && error.message() == "duplicate key"
        {
            message.push_str(&format!(" {key:?}"));
        }
        self.report(span, message);
    }

    pub(super) fn reject_unknown_keys(
        &mut self,
        table: &DeTable<'_>,
        allowed: &[&str],
        place: &str,
    ) {
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
    pub(super) fn table<'a, 'i>(
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
    pub(super) fn array<'a, 'i>(
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

    pub(super) fn string<'a>(
        &mut self,
        value: &'a Value<'_>,
        what: &str,
        place: &str,
    ) -> Option<&'a str> {
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

    pub(super) fn boolean(&mut self, value: &Value<'_>, what: &str, place: &str) -> Option<bool> {
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

    pub(super) fn integer(&mut self, value: &Value<'_>, what: &str, place: &str) -> Option<i128> {
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
    pub(super) fn as_written(&self, value: &Value<'_>) -> &'t str {
        self.text.get(value.span()).unwrap_or_default()
    }
}

/// An integer value; one too large even for `i128` saturates, so range checks reject it.
pub(super) fn integer_value(value: &DeValue<'_>) -> Option<i128> {
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
pub(super) fn describe(value: &DeValue<'_>) -> String {
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
pub(super) fn one_of(options: &[&str]) -> String {
    match options {
        [only] => format!("{only:?}"),
        [a, b] => format!("{a:?} or {b:?}"),
        _ => format!("one of {}", list(options)),
    }
}

/// `"a", "b", "c"`.
pub(super) fn list(options: &[&str]) -> String {
    options
        .iter()
        .map(|o| format!("{o:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The names of a vocabulary, for messages.
pub(super) fn names<T: Copy + 'static>(vocabulary: &Vocabulary<T>) -> Vec<&'static str> {
    vocabulary.0.iter().map(|(name, _)| *name).collect()
}
