use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

/// The `inputSchema` of the real Valkey server's `valkey_write`, as it lists it.
const WRITE_SCHEMA: &str = r#"{"properties": {"command": {"title": "Command", "type": "string"}, "args": {"anyOf": [{"items": {"type": "string"}, "type": "array"}, {"type": "null"}], "default": null, "title": "Args"}}, "required": ["command"], "type": "object"}"#;

fn test(path: &str, op: Op, ignore_case: bool, every: bool) -> Cond {
    Cond::Test(Box::new(Test::new(
        parse_path(path).unwrap(),
        op,
        ignore_case,
        every,
    )))
}

fn strs(items: &[&str]) -> Vec<Literal> {
    items
        .iter()
        .map(|s| Literal::Str((*s).to_owned()))
        .collect()
}

fn glob(pattern: &str, ignore_case: bool) -> Op {
    let source = if ignore_case {
        pattern.to_uppercase()
    } else {
        pattern.to_owned()
    };
    Op::Glob(
        globset::GlobBuilder::new(&source)
            .literal_separator(false)
            .build()
            .unwrap()
            .compile_matcher(),
        pattern.to_owned(),
    )
}

fn judge(cond: &Cond, arguments: &str, schema: Option<&str>) -> Holds {
    json::validate(arguments.as_bytes()).expect("test arguments are strict JSON");
    cond.holds(Some(arguments.as_bytes()), schema.map(str::as_bytes))
}

#[test]
fn paths_parse_and_refuse_nonsense() {
    let parsed = parse_path(r#"a.b[0].c[*]["odd.key"]"#).unwrap();
    assert_eq!(
        parsed.segments,
        [
            Segment::Member("a".into()),
            Segment::Member("b".into()),
            Segment::Index(0),
            Segment::Member("c".into()),
            Segment::Each,
            Segment::Member("odd.key".into()),
        ]
    );
    for bad in ["", ".a", "a.", "a..b", "a[", "a[x]", "a[0]b", "a[-1]"] {
        assert!(parse_path(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn operators_on_decoded_values() {
    let deny_delete = test(
        "command",
        Op::In(strs(&["DEL", "UNLINK", "FLUSHDB"])),
        true,
        false,
    );
    let prod_key = test("args[0]", glob("prod:*", false), false, false);
    let any_prod = test("args[*]", Op::Prefix("prod:".into()), false, false);
    let every_prod = test("args[*]", Op::Prefix("prod:".into()), false, true);
    let cases: &[(&Cond, &str, Holds)] = &[
        (
            &deny_delete,
            r#"{"command":"DEL","args":["k"]}"#,
            Holds::Yes,
        ),
        (&deny_delete, r#"{"command":"del"}"#, Holds::Yes),
        (&deny_delete, r#"{"command":"\u0044EL"}"#, Holds::Yes),
        // Python's str.upper(): the ligature fl becomes FL, the long s becomes S.
        (&deny_delete, "{\"command\":\"\u{FB02}ushdb\"}", Holds::Yes),
        (&deny_delete, "{\"command\":\"\u{17F}et\"}", Holds::No),
        (&deny_delete, r#"{"command":"SET"}"#, Holds::No),
        (&deny_delete, r#"{}"#, Holds::No),
        (&prod_key, r#"{"args":["prod:users"]}"#, Holds::Yes),
        (&prod_key, r#"{"args":["pro\u0064:users"]}"#, Holds::Yes),
        (&prod_key, r#"{"args":["dev:users","prod:x"]}"#, Holds::No),
        (&prod_key, r#"{"args":[]}"#, Holds::No),
        (&prod_key, r#"{"args":null}"#, Holds::No),
        (&any_prod, r#"{"args":["dev:users","prod:x"]}"#, Holds::Yes),
        (&every_prod, r#"{"args":["dev:users","prod:x"]}"#, Holds::No),
        (&every_prod, r#"{"args":["prod:a","prod:x"]}"#, Holds::Yes),
    ];
    for (cond, arguments, expected) in cases {
        assert_eq!(
            &judge(cond, arguments, Some(WRITE_SCHEMA)),
            expected,
            "{} on {arguments}",
            cond.describe()
        );
    }
}

#[test]
fn numbers_booleans_existence_and_grouping() {
    let small = test("ttl", Op::Lt(60.0), false, false);
    assert_eq!(judge(&small, r#"{"ttl":59}"#, None), Holds::Yes);
    assert_eq!(judge(&small, r#"{"ttl":60.0}"#, None), Holds::No);
    assert!(matches!(
        judge(&small, r#"{"ttl":"5"}"#, None),
        Holds::Unjudgeable(_)
    ));
    let eq = test(
        "n",
        Op::Eq(Literal::Int(12345678901234567890_u64 as i64)),
        false,
        false,
    );
    assert_eq!(judge(&eq, r#"{"n":1}"#, None), Holds::No);
    let confirm = test("confirm", Op::Eq(Literal::Bool(true)), false, false);
    assert_eq!(judge(&confirm, r#"{"confirm":true}"#, None), Holds::Yes);
    let confirm_schema = r#"{"properties":{"confirm":{"type":"boolean"}}}"#;
    // "yes" is true to the server's SDK, so it is not judged as the string it looks like.
    assert!(matches!(
        judge(&confirm, r#"{"confirm":"yes"}"#, Some(confirm_schema)),
        Holds::Unjudgeable(_)
    ));
    let exists = test("a.b", Op::Exists(true), false, false);
    assert_eq!(judge(&exists, r#"{"a":{"b":null}}"#, None), Holds::Yes);
    assert_eq!(judge(&exists, r#"{"a":{}}"#, None), Holds::No);
    let either = Cond::Any(vec![
        test("command", Op::Eq(Literal::Str("GET".into())), true, false),
        Cond::Not(Box::new(test("args", Op::Exists(true), false, false))),
    ]);
    assert_eq!(
        judge(&either, r#"{"command":"get","args":["k"]}"#, None),
        Holds::Yes
    );
    assert_eq!(judge(&either, r#"{"command":"SET"}"#, None), Holds::Yes);
    assert_eq!(
        judge(&either, r#"{"command":"SET","args":[]}"#, None),
        Holds::No
    );
}

#[test]
fn a_value_the_server_would_convert_is_not_judged() {
    let prod_key = test("args[0]", glob("prod:*", false), false, false);
    // The server's SDK decodes a JSON-encoded string into the array it declares.
    let encoded = r#"{"command":"DEL","args":"[\"prod:users\"]"}"#;
    match judge(&prod_key, encoded, Some(WRITE_SCHEMA)) {
        Holds::Unjudgeable(why) => {
            assert!(why.contains("`arguments.args` is a string"), "{why}");
            assert!(why.contains("array"), "{why}");
        }
        other => panic!("{other:?}"),
    }
    // Without a schema, a step into a string, or a string holding JSON, cannot be judged either.
    assert!(matches!(
        judge(&prod_key, encoded, None),
        Holds::Unjudgeable(_)
    ));
    let whole = test("args", Op::Eq(Literal::Str("x".into())), false, false);
    assert!(matches!(
        judge(&whole, r#"{"args":"[\"prod:users\"]"}"#, None),
        Holds::Unjudgeable(_)
    ));
    assert_eq!(judge(&whole, r#"{"args":"x"}"#, None), Holds::Yes);
    // A number where the tool declares a string is converted by nothing: it is refused.
    let command = test("command", Op::Eq(Literal::Str("DEL".into())), false, false);
    assert!(matches!(
        judge(&command, r#"{"command":5}"#, Some(WRITE_SCHEMA)),
        Holds::Unjudgeable(_)
    ));
}

// --- the lenient reader -------------------------------------------------------------------------

/// The arguments as the Valkey server reads them: JSON decoded, a string where the schema
/// declares an array decoded from JSON, and nothing else changed.
fn server_reading(arguments: &str) -> Option<Value> {
    let mut value: Value = serde_json::from_str(arguments).ok()?;
    if let Some(args) = value.get_mut("args")
        && let Value::String(text) = args
    {
        *args = serde_json::from_str(text).ok()?;
    }
    Some(value)
}

/// A condition judged on the server's reading, as plain Rust over a tree.
fn model(kind: u8, ignore_case: bool, every: bool, read: &Value) -> bool {
    let fold = |s: &str| {
        if ignore_case {
            s.to_uppercase()
        } else {
            s.to_owned()
        }
    };
    let command = read.get("command").and_then(Value::as_str).map(fold);
    let args: Vec<String> = read
        .get("args")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    match kind {
        0 => command.is_some_and(|c| ["DEL", "FLUSHDB"].iter().any(|d| c == fold(d))),
        1 => command.is_some_and(|c| c == fold("SET")),
        2 => args
            .first()
            .is_some_and(|k| fold(k).starts_with(&fold("prod:"))),
        _ => {
            let prod = |k: &String| fold(k).starts_with(&fold("prod:"));
            if every {
                // `every` needs at least one element: nothing is not "every key is safe".
                !args.is_empty() && args.iter().all(prod)
            } else {
                args.iter().any(prod)
            }
        }
    }
}

fn condition(kind: u8, ignore_case: bool, every: bool) -> Cond {
    match kind {
        0 => test(
            "command",
            Op::In(strs(&["DEL", "FLUSHDB"])),
            ignore_case,
            false,
        ),
        1 => test(
            "command",
            Op::Eq(Literal::Str("SET".into())),
            ignore_case,
            false,
        ),
        2 => test("args[0]", Op::Prefix("prod:".into()), ignore_case, false),
        _ => test("args[*]", Op::Prefix("prod:".into()), ignore_case, every),
    }
}

/// Writes `s` as a JSON string, escaping some characters as `\uXXXX` (by `mask`).
fn escaped(s: &str, mask: u64) -> String {
    let mut out = String::from("\"");
    for (i, c) in s.chars().enumerate() {
        let escape = mask >> (i % 64) & 1 == 1 && (c as u32) < 0x10000;
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || escape => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn command_text() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "SET",
        "set",
        "Set",
        "DEL",
        "del",
        "dEl",
        "FLUSHDB",
        "flushdb",
        "\u{FB02}ushdb",
        "\u{17F}et",
        "\u{131}ncr",
        "INCR",
        "DEL\u{0}",
        "del ",
        "D\u{200B}EL",
        "DE\u{130}L",
        "stra\u{DF}e",
    ])
    .prop_map(str::to_owned)
}

fn key_text() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "prod:users",
        "PROD:users",
        "prod:",
        "dev:prod:x",
        "pro",
        "\u{17F}tage",
        "prod\u{0}:x",
        "pr\u{FB00}od",
    ])
    .prop_map(str::to_owned)
}

/// Arguments as a client may write them: keys and values with escapes, `args` as an array, a
/// JSON-encoded string, null or absent.
fn arguments() -> impl Strategy<Value = String> {
    (
        prop::option::of(command_text()),
        prop::collection::vec(key_text(), 0..4),
        0u8..4,
        any::<u64>(),
        any::<bool>(),
    )
        .prop_map(|(command, keys, args_form, mask, escape_keys)| {
            let key = |k: &str| {
                if escape_keys {
                    escaped(k, u64::MAX)
                } else {
                    escaped(k, 0)
                }
            };
            let mut members = Vec::new();
            if let Some(command) = command {
                members.push(format!("{}:{}", key("command"), escaped(&command, mask)));
            }
            let array = format!(
                "[{}]",
                keys.iter()
                    .map(|k| escaped(k, mask.rotate_left(7)))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            match args_form {
                0 => members.push(format!("{}:{array}", key("args"))),
                1 => members.push(format!("{}:{}", key("args"), escaped(&array, mask))),
                2 => members.push(format!("{}:null", key("args"))),
                _ => {}
            }
            format!("{{{}}}", members.join(","))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The proxy's verdict on generated arguments equals the verdict on the server's own
    /// reading of them, or the proxy refuses to judge.
    #[test]
    fn the_proxy_judges_what_the_server_reads_or_refuses(
        arguments in arguments(),
        kind in 0u8..4,
        ignore_case in any::<bool>(),
        every in any::<bool>(),
        with_schema in any::<bool>(),
    ) {
        let schema = with_schema.then_some(WRITE_SCHEMA);
        let cond = condition(kind, ignore_case, every);
        prop_assume!(json::validate(arguments.as_bytes()).is_ok());
        let proxy = cond.holds(Some(arguments.as_bytes()), schema.map(str::as_bytes));
        match (proxy, server_reading(&arguments)) {
            (Holds::Unjudgeable(_), _) => {}
            (verdict, Some(read)) => {
                let expected = model(kind, ignore_case, every, &read);
                prop_assert_eq!(verdict == Holds::Yes, expected, "{} on {}", cond.describe(), arguments);
            }
            (verdict, None) => prop_assert!(false, "judged {verdict:?} what the server cannot read: {arguments}"),
        }
    }

    /// A duplicated key never reaches a condition: strict validation refuses it, whichever of
    /// the two a lenient reader would keep.
    #[test]
    fn duplicate_keys_are_refused_before_any_condition(first in command_text(), second in command_text(), mask in any::<u64>()) {
        let arguments = format!("{{\"command\":{},{}:{}}}", escaped(&first, 0), escaped("command", mask), escaped(&second, 0));
        prop_assert!(json::validate(arguments.as_bytes()).is_err(), "{}", arguments);
    }
}

#[test]
fn upper_case_mappings_that_reach_ascii_letters_agree_with_python() {
    // Characters whose str.upper() in Python gives ASCII letters only (checked against CPython
    // 3.11): the Rust mapping must agree, or `ignore_case` would miss a command the server runs.
    for (c, upper) in [
        ('\u{131}', "I"),
        ('\u{17F}', "S"),
        ('\u{DF}', "SS"),
        ('\u{FB00}', "FF"),
        ('\u{FB01}', "FI"),
        ('\u{FB02}', "FL"),
        ('\u{FB03}', "FFI"),
        ('\u{FB04}', "FFL"),
        ('\u{FB05}', "ST"),
        ('\u{FB06}', "ST"),
    ] {
        assert_eq!(c.to_uppercase().collect::<String>(), upper, "{c:?}");
    }
}

#[test]
fn server_reading_model_sanity() {
    let read = server_reading(r#"{"command":"del","args":"[\"prod:x\"]"}"#).unwrap();
    assert_eq!(read, json!({"command":"del","args":["prod:x"]}));
}

#[test]
fn without_a_declared_type_a_value_of_another_kind_is_not_judged() {
    let confirm = test("confirm", Op::Eq(Literal::Bool(true)), false, false);
    // The tool was never listed: "yes" may be true to the server.
    assert!(matches!(
        judge(&confirm, r#"{"confirm":"yes"}"#, None),
        Holds::Unjudgeable(_)
    ));
    assert!(matches!(
        judge(&confirm, r#"{"confirm":1}"#, None),
        Holds::Unjudgeable(_)
    ));
    assert_eq!(judge(&confirm, r#"{"confirm":false}"#, None), Holds::No);
    let not_these = test(
        "n",
        Op::NotIn(vec![Literal::Int(1), Literal::Int(2)]),
        false,
        false,
    );
    assert!(matches!(
        judge(&not_these, r#"{"n":"1"}"#, None),
        Holds::Unjudgeable(_)
    ));
    assert_eq!(judge(&not_these, r#"{"n":3}"#, None), Holds::Yes);
}

#[test]
fn local_references_in_a_schema_are_followed() {
    // As pydantic writes a model-typed argument.
    let schema = r##"{"$defs":{"Opts":{"properties":{"force":{"type":"boolean"}},"type":"object"}},"properties":{"opts":{"$ref":"#/$defs/Opts"},"wrapped":{"allOf":[{"$ref":"#/$defs/Opts"}]}},"type":"object"}"##;
    let force = test("opts.force", Op::Eq(Literal::Bool(true)), false, false);
    match judge(&force, r#"{"opts":{"force":"yes"}}"#, Some(schema)) {
        Holds::Unjudgeable(why) => assert!(why.contains("declares boolean"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        judge(&force, r#"{"opts":{"force":true}}"#, Some(schema)),
        Holds::Yes
    );
    let wrapped = test("wrapped.force", Op::Eq(Literal::Bool(true)), false, false);
    assert!(matches!(
        judge(&wrapped, r#"{"wrapped":{"force":"true"}}"#, Some(schema)),
        Holds::Unjudgeable(_)
    ));
    // A reference the proxy cannot follow declares nothing: a value of another kind is refused.
    let remote = r#"{"properties":{"opts":{"$ref":"https://example.com/opts.json"}}}"#;
    assert!(matches!(
        judge(&force, r#"{"opts":{"force":"yes"}}"#, Some(remote)),
        Holds::Unjudgeable(_)
    ));
}

#[test]
fn a_mixed_list_does_not_judge_an_untyped_value_of_another_kind() {
    let listed = test(
        "x",
        Op::In(vec![Literal::Str("a".into()), Literal::Int(5)]),
        false,
        false,
    );
    assert!(matches!(
        judge(&listed, r#"{"x":"5"}"#, None),
        Holds::Unjudgeable(_)
    ));
    let typed = r#"{"properties":{"x":{"type":"string"}}}"#;
    assert_eq!(judge(&listed, r#"{"x":"5"}"#, Some(typed)), Holds::No);
}

/// A call to one of the Valkey server's command tools, judged knowing its command line.
fn judge_call(cond: &Cond, tool: &str, arguments: &str, schema: Option<&str>) -> Holds {
    json::validate(arguments.as_bytes()).expect("test arguments are strict JSON");
    let lines = crate::policy::command_line::CommandLines::new([]);
    cond.judge(&Subject::new(
        tool,
        Some(arguments.as_bytes()),
        schema.map(str::as_bytes),
        Some(&lines),
    ))
}

fn words_test(path: &str, op: Op, ignore_case: bool) -> Cond {
    Cond::Test(Box::new(Test::new(
        parse_condition_path(path).unwrap(),
        op,
        ignore_case,
        false,
    )))
}

#[test]
fn a_rule_on_the_command_judges_what_runs_or_refuses() {
    let flush = test(
        "command",
        Op::In(strs(&["FLUSHALL", "FLUSHDB"])),
        true,
        false,
    );
    let strict = test(
        "command",
        Op::In(strs(&["FLUSHALL", "FLUSHDB"])),
        false,
        false,
    );
    let config_set = test(
        "command",
        Op::Eq(Literal::Str("CONFIG SET".into())),
        true,
        false,
    );
    let cases: &[(&Cond, &str, &str, &str)] = &[
        // The issue's call: judged as one string it is not FLUSHALL; the server runs FLUSHALL.
        (
            &flush,
            "valkey_admin",
            r#"{"command":"FLUSHALL SYNC","args":[],"confirm":true}"#,
            "refused",
        ),
        (
            &flush,
            "valkey_admin",
            r#"{"command":" FLUSHALL","confirm":true}"#,
            "refused",
        ),
        (
            &flush,
            "valkey_admin",
            "{\"command\":\"FLUSHALL\u{3000}ASYNC\"}",
            "refused",
        ),
        (
            &flush,
            "valkey_admin",
            r#"{"command":"","args":["FLUSHALL"]}"#,
            "refused",
        ),
        (
            &flush,
            "valkey_admin",
            r#"{"command":"FLUSHALL","args":["SYNC"]}"#,
            "yes",
        ),
        (
            &flush,
            "valkey_admin",
            "{\"command\":\"\u{fb02}ushall\"}",
            "yes",
        ),
        (
            &flush,
            "valkey_admin",
            r#"{"command":"CONFIG SET","args":["maxmemory","1"]}"#,
            "no",
        ),
        // Without ignore_case the field and what runs differ in case: refused, not passed.
        (
            &strict,
            "valkey_admin",
            r#"{"command":"flushall"}"#,
            "refused",
        ),
        (
            &strict,
            "valkey_write",
            r#"{"command":"flushdb"}"#,
            "refused",
        ),
        (&strict, "valkey_write", r#"{"command":"FLUSHDB"}"#, "yes"),
        // valkey_write runs the command as one word: " FLUSHDB" is no command Valkey knows.
        (&flush, "valkey_write", r#"{"command":" FLUSHDB"}"#, "no"),
        // A command split between `command` and `args`.
        (
            &config_set,
            "valkey_admin",
            r#"{"command":"CONFIG","args":["SET","maxmemory","1"]}"#,
            "refused",
        ),
        (
            &config_set,
            "valkey_admin",
            r#"{"command":"config set","args":["maxmemory","1"]}"#,
            "yes",
        ),
        // A tool whose command line the proxy does not know is judged as before.
        (&flush, "other", r#"{"command":"FLUSHALL SYNC"}"#, "no"),
    ];
    for (cond, tool, arguments, expected) in cases {
        let holds = match judge_call(cond, tool, arguments, Some(WRITE_SCHEMA)) {
            Holds::Yes => "yes",
            Holds::No => "no",
            Holds::Unjudgeable(_) => "refused",
        };
        assert_eq!(holds, *expected, "{tool} {arguments}");
    }
    let Holds::Unjudgeable(why) = judge_call(
        &flush,
        "valkey_admin",
        r#"{"command":"FLUSHALL SYNC","args":[],"confirm":true}"#,
        None,
    ) else {
        panic!("refused");
    };
    assert!(
        why.contains(r#"runs as the command ["FLUSHALL","SYNC"]"#),
        "{why}"
    );
}

#[test]
fn words_are_what_the_server_runs() {
    let first = words_test("@words[0]", Op::In(strs(&["FLUSHALL", "FLUSHDB"])), false);
    let second = words_test("@words[1]", Op::Eq(Literal::Str("SET".into())), false);
    let any_prod = words_test("@words[*]", glob("prod:*", true), true);
    let cases: &[(&Cond, &str, &str, Holds)] = &[
        (
            &first,
            "valkey_admin",
            r#"{"command":"FLUSHALL SYNC","args":[]}"#,
            Holds::Yes,
        ),
        (
            &first,
            "valkey_admin",
            "{\"command\":\"\u{a0}\u{fb02}ushdb\u{3000}\"}",
            Holds::Yes,
        ),
        (
            &first,
            "valkey_admin",
            r#"{"command":"","args":["FLUSHALL"]}"#,
            Holds::Yes,
        ),
        (
            &first,
            "valkey_read",
            r#"{"command":"FLUSHALL SYNC"}"#,
            Holds::No,
        ),
        (
            &second,
            "valkey_admin",
            r#"{"command":"config","args":["SET","a","b"]}"#,
            Holds::Yes,
        ),
        (
            &second,
            "valkey_admin",
            r#"{"command":"config set"}"#,
            Holds::Yes,
        ),
        (
            &second,
            "valkey_write",
            r#"{"command":"config set"}"#,
            Holds::No,
        ),
        (
            &any_prod,
            "valkey_write",
            r#"{"command":"SET","args":["a","PROD:b"]}"#,
            Holds::Yes,
        ),
        (
            &any_prod,
            "valkey_write",
            r#"{"command":"SET","args":["a","b"]}"#,
            Holds::No,
        ),
    ];
    for (cond, tool, arguments, expected) in cases {
        assert_eq!(
            judge_call(cond, tool, arguments, Some(WRITE_SCHEMA)),
            *expected,
            "{tool} {arguments}"
        );
    }
    // No command line known: refused, saying what to declare.
    let Holds::Unjudgeable(why) = judge_call(&first, "run_shell", r#"{"line":"rm -rf /"}"#, None)
    else {
        panic!("refused");
    };
    assert!(why.contains("[[command_lines]]"), "{why}");
    // The rest of the line unreadable (args as JSON text, which the server would decode): the
    // first word still comes from `command` alone, every word does not.
    let text_args = r#"{"command":"FLUSHALL","args":"[\"SYNC\"]"}"#;
    assert_eq!(
        judge_call(&first, "valkey_admin", text_args, None),
        Holds::Yes
    );
    assert!(matches!(
        judge_call(&any_prod, "valkey_admin", text_args, None),
        Holds::Unjudgeable(_)
    ));
}

#[test]
fn a_string_the_server_decodes_is_judged_as_what_it_decodes_to() {
    // `json_set`'s `value` in the real server: `str | int | float | bool | list | dict | None`.
    let schema = r#"{"type":"object","properties":{"key":{"type":"string"},"value":{"anyOf":[{"type":"string"},{"type":"integer"},{"type":"number"},{"type":"boolean"},{"items":{},"type":"array"},{"additionalProperties":true,"type":"object"},{"type":"null"}]},"opts":{"type":"object","properties":{"tags":{"anyOf":[{"type":"string"},{"type":"array","items":{"type":"string"}}]}}}}}"#;
    let any_secret = test("value[*]", glob("secret*", false), false, false);
    let equals_text = test(
        "value",
        Op::Eq(Literal::Str(r#"["secret"]"#.into())),
        false,
        false,
    );
    let is_true = test("value", Op::Eq(Literal::Bool(true)), false, false);
    let null_text = test("value", Op::Eq(Literal::Str("null".into())), false, false);
    let cases: &[(&Cond, &str, Holds)] = &[
        // The array the server decodes holds "secret".
        (&any_secret, r#"{"value":"[\"secret\"]"}"#, Holds::Yes),
        (&any_secret, r#"{"value":" [\"public\"] "}"#, Holds::No),
        // Judged as the decoded array, never as the text it was sent as.
        (&equals_text, r#"{"value":"[\"secret\"]"}"#, Holds::No),
        (&is_true, r#"{"value":"true"}"#, Holds::Yes),
        // "null" decodes to null, which is not the text "null".
        (&null_text, r#"{"value":"null"}"#, Holds::No),
        (&null_text, r#"{"key":"null"}"#, Holds::No),
        // Numbers and JSON strings stay text in the SDK.
        (&equals_text, r#"{"value":"5"}"#, Holds::No),
        (&equals_text, r#"{"value":"plain text"}"#, Holds::No),
    ];
    for (cond, arguments, expected) in cases {
        assert_eq!(
            judge(cond, arguments, Some(schema)),
            *expected,
            "{arguments}"
        );
    }
    // JSON that only a lenient parser reads, and JSON deeper than the SDK decodes: refused.
    for arguments in [
        r#"{"value":"[\"a\", NaN]"}"#,
        r#"{"value":"{\"a\":1,\"a\":2}"}"#,
        r#"{"opts":{"tags":"[\"secret\"]"}}"#,
    ] {
        let cond = if arguments.contains("opts") {
            test("opts.tags[*]", glob("secret*", false), false, false)
        } else {
            any_secret.clone()
        };
        assert!(
            matches!(judge(&cond, arguments, Some(schema)), Holds::Unjudgeable(_)),
            "{arguments}"
        );
    }
}

#[test]
fn valkey_reads_command_names_in_any_case_so_a_case_minding_test_refuses() {
    // `CONFIG` with args ["set", ...] runs CONFIG SET: Valkey reads subcommands in any case.
    let config_set = r#"{"command":"CONFIG","args":["set","maxmemory","1"]}"#;
    let second = words_test("@words[1]", Op::Eq(Literal::Str("SET".into())), false);
    let second_any_case = words_test("@words[1]", Op::Eq(Literal::Str("SET".into())), true);
    let legacy = test(
        "command",
        Op::Eq(Literal::Str("CONFIG SET".into())),
        false,
        false,
    );
    let key = words_test("@words[*]", Op::In(strs(&["user:1"])), false);
    let cases: &[(&Cond, &str, &str)] = &[
        (&second, config_set, "refused"),
        (&second_any_case, config_set, "yes"),
        (&legacy, config_set, "refused"),
        (&second, r#"{"command":"CONFIG","args":["GET","x"]}"#, "no"),
        // A word that is no command name is still compared as written when case cannot matter.
        (&key, r#"{"command":"GET","args":["user:1"]}"#, "yes"),
        (&key, r#"{"command":"GET","args":["USER:2"]}"#, "no"),
    ];
    for (cond, arguments, expected) in cases {
        let holds = match judge_call(cond, "valkey_admin", arguments, Some(WRITE_SCHEMA)) {
            Holds::Yes => "yes",
            Holds::No => "no",
            Holds::Unjudgeable(_) => "refused",
        };
        assert_eq!(holds, *expected, "{} {arguments}", cond.describe());
    }
}
