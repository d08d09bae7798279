//! The bypass invariant, as a property: whatever the proxy forwards to the child, every lenient
//! reader reads as the very message the proxy judged, so a refused call can never reach the
//! child in disguise.
//!
//! Adversarial client lines (duplicate keys, keys that differ by case, escapes or a trailing NUL,
//! NaN and out-of-range numbers, bare CRs, invalid UTF-8, byte-order marks, trailing data,
//! batches) go through the real framing and the real session in random chunkings. Each line the
//! session forwards is then read the way lenient servers read: split at CR as well as LF, the
//! last duplicate key winning, NaN accepted, invalid UTF-8 replaced, and keys matched without
//! regard to case or trailing NULs. Every reading must be one message, equal to the strict
//! reading, and never a call to a tool the policy refuses.

use std::collections::BTreeMap;
use std::time::Instant;

use mcp_policy_proxy::config::Config;
use mcp_policy_proxy::framing::{Frame, LineReader};
use mcp_policy_proxy::policy::Policy;
use mcp_policy_proxy::session::{Effect, Session};
use proptest::prelude::*;
use serde_json::Value;

const POLICY: &str = r#"
[policy]
default = "deny"
[[rules]]
tool = "valkey_read"
action = "allow"
[[rules]]
tool = "valkey_write"
action = "deny"
"#;

/// The only tool the policy lets through.
const ALLOWED: &str = "valkey_read";

// ---------------------------------------------------------------------------------------------
// A lenient reader, modelled on the Python SDK server (json.loads after universal-newline
// splitting, errors="replace") and on Go's encoding/json key matching.

#[derive(Debug, Clone, PartialEq)]
enum Lenient {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Lenient>),
    /// Members in order, duplicates kept.
    Obj(Vec<(String, Lenient)>),
}

struct LenientParser<'a> {
    s: &'a [char],
    i: usize,
}

impl LenientParser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], ' ' | '\t' | '\n' | '\r') {
            self.i += 1;
        }
    }

    fn eat(&mut self, text: &str) -> bool {
        let chars: Vec<char> = text.chars().collect();
        if self.s[self.i..].starts_with(&chars) {
            self.i += chars.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Option<Lenient> {
        if depth > 200 {
            return None;
        }
        self.ws();
        let c = *self.s.get(self.i)?;
        match c {
            '{' => {
                self.i += 1;
                let mut members = Vec::new();
                self.ws();
                if self.eat("}") {
                    return Some(Lenient::Obj(members));
                }
                loop {
                    self.ws();
                    let Lenient::Str(key) = self.string()? else {
                        return None;
                    };
                    self.ws();
                    if !self.eat(":") {
                        return None;
                    }
                    let value = self.value(depth + 1)?;
                    members.push((key, value));
                    self.ws();
                    if self.eat(",") {
                        continue;
                    }
                    if self.eat("}") {
                        return Some(Lenient::Obj(members));
                    }
                    return None;
                }
            }
            '[' => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.eat("]") {
                    return Some(Lenient::Arr(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    self.ws();
                    if self.eat(",") {
                        continue;
                    }
                    if self.eat("]") {
                        return Some(Lenient::Arr(items));
                    }
                    return None;
                }
            }
            '"' => self.string(),
            _ => {
                for (word, value) in [
                    ("true", Lenient::Bool(true)),
                    ("false", Lenient::Bool(false)),
                    ("null", Lenient::Null),
                    ("NaN", Lenient::Num(f64::NAN)),
                    ("Infinity", Lenient::Num(f64::INFINITY)),
                    ("-Infinity", Lenient::Num(f64::NEG_INFINITY)),
                ] {
                    if self.eat(word) {
                        return Some(value);
                    }
                }
                let start = self.i;
                while self.i < self.s.len() && "+-0123456789.eE".contains(self.s[self.i]) {
                    self.i += 1;
                }
                let text: String = self.s[start..self.i].iter().collect();
                text.parse::<f64>().ok().map(Lenient::Num)
            }
        }
    }

    fn string(&mut self) -> Option<Lenient> {
        if !self.eat("\"") {
            return None;
        }
        let mut out = String::new();
        loop {
            let c = *self.s.get(self.i)?;
            self.i += 1;
            match c {
                '"' => return Some(Lenient::Str(out)),
                '\\' => {
                    let e = *self.s.get(self.i)?;
                    self.i += 1;
                    match e {
                        'n' => out.push('\n'),
                        't' => out.push('\t'),
                        'r' => out.push('\r'),
                        'b' => out.push('\u{8}'),
                        'f' => out.push('\u{c}'),
                        'u' => {
                            let hex: String = self.s.get(self.i..self.i + 4)?.iter().collect();
                            self.i += 4;
                            let unit = u32::from_str_radix(&hex, 16).ok()?;
                            // Lone surrogates become U+FFFD rather than failing.
                            out.push(char::from_u32(unit).unwrap_or('\u{fffd}'));
                        }
                        other => out.push(other),
                    }
                }
                other => out.push(other),
            }
        }
    }
}

/// Reads one segment leniently; `None` if even a lenient reader gives up.
fn lenient_parse(segment: &str) -> Option<Lenient> {
    let chars: Vec<char> = segment.chars().collect();
    let mut parser = LenientParser { s: &chars, i: 0 };
    let value = parser.value(0)?;
    parser.ws();
    (parser.i == chars.len()).then_some(value)
}

/// How a lenient reader finds a member.
#[derive(Debug, Clone, Copy)]
enum KeyMatch {
    /// Python: exact key, last duplicate wins.
    Exact,
    /// Go's encoding/json before 2026: exact or case-insensitive (with the long s and Kelvin
    /// sign folded), last wins.
    CaseInsensitive,
    /// segmentio's parser: trailing NULs ignored.
    TrailingNul,
}

fn fold(key: &str, how: KeyMatch) -> String {
    match how {
        KeyMatch::Exact => key.to_string(),
        KeyMatch::CaseInsensitive => key
            .chars()
            .map(|c| match c {
                '\u{17f}' => 's',
                '\u{212a}' => 'k',
                c => c,
            })
            .flat_map(char::to_lowercase)
            .collect(),
        KeyMatch::TrailingNul => key.trim_end_matches('\0').to_string(),
    }
}

fn member<'v>(value: &'v Lenient, key: &str, how: KeyMatch) -> Option<&'v Lenient> {
    let Lenient::Obj(members) = value else {
        return None;
    };
    let wanted = fold(key, how);
    members
        .iter()
        .rev()
        .find(|(k, _)| fold(k, how) == wanted)
        .map(|(_, v)| v)
}

fn text(value: Option<&Lenient>) -> Option<&str> {
    match value {
        Some(Lenient::Str(s)) => Some(s),
        _ => None,
    }
}

/// Converts a lenient reading to serde_json's model (last duplicate wins), to compare it with
/// the strict reading.
fn to_json(value: &Lenient) -> Option<Value> {
    Some(match value {
        Lenient::Null => Value::Null,
        Lenient::Bool(b) => Value::Bool(*b),
        Lenient::Num(n) => Value::from(serde_json::Number::from_f64(*n)?.as_f64()?),
        Lenient::Str(s) => Value::String(s.clone()),
        Lenient::Arr(items) => Value::Array(items.iter().map(to_json).collect::<Option<_>>()?),
        Lenient::Obj(members) => {
            let mut map = BTreeMap::new();
            for (k, v) in members {
                map.insert(k.clone(), to_json(v)?);
            }
            Value::Object(map.into_iter().collect())
        }
    })
}

/// serde_json's numbers, all as f64, so the two readings compare like for like.
fn numbers_as_f64(value: &Value) -> Value {
    match value {
        Value::Number(n) => Value::from(n.as_f64().unwrap_or(f64::NAN)),
        Value::Array(items) => Value::Array(items.iter().map(numbers_as_f64).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), numbers_as_f64(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// What a lenient reader of this forwarded line would execute: the tool names of the
/// `tools/call`s it sees, under each way of matching keys. Fails if the line does not read as
/// exactly one message equal to the strict reading.
fn lenient_calls(line: &[u8]) -> Result<Vec<String>, String> {
    let text_form = String::from_utf8_lossy(line);
    let segments: Vec<&str> = text_form
        .split(['\r', '\n'])
        .filter(|s| !s.trim().is_empty())
        .collect();
    if segments.len() != 1 {
        return Err(format!("{} messages for a lenient reader", segments.len()));
    }
    let reading = lenient_parse(segments[0]).ok_or("a lenient reader cannot read it")?;
    let strict: Value =
        serde_json::from_slice(line).map_err(|e| format!("not strict JSON: {e}"))?;
    if to_json(&reading).map(|v| numbers_as_f64(&v)) != Some(numbers_as_f64(&strict)) {
        return Err("a lenient reader reads another message".into());
    }
    let mut calls = Vec::new();
    let messages = match &reading {
        Lenient::Arr(items) => items.iter().collect(),
        single => vec![single],
    };
    for message in messages {
        for how in [
            KeyMatch::Exact,
            KeyMatch::CaseInsensitive,
            KeyMatch::TrailingNul,
        ] {
            if text(member(message, "method", how)) == Some("tools/call") {
                let params = member(message, "params", how);
                let name = params.and_then(|p| text(member(p, "name", how)));
                calls.push(name.unwrap_or("<no name>").to_string());
            }
        }
    }
    Ok(calls)
}

// ---------------------------------------------------------------------------------------------
// Adversarial client lines.

fn key(name: &'static str) -> impl Strategy<Value = String> {
    let escaped: String = name
        .chars()
        .map(|c| format!("\\u{:04x}", c as u32))
        .collect();
    let mut upper = name.to_string();
    upper[..1].make_ascii_uppercase();
    prop_oneof![
        12 => Just(name.to_string()),
        1 => Just(escaped),
        1 => Just(upper),
        1 => Just(name.to_uppercase()),
        1 => Just(format!("{name}\\u0000")),
    ]
}

fn tool() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => Just("valkey_read".to_string()),
        2 => Just("valkey_write".to_string()),
        1 => Just("valkey_\\u0077rite".to_string()),
        1 => Just("Valkey_read".to_string()),
        1 => Just("valkey_read\\u0000".to_string()),
        1 => Just("CreateCodeConnection".to_string()),
    ]
}

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("1".to_string()),
        Just("NaN".to_string()),
        Just("Infinity".to_string()),
        Just("1e400".to_string()),
        Just("-0.5".to_string()),
        Just("1180591620717411303424".to_string()),
    ]
}

fn id() -> impl Strategy<Value = String> {
    prop_oneof![
        10 => (0u32..50).prop_map(|n| n.to_string()),
        1 => Just("\"a\"".to_string()),
        1 => Just("1.5".to_string()),
        1 => Just("null".to_string()),
        1 => Just("true".to_string()),
    ]
}

fn method() -> impl Strategy<Value = (String, &'static str)> {
    (
        key("method"),
        prop_oneof![6 => Just("tools/call"), 1 => Just("tools/list"), 1 => Just("ping")],
    )
}

fn message() -> impl Strategy<Value = String> {
    let params = (
        prop_oneof![
            3 => prop::collection::vec((key("name"), tool()), 1..2),
            1 => prop::collection::vec((key("name"), tool()), 2..4),
        ],
        prop::option::of(number()),
        any::<bool>(),
    )
        .prop_map(|(names, extra, task)| {
            let mut members: Vec<String> = names
                .into_iter()
                .map(|(k, t)| format!("\"{k}\":\"{t}\""))
                .collect();
            members.push(r#""arguments":{"command":"GET","args":["k"]}"#.to_string());
            if let Some(n) = extra {
                members.push(format!("\"x\":{n}"));
            }
            if task {
                members.push(r#""task":{"ttl":1000}"#.to_string());
            }
            format!("{{{}}}", members.join(","))
        });
    (
        prop_oneof![
            3 => prop::collection::vec(method(), 1..2),
            1 => prop::collection::vec(method(), 2..4),
        ],
        prop::option::of(id()),
        params,
        key("params"),
        any::<bool>(),
    )
        .prop_map(|(methods, id, params, params_key, with_result)| {
            let mut members = vec![r#""jsonrpc":"2.0""#.to_string()];
            if let Some(id) = id {
                members.push(format!("\"id\":{id}"));
            }
            for (k, m) in methods {
                members.push(format!("\"{k}\":\"{m}\""));
            }
            members.push(format!("\"{params_key}\":{params}"));
            if with_result {
                members.push(r#""result":{}"#.to_string());
            }
            format!("{{{}}}", members.join(","))
        })
}

/// A message, or a batch, with byte-level damage.
fn line() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(message(), 1..3),
        any::<bool>(),
        prop_oneof![
            2 => Just(Vec::new()),
            3 => prop::collection::vec((any::<prop::sample::Index>(), 0u8..6), 1..3),
        ],
    )
        .prop_map(|(messages, batch, damage)| {
            let mut bytes = if batch || messages.len() > 1 {
                format!("[{}]", messages.join(",")).into_bytes()
            } else {
                messages[0].clone().into_bytes()
            };
            for (at, kind) in damage {
                let at = at.index(bytes.len() + 1);
                match kind {
                    0 => bytes.insert(at, b'\r'),
                    1 => bytes.insert(at, 0xff),
                    2 => bytes.splice(0..0, [0xef, 0xbb, 0xbf]).for_each(drop),
                    3 => bytes.extend_from_slice(br#"{"jsonrpc":"2.0","id":99,"method":"tools/call","params":{"name":"valkey_write"}}"#),
                    4 => bytes.insert(at, b' '),
                    _ => bytes.insert(at, b'\t'),
                }
            }
            bytes
        })
}

/// Everything the session sends to the child for these client bytes, read in `chunk`-byte
/// pieces through the real framing.
fn forwarded(session: &mut Session, input: &[u8], chunk: usize) -> Vec<Vec<u8>> {
    /// Hands out its bytes `chunk` at a time, as a pipe may.
    struct Chunked<'a> {
        data: &'a [u8],
        chunk: usize,
    }
    impl std::io::Read for Chunked<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.chunk.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }
    let mut reader = LineReader::new(
        Chunked {
            data: input,
            chunk: chunk.max(1),
        },
        1 << 20,
    );
    let mut out = Vec::new();
    while let Frame::Line(line) = reader.read_frame().unwrap() {
        let mut outs = Vec::new();
        session.on_client_line(line, Instant::now(), &mut outs);
        for o in outs {
            if let Effect::Child { line, .. } = o {
                out.push(line.into_owned());
            }
        }
    }
    out
}

fn session(protocol: &str) -> Session {
    let config = Config::parse(POLICY).unwrap();
    let mut session = Session::new(Policy::new(&config).unwrap(), config.policy.violation);
    // A handshake, so batches are split under 2025-03-26 and refused otherwise.
    let mut outs = Vec::new();
    session.on_client_line(
        br#"{"jsonrpc":"2.0","id":"init","method":"initialize","params":{}}
"#,
        Instant::now(),
        &mut outs,
    );
    let answer = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":\"init\",\"result\":{{\"protocolVersion\":\"{protocol}\"}}}}\n"
    );
    let mut outs = Vec::new();
    session.on_child_line(answer.as_bytes(), &mut outs);
    session
}

/// Checks every forwarded line; returns how many refused calls the input tried to smuggle, and
/// how many allowed calls were forwarded.
fn check(protocol: &str, lines: &[Vec<u8>], chunk: usize) -> Result<(usize, usize), TestCaseError> {
    let mut allowed_forwarded = 0;
    let mut input = Vec::new();
    let mut attempts = 0;
    for line in lines {
        input.extend_from_slice(line);
        input.push(b'\n');
        // Count the input lines that some lenient reader would take as a refused call.
        let text_form = String::from_utf8_lossy(line);
        for segment in text_form.split(['\r', '\n']) {
            if let Some(reading) = lenient_parse(segment) {
                let items = match &reading {
                    Lenient::Arr(items) => items.clone(),
                    single => vec![single.clone()],
                };
                for item in &items {
                    for how in [
                        KeyMatch::Exact,
                        KeyMatch::CaseInsensitive,
                        KeyMatch::TrailingNul,
                    ] {
                        if text(member(item, "method", how)) == Some("tools/call") {
                            let name = member(item, "params", how)
                                .and_then(|p| text(member(p, "name", how)));
                            if name != Some(ALLOWED) {
                                attempts += 1;
                            }
                        }
                    }
                }
            }
        }
    }
    let mut session = session(protocol);
    for line in forwarded(&mut session, &input, chunk) {
        prop_assert_eq!(line.last(), Some(&b'\n'));
        let body = &line[..line.len() - 1];
        match lenient_calls(body) {
            Ok(calls) => {
                allowed_forwarded += usize::from(!calls.is_empty());
                for call in calls {
                    prop_assert_eq!(
                        call.as_str(),
                        ALLOWED,
                        "a refused call reached the child: {}",
                        String::from_utf8_lossy(body)
                    );
                }
            }
            Err(why) => prop_assert!(
                false,
                "forwarded {:?}: {}",
                String::from_utf8_lossy(body),
                why
            ),
        }
    }
    Ok((attempts, allowed_forwarded))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn nothing_forwarded_can_be_read_as_a_refused_call(
        lines in prop::collection::vec(line(), 1..4),
        chunk in 1usize..64,
        protocol in prop_oneof![Just("2025-11-25"), Just("2025-03-26"), Just("2026-07-28")],
    ) {
        check(protocol, &lines, chunk)?;
    }
}

/// The property above is only as good as its generator: check that the generator does produce
/// smuggling attempts, and that the checker would catch a proxy that forwarded them.
#[test]
fn the_generator_produces_attacks_and_the_checker_sees_them() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut attempts, mut forwarded) = (0, 0);
    for _ in 0..300 {
        let lines = vec![line().new_tree(&mut runner).unwrap().current()];
        let (a, f) = check("2025-03-26", &lines, 7).unwrap();
        attempts += a;
        forwarded += f;
    }
    assert!(
        attempts > 100,
        "only {attempts} smuggling attempts generated"
    );
    // The generator also makes clean allowed calls, which must go through.
    assert!(forwarded > 10, "only {forwarded} allowed calls forwarded");

    // A proxy that forwarded this line as it is would be caught.
    let attack = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"valkey_read","Name":"valkey_write"}}"#;
    assert_eq!(
        lenient_calls(attack).unwrap(),
        ["valkey_read", "valkey_write", "valkey_read"]
    );
    let split = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\r{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"valkey_write\"}}";
    assert!(lenient_calls(split).is_err());
}
