//! The server's whole process tree ends with the proxy, however the proxy ends: here, killed
//! outright (SIGKILL), which no handler of the proxy's can see. Host configs start servers
//! through launchers (`npx`, `uvx`, `sh -c`), so the real server is a grandchild; the
//! launcher here is `sh -c "...; exit 0"`, which cannot exec the server in its place, and the
//! server ignores both EOF and SIGTERM. The same holds for what an approval command starts.
//!
//! Linux and macOS share the mechanism (a process group per child and a watchdog that kills it
//! when the proxy's end of a pipe closes); these tests read `/proc` to see processes, so they
//! run on Linux. Windows' mechanism (a Job Object) is tested by the Wine smoke test.
#![cfg(target_os = "linux")]

mod common;

use std::time::{Duration, Instant};

use common::*;

const POLICY: &str = r#"
[[rules]]
tool = "CreateCodeConnection"
action = "deny"
reason = "code connections expose source code"
"#;

const APPROVAL: &str = r#"
[[rules]]
tool = "CreateCodeConnection"
action = "require_approval"
reason = "code connections expose source code"

[approval]
channels = ["command"]
timeout = "5m"
"#;

fn read_pid(path: &std::path::Path) -> i32 {
    let start = Instant::now();
    loop {
        if let Some(pid) = std::fs::read_to_string(path)
            .ok()
            .and_then(|text| text.trim().parse().ok())
        {
            return pid;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{} was never written",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_killed_proxy_takes_a_server_started_through_a_launcher_with_it() {
    // Its stderr goes nowhere: a server that writes stderr after the proxy is gone would die of
    // SIGPIPE on the proxy's closed pipe, which is not the mechanism under test.
    let launcher = format!("{} 2>/dev/null; exit 0", fixture());
    let mut proxy = Proxy::with_config(POLICY)
        .env("FIXTURE_IGNORE_EOF", "1")
        .env("FIXTURE_IGNORE_SIGTERM", "1")
        .child(&["--", "sh", "-c", &launcher])
        .start();
    proxy.initialize();
    let server = proxy.fixture_pid();
    assert!(alive(server));
    proxy.child.kill().unwrap();
    proxy.wait(Duration::from_secs(5));
    wait_gone(server, Duration::from_secs(5));
}

#[test]
fn a_killed_proxy_takes_what_its_approval_command_started_with_it() {
    let dir = TempDir::new();
    let pidfile = dir.path().join("approver-child.pid");
    let approver = format!(
        "sh -c 'trap \"\" TERM; echo $$ > {0}.tmp; mv {0}.tmp {0}; exec sleep 300' & wait",
        pidfile.display()
    );
    let policy = format!(
        "{APPROVAL}command = [\"sh\", \"-c\", {}]\n",
        toml::Value::String(approver)
    );
    let mut proxy = Proxy::start(&policy);
    proxy.initialize();
    proxy.send(&serde_json::json!({
        "jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "CreateCodeConnection", "arguments": {}}
    }));
    let grandchild = read_pid(&pidfile);
    assert!(alive(grandchild));
    proxy.child.kill().unwrap();
    proxy.wait(Duration::from_secs(5));
    wait_gone(grandchild, Duration::from_secs(5));
}
