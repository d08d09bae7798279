//! `[approval]`: the ways the proxy may ask a person, and how long a person has.

use std::time::Duration;

use super::walk::{Checker, Value, names, one_of};
use super::{Vocabulary, parse_duration};
use crate::approval::{ApprovalSettings, Channel};

const APPROVAL_KEYS: &[&str] = &["channels", "timeout", "command"];

/// The names of `[approval] channels`.
pub const CHANNELS: Vocabulary<Channel> = Vocabulary(&[
    ("elicitation", Channel::Elicitation),
    ("command", Channel::Command),
]);

/// The longest accepted `[approval] timeout`: a call held longer than a day has been forgotten.
const MAX_APPROVAL_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

impl Checker<'_> {
    pub(super) fn approval(&mut self, value: &Value<'_>) -> ApprovalSettings {
        let mut approval = ApprovalSettings::default();
        let Some(table) = self.table(value, "\"approval\"", "a table ([approval])") else {
            return approval;
        };
        self.reject_unknown_keys(table, APPROVAL_KEYS, "in [approval]");
        let place = "in [approval]";

        if let Some(value) = table.get("channels")
            && let Some(items) = self.array(
                value,
                "\"channels\" in [approval]",
                "an array such as [\"elicitation\", \"command\"]",
            )
        {
            approval.channels.clear();
            for item in items {
                match self.string(item, "a channel", place) {
                    Some(name) if CHANNELS.contains(&name) => {
                        let channel = CHANNELS.parse(name).expect("a known name");
                        if approval.channels.contains(&channel) {
                            self.report(
                                item.span(),
                                format!("channel {name:?} is listed twice in [approval]"),
                            );
                        }
                        approval.channels.push(channel);
                    }
                    Some(other) => self.report(
                        item.span(),
                        format!(
                            "unknown approval channel {other:?} in [approval]; expected {}",
                            one_of(&names(&CHANNELS))
                        ),
                    ),
                    None => {}
                }
            }
        }

        if let Some(value) = table.get("timeout") {
            let parsed = self
                .string(value, "\"timeout\"", place)
                .map(|text| (text, parse_duration(text)));
            match parsed {
                Some((_, Some(timeout)))
                    if !timeout.is_zero() && timeout <= MAX_APPROVAL_TIMEOUT =>
                {
                    approval.timeout = timeout;
                }
                Some((text, _)) => self.report(
                    value.span(),
                    format!(
                        "invalid timeout {text:?} in [approval]; expected a duration from \
                         \"1ms\" to \"24h\", such as \"120s\" or \"5m\""
                    ),
                ),
                None => {}
            }
        }

        if let Some(value) = table.get("command")
            && let Some(items) = self.array(
                value,
                "\"command\" in [approval]",
                "an array of strings: the program and its arguments",
            )
        {
            let mut command = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let what = format!("argument {} of \"command\"", i + 1);
                if let Some(arg) = self.string(item, &what, place) {
                    command.push(arg.to_owned());
                }
            }
            if command
                .first()
                .is_none_or(|program| program.trim().is_empty())
            {
                self.report(
                    value.span(),
                    "\"command\" in [approval] is empty; give the program and its arguments, \
                     e.g. [\"mcp-policy-proxy\", \"approve-desktop\"]"
                        .to_owned(),
                );
            }
            approval.command = Some(command);
        }

        let listed = approval.allows(Channel::Command);
        match (listed, approval.command.is_some()) {
            (true, false) => self.report(
                value.span(),
                "[approval] lists the \"command\" channel but has no \"command\"; add e.g. \
                 command = [\"mcp-policy-proxy\", \"approve-desktop\"]"
                    .to_owned(),
            ),
            (false, true) => {
                let span = table
                    .get_key_value("command")
                    .map(|(key, _)| key.span())
                    .unwrap_or_else(|| value.span());
                self.report(
                    span,
                    "[approval] has a \"command\" but its channels do not include \"command\"; add \
                     \"command\" to channels = [...] to use it"
                        .to_owned(),
                );
            }
            _ => {}
        }
        approval
    }
}
