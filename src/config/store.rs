//! `[store]`: the Valkey or Redis store that holds the fleet-wide limits.

use std::time::Duration;

use super::walk::{Checker, Value, names, one_of};
use super::{Vocabulary, parse_duration};
use crate::store::{OnError, StoreSettings, redact_url};

const STORE_KEYS: &[&str] = &["url", "cluster", "timeout", "on_error", "prefix"];

/// The URL schemes the client speaks; the ones ending in `s` use TLS.
const STORE_SCHEMES: &[&str] = &["redis", "rediss", "valkey", "valkeys"];

/// The names of `[store] on_error`.
pub const ON_ERRORS: Vocabulary<OnError> =
    Vocabulary(&[("deny", OnError::Deny), ("allow", OnError::Allow)]);

/// The longest accepted `[store] timeout`. It is how long a call under a fleet limit may wait
/// for the store, and while the store is slow every such call waits that long: beyond 10 s an
/// agent's call looks hung, and the store is better treated as down.
const MAX_STORE_TIMEOUT: Duration = Duration::from_secs(10);

impl Checker<'_> {
    pub(super) fn store(&mut self, value: &Value<'_>) -> Option<StoreSettings> {
        let table = self.table(value, "\"store\"", "a table ([store])")?;
        self.reject_unknown_keys(table, STORE_KEYS, "in [store]");
        let place = "in [store]";

        let url = match table.get("url") {
            None => {
                self.report(
                    value.span(),
                    "[store] has no \"url\"; add the address of the Valkey or Redis store, e.g. \
                     url = \"redis://127.0.0.1:6379\""
                        .to_owned(),
                );
                None
            }
            Some(value) => self
                .string(value, "\"url\"", place)
                .and_then(|url| self.store_url(value, url)),
        };
        let mut settings = StoreSettings::new(url.clone().unwrap_or_default());

        if let Some(value) = table.get("cluster")
            && let Some(cluster) = self.boolean(value, "\"cluster\"", place)
        {
            settings.cluster = cluster;
        }

        if let Some(value) = table.get("timeout") {
            let parsed = self
                .string(value, "\"timeout\"", place)
                .map(|text| (text, parse_duration(text)));
            match parsed {
                Some((_, Some(timeout))) if !timeout.is_zero() && timeout <= MAX_STORE_TIMEOUT => {
                    settings.timeout = timeout;
                }
                Some((text, _)) => self.report(
                    value.span(),
                    format!(
                        "invalid timeout {text:?} in [store]; expected a duration from \"1ms\" to \
                         \"10s\", such as \"50ms\""
                    ),
                ),
                None => {}
            }
        }

        if let Some(value) = table.get("on_error") {
            match self.string(value, "\"on_error\"", place) {
                Some(name) if ON_ERRORS.contains(&name) => {
                    settings.on_error = ON_ERRORS.parse(name).expect("a known name");
                }
                Some(other) => self.report(
                    value.span(),
                    format!(
                        "unknown on_error {other:?} in [store]; expected {}",
                        one_of(&names(&ON_ERRORS))
                    ),
                ),
                None => {}
            }
        }

        if let Some(value) = table.get("prefix")
            && let Some(prefix) = self.string(value, "\"prefix\"", place)
        {
            if prefix.is_empty() {
                self.report(
                    value.span(),
                    "\"prefix\" in [store] is empty; give the namespace of the proxy's keys, e.g. \
                     \"mcp-policy-proxy\""
                        .to_owned(),
                );
            } else if prefix.contains(['{', '}']) {
                self.report(
                    value.span(),
                    format!(
                        "invalid prefix {prefix:?} in [store]; a prefix cannot contain \"{{\" or \
                         \"}}\", which would decide the cluster slot of every key"
                    ),
                );
            } else {
                settings.prefix = prefix.to_owned();
            }
        }

        url.map(|_| settings)
    }

    /// The URL if the client can use it. Messages show it without its password.
    fn store_url(&mut self, value: &Value<'_>, url: &str) -> Option<String> {
        let Some((scheme, _)) = url.split_once("://") else {
            // Not quoted: it might be a password pasted into the wrong key.
            self.report(
                value.span(),
                "\"url\" in [store] is not a URL; expected e.g. \"redis://127.0.0.1:6379\" or \
                 \"rediss://user:password@valkey.internal:6380\""
                    .to_owned(),
            );
            return None;
        };
        if !STORE_SCHEMES.contains(&scheme) {
            self.report(
                value.span(),
                format!(
                    "invalid url scheme {scheme:?} in [store]; expected {} (\"rediss\" and \
                     \"valkeys\" use TLS)",
                    one_of(STORE_SCHEMES)
                ),
            );
            return None;
        }
        if let Err(reason) = crate::store::check_url(url) {
            self.report(
                value.span(),
                format!(
                    "invalid url {:?} in [store]: {reason}; expected e.g. \
                     \"redis://127.0.0.1:6379\"",
                    redact_url(url)
                ),
            );
            return None;
        }
        Some(url.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use toml::de::DeTable;

    use super::*;
    use crate::config::{Config, Problem};

    /// Reads `[store]` alone, as `Config::parse` will once the document reader calls
    /// [`Checker::store`]: the settings, or every problem with its line and column.
    fn parse(text: &str) -> Result<Option<StoreSettings>, Vec<Problem>> {
        let mut checker = Checker::new(text);
        let (document, syntax_errors) = DeTable::parse_recoverable(text);
        assert!(syntax_errors.is_empty(), "{syntax_errors:?}");
        let settings = document
            .get_ref()
            .get("store")
            .and_then(|value| checker.store(value));
        match checker.finish(Config::default()) {
            Ok(_) => Ok(settings),
            Err(errors) => Err(errors.problems),
        }
    }

    #[test]
    fn defaults_and_every_key() {
        let settings = parse("[store]\nurl = \"redis://127.0.0.1:6379\"\n").unwrap();
        assert_eq!(settings, Some(StoreSettings::new("redis://127.0.0.1:6379")));
        let settings = settings.unwrap();
        assert_eq!(settings.timeout, Duration::from_millis(50));
        assert_eq!(settings.on_error, OnError::Deny);
        assert_eq!(settings.prefix, "mcp-policy-proxy");
        assert!(!settings.cluster);

        let text = "[store]\n\
                    url = \"rediss://fleet:s3cret@valkey.internal:6380/0\"\n\
                    cluster = true\n\
                    timeout = \"200ms\"\n\
                    on_error = \"allow\"\n\
                    prefix = \"ci-prod\"\n";
        assert_eq!(
            parse(text).unwrap(),
            Some(StoreSettings {
                url: "rediss://fleet:s3cret@valkey.internal:6380/0".to_owned(),
                cluster: true,
                timeout: Duration::from_millis(200),
                on_error: OnError::Allow,
                prefix: "ci-prod".to_owned(),
            })
        );
        for url in ["valkey://a:1", "valkeys://a", "redis://[::1]:6379"] {
            let text = format!("[store]\nurl = {url:?}\n");
            assert!(parse(&text).is_ok_and(|s| s.is_some()), "{url}");
        }
        assert_eq!(parse("[server]\ncommand = \"x\"\n"), Ok(None));
    }

    /// Each case: the `[store]` text, then the line, column and exact message of its only
    /// problem.
    const CASES: &[(&str, usize, usize, &str)] = &[
        (
            "[store]\nurl = \"redis://h\"\nurl_env = \"X\"\n",
            3,
            1,
            "unknown key \"url_env\" in [store]; expected one of \"url\", \"cluster\", \
             \"timeout\", \"on_error\", \"prefix\"",
        ),
        (
            "[store]\ntimeout = \"50ms\"\n",
            1,
            1,
            "[store] has no \"url\"; add the address of the Valkey or Redis store, e.g. \
             url = \"redis://127.0.0.1:6379\"",
        ),
        (
            "store = \"redis://h\"\n",
            1,
            9,
            "\"store\" must be a table ([store]), found string \"redis://h\"",
        ),
        (
            "[store]\nurl = 6379\n",
            2,
            7,
            "\"url\" in [store] must be a string, found integer 6379",
        ),
        (
            "[store]\nurl = \"http://user:hunter2@h:6379\"\n",
            2,
            7,
            "invalid url scheme \"http\" in [store]; expected one of \"redis\", \"rediss\", \
             \"valkey\", \"valkeys\" (\"rediss\" and \"valkeys\" use TLS)",
        ),
        (
            "[store]\nurl = \"hunter2\"\n",
            2,
            7,
            "\"url\" in [store] is not a URL; expected e.g. \"redis://127.0.0.1:6379\" or \
             \"rediss://user:password@valkey.internal:6380\"",
        ),
        (
            "[store]\nurl = \"redis://:hunter2@0.0.0.0:6379\"\n",
            2,
            7,
            "invalid url \"redis://***@0.0.0.0:6379\" in [store]: cannot connect to a wildcard \
             address (0.0.0.0 or ::); expected e.g. \"redis://127.0.0.1:6379\"",
        ),
        (
            "[store]\nurl = \"rediss://u:hunter2@h:99999\"\n",
            2,
            7,
            "invalid url \"rediss://***@h:99999\" in [store]: redis URL did not parse; expected \
             e.g. \"redis://127.0.0.1:6379\"",
        ),
        (
            "[store]\nurl = \"redis://h\"\ncluster = \"yes\"\n",
            3,
            11,
            "\"cluster\" in [store] must be true or false, found string \"yes\"",
        ),
        (
            "[store]\nurl = \"redis://h\"\ntimeout = \"0ms\"\n",
            3,
            11,
            "invalid timeout \"0ms\" in [store]; expected a duration from \"1ms\" to \"10s\", \
             such as \"50ms\"",
        ),
        (
            "[store]\nurl = \"redis://h\"\ntimeout = \"11s\"\n",
            3,
            11,
            "invalid timeout \"11s\" in [store]; expected a duration from \"1ms\" to \"10s\", \
             such as \"50ms\"",
        ),
        (
            "[store]\nurl = \"redis://h\"\ntimeout = \"50\"\n",
            3,
            11,
            "invalid timeout \"50\" in [store]; expected a duration from \"1ms\" to \"10s\", \
             such as \"50ms\"",
        ),
        (
            "[store]\nurl = \"redis://h\"\ntimeout = 50\n",
            3,
            11,
            "\"timeout\" in [store] must be a string, found integer 50",
        ),
        (
            "[store]\nurl = \"redis://h\"\non_error = \"open\"\n",
            3,
            12,
            "unknown on_error \"open\" in [store]; expected \"deny\" or \"allow\"",
        ),
        (
            "[store]\nurl = \"redis://h\"\nprefix = \"\"\n",
            3,
            10,
            "\"prefix\" in [store] is empty; give the namespace of the proxy's keys, e.g. \
             \"mcp-policy-proxy\"",
        ),
        (
            "[store]\nurl = \"redis://h\"\nprefix = \"team-{a}\"\n",
            3,
            10,
            "invalid prefix \"team-{a}\" in [store]; a prefix cannot contain \"{\" or \"}\", \
             which would decide the cluster slot of every key",
        ),
    ];

    #[test]
    fn every_problem_is_reported_where_it_is() {
        for &(text, line, column, message) in CASES {
            let expected = vec![Problem {
                line,
                column,
                message: message.to_owned(),
            }];
            assert_eq!(parse(text), Err(expected), "for config:\n{text}");
        }
    }

    #[test]
    fn all_problems_at_once_and_never_a_password() {
        let text = "[store]\n\
                    url = \"ftp://u:hunter2@h\"\n\
                    timeout = \"1h\"\n\
                    on_error = \"ignore\"\n\
                    prefix = \"{x}\"\n";
        let problems = parse(text).unwrap_err();
        let at: Vec<_> = problems.iter().map(|p| (p.line, p.column)).collect();
        assert_eq!(at, [(2, 7), (3, 11), (4, 12), (5, 10)]);
        assert!(problems.iter().all(|p| !p.message.contains("hunter2")));
    }
}
