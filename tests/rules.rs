//! The rule language through the real binary: argument conditions, classes, shadow mode and
//! tool pinning, against the fixture server.

mod common;

use common::*;
use serde_json::json;

const CONDITIONS: &str = r#"
[policy]
default = "deny"

[[rules]]
tool = "valkey_write"
action = "deny"
reason = "deleting keys needs an operator"
when = [ { arg = "command", in = ["DEL", "UNLINK", "FLUSHDB"], ignore_case = true } ]

[[rules]]
tool = "valkey_write"
action = "deny"
reason = "production keys are off limits"
when = [ { arg = "args[*]", glob = "prod:*" } ]

[[rules]]
tool = "valkey_*"
action = "allow"
"#;

fn list_tools(proxy: &mut Proxy) {
    let list = proxy.request(json!("list"), "tools/list", json!({}));
    assert!(list["result"]["tools"].is_array(), "{list}");
}

#[test]
fn a_condition_decides_by_what_the_call_does() {
    let mut proxy = Proxy::start(CONDITIONS);
    proxy.initialize();
    list_tools(&mut proxy);
    let set = proxy.call(
        1,
        "valkey_write",
        json!({"command":"SET","args":["dev:k","v"]}),
    );
    assert_eq!(set["result"]["isError"], false, "{set}");
    for (id, arguments, reason) in [
        (
            2,
            json!({"command":"del","args":["dev:k"]}),
            "deleting keys needs an operator",
        ),
        (
            3,
            json!({"command":"\u{FB02}ushdb"}),
            "deleting keys needs an operator",
        ),
        (
            4,
            json!({"command":"SET","args":["dev:a","prod:b"]}),
            "production keys are off limits",
        ),
    ] {
        let answer = proxy.call(id, "valkey_write", arguments.clone());
        assert_eq!(answer["result"]["isError"], true, "{arguments}");
        assert_eq!(facts(&answer)["decision"], "deny", "{arguments}");
        assert_eq!(facts(&answer)["reason"], reason, "{arguments}");
    }
    let received = proxy.fixture_received().join("\n");
    assert!(received.contains("dev:k"));
    assert!(
        !received.contains("prod:b") && !received.contains("\"del\""),
        "{received}"
    );
}

#[test]
fn a_json_encoded_string_where_the_tool_declares_an_array_is_refused() {
    let mut proxy = Proxy::start(CONDITIONS);
    proxy.initialize();
    list_tools(&mut proxy);
    let answer = proxy.call(
        1,
        "valkey_write",
        json!({"command":"SET","args":"[\"prod:users\",\"x\"]"}),
    );
    assert_eq!(answer["result"]["isError"], true, "{answer}");
    assert_eq!(facts(&answer)["decision"], "unjudgeable_arguments");
    let text = result_text(&answer);
    assert!(text.contains("`arguments.args` is a string"), "{text}");
    assert!(!reached_child(&proxy, "valkey_write"));
}

#[test]
fn shadow_mode_forwards_and_logs_what_would_have_been_refused() {
    let mut proxy = Proxy::start(&format!(
        "[policy]\nmode = \"shadow\"\n{}",
        CONDITIONS.replace("[policy]\n", "")
    ));
    proxy.initialize();
    let answer = proxy.call(1, "valkey_write", json!({"command":"DEL","args":["k"]}));
    assert_eq!(answer["result"]["isError"], false, "{answer}");
    assert!(reached_child(&proxy, "valkey_write"));
    assert!(proxy.stderr_has("shadow mode"), "{}", proxy.stderr());
    assert!(
        proxy.stderr_has("deleting keys needs an operator"),
        "{}",
        proxy.stderr()
    );
}

#[test]
fn a_shadow_rule_only_logs_and_the_next_rules_decide() {
    let mut proxy = Proxy::start(
        r#"
[[rules]]
tool = "valkey_read"
action = "deny"
reason = "reads are about to be forbidden"
shadow = true

[[rules]]
tool = "CreateCodeConnection"
action = "deny"
shadow = true

[[rules]]
tool = "CreateCodeConnection"
action = "deny"
reason = "the real rule"
"#,
    );
    proxy.initialize();
    let read = proxy.call(1, "valkey_read", json!({"command":"GET","args":["k"]}));
    assert_eq!(read["result"]["isError"], false, "{read}");
    assert!(
        proxy.stderr_has("reads are about to be forbidden"),
        "{}",
        proxy.stderr()
    );
    let code = proxy.call(2, "CreateCodeConnection", json!({}));
    assert_eq!(facts(&code)["reason"], "the real rule");
}

#[test]
fn classes_by_name_and_by_annotation_hints() {
    let mut proxy = Proxy::start(
        r#"
[classes]
read = ["valkey_read", "echo"]
# The fixture's tools give no annotations: the specification's defaults make each of them a
# destructive tool.
destructive = ["@destructive"]

[[rules]]
class = "read"
action = "allow"

[[rules]]
class = "destructive"
action = "deny"
reason = "destructive tools need a review"
"#,
    );
    proxy.initialize();
    list_tools(&mut proxy);
    assert_eq!(proxy.call(1, "echo", json!({}))["result"]["isError"], false);
    let write = proxy.call(2, "valkey_write", json!({"command":"SET"}));
    assert_eq!(facts(&write)["reason"], "destructive tools need a review");
    assert!(
        result_text(&write).contains("class = \"destructive\""),
        "{write}"
    );
}

#[test]
fn a_tool_whose_definition_changes_mid_session_is_refused() {
    let mut proxy = Proxy::start("[policy]\ndefault = \"allow\"\n");
    proxy.initialize();
    list_tools(&mut proxy);
    assert_eq!(
        proxy.call(1, "valkey_read", json!({"command":"GET"}))["result"]["isError"],
        false
    );
    assert_eq!(
        proxy.call(2, "rug_pull", json!({}))["result"]["isError"],
        false
    );
    list_tools(&mut proxy);
    let answer = proxy.call(3, "valkey_read", json!({"command":"GET"}));
    assert_eq!(answer["result"]["isError"], true, "{answer}");
    assert_eq!(facts(&answer)["decision"], "tool_changed");
    assert!(
        result_text(&answer).contains("its description changed"),
        "{answer}"
    );
    // Other tools still run.
    assert_eq!(proxy.call(4, "echo", json!({}))["result"]["isError"], false);
}

#[test]
fn pinning_can_only_log() {
    let mut proxy = Proxy::start("[policy]\ndefault = \"allow\"\n[pinning]\nmode = \"log\"\n");
    proxy.initialize();
    list_tools(&mut proxy);
    proxy.call(1, "rug_pull", json!({}));
    list_tools(&mut proxy);
    let answer = proxy.call(2, "valkey_read", json!({"command":"GET"}));
    assert_eq!(answer["result"]["isError"], false, "{answer}");
    assert!(
        proxy.stderr_has("its description changed"),
        "{}",
        proxy.stderr()
    );
}

#[test]
fn condition_mistakes_are_config_errors_with_positions() {
    let mut proxy = Proxy::with_config(
        r#"[[rules]]
tool = "valkey_write"
action = "deny"
when = [ { arg = "command", equals = "DEL" }, { arg = "args[x]", eq = "a" }, { arg = "k", regex = "(" } ]
"#,
    )
    .arg("--check")
    .start();
    assert_eq!(
        proxy.wait(std::time::Duration::from_secs(5)).code(),
        Some(2)
    );
    let stderr = proxy.stderr();
    assert!(
        stderr.contains("line 4, column 29: unknown key \"equals\""),
        "{stderr}"
    );
    assert!(stderr.contains("\"eq\", \"ne\", \"in\""), "{stderr}");
    assert!(
        !stderr.contains("no operator"),
        "a misspelt operator is one problem: {stderr}"
    );
    assert!(stderr.contains("invalid index `[x]`"), "{stderr}");
    assert!(stderr.contains("invalid regex \"(\""), "{stderr}");
}
