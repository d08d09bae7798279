//! The canonical form of a call's arguments, and its SHA-256 digest.
//!
//! An approval covers the exact call that was shown: the tool and a digest of its arguments.
//! Two argument texts that the server reads the same must get the same digest, and two it reads
//! differently must not. The arguments passed strict validation (no duplicate keys, no
//! ambiguous escapes), so one reading exists; the canonical form writes that reading one way:
//! object members sorted by their decoded key, strings decoded and written with
//! [`json::write_str`], numbers exactly as sent (never through a float, which would make
//! `12345678901234567890` and `12345678901234567891` one value), no whitespace.

use sha2::{Digest as _, Sha256};

use crate::json::{self, Kind};

/// The digest of `arguments` (raw, validated JSON; `None` when the call had none, which the
/// server reads as an empty object).
pub fn arguments_digest(arguments: Option<&[u8]>) -> [u8; 32] {
    let mut canonical = Vec::new();
    match arguments {
        Some(value) => write_canonical(value, &mut canonical),
        None => canonical.extend_from_slice(b"{}"),
    }
    Sha256::digest(&canonical).into()
}

/// Lowercase hex of a digest, for records and logs.
pub fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Appends the canonical form of the validated JSON `value` to `out`.
pub fn write_canonical(value: &[u8], out: &mut Vec<u8>) {
    match json::kind(value) {
        Kind::Object => {
            let mut members: Vec<_> = json::members(value).collect();
            members.sort_by(|a, b| a.0.cmp(&b.0));
            out.push(b'{');
            for (i, (key, member)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                json::write_str(out, key);
                out.push(b':');
                write_canonical(member, out);
            }
            out.push(b'}');
        }
        Kind::Array => {
            out.push(b'[');
            for (i, element) in json::elements(value).enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(element, out);
            }
            out.push(b']');
        }
        Kind::String => match json::as_str(value) {
            Some(text) => json::write_str(out, &text),
            None => out.extend_from_slice(value.trim_ascii()),
        },
        _ => out.extend_from_slice(value.trim_ascii()),
    }
}

/// The arguments as a `serde_json::Value` that holds exactly what was sent, for the views a
/// person or an auditor reads (the approval question, the approval command's input, the audit
/// record); or why there is none. A `Value` cannot hold every number JSON can write: an integer
/// beyond 64 bits becomes a float that lost digits, one of 400 digits does not parse at all. Such
/// arguments are never shown as something else: the caller refuses or says so.
pub fn faithful_value(arguments: Option<&[u8]>) -> Result<serde_json::Value, String> {
    let Some(raw) = arguments else {
        return Ok(serde_json::Value::Object(Default::default()));
    };
    let unshowable = || {
        "the arguments hold a number that cannot be shown exactly as sent (too large or too \
         precise for a 64-bit integer or float)"
            .to_owned()
    };
    let value: serde_json::Value = serde_json::from_slice(raw).map_err(|_| unshowable())?;
    let mut sent = Vec::with_capacity(raw.len());
    write_canonical(raw, &mut sent);
    let shown = serde_json::to_vec(&value).map_err(|_| unshowable())?;
    let mut read = Vec::with_capacity(shown.len());
    write_canonical(&shown, &mut read);
    if sent != read {
        return Err(unshowable());
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(text: &str) -> String {
        json::validate(text.as_bytes()).expect("valid test input");
        let mut out = Vec::new();
        write_canonical(text.as_bytes(), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn views_hold_what_was_sent_or_nothing() {
        let big = "9".repeat(400);
        for (raw, exact) in [
            (r#"{"a":1,"b":[true,null,"x"],"c":-2.5}"#.to_owned(), true),
            (r#"{"n":18446744073709551615}"#.to_owned(), true),
            (r#"{"n":-9223372036854775808}"#.to_owned(), true),
            (
                format!(r#"{{"command":"SET","args":["k","pwned"],"n":{big}}}"#),
                false,
            ),
            (r#"{"n":123456789012345678901234567890}"#.to_owned(), false),
            (r#"{"n":0.1000000000000000000000000001}"#.to_owned(), false),
        ] {
            json::validate(raw.as_bytes()).expect("valid test input");
            assert_eq!(faithful_value(Some(raw.as_bytes())).is_ok(), exact, "{raw}");
        }
    }

    #[test]
    fn one_reading_one_form() {
        for (a, b) in [
            (r#"{"b":1,"a":2}"#, r#"{ "a" : 2 , "b" : 1 }"#),
            (r#"{"k":"\u0041"}"#, r#"{"k":"A"}"#),
            (r#"{"\u006b":"x"}"#, r#"{"k":"x"}"#),
            (r#"[1, {"y":[],"x":null}]"#, r#"[1,{"x":null,"y":[]}]"#),
        ] {
            assert_eq!(canonical(a), canonical(b), "{a} vs {b}");
        }
    }

    #[test]
    fn different_readings_differ() {
        for (a, b) in [
            (
                r#"{"n":12345678901234567890}"#,
                r#"{"n":12345678901234567891}"#,
            ),
            (r#"{"k":"DEL"}"#, r#"{"k":"del"}"#),
            (r#"{"k":"1"}"#, r#"{"k":1}"#),
            (r#"{"args":["a","b"]}"#, r#"{"args":["b","a"]}"#),
            (r#"{"k":"a\u0000"}"#, r#"{"k":"a"}"#),
        ] {
            assert_ne!(canonical(a), canonical(b), "{a} vs {b}");
        }
        assert_ne!(
            arguments_digest(Some(br#"{"k":1}"#)),
            arguments_digest(Some(br#"{"k":2}"#))
        );
        assert_eq!(arguments_digest(None), arguments_digest(Some(b"{}")));
    }
}
