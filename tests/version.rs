//! `mcp-policy-proxy --version` through the real binary: the name, the version, and the commit it
//! was built from when the build could know it (build.rs).

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_mcp-policy-proxy");

/// What build.rs finds for a checkout whose top is this package: `git rev-parse --short=9 HEAD`.
/// None without git or outside a checkout, where the version names no commit.
fn checkout_commit() -> Option<String> {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let git = |args: &[&str]| {
        let output = Command::new("git")
            .args(args)
            .current_dir(manifest_dir)
            .output()
            .ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8(output.stdout).unwrap().trim().to_string())
    };
    let toplevel = git(&["rev-parse", "--show-toplevel"])?;
    if Path::new(&toplevel).canonicalize().ok()? != manifest_dir.canonicalize().unwrap() {
        return None;
    }
    git(&["rev-parse", "--short=9", "HEAD"])
}

#[test]
fn version_names_the_program_its_version_and_its_commit() {
    let expected = match checkout_commit() {
        Some(commit) => format!(
            "mcp-policy-proxy {} ({commit})\n",
            env!("CARGO_PKG_VERSION")
        ),
        None => format!("mcp-policy-proxy {}\n", env!("CARGO_PKG_VERSION")),
    };
    for flag in ["--version", "-V"] {
        let output = Command::new(BIN).arg(flag).output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{flag}");
        assert_eq!(
            String::from_utf8(output.stdout).unwrap(),
            expected,
            "{flag}"
        );
        assert!(
            output.stderr.is_empty(),
            "{flag}: stderr {:?}",
            output.stderr
        );
    }
}

#[test]
fn version_needs_no_config_and_starts_no_server() {
    // A config from the environment that does not exist, and a server command that would fail:
    // `--version` answers before either is looked at.
    let output = Command::new(BIN)
        .args(["--version", "--", "/nonexistent/server"])
        .env("MCP_POLICY_PROXY_CONFIG", "/nonexistent/policy.toml")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert!(
        String::from_utf8(output.stdout)
            .unwrap()
            .starts_with("mcp-policy-proxy ")
    );
}
