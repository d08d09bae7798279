//! Message classification: what a validated JSON-RPC object is, by its content.
//!
//! Anything with a `method` is a request (with an `id`) or a notification (without), whatever
//! else it carries; anything else with an `id` and a `result` or `error` is a response. Keys that
//! a lenient reader could take for a protocol key (the same letters in another case, or with
//! trailing NULs) are refused here, at the envelope and in `params`, because one reader would act
//! on them and another would not.

use std::borrow::Cow;
use std::fmt;

use crate::json::{self, Kind};

/// A request id, as JSON-RPC compares them: an integer or a string.
///
/// Every integer has exactly one form, so equal ids compare equal: one that fits in a `u64` is
/// [`RequestId::Small`] (the common case, which allocates nothing), any other is
/// [`RequestId::Int`] with its JSON text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RequestId {
    Small(u64),
    /// A negative integer, or one beyond `u64`: its JSON text, exactly as sent, so integers of
    /// any size keep their value.
    Int(Box<str>),
    Str(Box<str>),
}

impl RequestId {
    /// Reads an id from its JSON value; `None` unless it is a string or an integer.
    pub fn from_json(raw: &[u8]) -> Option<RequestId> {
        // Most ids are small integers: up to 19 digits always fit a `u64`.
        if (1..=19).contains(&raw.len()) && raw.iter().all(u8::is_ascii_digit) {
            let n = raw
                .iter()
                .fold(0, |n: u64, digit| n * 10 + u64::from(digit - b'0'));
            return Some(RequestId::Small(n));
        }
        match json::kind(raw) {
            Kind::String => json::as_str(raw).map(|s| RequestId::Str(s.into())),
            Kind::Number if !raw.iter().any(|b| matches!(b, b'.' | b'e' | b'E')) => {
                let text = std::str::from_utf8(raw).ok()?;
                // -0 and 0 are the same id.
                let text = if text == "-0" { "0" } else { text };
                Some(match text.parse::<u64>() {
                    Ok(n) => RequestId::Small(n),
                    Err(_) => RequestId::Int(text.into()),
                })
            }
            _ => None,
        }
    }

    pub fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            RequestId::Small(n) => {
                use std::io::Write as _;
                let _ = write!(out, "{n}");
            }
            RequestId::Int(digits) => out.extend_from_slice(digits.as_bytes()),
            RequestId::Str(s) => json::write_str(out, s),
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_json(&mut out);
        out
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestId::Small(n) => write!(f, "{n}"),
            RequestId::Int(digits) => f.write_str(digits),
            RequestId::Str(s) => write!(f, "{s:?}"),
        }
    }
}

/// The members of a JSON-RPC envelope, as raw JSON values.
#[derive(Debug, Default, Clone, Copy)]
pub struct Envelope<'a> {
    pub jsonrpc: Option<&'a [u8]>,
    pub id: Option<&'a [u8]>,
    pub method: Option<&'a [u8]>,
    pub params: Option<&'a [u8]>,
    pub result: Option<&'a [u8]>,
    pub error: Option<&'a [u8]>,
}

/// One classified message. The raw slices point into the line it came from.
#[derive(Debug, Clone)]
pub enum Message<'a> {
    Request {
        id: RequestId,
        method: Cow<'a, str>,
        params: Option<&'a [u8]>,
        /// `params.name` and `params._meta`, found while the keys of `params` were checked, so
        /// that reading them later costs no second walk over `params`.
        name: Option<&'a [u8]>,
        meta: Option<&'a [u8]>,
    },
    Notification {
        method: Cow<'a, str>,
        params: Option<&'a [u8]>,
        name: Option<&'a [u8]>,
        meta: Option<&'a [u8]>,
    },
    Response {
        id: RequestId,
        /// The raw id value, to be replaced when ids are remapped.
        id_raw: &'a [u8],
        result: Option<&'a [u8]>,
        error: Option<&'a [u8]>,
    },
}

/// Why a JSON object is not a valid JSON-RPC message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The raw `id` to answer under, when the message has a usable one.
    pub id: Option<RequestId>,
    pub reason: String,
}

impl Invalid {
    fn new(id: Option<RequestId>, reason: impl Into<String>) -> Invalid {
        Invalid {
            id,
            reason: reason.into(),
        }
    }
}

/// Keys of the JSON-RPC envelope.
const ENVELOPE_KEYS: &[&str] = &["jsonrpc", "id", "method", "params", "result", "error"];

/// Keys MCP gives meaning to inside `params` (and `params._meta`); a near-miss of one of these
/// is refused.
const PARAMS_KEYS: &[&str] = &[
    "name",
    "arguments",
    "_meta",
    "task",
    "cursor",
    "requestId",
    "reason",
    "progressToken",
    "progress",
    "total",
    "message",
    "protocolVersion",
    "capabilities",
    "clientInfo",
    "uri",
    "level",
    "ref",
    "argument",
    "inputResponses",
    "requestState",
    "io.modelcontextprotocol/protocolVersion",
    "io.modelcontextprotocol/clientCapabilities",
    "io.modelcontextprotocol/clientInfo",
];

/// The protocol key that `key` imitates without being it, if any: the same text after folding
/// case (including the long s and the Kelvin sign) and dropping trailing NULs.
fn imitated_key(key: &str, known: &'static [&'static str]) -> Option<&'static str> {
    if known.contains(&key) {
        return None;
    }
    // The protocol keys are ASCII, so an ASCII key is compared as it is, with no allocation;
    // only a key with other characters (the long s, the Kelvin sign) needs folding first.
    let trimmed = key.trim_end_matches('\0');
    let folded: Cow<'_, str> = if trimmed.is_ascii() {
        Cow::Borrowed(trimmed)
    } else {
        trimmed
            .chars()
            .map(|c| if c == '\u{17f}' { 's' } else { c })
            .flat_map(char::to_lowercase)
            .collect::<String>()
            .into()
    };
    known
        .iter()
        .find(|k| k.eq_ignore_ascii_case(&folded))
        .copied()
}

/// Refuses an object whose keys imitate protocol keys.
fn check_keys(object: &[u8], known: &'static [&'static str], where_: &str) -> Result<(), String> {
    for (key, _) in json::members(object) {
        if let Some(real) = imitated_key(&key, known) {
            return Err(format!(
                "{where_} key {key:?} imitates the protocol key {real:?}; keys are case-sensitive"
            ));
        }
    }
    Ok(())
}

/// The members of `params` that the proxy reads, as raw JSON values.
#[derive(Debug, Default, Clone, Copy)]
struct ParamsRead<'a> {
    name: Option<&'a [u8]>,
    meta: Option<&'a [u8]>,
}

/// Refuses `params` if its keys imitate protocol keys, in one walk that also finds `name` and
/// `_meta`, whose keys are checked too.
fn check_params(params: &[u8]) -> Result<ParamsRead<'_>, String> {
    let mut read = ParamsRead::default();
    for (key, value) in json::members(params) {
        if key == "name" {
            read.name = Some(value);
        } else if key == "_meta" {
            read.meta = Some(value);
        } else if let Some(real) = imitated_key(&key, PARAMS_KEYS) {
            return Err(format!(
                "params key {key:?} imitates the protocol key {real:?}; keys are case-sensitive"
            ));
        }
    }
    if let Some(meta) = read.meta {
        check_keys(meta, PARAMS_KEYS, "params._meta")?;
    }
    Ok(read)
}

/// Reads the envelope from the members of a validated object ([`json::members`], or
/// [`json::Outline::members`]).
pub fn envelope<'a>(
    members: impl Iterator<Item = (Cow<'a, str>, &'a [u8])>,
) -> Result<Envelope<'a>, String> {
    let mut env = Envelope::default();
    for (key, value) in members {
        let slot = match key.as_ref() {
            "jsonrpc" => &mut env.jsonrpc,
            "id" => &mut env.id,
            "method" => &mut env.method,
            "params" => &mut env.params,
            "result" => &mut env.result,
            "error" => &mut env.error,
            other => {
                if let Some(real) = imitated_key(other, ENVELOPE_KEYS) {
                    return Err(format!(
                        "key {other:?} imitates the protocol key {real:?}; keys are case-sensitive"
                    ));
                }
                continue;
            }
        };
        *slot = Some(value);
    }
    Ok(env)
}

/// Classifies a validated JSON object as a JSON-RPC message.
pub fn classify(object: &[u8]) -> Result<Message<'_>, Invalid> {
    classify_members(json::members(object))
}

/// [`classify`] for a line with the outline [`json::validate`] returned for it, which saves
/// walking the line again.
pub fn classify_outlined<'a>(
    line: &'a [u8],
    outline: &json::Outline,
) -> Result<Message<'a>, Invalid> {
    classify_members(outline.members(line))
}

fn classify_members<'a>(
    members: impl Iterator<Item = (Cow<'a, str>, &'a [u8])>,
) -> Result<Message<'a>, Invalid> {
    let env = envelope(members).map_err(|reason| Invalid::new(None, reason))?;
    let id = match env.id {
        None => None,
        Some(raw) => match RequestId::from_json(raw) {
            Some(id) => Some(id),
            None => {
                return Err(Invalid::new(
                    None,
                    format!(
                        "the id must be a string or an integer, not {}",
                        String::from_utf8_lossy(raw)
                    ),
                ));
            }
        },
    };
    if env.jsonrpc.and_then(json::as_str).as_deref() != Some("2.0") {
        return Err(Invalid::new(id, "\"jsonrpc\" must be \"2.0\""));
    }
    if let Some(raw_method) = env.method {
        let Some(method) = json::as_str(raw_method) else {
            return Err(Invalid::new(id, "\"method\" must be a string"));
        };
        let mut read = ParamsRead::default();
        if let Some(params) = env.params {
            if json::kind(params) != Kind::Object {
                return Err(Invalid::new(id, "\"params\" must be an object"));
            }
            read = check_params(params).map_err(|r| Invalid::new(id.clone(), r))?;
        }
        let ParamsRead { name, meta } = read;
        return Ok(match id {
            Some(id) => Message::Request {
                id,
                method,
                params: env.params,
                name,
                meta,
            },
            None => Message::Notification {
                method,
                params: env.params,
                name,
                meta,
            },
        });
    }
    let (Some(id), Some(id_raw)) = (id, env.id) else {
        return Err(Invalid::new(
            None,
            "a message needs a \"method\" (request or notification) or an \"id\" with a \"result\" or \"error\" (response)",
        ));
    };
    match (env.result, env.error) {
        (Some(_), Some(_)) | (None, None) => Err(Invalid::new(
            Some(id),
            "a response needs exactly one of \"result\" and \"error\"",
        )),
        (result, error) => Ok(Message::Response {
            id,
            id_raw,
            result,
            error,
        }),
    }
}

/// The tool a `tools/call` names: `params.name` (see [`Message::Request`]'s `name`) as a string.
pub fn tool_name(name: Option<&[u8]>) -> Option<Cow<'_, str>> {
    name.and_then(json::as_str)
}

/// `progressToken` in a request's `params._meta` (see [`Message::Request`]'s `meta`).
pub fn progress_token(meta: Option<&[u8]>) -> Option<RequestId> {
    meta.and_then(|m| json::get(m, "progressToken"))
        .and_then(RequestId::from_json)
}

/// The 2026-07-28 protocol version a request names in its own `params._meta`, if any.
pub fn request_protocol_version(meta: Option<&[u8]>) -> Option<Cow<'_, str>> {
    meta.and_then(|m| json::get(m, "io.modelcontextprotocol/protocolVersion"))
        .and_then(json::as_str)
}

/// The request id of a line too long to be read whole, from its first and last bytes: a
/// top-level `"id"` member whose value is complete within `head`, or one that closes the object
/// at the end of `tail`. The line itself is never forwarded, so a wrong guess could only
/// misaddress an error; `None` when neither end shows an id.
pub fn id_at_edges(head: &[u8], tail: &[u8]) -> Option<RequestId> {
    id_at_start(head).or_else(|| id_at_end(tail))
}

fn id_at_start(head: &[u8]) -> Option<RequestId> {
    let (_, value) = json::members(head).find(|(key, _)| key == "id")?;
    // The value must end inside `head`, not be cut off by it (`12` of `1234`).
    if span_of(head, value).end >= head.len() {
        return None;
    }
    RequestId::from_json(value)
}

fn id_at_end(tail: &[u8]) -> Option<RequestId> {
    let rest = tail.trim_ascii_end().strip_suffix(b"}")?.trim_ascii_end();
    let value_start = if rest.ends_with(b"\"") {
        // The opening quote: the nearest one before the last that no backslash escapes.
        let mut end = rest.len() - 1;
        loop {
            let quote = rest[..end].iter().rposition(|&b| b == b'"')?;
            let backslashes = rest[..quote]
                .iter()
                .rev()
                .take_while(|&&b| b == b'\\')
                .count();
            if backslashes % 2 == 0 {
                break quote;
            }
            end = quote;
        }
    } else {
        rest.iter()
            .rposition(|&b| !(b.is_ascii_digit() || b == b'-'))
            .map_or(0, |p| p + 1)
    };
    let value = &rest[value_start..];
    let before = rest[..value_start]
        .trim_ascii_end()
        .strip_suffix(b":")?
        .trim_ascii_end()
        .strip_suffix(b"\"id\"")?
        .trim_ascii_end();
    if !(before.ends_with(b",") || before.ends_with(b"{")) {
        return None;
    }
    json::validate(value).ok()?;
    RequestId::from_json(value)
}

/// Where `inner` sits inside `outer`; `inner` must be a sub-slice of `outer`.
pub fn span_of(outer: &[u8], inner: &[u8]) -> std::ops::Range<usize> {
    let start = inner.as_ptr() as usize - outer.as_ptr() as usize;
    debug_assert!(start + inner.len() <= outer.len());
    start..start + inner.len()
}

/// A new line: `content` with the bytes of `inner` (a sub-slice of it) replaced by
/// `replacement`, and a newline. Everything else stays byte for byte.
pub fn splice_line(content: &[u8], inner: &[u8], replacement: &[u8]) -> Vec<u8> {
    let span = span_of(content, inner);
    let mut out = Vec::with_capacity(content.len() - span.len() + replacement.len() + 1);
    out.extend_from_slice(&content[..span.start]);
    out.extend_from_slice(replacement);
    out.extend_from_slice(&content[span.end..]);
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind_of(line: &str) -> String {
        json::validate(line.as_bytes()).expect("test lines are valid JSON");
        match classify(line.as_bytes()) {
            Ok(Message::Request { id, method, .. }) => format!("request {id} {method}"),
            Ok(Message::Notification { method, .. }) => format!("notification {method}"),
            Ok(Message::Response { id, .. }) => format!("response {id}"),
            Err(invalid) => format!(
                "invalid {}: {}",
                invalid.id.map(|i| i.to_string()).unwrap_or_default(),
                invalid.reason
            ),
        }
    }

    #[test]
    fn classifies_by_content() {
        let cases = [
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}"#,
                "request 1 tools/call",
            ),
            (
                r#"{"jsonrpc":"2.0","id":"a","method":"ping"}"#,
                r#"request "a" ping"#,
            ),
            (
                r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
                "notification notifications/initialized",
            ),
            (r#"{"jsonrpc":"2.0","id":7,"result":{}}"#, "response 7"),
            (
                r#"{"jsonrpc":"2.0","id":7,"error":{"code":1,"message":"m"}}"#,
                "response 7",
            ),
            // A method makes it a request whatever else it carries.
            (
                r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","result":{},"params":{"name":"x"}}"#,
                "request 2 tools/call",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1180591620717411303424,"method":"ping"}"#,
                "request 1180591620717411303424 ping",
            ),
            (
                r#"{"jsonrpc":"2.0","id":-0,"method":"ping"}"#,
                "request 0 ping",
            ),
            (
                r#"{"jsonrpc":"2.0","id":"\u0061","method":"ping"}"#,
                r#"request "a" ping"#,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"x","extra":true}"#,
                "request 1 x",
            ),
        ];
        for (line, expected) in cases {
            assert_eq!(kind_of(line), expected, "{line}");
        }
    }

    #[test]
    fn refuses_what_a_lenient_reader_could_read_otherwise() {
        let cases = [
            (
                r#"{"jsonrpc":"2.0","id":1.0,"method":"ping"}"#,
                "invalid : the id must be a string or an integer, not 1.0",
            ),
            (
                r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
                "invalid : the id must be a string or an integer, not null",
            ),
            (
                r#"{"jsonrpc":"2.0","id":true,"method":"ping"}"#,
                "invalid : the id must be a string or an integer, not true",
            ),
            (
                r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
                "invalid 1: \"jsonrpc\" must be \"2.0\"",
            ),
            (
                r#"{"id":1,"method":"ping"}"#,
                "invalid 1: \"jsonrpc\" must be \"2.0\"",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":7}"#,
                "invalid 1: \"method\" must be a string",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","Method":"tools/call"}"#,
                "invalid : key \"Method\" imitates the protocol key \"method\"; keys are case-sensitive",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"x","method\u0000":"y"}"#,
                "invalid : key \"method\\0\" imitates the protocol key \"method\"; keys are case-sensitive",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","Name":"b"}}"#,
                "invalid 1: params key \"Name\" imitates the protocol key \"name\"; keys are case-sensitive",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","ta\u017fk":{}}}"#,
                "invalid 1: params key \"taſk\" imitates the protocol key \"task\"; keys are case-sensitive",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","tas\u212a":{}}}"#,
                "invalid 1: params key \"tasK\" imitates the protocol key \"task\"; keys are case-sensitive",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","_meta":{"ProgressToken":1}}}"#,
                "invalid 1: params._meta key \"ProgressToken\" imitates the protocol key \"progressToken\"; keys are case-sensitive",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":[1]}"#,
                "invalid 1: \"params\" must be an object",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1}"#,
                "invalid 1: a response needs exactly one of \"result\" and \"error\"",
            ),
            (
                r#"{"jsonrpc":"2.0","result":{}}"#,
                "invalid : a message needs a \"method\" (request or notification) or an \"id\" with a \"result\" or \"error\" (response)",
            ),
        ];
        for (line, expected) in cases {
            assert_eq!(kind_of(line), expected, "{line}");
        }
    }

    #[test]
    fn keys_inside_arguments_are_the_tool_s_own() {
        let line = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":{"Name":1,"NAME":2}}}"#;
        assert_eq!(kind_of(line), "request 1 tools/call");
    }

    #[test]
    fn reads_tool_name_progress_token_and_version() {
        let line = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"valkey_\u0077rite","_meta":{"progressToken":"p1","io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
        json::validate(line).unwrap();
        let Ok(Message::Request { name, meta, .. }) = classify(line) else {
            panic!("not a request")
        };
        assert_eq!(tool_name(name).as_deref(), Some("valkey_write"));
        assert_eq!(progress_token(meta), Some(RequestId::Str("p1".into())));
        assert_eq!(
            request_protocol_version(meta).as_deref(),
            Some("2026-07-28")
        );
    }

    #[test]
    fn ids_have_one_form_each() {
        let cases: &[(&str, Option<RequestId>)] = &[
            ("0", Some(RequestId::Small(0))),
            ("-0", Some(RequestId::Small(0))),
            ("7", Some(RequestId::Small(7))),
            (
                "9999999999999999999",
                Some(RequestId::Small(9_999_999_999_999_999_999)),
            ),
            ("18446744073709551615", Some(RequestId::Small(u64::MAX))),
            (
                "18446744073709551616",
                Some(RequestId::Int("18446744073709551616".into())),
            ),
            ("-3", Some(RequestId::Int("-3".into()))),
            (r#""7""#, Some(RequestId::Str("7".into()))),
            ("1.0", None),
            ("1e3", None),
            ("true", None),
            ("null", None),
        ];
        for (raw, expected) in cases {
            assert_eq!(&RequestId::from_json(raw.as_bytes()), expected, "{raw}");
        }
    }

    #[test]
    fn reads_the_id_of_an_over_long_line_from_either_end() {
        let pad = "x".repeat(100);
        let cases: &[(&str, &str, Option<RequestId>)] = &[
            // The Python SDK writes the id first, the TS SDK last.
            (
                r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"a":""#,
                "",
                Some(RequestId::Small(7)),
            ),
            (
                "",
                r#"xx"}},"jsonrpc":"2.0","id":"req-9"}"#,
                Some(RequestId::Str("req-9".into())),
            ),
            (
                "",
                "xx\"}} , \"id\" : -3 }\r",
                Some(RequestId::Int("-3".into())),
            ),
            (
                "",
                r#"x\"}},"id":"a\"b"}"#,
                Some(RequestId::Str("a\"b".into())),
            ),
            // Cut off in the middle of the id: not read.
            (r#"{"jsonrpc":"2.0","id":12"#, "", None),
            // An "id" deeper down is not the request's.
            ("", r#"x","arguments":{"id":5}}}"#, None),
            (r#"{"params":{"id":5,"#, r#"xx"}}"#, None),
            ("", r#"x"}},"id":1.5}"#, None),
            ("", "no id here", None),
        ];
        for (head, tail, expected) in cases {
            let head = if head.is_empty() {
                format!("{{\"params\":\"{pad}")
            } else {
                head.to_string()
            };
            assert_eq!(
                &id_at_edges(head.as_bytes(), tail.as_bytes()),
                expected,
                "{head} ... {tail}"
            );
        }
    }

    #[test]
    fn splice_replaces_one_value_and_keeps_the_rest() {
        let line = br#"{"jsonrpc":"2.0","id":"x-1","method":"roots/list"}"#;
        json::validate(line).unwrap();
        let env = envelope(json::members(line)).unwrap();
        let out = splice_line(line, env.id.unwrap(), b"42");
        assert_eq!(
            out,
            b"{\"jsonrpc\":\"2.0\",\"id\":42,\"method\":\"roots/list\"}\n"
        );
    }
}
