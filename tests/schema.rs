//! The JSON Schema of the policy file (`schema/mcp-policy-proxy.schema.json`) agrees with the
//! config reader: every config the reader accepts validates, a config the reader refuses for a
//! type, a vocabulary or an unknown key fails to, and the schema has exactly the keys and the
//! names the reader knows (read from the reader's own "expected ..." messages, so a key added
//! to the reader fails here until the schema has it too).
//!
//! What a schema cannot say stays the reader's alone: whether a glob or a regex compiles, a
//! class that no [classes] defines, a store URL's host, and the upper bounds of durations.

mod common;

use std::path::Path;
use std::process::Command;

use boon::{Compiler, SchemaIndex, Schemas};
use mcp_policy_proxy::config::Config;
use serde_json::Value;

const SCHEMA: &str = include_str!("../schema/mcp-policy-proxy.schema.json");

struct Validator {
    schemas: Schemas,
    index: SchemaIndex,
}

impl Validator {
    fn new() -> Validator {
        let schema: Value = serde_json::from_str(SCHEMA).expect("the schema is JSON");
        let mut compiler = Compiler::new();
        let url = "file:///schema/mcp-policy-proxy.schema.json";
        compiler
            .add_resource(url, schema)
            .expect("the schema is a resource");
        let mut schemas = Schemas::new();
        // boon checks the schema against the draft 2020-12 metaschema as it compiles it.
        let index = compiler
            .compile(url, &mut schemas)
            .unwrap_or_else(|err| panic!("the schema does not compile: {err:#}"));
        Validator { schemas, index }
    }

    /// Validates a TOML text as editors do: the document as JSON.
    fn check(&self, text: &str) -> Result<(), String> {
        let table: toml::Table = toml::from_str(text).expect("the case is valid TOML");
        let json = serde_json::to_value(table).expect("TOML converts to JSON");
        self.schemas
            .validate(&json, self.index)
            .map_err(|err| format!("{err:#}"))
    }
}

/// The reader's verdict: `Ok(())`, or every problem with its line and column.
fn reader_accepts(text: &str) -> Result<(), String> {
    Config::parse(text)
        .map(drop)
        .map_err(|errors| errors.to_string())
}

#[test]
fn the_schema_is_draft_2020_12_and_describes_every_key() {
    Validator::new();
    let schema: Value = serde_json::from_str(SCHEMA).unwrap();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    let mut problems = Vec::new();
    walk(&schema, &schema, "", &mut problems);
    assert!(problems.is_empty(), "{problems:#?}");
}

/// Every object with properties refuses other keys, every property has a description (its own
/// or its definition's), and no $ref has siblings.
fn walk(root: &Value, node: &Value, at: &str, problems: &mut Vec<String>) {
    match node {
        Value::Object(map) => {
            // Before draft 2019-09 a $ref's siblings are ignored, and editors that read an
            // older draft (Taplo) would lose them.
            if map.contains_key("$ref") && map.len() > 1 {
                problems.push(format!("{at}: a $ref with siblings; wrap it in allOf"));
            }
            if let Some(Value::Object(properties)) = map.get("properties") {
                if map.get("additionalProperties") != Some(&Value::Bool(false)) {
                    problems.push(format!("{at}: no \"additionalProperties\": false"));
                }
                for (key, property) in properties {
                    let described = property.get("description").is_some()
                        || property
                            .get("$ref")
                            .and_then(Value::as_str)
                            .and_then(|r| root.pointer(r.trim_start_matches('#')))
                            .is_some_and(|def| def.get("description").is_some());
                    if !described {
                        problems.push(format!("{at}/properties/{key}: no description"));
                    }
                }
            }
            for (key, value) in map {
                // Constraints between keys restate properties; they declare none.
                if !matches!(key.as_str(), "if" | "then" | "else" | "contains") {
                    walk(root, value, &format!("{at}/{key}"), problems);
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(root, item, &format!("{at}/{i}"), problems);
            }
        }
        _ => {}
    }
}

/// Every TOML file under `dir`.
fn toml_files(dir: &Path, found: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            toml_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "toml") {
            found.push(path);
        }
    }
}

#[test]
fn the_example_configs_validate() {
    let validator = Validator::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("config.example.toml")];
    toml_files(&root.join("examples"), &mut files);
    toml_files(&root.join("benches"), &mut files);
    let mut checked = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        // Policy tests (`mcp-policy-proxy test`) are TOML too, but not policies.
        let table: toml::Table = toml::from_str(&text).unwrap();
        if table.contains_key("case") {
            continue;
        }
        assert_eq!(reader_accepts(&text), Ok(()), "{}", file.display());
        if let Err(err) = validator.check(&text) {
            panic!("{} does not validate:\n{err}", file.display());
        }
        checked += 1;
    }
    // config.example.toml, examples/clients/valkey-policy.toml, the benchmark's policy.
    assert!(checked >= 3, "only {checked} example configs");
}

/// Configs the reader accepts, from its own tests and the rule language's.
const VALID: &[&str] = &[
    "",
    "[policy]\n[limits]\n[server]\ncommand = \"srv\"\n",
    "[[rules]]\ntool = \"t\"\naction = \"deny\"\nhide = true\n",
    "[[rules]]\ntool = \"t\"\naction = \"allow\"\nhide = false\n",
    "[[rules]]\ntool = \"*\"\naction = \"require_approval\"\n",
    "[[rules]]\ntool = \"json_{get,set}\"\naction = \"allow\"\n\
     rate_limit = { max = 1_000_000, window = 604800 }\n",
    "[[rules]]\ntool = \"t\"\naction = \"allow\"\n[rules.rate_limit]\nmax = 1\nwindow = \"7d\"\n",
    "[[rules]]\ntool = \"t\"\naction = \"allow\"\nrate_limit = { max = 3, window = \"500ms\" }\n",
    "[[rules]]\ntool = \"t\"\naction = \"allow\"\nrate_limit = { max = 3, window = \"1ms\" }\n",
    "[limits]\nmax_line_bytes = 1024\n",
    "[limits]\nmax_line_bytes = 0x4000_0000\n",
    "[server]\ncommand = \"uvx\"\nargs = []\nenv = {}\n",
    "[policy]\nviolation = \"jsonrpc_error\"\nmode = \"shadow\"\ndefault = \"deny\"\n",
    "rules = [\n  { tool = \"a\", action = \"deny\" },\n  { tool = \"b\", action = \"require_approval\" },\n]\n",
    "# comment
[server]
command = \"uvx\"
args = [\"awslabs.valkey-mcp-server@latest\", \"--verbose\"]
env = { VALKEY_PORT = \"6379\", VALKEY_HOST = \"127.0.0.1\", \"CAFÉ\" = \"\" }
cwd = \"/srv\"

[[rules]]
name = \"no code connections\"
tool = \"CreateCodeConnection\"
action = \"deny\"
reason = \"exposes source\"
hide = true
shadow = true
",
    r#"
[[rules]]
tool = "valkey_write"
action = "deny"
when = [ { arg = "command", in = ["DEL", "UNLINK", 1, 2.5, true], ignore_case = true } ]

[[rules]]
tool = "valkey_write"
action = "deny"
when = [ { arg = "args[*]", glob = "prod:*", every = true } ]

[[rules]]
tool = "valkey_*"
action = "require_approval"
session_grant = "tool"
when = [
  { any = [ { arg = "a.b[0]", eq = "x" }, { not = { arg = "[\"odd key\"].c", exists = true } } ] },
  { all = [ { arg = "n", gt = 1 }, { arg = "n", le = 2.5 }, { arg = "n", ge = -3 }, { arg = "n", lt = 1e9 } ] },
  { arg = "k", regex = "^user:[0-9]+$" },
  { arg = "k", prefix = "tmp:", ignore_case = false },
  { arg = "k", ne = false },
  { arg = "k", not_in = [] },
  { arg = "args[+1]", eq = 0 },
  { arg = "a.[0]", eq = 0 },
]
"#,
    r#"
[classes]
read = ["valkey_read", "json_get", "@readOnly"]
risky = ["@!idempotent", "@destructive", "@openWorld", "valkey_[aw]*"]
empty = []

[[rules]]
class = "read"
action = "allow"

[[rules]]
class = "risky"
tool = "valkey_*"
action = "deny"
"#,
    "[approval]\nchannels = [\"elicitation\", \"command\"]\ntimeout = \"5m\"\n\
     command = [\"mcp-policy-proxy\", \"approve-desktop\", \"\"]\n",
    "[approval]\nchannels = []\n",
    "[approval]\ntimeout = \"24h\"\n",
    "[pinning]\nmode = \"log\"\nfile = \"pins.json\"\n",
    "[pinning]\nmode = \"off\"\n",
    "[audit]\npath = \"audit.jsonl\"\n",
    "[audit]\npath = \"/var/log/mcp/audit.jsonl\"\ninclude_arguments = true\n\
     redact = [\"args[1]\", \"password\", \"a.b[*]\", \"[\\\"odd.key\\\"]\"]\n\
     max_bytes = 65536\nkeep = 0\nrequired = true\n",
    // Fleet-wide limits.
    "[store]\nurl = \"rediss://fleet:s3cret@valkey.internal:6380/0\"\ncluster = true\n\
     timeout = \"200ms\"\non_error = \"allow\"\nprefix = \"ci-prod\"\n",
    "[[rules]]\ntool = \"t\"\naction = \"allow\"\nrate_limit = { max = 1, window = 60, scope = \"session\" }\n",
    "[store]\nurl = \"redis://127.0.0.1\"\n[[rules]]\ntool = \"t\"\naction = \"allow\"\n\
     rate_limit = { max = 1, window = 60, scope = \"agent:${PATH}\" }\n",
    "[store]\nurl = \"valkey://127.0.0.1:6379\"\n\n[[rules]]\ntool = \"CreateCodeConnection\"\n\
     action = \"allow\"\nrate_limit = { max = 20, window = \"1h\", scope = \"global\" }\n",
];

#[test]
fn configs_the_reader_accepts_validate() {
    let validator = Validator::new();
    for text in VALID {
        if let Err(problems) = reader_accepts(text) {
            panic!("the reader refuses a VALID case:\n{problems}\n---\n{text}");
        }
        if let Err(err) = validator.check(text) {
            panic!("the schema refuses a config the reader accepts:\n{err}\n---\n{text}");
        }
    }
}

/// Configs the reader refuses for a type, a name or a key, each with what is wrong.
const INVALID: &[(&str, &str)] = &[
    (
        "action is a number",
        "[[rules]]\ntool = \"t\"\naction = 1\n",
    ),
    (
        "unknown action",
        "[[rules]]\ntool = \"t\"\naction = \"alow\"\n",
    ),
    (
        "unknown rule key",
        "[[rules]]\ntool = \"t\"\naction = \"deny\"\nreasn = \"x\"\n",
    ),
    (
        "hide is a string",
        "[[rules]]\ntool = \"t\"\naction = \"deny\"\nhide = \"yes\"\n",
    ),
    (
        "hide on allow",
        "[[rules]]\ntool = \"t\"\naction = \"allow\"\nhide = true\n",
    ),
    (
        "misspelt operator",
        "[[rules]]\ntool = \"t\"\naction = \"deny\"\nwhen = [ { arg = \"command\", eqq = \"DEL\" } ]\n",
    ),
    ("unknown section", "[polcy]\ndefault = \"deny\"\n"),
    ("unknown top-level key", "bogus = 1\n"),
    ("policy is a string", "policy = \"deny\"\n"),
    (
        "unknown policy key",
        "[policy]\ndefault = \"deny\"\nflavour = 1\n",
    ),
    ("unknown default", "[policy]\ndefault = \"alow\"\n"),
    (
        "require_approval default",
        "[policy]\ndefault = \"require_approval\"\n",
    ),
    ("unknown violation", "[policy]\nviolation = \"error\"\n"),
    ("unknown mode", "[policy]\nmode = \"dry-run\"\n"),
    (
        "unknown server key",
        "[server]\ncommand = \"uvx\"\nargv = []\n",
    ),
    ("server without command", "[server]\nargs = [\"x\"]\n"),
    ("blank command", "[server]\ncommand = \" \"\n"),
    ("command is a number", "[server]\ncommand = 5\n"),
    (
        "args is a string",
        "[server]\ncommand = \"uvx\"\nargs = \"serve\"\n",
    ),
    (
        "an arg is a number",
        "[server]\ncommand = \"uvx\"\nargs = [\"serve\", 8080]\n",
    ),
    (
        "env value is a number",
        "[server]\ncommand = \"uvx\"\nenv = { VALKEY_PORT = 6379 }\n",
    ),
    (
        "env is an array",
        "[server]\ncommand = \"uvx\"\nenv = [\"A=1\"]\n",
    ),
    (
        "env name with =",
        "[server]\ncommand = \"uvx\"\n[server.env]\n\"A=B\" = \"1\"\n",
    ),
    ("empty cwd", "[server]\ncommand = \"uvx\"\ncwd = \"\"\n"),
    ("unknown limits key", "[limits]\nmax_line = 2048\n"),
    (
        "max_line_bytes too small",
        "[limits]\nmax_line_bytes = 1023\n",
    ),
    (
        "max_line_bytes too large",
        "[limits]\nmax_line_bytes = 0x4000_0001\n",
    ),
    (
        "max_line_bytes is a string",
        "[limits]\nmax_line_bytes = \"16MiB\"\n",
    ),
    (
        "rules is a table",
        "[rules]\ntool = \"t\"\naction = \"deny\"\n",
    ),
    (
        "rule without tool or class",
        "[[rules]]\naction = \"deny\"\n",
    ),
    ("rule without action", "[[rules]]\ntool = \"u\"\n"),
    (
        "tool is an array",
        "[[rules]]\ntool = [\"a\", \"b\"]\naction = \"deny\"\n",
    ),
    ("empty tool", "[[rules]]\ntool = \"\"\naction = \"deny\"\n"),
    (
        "tool with a trailing space",
        "[[rules]]\ntool = \"valkey_read \"\naction = \"allow\"\n",
    ),
    (
        "name is a number",
        "[[rules]]\nname = 1\ntool = \"t\"\naction = \"deny\"\n",
    ),
    (
        "reason is a table",
        "[[rules]]\ntool = \"t\"\naction = \"deny\"\nreason = {}\n",
    ),
    (
        "shadow is a string",
        "[[rules]]\ntool = \"t\"\naction = \"deny\"\nshadow = \"yes\"\n",
    ),
    (
        "rate_limit on deny",
        "[[rules]]\ntool = \"t\"\naction = \"deny\"\nrate_limit = { max = 1, window = 60 }\n",
    ),
    (
        "rate_limit is a number",
        "[[rules]]\ntool = \"t\"\naction = \"allow\"\nrate_limit = 10\n",
    ),
    (
        "max is a string",
        "[[rules]]\ntool = \"t\"\naction = \"allow\"\nrate_limit = { max = \"10\", window = 60 }\n",
    ),
    (
        "max is zero",
        "[[rules]]\ntool = \"t\"\naction = \"allow\"\nrate_limit = { max = 0, window = 60 }\n",
    ),
    (
        "max too large",
        "[[rules]]\ntool = \"t\"\naction = \"allow\"\nrate_limit = { max = 1_000_001, window = 60 }\n",
    ),
    (
        "no max",
        "[[rules]]\ntool = \"t\"\naction = \"allow\"\nrate_limit = { window = 60 }\n",
    ),
    (
        "no window",
        "[[rules]]\ntool = \"t\"\naction = \"allow\"\n[rules.rate_limit]\nmax = 10\n",
    ),
    (
        "unknown rate_limit key",
        "[[rules]]\ntool = \"t\"\naction = \"allow\"\nrate_limit = { max = 1, window = 60, burst = 2 }\n",
    ),
    (
        "window in words",
        "[[rules]]\ntool = \"t\"\naction = \"allow\"\nrate_limit = { max = 5, window = \"sixty\" }\n",
    ),
    (
        "window with a space",
        "[[rules]]\ntool = \"t\"\naction = \"allow\"\nrate_limit = { max = 5, window = \"60 s\" }\n",
    ),
    (
        "window without a unit",
        "[[rules]]\ntool = \"t\"\naction = \"allow\"\nrate_limit = { max = 5, window = \"60\" }\n",
    ),
    (
        "window of zero",
        "[[rules]]\ntool = \"t\"\naction = \"allow\"\nrate_limit = { max = 5, window = \"0s\" }\n",
    ),
    (
        "window of zero seconds",
        "[[rules]]\ntool = \"t\"\naction = \"allow\"\nrate_limit = { max = 5, window = 0 }\n",
    ),
    (
        "negative window",
        "[[rules]]\ntool = \"t\"\naction = \"allow\"\nrate_limit = { max = 5, window = -1 }\n",
    ),
    (
        "window over 7 days in seconds",
        "[[rules]]\ntool = \"t\"\naction = \"allow\"\nrate_limit = { max = 5, window = 604801 }\n",
    ),
    (
        "window is a float",
        "[[rules]]\ntool = \"t\"\naction = \"allow\"\nrate_limit = { max = 5, window = 1.5 }\n",
    ),
    (
        "window is a boolean",
        "[[rules]]\ntool = \"t\"\naction = \"allow\"\nrate_limit = { max = 5, window = true }\n",
    ),
    (
        "session_grant on allow",
        "[[rules]]\ntool = \"t\"\naction = \"allow\"\nsession_grant = \"tool\"\n",
    ),
    (
        "unknown session_grant",
        "[[rules]]\ntool = \"t\"\naction = \"require_approval\"\nsession_grant = \"forever\"\n",
    ),
    (
        "empty when",
        "[[rules]]\ntool = \"t\"\naction = \"deny\"\nwhen = []\n",
    ),
    (
        "when is a table",
        "[[rules]]\ntool = \"t\"\naction = \"deny\"\nwhen = { arg = \"a\", eq = 1 }\n",
    ),
    (
        "condition is a string",
        "[[rules]]\ntool = \"t\"\naction = \"deny\"\nwhen = [ \"a == 1\" ]\n",
    ),
    (
        "two operators",
        "[[rules]]\ntool = \"t\"\naction = \"deny\"\nwhen = [ { arg = \"a\", eq = 1, ne = 2 } ]\n",
    ),
    (
        "no operator",
        "[[rules]]\ntool = \"t\"\naction = \"deny\"\nwhen = [ { arg = \"a\" } ]\n",
    ),
    (
        "no arg",
        "[[rules]]\ntool = \"t\"\naction = \"deny\"\nwhen = [ { eq = 1 } ]\n",
    ),
    (
        "arg is a number",
        "[[rules]]\ntool = \"t\"\naction = \"deny\"\nwhen = [ { arg = 1, eq = 1 } ]\n",
    ),
    (
        "arg with a bad index",
        "[[rules]]\ntool = \"t\"\naction = \"deny\"\nwhen = [ { arg = \"args[x]\", eq = \"a\" } ]\n",
    ),
    (
        "arg with an empty member",
        "[[rules]]\ntool = \"t\"\naction = \"deny\"\nwhen = [ { arg = \"a..b\", eq = \"a\" } ]\n",
    ),
    (
        "arg ending in a dot",
        "[[rules]]\ntool = \"t\"\naction = \"deny\"\nwhen = [ { arg = \"a.\", eq = \"a\" } ]\n",
    ),
    (
        "arg with an unclosed bracket",
        "[[rules]]\ntool = \"t\"\naction = \"deny\"\nwhen = [ { arg = \"a[0\", eq = \"a\" } ]\n",
    ),
    (
        "eq is an array",
        "[[rules]]\ntool = \"t\"\naction = \"deny\"\nwhen = [ { arg = \"a\", eq = [1] } ]\n",
    ),
    (
        "in is a string",
        "[[rules]]\ntool = \"t\"\naction = \"deny\"\nwhen = [ { arg = \"a\", in = \"x\" } ]\n",
    ),
    (
        "in holds a table",
        "[[rules]]\ntool = \"t\"\naction = \"deny\"\nwhen = [ { arg = \"a\", in = [{}] } ]\n",
    ),
    (
        "gt is a string",
        "[[rules]]\ntool = \"t\"\naction = \"deny\"\nwhen = [ { arg = \"a\", gt = \"5\" } ]\n",
    ),
    (
        "glob is a number",
        "[[rules]]\ntool = \"t\"\naction = \"deny\"\nwhen = [ { arg = \"a\", glob = 5 } ]\n",
    ),
    (
        "exists is a string",
        "[[rules]]\ntool = \"t\"\naction = \"deny\"\nwhen = [ { arg = \"a\", exists = \"yes\" } ]\n",
    ),
    (
        "ignore_case is a string",
        "[[rules]]\ntool = \"t\"\naction = \"deny\"\nwhen = [ { arg = \"a\", eq = \"x\", ignore_case = \"yes\" } ]\n",
    ),
    (
        "every without [*]",
        "[[rules]]\ntool = \"t\"\naction = \"deny\"\nwhen = [ { arg = \"args\", prefix = \"x\", every = true } ]\n",
    ),
    (
        "empty any",
        "[[rules]]\ntool = \"t\"\naction = \"deny\"\nwhen = [ { any = [] } ]\n",
    ),
    (
        "any beside arg",
        "[[rules]]\ntool = \"t\"\naction = \"deny\"\nwhen = [ { any = [ { arg = \"a\", eq = 1 } ], arg = \"b\" } ]\n",
    ),
    (
        "any beside all",
        "[[rules]]\ntool = \"t\"\naction = \"deny\"\nwhen = [ { any = [ { arg = \"a\", eq = 1 } ], all = [ { arg = \"a\", eq = 1 } ] } ]\n",
    ),
    (
        "not is an array",
        "[[rules]]\ntool = \"t\"\naction = \"deny\"\nwhen = [ { not = [ { arg = \"a\", eq = 1 } ] } ]\n",
    ),
    (
        "a misspelt operator deep down",
        "[[rules]]\ntool = \"t\"\naction = \"deny\"\nwhen = [ { not = { any = [ { arg = \"a\", equals = 1 } ] } } ]\n",
    ),
    ("classes is an array", "classes = [\"read\"]\n"),
    ("a class is a string", "[classes]\nread = \"valkey_read\"\n"),
    ("a member is a number", "[classes]\nread = [1]\n"),
    (
        "a hint in the wrong case",
        "[classes]\nread = [\"@readonly\"]\n",
    ),
    ("an unknown hint", "[classes]\nread = [\"@!safe\"]\n"),
    (
        "a member with spaces",
        "[classes]\nread = [\" valkey_read\"]\n",
    ),
    ("an empty member", "[classes]\nread = [\"\"]\n"),
    (
        "class is a number",
        "[classes]\nread = [\"x\"]\n[[rules]]\nclass = 1\naction = \"allow\"\n",
    ),
    ("unknown approval key", "[approval]\nask = \"always\"\n"),
    ("unknown channel", "[approval]\nchannels = [\"email\"]\n"),
    (
        "a channel twice",
        "[approval]\nchannels = [\"elicitation\", \"elicitation\"]\n",
    ),
    (
        "channels is a string",
        "[approval]\nchannels = \"elicitation\"\n",
    ),
    (
        "command channel without command",
        "[approval]\nchannels = [\"command\"]\n",
    ),
    (
        "command without its channel",
        "[approval]\ncommand = [\"approve\"]\n",
    ),
    (
        "command is a string",
        "[approval]\nchannels = [\"command\"]\ncommand = \"approve\"\n",
    ),
    (
        "empty command",
        "[approval]\nchannels = [\"command\"]\ncommand = []\n",
    ),
    (
        "blank program",
        "[approval]\nchannels = [\"command\"]\ncommand = [\" \", \"x\"]\n",
    ),
    ("timeout in seconds", "[approval]\ntimeout = 120\n"),
    ("timeout of zero", "[approval]\ntimeout = \"0s\"\n"),
    ("timeout in words", "[approval]\ntimeout = \"2 minutes\"\n"),
    ("unknown pinning key", "[pinning]\nstrict = true\n"),
    ("unknown pinning mode", "[pinning]\nmode = \"strict\"\n"),
    ("empty pin file", "[pinning]\nfile = \"\"\n"),
    ("pin file is a number", "[pinning]\nfile = 1\n"),
    ("store without url", "[store]\ntimeout = \"50ms\"\n"),
    ("store is a string", "store = \"redis://h\"\n"),
    ("url is a number", "[store]\nurl = 6379\n"),
    (
        "unknown store key",
        "[store]\nurl = \"redis://h\"\nurl_env = \"X\"\n",
    ),
    (
        "url of another scheme",
        "[store]\nurl = \"http://h:6379\"\n",
    ),
    ("url without a scheme", "[store]\nurl = \"hunter2\"\n"),
    (
        "cluster is a string",
        "[store]\nurl = \"redis://h\"\ncluster = \"yes\"\n",
    ),
    (
        "store timeout of zero",
        "[store]\nurl = \"redis://h\"\ntimeout = \"0ms\"\n",
    ),
    (
        "store timeout without a unit",
        "[store]\nurl = \"redis://h\"\ntimeout = \"50\"\n",
    ),
    (
        "store timeout in milliseconds",
        "[store]\nurl = \"redis://h\"\ntimeout = 50\n",
    ),
    (
        "unknown on_error",
        "[store]\nurl = \"redis://h\"\non_error = \"open\"\n",
    ),
    (
        "empty prefix",
        "[store]\nurl = \"redis://h\"\nprefix = \"\"\n",
    ),
    (
        "prefix with a hash tag",
        "[store]\nurl = \"redis://h\"\nprefix = \"team-{a}\"\n",
    ),
    ("audit without path", "[audit]\nkeep = 2\n"),
    ("empty audit path", "[audit]\npath = \"\"\n"),
    ("audit path is a number", "[audit]\npath = 1\n"),
    (
        "unknown audit key",
        "[audit]\npath = \"a.jsonl\"\nfile = \"b.jsonl\"\n",
    ),
    ("audit is a string", "audit = \"a.jsonl\"\n"),
    (
        "max_bytes too small",
        "[audit]\npath = \"a.jsonl\"\nmax_bytes = 65535\n",
    ),
    (
        "max_bytes is a string",
        "[audit]\npath = \"a.jsonl\"\nmax_bytes = \"64MiB\"\n",
    ),
    (
        "keep too large",
        "[audit]\npath = \"a.jsonl\"\nkeep = 1001\n",
    ),
    ("negative keep", "[audit]\npath = \"a.jsonl\"\nkeep = -1\n"),
    (
        "redact is a string",
        "[audit]\npath = \"a.jsonl\"\nredact = \"args[1]\"\n",
    ),
    (
        "redact with a bad path",
        "[audit]\npath = \"a.jsonl\"\nredact = [\"args[x]\"]\n",
    ),
    (
        "include_arguments is a string",
        "[audit]\npath = \"a.jsonl\"\ninclude_arguments = \"yes\"\n",
    ),
    (
        "required is a number",
        "[audit]\npath = \"a.jsonl\"\nrequired = 1\n",
    ),
    (
        "scope is a number",
        "[[rules]]\ntool = \"t\"\naction = \"allow\"\nrate_limit = { max = 1, window = 60, scope = 1 }\n",
    ),
    (
        "empty scope",
        "[[rules]]\ntool = \"t\"\naction = \"allow\"\nrate_limit = { max = 1, window = 60, scope = \"\" }\n",
    ),
];

#[test]
fn configs_the_reader_refuses_are_refused() {
    let validator = Validator::new();
    let mut accepted = Vec::new();
    for (what, text) in INVALID {
        assert!(
            Config::parse(text).is_err(),
            "{what}: the reader accepts an INVALID case:\n{text}"
        );
        if validator.check(text).is_ok() {
            accepted.push(format!("{what}:\n{text}"));
        }
    }
    assert!(
        accepted.is_empty(),
        "the schema accepts configs the reader refuses:\n\n{}",
        accepted.join("\n")
    );
}

/// The quoted names after "; expected " in the reader's message about `text`, found by the
/// message's start.
fn expected_names(text: &str, message_start: &str) -> Option<Vec<String>> {
    let errors = Config::parse(text).expect_err("the probe is invalid");
    let problem = errors
        .problems
        .iter()
        .find(|p| p.message.starts_with(message_start))?;
    let list = problem.message.split_once("; expected ")?.1;
    Some(
        list.split('"')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect(),
    )
}

/// The property names at `pointer` in the schema.
fn schema_keys(schema: &Value, pointer: &str) -> Vec<String> {
    let properties = schema
        .pointer(pointer)
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("no properties at {pointer}"));
    properties.keys().cloned().collect()
}

#[test]
fn the_schema_has_the_keys_the_reader_knows() {
    let schema: Value = serde_json::from_str(SCHEMA).unwrap();
    // Each place that refuses unknown keys, a config with an unknown key "zz" there, and the
    // schema's properties for it.
    let places: &[(&str, &str, &[&str])] = &[
        ("top level", "zz = 1\n", &["/properties"]),
        (
            "[server]",
            "[server]\ncommand = \"x\"\nzz = 1\n",
            &["/properties/server/properties"],
        ),
        (
            "[policy]",
            "[policy]\nzz = 1\n",
            &["/properties/policy/properties"],
        ),
        (
            "[limits]",
            "[limits]\nzz = 1\n",
            &["/properties/limits/properties"],
        ),
        (
            "[approval]",
            "[approval]\nzz = 1\n",
            &["/properties/approval/properties"],
        ),
        (
            "[pinning]",
            "[pinning]\nzz = 1\n",
            &["/properties/pinning/properties"],
        ),
        (
            "[audit]",
            "[audit]\npath = \"a.jsonl\"\nzz = 1\n",
            &["/properties/audit/properties"],
        ),
        (
            "[store]",
            "[store]\nurl = \"redis://h\"\nzz = 1\n",
            &["/properties/store/properties"],
        ),
        (
            "a rule",
            "[[rules]]\ntool = \"t\"\naction = \"allow\"\nzz = 1\n",
            &["/$defs/rule/properties"],
        ),
        (
            "a rate_limit",
            "[[rules]]\ntool = \"t\"\naction = \"allow\"\nrate_limit = { max = 1, window = 1, zz = 1 }\n",
            &["/$defs/rate_limit/properties"],
        ),
        (
            "a condition",
            "[[rules]]\ntool = \"t\"\naction = \"allow\"\nwhen = [ { arg = \"a\", eq = 1, zz = 1 } ]\n",
            &[
                "/$defs/test/properties",
                "/$defs/any/properties",
                "/$defs/all/properties",
                "/$defs/not/properties",
            ],
        ),
    ];
    let mut problems = Vec::new();
    for &(place, probe, pointers) in places {
        let mut in_schema: Vec<String> = pointers
            .iter()
            .flat_map(|p| schema_keys(&schema, p))
            .collect();
        in_schema.sort();
        let mut in_reader = expected_names(probe, "unknown key \"zz\"")
            .unwrap_or_else(|| panic!("no unknown-key message for {place}:\n{probe}"));
        in_reader.sort();
        for key in &in_reader {
            if !in_schema.contains(key) {
                problems.push(format!("{place}: the schema lacks \"{key}\""));
            }
        }
        for key in &in_schema {
            if !in_reader.contains(key) {
                problems.push(format!(
                    "{place}: the schema has \"{key}\", which the reader refuses"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn the_schema_has_the_names_the_reader_knows() {
    let schema: Value = serde_json::from_str(SCHEMA).unwrap();
    // A config with the unknown name "zz" in each place that takes one of a set of names, the
    // start of the reader's message, and the schema's enum.
    let vocabularies: &[(&str, &str, &str)] = &[
        (
            "[policy]\ndefault = \"zz\"\n",
            "unknown default",
            "/properties/policy/properties/default/enum",
        ),
        (
            "[policy]\nviolation = \"zz\"\n",
            "unknown violation",
            "/properties/policy/properties/violation/enum",
        ),
        (
            "[policy]\nmode = \"zz\"\n",
            "unknown mode",
            "/properties/policy/properties/mode/enum",
        ),
        (
            "[[rules]]\ntool = \"t\"\naction = \"zz\"\n",
            "unknown action",
            "/$defs/rule/properties/action/enum",
        ),
        (
            "[[rules]]\ntool = \"t\"\naction = \"require_approval\"\nsession_grant = \"zz\"\n",
            "unknown session_grant",
            "/$defs/rule/properties/session_grant/enum",
        ),
        (
            "[approval]\nchannels = [\"zz\"]\n",
            "unknown approval channel",
            "/properties/approval/properties/channels/items/enum",
        ),
        (
            "[pinning]\nmode = \"zz\"\n",
            "unknown mode",
            "/properties/pinning/properties/mode/enum",
        ),
        (
            "[store]\nurl = \"redis://h\"\non_error = \"zz\"\n",
            "unknown on_error",
            "/properties/store/properties/on_error/enum",
        ),
    ];
    for &(probe, message, pointer) in vocabularies {
        let mut in_reader = expected_names(probe, message)
            .unwrap_or_else(|| panic!("no message {message:?} for:\n{probe}"));
        let mut in_schema: Vec<String> = schema
            .pointer(pointer)
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("no enum at {pointer}"))
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        in_reader.sort();
        in_schema.sort();
        assert_eq!(in_schema, in_reader, "{pointer}");
    }

    // The annotation hints of class members are a pattern in the schema.
    let validator = Validator::new();
    let hints = expected_names("[classes]\nc = [\"@zz\"]\n", "unknown hint").unwrap();
    assert_eq!(hints.len(), 4, "{hints:?}");
    for hint in hints {
        for member in [format!("@{hint}"), format!("@!{hint}")] {
            let text = format!("[classes]\nc = [\"{member}\"]\n");
            assert_eq!(reader_accepts(&text), Ok(()), "{member}");
            assert_eq!(validator.check(&text), Ok(()), "{member}");
        }
    }
}

#[test]
fn the_schema_command_prints_the_file() {
    let output = Command::new(common::PROXY)
        .arg("schema")
        .output()
        .expect("the proxy runs");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.stdout == SCHEMA.as_bytes(),
        "`mcp-policy-proxy schema` printed something else than the file"
    );
}

/// `[[command_lines]]` and `@words`: accepted by both the reader and the schema, and their
/// mistakes of type or key refused by both.
#[test]
fn command_lines_and_words_agree_with_the_reader() {
    let validator = Validator::new();
    let valid = r#"
[[command_lines]]
tool = "run_*"
words = [ { arg = "program" }, { arg = "argv[*]" } ]

[[command_lines]]
tool = "shell"
words = [ { arg = "line", split = true, upper = false } ]

[[rules]]
tool = "valkey_admin"
action = "deny"
when = [ { arg = "@words[0]", in = ["FLUSHALL", "FLUSHDB"] }, { arg = "@words[*]", glob = "prod:*", every = true } ]

[[rules]]
tool = "shell"
action = "deny"
when = [ { arg = "@words[1]", eq = "-rf" } ]
"#;
    reader_accepts(valid).unwrap_or_else(|e| panic!("{e}"));
    validator.check(valid).unwrap_or_else(|e| panic!("{e}"));
    for invalid in [
        "[[command_lines]]\ntool = \"t\"\nwords = [ { arg = \"a\", spilt = true } ]\n",
        "[[command_lines]]\ntool = \"t\"\nwords = [ { arg = \"a\", split = \"yes\" } ]\n",
        "[[command_lines]]\ntool = \"t\"\nwords = []\n",
        "[[command_lines]]\nwords = [ { arg = \"a\" } ]\n",
        "[[command_lines]]\ntool = \"t\"\n",
        "[[command_lines]]\ntool = \"t\"\nwords = [ { upper = true } ]\n",
        "command_lines = { tool = \"t\" }\n",
    ] {
        assert!(
            reader_accepts(invalid).is_err(),
            "the reader accepts:\n{invalid}"
        );
        assert!(
            validator.check(invalid).is_err(),
            "the schema accepts:\n{invalid}"
        );
    }
}
