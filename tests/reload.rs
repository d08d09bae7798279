//! Hot reload through the real binary: SIGHUP or an edited file replaces the policy between two
//! decisions; rate-limit windows stay with their rules; an invalid file changes nothing.

mod common;

use common::*;
use serde_json::json;

fn write_policy(proxy: &Proxy, text: &str) {
    // Written whole under another name, then renamed: a reader never sees half a file.
    let path = proxy.config_path();
    let next = path.with_extension("next");
    std::fs::write(&next, text).unwrap();
    std::fs::rename(&next, &path).unwrap();
}

/// Sends SIGHUP and waits until the proxy has handled it `n` times (counting its log lines).
#[cfg(unix)]
fn reload(proxy: &Proxy, n: usize) {
    proxy.signal(libc::SIGHUP);
    let start = std::time::Instant::now();
    while proxy.stderr().matches("SIGHUP:").count() < n {
        assert!(
            start.elapsed().as_secs() < 10,
            "no reload logged: {}",
            proxy.stderr()
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[cfg(unix)]
#[test]
fn sighup_adds_a_rule_and_the_next_call_obeys_it() {
    let mut proxy = Proxy::start("[policy]\ndefault = \"allow\"\n");
    proxy.initialize();
    assert_eq!(
        proxy.call(1, "valkey_write", json!({"command":"SET"}))["result"]["isError"],
        false
    );
    write_policy(
        &proxy,
        "[policy]\ndefault = \"allow\"\n[[rules]]\ntool = \"valkey_write\"\naction = \"deny\"\nreason = \"frozen for the release\"\n",
    );
    reload(&proxy, 1);
    let answer = proxy.call(2, "valkey_write", json!({"command":"SET"}));
    assert_eq!(facts(&answer)["reason"], "frozen for the release");
    assert!(proxy.stderr_has("reloaded the policy"));
}

#[cfg(unix)]
#[test]
fn a_rate_limit_keeps_its_count_across_a_reload() {
    let limited = "[[rules]]\nname = \"writes\"\ntool = \"valkey_write\"\naction = \"allow\"\nrate_limit = { max = 2, window = \"60s\" }\n";
    let mut proxy = Proxy::start(limited);
    proxy.initialize();
    assert_eq!(
        proxy.call(1, "valkey_write", json!({"command":"SET"}))["result"]["isError"],
        false
    );
    // A rule inserted above it: the window stays with the rule of the same name.
    write_policy(
        &proxy,
        &format!("[[rules]]\ntool = \"CreateCodeConnection\"\naction = \"deny\"\n{limited}"),
    );
    reload(&proxy, 1);
    assert_eq!(
        proxy.call(2, "valkey_write", json!({"command":"SET"}))["result"]["isError"],
        false
    );
    let third = proxy.call(3, "valkey_write", json!({"command":"SET"}));
    assert_eq!(facts(&third)["decision"], "rate_limited", "{third}");
    assert_eq!(facts(&third)["rule"], 2);
}

#[cfg(unix)]
#[test]
fn an_invalid_file_keeps_the_old_policy_and_says_where_it_is_wrong() {
    let mut proxy = Proxy::start("[[rules]]\ntool = \"valkey_write\"\naction = \"deny\"\n");
    proxy.initialize();
    write_policy(
        &proxy,
        "[[rules]]\ntool = \"valkey_write\"\naction = \"alow\"\n",
    );
    reload(&proxy, 1);
    assert!(
        proxy.stderr_has("the old one stays in force"),
        "{}",
        proxy.stderr()
    );
    assert!(
        proxy.stderr_has("line 3, column 10: unknown action \"alow\""),
        "{}",
        proxy.stderr()
    );
    let answer = proxy.call(1, "valkey_write", json!({"command":"SET"}));
    assert_eq!(
        facts(&answer)["decision"],
        "deny",
        "the old policy still decides"
    );
}

#[test]
fn an_edited_file_is_picked_up_without_a_signal() {
    let mut proxy = Proxy::start("[policy]\ndefault = \"allow\"\n");
    proxy.initialize();
    write_policy(
        &proxy,
        "[policy]\ndefault = \"allow\"\n[[rules]]\ntool = \"echo\"\naction = \"deny\"\nreason = \"edited\"\n",
    );
    assert!(
        proxy.stderr_has("the policy file changed: reloaded the policy"),
        "{}",
        proxy.stderr()
    );
    let answer = proxy.call(1, "echo", json!({}));
    assert_eq!(facts(&answer)["reason"], "edited");
}

#[cfg(unix)]
#[test]
fn server_changes_are_reported_as_needing_a_restart() {
    let mut proxy = Proxy::start("[limits]\nmax_line_bytes = 100000\n");
    proxy.initialize();
    write_policy(&proxy, "[limits]\nmax_line_bytes = 200000\n");
    reload(&proxy, 1);
    assert!(
        proxy.stderr_has("[limits] changed; that takes effect only when the proxy is restarted"),
        "{}",
        proxy.stderr()
    );
}

/// A policy is not loosened by what it governs: with `[policy] reload = "never"` an edit to the
/// file (as a server that can write there would make) changes nothing, and with "signal" only
/// SIGHUP reloads. The edit's absence is read from the log: the file is checked once a second.
#[cfg(unix)]
#[test]
fn reload_never_and_signal_ignore_an_edited_file() {
    for mode in ["never", "signal"] {
        let strict = format!(
            "[policy]\ndefault = \"allow\"\nreload = \"{mode}\"\n[[rules]]\ntool = \"echo\"\naction = \"deny\"\nreason = \"strict\"\n"
        );
        let mut proxy = Proxy::start(&strict);
        proxy.initialize();
        write_policy(&proxy, "[policy]\ndefault = \"allow\"\n");
        std::thread::sleep(std::time::Duration::from_millis(2500));
        assert!(
            !proxy.stderr().contains("reloaded the policy"),
            "{mode}: {}",
            proxy.stderr()
        );
        let answer = proxy.call(1, "echo", json!({}));
        assert_eq!(facts(&answer)["reason"], "strict", "{mode}");
        proxy.signal(libc::SIGHUP);
        if mode == "signal" {
            assert!(
                proxy.stderr_has("SIGHUP: reloaded the policy"),
                "{}",
                proxy.stderr()
            );
            let answer = proxy.call(2, "echo", json!({}));
            assert!(
                answer.get("result").is_some() && facts(&answer).is_null(),
                "{answer}"
            );
        } else {
            assert!(
                proxy.stderr_has("the policy stays as it is"),
                "{}",
                proxy.stderr()
            );
            let answer = proxy.call(2, "echo", json!({}));
            assert_eq!(facts(&answer)["reason"], "strict");
        }
    }
}
