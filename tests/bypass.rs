//! The proxy cannot be bypassed: what the child receives has exactly one reading, and it is the
//! reading the proxy judged. Each case drives the real binary and checks, in the fixture's own
//! log, what reached the server.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const POLICY: &str = r#"
[policy]
default = "allow"

[limits]
max_line_bytes = 4096

[[rules]]
tool = "valkey_write"
action = "deny"
reason = "read-only session"

[[rules]]
tool = "valkey_admin"
action = "deny"
reason = "never"
hide = true
"#;

/// Sends `bytes` as one client line, then proves the session is alive with a ping; returns what
/// the proxy answered before the ping's answer.
#[track_caller]
fn send_then_ping(proxy: &mut Proxy, bytes: &[u8]) -> Vec<Value> {
    proxy.send_raw(bytes);
    proxy.send(&json!({"jsonrpc":"2.0","id":"alive","method":"ping"}));
    let mut before = Vec::new();
    loop {
        let message = proxy.recv();
        if message["id"] == "alive" {
            assert_eq!(message["result"], json!({}));
            return before;
        }
        before.push(message);
    }
}

fn writes_reached(proxy: &Proxy) -> usize {
    proxy
        .fixture_received()
        .iter()
        .filter(|line| line.contains("valkey_write") || line.contains("valkey_\\u0077rite"))
        .count()
}

#[test]
fn ambiguous_or_malformed_lines_never_reach_the_server() {
    let mut proxy = Proxy::start(POLICY);
    proxy.initialize();
    let deep = format!(
        r#"{{"jsonrpc":"2.0","id":50,"method":"tools/call","params":{{"name":"echo","arguments":{}1{}}}}}"#,
        "[".repeat(100),
        "]".repeat(100)
    );
    // Each line, and the id an error answer must carry (None: the id cannot be read, so the line
    // is dropped).
    let cases: Vec<(Vec<u8>, Option<Value>)> = vec![
        // A duplicate key: a lenient reader takes the last one.
        (br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"valkey_read","name":"valkey_write"}}"#.to_vec(), Some(json!(1))),
        (br#"{"jsonrpc":"2.0","id":2,"method":"tools/list","method":"tools/call","params":{"name":"valkey_write"}}"#.to_vec(), Some(json!(2))),
        // The same duplicate, hidden behind an escape.
        (br#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"valkey_read","n\u0061me":"valkey_write"}}"#.to_vec(), Some(json!(3))),
        // Deep inside the arguments, too.
        (br#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"valkey_read","arguments":{"a":{"b":1,"b":2}}}}"#.to_vec(), Some(json!(4))),
        // A key that differs from a protocol key only by case or a trailing NUL.
        (br#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"valkey_read","Name":"valkey_write"}}"#.to_vec(), Some(json!(5))),
        (br#"{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"valkey_read","name\u0000":"valkey_write"}}"#.to_vec(), Some(json!(6))),
        // NaN and Infinity, which a lenient reader accepts.
        (br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"valkey_write","arguments":{"x":NaN}}}"#.to_vec(), None),
        (br#"{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"valkey_write","arguments":{"x":1e400}}}"#.to_vec(), None),
        // A bare CR: a lenient reader splits the line there and runs both halves.
        (b"{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"ping\"}\r{\"jsonrpc\":\"2.0\",\"id\":10,\"method\":\"tools/call\",\"params\":{\"name\":\"valkey_write\"}}".to_vec(), None),
        (b"{\"jsonrpc\":\"2.0\",\"id\":11,\r\"method\":\"tools/call\",\"params\":{\"name\":\"valkey_write\"}}".to_vec(), Some(json!(11))),
        // Invalid UTF-8, which a lenient reader turns into U+FFFD.
        (b"{\"jsonrpc\":\"2.0\",\"id\":12,\"method\":\"tools/call\",\"params\":{\"name\":\"valkey_write\",\"arguments\":{\"k\":\"\xff\"}}}".to_vec(), None),
        // A byte-order mark.
        (b"\xef\xbb\xbf{\"jsonrpc\":\"2.0\",\"id\":13,\"method\":\"tools/call\",\"params\":{\"name\":\"valkey_write\"}}".to_vec(), None),
        // Trailing data, and two messages on one line.
        (br#"{"jsonrpc":"2.0","id":14,"method":"tools/call","params":{"name":"valkey_write"}} x"#.to_vec(), None),
        (br#"{"jsonrpc":"2.0","id":15,"method":"ping"}{"jsonrpc":"2.0","id":16,"method":"tools/call","params":{"name":"valkey_write"}}"#.to_vec(), None),
        // Nesting deeper than the limit.
        (deep.into_bytes(), Some(json!(50))),
        // Not JSON at all.
        (b"tools/call valkey_write".to_vec(), None),
        // Ids a lenient reader would not answer but might run.
        (br#"{"jsonrpc":"2.0","id":1.5,"method":"tools/call","params":{"name":"valkey_write"}}"#.to_vec(), None),
        (br#"{"jsonrpc":"2.0","id":null,"method":"tools/call","params":{"name":"valkey_write"}}"#.to_vec(), None),
        // The wrong JSON-RPC version.
        (br#"{"jsonrpc":"1.0","id":17,"method":"tools/call","params":{"name":"valkey_write"}}"#.to_vec(), Some(json!(17))),
    ];
    for (line, id) in cases {
        let mut bytes = line.clone();
        bytes.push(b'\n');
        let answers = send_then_ping(&mut proxy, &bytes);
        let shown = String::from_utf8_lossy(&line).into_owned();
        match id {
            Some(id) => {
                assert_eq!(answers.len(), 1, "{shown}: {answers:?}");
                assert_eq!(answers[0]["id"], id, "{shown}");
                let code = answers[0]["error"]["code"].as_i64().unwrap();
                assert!(code == -32700 || code == -32600, "{shown}: {code}");
            }
            None => assert!(
                answers.iter().all(|a| a.get("error").is_some()),
                "{shown}: {answers:?}"
            ),
        }
        assert_eq!(writes_reached(&proxy), 0, "{shown} reached the server");
    }
    // Only the handshake and the pings reached the server.
    for line in proxy.fixture_received() {
        let v: Value = serde_json::from_str(&line).unwrap();
        assert!(
            ["initialize", "notifications/initialized", "ping"]
                .contains(&v["method"].as_str().unwrap()),
            "{line}"
        );
    }
}

#[test]
fn an_over_long_line_is_discarded_whole_and_its_request_answered() {
    let mut proxy = Proxy::start(POLICY);
    proxy.initialize();
    let pad = "x".repeat(5000);
    // The tail of the long line is itself a complete denied call: it must not survive as a line.
    let tail = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"valkey_write"}}"#;
    // The id first, as the Python SDK writes it; then last, as the TS SDK does; then nowhere.
    let lines = [
        (
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"pad":"{pad}"}}}}{tail}"#
            ),
            Some(json!(1)),
        ),
        (
            format!(
                r#"{{"method":"ping","params":{{"pad":"{pad}"}},"jsonrpc":"2.0","id":"ts-3"}}"#
            ),
            Some(json!("ts-3")),
        ),
        (
            format!(r#"{{"method":"ping","params":{{"pad":"{pad}"}}}}"#),
            None,
        ),
    ];
    for (line, id) in lines {
        let answers = send_then_ping(&mut proxy, format!("{line}\n").as_bytes());
        match id {
            Some(id) => {
                assert_eq!(answers.len(), 1, "{answers:?}");
                assert_eq!(answers[0]["id"], id);
                assert_eq!(answers[0]["error"]["code"], -32600);
                let message = answers[0]["error"]["message"].as_str().unwrap();
                assert!(
                    message.contains("over the proxy's limit of 4096"),
                    "{message}"
                );
            }
            None => assert!(answers.is_empty(), "{answers:?}"),
        }
    }
    assert_eq!(writes_reached(&proxy), 0);
    // Only the handshake and the pings reached the server.
    assert!(proxy.fixture_received().iter().all(|l| !l.contains(&pad)));
    assert!(proxy.stderr_has("longer than the limit"));
}

#[test]
fn a_server_answer_over_the_limit_becomes_an_error_instead_of_a_hang() {
    let mut proxy = Proxy::start(POLICY);
    proxy.initialize();
    let answer = proxy.call(8, "big", json!({"bytes": 10_000}));
    assert_eq!(answer["error"]["code"], -32603, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("over the proxy's limit of 4096"),
        "{message}"
    );
    // The session goes on.
    let answer = proxy.call(9, "big", json!({"bytes": 100}));
    assert_eq!(result_text(&answer).len(), 100);
}

#[test]
fn a_method_makes_a_request_whatever_else_it_carries() {
    let mut proxy = Proxy::start(POLICY);
    proxy.initialize();
    let answers = send_then_ping(
        &mut proxy,
        b"{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{},\"method\":\"tools/call\",\"params\":{\"name\":\"valkey_write\"}}\n",
    );
    assert_eq!(answers.len(), 1);
    assert_eq!(facts(&answers[0])["decision"], "deny");
    assert_eq!(writes_reached(&proxy), 0);
}

#[test]
fn every_tools_call_is_judged_whatever_its_id_and_arguments() {
    let mut proxy = Proxy::start(POLICY);
    proxy.initialize();
    let big = "1180591620717411303424";
    for (id, arguments) in [
        (r#""call-1""#, r#"{"command":"SET"}"#),
        (big, r#"["SET","k","v"]"#),
        ("-7", r#""SET k v""#),
        ("0", "42"),
        ("1", "null"),
    ] {
        let line = format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"valkey_write","arguments":{arguments}}}}}"#
        );
        proxy.send_raw(format!("{line}\n").as_bytes());
        let raw = proxy.recv();
        assert_eq!(facts(&raw)["decision"], "deny", "{line}");
        assert_eq!(
            raw["id"],
            serde_json::from_str::<Value>(id).unwrap(),
            "the id comes back as sent"
        );
    }
    assert_eq!(writes_reached(&proxy), 0);
}

#[test]
fn a_refused_task_augmented_call_gets_a_jsonrpc_error() {
    let mut proxy = Proxy::with_config(POLICY).env("FIXTURE_TASKS", "1").start();
    proxy.initialize();
    let answer = proxy.request(
        json!(4),
        "tools/call",
        json!({"name":"valkey_write","arguments":{},"task":{"ttl":60000}}),
    );
    assert!(answer.get("result").is_none(), "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("read-only session")
    );
    assert_eq!(answer["error"]["data"]["decision"], "deny");
    // An allowed one goes through and gets the server's task.
    let answer = proxy.request(
        json!(5),
        "tools/call",
        json!({"name":"echo","arguments":{},"task":{"ttl":60000}}),
    );
    assert_eq!(answer["result"]["task"]["status"], "working", "{answer}");
}

#[test]
fn batches_are_refused_outside_protocol_2025_03_26() {
    let mut proxy = Proxy::start(POLICY);
    proxy.initialize(); // 2025-11-25
    let answers = send_then_ping(
        &mut proxy,
        br#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"valkey_write"}},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"valkey_read"}},{"jsonrpc":"2.0","method":"notifications/initialized"}]
"#,
    );
    let mut ids: Vec<i64> = answers.iter().map(|a| a["id"].as_i64().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, [1, 2]);
    for answer in &answers {
        assert_eq!(answer["error"]["code"], -32600);
    }
    assert!(!reached_child(&proxy, "valkey_read"));
    assert!(proxy.fixture_received().iter().all(|l| !l.starts_with('[')));
}

#[test]
fn batches_under_2025_03_26_are_split_judged_and_answered_as_one_array() {
    let mut proxy = Proxy::start(POLICY);
    let init = proxy.request(
        json!(0),
        "initialize",
        json!({"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"t","version":"0"}}),
    );
    assert_eq!(init["result"]["protocolVersion"], "2025-03-26");
    proxy.send(&json!([
        {"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"valkey_read","arguments":{"command":"GET","args":["k"]}}},
        {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"valkey_write","arguments":{"command":"SET","args":["k","v"]}}},
        {"jsonrpc":"2.0","method":"notifications/initialized"},
        {"jsonrpc":"2.0","id":3,"method":"ping"}
    ]));
    let answer = proxy.recv();
    let answers = answer.as_array().expect("one array answers the batch");
    assert_eq!(answers.len(), 3);
    let by_id = |id: i64| answers.iter().find(|a| a["id"] == id).unwrap();
    assert_eq!(
        by_id(1)["result"]["content"][0]["text"],
        "valkey_read GET k"
    );
    assert_eq!(facts(by_id(2))["decision"], "deny");
    assert_eq!(by_id(3)["result"], json!({}));
    // The server got each allowed element on its own line, never the array.
    let received = proxy.fixture_received();
    assert!(received.iter().all(|l| !l.starts_with('[')));
    assert!(reached_child(&proxy, "valkey_read"));
    assert_eq!(writes_reached(&proxy), 0);
}

#[test]
fn the_2026_07_28_era_is_judged_without_any_handshake() {
    let mut proxy = Proxy::start(POLICY);
    let meta = json!({"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}});
    let discover = proxy.request(json!(1), "server/discover", json!({"_meta": meta}));
    assert_eq!(
        discover["result"]["supportedVersions"],
        json!(["2026-07-28"])
    );
    let allowed = proxy.request(
        json!(2),
        "tools/call",
        json!({"name":"valkey_read","arguments":{"command":"GET","args":["k"]},"_meta":meta}),
    );
    assert_eq!(allowed["result"]["resultType"], "complete");
    let refused = proxy.request(
        json!(3),
        "tools/call",
        json!({"name":"valkey_write","arguments":{},"_meta":meta}),
    );
    assert_eq!(facts(&refused)["decision"], "deny");
    assert_eq!(refused["result"]["resultType"], "complete");
    // And with no discover either: the very first message may be a call.
    let mut proxy = Proxy::start(POLICY);
    let refused = proxy.request(
        json!(1),
        "tools/call",
        json!({"name":"valkey_write","_meta":meta}),
    );
    assert_eq!(facts(&refused)["decision"], "deny");
    assert_eq!(writes_reached(&proxy), 0);
}

#[test]
fn server_request_ids_are_the_proxy_s_own_and_map_back() {
    let mut proxy = Proxy::start(POLICY);
    proxy.initialize();
    for call in 0..2 {
        proxy.send(&json!({"jsonrpc":"2.0","id":10 + call,"method":"tools/call","params":{"name":"ask_client","arguments":{"method":"sampling/createMessage"}}}));
        let request = proxy.recv();
        assert_eq!(request["method"], "sampling/createMessage");
        assert_eq!(
            request["id"], call,
            "the proxy numbers server requests itself"
        );
        proxy.send(&json!({"jsonrpc":"2.0","id":request["id"],"result":{"n":call}}));
        let answer = proxy.recv();
        assert_eq!(answer["id"], 10 + call);
        assert_eq!(result_text(&answer), format!("{{\"n\":{call}}}"));
    }
    // The server saw its own ids in the client's responses.
    let responses: Vec<Value> = proxy
        .fixture_received()
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v.get("result").is_some())
        .collect();
    assert_eq!(responses.len(), 2);
    // A response to a request nobody made is not forwarded.
    let before = proxy.fixture_received().len();
    send_then_ping(
        &mut proxy,
        b"{\"jsonrpc\":\"2.0\",\"id\":77,\"result\":{}}\n",
    );
    let after = proxy.fixture_received();
    assert_eq!(after.len(), before + 1, "only the ping arrived: {after:?}");
}

#[test]
fn cancellations_reach_the_server_only_for_requests_it_is_working_on() {
    let mut proxy = Proxy::start(POLICY);
    proxy.initialize();
    let refused = proxy.call(1, "valkey_write", json!({}));
    assert_eq!(facts(&refused)["decision"], "deny");
    proxy.send(&json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1,"reason":"x"}}));
    proxy.send(&json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"slow","arguments":{"ms":300}}}));
    proxy.send(
        &json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":2}}),
    );
    let answer = proxy.recv();
    assert_eq!(answer["id"], 2);
    let cancels: Vec<Value> = proxy
        .fixture_received()
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["method"] == "notifications/cancelled")
        .collect();
    assert_eq!(cancels.len(), 1, "{cancels:?}");
    assert_eq!(cancels[0]["params"]["requestId"], 2);
}

#[test]
fn server_output_that_is_not_a_valid_message_never_reaches_the_client() {
    let mut proxy = Proxy::start(POLICY);
    proxy.initialize();
    // The fixture writes garbage, a duplicate-key object, a bare array and invalid UTF-8 first.
    let answer = proxy.call(1, "garbage", json!({}));
    assert_eq!(result_text(&answer), "garbage sent");
    assert!(
        proxy.stderr_has("dropped server output"),
        "{}",
        proxy.stderr()
    );
}

#[test]
fn hidden_tools_vanish_from_every_page_and_look_like_unknown_tools() {
    let mut proxy = Proxy::with_config(POLICY)
        .env("FIXTURE_PAGE_SIZE", "3")
        .start();
    proxy.initialize();
    let mut names = Vec::new();
    let mut cursor: Option<Value> = None;
    let mut pages = 0;
    loop {
        let params = match &cursor {
            Some(c) => json!({"cursor": c}),
            None => json!({}),
        };
        let page = proxy.request(json!(100 + pages), "tools/list", params);
        pages += 1;
        for tool in page["result"]["tools"].as_array().unwrap() {
            names.push(tool["name"].as_str().unwrap().to_string());
        }
        match page["result"].get("nextCursor") {
            Some(next) => cursor = Some(next.clone()),
            None => break,
        }
        assert!(pages < 20);
    }
    assert!(pages > 1, "the fixture paginated");
    assert!(names.contains(&"valkey_read".to_string()));
    assert!(
        names.contains(&"valkey_write".to_string()),
        "denied but not hidden"
    );
    assert!(!names.contains(&"valkey_admin".to_string()), "{names:?}");

    let hidden = proxy.call(1, "valkey_admin", json!({}));
    let missing = proxy.call(1, "no_such_tool", json!({}));
    assert_eq!(hidden["error"]["code"], -32602);
    assert_eq!(hidden["error"]["message"], "Unknown tool: valkey_admin");
    assert_eq!(
        missing["error"],
        json!({"code":-32602,"message":"Unknown tool: no_such_tool"}),
        "the fixture answers unknown tools the same way"
    );
    assert_eq!(hidden["error"]["data"], Value::Null);
    assert!(!reached_child(&proxy, "valkey_admin"));
}

#[test]
fn a_duplicate_id_of_a_request_in_progress_is_refused() {
    let mut proxy = Proxy::start(POLICY);
    proxy.initialize();
    proxy.send(&json!({"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"slow","arguments":{"ms":300}}}));
    proxy.send(&json!({"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo","arguments":{}}}));
    let first = proxy.recv();
    assert_eq!(first["error"]["code"], -32600, "{first}");
    let second = proxy.recv_within(Duration::from_secs(5)).unwrap();
    assert_eq!(result_text(&second), "slept 300ms");
    assert!(!reached_child(&proxy, "echo"));
}
