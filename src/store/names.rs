//! How things in the store are named: the key of a limit, and the store's URL as logs and
//! messages show it (without credentials).

use sha2::{Digest as _, Sha256};

/// The version of the data a key holds (a sorted set of admission times in microseconds,
/// scored by the store's clock). A script that reads the data differently must bump it, so that
/// old and new proxies sharing a store never read each other's data.
const KEY_VERSION: &str = "v1";

/// The longest limit identity kept readable in a key; a longer one (a scope built from a long
/// environment value, say) is replaced by its digest, so keys stay short whatever they are made
/// of. Valkey itself accepts keys of 512 MB; this bound is for the people who read `SCAN`.
const MAX_READABLE_IDENTITY: usize = 128;

/// The key of the log of one limit: `<prefix>:v1:{<identity>}`.
///
/// The identity (rule and scope) is the hash tag, so in a cluster each limit lives on the shard
/// its identity hashes to, and different limits spread over the shards. Everything outside
/// `[A-Za-z0-9._:|=-]` is percent-encoded, in the prefix too, so no `{` or `}` of a rule name or
/// an agent id can move the tag, and no two identities share a key.
pub(super) fn limit_key(prefix: &str, identity: &str) -> String {
    let mut key = String::with_capacity(prefix.len() + identity.len() + 8);
    encode_into(&mut key, prefix);
    key.push(':');
    key.push_str(KEY_VERSION);
    key.push_str(":{");
    let mut encoded = String::with_capacity(identity.len());
    encode_into(&mut encoded, identity);
    if encoded.len() <= MAX_READABLE_IDENTITY {
        key.push_str(&encoded);
    } else {
        // A `%` can come only from encoding, so this never collides with a readable identity.
        key.push_str("%sha256:");
        for byte in &Sha256::digest(identity.as_bytes())[..16] {
            key.push_str(&format!("{byte:02x}"));
        }
    }
    key.push('}');
    key
}

fn encode_into(out: &mut String, text: &str) {
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"._:|=-".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
}

/// The URL with any user name and password replaced by `***`, for logs and messages:
/// `redis://app:secret@host:6379/0` shows as `redis://***@host:6379/0`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        // Not a URL; it may still be a password pasted in the wrong place.
        return "<invalid url>".to_owned();
    };
    let authority_start = scheme_end + 3;
    let rest = &url[authority_start..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_len].rfind('@') {
        Some(at) => format!(
            "{}***{}",
            &url[..authority_start],
            &url[authority_start + at..]
        ),
        None => url.to_owned(),
    }
}

/// The password in a URL, percent-decoded or not, for scrubbing error texts that might echo it.
pub(super) fn url_secrets(url: &str) -> Vec<String> {
    let Some(scheme_end) = url.find("://") else {
        return vec![url.to_owned()];
    };
    let rest = &url[scheme_end + 3..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_len].rfind('@') else {
        return Vec::new();
    };
    let userinfo = &rest[..at];
    let password = userinfo.split_once(':').map_or(userinfo, |(_, p)| p);
    if password.is_empty() {
        return Vec::new();
    }
    let decoded = percent_decode(password);
    let mut secrets = vec![password.to_owned()];
    if decoded != password {
        secrets.push(decoded);
    }
    secrets
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_namespaced_versioned_and_tagged_by_identity() {
        let cases = [
            (
                "mcp-policy-proxy",
                "name:code-connections|global",
                "mcp-policy-proxy:v1:{name:code-connections|global}",
            ),
            (
                "ci-prod",
                "tool:Create*|agent:ci 7",
                "ci-prod:v1:{tool:Create%2A|agent:ci%207}",
            ),
            // Braces can never form a second hash tag, in the identity or in the prefix.
            (
                "a{b}",
                "name:x}|agent:{y",
                "a%7Bb%7D:v1:{name:x%7D|agent:%7By}",
            ),
            ("p", "name:é", "p:v1:{name:%C3%A9}"),
            ("p", "50%", "p:v1:{50%25}"),
        ];
        for (prefix, identity, expected) in cases {
            assert_eq!(limit_key(prefix, identity), expected, "for {identity:?}");
        }
    }

    #[test]
    fn long_identities_become_digests_and_stay_distinct() {
        let long_a = format!("name:r|agent:{}", "a".repeat(200));
        let long_b = format!("name:r|agent:{}b", "a".repeat(199));
        let a = limit_key("p", &long_a);
        let b = limit_key("p", &long_b);
        assert!(a.starts_with("p:v1:{%sha256:") && a.ends_with('}'), "{a}");
        assert_eq!(a.len(), "p:v1:{%sha256:}".len() + 32);
        assert_ne!(a, b);
        assert_eq!(a, limit_key("p", &long_a));
    }

    #[test]
    fn urls_lose_their_credentials() {
        let cases = [
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            ("redis://:secret@host:6379/0", "redis://***@host:6379/0"),
            ("rediss://app:s%40cret@host", "rediss://***@host"),
            ("redis://app:p@ss@host:1/2?x=@", "redis://***@host:1/2?x=@"),
            ("redis://host/0?password=x", "redis://host/0?password=x"),
            ("secret-without-scheme", "<invalid url>"),
        ];
        for (url, expected) in cases {
            assert_eq!(redact_url(url), expected, "for {url:?}");
        }
    }

    #[test]
    fn secrets_are_found_raw_and_decoded() {
        assert_eq!(url_secrets("redis://127.0.0.1:6379"), Vec::<String>::new());
        assert_eq!(url_secrets("redis://:pw@h"), vec!["pw"]);
        assert_eq!(url_secrets("redis://u:p%40w@h"), vec!["p%40w", "p@w"]);
        assert_eq!(url_secrets("redis://only-user@h"), vec!["only-user"]);
    }
}
