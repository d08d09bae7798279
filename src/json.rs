//! Strict JSON: one reading per line, checked in one pass, read without building a tree.
//!
//! The proxy judges each client line and then forwards the original bytes to a child whose parser
//! is lenient: the Python MCP servers let the last duplicate key win at every depth, decode
//! escaped key names, accept `NaN` and `Infinity`, read `1e400` as infinity, turn invalid UTF-8
//! into U+FFFD and treat a bare CR as a line break. [`validate`] accepts only RFC 8259 JSON in
//! which none of that can happen, so the child reads exactly the value the proxy judged.
//! The borrowed accessors ([`kind`], [`members`], [`elements`], [`as_str`], [`get`]) then read a
//! validated value in place: they skip over nested values structurally and never re-validate.
//!
//! Boundary: this module knows nothing about JSON-RPC or MCP (that is `message`), nor about
//! splitting the input into lines, the line-length limit or stripping a CRLF ending (that is
//! `framing`). The accessors are only meaningful on bytes that [`validate`] accepted; on other
//! bytes they do not panic, but what they yield is unspecified.

use std::borrow::Cow;
use std::collections::HashSet;

/// Deepest nesting of arrays and objects accepted.
///
/// The Python child gives up at about 200 levels and a real MCP message nests fewer than 20, so
/// 64 rejects nothing legitimate. The bound also caps the validator's recursion, and so its
/// native stack use, at 64 small frames whatever the input.
pub const MAX_DEPTH: usize = 64;

/// Objects with up to this many keys are checked for duplicates by a linear scan over the keys
/// seen so far; a larger object moves its keys into a `HashSet`. Below about 16 keys the scan
/// is faster than hashing and needs no allocation. The set uses std's randomly keyed SipHash, so
/// a hostile client cannot make the lookups quadratic with colliding keys.
const LINEAR_SCAN_KEYS: usize = 16;

/// A duplicate key is quoted in the error (and so in logs) up to this many characters.
pub const KEY_IN_ERROR_CHARS: usize = 64;

/// Why a line is not exactly one unambiguous JSON value. Every variant carries the byte offset
/// in the line where the problem was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// The line is empty or holds only spaces and tabs.
    #[error("empty line")]
    Empty { offset: usize },
    /// The line starts with a UTF-8 byte-order mark (`EF BB BF`); the offset is always 0.
    #[error("byte-order mark at the start of the line")]
    Bom { offset: usize },
    #[error("invalid UTF-8 at byte {offset}")]
    InvalidUtf8 { offset: usize },
    /// A CR byte anywhere: the Python child would split the line there.
    #[error("bare carriage return at byte {offset}")]
    BareCr { offset: usize },
    /// An LF byte: the caller should have split the input into lines on it.
    #[error("line feed at byte {offset} (a line holds one message)")]
    LineFeed { offset: usize },
    /// A raw byte below 0x20 (other than CR and LF, which have their own variants) in a string.
    #[error("control character {byte:#04x} in a string at byte {offset} (it must be escaped)")]
    ControlCharacter { byte: u8, offset: usize },
    /// A backslash not followed by one of `" \ / b f n r t` or by `u` and four hex digits.
    #[error("invalid escape sequence at byte {offset}")]
    InvalidEscape { offset: usize },
    /// A `\uD800`-`\uDBFF` escape not followed by a `\uDC00`-`\uDFFF` escape, or a low one alone.
    #[error("unpaired surrogate escape at byte {offset}")]
    UnpairedSurrogate { offset: usize },
    /// The offset is the string's opening quote.
    #[error("unterminated string starting at byte {offset}")]
    UnterminatedString { offset: usize },
    /// A key already present in the same object, compared after decoding escapes. `key` is the
    /// decoded key, cut to [`KEY_IN_ERROR_CHARS`] characters so that a huge key does not flood
    /// the log; the offset is the second key's opening quote.
    #[error("duplicate key {key:?} at byte {offset}")]
    DuplicateKey { key: String, offset: usize },
    /// Not the JSON number grammar: leading zero, `+`, a missing digit, `1.`, hex, and so on.
    #[error("invalid number at byte {offset}")]
    InvalidNumber { offset: usize },
    /// A number with a fraction or exponent whose f64 value is infinite (`1e400`).
    #[error("number out of range at byte {offset} (it would be read as infinity)")]
    NumberOutOfRange { offset: usize },
    /// A bare word other than `true`, `false` and `null` (`NaN`, `Infinity`, `True`, `nul`).
    #[error("invalid literal at byte {offset} (expected true, false or null)")]
    InvalidLiteral { offset: usize },
    /// The offset is the opening bracket one level too deep.
    #[error("nesting deeper than {} at byte {offset}", MAX_DEPTH)]
    TooDeep { offset: usize },
    #[error("expected {expected} at byte {offset}")]
    Expected {
        expected: &'static str,
        offset: usize,
    },
    #[error("unexpected end of line at byte {offset} (expected {expected})")]
    UnexpectedEnd {
        expected: &'static str,
        offset: usize,
    },
    #[error("trailing data after the JSON value at byte {offset}")]
    TrailingData { offset: usize },
}

impl JsonError {
    /// The byte offset in the line where the problem was found.
    pub fn offset(&self) -> usize {
        match *self {
            Self::Empty { offset }
            | Self::Bom { offset }
            | Self::InvalidUtf8 { offset }
            | Self::BareCr { offset }
            | Self::LineFeed { offset }
            | Self::ControlCharacter { offset, .. }
            | Self::InvalidEscape { offset }
            | Self::UnpairedSurrogate { offset }
            | Self::UnterminatedString { offset }
            | Self::DuplicateKey { offset, .. }
            | Self::InvalidNumber { offset }
            | Self::NumberOutOfRange { offset }
            | Self::InvalidLiteral { offset }
            | Self::TooDeep { offset }
            | Self::Expected { offset, .. }
            | Self::UnexpectedEnd { offset, .. }
            | Self::TrailingData { offset } => offset,
        }
    }
}

/// Checks that `line` is exactly one strict JSON value (RFC 8259) with no ambiguity, and
/// returns where the members of a top-level object lie (see [`Outline`]).
///
/// On top of the RFC grammar it requires: valid UTF-8 without a byte-order mark; no CR byte
/// anywhere (the caller strips a CRLF ending first) and no LF byte; only spaces and tabs as
/// whitespace; no duplicate key in any object at any depth, keys compared after decoding escapes
/// (so `"a"` and `"\u0061"` are duplicates); no unpaired surrogate escape; no number with a
/// fraction or exponent whose f64 value is infinite (integers of any size are accepted, since
/// the proxy forwards the original text); nesting at most [`MAX_DEPTH`].
///
/// Cost: one pass, in which strings are scanned 64 bytes at a time with SIMD compares. Outside
/// strings the grammar admits only ASCII, so only strings can hold other bytes; a block with
/// one marks its string for a UTF-8 check from there to the closing quote, so ASCII text is
/// read once. Nothing is allocated per value: keys without escapes are borrowed from the line,
/// only escaped keys are decoded into a `String`, and only objects with more than 16 keys
/// build a set.
pub fn validate(line: &[u8]) -> Result<Outline, JsonError> {
    if line.starts_with(b"\xEF\xBB\xBF") {
        return Err(JsonError::Bom { offset: 0 });
    }
    let mut validator = Validator {
        bytes: line,
        pos: 0,
        keys: reuse(KEYS.take()),
        outline: Outline::default(),
    };
    let result = validator.document();
    let Validator { keys, outline, .. } = validator;
    if keys.capacity() <= KEEP_KEYS {
        KEYS.set(reuse(keys));
    }
    match result {
        Ok(()) => Ok(outline),
        // Invalid UTF-8 anywhere in the line is the error to report, wherever the grammar
        // failed first (outside strings, a non-ASCII byte is a grammar error).
        Err(err) => Err(match std::str::from_utf8(line) {
            Err(utf8) => JsonError::InvalidUtf8 {
                offset: utf8.valid_up_to(),
            },
            Ok(_) => err,
        }),
    }
}

/// Top-level members recorded by [`validate`]; an object with more falls back to a walk.
/// JSON-RPC envelopes have at most five.
const OUTLINE_MEMBERS: usize = 6;

/// Where the members of a validated line's top-level object lie, as [`validate`] found them,
/// so that reading the envelope costs nothing in the length of the line: a response carrying an
/// 8 MiB result is not walked a second time to find its `id`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Outline {
    spans: [MemberSpan; OUTLINE_MEMBERS],
    len: usize,
    /// The line is an object and every member of it is in `spans`.
    complete: bool,
}

/// Offsets are `u32` to keep the outline small; a longer line is not outlined.
#[derive(Debug, Clone, Copy, Default)]
struct MemberSpan {
    /// From the key's opening quote to just after its closing quote.
    key: (u32, u32),
    escaped: bool,
    value: (u32, u32),
}

impl Outline {
    /// Records a member: its key from the opening quote to after the closing one, and its
    /// value.
    fn record(&mut self, key: (usize, usize), escaped: bool, value: (usize, usize)) {
        let offset = |at: usize| u32::try_from(at).ok();
        let span = (|| {
            Some(MemberSpan {
                key: (offset(key.0)?, offset(key.1)?),
                escaped,
                value: (offset(value.0)?, offset(value.1)?),
            })
        })();
        match (self.spans.get_mut(self.len), span) {
            (Some(slot), Some(span)) => {
                *slot = span;
                self.len += 1;
            }
            _ => self.complete = false,
        }
    }

    /// The members of the top-level object of `line`, the line [`validate`] returned this
    /// outline for, as [`members`] would yield them.
    pub fn members<'o, 'a>(&'o self, line: &'a [u8]) -> OutlineMembers<'o, 'a> {
        if self.complete {
            OutlineMembers(Walk::Recorded {
                line,
                spans: self.spans[..self.len].iter(),
            })
        } else {
            OutlineMembers(Walk::Walked(members(line)))
        }
    }
}

/// Iterator over the top-level members of a validated line; see [`Outline::members`].
#[derive(Debug, Clone)]
pub struct OutlineMembers<'o, 'a>(Walk<'o, 'a>);

#[derive(Debug, Clone)]
enum Walk<'o, 'a> {
    Recorded {
        line: &'a [u8],
        spans: std::slice::Iter<'o, MemberSpan>,
    },
    Walked(Members<'a>),
}

impl<'a> Iterator for OutlineMembers<'_, 'a> {
    type Item = (Cow<'a, str>, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            Walk::Recorded { line, spans } => {
                let span = spans.next()?;
                let at = |offset: u32| offset as usize;
                let key = line.get(at(span.key.0) + 1..at(span.key.1) - 1)?;
                let value = line.get(at(span.value.0)..at(span.value.1))?;
                Some((decode(key, span.escaped)?, value))
            }
            Walk::Walked(members) => members.next(),
        }
    }
}

thread_local! {
    /// The key buffer of [`validate`], kept between calls on the same thread, so that
    /// validating a message allocates nothing.
    static KEYS: std::cell::Cell<Vec<Cow<'static, [u8]>>> = const { std::cell::Cell::new(Vec::new()) };
}

/// A key buffer larger than this (from one message with very many keys) is not kept.
const KEEP_KEYS: usize = 1024;

/// An empty vector with the allocation of `keys` but none of its borrows. (Collecting a mapped
/// `vec::IntoIter` into a vector of a type with the same layout reuses the allocation.)
fn reuse<'b>(mut keys: Vec<Cow<'_, [u8]>>) -> Vec<Cow<'b, [u8]>> {
    keys.clear();
    keys.into_iter().map(|_| unreachable!("cleared")).collect()
}

/// The recursive-descent state of one [`validate`] call.
struct Validator<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// The keys of every object still open, innermost last: one buffer for the whole call.
    /// An object pushes its keys after its parent's and truncates them away when it closes.
    /// Keys are compared as bytes: decoded keys are UTF-8, so equal bytes are equal text.
    keys: Vec<Cow<'a, [u8]>>,
    /// The top-level object's members so far.
    outline: Outline,
}

impl<'a> Validator<'a> {
    /// The whole line: one value, with nothing but spaces and tabs around it.
    fn document(&mut self) -> Result<(), JsonError> {
        self.skip_ws()?;
        if self.pos == self.bytes.len() {
            return Err(JsonError::Empty {
                offset: self.bytes.len(),
            });
        }
        self.outline.complete = self.peek() == Some(b'{');
        self.value(0)?;
        self.skip_ws()?;
        if self.pos < self.bytes.len() {
            return Err(JsonError::TrailingData { offset: self.pos });
        }
        Ok(())
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// Skips spaces and tabs. CR and LF are errors wherever whitespace may stand.
    fn skip_ws(&mut self) -> Result<(), JsonError> {
        while let Some(byte) = self.peek() {
            match byte {
                b' ' | b'\t' => self.pos += 1,
                b'\r' => return Err(JsonError::BareCr { offset: self.pos }),
                b'\n' => return Err(JsonError::LineFeed { offset: self.pos }),
                _ => break,
            }
        }
        Ok(())
    }

    /// The error for a missing `expected` token at the current position.
    fn expected(&self, expected: &'static str) -> JsonError {
        if self.pos >= self.bytes.len() {
            JsonError::UnexpectedEnd {
                expected,
                offset: self.pos,
            }
        } else {
            JsonError::Expected {
                expected,
                offset: self.pos,
            }
        }
    }

    /// One value starting at the current position; `depth` is the number of enclosing
    /// arrays and objects.
    fn value(&mut self, depth: usize) -> Result<(), JsonError> {
        match self.peek() {
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => self.string().map(drop),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(byte) if byte.is_ascii_alphabetic() => {
                Err(JsonError::InvalidLiteral { offset: self.pos })
            }
            _ => Err(self.expected("a value")),
        }
    }

    fn object(&mut self, depth: usize) -> Result<(), JsonError> {
        if depth > MAX_DEPTH {
            return Err(JsonError::TooDeep { offset: self.pos });
        }
        self.pos += 1;
        self.skip_ws()?;
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        let base = self.keys.len();
        // Taken over from the linear scan once the object has more than LINEAR_SCAN_KEYS keys.
        let mut set: Option<HashSet<Cow<'a, [u8]>>> = None;
        loop {
            if self.peek() != Some(b'"') {
                return Err(self.expected("a string key"));
            }
            let key_at = self.pos;
            let key = self.key()?;
            let key_end = self.pos;
            let escaped = matches!(key, Cow::Owned(_));
            self.check_duplicate(key, key_at, base, &mut set)?;
            self.skip_ws()?;
            if self.peek() != Some(b':') {
                return Err(self.expected("':'"));
            }
            self.pos += 1;
            self.skip_ws()?;
            let value_at = self.pos;
            self.value(depth)?;
            if depth == 1 {
                self.outline
                    .record((key_at, key_end), escaped, (value_at, self.pos));
            }
            self.skip_ws()?;
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.skip_ws()?;
                }
                Some(b'}') => {
                    self.pos += 1;
                    break;
                }
                _ => return Err(self.expected("',' or '}'")),
            }
        }
        self.keys.truncate(base);
        Ok(())
    }

    fn check_duplicate(
        &mut self,
        key: Cow<'a, [u8]>,
        key_at: usize,
        base: usize,
        set: &mut Option<HashSet<Cow<'a, [u8]>>>,
    ) -> Result<(), JsonError> {
        let duplicate = |key: &[u8]| JsonError::DuplicateKey {
            key: shorten(&String::from_utf8_lossy(key)),
            offset: key_at,
        };
        match set {
            Some(set) => {
                if let Some(old) = set.replace(key) {
                    return Err(duplicate(&old));
                }
            }
            None => {
                if self.keys[base..].contains(&key) {
                    return Err(duplicate(&key));
                }
                self.keys.push(key);
                if self.keys.len() - base > LINEAR_SCAN_KEYS {
                    *set = Some(self.keys.drain(base..).collect());
                }
            }
        }
        Ok(())
    }

    fn array(&mut self, depth: usize) -> Result<(), JsonError> {
        if depth > MAX_DEPTH {
            return Err(JsonError::TooDeep { offset: self.pos });
        }
        self.pos += 1;
        self.skip_ws()?;
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.value(depth)?;
            self.skip_ws()?;
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.skip_ws()?;
                }
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.expected("',' or ']'")),
            }
        }
    }

    /// A key (its UTF-8): borrowed from the line when it has no escapes, decoded otherwise.
    fn key(&mut self) -> Result<Cow<'a, [u8]>, JsonError> {
        let start = self.pos;
        let escaped = self.string()?;
        let raw = &self.bytes[start + 1..self.pos - 1];
        if !escaped {
            return Ok(Cow::Borrowed(raw));
        }
        unescape(raw)
            .map(|key| Cow::Owned(key.into_bytes()))
            .ok_or(JsonError::InvalidEscape { offset: start })
    }

    /// A string starting at its opening quote; returns whether it contains escapes.
    fn string(&mut self) -> Result<bool, JsonError> {
        let start = self.pos;
        let mut pos = start + 1;
        let mut escaped = false;
        // Where the first block with a non-ASCII byte was scanned from: the start of the
        // string's content or the end of an escape, so a character boundary.
        let mut non_ascii_from = None;
        loop {
            let (found, non_ascii) = scan(&self.bytes[pos..]);
            if non_ascii && non_ascii_from.is_none() {
                non_ascii_from = Some(pos);
            }
            pos += found;
            match self.bytes.get(pos) {
                None => return Err(JsonError::UnterminatedString { offset: start }),
                Some(b'"') => {
                    if let Some(from) = non_ascii_from
                        && let Err(e) = std::str::from_utf8(&self.bytes[from..pos])
                    {
                        return Err(JsonError::InvalidUtf8 {
                            offset: from + e.valid_up_to(),
                        });
                    }
                    self.pos = pos + 1;
                    return Ok(escaped);
                }
                Some(b'\\') => {
                    escaped = true;
                    pos = self.escape(start, pos)?;
                }
                Some(b'\r') => return Err(JsonError::BareCr { offset: pos }),
                Some(b'\n') => return Err(JsonError::LineFeed { offset: pos }),
                Some(&byte) => {
                    return Err(JsonError::ControlCharacter { byte, offset: pos });
                }
            }
        }
    }

    /// Checks the escape whose backslash is at `at` and returns the position after it.
    fn escape(&self, string_start: usize, at: usize) -> Result<usize, JsonError> {
        let invalid = JsonError::InvalidEscape { offset: at };
        let unpaired = JsonError::UnpairedSurrogate { offset: at };
        match self.bytes.get(at + 1) {
            None => Err(JsonError::UnterminatedString {
                offset: string_start,
            }),
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(at + 2),
            Some(b'u') => match hex4(self.bytes, at + 2).ok_or(invalid)? {
                0xD800..=0xDBFF => {
                    if self.bytes.get(at + 6..at + 8) != Some(b"\\u") {
                        return Err(unpaired);
                    }
                    match hex4(self.bytes, at + 8) {
                        Some(0xDC00..=0xDFFF) => Ok(at + 12),
                        Some(_) => Err(unpaired),
                        None => Err(JsonError::InvalidEscape { offset: at + 6 }),
                    }
                }
                0xDC00..=0xDFFF => Err(unpaired),
                _ => Ok(at + 6),
            },
            Some(_) => Err(invalid),
        }
    }

    fn number(&mut self) -> Result<(), JsonError> {
        let start = self.pos;
        let invalid = JsonError::InvalidNumber { offset: start };
        let bytes = self.bytes;
        let mut pos = start;
        if bytes.get(pos) == Some(&b'-') {
            pos += 1;
        }
        let int_start = pos;
        match bytes.get(pos) {
            Some(b'0') => pos += 1,
            Some(b'1'..=b'9') => pos = skip_digits(bytes, pos),
            _ => return Err(invalid),
        }
        let int_digits = pos - int_start;
        let mut has_fraction_or_exponent = false;
        if bytes.get(pos) == Some(&b'.') {
            let end = skip_digits(bytes, pos + 1);
            if end == pos + 1 {
                return Err(invalid);
            }
            pos = end;
            has_fraction_or_exponent = true;
        }
        let mut exponent: i64 = 0;
        if let Some(b'e' | b'E') = bytes.get(pos) {
            pos += 1;
            let negative = match bytes.get(pos) {
                Some(b'-') => {
                    pos += 1;
                    true
                }
                Some(b'+') => {
                    pos += 1;
                    false
                }
                _ => false,
            };
            let end = skip_digits(bytes, pos);
            if end == pos {
                return Err(invalid);
            }
            for &digit in &bytes[pos..end] {
                exponent = exponent
                    .saturating_mul(10)
                    .saturating_add(i64::from(digit - b'0'));
            }
            if negative {
                exponent = -exponent;
            }
            pos = end;
            has_fraction_or_exponent = true;
        }
        // `01`, `1.`, `1.2.3`, `0x1f`, `1e5e5`: the grammar stopped early, so the number is bad.
        if let Some(&byte) = bytes.get(pos)
            && (byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'+' | b'-'))
        {
            return Err(invalid);
        }
        // The value is below 10^(int_digits + exponent); up to 10^308 it is finite (f64::MAX is
        // about 1.8e308), so only numbers that might overflow pay for an f64 parse. Integers are
        // exact in the child (Python int), so only fractions and exponents can become infinity.
        if has_fraction_or_exponent
            && i64::try_from(int_digits)
                .unwrap_or(i64::MAX)
                .saturating_add(exponent)
                > 308
        {
            // The grammar above admits only ASCII here.
            let value: f64 = std::str::from_utf8(&bytes[start..pos])
                .ok()
                .and_then(|text| text.parse().ok())
                .ok_or(invalid)?;
            if value.is_infinite() {
                return Err(JsonError::NumberOutOfRange { offset: start });
            }
        }
        self.pos = pos;
        Ok(())
    }

    fn literal(&mut self, word: &'static [u8]) -> Result<(), JsonError> {
        let start = self.pos;
        let end = start + word.len();
        if self.bytes.get(start..end) != Some(word)
            || self.bytes.get(end).is_some_and(u8::is_ascii_alphanumeric)
        {
            return Err(JsonError::InvalidLiteral { offset: start });
        }
        self.pos = end;
        Ok(())
    }
}

/// A key for an error message: at most [`KEY_IN_ERROR_CHARS`] characters.
fn shorten(key: &str) -> String {
    match key.char_indices().nth(KEY_IN_ERROR_CHARS) {
        Some((cut, _)) => format!("{}…", &key[..cut]),
        None => key.to_owned(),
    }
}

fn skip_digits(bytes: &[u8], mut pos: usize) -> usize {
    while bytes.get(pos).is_some_and(u8::is_ascii_digit) {
        pos += 1;
    }
    pos
}

/// The four hex digits at `at` as a UTF-16 code unit.
fn hex4(bytes: &[u8], at: usize) -> Option<u16> {
    let digits = bytes.get(at..at.checked_add(4)?)?;
    digits.iter().try_fold(0u16, |unit, &digit| {
        let value = (digit as char).to_digit(16)?;
        Some(unit << 4 | value as u16)
    })
}

/// The position of the first `"`, `\` or control byte (< 0x20) in `bytes`, or `bytes.len()`.
#[inline]
fn find_special(bytes: &[u8]) -> usize {
    scan(bytes).0
}

/// The position of the first `"`, `\` or control byte (< 0x20) in `bytes` (or `bytes.len()`),
/// and whether a byte above 0x7F comes before it. The flag may also be set by such a byte after
/// it in the same 64-byte block; that only makes the UTF-8 check start earlier.
///
/// Strings are most of the bytes of a message, so this is the hot loop of [`validate`] and of
/// the accessors. Most strings (keys, methods, names) end within 16 bytes, so the first 16 are
/// tested a word at a time with the SWAR tricks of [`special_bits`]: no block set-up and no byte
/// loop to find the hit. Past them, each 64-byte block is tested with a branch-free reduction
/// that the compiler turns into SIMD compares (SSE2 on every x86-64, NEON on aarch64) without
/// `unsafe` or target features, and a block with a hit is searched byte by byte, once.
#[inline]
fn scan(bytes: &[u8]) -> (usize, bool) {
    let mut offset = 0;
    let mut high = 0;
    while offset < SHORT_STRING {
        let Some(word) = bytes.get(offset..offset + 8) else {
            break;
        };
        let word = u64::from_le_bytes(word.try_into().unwrap_or_default());
        let special = special_bits(word);
        if special != 0 {
            let found = special.trailing_zeros() as usize / 8;
            let before = word & HIGH_BITS & ((1 << (found * 8)) - 1);
            return (offset + found, (high | before) != 0);
        }
        high |= word & HIGH_BITS;
        offset += 8;
    }
    let mut non_ascii = high != 0;
    let mut blocks = bytes[offset..].chunks_exact(64);
    for block in &mut blocks {
        let mut hit = false;
        let mut high = 0;
        for &byte in block {
            hit |= is_special(byte);
            high |= byte;
        }
        non_ascii |= high >= 0x80;
        if hit {
            let found = block.iter().position(|&b| is_special(b)).unwrap_or(64);
            return (offset + found, non_ascii);
        }
        offset += 64;
    }
    for &byte in blocks.remainder() {
        if is_special(byte) {
            break;
        }
        non_ascii |= byte >= 0x80;
        offset += 1;
    }
    (offset, non_ascii)
}

/// How many bytes [`scan`] tests a word at a time before it turns to 64-byte blocks.
const SHORT_STRING: usize = 16;
const LOW_BITS: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `word` (8 bytes in memory order, read little-endian) that is
/// `"`, `\` or below 0x20, and possibly of bytes after the first such one (a borrow carries
/// into the next byte only from a byte that matched), so the lowest bit set is exact. Each
/// test is the classic "has a zero byte" or "has a byte below n" bit trick.
#[inline(always)]
fn special_bits(word: u64) -> u64 {
    let zero = |x: u64| x.wrapping_sub(LOW_BITS) & !x;
    let quote = zero(word ^ (LOW_BITS * u64::from(b'"')));
    let backslash = zero(word ^ (LOW_BITS * u64::from(b'\\')));
    let control = word.wrapping_sub(LOW_BITS * 0x20) & !word;
    (quote | backslash | control) & HIGH_BITS
}

#[inline(always)]
fn is_special(byte: u8) -> bool {
    (byte == b'"') | (byte == b'\\') | (byte < 0x20)
}

/// Decodes the escapes in the inside of a validated string. `None` if `raw` is not valid string
/// content (only possible for bytes that were not validated).
fn unescape(raw: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut pos = 0;
    loop {
        let plain = pos
            + raw
                .get(pos..)?
                .iter()
                .position(|&b| b == b'\\')
                .unwrap_or(raw.len() - pos);
        out.push_str(std::str::from_utf8(&raw[pos..plain]).ok()?);
        if plain == raw.len() {
            return Some(out);
        }
        let (ch, len) = match raw.get(plain + 1)? {
            b'"' => ('"', 2),
            b'\\' => ('\\', 2),
            b'/' => ('/', 2),
            b'b' => ('\u{8}', 2),
            b'f' => ('\u{c}', 2),
            b'n' => ('\n', 2),
            b'r' => ('\r', 2),
            b't' => ('\t', 2),
            b'u' => {
                let unit = u32::from(hex4(raw, plain + 2)?);
                if (0xD800..=0xDBFF).contains(&unit) {
                    if raw.get(plain + 6..plain + 8)? != b"\\u" {
                        return None;
                    }
                    let low = u32::from(hex4(raw, plain + 8)?);
                    if !(0xDC00..=0xDFFF).contains(&low) {
                        return None;
                    }
                    let ch = char::from_u32(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))?;
                    (ch, 12)
                } else {
                    (char::from_u32(unit)?, 6)
                }
            }
            _ => return None,
        };
        out.push(ch);
        pos = plain + len;
    }
}

/// The kind of a JSON value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Object,
    Array,
    String,
    Number,
    Bool,
    Null,
}

/// Whitespace the accessors skip. Validated values only hold spaces and tabs; CR and LF are
/// skipped too so that the accessors stay harmless on anything else.
fn is_ws(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\r' | b'\n')
}

fn skip_ws_at(bytes: &[u8], mut pos: usize) -> usize {
    while bytes.get(pos).copied().is_some_and(is_ws) {
        pos += 1;
    }
    pos
}

fn trim(value: &[u8]) -> &[u8] {
    let start = skip_ws_at(value, 0);
    let end = value
        .iter()
        .rposition(|&byte| !is_ws(byte))
        .map_or(start, |last| last + 1);
    value.get(start..end).unwrap_or_default()
}

/// The kind of a validated value, from its first non-whitespace byte.
///
/// Only meaningful for a value that [`validate`] accepted (or a part of one that the accessors
/// returned); anything that does not start like an object, array, string or literal is reported
/// as a number.
pub fn kind(value: &[u8]) -> Kind {
    match trim(value).first() {
        Some(b'{') => Kind::Object,
        Some(b'[') => Kind::Array,
        Some(b'"') => Kind::String,
        Some(b't' | b'f') => Kind::Bool,
        Some(b'n') => Kind::Null,
        _ => Kind::Number,
    }
}

/// The end (after the closing quote) of the string whose opening quote is at `at`, and whether
/// it contains escapes. Skips over escaped characters without checking them.
fn skip_string(bytes: &[u8], at: usize) -> Option<(usize, bool)> {
    let mut pos = at + 1;
    let mut escaped = false;
    loop {
        pos += find_special(bytes.get(pos..)?);
        match bytes.get(pos)? {
            b'"' => return Some((pos + 1, escaped)),
            b'\\' => {
                escaped = true;
                pos += 2;
            }
            // A control byte: not in a validated string; step over it.
            _ => pos += 1,
        }
    }
}

/// The end of the value starting at `at`, found structurally: strings are skipped with the fast
/// scan, brackets are counted, nothing is checked.
fn skip_value(bytes: &[u8], at: usize) -> Option<usize> {
    match bytes.get(at)? {
        b'"' => skip_string(bytes, at).map(|(end, _)| end),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut pos = at;
            loop {
                match bytes.get(pos)? {
                    b'"' => {
                        pos = skip_string(bytes, pos)?.0;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return Some(pos + 1);
                        }
                    }
                    _ => {}
                }
                pos += 1;
            }
        }
        _ => {
            let end = bytes
                .get(at..)?
                .iter()
                .position(|&byte| matches!(byte, b',' | b'}' | b']') || is_ws(byte))
                .map_or(bytes.len(), |len| at + len);
            (end > at).then_some(end)
        }
    }
}

/// Decodes the inside of a string (between the quotes): borrowed when it has no escapes.
fn decode(raw: &[u8], escaped: bool) -> Option<Cow<'_, str>> {
    if escaped {
        unescape(raw).map(Cow::Owned)
    } else {
        std::str::from_utf8(raw).ok().map(Cow::Borrowed)
    }
}

/// Iterator over the members of an object; see [`members`].
#[derive(Debug, Clone)]
pub struct Members<'a> {
    bytes: &'a [u8],
    /// Just after the `{` or after the previous member's value; `None` once finished.
    pos: Option<usize>,
    first: bool,
}

/// Iterates over the members of a validated object value (the bytes from `{` to `}`;
/// surrounding whitespace allowed), in order, yielding the decoded key and the raw bytes of the
/// value without surrounding whitespace. Empty if `value` is not an object.
///
/// Nested values are skipped structurally (strings with the fast scan for the closing quote), so
/// the cost is one quick pass over the object's bytes, with no re-validation. On bytes that were
/// not validated it stops at the first thing it cannot read.
pub fn members(value: &[u8]) -> Members<'_> {
    let bytes = trim(value);
    let pos = (bytes.first() == Some(&b'{')).then_some(1);
    Members {
        bytes,
        pos,
        first: true,
    }
}

impl<'a> Members<'a> {
    fn step(&mut self, pos: usize) -> Option<(Cow<'a, str>, &'a [u8])> {
        let bytes = self.bytes;
        let mut pos = skip_ws_at(bytes, pos);
        if !self.first {
            if *bytes.get(pos)? != b',' {
                return None;
            }
            pos = skip_ws_at(bytes, pos + 1);
        }
        self.first = false;
        if *bytes.get(pos)? != b'"' {
            return None;
        }
        let (key_end, escaped) = skip_string(bytes, pos)?;
        let key = decode(bytes.get(pos + 1..key_end - 1)?, escaped)?;
        pos = skip_ws_at(bytes, key_end);
        if *bytes.get(pos)? != b':' {
            return None;
        }
        pos = skip_ws_at(bytes, pos + 1);
        let end = skip_value(bytes, pos)?;
        self.pos = Some(end);
        Some((key, bytes.get(pos..end)?))
    }
}

impl<'a> Iterator for Members<'a> {
    type Item = (Cow<'a, str>, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let pos = self.pos.take()?;
        self.step(pos)
    }
}

/// Iterator over the elements of an array; see [`elements`].
#[derive(Debug, Clone)]
pub struct Elements<'a> {
    bytes: &'a [u8],
    /// Just after the `[` or after the previous element; `None` once finished.
    pos: Option<usize>,
    first: bool,
}

/// Iterates over the elements of a validated array value, in order, yielding the raw bytes of
/// each element without surrounding whitespace. Empty if `value` is not an array. Skips nested
/// values structurally like [`members`].
pub fn elements(value: &[u8]) -> Elements<'_> {
    let bytes = trim(value);
    let pos = (bytes.first() == Some(&b'[')).then_some(1);
    Elements {
        bytes,
        pos,
        first: true,
    }
}

impl<'a> Elements<'a> {
    fn step(&mut self, pos: usize) -> Option<&'a [u8]> {
        let bytes = self.bytes;
        let mut pos = skip_ws_at(bytes, pos);
        if !self.first {
            if *bytes.get(pos)? != b',' {
                return None;
            }
            pos = skip_ws_at(bytes, pos + 1);
        }
        self.first = false;
        if matches!(bytes.get(pos)?, b']' | b',' | b'}' | b':') {
            return None;
        }
        let end = skip_value(bytes, pos)?;
        self.pos = Some(end);
        bytes.get(pos..end)
    }
}

impl<'a> Iterator for Elements<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<Self::Item> {
        let pos = self.pos.take()?;
        self.step(pos)
    }
}

/// Decodes a validated JSON string value (with its quotes; surrounding whitespace allowed) to
/// text, borrowed when it has no escapes. `None` if `value` is not a string.
pub fn as_str(value: &[u8]) -> Option<Cow<'_, str>> {
    let bytes = trim(value);
    if bytes.first() != Some(&b'"') {
        return None;
    }
    let (end, escaped) = skip_string(bytes, 0)?;
    if end != bytes.len() {
        return None;
    }
    decode(bytes.get(1..end - 1)?, escaped)
}

/// The value of the member named `key` in a validated object (keys are unique after
/// validation), without surrounding whitespace. `None` if there is no such member or `object`
/// is not an object.
pub fn get<'a>(object: &'a [u8], key: &str) -> Option<&'a [u8]> {
    members(object).find_map(|(name, value)| (name == key).then_some(value))
}

/// Writes `s` as a JSON string literal (with its quotes) into `out`, escaped as serde_json does:
/// `"` and `\` with a backslash, the control characters with a short escape (`\n`) where JSON
/// has one and `\u00XX` (lowercase hex) otherwise; everything else, non-ASCII included, as is.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut pos = 0;
    loop {
        let special = pos + find_special(&bytes[pos..]);
        out.extend_from_slice(&bytes[pos..special]);
        let Some(&byte) = bytes.get(special) else {
            break;
        };
        match byte {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0xf)],
            ]),
        }
        pos = special + 1;
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`validate`]'s verdict without the outline.
    fn check(line: &[u8]) -> Result<(), JsonError> {
        validate(line).map(drop)
    }
    use proptest::prelude::*;
    use serde_json::{Map, Value};

    // ---- table-driven rejections and acceptances ----

    #[track_caller]
    fn rejects(input: &[u8], expected: JsonError) {
        assert_eq!(
            check(input),
            Err(expected),
            "input {:?}",
            String::from_utf8_lossy(input)
        );
    }

    fn expected(expected: &'static str, offset: usize) -> JsonError {
        JsonError::Expected { expected, offset }
    }

    fn end(expected: &'static str, offset: usize) -> JsonError {
        JsonError::UnexpectedEnd { expected, offset }
    }

    fn control(byte: u8, offset: usize) -> JsonError {
        JsonError::ControlCharacter { byte, offset }
    }

    fn duplicate(key: &str, offset: usize) -> JsonError {
        JsonError::DuplicateKey {
            key: key.to_owned(),
            offset,
        }
    }

    #[test]
    fn rejections() {
        use JsonError::*;
        let deep_ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        let too_deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        let too_deep_objects = r#"{"a":"#.repeat(MAX_DEPTH + 1) + "1" + &"}".repeat(MAX_DEPTH + 1);
        let deepest_at = r#"{"a":"#.len() * MAX_DEPTH;
        assert_eq!(check(deep_ok.as_bytes()), Ok(()));
        let big_object_dup = {
            let members: Vec<String> = (0..40).map(|i| format!(r#""k{i}":{i}"#)).collect();
            format!(r#"{{{},"k7":0}}"#, members.join(","))
        };
        let big_dup_at = big_object_dup.rfind(r#""k7""#).unwrap();
        let cases: Vec<(&[u8], JsonError)> = vec![
            // framing and encoding
            (b"", Empty { offset: 0 }),
            (b"  \t ", Empty { offset: 4 }),
            (b"\xEF\xBB\xBF{}", Bom { offset: 0 }),
            (b"{\"a\":\"\xFF\"}", InvalidUtf8 { offset: 6 }),
            (b"\"\xC0\xAF\"", InvalidUtf8 { offset: 1 }),
            (b"\"\xED\xA0\x80\"", InvalidUtf8 { offset: 1 }),
            (b"{}\r", BareCr { offset: 2 }),
            (b"{\"a\":1,\r\"b\":2}", BareCr { offset: 7 }),
            (b"\"a\rb\"", BareCr { offset: 2 }),
            (b"{}\r{}", BareCr { offset: 2 }),
            (b"{}\n", LineFeed { offset: 2 }),
            (b"\"a\nb\"", LineFeed { offset: 2 }),
            (b"[\n1]", LineFeed { offset: 1 }),
            (b"\x0c{}", expected("a value", 0)),
            // strings
            (b"\"a\x00b\"", control(0, 2)),
            (b"\"\x1f\"", control(0x1f, 1)),
            (b"\"\t\"", control(b'\t', 1)),
            (br#""\x41""#, InvalidEscape { offset: 1 }),
            (br#""\'""#, InvalidEscape { offset: 1 }),
            (br#""\u12""#, InvalidEscape { offset: 1 }),
            (br#""\u12G4""#, InvalidEscape { offset: 1 }),
            (br#""\U0041""#, InvalidEscape { offset: 1 }),
            (br#""\ud800""#, UnpairedSurrogate { offset: 1 }),
            (br#""\udc00""#, UnpairedSurrogate { offset: 1 }),
            (br#""\udbff\u0041""#, UnpairedSurrogate { offset: 1 }),
            (br#""\ud800\n""#, UnpairedSurrogate { offset: 1 }),
            (br#""\ud800\ud800""#, UnpairedSurrogate { offset: 1 }),
            (br#""x\ud800\u12""#, InvalidEscape { offset: 8 }),
            (br#"{"a\udc00":1}"#, UnpairedSurrogate { offset: 3 }),
            (br#""abc"#, UnterminatedString { offset: 0 }),
            (br#"["abc\"]"#, UnterminatedString { offset: 1 }),
            (br#""abc\"#, UnterminatedString { offset: 0 }),
            (b"'a'", expected("a value", 0)),
            // duplicate keys, at any depth, after decoding escapes
            (br#"{"a":1,"a":2}"#, duplicate("a", 7)),
            (br#"{"a":1,"\u0061":2}"#, duplicate("a", 7)),
            (br#"{"\/":1,"/":2}"#, duplicate("/", 8)),
            (br#"{"a\"":1,"a\u0022":2}"#, duplicate("a\"", 9)),
            (
                r#"{"\ud83d\ude00":1,"😀":2}"#.as_bytes(),
                duplicate("😀", 18),
            ),
            (
                br#"{"params":{"name":"safe","name":"evil"}}"#,
                duplicate("name", 25),
            ),
            (br#"[{"x":{"y":[{"k":1,"k":1}]}}]"#, duplicate("k", 19)),
            (
                br#"{"method":"tools/list","method":"tools/call"}"#,
                duplicate("method", 23),
            ),
            (big_object_dup.as_bytes(), duplicate("k7", big_dup_at)),
            // numbers
            (b"01", InvalidNumber { offset: 0 }),
            (b"-01", InvalidNumber { offset: 0 }),
            (b"[00]", InvalidNumber { offset: 1 }),
            (b"-", InvalidNumber { offset: 0 }),
            (b"[-]", InvalidNumber { offset: 1 }),
            (b"1.", InvalidNumber { offset: 0 }),
            (b"1.e5", InvalidNumber { offset: 0 }),
            (b"1e", InvalidNumber { offset: 0 }),
            (b"1e+", InvalidNumber { offset: 0 }),
            (b"1.2.3", InvalidNumber { offset: 0 }),
            (b"0x1F", InvalidNumber { offset: 0 }),
            (b"1e5e5", InvalidNumber { offset: 0 }),
            (b"[1-2]", InvalidNumber { offset: 1 }),
            (b"-Infinity", InvalidNumber { offset: 0 }),
            (b"- 1", InvalidNumber { offset: 0 }),
            (b"+1", expected("a value", 0)),
            (b".5", expected("a value", 0)),
            (b"1e400", NumberOutOfRange { offset: 0 }),
            (b"-1e400", NumberOutOfRange { offset: 0 }),
            (b"[1.5E+309]", NumberOutOfRange { offset: 1 }),
            (b"1.7976931348623159e308", NumberOutOfRange { offset: 0 }),
            (b"0.0001e313", NumberOutOfRange { offset: 0 }),
            (b"1e99999999999999999999999", NumberOutOfRange { offset: 0 }),
            (
                br#"{"jsonrpc":"2.0","id":1e400}"#,
                NumberOutOfRange { offset: 22 },
            ),
            // literals
            (b"NaN", InvalidLiteral { offset: 0 }),
            (b"Infinity", InvalidLiteral { offset: 0 }),
            (b"[nan]", InvalidLiteral { offset: 1 }),
            (b"True", InvalidLiteral { offset: 0 }),
            (b"nul", InvalidLiteral { offset: 0 }),
            (b"nulll", InvalidLiteral { offset: 0 }),
            (b"truefalse", InvalidLiteral { offset: 0 }),
            (b"undefined", InvalidLiteral { offset: 0 }),
            // nesting
            (too_deep.as_bytes(), TooDeep { offset: MAX_DEPTH }),
            (too_deep_objects.as_bytes(), TooDeep { offset: deepest_at }),
            // structure
            (b"{\"a\" 1}", expected("':'", 5)),
            (b"{\"a\":1,}", expected("a string key", 7)),
            (b"{a:1}", expected("a string key", 1)),
            (b"{\"a\":1 \"b\":2}", expected("',' or '}'", 7)),
            (b"[1,]", expected("a value", 3)),
            (b"[1 2]", expected("',' or ']'", 3)),
            (b"[,1]", expected("a value", 1)),
            (b"{\"a\":1]", expected("',' or '}'", 6)),
            (b"{\"a\":}", expected("a value", 5)),
            (b"[1]/*c*/", TrailingData { offset: 3 }),
            (b"{", end("a string key", 1)),
            (b"{\"a\"", end("':'", 4)),
            (b"{\"a\":", end("a value", 5)),
            (b"{\"a\":1", end("',' or '}'", 6)),
            (b"[1, ", end("a value", 4)),
            (b"[1", end("',' or ']'", 2)),
            (b"{} {}", TrailingData { offset: 3 }),
            (b"1 2", TrailingData { offset: 2 }),
            (b"{}x", TrailingData { offset: 2 }),
            (b"{}\x00", TrailingData { offset: 2 }),
            (b"{}\xEF\xBB\xBF", TrailingData { offset: 2 }),
            (b"{} \xC2\xA0", TrailingData { offset: 3 }),
        ];
        for (input, error) in cases {
            rejects(input, error);
        }
    }

    #[test]
    fn acceptances() {
        let two_to_70 = (1u128 << 70).to_string();
        let big_integer = "-".to_owned() + &"9".repeat(1000);
        let deep = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        let many_keys = {
            let members: Vec<String> = (0..1000)
                .map(|i| format!(r#""k{i}":{{"k{i}":[{i}]}}"#))
                .collect();
            format!("{{{}}}", members.join(","))
        };
        let cases: Vec<&[u8]> = vec![
            b"{}",
            b"[]",
            b"{ }",
            b"[ \t ]",
            b" \t{\t\"a\" : [ 1 , 2 ] }\t ",
            b"0",
            b"-0",
            b"-0.0e-0",
            b"1E+2",
            b"1e-400",
            b"0e999999",
            b"1.7976931348623157e308",
            b"-1.7976931348623157e308",
            b"123456789012345678901234567890.5e278",
            b"0.0000000001e318",
            b"true",
            b"false",
            b"null",
            b"[true,false,null]",
            br#""""#,
            br#""\"\\\/\b\f\n\r\t\u0000\u001F\u00e9\uFFFF\ud83d\ude00""#,
            "\"héllo wörld ✓ 😀 \u{7f}\u{2028}\"".as_bytes(),
            "{\"ключ\":\"значение\",\"键\":\"值\"}".as_bytes(),
            br#"{"a":{"a":{"a":1}},"b":[{"a":1},{"a":2}]}"#,
            br#"{"a":1,"A":2,"a ":3," a":4}"#,
            br#"{"\u0061":1,"\u0062":2,"c":3}"#,
            br#"{"":1,"\u0000":2}"#,
            two_to_70.as_bytes(),
            big_integer.as_bytes(),
            deep.as_bytes(),
            many_keys.as_bytes(),
            br#"{"jsonrpc":"2.0","id":1180591620717411303424,"method":"tools/call","params":{"name":"valkey_read","arguments":{"command":"GET","args":["k"]}}}"#,
        ];
        for input in cases {
            assert_eq!(
                check(input),
                Ok(()),
                "input {:?}",
                String::from_utf8_lossy(input)
            );
            let reparsed: Result<Value, _> = serde_json::from_slice(input);
            if input != big_integer.as_bytes() {
                // serde_json reads integers beyond u64 as f64, so 10^1000 is out of its range.
                assert!(
                    reparsed.is_ok(),
                    "serde_json rejects {:?}",
                    String::from_utf8_lossy(input)
                );
            }
        }
    }

    #[test]
    fn error_messages() {
        let cases: Vec<(JsonError, &str)> = vec![
            (
                JsonError::DuplicateKey {
                    key: "name".into(),
                    offset: 41,
                },
                r#"duplicate key "name" at byte 41"#,
            ),
            (
                JsonError::DuplicateKey {
                    key: "a\u{1b}[31m\n".into(),
                    offset: 3,
                },
                r#"duplicate key "a\u{1b}[31m\n" at byte 3"#,
            ),
            (
                JsonError::InvalidUtf8 { offset: 7 },
                "invalid UTF-8 at byte 7",
            ),
            (
                JsonError::Bom { offset: 0 },
                "byte-order mark at the start of the line",
            ),
            (
                JsonError::BareCr { offset: 12 },
                "bare carriage return at byte 12",
            ),
            (
                JsonError::NumberOutOfRange { offset: 30 },
                "number out of range at byte 30 (it would be read as infinity)",
            ),
            (
                JsonError::TooDeep { offset: 200 },
                "nesting deeper than 64 at byte 200",
            ),
            (
                JsonError::TrailingData { offset: 19 },
                "trailing data after the JSON value at byte 19",
            ),
            (
                JsonError::UnpairedSurrogate { offset: 9 },
                "unpaired surrogate escape at byte 9",
            ),
            (
                JsonError::Expected {
                    expected: "':'",
                    offset: 5,
                },
                "expected ':' at byte 5",
            ),
            (
                JsonError::UnexpectedEnd {
                    expected: "',' or '}'",
                    offset: 6,
                },
                "unexpected end of line at byte 6 (expected ',' or '}')",
            ),
            (
                JsonError::ControlCharacter { byte: 1, offset: 2 },
                "control character 0x01 in a string at byte 2 (it must be escaped)",
            ),
            (JsonError::Empty { offset: 0 }, "empty line"),
        ];
        for (error, text) in cases {
            assert_eq!(error.to_string(), text);
        }
    }

    #[test]
    fn duplicate_key_in_error_is_shortened() {
        let key = "x".repeat(1000);
        let line = format!(r#"{{"{key}":1,"{key}":2}}"#);
        let Err(JsonError::DuplicateKey { key: quoted, .. }) = check(line.as_bytes()) else {
            panic!("duplicate accepted");
        };
        assert_eq!(quoted, "x".repeat(KEY_IN_ERROR_CHARS) + "…");
    }

    #[test]
    fn error_offsets() {
        assert_eq!(check(b"[1,]").unwrap_err().offset(), 3);
        assert_eq!(check(br#"{"a":1,"a":2}"#).unwrap_err().offset(), 7);
    }

    #[test]
    fn find_special_finds_the_first_special_byte() {
        // Bytes that must not match, next to the ones that must: 0x20, 0x7f, 0x80 and up.
        const FILLER: [u8; 8] = [b' ', 0x7f, 0x80, 0xff, b'!', b'#', b'[', b']'];
        for len in 0..140 {
            for at in 0..=len {
                for special in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
                    let mut bytes: Vec<u8> = (0..len).map(|i| FILLER[i % 8]).collect();
                    if at < len {
                        bytes[at] = special;
                        // Later special bytes must not hide the first one.
                        bytes
                            .iter_mut()
                            .skip(at + 1)
                            .step_by(3)
                            .for_each(|b| *b = b'"');
                    }
                    assert_eq!(find_special(&bytes), at, "len {len} at {at} byte {special}");
                    let high_before = bytes[..at].iter().any(|&b| b >= 0x80);
                    let (found, non_ascii) = scan(&bytes);
                    assert_eq!(found, at);
                    assert!(
                        non_ascii || !high_before,
                        "len {len} at {at}: a high byte missed"
                    );
                    // Without any byte above 0x7F, never flagged.
                    let ascii: Vec<u8> = bytes
                        .iter()
                        .map(|&b| if b >= 0x80 { b'a' } else { b })
                        .collect();
                    assert_eq!(scan(&ascii), (at, false), "len {len} at {at}, ASCII");
                }
            }
        }
    }

    #[test]
    fn accessors_read_a_message() {
        let line = br#" {"jsonrpc":"2.0", "id" : 7,"method":"tools/call","params":{"name":"valkey_\u0077rite","arguments":{"command":"SET","args":["k","v\n"],"nested":{"}":"]"}}},"m\u00e9ta":[1, [2,{"a":[]}], "x,y"]} "#;
        check(line).unwrap();
        assert_eq!(kind(line), Kind::Object);
        let keys: Vec<String> = members(line).map(|(k, _)| k.into_owned()).collect();
        assert_eq!(keys, ["jsonrpc", "id", "method", "params", "méta"]);
        assert_eq!(get(line, "id"), Some(&b"7"[..]));
        assert_eq!(kind(get(line, "id").unwrap()), Kind::Number);
        assert_eq!(
            as_str(get(line, "jsonrpc").unwrap()).as_deref(),
            Some("2.0")
        );
        assert!(matches!(
            as_str(get(line, "jsonrpc").unwrap()),
            Some(Cow::Borrowed(_))
        ));
        let params = get(line, "params").unwrap();
        assert_eq!(
            as_str(get(params, "name").unwrap()).as_deref(),
            Some("valkey_write")
        );
        let arguments = get(params, "arguments").unwrap();
        let args: Vec<Cow<'_, str>> = elements(get(arguments, "args").unwrap())
            .map(|value| as_str(value).unwrap())
            .collect();
        assert_eq!(args, ["k", "v\n"]);
        assert_eq!(get(arguments, "nested"), Some(&br#"{"}":"]"}"#[..]));
        let meta: Vec<&[u8]> = elements(get(line, "méta").unwrap()).collect();
        assert_eq!(meta, [&b"1"[..], br#"[2,{"a":[]}]"#, br#""x,y""#]);
        assert_eq!(get(line, "missing"), None);
        assert_eq!(get(b"[1]", "a"), None);
        assert_eq!(members(b"[1]").count(), 0);
        assert_eq!(elements(b"{}").count(), 0);
        assert_eq!(elements(b"[]").count(), 0);
        assert_eq!(elements(b" [ ] ").count(), 0);
        assert_eq!(members(b"{ }").count(), 0);
        assert_eq!(as_str(b"1"), None);
        assert_eq!(as_str(b" \"a\" ").as_deref(), Some("a"));
        assert_eq!(kind(b" [1]"), Kind::Array);
        assert_eq!(kind(b"\"\""), Kind::String);
        assert_eq!(kind(b"true"), Kind::Bool);
        assert_eq!(kind(b"false"), Kind::Bool);
        assert_eq!(kind(b"null"), Kind::Null);
        assert_eq!(kind(b"-1"), Kind::Number);
    }

    #[test]
    fn write_str_matches_serde_json() {
        let all_ascii: String = (0u8..128).map(char::from).collect();
        for s in [
            "",
            "plain",
            "quote \" and \\ backslash",
            "é😀\u{2028}",
            &all_ascii,
        ] {
            let mut out = Vec::new();
            write_str(&mut out, s);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(s).unwrap()
            );
        }
    }

    // ---- property tests ----

    /// Reads JSON keeping the first of duplicate keys, where serde_json's `Value` keeps the last.
    struct FirstWins(Value);

    impl<'de> serde::Deserialize<'de> for FirstWins {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_any(FirstWinsVisitor)
        }
    }

    struct FirstWinsVisitor;

    impl<'de> serde::de::Visitor<'de> for FirstWinsVisitor {
        type Value = FirstWins;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_bool<E>(self, v: bool) -> Result<FirstWins, E> {
            Ok(FirstWins(Value::Bool(v)))
        }
        fn visit_i64<E>(self, v: i64) -> Result<FirstWins, E> {
            Ok(FirstWins(Value::from(v)))
        }
        fn visit_u64<E>(self, v: u64) -> Result<FirstWins, E> {
            Ok(FirstWins(Value::from(v)))
        }
        fn visit_f64<E>(self, v: f64) -> Result<FirstWins, E> {
            Ok(FirstWins(
                serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number),
            ))
        }
        fn visit_str<E>(self, v: &str) -> Result<FirstWins, E> {
            Ok(FirstWins(Value::String(v.to_owned())))
        }
        fn visit_unit<E>(self) -> Result<FirstWins, E> {
            Ok(FirstWins(Value::Null))
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<FirstWins, A::Error> {
            let mut items = Vec::new();
            while let Some(FirstWins(item)) = seq.next_element()? {
                items.push(item);
            }
            Ok(FirstWins(Value::Array(items)))
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<FirstWins, A::Error> {
            let mut object = Map::new();
            while let Some((key, FirstWins(value))) = map.next_entry::<String, FirstWins>()? {
                object.entry(key).or_insert(value);
            }
            Ok(FirstWins(Value::Object(object)))
        }
    }

    /// Rebuilds a value from the accessors alone.
    fn rebuild(value: &[u8]) -> Value {
        match kind(value) {
            Kind::Object => {
                let mut object = Map::new();
                let mut count = 0;
                for (key, member) in members(value) {
                    assert_eq!(get(value, &key), Some(member), "get disagrees with members");
                    object.insert(key.into_owned(), rebuild(member));
                    count += 1;
                }
                assert_eq!(object.len(), count, "members yielded a duplicate key");
                Value::Object(object)
            }
            Kind::Array => Value::Array(elements(value).map(rebuild).collect()),
            Kind::String => Value::String(as_str(value).expect("a string").into_owned()),
            Kind::Number | Kind::Bool | Kind::Null => {
                serde_json::from_slice(value).expect("a scalar serde_json reads")
            }
        }
    }

    /// Whatever `validate` accepts has one reading, which serde_json and the accessors agree on;
    /// whatever serde_json reads but `validate` rejects is rejected for a reason of ours.
    fn check_no_ambiguity(input: &[u8]) {
        // The accessors must not panic on anything.
        let _ = kind(input);
        let _ = members(input).count();
        let _ = elements(input).count();
        let _ = as_str(input);
        let _ = get(input, "a");
        let verdict = validate(input);
        let last_wins = serde_json::from_slice::<Value>(input);
        let utf8 = std::str::from_utf8(input);
        match verdict {
            Ok(outline) => {
                assert!(utf8.is_ok(), "validate accepted invalid UTF-8");
                assert!(
                    outline.members(input).eq(members(input)),
                    "the outline's members differ from a walk's: {:?}",
                    String::from_utf8_lossy(input)
                );
                let last_wins = last_wins.expect("serde_json reads what validate accepted");
                let first_wins = serde_json::from_slice::<FirstWins>(input)
                    .expect("serde_json reads what validate accepted");
                assert_eq!(first_wins.0, last_wins, "duplicate-key readers differ");
                assert_eq!(
                    rebuild(input),
                    last_wins,
                    "accessors differ from serde_json"
                );
                assert!(!input.contains(&b'\r'));
            }
            Err(error) => {
                // Invalid UTF-8 is reported first, wherever it is, at the offset std finds.
                if let Err(e) = utf8
                    && !input.starts_with(b"\xEF\xBB\xBF")
                {
                    assert_eq!(
                        error,
                        JsonError::InvalidUtf8 {
                            offset: e.valid_up_to()
                        }
                    );
                }
                if last_wins.is_ok() {
                    assert!(
                        matches!(
                            error,
                            JsonError::BareCr { .. }
                                | JsonError::LineFeed { .. }
                                | JsonError::DuplicateKey { .. }
                                | JsonError::TooDeep { .. }
                        ),
                        "validate rejects valid JSON with {error:?}: {:?}",
                        String::from_utf8_lossy(input)
                    );
                }
            }
        }
    }

    fn arb_string() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z]{0,4}",
            prop::collection::vec(any::<char>(), 0..12).prop_map(String::from_iter),
            prop::collection::vec(
                prop::sample::select(vec!['"', '\\', '/', '\n', '\r', '\u{0}', 'é', '😀', 'a']),
                0..8
            )
            .prop_map(String::from_iter),
        ]
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
                .map(Value::Number)),
            arb_string().prop_map(Value::String),
        ];
        leaf.prop_recursive(5, 96, 24, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(arb_string(), inner, 0..24)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Writes `s` with every character as a `\u` escape (surrogate pairs above the BMP).
    fn write_escaped(out: &mut String, s: &str) {
        out.push('"');
        for ch in s.chars() {
            let mut units = [0u16; 2];
            for unit in ch.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04X}"));
            }
        }
        out.push('"');
    }

    /// Serializes like serde_json, but with every string escaped and with spaces and tabs.
    fn write_spaced_escaped(out: &mut String, value: &Value) {
        match value {
            Value::Object(object) => {
                out.push_str("{ ");
                for (i, (key, member)) in object.iter().enumerate() {
                    if i > 0 {
                        out.push_str("\t, ");
                    }
                    write_escaped(out, key);
                    out.push_str(" :\t");
                    write_spaced_escaped(out, member);
                }
                out.push_str(" }");
            }
            Value::Array(items) => {
                out.push_str("[\t");
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(" ,");
                    }
                    write_spaced_escaped(out, item);
                }
                out.push_str(" ]");
            }
            Value::String(s) => write_escaped(out, s),
            other => out.push_str(&other.to_string()),
        }
    }

    fn interesting_byte() -> impl Strategy<Value = u8> {
        prop_oneof![
            prop::sample::select(b"{}[]\",:\\/ \t\r\n0123456789+-.eEutrfalsn\x00\x7f".to_vec()),
            any::<u8>(),
        ]
    }

    proptest! {
        #[test]
        fn serde_json_output_round_trips(value in arb_json()) {
            for text in [
                serde_json::to_vec(&value).unwrap(),
                serde_json::to_vec_pretty(&value).unwrap().into_iter().filter(|&b| b != b'\n').collect(),
                {
                    let mut out = String::new();
                    write_spaced_escaped(&mut out, &value);
                    out.into_bytes()
                },
            ] {
                prop_assert_eq!(check(&text), Ok(()), "{}", String::from_utf8_lossy(&text));
                // serde_json's default float parsing is not always exact, so compare with its
                // own reading of the text rather than with `value`.
                let expected: Value = serde_json::from_slice(&text).unwrap();
                prop_assert_eq!(rebuild(&text), expected);
                check_no_ambiguity(&text);
            }
        }

        #[test]
        fn arbitrary_bytes(input in prop::collection::vec(any::<u8>(), 0..64)) {
            check_no_ambiguity(&input);
        }

        #[test]
        fn arbitrary_json_alphabet(input in prop::collection::vec(interesting_byte(), 0..48)) {
            check_no_ambiguity(&input);
        }

        #[test]
        fn mutated_json(
            value in arb_json(),
            edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, interesting_byte()), 1..4),
        ) {
            let mut text = serde_json::to_vec(&value).unwrap();
            for (index, op, byte) in edits {
                let at = index.index(text.len() + 1);
                match op {
                    0 => text.insert(at, byte),
                    1 if at < text.len() => { text.remove(at); }
                    _ if at < text.len() => text[at] = byte,
                    _ => text.push(byte),
                }
            }
            check_no_ambiguity(&text);
        }

        #[test]
        fn duplicates_are_rejected_exactly(
            keys in prop::collection::btree_set("k[0-9]{0,2}", 1..30),
            duplicate in prop::option::of((any::<prop::sample::Index>(), any::<prop::sample::Index>())),
            escape in prop::collection::vec(any::<bool>(), 31),
            nest in 0usize..3,
        ) {
            let mut keys: Vec<String> = keys.into_iter().collect();
            if let Some((which, place)) = duplicate {
                let key = keys[which.index(keys.len())].clone();
                keys.insert(place.index(keys.len() + 1), key);
            }
            let mut text = String::from("{");
            for (i, key) in keys.iter().enumerate() {
                if i > 0 {
                    text.push(',');
                }
                if escape[i] {
                    write_escaped(&mut text, key);
                } else {
                    text.push_str(&serde_json::to_string(key).unwrap());
                }
                text.push_str(&format!(r#":{{"{key}":[{i}]}}"#));
            }
            text.push('}');
            for _ in 0..nest {
                text = format!(r#"{{"k1":1,"x":[0,{text}],"k2":2}}"#);
            }
            let verdict = check(text.as_bytes());
            if duplicate.is_some() {
                let is_duplicate = matches!(verdict, Err(JsonError::DuplicateKey { .. }));
                prop_assert!(is_duplicate, "{:?}", verdict);
            } else {
                prop_assert_eq!(verdict, Ok(()));
                check_no_ambiguity(text.as_bytes());
            }
        }

        /// Long strings of mixed text, crossing the 64-byte blocks of the scan, with a byte
        /// that may break the UTF-8 anywhere: the verdict on the encoding is std's.
        #[test]
        fn utf8_is_checked_in_strings_of_any_length(
            pieces in prop::collection::vec(prop::sample::select(vec![
                "a", "hello ", "é", "€", "😀", "\\n", "\\u00e9", "\\\"", "0123456789abcdef",
            ]), 0..80),
            broken in prop::option::of((any::<prop::sample::Index>(), prop::sample::select(vec![
                0x80u8, 0xbf, 0xc0, 0xc3, 0xe2, 0xed, 0xf0, 0xf4, 0xf8, 0xff,
            ]))),
            as_key in any::<bool>(),
        ) {
            let text: String = pieces.concat();
            let mut line = if as_key {
                format!(r#"{{"id":1,"{text}":2}}"#).into_bytes()
            } else {
                format!(r#"{{"id":1,"text":"{text}"}}"#).into_bytes()
            };
            if let Some((at, byte)) = broken
                && !text.is_empty()
            {
                // Inside the string: after the opening quote, before the closing one.
                let open = if as_key { 9 } else { 16 };
                line[open + at.index(text.len())] = byte;
            }
            let verdict = check(&line);
            match std::str::from_utf8(&line) {
                // A replaced byte may also break an escape.
                Ok(_) if broken.is_some() => {}
                Ok(_) => prop_assert_eq!(verdict, Ok(())),
                Err(e) => prop_assert_eq!(verdict, Err(JsonError::InvalidUtf8 { offset: e.valid_up_to() })),
            }
            check_no_ambiguity(&line);
        }

        #[test]
        fn write_str_agrees_with_serde_json(s in arb_string()) {
            let mut out = Vec::new();
            write_str(&mut out, &s);
            prop_assert_eq!(&out, &serde_json::to_vec(&s).unwrap());
            prop_assert_eq!(check(&out), Ok(()));
            let decoded = as_str(&out);
            prop_assert_eq!(decoded.as_deref(), Some(s.as_str()));
        }
    }

    // ---- throughput, by hand ----

    /// Run with `cargo test --release --lib json::tests::throughput -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, not a test: run by hand in release mode"]
    fn throughput() {
        fn measure(name: &str, line: &[u8]) {
            let rounds = 20;
            let time = |f: &dyn Fn()| {
                f();
                let start = std::time::Instant::now();
                for _ in 0..rounds {
                    f();
                }
                start.elapsed().as_secs_f64() / f64::from(rounds)
            };
            let megabytes = line.len() as f64 / 1e6;
            let ours = time(&|| check(std::hint::black_box(line)).unwrap());
            let serde = time(&|| {
                std::hint::black_box(serde_json::from_slice::<Value>(line).unwrap());
            });
            let text = get(line, "result").unwrap_or(line);
            let accessors = time(&|| {
                let count = members(std::hint::black_box(text)).count();
                std::hint::black_box(count);
            });
            eprintln!(
                "{name}: {:.1} MB, validate {:.0} MB/s, serde_json Value {:.0} MB/s, members {:.0} MB/s",
                megabytes,
                megabytes / ours,
                megabytes / serde,
                megabytes / accessors,
            );
        }
        let eight_mib = |unit: &str| unit.repeat((8 << 20) / unit.len());
        let ascii = eight_mib("lorem ipsum dolor sit amet, ");
        let mut line = Vec::new();
        line.extend_from_slice(
            br#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"#,
        );
        write_str(&mut line, &ascii);
        line.extend_from_slice(b"}]}}");
        measure("8 MiB ASCII string", &line);

        let mixed = eight_mib("héllo wörld, 你好世界 😀 ");
        line.clear();
        line.extend_from_slice(
            br#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"#,
        );
        write_str(&mut line, &mixed);
        line.extend_from_slice(b"}]}}");
        measure("8 MiB non-ASCII string", &line);

        let code = eight_mib("fn main() {\n\tprintln!(\"hi\");\n}\n");
        line.clear();
        line.extend_from_slice(
            br#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"#,
        );
        write_str(&mut line, &code);
        line.extend_from_slice(b"}]}}");
        measure("8 MiB escaped string", &line);

        let rows: Vec<String> = (0..60_000)
            .map(|i| {
                format!(
                    r#"{{"id":{i},"name":"user{i}","score":{}.5,"tags":["a","b"],"ok":true}}"#,
                    i * 7
                )
            })
            .collect();
        let line = format!(
            r#"{{"jsonrpc":"2.0","id":1,"result":{{"rows":[{}]}}}}"#,
            rows.join(",")
        );
        measure("many small objects", line.as_bytes());
    }
}
