//! An invalid configuration never starts the server: every problem is listed with its line and
//! column, and the proxy exits with status 2.

mod common;

use std::time::Duration;

use common::*;

/// Starts the proxy with `config`, expects it to refuse, and returns its stderr.
#[track_caller]
fn refused(config: &str) -> String {
    let mut proxy = Proxy::start(config);
    let status = proxy.wait(Duration::from_secs(5));
    assert_eq!(status.code(), Some(2), "stderr:\n{}", proxy.stderr());
    assert!(
        !proxy.pidfile.exists(),
        "the server must not start with an invalid config"
    );
    proxy.stderr()
}

#[test]
fn each_kind_of_problem_is_reported_with_its_place() {
    let cases: &[(&str, &str)] = &[
        (
            "[[rules]]\ntool = \"x\"\naction = \"alow\"\n",
            "line 3, column 10: unknown action \"alow\"",
        ),
        (
            "[policy]\ndefualt = \"deny\"\n",
            "line 2, column 1: unknown key \"defualt\"",
        ),
        ("[policy]\ndefault = \"maybe\"\n", "line 2, column 11:"),
        ("[[rules]]\naction = \"deny\"\n", "line 1"),
        (
            "[[rules]]\ntool = \"valkey_[\"\naction = \"deny\"\n",
            "line 2, column 8:",
        ),
        (
            "[[rules]]\ntool = \"x\"\naction = \"allow\"\nrate_limit = { max = 0, window = \"60s\" }\n",
            "line 4",
        ),
        (
            "[[rules]]\ntool = \"x\"\naction = \"allow\"\nrate_limit = { max = 5, window = \"sixty\" }\n",
            "line 4",
        ),
        (
            "[[rules]]\ntool = \"x\"\naction = \"deny\"\nrate_limit = { max = 5, window = 60 }\n",
            "line 4",
        ),
        ("[policy\ndefault = \"allow\"\n", "line 1"),
        ("bogus = 1\n", "line 1, column 1: unknown key \"bogus\""),
    ];
    for (config, expected) in cases {
        let stderr = refused(config);
        assert!(
            stderr.contains(expected),
            "config:\n{config}\nexpected {expected:?} in:\n{stderr}"
        );
    }
}

#[test]
fn every_problem_is_listed_not_just_the_first() {
    let stderr = refused(
        "[policy]\ndefault = \"sometimes\"\n\n[[rules]]\ntool = \"a\"\naction = \"alow\"\n\n[[rules]]\ntool = \"b\"\naction = \"deny\"\ncolour = \"red\"\n",
    );
    for place in [
        "line 2, column 11",
        "line 6, column 10",
        "line 11, column 1",
    ] {
        assert!(stderr.contains(place), "{place} missing from:\n{stderr}");
    }
}

#[test]
fn a_missing_config_file_is_an_error() {
    let mut proxy = Proxy::without_config()
        .arg("--config")
        .arg("/nonexistent/policy.toml")
        .start();
    assert_eq!(proxy.wait(Duration::from_secs(5)).code(), Some(2));
    assert!(
        proxy.stderr().contains("/nonexistent/policy.toml"),
        "{}",
        proxy.stderr()
    );
    assert!(!proxy.pidfile.exists());
}

#[test]
fn no_config_at_all_never_starts_an_unprotected_server() {
    let mut proxy = Proxy::without_config().start();
    assert_eq!(proxy.wait(Duration::from_secs(5)).code(), Some(2));
    assert!(
        proxy.stderr().contains("no policy given"),
        "{}",
        proxy.stderr()
    );
    assert!(!proxy.pidfile.exists());
}

#[test]
fn no_server_command_anywhere_is_an_error() {
    let mut proxy = Proxy::with_config("[policy]\ndefault = \"deny\"\n")
        .child(&[])
        .start();
    assert_eq!(proxy.wait(Duration::from_secs(5)).code(), Some(2));
    assert!(
        proxy.stderr().contains("no MCP server to run"),
        "{}",
        proxy.stderr()
    );
}

#[test]
fn check_validates_without_starting_the_server() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml");
    let mut proxy = Proxy::without_config()
        .arg("--config")
        .arg(example)
        .arg("--check")
        .start();
    assert_eq!(
        proxy.wait(Duration::from_secs(5)).code(),
        Some(0),
        "{}",
        proxy.stderr()
    );
    let stderr = proxy.stderr();
    assert!(stderr.contains("valid"), "{stderr}");
    assert!(stderr.contains("CreateCodeConnection"), "{stderr}");
    assert!(!proxy.pidfile.exists());
}
