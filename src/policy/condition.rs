//! Argument conditions: what a rule says about a call's `arguments`, judged on the raw bytes.
//!
//! The threat is the same as everywhere in the proxy: a value the proxy judges one way and the
//! server reads another way is a bypass. So a condition reads the arguments as the server will:
//! - keys and strings decoded (JSON escapes), through the strict validator's accessors, on
//!   arguments that passed strict validation (no duplicate keys, so first-wins and last-wins
//!   readers agree);
//! - `ignore_case` upper-cases both sides with the full Unicode mappings, as Python's
//!   `str.upper()` does (the Valkey server upper-cases a command that way): `ﬂushdb` is
//!   `FLUSHDB`, `ſet` is `SET`, `ıncr` is `INCR`;
//! - a value whose JSON type is not one the tool's `inputSchema` declares at that path is not
//!   judged at all: the server's SDK would convert it (a JSON-encoded string becomes an array,
//!   `"5"` becomes 5, `"yes"` becomes true), so the proxy cannot know what runs. The same holds
//!   without a schema for a step into a string, or a string that holds a JSON array or object.
//!   Such a call is refused with the reason ([`Holds::Unjudgeable`]);
//! - where the schema lets a top-level argument be a string or an array, object, boolean or
//!   null, a string holding such JSON is judged as what the Python SDK decodes it to;
//! - `@words[i]` tests the command line the server runs (see [`super::command_line`]), and a
//!   test on a known tool's command argument must read it as what runs, or it refuses the call.
//!
//! Nothing here builds a tree of the arguments: paths are walked with `json::get` and
//! `json::elements` over the bytes of the line.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::fmt;

use super::command_line::{CommandLine, CommandLines, Words, is_python_space, python_split};
use crate::json::{self, Kind};

/// A condition tree, as `when = [...]` writes it: every item must hold.
#[derive(Debug, Clone)]
pub enum Cond {
    Test(Box<Test>),
    /// Holds when every condition holds (the list form of `when`).
    All(Vec<Cond>),
    /// `{ any = [...] }`: holds when one condition holds.
    Any(Vec<Cond>),
    /// `{ not = {...} }`.
    Not(Box<Cond>),
}

/// One test of the value at a path.
#[derive(Debug, Clone)]
pub struct Test {
    pub path: ArgPath,
    pub op: Op,
    pub ignore_case: bool,
    /// With a `[*]` in the path: every element must pass (`every = true`), not just one. There
    /// must be at least one: an empty array passes no `every` test, so an allow rule that wants
    /// every key safe does not allow a call with no keys at all.
    pub every: bool,
    /// How many leading words of a command line the operator reads (see
    /// [`Test::words_needed`]), worked out once.
    words_needed: Option<usize>,
}

/// A path into `arguments`: `command`, `a.b`, `args[0]`, `args[*]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgPath {
    pub segments: Vec<Segment>,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Member(String),
    Index(usize),
    /// `[*]`: every element of an array.
    Each,
    /// `@words`: the words of the command line the server runs (see
    /// [`super::command_line`]); only ever the first segment, followed by one index or `[*]`.
    Words,
}

/// A literal in a condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl Literal {
    fn type_name(&self) -> &'static str {
        match self {
            Literal::Str(_) => "a string",
            Literal::Int(_) | Literal::Float(_) => "a number",
            Literal::Bool(_) => "a boolean",
        }
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Str(s) => write!(f, "{s:?}"),
            Literal::Int(n) => write!(f, "{n}"),
            Literal::Float(x) => write!(f, "{x}"),
            Literal::Bool(b) => write!(f, "{b}"),
        }
    }
}

#[derive(Debug, Clone)]
pub enum Op {
    Eq(Literal),
    Ne(Literal),
    In(Vec<Literal>),
    NotIn(Vec<Literal>),
    Glob(globset::GlobMatcher, String),
    Regex(regex::Regex),
    Prefix(String),
    Lt(f64),
    Le(f64),
    Gt(f64),
    Ge(f64),
    Exists(bool),
}

impl Op {
    pub fn name(&self) -> &'static str {
        match self {
            Op::Eq(_) => "eq",
            Op::Ne(_) => "ne",
            Op::In(_) => "in",
            Op::NotIn(_) => "not_in",
            Op::Glob(..) => "glob",
            Op::Regex(_) => "regex",
            Op::Prefix(_) => "prefix",
            Op::Lt(_) => "lt",
            Op::Le(_) => "le",
            Op::Gt(_) => "gt",
            Op::Ge(_) => "ge",
            Op::Exists(_) => "exists",
        }
    }

    /// Whether a missing value passes: only the negative tests hold for nothing.
    fn holds_when_missing(&self) -> bool {
        matches!(self, Op::Ne(_) | Op::NotIn(_) | Op::Exists(false))
    }
}

/// The verdict of a condition on a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holds {
    Yes,
    No,
    /// The value cannot be judged as the server will read it.
    Unjudgeable(String),
}

impl Holds {
    fn from_bool(b: bool) -> Holds {
        if b { Holds::Yes } else { Holds::No }
    }
}

/// What a condition judges: one call's arguments, the tool's declared `inputSchema`, and the
/// command line the tool runs, when the proxy knows it. The words are worked out at most once
/// per call, and only when a condition asks for them.
pub struct Subject<'a> {
    pub tool: &'a str,
    pub arguments: Option<&'a [u8]>,
    pub schema: Option<&'a [u8]>,
    lines: Option<&'a CommandLines>,
    line: OnceCell<Option<&'a CommandLine>>,
    words: OnceCell<Result<Words, String>>,
}

impl<'a> Subject<'a> {
    /// A call to `tool`, whose command line is looked up in `lines` when a condition needs it.
    pub fn new(
        tool: &'a str,
        arguments: Option<&'a [u8]>,
        schema: Option<&'a [u8]>,
        lines: Option<&'a CommandLines>,
    ) -> Subject<'a> {
        Subject {
            tool,
            arguments,
            schema,
            lines,
            line: OnceCell::new(),
            words: OnceCell::new(),
        }
    }

    /// The tool's command line, when the proxy knows it.
    pub fn line(&self) -> Option<&'a CommandLine> {
        *self
            .line
            .get_or_init(|| self.lines.and_then(|lines| lines.for_tool(self.tool)))
    }

    /// The words of the command line the server runs, or why the proxy cannot tell them.
    pub fn words(&self) -> Result<&Words, String> {
        let Some(line) = self.line() else {
            return Err(format!(
                "the proxy does not know how tool {:?} turns its arguments into the words of \
                 a command, so a condition on `@words` cannot be judged; declare the tool in \
                 [[command_lines]]",
                self.tool
            ));
        };
        self.words
            .get_or_init(|| line.words(self.arguments, self.schema))
            .as_ref()
            .map_err(|why| {
                format!(
                    "the command line of tool {:?} cannot be read as the server runs it: {why}",
                    self.tool
                )
            })
    }
}

impl Cond {
    /// Judges the condition on `arguments` (raw, validated JSON; `None` when absent), against
    /// the tool's `inputSchema` when the server declared one, knowing no command line.
    pub fn holds(&self, arguments: Option<&[u8]>, schema: Option<&[u8]>) -> Holds {
        self.judge(&Subject::new("", arguments, schema, None))
    }

    /// Judges the condition on a call.
    pub fn judge(&self, subject: &Subject<'_>) -> Holds {
        match self {
            Cond::Test(test) => test.holds(subject),
            Cond::All(items) => {
                for item in items {
                    match item.judge(subject) {
                        Holds::Yes => {}
                        other => return other,
                    }
                }
                Holds::Yes
            }
            Cond::Any(items) => {
                // Every alternative is judged: one that cannot be judged refuses the call even
                // when another holds, so the verdict never depends on the order written.
                let mut any = false;
                for item in items {
                    match item.judge(subject) {
                        Holds::Yes => any = true,
                        Holds::No => {}
                        unjudgeable => return unjudgeable,
                    }
                }
                Holds::from_bool(any)
            }
            Cond::Not(inner) => match inner.judge(subject) {
                Holds::Yes => Holds::No,
                Holds::No => Holds::Yes,
                unjudgeable => unjudgeable,
            },
        }
    }

    /// Whether a test of the condition reads the command line's words.
    pub fn reads_words(&self) -> bool {
        match self {
            Cond::Test(test) => test.path.segments.first() == Some(&Segment::Words),
            Cond::All(items) | Cond::Any(items) => items.iter().any(Cond::reads_words),
            Cond::Not(inner) => inner.reads_words(),
        }
    }

    /// Whether a test of the condition reads the argument at `path`.
    pub fn reads(&self, path: &ArgPath) -> bool {
        match self {
            Cond::Test(test) => test.path.segments == path.segments,
            Cond::All(items) | Cond::Any(items) => items.iter().any(|c| c.reads(path)),
            Cond::Not(inner) => inner.reads(path),
        }
    }

    /// The condition as a person reads it, for `check` and `explain`.
    pub fn describe(&self) -> String {
        match self {
            Cond::Test(test) => test.describe(),
            Cond::All(items) => items
                .iter()
                .map(Cond::describe)
                .collect::<Vec<_>>()
                .join(" and "),
            Cond::Any(items) => format!(
                "({})",
                items
                    .iter()
                    .map(Cond::describe)
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
            Cond::Not(inner) => format!("not ({})", inner.describe()),
        }
    }
}

impl Test {
    fn describe(&self) -> String {
        let list = |items: &[Literal]| {
            items
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let op = match &self.op {
            Op::Eq(v) => format!("== {v}"),
            Op::Ne(v) => format!("!= {v}"),
            Op::In(vs) => format!("in [{}]", list(vs)),
            Op::NotIn(vs) => format!("not in [{}]", list(vs)),
            Op::Glob(_, g) => format!("matches glob {g:?}"),
            Op::Regex(r) => format!("matches regex {:?}", r.as_str()),
            Op::Prefix(p) => format!("starts with {p:?}"),
            Op::Lt(x) => format!("< {x}"),
            Op::Le(x) => format!("<= {x}"),
            Op::Gt(x) => format!("> {x}"),
            Op::Ge(x) => format!(">= {x}"),
            Op::Exists(true) => "exists".to_owned(),
            Op::Exists(false) => "does not exist".to_owned(),
        };
        let every = if self.every { "every " } else { "" };
        let case = if self.ignore_case {
            " (ignoring case)"
        } else {
            ""
        };
        format!("{every}{} {op}{case}", self.path.text)
    }

    fn holds(&self, subject: &Subject<'_>) -> Holds {
        if self.path.segments.first() == Some(&Segment::Words) {
            return self.holds_on_words(subject);
        }
        // A test on the argument a known command line takes its command from is judged on what
        // the server runs as well as on what the call wrote.
        let on_command = subject
            .lines
            .is_some_and(|lines| lines.may_be_command(&self.path))
            && subject
                .line()
                .and_then(CommandLine::command_path)
                .is_some_and(|command| command.segments == self.path.segments);
        let (mut found, mut passed) = (0usize, 0usize);
        if let Some(arguments) = subject.arguments {
            let exists = matches!(self.op, Op::Exists(_));
            let mut visit = |value: &[u8], typed: bool| -> Result<(), String> {
                found += 1;
                if exists {
                    return Ok(());
                }
                let holds = if on_command && json::kind(value) == Kind::String {
                    self.test_command(value, typed, subject)?
                } else {
                    self.test_value(value, typed)?
                };
                if holds {
                    passed += 1;
                }
                Ok(())
            };
            if let Err(why) = walk_values(arguments, subject.schema, &self.path, &mut visit) {
                return Holds::Unjudgeable(why);
            }
        }
        self.verdict(found, passed)
    }

    /// The verdict once `found` values were tested and `passed` of them passed.
    fn verdict(&self, found: usize, passed: usize) -> Holds {
        if let Op::Exists(wanted) = self.op {
            return Holds::from_bool((found > 0) == wanted);
        }
        if found == 0 {
            return Holds::from_bool(self.op.holds_when_missing());
        }
        Holds::from_bool(if self.every {
            passed == found
        } else {
            passed > 0
        })
    }

    /// `@words[i]` or `@words[*]`: the words of the command line the server runs.
    fn holds_on_words(&self, subject: &Subject<'_>) -> Holds {
        let command;
        let words = match (subject.words(), subject.line(), self.path.segments.get(1)) {
            (Ok(words), ..) => &words.words,
            // A word the command itself makes does not depend on the rest of the line.
            (Err(why), Some(line), Some(Segment::Index(i))) => {
                command = line.command_words(subject.arguments, subject.schema);
                match &command {
                    Ok(words) if *i < words.len() => words,
                    _ => return Holds::Unjudgeable(why),
                }
            }
            (Err(why), ..) => return Holds::Unjudgeable(why),
        };
        let selected: &[String] = match self.path.segments.get(1) {
            Some(Segment::Index(i)) => words.get(*i).map_or(&[], std::slice::from_ref),
            _ => words,
        };
        let mut passed = 0;
        // Where the server reads command names without regard to case, a comparison that
        // minds case must give the same verdict on the word upper-cased, or the call is refused.
        let folded = (!self.ignore_case && subject.line().is_some_and(|l| l.names_ignore_case))
            .then(|| self.upper_case());
        if !matches!(self.op, Op::Exists(_)) {
            for word in selected {
                let holds = match self.test_text(word) {
                    Ok(holds) => holds,
                    Err(why) => return Holds::Unjudgeable(why),
                };
                if let Some(folded) = &folded
                    && folded.compares_literals()
                    && folded.test_text(word) != Ok(holds)
                {
                    return Holds::Unjudgeable(format!(
                        "`{}` is {word:?}, which the server reads without regard to case when it \
                         names a command; the condition `{}` minds case, so the proxy cannot \
                         judge the call by it. Send command names in upper case",
                        self.path.text,
                        self.describe(),
                    ));
                }
                if holds {
                    passed += 1;
                }
            }
        }
        self.verdict(selected.len(), passed)
    }

    /// One word against the operator. Words are text: a condition on them compares strings
    /// (the configuration refuses other literals and the number operators on `@words`).
    fn test_text(&self, word: &str) -> Result<bool, String> {
        let text = self.fold(Cow::Borrowed(word));
        let equals = |literal: &Literal| matches!(literal, Literal::Str(s) if text.as_ref() == s);
        match &self.op {
            Op::Eq(literal) => Ok(equals(literal)),
            Op::Ne(literal) => Ok(!equals(literal)),
            Op::In(literals) => Ok(literals.iter().any(equals)),
            Op::NotIn(literals) => Ok(!literals.iter().any(equals)),
            Op::Glob(matcher, _) => Ok(matcher.is_match(text.as_ref())),
            Op::Regex(regex) => Ok(regex.is_match(&text)),
            Op::Prefix(prefix) => Ok(text.starts_with(prefix.as_str())),
            Op::Lt(_) | Op::Le(_) | Op::Gt(_) | Op::Ge(_) => Err(format!(
                "`{}` is a word of the command line, which is text, but the condition compares \
                 numbers",
                self.path.text
            )),
            Op::Exists(_) => unreachable!("handled before the values"),
        }
    }

    /// A test on the command argument of a tool whose command line the proxy knows: the verdict
    /// on the value as written must be the verdict on what the server runs, else the call is
    /// refused. So `command in ["FLUSHALL"]` does not let `"FLUSHALL SYNC"` (run as `FLUSHALL
    /// SYNC`) nor `"flushall"` without `ignore_case` (run as `FLUSHALL`) through, and
    /// `command eq "CONFIG SET"` does not let `"CONFIG"` with `args = ["SET", ...]` through.
    fn test_command(
        &self,
        value: &[u8],
        typed: bool,
        subject: &Subject<'_>,
    ) -> Result<bool, String> {
        let written = self.test_value(value, typed)?;
        let text = json::as_str(value).unwrap_or_default();
        if self.reads_as_run(&text) {
            return Ok(written);
        }
        let line = subject.words();
        let command;
        let words = match (&line, subject.line()) {
            (Ok(line), _) => &line.words,
            // The rest of the line (`args`) cannot be read, but this test may need only the
            // words the command itself makes: then what `args` holds cannot change its verdict.
            (Err(why), Some(known)) => {
                command = known.command_words(subject.arguments, subject.schema);
                match &command {
                    Ok(words) if self.words_needed.is_some_and(|n| n <= words.len()) => words,
                    _ => return Err(why.clone()),
                }
            }
            (Err(why), None) => return Err(why.clone()),
        };
        let names_ignore_case = subject.line().is_some_and(|l| l.names_ignore_case);
        let Some(run) = self.test_run(words, names_ignore_case) else {
            return Ok(written);
        };
        if run == written {
            return Ok(written);
        }
        Err(format!(
            "`{}` is {:?}, which the server runs as the command {}; the condition `{}` holds \
             for one and not for the other, so the proxy cannot judge the call by it. Send the \
             command as the server runs it: its name alone in `{}`, in upper case, and the rest \
             of its words in the other arguments",
            self.path.text,
            json::as_str(value).unwrap_or_default(),
            show_words(words),
            self.describe(),
            self.path.text,
        ))
    }

    /// This test comparing without regard to case, as the server reads command names; only
    /// its literals are upper-cased (globs and regexes keep their patterns).
    fn upper_case(&self) -> Test {
        Test::new(self.path.clone(), self.op.clone(), true, self.every)
    }

    /// Whether the operator compares with literal strings (which [`Test::upper_case`] folds).
    fn compares_literals(&self) -> bool {
        matches!(
            self.op,
            Op::Eq(_) | Op::Ne(_) | Op::In(_) | Op::NotIn(_) | Op::Prefix(_)
        )
    }

    /// Whether this test reads the command `text` as what runs, without working the words
    /// out: a command of one word, with no whitespace for the server to split or keep, already
    /// in the case the server gives it (or compared ignoring case), tested against single
    /// words. What the server runs starts with exactly that word, so the two verdicts agree.
    /// This is the common call, and it costs no allocation.
    fn reads_as_run(&self, text: &str) -> bool {
        let upper = || {
            if text.is_ascii() {
                !text.bytes().any(|b| b.is_ascii_lowercase())
            } else {
                text.to_uppercase() == text
            }
        };
        !text.is_empty()
            && !text.contains(is_python_space)
            && self.words_needed.is_some_and(|n| n <= 1)
            && (self.ignore_case || upper())
    }

    /// How many leading words of the command line [`Test::test_run`] reads; `None` when it
    /// reads the whole line.
    fn words_needed(&self) -> Option<usize> {
        let count = |literal: &str| {
            let k = python_split(literal).count() + usize::from(literal.ends_with(is_python_space));
            k.max(1)
        };
        let most = |literals: &[Literal]| {
            literals
                .iter()
                .map(|l| match l {
                    Literal::Str(s) => count(s),
                    _ => 1,
                })
                .max()
                .unwrap_or(1)
        };
        match &self.op {
            Op::Eq(l) | Op::Ne(l) => Some(most(std::slice::from_ref(l))),
            Op::In(ls) | Op::NotIn(ls) => Some(most(ls)),
            Op::Prefix(p) => Some(count(p)),
            Op::Glob(_, source) => (!source.contains(is_python_space)).then_some(1),
            Op::Regex(regex) => {
                let source = regex.as_str();
                (!source.contains(is_python_space) && !source.contains("\\s")).then_some(1)
            }
            Op::Lt(_) | Op::Le(_) | Op::Gt(_) | Op::Ge(_) | Op::Exists(_) => Some(0),
        }
    }

    /// The operator's verdict on the command line `words` as the server runs it: a literal of
    /// k words is compared with the first k words (joined by one space), a glob or regex that
    /// spans whitespace with the whole line, and one that does not with the first word. `None`
    /// for the operators that do not compare text.
    fn test_run(&self, words: &[String], names_ignore_case: bool) -> Option<bool> {
        if words.is_empty() {
            return Some(self.op.holds_when_missing());
        }
        if names_ignore_case && !self.ignore_case {
            // What runs is read without regard to case: compare so.
            return self.upper_case().test_run(words, false);
        }
        let leading = |literal: &str| -> String {
            let mut k = python_split(literal).count();
            if literal.ends_with(is_python_space) {
                k += 1;
            }
            words[..k.clamp(1, words.len())].join(" ")
        };
        let equals = |literal: &Literal| match literal {
            Literal::Str(s) => self.fold(Cow::Owned(leading(s))).as_ref() == s,
            _ => false,
        };
        let spanning = |spans: bool| -> String {
            if spans {
                words.join(" ")
            } else {
                words[0].clone()
            }
        };
        Some(match &self.op {
            Op::Eq(literal) => equals(literal),
            Op::Ne(literal) => !equals(literal),
            Op::In(literals) => literals.iter().any(equals),
            Op::NotIn(literals) => !literals.iter().any(equals),
            Op::Prefix(prefix) => self
                .fold(Cow::Owned(leading(prefix)))
                .starts_with(prefix.as_str()),
            Op::Glob(matcher, source) => {
                let text = spanning(source.contains(is_python_space));
                matcher.is_match(self.fold(Cow::Owned(text)).as_ref())
            }
            Op::Regex(regex) => {
                let source = regex.as_str();
                let spans = source.contains(is_python_space) || source.contains("\\s");
                regex.is_match(&self.fold(Cow::Owned(spanning(spans))))
            }
            Op::Lt(_) | Op::Le(_) | Op::Gt(_) | Op::Ge(_) | Op::Exists(_) => return None,
        })
    }

    /// One value against the operator. `typed`: the tool's schema declares the value's type,
    /// so the value was checked against it; without that, a value of another JSON type than the
    /// condition's literal is not judged, since the server may convert it (`"yes"` to true,
    /// `"5"` to 5).
    fn test_value(&self, value: &[u8], typed: bool) -> Result<bool, String> {
        let kind = json::kind(value);
        if !typed {
            let literals: &[Literal] = match &self.op {
                Op::Eq(l) | Op::Ne(l) => std::slice::from_ref(l),
                Op::In(ls) | Op::NotIn(ls) => ls,
                _ => &[],
            };
            let same_kind = |l: &Literal| {
                matches!(
                    (l, kind),
                    (Literal::Str(_), Kind::String)
                        | (Literal::Int(_) | Literal::Float(_), Kind::Number)
                        | (Literal::Bool(_), Kind::Bool)
                )
            };
            // Any literal of another kind could be what the server converts the value to.
            if !literals.is_empty() && !literals.iter().all(same_kind) {
                return Err(format!(
                    "`{}` is {} where the condition compares it with {}, and the tool declares \
                     no type for it that the proxy can read (it was not listed, or its schema \
                     refers elsewhere); the server may convert it, so the proxy cannot judge it",
                    self.path.text,
                    kind_name(kind),
                    literals[0].type_name(),
                ));
            }
        }
        let text = || -> Result<Cow<'_, str>, String> {
            match kind {
                Kind::String => Ok(self.fold(json::as_str(value).unwrap_or_default())),
                _ => Err(format!(
                    "`{}` is {} but the condition compares text",
                    self.path.text,
                    kind_name(kind)
                )),
            }
        };
        let number = || -> Result<f64, String> {
            match kind {
                Kind::Number => std::str::from_utf8(value.trim_ascii())
                    .ok()
                    .and_then(|t| t.parse::<f64>().ok())
                    .ok_or_else(|| format!("`{}` is not a number", self.path.text)),
                _ => Err(format!(
                    "`{}` is {} but the condition compares numbers",
                    self.path.text,
                    kind_name(kind)
                )),
            }
        };
        // Text is decoded and folded once, whatever the number of literals.
        let folded =
            (kind == Kind::String).then(|| self.fold(json::as_str(value).unwrap_or_default()));
        let equals = |literal: &Literal| match (&folded, literal) {
            (Some(text), Literal::Str(s)) => text.as_ref() == s,
            (Some(_), _) => false,
            (None, literal) => equals_scalar(value, kind, literal),
        };
        match &self.op {
            Op::Eq(literal) => Ok(equals(literal)),
            Op::Ne(literal) => Ok(!equals(literal)),
            Op::In(literals) => Ok(literals.iter().any(equals)),
            Op::NotIn(literals) => Ok(!literals.iter().any(equals)),
            Op::Glob(matcher, _) => Ok(matcher.is_match(text()?.as_ref())),
            Op::Regex(regex) => Ok(regex.is_match(&text()?)),
            Op::Prefix(prefix) => Ok(text()?.starts_with(prefix.as_str())),
            Op::Lt(x) => Ok(number()? < *x),
            Op::Le(x) => Ok(number()? <= *x),
            Op::Gt(x) => Ok(number()? > *x),
            Op::Ge(x) => Ok(number()? >= *x),
            Op::Exists(_) => unreachable!("handled before the values"),
        }
    }

    /// `s` as `ignore_case` compares it: upper-cased with the full Unicode mappings, without
    /// an allocation when it is already upper-case ASCII.
    fn fold<'s>(&self, s: Cow<'s, str>) -> Cow<'s, str> {
        if !self.ignore_case || (s.is_ascii() && !s.bytes().any(|b| b.is_ascii_lowercase())) {
            s
        } else {
            Cow::Owned(s.to_uppercase())
        }
    }

    /// A test whose literals are folded once, here, when it ignores case.
    pub fn new(path: ArgPath, op: Op, ignore_case: bool, every: bool) -> Test {
        let fold = |s: String| if ignore_case { s.to_uppercase() } else { s };
        let fold_literal = |l: Literal| match l {
            Literal::Str(s) => Literal::Str(fold(s)),
            other => other,
        };
        let op = match op {
            Op::Eq(l) => Op::Eq(fold_literal(l)),
            Op::Ne(l) => Op::Ne(fold_literal(l)),
            Op::In(ls) => Op::In(ls.into_iter().map(fold_literal).collect()),
            Op::NotIn(ls) => Op::NotIn(ls.into_iter().map(fold_literal).collect()),
            Op::Prefix(p) => Op::Prefix(fold(p)),
            other => other,
        };
        let mut test = Test {
            path,
            op,
            ignore_case,
            every,
            words_needed: None,
        };
        test.words_needed = test.words_needed();
        test
    }
}

/// Whether a non-string JSON value equals a literal: numbers by value, booleans as themselves;
/// values of other types differ.
fn equals_scalar(value: &[u8], kind: Kind, literal: &Literal) -> bool {
    match (kind, literal) {
        (Kind::Number, Literal::Int(n)) => number_equals(value, *n as f64, Some(*n)),
        (Kind::Number, Literal::Float(x)) => number_equals(value, *x, None),
        (Kind::Bool, Literal::Bool(b)) => value.trim_ascii().starts_with(b"t") == *b,
        _ => false,
    }
}

fn number_equals(value: &[u8], x: f64, exact: Option<i64>) -> bool {
    let text = std::str::from_utf8(value.trim_ascii()).unwrap_or_default();
    if let (Some(n), Ok(v)) = (exact, text.parse::<i128>()) {
        return v == i128::from(n);
    }
    text.parse::<f64>().is_ok_and(|v| v == x)
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Object => "an object",
        Kind::Array => "an array",
        Kind::String => "a string",
        Kind::Number => "a number",
        Kind::Bool => "a boolean",
        Kind::Null => "null",
    }
}

/// The JSON Schema type name of a value.
fn type_name(value: &[u8]) -> &'static str {
    match json::kind(value) {
        Kind::Object => "object",
        Kind::Array => "array",
        Kind::String => "string",
        Kind::Number => {
            let t = value.trim_ascii();
            if t.iter().any(|b| matches!(b, b'.' | b'e' | b'E')) {
                "number"
            } else {
                "integer"
            }
        }
        Kind::Bool => "boolean",
        Kind::Null => "null",
    }
}

/// The types a schema declares: its `type` (a name or a list), or those of its
/// `anyOf`/`oneOf` alternatives. Empty when it declares none the proxy can read.
fn declared_types(schema: &[u8]) -> Vec<Cow<'_, str>> {
    if let Some(t) = json::get(schema, "type") {
        return match json::kind(t) {
            Kind::String => json::as_str(t).into_iter().collect(),
            Kind::Array => json::elements(t).filter_map(json::as_str).collect(),
            _ => Vec::new(),
        };
    }
    let mut types = Vec::new();
    for key in ["anyOf", "oneOf"] {
        if let Some(alternatives) = json::get(schema, key) {
            for alternative in json::elements(alternatives) {
                let inner = declared_types(alternative);
                if inner.is_empty() {
                    // An alternative of unknown type: the union as a whole is unknown.
                    return Vec::new();
                }
                types.extend(inner);
            }
        }
    }
    types
}

/// The schema of a child: `properties[key]` or `items`, looked up in the schema or in its
/// `anyOf`/`oneOf` alternative that has it.
fn child_schema<'s>(schema: &'s [u8], member: Option<&str>) -> Option<&'s [u8]> {
    let direct = match member {
        Some(key) => json::get(schema, "properties").and_then(|p| json::get(p, key)),
        None => json::get(schema, "items"),
    };
    direct.or_else(|| {
        ["anyOf", "oneOf"].iter().find_map(|key| {
            json::elements(json::get(schema, key)?).find_map(|alt| child_schema(alt, member))
        })
    })
}

/// `schema` with local references followed: `{"$ref": "#/$defs/X"}` (and `#/definitions/X`)
/// to that definition in `root`, and an `allOf` of one schema to that schema, as pydantic
/// writes model-typed arguments. A reference the proxy cannot follow stays as it is, which
/// declares no type.
fn resolve<'s>(mut schema: &'s [u8], root: Option<&'s [u8]>) -> &'s [u8] {
    // A bound on chains of references, so that a cycle cannot loop.
    for _ in 0..16 {
        if let Some(target) = json::get(schema, "$ref").and_then(json::as_str) {
            let found = ["#/$defs/", "#/definitions/"].iter().find_map(|prefix| {
                let name = target.strip_prefix(prefix)?;
                let defs = json::get(root?, &prefix[2..prefix.len() - 1])?;
                json::get(defs, name)
            });
            match found {
                Some(next) => schema = next,
                None => return schema,
            }
            continue;
        }
        if json::get(schema, "type").is_none()
            && let Some(all) = json::get(schema, "allOf")
        {
            let mut parts = json::elements(all);
            if let (Some(only), None) = (parts.next(), parts.next()) {
                schema = only;
                continue;
            }
        }
        return schema;
    }
    schema
}

/// Whether a schema declares any type the proxy can read.
fn declares_types(schema: &[u8]) -> bool {
    json::get(schema, "type").is_some() || !declared_types(schema).is_empty()
}

/// Refuses a value whose type the schema does not declare at this place. Allocates nothing
/// unless it refuses, and only for a union schema (`anyOf`) does it list the types.
fn check_type(
    value: &[u8],
    schema: Option<&[u8]>,
    place: impl FnOnce() -> String,
) -> Result<(), String> {
    let Some(schema) = schema else {
        return Ok(());
    };
    let actual = type_name(value);
    let fits = |t: &str| t == actual || (t == "number" && actual == "integer");
    // The common case, a single `"type": "..."`, is checked without collecting anything.
    if let Some(t) = json::get(schema, "type")
        && json::kind(t) == Kind::String
        && let Some(t) = json::as_str(t)
        && fits(&t)
    {
        return Ok(());
    }
    let declared = declared_types(schema);
    if declared.is_empty() || declared.iter().any(|t| fits(t)) {
        return Ok(());
    }
    Err(format!(
        "`{}` is {} but the tool's inputSchema declares {}; the server would convert it, \
         so the proxy cannot judge what would run. Send it as {}",
        place(),
        with_article(actual),
        declared.join(" or "),
        with_article(&declared[0]),
    ))
}

fn with_article(t: &str) -> String {
    match t {
        "array" | "object" | "integer" => format!("an {t}"),
        "null" => "null".to_owned(),
        _ => format!("a {t}"),
    }
}

/// Walks `path` from `value` (reached after `depth` of its segments, with its schema) and
/// hands every value at its end to `visit`; refuses, with why, a value the server would read
/// otherwise than the proxy. Missing members and indexes give no value. Recursion instead of
/// lists of values: a condition costs no allocation.
fn walk(
    value: &[u8],
    schema: Option<&[u8]>,
    root: Option<&[u8]>,
    path: &ArgPath,
    depth: usize,
    visit: &mut Visit<'_>,
) -> Result<(), String> {
    let schema = schema.map(|s| resolve(s, root));
    check_type(value, schema, || place_of(path, depth))?;
    if let Some(schema) = schema
        && json::kind(value) == Kind::String
        && let Some(decoded) = decoded_json(value, schema, || place_of(path, depth))?
    {
        // The Python SDK decodes a top-level argument whose type is not just a string; the
        // proxy judges what it decodes to. Deeper down no SDK the proxy knows decodes, but
        // one might: neither reading can be trusted there.
        if depth != 1 {
            return Err(format!(
                "`{}` is a string holding JSON where the tool's inputSchema also allows {}; a \
                 server may decode it or keep it as text, so the proxy cannot judge it. Send \
                 the value itself, not JSON text",
                place_of(path, depth),
                with_article(type_name(decoded.as_bytes())),
            ));
        }
        return walk(decoded.as_bytes(), Some(schema), root, path, depth, visit);
    }
    let Some(segment) = path.segments.get(depth) else {
        if json::kind(value) == Kind::String && schema.is_none_or(|s| !declares_types(s)) {
            // With no declared type, a string that holds a JSON array or object may be decoded
            // by the server into one.
            let decoded = json::as_str(value).unwrap_or_default();
            let inner = decoded.trim_start();
            if (inner.starts_with('[') || inner.starts_with('{'))
                && serde_json::from_str::<serde_json::Value>(&decoded).is_ok()
            {
                return Err(format!(
                    "`{}` is a string holding JSON, which the server may decode into {}; the \
                     proxy cannot judge it. Send the value itself, not JSON text",
                    place_of(path, depth),
                    if inner.starts_with('[') {
                        "an array"
                    } else {
                        "an object"
                    }
                ));
            }
        }
        return visit(value, schema.is_some_and(declares_types));
    };
    let kind = json::kind(value);
    if kind == Kind::Null {
        return Ok(());
    }
    let wanted = match segment {
        Segment::Member(_) => Kind::Object,
        Segment::Index(_) | Segment::Each => Kind::Array,
        Segment::Words => {
            return Err(format!(
                "`{}` names the command line's words, not an argument",
                path.text
            ));
        }
    };
    if kind != wanted {
        let what = if wanted == Kind::Object {
            "an object"
        } else {
            "an array"
        };
        return Err(format!(
            "`{}` is {} where the condition on `{}` needs {what}; the proxy cannot judge what \
             the server would make of it",
            place_of(path, depth),
            kind_name(kind),
            path.text
        ));
    }
    match segment {
        Segment::Member(key) => match json::get(value, key) {
            Some(child) => walk(
                child,
                schema.and_then(|s| child_schema(s, Some(key))),
                root,
                path,
                depth + 1,
                visit,
            ),
            None => Ok(()),
        },
        Segment::Index(i) => match json::elements(value).nth(*i) {
            Some(child) => walk(
                child,
                schema.and_then(|s| child_schema(s, None)),
                root,
                path,
                depth + 1,
                visit,
            ),
            None => Ok(()),
        },
        Segment::Words => unreachable!("refused above"),
        Segment::Each => {
            let items = schema.and_then(|s| child_schema(s, None));
            for child in json::elements(value) {
                walk(child, items, root, path, depth + 1, visit)?;
            }
            Ok(())
        }
    }
}

/// What a walk hands each value it reaches: the value, and whether the schema declares its
/// type; an error refuses the call with why.
pub(super) type Visit<'v> = dyn FnMut(&[u8], bool) -> Result<(), String> + 'v;

/// Hands every value at the end of `path` in `arguments` to `visit`, with whether the tool's
/// `inputSchema` declares its type; refuses, with why, a value the server would read otherwise
/// than the proxy.
pub(super) fn walk_values(
    arguments: &[u8],
    schema: Option<&[u8]>,
    path: &ArgPath,
    visit: &mut Visit<'_>,
) -> Result<(), String> {
    walk(arguments, schema, schema, path, 0, visit)
}

/// What the server's SDK makes of a string `value` where the schema lets the argument be a
/// string or something else: the Python SDK runs `json.loads` on a string argument whose
/// annotation is not exactly `str` and keeps the result when it is an array, an object, a
/// boolean or null (numbers and strings stay text). `Ok(Some(json))` for such a result, as
/// strict JSON text; `Ok(None)` when the text stays text; refused when Python's lenient parser
/// might read it (it starts like an array or object) but the strict one cannot.
fn decoded_json(
    value: &[u8],
    schema: &[u8],
    place: impl FnOnce() -> String,
) -> Result<Option<String>, String> {
    let declared = declared_types(schema);
    let other = declared
        .iter()
        .find(|t| matches!(t.as_ref(), "array" | "object" | "boolean" | "null"));
    let Some(other) = other else {
        return Ok(None);
    };
    let text = json::as_str(value).unwrap_or_default();
    // Python's `json.loads` skips these around a value, and only these.
    let inner = text.trim_matches([' ', '\t', '\n', '\r']);
    match json::validate(inner.as_bytes()) {
        Ok(_) => Ok(matches!(
            json::kind(inner.as_bytes()),
            Kind::Array | Kind::Object | Kind::Bool | Kind::Null
        )
        .then(|| inner.to_owned())),
        Err(_) if inner.starts_with(['[', '{']) => Err(format!(
            "`{}` is a string that the server may decode as JSON (the tool's inputSchema allows \
             {} as well as a string), but not as strict JSON, so the proxy cannot judge it. \
             Send the value itself, not JSON text",
            place(),
            with_article(other),
        )),
        Err(_) => Ok(None),
    }
}

/// Words as messages show them: a JSON array, so that spaces and look-alikes stay visible.
fn show_words(words: &[String]) -> String {
    serde_json::to_string(words).unwrap_or_default()
}

/// How a message names the place `depth` segments into `path`: `arguments.args[*]`.
fn place_of(path: &ArgPath, depth: usize) -> String {
    let mut place = "arguments".to_owned();
    for segment in &path.segments[..depth] {
        match segment {
            Segment::Member(key) => {
                place.push('.');
                place.push_str(key);
            }
            Segment::Index(i) => place.push_str(&format!("[{i}]")),
            Segment::Each => place.push_str("[*]"),
            Segment::Words => place = "@words".to_owned(),
        }
    }
    place
}

/// The path of a condition: an argument's ([`parse_path`]), or `@words[i]` / `@words[*]`, a
/// word or every word of the command line the server runs.
pub fn parse_condition_path(text: &str) -> Result<ArgPath, String> {
    let Some(rest) = text.strip_prefix('@') else {
        return parse_path(text);
    };
    let form = "write @words[0] for the first word of the command line the server runs, \
                @words[1] for the second, or @words[*] for any word";
    let Some(index) = rest
        .strip_prefix("words[")
        .and_then(|r| r.strip_suffix(']'))
    else {
        return Err(format!("unknown path {text:?}; {form}"));
    };
    let segment = if index == "*" {
        Segment::Each
    } else {
        Segment::Index(
            index
                .parse::<usize>()
                .map_err(|_| format!("invalid index in path {text:?}; {form}"))?,
        )
    };
    Ok(ArgPath {
        segments: vec![Segment::Words, segment],
        text: text.to_owned(),
    })
}

/// Parses a path: `command`, `a.b`, `args[0]`, `args[*]`, `a["odd key"]`.
pub fn parse_path(text: &str) -> Result<ArgPath, String> {
    let mut segments = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut expect_name = true;
    while i < bytes.len() {
        match bytes[i] {
            b'[' => {
                let end = text[i..]
                    .find(']')
                    .map(|e| i + e)
                    .ok_or_else(|| format!("unclosed `[` in path {text:?}"))?;
                let inside = &text[i + 1..end];
                if inside == "*" {
                    segments.push(Segment::Each);
                } else if let Some(quoted) =
                    inside.strip_prefix('"').and_then(|s| s.strip_suffix('"'))
                {
                    segments.push(Segment::Member(quoted.to_owned()));
                } else {
                    let index = inside.parse::<usize>().map_err(|_| {
                        format!(
                            "invalid index `[{inside}]` in path {text:?}; use a number such as \
                             [0], [*] for every element, or [\"key\"]"
                        )
                    })?;
                    segments.push(Segment::Index(index));
                }
                i = end + 1;
                expect_name = false;
            }
            b'.' => {
                if expect_name {
                    return Err(format!("empty member name in path {text:?}"));
                }
                i += 1;
                expect_name = true;
            }
            _ => {
                if !expect_name {
                    return Err(format!(
                        "expected `.` or `[` at column {} of path {text:?}",
                        i + 1
                    ));
                }
                let end = text[i..].find(['.', '[']).map_or(text.len(), |e| i + e);
                segments.push(Segment::Member(text[i..end].to_owned()));
                i = end;
                expect_name = false;
            }
        }
    }
    if segments.is_empty() || expect_name {
        return Err(format!("incomplete path {text:?}"));
    }
    Ok(ArgPath {
        segments,
        text: text.to_owned(),
    })
}

#[cfg(test)]
mod tests;
