//! The proxy core through the real binary: decisions, pass-through, and the child's lifecycle.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const POLICY: &str = r#"
[policy]
default = "allow"

[[rules]]
tool = "CreateCodeConnection"
action = "deny"
reason = "creating code connections can expose source code and CI/CD pipelines"

[[rules]]
tool = "valkey_write"
action = "allow"
rate_limit = { max = 2, window = "700ms" }

[[rules]]
tool = "valkey_admin"
action = "require_approval"
reason = "admin commands change the server"
"#;

#[test]
fn allowed_calls_reach_the_server_and_its_answer_comes_back() {
    let mut proxy = Proxy::start(POLICY);
    proxy.initialize();
    let answer = proxy.call(1, "valkey_read", json!({"command":"GET","args":["k"]}));
    assert_eq!(answer["result"]["isError"], false);
    assert_eq!(answer["result"]["content"][0]["text"], "valkey_read GET k");
    assert!(reached_child(&proxy, "valkey_read"));
}

#[test]
fn denied_call_gets_the_reason_and_never_reaches_the_server() {
    let mut proxy = Proxy::start(POLICY);
    proxy.initialize();
    let answer = proxy.call(5, "CreateCodeConnection", json!({"repository":"org/app"}));
    assert_eq!(answer["id"], 5);
    assert_eq!(answer["result"]["isError"], true);
    let text = result_text(&answer);
    assert!(text.contains("\"CreateCodeConnection\""), "{text}");
    assert!(text.contains("rule 1"), "{text}");
    assert!(
        text.contains("creating code connections can expose source code and CI/CD pipelines"),
        "{text}"
    );
    assert_eq!(
        facts(&answer),
        &json!({
            "decision": "deny",
            "tool": "CreateCodeConnection",
            "rule": 1,
            "pattern": "CreateCodeConnection",
            "reason": "creating code connections can expose source code and CI/CD pipelines"
        })
    );
    assert!(!reached_child(&proxy, "CreateCodeConnection"));
    // The session goes on.
    let answer = proxy.call(6, "valkey_read", json!({"command":"GET","args":["k"]}));
    assert_eq!(answer["result"]["isError"], false);
}

#[test]
fn rate_limit_refuses_then_the_window_opens_again() {
    let mut proxy = Proxy::start(POLICY);
    proxy.initialize();
    let args = json!({"command":"SET","args":["k","v"]});
    assert_eq!(
        proxy.call(1, "valkey_write", args.clone())["result"]["isError"],
        false
    );
    assert_eq!(
        proxy.call(2, "valkey_write", args.clone())["result"]["isError"],
        false
    );
    let refused = proxy.call(3, "valkey_write", args.clone());
    assert_eq!(refused["result"]["isError"], true);
    let facts = facts(&refused).clone();
    assert_eq!(facts["decision"], "rate_limited");
    assert_eq!(facts["rule"], 2);
    let retry = facts["retryAfterMs"].as_u64().expect("retryAfterMs");
    assert!(retry > 0 && retry <= 700, "retry after {retry} ms");
    let text = result_text(&refused);
    assert!(text.contains("at most 2 calls per 700ms"), "{text}");
    assert!(text.contains("retry after"), "{text}");
    let writes = |p: &Proxy| {
        p.fixture_received()
            .iter()
            .filter(|l| l.contains("valkey_write"))
            .count()
    };
    assert_eq!(
        writes(&proxy),
        2,
        "the refused call never reached the server"
    );

    // Waiting as long as the refusal said is enough.
    std::thread::sleep(Duration::from_millis(retry + 20));
    assert_eq!(
        proxy.call(4, "valkey_write", args)["result"]["isError"],
        false
    );
    assert_eq!(writes(&proxy), 3);
}

#[test]
fn require_approval_refuses_without_an_approval_channel() {
    let mut proxy = Proxy::start(POLICY);
    proxy.initialize();
    let answer = proxy.call(1, "valkey_admin", json!({"command":"FLUSHALL","args":[]}));
    assert_eq!(answer["result"]["isError"], true);
    assert_eq!(facts(&answer)["decision"], "approval_unavailable");
    let text = result_text(&answer);
    assert!(text.contains("requires a person's approval"), "{text}");
    assert!(text.contains("admin commands change the server"), "{text}");
    assert!(!reached_child(&proxy, "valkey_admin"));
}

#[test]
fn default_deny_refuses_tools_no_rule_names() {
    let mut proxy = Proxy::start(
        r#"
[policy]
default = "deny"
[[rules]]
tool = "valkey_read"
action = "allow"
"#,
    );
    proxy.initialize();
    assert_eq!(
        proxy.call(1, "valkey_read", json!({"command":"GET","args":["a"]}))["result"]["isError"],
        false
    );
    let answer = proxy.call(2, "echo", json!({}));
    assert_eq!(facts(&answer)["decision"], "default_deny");
    assert_eq!(facts(&answer)["rule"], Value::Null);
    assert!(result_text(&answer).contains("default policy is deny"));
    assert!(!reached_child(&proxy, "echo"));
}

#[test]
fn jsonrpc_error_style_refuses_with_an_unreserved_code() {
    let mut proxy = Proxy::start(
        r#"
[policy]
violation = "jsonrpc_error"
[[rules]]
tool = "Create*"
action = "deny"
reason = "no code connections"
"#,
    );
    proxy.initialize();
    let answer = proxy.call(9, "CreateCodeConnection", json!({}));
    let code = answer["error"]["code"].as_i64().unwrap();
    assert!(!(-32768..=-32000).contains(&code), "code {code}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no code connections")
    );
    assert_eq!(answer["error"]["data"]["decision"], "deny");
    assert_eq!(answer["error"]["data"]["pattern"], "Create*");
}

#[test]
fn refused_call_without_an_id_is_dropped() {
    let mut proxy = Proxy::start(POLICY);
    proxy.initialize();
    proxy.send(
        &json!({"jsonrpc":"2.0","method":"tools/call","params":{"name":"CreateCodeConnection"}}),
    );
    // The next answer is to the next request: the refused notification got none.
    let answer = proxy.call(2, "valkey_read", json!({"command":"GET","args":["a"]}));
    assert_eq!(answer["id"], 2);
    assert!(!reached_child(&proxy, "CreateCodeConnection"));
    assert!(proxy.stderr_has("dropped a tools/call without an id"));
}

#[test]
fn everything_else_passes_through_unchanged_in_order() {
    let mut proxy = Proxy::start(POLICY);
    let sent: Vec<String> = vec![
        r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{"roots":{}},"clientInfo":{"name":"t","version":"1"}}}"#.into(),
        r#"{"method":"notifications/initialized","jsonrpc":"2.0"}"#.into(),
        r#"{"jsonrpc":"2.0","id":"p","method":"ping"}"#.into(),
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#.into(),
        r#"{"jsonrpc":"2.0", "id":2, "method":"resources/list", "params":{"x":[1,2.5,"\u00e9"]}}"#.into(),
        r#"{"jsonrpc":"2.0","method":"notifications/roots/list_changed"}"#.into(),
    ];
    for line in &sent {
        proxy.send_raw(format!("{line}\n").as_bytes());
    }
    let mut answers = Vec::new();
    for _ in 0..4 {
        answers.push(proxy.recv());
    }
    assert_eq!(answers[0]["id"], 0);
    assert_eq!(answers[0]["result"]["protocolVersion"], "2025-06-18");
    assert_eq!(answers[1], json!({"jsonrpc":"2.0","id":"p","result":{}}));
    assert_eq!(answers[2]["id"], 1);
    assert!(answers[2]["result"]["tools"].as_array().unwrap().len() >= 3);
    assert_eq!(answers[3]["error"]["code"], -32601);
    // The server read exactly the bytes the client wrote, in order.
    assert_eq!(proxy.fixture_received(), sent);
}

#[test]
fn server_output_passes_through_both_ways_with_its_requests() {
    let mut proxy = Proxy::start(POLICY);
    proxy.initialize();
    // The fixture asks the client for its roots while it handles the call.
    proxy.send(&json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"ask_client","arguments":{"method":"roots/list"}}}));
    let request = proxy.recv();
    assert_eq!(request["method"], "roots/list");
    let server_id = request["id"].clone();
    assert!(server_id.is_number() || server_id.is_string());
    proxy.send(&json!({"jsonrpc":"2.0","id":server_id,"result":{"roots":[{"uri":"file:///w"}]}}));
    let answer = proxy.recv();
    assert_eq!(answer["id"], 7);
    assert_eq!(
        serde_json::from_str::<Value>(&result_text(&answer)).unwrap(),
        json!({"roots":[{"uri":"file:///w"}]})
    );
    // Progress and log notifications for a call in progress come through before its result.
    proxy.send(&json!({"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"notify","_meta":{"progressToken":"tok"}}}));
    let mut methods = Vec::new();
    loop {
        let message = proxy.recv();
        if message["id"] == 8 {
            break;
        }
        methods.push(message["method"].as_str().unwrap().to_string());
    }
    assert_eq!(
        methods,
        [
            "notifications/progress",
            "notifications/progress",
            "notifications/progress",
            "notifications/message"
        ]
    );
}

#[test]
fn a_request_waiting_when_the_server_dies_gets_an_error_and_the_proxy_exits_with_its_status() {
    let mut proxy = Proxy::start(POLICY);
    proxy.initialize();
    proxy.send(&json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"slow","arguments":{"ms":10000}}}));
    proxy.send(&json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"crash","arguments":{"code":3}}}));
    let mut ids = Vec::new();
    for _ in 0..2 {
        let answer = proxy.recv();
        assert_eq!(answer["error"]["code"], -32603, "{answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("exited (exit status 3)"),
            "{answer}"
        );
        ids.push(answer["id"].as_i64().unwrap());
    }
    ids.sort();
    assert_eq!(ids, [1, 2]);
    assert_eq!(proxy.wait(Duration::from_secs(5)).code(), Some(3));
}

#[test]
fn a_server_killed_by_a_signal_gives_128_plus_the_signal() {
    let mut proxy = Proxy::start(POLICY);
    proxy.initialize();
    proxy.send(&json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"crash","arguments":{"signal":9}}}));
    let answer = proxy.recv();
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("killed by signal 9")
    );
    assert_eq!(proxy.wait(Duration::from_secs(5)).code(), Some(137));
}

#[test]
fn closing_stdin_shuts_down_a_well_behaved_server_at_once() {
    let mut proxy = Proxy::start(POLICY);
    proxy.initialize();
    let pid = proxy.fixture_pid();
    proxy.close_stdin();
    // Status 0 is the fixture's own exit on EOF: it needed no SIGTERM (that would give 143).
    let status = proxy.wait(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0));
    wait_gone(pid, Duration::from_secs(1));
}

#[test]
fn a_server_that_ignores_eof_gets_sigterm() {
    let mut proxy = Proxy::with_config(POLICY)
        .env("FIXTURE_IGNORE_EOF", "1")
        .start();
    proxy.initialize();
    let pid = proxy.fixture_pid();
    let start = Instant::now();
    proxy.close_stdin();
    let status = proxy.wait(Duration::from_secs(5));
    assert_eq!(status.code(), Some(128 + 15));
    let took = start.elapsed();
    assert!(took < Duration::from_millis(2500), "{took:?}");
    wait_gone(pid, Duration::from_secs(1));
}

#[test]
fn a_server_that_ignores_sigterm_gets_sigkill_within_about_two_seconds() {
    let mut proxy = Proxy::with_config(POLICY)
        .env("FIXTURE_IGNORE_EOF", "1")
        .env("FIXTURE_IGNORE_SIGTERM", "1")
        .start();
    proxy.initialize();
    let pid = proxy.fixture_pid();
    let start = Instant::now();
    proxy.close_stdin();
    let status = proxy.wait(Duration::from_secs(5));
    assert_eq!(status.code(), Some(128 + 9));
    let took = start.elapsed();
    assert!(took < Duration::from_millis(2800), "{took:?}");
    wait_gone(pid, Duration::from_secs(1));
}

#[cfg(unix)]
#[test]
fn sigterm_to_the_proxy_reaches_the_server() {
    let mut proxy = Proxy::start(POLICY);
    proxy.initialize();
    let pid = proxy.fixture_pid();
    proxy.signal(libc::SIGTERM);
    let status = proxy.wait(Duration::from_secs(5));
    assert_eq!(status.code(), Some(128 + 15));
    wait_gone(pid, Duration::from_secs(1));
}

#[cfg(unix)]
#[test]
fn the_server_cannot_outlive_a_killed_proxy() {
    let mut proxy = Proxy::with_config(POLICY)
        .env("FIXTURE_IGNORE_EOF", "1")
        .start();
    proxy.initialize();
    let pid = proxy.fixture_pid();
    proxy.signal(libc::SIGKILL);
    proxy.wait(Duration::from_secs(5));
    wait_gone(pid, Duration::from_secs(2));
}

#[test]
fn the_server_s_stderr_reaches_the_proxy_s_stderr_and_stdout_stays_protocol_only() {
    let mut proxy = Proxy::with_config(POLICY)
        .env("FIXTURE_STDERR_HELLO", "1")
        .arg("--log-level")
        .arg("debug")
        .start();
    proxy.initialize();
    proxy.call(1, "valkey_read", json!({"command":"GET","args":["a"]}));
    proxy.call(2, "CreateCodeConnection", json!({}));
    proxy.close_stdin();
    proxy.wait(Duration::from_secs(5));
    // Every stdout line parsed as JSON in recv(); the logs went to stderr.
    let stderr = proxy.stderr();
    assert!(stderr.contains("fixture: started"), "{stderr}");
    assert!(stderr.contains("allowed a tool call"), "{stderr}");
}

#[test]
fn the_double_dash_is_optional_and_the_child_keeps_its_own_options() {
    for argv in [
        vec![fixture(), "--flag-for-the-child"],
        vec!["--", fixture(), "--", "-x"],
    ] {
        let mut proxy = Proxy::with_config(POLICY).child(&argv).start();
        let answer = proxy.initialize();
        assert_eq!(
            answer["result"]["serverInfo"]["name"], "mcp-fixture-server",
            "{argv:?}"
        );
    }
}

#[test]
fn the_config_path_can_come_from_the_environment() {
    let mut proxy = Proxy::with_config(POLICY).config_by_env().start();
    proxy.initialize();
    let answer = proxy.call(1, "CreateCodeConnection", json!({}));
    assert_eq!(facts(&answer)["decision"], "deny");
}

#[test]
fn the_server_can_come_from_the_config() {
    let config = format!(
        "{POLICY}\n[server]\ncommand = {:?}\nenv = {{ FIXTURE_STDERR_HELLO = \"1\" }}\n",
        fixture()
    );
    let mut proxy = Proxy::with_config(&config).child(&[]).start();
    let answer = proxy.initialize();
    assert_eq!(answer["result"]["serverInfo"]["name"], "mcp-fixture-server");
    proxy.close_stdin();
    proxy.wait(Duration::from_secs(5));
    assert!(
        proxy.stderr().contains("fixture: started"),
        "[server].env reaches the child"
    );
}

#[test]
fn a_command_that_cannot_start_is_reported() {
    let mut proxy = Proxy::with_config(POLICY)
        .child(&["/nonexistent/mcp-server"])
        .start();
    let status = proxy.wait(Duration::from_secs(5));
    assert_eq!(status.code(), Some(127));
    assert!(
        proxy
            .stderr()
            .contains("cannot start the MCP server `/nonexistent/mcp-server`"),
        "{}",
        proxy.stderr()
    );
}

#[test]
fn large_results_arrive_whole_and_in_order_among_small_ones() {
    // Results of 1 MiB and more are written from a thread of their own, in the buffer they were
    // read into; small answers in between must keep their place.
    let mut proxy = Proxy::start(POLICY);
    proxy.initialize();
    let sizes = [3 << 20, 1 << 20, 100, (2 << 20) + 7, 5, 1 << 20];
    let mut requests = Vec::new();
    for (i, &bytes) in sizes.iter().enumerate() {
        let call = json!({"jsonrpc":"2.0","id":i + 1,"method":"tools/call",
            "params":{"name":"big","arguments":{"bytes":bytes}}});
        requests.extend(serde_json::to_vec(&call).unwrap());
        requests.push(b'\n');
    }
    proxy.send_raw(&requests);
    for (i, &bytes) in sizes.iter().enumerate() {
        let answer = proxy.recv();
        assert_eq!(answer["id"], i + 1, "answers keep their order");
        assert_eq!(result_text(&answer).len(), bytes, "answer {}", i + 1);
    }
    // The session goes on.
    let answer = proxy.call(99, "big", json!({"bytes": 10}));
    assert_eq!(result_text(&answer).len(), 10);
}
