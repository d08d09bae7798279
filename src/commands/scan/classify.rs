//! Which class a tool belongs to, for a starter policy: from the annotations it gives, else
//! from the words of its name. Pure: a tool definition in, a class out.

use serde_json::Value;

/// What a starter policy groups tools by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    Read,
    Write,
    Destructive,
    Other,
}

impl Class {
    pub const ALL: [Class; 4] = [Class::Read, Class::Write, Class::Destructive, Class::Other];

    pub fn as_str(self) -> &'static str {
        match self {
            Class::Read => "read",
            Class::Write => "write",
            Class::Destructive => "destructive",
            Class::Other => "other",
        }
    }
}

/// What a tool's class was decided from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// The tool's `readOnlyHint` / `destructiveHint`, with the specification's defaults for
    /// the one it leaves out.
    Annotations,
    /// A word of its name.
    Name,
    /// Nothing: neither its annotations nor its name say.
    Nothing,
}

/// Words of a tool name that make it destructive. A word that starts with one counts too
/// (`flushall`, `administer`).
const DESTRUCTIVE_WORDS: &[&str] = &[
    "delete",
    "drop",
    "flush",
    "admin",
    "remove",
    "destroy",
    "purge",
    "truncate",
    "erase",
    "wipe",
    "kill",
    "shutdown",
    "terminate",
];
/// Destructive words that count only whole: they start too many other words (`delta`, `rmi`).
const DESTRUCTIVE_EXACT: &[&str] = &["del", "rm"];
/// Words of a read-only tool; the first read or write word of a name decides (`list_updates`
/// reads, `update_list` writes).
const READ_WORDS: &[&str] = &[
    "get",
    "list",
    "read",
    "search",
    "describe",
    "aggregate",
    "fetch",
    "find",
    "show",
    "view",
    "count",
    "lookup",
];
/// Words of a tool that writes. `arr` is a prefix (`arrappend`, `arrpop`: JSON array edits).
const WRITE_WORDS: &[&str] = &[
    "set", "add", "write", "create", "update", "put", "manage", "append", "insert", "upsert",
    "patch", "edit", "save", "rename", "move", "push", "pop", "trim", "upload", "send", "post",
];
const WRITE_PREFIXES: &[&str] = &["arr"];

/// The class of one `tools/list` entry: from its annotations when it gives `readOnlyHint` or
/// `destructiveHint` (a missing `destructiveHint` defaults to true, as the specification says),
/// else from the words of its name.
pub fn classify(tool: &Value) -> (Class, Basis) {
    if let Some(annotations) = tool.get("annotations").and_then(Value::as_object) {
        let read_only = annotations.get("readOnlyHint").and_then(Value::as_bool);
        let destructive = annotations.get("destructiveHint").and_then(Value::as_bool);
        if read_only.is_some() || destructive.is_some() {
            let class = if read_only == Some(true) {
                Class::Read
            } else if destructive.unwrap_or(true) {
                Class::Destructive
            } else {
                Class::Write
            };
            return (class, Basis::Annotations);
        }
    }
    let name = tool.get("name").and_then(Value::as_str).unwrap_or_default();
    match classify_name(name) {
        Some(class) => (class, Basis::Name),
        None => (Class::Other, Basis::Nothing),
    }
}

/// The class a tool's name suggests, if a word of it does.
pub fn classify_name(name: &str) -> Option<Class> {
    let words = words(name);
    let destructive = words.iter().any(|word| {
        DESTRUCTIVE_EXACT.contains(&word.as_str())
            || DESTRUCTIVE_WORDS.iter().any(|verb| word.starts_with(verb))
    });
    if destructive {
        return Some(Class::Destructive);
    }
    words.iter().find_map(|word| {
        let is = |verbs: &[&str]| {
            verbs.iter().any(|verb| {
                word == verb
                    || word
                        .strip_prefix(verb)
                        .is_some_and(|rest| rest == "s" || rest == "es")
            })
        };
        if is(READ_WORDS) {
            Some(Class::Read)
        } else if is(WRITE_WORDS) || WRITE_PREFIXES.iter().any(|p| word.starts_with(p)) {
            Some(Class::Write)
        } else {
            None
        }
    })
}

/// The lower-case words of a name: split at anything but letters and digits, and where
/// camelCase changes case (`CreateCodeConnection`, `getHTTPStatus`).
fn words(name: &str) -> Vec<String> {
    let mut words = Vec::new();
    for part in name.split(|c: char| !c.is_alphanumeric()) {
        let chars: Vec<char> = part.chars().collect();
        let mut word = String::new();
        for (i, &c) in chars.iter().enumerate() {
            let previous = i.checked_sub(1).map(|j| chars[j]);
            let next = chars.get(i + 1);
            let boundary = c.is_uppercase()
                && previous.is_some_and(|p| {
                    p.is_lowercase()
                        || p.is_ascii_digit()
                        || (p.is_uppercase() && next.is_some_and(|n| n.is_lowercase()))
                });
            if boundary && !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            word.extend(c.to_lowercase());
        }
        if !word.is_empty() {
            words.push(word);
        }
    }
    words
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn classes_from_annotations_then_names() {
        let cases: &[(Value, Class, Basis)] = &[
            (
                json!({"name": "drop_table", "annotations": {"readOnlyHint": true}}),
                Class::Read,
                Basis::Annotations,
            ),
            // The specification's default for destructiveHint is true.
            (
                json!({"name": "get", "annotations": {"readOnlyHint": false}}),
                Class::Destructive,
                Basis::Annotations,
            ),
            (
                json!({"name": "x", "annotations": {"destructiveHint": false}}),
                Class::Write,
                Basis::Annotations,
            ),
            (
                json!({"name": "x", "annotations": {"readOnlyHint": false, "destructiveHint": true}}),
                Class::Destructive,
                Basis::Annotations,
            ),
            // A title says nothing about what the tool does.
            (
                json!({"name": "json_get", "annotations": {"title": "Get"}}),
                Class::Read,
                Basis::Name,
            ),
            (json!({"name": "valkey_read"}), Class::Read, Basis::Name),
            (json!({"name": "valkey_write"}), Class::Write, Basis::Name),
            (
                json!({"name": "valkey_admin"}),
                Class::Destructive,
                Basis::Name,
            ),
            (json!({"name": "json_arrappend"}), Class::Write, Basis::Name),
            (json!({"name": "json_arrpop"}), Class::Write, Basis::Name),
            (json!({"name": "manage_index"}), Class::Write, Basis::Name),
            (json!({"name": "add_documents"}), Class::Write, Basis::Name),
            (json!({"name": "aggregate"}), Class::Read, Basis::Name),
            (
                json!({"name": "CreateCodeConnection"}),
                Class::Write,
                Basis::Name,
            ),
            (
                json!({"name": "deleteRepository"}),
                Class::Destructive,
                Basis::Name,
            ),
            (json!({"name": "FLUSHALL"}), Class::Destructive, Basis::Name),
            (json!({"name": "getHTTPStatus"}), Class::Read, Basis::Name),
            (json!({"name": "list_updates"}), Class::Read, Basis::Name),
            (json!({"name": "update_list"}), Class::Write, Basis::Name),
            // Destructive wins wherever the word is.
            (
                json!({"name": "get_and_delete"}),
                Class::Destructive,
                Basis::Name,
            ),
            (json!({"name": "lists"}), Class::Read, Basis::Name),
            (json!({"name": "delta"}), Class::Other, Basis::Nothing),
            (json!({"name": "settings"}), Class::Other, Basis::Nothing),
            (json!({"name": "echo"}), Class::Other, Basis::Nothing),
        ];
        for (tool, class, basis) in cases {
            assert_eq!(classify(tool), (*class, *basis), "{tool}");
        }
    }

    #[test]
    fn words_split_at_separators_and_case_changes() {
        let cases: &[(&str, &[&str])] = &[
            ("CreateCodeConnection", &["create", "code", "connection"]),
            ("getHTTPStatus", &["get", "http", "status"]),
            ("json_arrappend", &["json", "arrappend"]),
            ("a.b-c d", &["a", "b", "c", "d"]),
            ("v2Get", &["v2", "get"]),
            ("", &[]),
        ];
        for (name, expected) in cases {
            assert_eq!(words(name), *expected, "{name}");
        }
    }
}
