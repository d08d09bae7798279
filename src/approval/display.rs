//! Text an approver shows a person, made from input the person must not have to trust.
//!
//! The tool name, the arguments and even the keys come from the model, which may have read them
//! from an attacker. A person approving a call decides on what the screen shows, so the screen
//! must show what the call holds: a right-to-left override (U+202E) can make `gpj.exe` read as
//! `exe.jpg`, a zero-width space can hide between the letters of a name that looks trusted, a
//! newline can forge a line that seems to come from the proxy, and a tag character can carry text
//! no font draws. So every character that changes how the text around it is laid out, or that
//! draws nothing, is shown as an escape (`\u{202E}`), a backslash is doubled so that an escape is
//! always ours, and every piece is cut to a bound so that a long value cannot push the rest of
//! the call off the screen.
//!
//! Which characters are escaped is read from the Unicode data (the `unicode-properties` crate's
//! general categories), not from a hand list: every control (Cc), format character (Cf, the bidi
//! controls among them), private-use (Co), surrogate (Cs) and unassigned (Cn, the noncharacters
//! and U+2065, U+FFF0..U+FFF8 among them) code point, every separator (Zl, Zp) and every space
//! (Zs) other than U+0020. A table kept by hand adds the default-ignorable code points of other
//! categories that draw nothing (variation selectors, fillers, the combining grapheme joiner),
//! which the general category alone does not catch.

use std::fmt::Write as _;

use serde_json::Value;

/// Ranges of characters that are shown as `\u{...}` escapes, sorted and disjoint.
const ESCAPED: &[(u32, u32)] = &[
    (0x0000, 0x001F),   // C0 controls (\t, \n, \r get short escapes)
    (0x007F, 0x009F),   // DEL and the C1 controls
    (0x00A0, 0x00A0),   // no-break space
    (0x00AD, 0x00AD),   // soft hyphen (Cf)
    (0x034F, 0x034F),   // combining grapheme joiner
    (0x0600, 0x0605),   // Arabic number signs (Cf)
    (0x061C, 0x061C),   // Arabic letter mark (bidi)
    (0x06DD, 0x06DD),   // Arabic end of ayah (Cf)
    (0x070F, 0x070F),   // Syriac abbreviation mark (Cf)
    (0x0890, 0x0891),   // Arabic pound and piastre marks above (Cf)
    (0x08E2, 0x08E2),   // Arabic disputed end of ayah (Cf)
    (0x115F, 0x1160),   // Hangul choseong and jungseong fillers (draw nothing)
    (0x1680, 0x1680),   // Ogham space mark
    (0x17B4, 0x17B5),   // Khmer inherent vowels (draw nothing)
    (0x180B, 0x180F),   // Mongolian free variation selectors and vowel separator (Cf)
    (0x2000, 0x200F),   // spaces, zero-width space/non-joiner/joiner, LRM, RLM
    (0x2028, 0x202F),   // line and paragraph separators, bidi embeddings, narrow no-break space
    (0x205F, 0x2064),   // medium math space, word joiner, invisible operators
    (0x2066, 0x206F),   // bidi isolates and deprecated format characters
    (0x2800, 0x2800),   // braille pattern blank
    (0x3000, 0x3000),   // ideographic space
    (0x3164, 0x3164),   // Hangul filler
    (0xFDD0, 0xFDEF),   // noncharacters
    (0xFE00, 0xFE0F),   // variation selectors
    (0xFEFF, 0xFEFF),   // zero-width no-break space (BOM)
    (0xFFA0, 0xFFA0),   // halfwidth Hangul filler
    (0xFFF9, 0xFFFB),   // interlinear annotation controls (Cf)
    (0xFFFE, 0xFFFF),   // noncharacters
    (0x110BD, 0x110BD), // Kaithi number sign (Cf)
    (0x110CD, 0x110CD), // Kaithi number sign above (Cf)
    (0x13430, 0x1343F), // Egyptian hieroglyph format controls (Cf)
    (0x1BCA0, 0x1BCA3), // shorthand format controls (Cf)
    (0x1D173, 0x1D17A), // musical symbol format controls (Cf)
    (0xE0000, 0xE0FFF), // tags (E0001, E0020-E007F), variation selectors E0100-E01EF, unassigned
];

/// Whether `c` is shown as an escape rather than as itself.
fn is_escaped(c: char) -> bool {
    use unicode_properties::{GeneralCategory as G, UnicodeGeneralCategory as _};
    if c == ' ' {
        return false;
    }
    if matches!(
        c.general_category(),
        G::Control
            | G::Format
            | G::PrivateUse
            | G::Surrogate
            | G::Unassigned
            | G::LineSeparator
            | G::ParagraphSeparator
            | G::SpaceSeparator
    ) {
        return true;
    }
    let c = u32::from(c);
    // The last noncharacter pair of every plane (U+1FFFE, U+2FFFF, ...).
    if c & 0xFFFE == 0xFFFE {
        return true;
    }
    ESCAPED
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// Appends how `c` is shown.
fn push_shown(out: &mut String, c: char) {
    match c {
        '\\' => out.push_str("\\\\"),
        '\n' => out.push_str("\\n"),
        '\t' => out.push_str("\\t"),
        '\r' => out.push_str("\\r"),
        c if is_escaped(c) => {
            let _ = write!(out, "\\u{{{:04X}}}", u32::from(c));
        }
        c => out.push(c),
    }
}

fn hex_digits(n: u32) -> usize {
    (32 - n.leading_zeros()).div_ceil(4) as usize
}

/// How many characters `c` takes once shown.
fn shown_len(c: char) -> usize {
    match c {
        '\\' | '\n' | '\t' | '\r' => 2,
        // `\u{`, four hex digits or more, `}`
        c if is_escaped(c) => 4 + hex_digits(u32::from(c)).max(4),
        _ => 1,
    }
}

/// `s` as it can be shown to a person: every character that draws nothing or rearranges the text
/// around it (controls, bidi controls, zero-width and other format characters, line separators,
/// variation selectors, tags, blanks other than the plain space) becomes an escape such as
/// `\u{202E}`, `\n`, `\t` or `\r`, and a backslash becomes `\\`, so that any escape on screen
/// stands for exactly one character of `s`.
///
/// `max_chars` bounds what is shown, escapes counted at their shown length, and never splits an
/// escape. When `s` does not fit, what fits is followed by `… (N more characters)`, N counting
/// the characters of `s` left out.
pub fn visible(s: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max_chars.saturating_mul(4)) + 2);
    let mut used = 0usize;
    for (shown, c) in s.chars().enumerate() {
        let len = shown_len(c);
        if used + len > max_chars {
            let left = s.chars().count() - shown;
            let _ = write!(
                out,
                "… ({left} more {})",
                plural(left, "character", "characters")
            );
            return out;
        }
        used += len;
        push_shown(&mut out, c);
    }
    out
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

/// `s` shown with [`visible`] between double quotes, a double quote inside shown as `\"`, so
/// that a value cannot seem to end early.
fn quoted(s: &str, max_chars: usize) -> String {
    let shown = visible(s, max_chars);
    let mut out = String::with_capacity(shown.len() + 2);
    out.push('"');
    for c in shown.chars() {
        if c == '"' {
            out.push_str("\\\"");
        } else {
            out.push(c);
        }
    }
    out.push('"');
    out
}

/// Whether a key can follow a `.` in a path and still read as one key.
fn is_plain_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Where [`describe_arguments_within`] puts its lines: whole lines while they fit, then only a
/// count of the rest, so that a huge array costs no more than its walk.
struct Lines {
    out: String,
    chars: usize,
    shown: usize,
    left: usize,
    max_chars: usize,
    max_lines: usize,
    max_value_chars: usize,
}

impl Lines {
    fn leaf(&mut self, path: &str, value: &Value) {
        if self.left > 0 {
            self.left += 1;
            return;
        }
        let shown = match value {
            Value::Object(_) => "{}".to_owned(),
            Value::Array(_) => "[]".to_owned(),
            Value::String(s) => quoted(s, self.max_value_chars),
            // Numbers, booleans and null are JSON text already and hold nothing to escape.
            other => visible(&other.to_string(), self.max_value_chars),
        };
        let path = if path.is_empty() { "(arguments)" } else { path };
        let line = format!("{path} = {shown}");
        let len = line.chars().count() + usize::from(self.shown > 0);
        if self.shown == self.max_lines || self.chars + len > self.max_chars {
            self.left = 1;
            return;
        }
        if self.shown > 0 {
            self.out.push('\n');
        }
        self.out.push_str(&line);
        self.chars += len;
        self.shown += 1;
    }

    /// Every leaf under `value`, whose path is `path`.
    fn walk(&mut self, value: &Value, path: &mut String) {
        match value {
            Value::Object(map) if !map.is_empty() => {
                for (key, child) in map {
                    let len = path.len();
                    if is_plain_key(key) && key.len() <= self.max_value_chars {
                        if !path.is_empty() {
                            path.push('.');
                        }
                        path.push_str(key);
                    } else {
                        // A key with a dot, a bracket or a space would make the path ambiguous.
                        let _ = write!(path, "[{}]", quoted(key, self.max_value_chars));
                    }
                    self.walk(child, path);
                    path.truncate(len);
                }
            }
            Value::Array(items) if !items.is_empty() => {
                for (i, child) in items.iter().enumerate() {
                    let len = path.len();
                    let _ = write!(path, "[{i}]");
                    self.walk(child, path);
                    path.truncate(len);
                }
            }
            leaf => self.leaf(path, leaf),
        }
    }

    fn finish(mut self) -> String {
        if self.left > 0 {
            if self.shown > 0 {
                self.out.push('\n');
            }
            let left = self.left;
            let _ = write!(
                self.out,
                "… ({left} more {})",
                plural(left, "line", "lines")
            );
        }
        self.out
    }
}

/// The arguments of a call, one line per leaf: `path = value`, where the path reads like
/// `query`, `options.limit`, `args[0]` or `headers["Content-Type"]` (a key that is not a plain
/// name is quoted), a string value is quoted, and every key and string is passed through
/// [`visible`] with `max_value_chars`. An empty object or array is a leaf of its own (`{}`, `[]`).
///
/// Lines are kept whole, in the order of the JSON, and stop before the text would pass
/// `max_total_chars` characters; a last line `… (N more lines)` counts the ones left out. No
/// arguments (null or `{}`) reads `(no arguments)`.
pub fn describe_arguments(args: &Value, max_value_chars: usize, max_total_chars: usize) -> String {
    describe_arguments_within(args, max_value_chars, max_total_chars, usize::MAX)
}

/// [`describe_arguments`] that also stops after `max_lines` lines, for a dialog whose buttons
/// must stay on the screen however many leaves the arguments have.
pub fn describe_arguments_within(
    args: &Value,
    max_value_chars: usize,
    max_total_chars: usize,
    max_lines: usize,
) -> String {
    if args.is_null() || args.as_object().is_some_and(|map| map.is_empty()) {
        return "(no arguments)".to_owned();
    }
    let mut lines = Lines {
        out: String::new(),
        chars: 0,
        shown: 0,
        left: 0,
        max_chars: max_total_chars,
        max_lines,
        max_value_chars,
    };
    // serde_json's parser nests at most 128 deep, so the recursion is bounded.
    lines.walk(args, &mut String::new());
    lines.finish()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn visible_escapes_what_draws_nothing_or_moves_text() {
        let cases: &[(&str, &str, &str)] = &[
            ("plain text", "plain", "plain"),
            ("accents and CJK stay", "café 東京 ñ", "café 東京 ñ"),
            ("emoji stays", "ok 👍", "ok 👍"),
            ("backslash doubled", r"C:\temp\x", r"C:\\temp\\x"),
            (
                "a literal escape cannot pass for ours",
                r"\u{202E}",
                r"\\u{202E}",
            ),
            ("newline, tab, CR", "a\nb\tc\rd", r"a\nb\tc\rd"),
            (
                "NUL and other C0",
                "\0\u{1}\u{1B}[31m",
                r"\u{0000}\u{0001}\u{001B}[31m",
            ),
            (
                "DEL and C1",
                "\u{7F}\u{85}\u{9B}",
                r"\u{007F}\u{0085}\u{009B}",
            ),
            (
                "RLO reversal trick",
                "invoice\u{202E}gpj.exe",
                r"invoice\u{202E}gpj.exe",
            ),
            (
                "all bidi embeddings",
                "\u{202A}\u{202B}\u{202C}\u{202D}",
                r"\u{202A}\u{202B}\u{202C}\u{202D}",
            ),
            (
                "LRM RLM ALM",
                "\u{200E}\u{200F}\u{61C}",
                r"\u{200E}\u{200F}\u{061C}",
            ),
            (
                "bidi isolates",
                "\u{2066}\u{2067}\u{2068}\u{2069}",
                r"\u{2066}\u{2067}\u{2068}\u{2069}",
            ),
            (
                "zero width",
                "a\u{200B}b\u{200C}c\u{200D}d",
                r"a\u{200B}b\u{200C}c\u{200D}d",
            ),
            (
                "word joiner, invisible ops",
                "\u{2060}\u{2061}\u{2064}",
                r"\u{2060}\u{2061}\u{2064}",
            ),
            (
                "BOM, soft hyphen, MVS, CGJ",
                "\u{FEFF}\u{AD}\u{180E}\u{34F}",
                r"\u{FEFF}\u{00AD}\u{180E}\u{034F}",
            ),
            (
                "variation selectors",
                "\u{FE00}\u{FE0F}\u{E0100}\u{E01EF}",
                r"\u{FE00}\u{FE0F}\u{E0100}\u{E01EF}",
            ),
            (
                "tag characters",
                "\u{E0001}\u{E0041}\u{E007F}",
                r"\u{E0001}\u{E0041}\u{E007F}",
            ),
            (
                "line and paragraph separators",
                "a\u{2028}b\u{2029}",
                r"a\u{2028}b\u{2029}",
            ),
            (
                "other Cf",
                "\u{600}\u{FFF9}\u{110BD}\u{1D173}",
                r"\u{0600}\u{FFF9}\u{110BD}\u{1D173}",
            ),
            (
                "blanks that are not a space",
                "a\u{A0}b\u{3000}c\u{2003}d",
                r"a\u{00A0}b\u{3000}c\u{2003}d",
            ),
            (
                "fillers that draw nothing",
                "\u{3164}\u{115F}\u{FFA0}\u{2800}",
                r"\u{3164}\u{115F}\u{FFA0}\u{2800}",
            ),
            (
                "noncharacters",
                "\u{FFFE}\u{FDD0}\u{10FFFF}",
                r"\u{FFFE}\u{FDD0}\u{10FFFF}",
            ),
            (
                "visible neighbours stay",
                "\u{2010}\u{2027}\u{2030}\u{FFFD}",
                "\u{2010}\u{2027}\u{2030}\u{FFFD}",
            ),
            (
                // Issue 21 changed this on purpose: a private-use character draws whatever a
                // font puts there, so a person cannot know what it is.
                "private use is escaped",
                "\u{E000}",
                r"\u{E000}",
            ),
        ];
        for (what, input, want) in cases {
            assert_eq!(visible(input, 1000), *want, "{what}: {input:?}");
        }
    }

    #[test]
    fn visible_cuts_at_the_bound_and_counts_what_it_left_out() {
        let cases: &[(&str, usize, &str)] = &[
            ("", 0, ""),
            ("abc", 3, "abc"),
            ("abcd", 3, "abc… (1 more character)"),
            ("abcdef", 2, "ab… (4 more characters)"),
            ("abc", 0, "… (3 more characters)"),
            ("東京都", 2, "東京… (1 more character)"),
            // An escape is never split: `\u{202E}` needs 8 and only 5 are left.
            ("ab\u{202E}cd", 7, "ab… (3 more characters)"),
            ("ab\u{202E}cd", 10, r"ab\u{202E}… (2 more characters)"),
            (r"a\b", 2, r"a… (2 more characters)"),
            (r"a\b", 3, r"a\\… (1 more character)"),
        ];
        for (input, max, want) in cases {
            assert_eq!(visible(input, *max), *want, "visible({input:?}, {max})");
        }
    }

    #[test]
    fn nothing_invisible_survives_visible() {
        // Every code point that the tables escape, through every plane, comes out as ASCII.
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
            let shown = visible(&c.to_string(), 100);
            if is_escaped(c) {
                assert!(
                    shown.is_ascii() && shown.starts_with('\\'),
                    "{:04X} shown as {shown:?}",
                    u32::from(c)
                );
            } else {
                assert!(
                    !shown.chars().any(is_escaped),
                    "{:04X} shown as {shown:?}",
                    u32::from(c)
                );
            }
        }
    }

    /// Found by the adversarial review: unassigned (U+2065, U+FFF0, U+FFF8) and private-use
    /// code points reached a person raw. Every one of these categories is escaped, from the
    /// Unicode data; letters, marks that draw, symbols and U+0020 are not.
    #[test]
    fn unassigned_private_use_and_format_code_points_are_escaped() {
        for c in [
            '\u{2065}',
            '\u{FFF0}',
            '\u{FFF8}',
            '\u{E000}',
            '\u{F8FF}',
            '\u{F0000}',
            '\u{10FFFD}',
            '\u{202E}',
            '\u{2066}',
            '\u{200B}',
            '\u{061C}',
            '\u{1D175}',
            '\u{E0041}',
            '\u{FE0F}',
            '\u{3164}',
            '\u{2028}',
            '\u{00A0}',
            '\u{0085}',
            '\u{1B}',
            '\u{FFFE}',
            '\u{5FFFF}',
            '\u{E0100}',
            '\u{180E}',
        ] {
            assert!(is_escaped(c), "U+{:04X} is shown raw", u32::from(c));
            assert!(
                visible(&format!("a{c}b"), 100).contains("\\u{"),
                "U+{:04X}",
                u32::from(c)
            );
        }
        for c in ['a', 'é', 'ß', '中', ' ', '-', '\u{0301}', '€', '😀', 'ﬂ'] {
            assert!(!is_escaped(c), "U+{:04X} is escaped", u32::from(c));
        }
    }

    #[test]
    fn escaped_ranges_are_sorted_and_disjoint() {
        for pair in ESCAPED.windows(2) {
            assert!(pair[0].0 <= pair[0].1 && pair[0].1 < pair[1].0, "{pair:X?}");
        }
    }

    #[test]
    fn describe_arguments_shows_one_line_per_leaf() {
        let cases: &[(&str, Value, &str)] = &[
            ("null", Value::Null, "(no arguments)"),
            ("empty object", json!({}), "(no arguments)"),
            (
                "flat",
                json!({"key": "user:1", "ttl": 60}),
                "key = \"user:1\"\nttl = 60",
            ),
            (
                "nested",
                json!({"a": {"b": true, "c": null}}),
                "a.b = true\na.c = null",
            ),
            (
                "array",
                json!({"args": ["SET", 1.5]}),
                "args[0] = \"SET\"\nargs[1] = 1.5",
            ),
            ("array root", json!(["x"]), "[0] = \"x\""),
            ("scalar root", json!("x"), "(arguments) = \"x\""),
            (
                "empty containers are leaves",
                json!({"a": [], "b": {}}),
                "a = []\nb = {}",
            ),
            (
                "objects in arrays",
                json!({"xs": [{"k": "v"}]}),
                "xs[0].k = \"v\"",
            ),
            (
                "dotted key is quoted",
                json!({"a.b": 1, "a": {"b": 2}}),
                "a.b = 2\n[\"a.b\"] = 1",
            ),
            (
                "key with space",
                json!({"x": {"my key": 1}}),
                "x[\"my key\"] = 1",
            ),
            ("empty key", json!({"": 1}), "[\"\"] = 1"),
            (
                "quote in value",
                json!({"q": "a\" (ok) b = \"c"}),
                r#"q = "a\" (ok) b = \"c""#,
            ),
            (
                "newline cannot forge a line",
                json!({"q": "x\nproxy: approved"}),
                r#"q = "x\nproxy: approved""#,
            ),
            (
                "bidi in value",
                json!({"f": "a\u{202E}b"}),
                r#"f = "a\u{202E}b""#,
            ),
            (
                "bidi in key",
                json!({"k\u{202E}": 1}),
                r#"["k\u{202E}"] = 1"#,
            ),
            (
                "big number",
                json!({"n": 12345678901234567890u64}),
                "n = 12345678901234567890",
            ),
        ];
        for (what, args, want) in cases {
            assert_eq!(describe_arguments(args, 100, 10_000), *want, "{what}");
        }
    }

    #[test]
    fn describe_arguments_cuts_values_and_the_total() {
        let long = json!({"s": "abcdefghij"});
        assert_eq!(
            describe_arguments(&long, 4, 100),
            "s = \"abcd… (6 more characters)\""
        );

        let many = json!({"a": 1, "b": 2, "c": 3, "d": 4});
        let cases: &[(usize, &str)] = &[
            (100, "a = 1\nb = 2\nc = 3\nd = 4"),
            (23, "a = 1\nb = 2\nc = 3\nd = 4"),
            (22, "a = 1\nb = 2\nc = 3\n… (1 more line)"),
            (11, "a = 1\nb = 2\n… (2 more lines)"),
            (5, "a = 1\n… (3 more lines)"),
            (4, "… (4 more lines)"),
        ];
        for (max_total, want) in cases {
            assert_eq!(
                describe_arguments(&many, 100, *max_total),
                *want,
                "max_total_chars {max_total}"
            );
        }
    }

    #[test]
    fn describe_arguments_within_stops_after_max_lines() {
        let many = json!({"a": 1, "b": 2, "c": 3, "d": 4});
        let cases: &[(usize, &str)] = &[
            (5, "a = 1\nb = 2\nc = 3\nd = 4"),
            (4, "a = 1\nb = 2\nc = 3\nd = 4"),
            (3, "a = 1\nb = 2\nc = 3\n… (1 more line)"),
            (1, "a = 1\n… (3 more lines)"),
            (0, "… (4 more lines)"),
        ];
        for (max_lines, want) in cases {
            assert_eq!(
                describe_arguments_within(&many, 100, 1000, *max_lines),
                *want,
                "max_lines {max_lines}"
            );
        }
        let huge = Value::Array(vec![json!(0); 100_000]);
        assert_eq!(
            describe_arguments_within(&huge, 100, 1000, 2),
            "[0] = 0\n[1] = 0\n… (99998 more lines)"
        );
    }

    #[test]
    fn describe_arguments_bounds_long_keys() {
        let key = "k".repeat(50);
        let args = json!({ "x": { key: 1 } });
        assert_eq!(
            describe_arguments(&args, 3, 100),
            "x[\"kkk… (47 more characters)\"] = 1"
        );
    }
}
