//! `[classes]` (named sets of tools, by name, glob or annotation hint) and `[pinning]`.

use std::path::PathBuf;

use super::walk::{Checker, Value, names, one_of};
use super::{ClassMember, ClassSpec, HINTS, PIN_MODES, Pinning};

const PINNING_KEYS: &[&str] = &["mode", "file"];

impl Checker<'_> {
    pub(super) fn classes(&mut self, value: &Value<'_>) -> Vec<ClassSpec> {
        let Some(table) = self.table(
            value,
            "\"classes\"",
            "a table of classes such as [classes] write = [\"valkey_write\", \"json_*\"]",
        ) else {
            return Vec::new();
        };
        let mut entries: Vec<_> = table.iter().collect();
        entries.sort_by_key(|(key, _)| key.span().start);
        let mut classes = Vec::new();
        for (key, value) in entries {
            let name: &str = key.get_ref();
            let place = format!("in class {name:?}");
            let Some(items) = self.array(
                value,
                &format!("class {name:?}"),
                "an array of tool names, globs and hints such as \"@readOnly\"",
            ) else {
                continue;
            };
            let mut members = Vec::new();
            for item in items {
                let Some(text) = self.string(item, "a member", &place) else {
                    continue;
                };
                if let Some(hint) = text.strip_prefix('@') {
                    let (wanted, hint) = match hint.strip_prefix('!') {
                        Some(rest) => (false, rest),
                        None => (true, hint),
                    };
                    match HINTS.parse(hint) {
                        Some(hint) => members.push(ClassMember::Hint { hint, wanted }),
                        None => self.report(
                            item.span(),
                            format!(
                                "unknown hint {text:?} {place}; expected @ or @! followed by {}",
                                one_of(&names(&HINTS))
                            ),
                        ),
                    }
                    continue;
                }
                if text.is_empty() || text.trim() != text {
                    self.report(
                        item.span(),
                        format!("member {text:?} {place} is empty or has spaces at its ends"),
                    );
                    continue;
                }
                match globset::GlobBuilder::new(text)
                    .literal_separator(false)
                    .build()
                {
                    Ok(glob) => {
                        let is_glob = text.contains(['*', '?', '[', ']', '{', '}', '\\']);
                        members.push(ClassMember::Tool(text.to_owned(), is_glob.then_some(glob)));
                    }
                    Err(err) => self.report(
                        item.span(),
                        format!("invalid tool pattern {text:?} {place}: {}", err.kind()),
                    ),
                }
            }
            classes.push(ClassSpec {
                name: name.to_owned(),
                members,
            });
        }
        classes
    }

    /// Every `class = "..."` of a rule names a class of `[classes]`.
    pub(super) fn check_class_references(&mut self, classes: &[ClassSpec]) {
        let references = std::mem::take(&mut self.class_references);
        for (name, span) in references {
            if !classes.iter().any(|c| c.name == name) {
                let known: Vec<&str> = classes.iter().map(|c| c.name.as_str()).collect();
                let expected = if known.is_empty() {
                    "define it in [classes], e.g. [classes] write = [\"valkey_write\"]".to_owned()
                } else {
                    format!("expected {}", one_of(&known))
                };
                self.report(span, format!("unknown class {name:?}; {expected}"));
            }
        }
    }

    pub(super) fn pinning(&mut self, value: &Value<'_>) -> Pinning {
        let mut pinning = Pinning::default();
        let Some(table) = self.table(value, "\"pinning\"", "a table ([pinning])") else {
            return pinning;
        };
        self.reject_unknown_keys(table, PINNING_KEYS, "in [pinning]");
        if let Some(value) = table.get("mode") {
            match self.string(value, "\"mode\"", "in [pinning]") {
                Some(name) if PIN_MODES.contains(&name) => {
                    pinning.mode = PIN_MODES.parse(name).expect("a known name");
                }
                Some(other) => self.report(
                    value.span(),
                    format!(
                        "unknown mode {other:?} in [pinning]; expected {}",
                        one_of(&names(&PIN_MODES))
                    ),
                ),
                None => {}
            }
        }
        if let Some(value) = table.get("file")
            && let Some(path) = self.string(value, "\"file\"", "in [pinning]")
        {
            if path.is_empty() {
                self.report(value.span(), "\"file\" in [pinning] is empty".to_owned());
            } else {
                pinning.file = Some(PathBuf::from(path));
            }
        }
        pinning
    }
}
