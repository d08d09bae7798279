//! Names the commit the proxy was built from, for `--version`: `MCP_POLICY_PROXY_VERSION` is the
//! package version, followed by ` (<commit>)` when the commit is known. It is known from git in a
//! checkout of this repository, or from `.cargo_vcs_info.json` in a package from crates.io. A
//! missing git, a tarball without either, or any failure leaves the commit out: the build never
//! fails for it.

use std::path::Path;
use std::process::Command;

fn main() {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let manifest_dir = Path::new(&manifest_dir);
    println!("cargo:rerun-if-changed=build.rs");
    let commit = commit_from_git(manifest_dir).or_else(|| commit_from_vcs_info(manifest_dir));
    let version = env!("CARGO_PKG_VERSION");
    let full = match commit {
        Some(commit) => format!("{version} ({commit})"),
        None => version.to_string(),
    };
    println!("cargo:rustc-env=MCP_POLICY_PROXY_VERSION={full}");
}

/// `git rev-parse --short HEAD`, only when this package is the top of the git work tree: a
/// package unpacked inside some other repository (as `cargo package` verifies it, under
/// `target/package/`) must not take that repository's commit.
fn commit_from_git(manifest_dir: &Path) -> Option<String> {
    let toplevel = git(manifest_dir, &["rev-parse", "--show-toplevel"])?;
    if Path::new(&toplevel).canonicalize().ok()? != manifest_dir.canonicalize().ok()? {
        return None;
    }
    // Built again when HEAD moves: the file HEAD, and the branch it points to, loose or packed.
    for name in ["HEAD", "packed-refs"] {
        rerun_if_exists(
            manifest_dir,
            git(manifest_dir, &["rev-parse", "--git-path", name]),
        );
    }
    if let Some(branch) = git(manifest_dir, &["symbolic-ref", "-q", "HEAD"]) {
        rerun_if_exists(
            manifest_dir,
            git(manifest_dir, &["rev-parse", "--git-path", &branch]),
        );
    }
    git(manifest_dir, &["rev-parse", "--short=9", "HEAD"])
}

/// The `"sha1"` that `cargo package` records in `.cargo_vcs_info.json`.
fn commit_from_vcs_info(manifest_dir: &Path) -> Option<String> {
    let path = manifest_dir.join(".cargo_vcs_info.json");
    let text = std::fs::read_to_string(&path).ok()?;
    println!("cargo:rerun-if-changed={}", path.display());
    let (_, rest) = text.split_once("\"sha1\"")?;
    let (_, rest) = rest.split_once('"')?;
    let (sha1, _) = rest.split_once('"')?;
    let short = sha1.get(..9)?;
    short
        .bytes()
        .all(|b| b.is_ascii_hexdigit())
        .then(|| short.to_string())
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// A path git printed, relative to `dir` unless absolute.
fn rerun_if_exists(dir: &Path, path: Option<String>) {
    if let Some(path) = path {
        let path = dir.join(path);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}
