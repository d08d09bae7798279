use super::*;

const EXAMPLE: &str = include_str!("../../config.example.toml");

fn problems(text: &str) -> Vec<Problem> {
    match Config::parse(text) {
        Ok(config) => panic!("expected problems, got {config:#?}"),
        Err(errors) => errors.problems,
    }
}

#[track_caller]
fn assert_one_problem(text: &str, line: usize, column: usize, message: &str) {
    let found = problems(text);
    let expected = vec![Problem {
        line,
        column,
        message: message.to_owned(),
    }];
    assert_eq!(found, expected, "for config:\n{text}");
}

const RULE: &str = "[[rules]]\ntool = \"t\"\naction = \"allow\"\n";

/// Each case: the config text, then the line, column and exact message of its only problem.
const CASES: &[(&str, usize, usize, &str)] = &[
    // Syntax.
    (
        "[policy\ndefault = \"deny\"\n",
        1,
        8,
        "invalid toml: unclosed table, expected `]`",
    ),
    (
        "[policy]\ndefault = \"deny\"\ndefault = \"allow\"\n",
        3,
        1,
        "invalid toml: duplicate key \"default\"",
    ),
    // Unknown keys, at every level.
    (
        "[polcy]\ndefault = \"deny\"\n",
        1,
        2,
        "unknown key \"polcy\" at the top level; expected one of \"server\", \"policy\", \
             \"limits\", \"rules\", \"approval\", \"classes\", \"pinning\", \"store\", \"audit\"",
    ),
    (
        "[server]\ncommand = \"uvx\"\nargv = []\n",
        3,
        1,
        "unknown key \"argv\" in [server]; expected one of \"command\", \"args\", \"env\", \
             \"cwd\"",
    ),
    (
        "[policy]\ndefault = \"deny\"\nflavour = 1\n",
        3,
        1,
        // [policy] reload is new (issue 21): the list names it.
        "unknown key \"flavour\" in [policy]; expected one of \"default\", \"violation\", \
         \"mode\", \"reload\"",
    ),
    (
        "[limits]\nmax_line = 2048\n",
        2,
        1,
        "unknown key \"max_line\" in [limits]; expected \"max_line_bytes\"",
    ),
    (
        "[[rules]]\ntool = \"t\"\naction = \"deny\"\nreasn = \"x\"\n",
        4,
        1,
        "unknown key \"reasn\" in rule 1; expected one of \"name\", \"tool\", \"action\", \
             \"reason\", \"rate_limit\", \"hide\", \"session_grant\", \"when\", \"class\", \"shadow\"",
    ),
    (
        "[[rules]]\ntool = \"t\"\naction = \"allow\"\n\
             rate_limit = { max = 1, window = 60, burst = 2 }\n",
        4,
        38,
        "unknown key \"burst\" in the rate_limit of rule 1; expected one of \"max\", \"window\", \"scope\"",
    ),
    // Wrong types.
    (
        "server = \"uvx\"\n",
        1,
        10,
        "\"server\" must be a table ([server]), found string \"uvx\"",
    ),
    (
        "[rules]\ntool = \"t\"\naction = \"deny\"\n",
        1,
        1,
        "\"rules\" must be an array of tables ([[rules]]), found a table",
    ),
    (
        "rules = [\"t\"]\n",
        1,
        10,
        "rule 1 must be a table ([[rules]]), found string \"t\"",
    ),
    (
        "[server]\ncommand = 5\n",
        2,
        11,
        "\"command\" in [server] must be a string, found integer 5",
    ),
    (
        "[server]\ncommand = \"uvx\"\nargs = \"serve\"\n",
        3,
        8,
        "\"args\" in [server] must be an array of strings, found string \"serve\"",
    ),
    (
        "[server]\ncommand = \"uvx\"\nargs = [\"serve\", 8080]\n",
        3,
        18,
        "argument 2 of \"args\" in [server] must be a string, found integer 8080",
    ),
    (
        "[server]\ncommand = \"uvx\"\nenv = { VALKEY_PORT = 6379 }\n",
        3,
        23,
        "\"VALKEY_PORT\" in [server.env] must be a string, found integer 6379; quote the value",
    ),
    (
        "[server]\ncommand = \"uvx\"\nenv = [\"A=1\"]\n",
        3,
        7,
        "\"env\" in [server] must be a table of strings, found an array",
    ),
    (
        "[[rules]]\ntool = \"t\"\naction = \"allow\"\nrate_limit = { max = \"10\", window = 60 }\n",
        4,
        22,
        "\"max\" in the rate_limit of rule 1 must be an integer, found string \"10\"",
    ),
    (
        "[[rules]]\ntool = \"t\"\naction = \"allow\"\nrate_limit = 10\n",
        4,
        14,
        "\"rate_limit\" in rule 1 must be a table such as { max = 10, window = \"60s\" }, \
             found integer 10",
    ),
    (
        "[[rules]]\ntool = \"t\"\naction = \"deny\"\nhide = \"yes\"\n",
        4,
        8,
        "\"hide\" in rule 1 must be true or false, found string \"yes\"",
    ),
    (
        "[[rules]]\ntool = [\"a\", \"b\"]\naction = \"deny\"\n",
        2,
        8,
        "\"tool\" in rule 1 must be a string, found an array",
    ),
    (
        "[[rules]]\nname = 1\ntool = \"t\"\naction = \"deny\"\n",
        2,
        8,
        "\"name\" in rule 1 must be a string, found integer 1",
    ),
    (
        "[limits]\nmax_line_bytes = 1.5e6\n",
        2,
        18,
        "\"max_line_bytes\" in [limits] must be an integer, found float 1.5e6",
    ),
    // [policy] values.
    (
        "[policy]\ndefault = \"alow\"\n",
        2,
        11,
        "unknown default \"alow\" in [policy]; expected \"allow\" or \"deny\"",
    ),
    (
        "[policy]\ndefault = \"require_approval\"\n",
        2,
        11,
        "default \"require_approval\" in [policy] is not supported; the default must be \
             \"allow\" or \"deny\" (to ask about every other tool, add a last rule with \
             tool = \"*\" and action = \"require_approval\")",
    ),
    (
        "[policy]\nviolation = \"error\"\n",
        2,
        13,
        "unknown violation style \"error\" in [policy]; expected \"result\" or \
             \"jsonrpc_error\"",
    ),
    // Rules.
    (
        "[[rules]]\naction = \"deny\"\n",
        1,
        1,
        "rule 1 has no \"tool\"; add tool = \"<exact name or glob>\", e.g. tool = \"valkey_*\"",
    ),
    (
        "[[rules]]\ntool = \"t\"\naction = \"allow\"\n\n[[rules]]\ntool = \"u\"\n",
        5,
        1,
        "rule 2 has no \"action\"; expected one of \"allow\", \"deny\", \"require_approval\"",
    ),
    (
        "[[rules]]\ntool = \"t\"\naction = \"alow\"\n",
        3,
        10,
        "unknown action \"alow\" in rule 1; expected one of \"allow\", \"deny\", \
             \"require_approval\"",
    ),
    (
        "[[rules]]\ntool = \"\"\naction = \"deny\"\n",
        2,
        8,
        "\"tool\" in rule 1 is empty; give an exact tool name or a glob such as \"valkey_*\"",
    ),
    (
        "[[rules]]\ntool = \"valkey_read \"\naction = \"allow\"\n",
        2,
        8,
        "tool \"valkey_read \" in rule 1 has leading or trailing whitespace, so it would \
             never match; remove the whitespace",
    ),
    (
        "[[rules]]\ntool = \"valkey_[\"\naction = \"deny\"\n",
        2,
        8,
        "invalid tool pattern \"valkey_[\" in rule 1: unclosed character class; missing \
             ']'; a pattern is an exact name or a glob using * ? [...] {a,b}",
    ),
    (
        "[[rules]]\ntool = \"json_{get,set\"\naction = \"deny\"\n",
        2,
        8,
        "invalid tool pattern \"json_{get,set\" in rule 1: unclosed alternate group; \
             missing '}' (maybe escape '{' with '[{]'?); a pattern is an exact name or a glob \
             using * ? [...] {a,b}",
    ),
    (
        "[[rules]]\ntool = \"t\"\naction = \"allow\"\nhide = true\n",
        4,
        1,
        "\"hide\" in rule 1 only applies to action \"deny\", but the action is \"allow\"; \
             remove hide = true or change the action",
    ),
    // Rate limits.
    (
        "[[rules]]\ntool = \"t\"\naction = \"deny\"\nrate_limit = { max = 1, window = 60 }\n",
        4,
        1,
        "\"rate_limit\" in rule 1 only applies to action \"allow\" (it limits calls that \
             would otherwise be allowed), but the action is \"deny\"; remove the rate_limit or \
             change the action",
    ),
    (
        "[[rules]]\ntool = \"t\"\naction = \"allow\"\nrate_limit = { window = 60 }\n",
        4,
        14,
        "the rate_limit of rule 1 has no \"max\"; add e.g. max = 10",
    ),
    (
        "[[rules]]\ntool = \"t\"\naction = \"allow\"\n[rules.rate_limit]\nmax = 10\n",
        4,
        1,
        "the rate_limit of rule 1 has no \"window\"; add e.g. window = \"60s\"",
    ),
    (
        "[[rules]]\ntool = \"t\"\naction = \"allow\"\nrate_limit = { max = 0, window = 60 }\n",
        4,
        22,
        "max 0 in the rate_limit of rule 1 is out of range; expected an integer from 1 to \
             1000000",
    ),
    (
        "[[rules]]\ntool = \"t\"\naction = \"allow\"\n\
             rate_limit = { max = 1_000_001, window = 60 }\n",
        4,
        22,
        "max 1_000_001 in the rate_limit of rule 1 is out of range; expected an integer \
             from 1 to 1000000",
    ),
    (
        "[[rules]]\ntool = \"t\"\naction = \"allow\"\n\
             rate_limit = { max = 1, window = \"1.5m\" }\n",
        4,
        34,
        "invalid window \"1.5m\" in the rate_limit of rule 1; expected whole seconds such as \
             60, or a whole number with a unit: \"500ms\", \"90s\", \"5m\", \"1h\", \"1d\"",
    ),
    (
        "[[rules]]\ntool = \"t\"\naction = \"allow\"\n\
             rate_limit = { max = 1, window = \"0s\" }\n",
        4,
        34,
        "window \"0s\" in the rate_limit of rule 1 is zero; expected a duration from \"1ms\" \
             to \"7d\"",
    ),
    (
        "[[rules]]\ntool = \"t\"\naction = \"allow\"\n\
             rate_limit = { max = 1, window = \"8d\" }\n",
        4,
        34,
        "window \"8d\" in the rate_limit of rule 1 is longer than 7 days; expected a duration \
             from \"1ms\" to \"7d\"",
    ),
    (
        "[[rules]]\ntool = \"t\"\naction = \"allow\"\n\
             rate_limit = { max = 1, window = 604801 }\n",
        4,
        34,
        "window 604801 in the rate_limit of rule 1 is longer than 7 days; expected a \
             duration from \"1ms\" to \"7d\"",
    ),
    (
        "[[rules]]\ntool = \"t\"\naction = \"allow\"\n\
             rate_limit = { max = 1, window = -5 }\n",
        4,
        34,
        "window -5 in the rate_limit of rule 1 is negative; expected whole seconds such as \
             60, or a whole number with a unit: \"500ms\", \"90s\", \"5m\", \"1h\", \"1d\"",
    ),
    (
        "[[rules]]\ntool = \"t\"\naction = \"allow\"\n\
             rate_limit = { max = 1, window = 1.5 }\n",
        4,
        34,
        "\"window\" in the rate_limit of rule 1 must be a duration, found float 1.5; \
             expected whole seconds such as 60, or a whole number with a unit: \"500ms\", \
             \"90s\", \"5m\", \"1h\", \"1d\"",
    ),
    // [server].
    (
        "[server]\nargs = [\"x\"]\n",
        1,
        1,
        "[server] has no \"command\"; add the program to run, e.g. command = \"uvx\"",
    ),
    (
        "[server]\ncommand = \" \"\n",
        2,
        11,
        "\"command\" in [server] is empty; give the program to run, e.g. \"uvx\"",
    ),
    (
        "[server]\ncommand = \"uvx\"\ncwd = \"\"\n",
        3,
        7,
        "\"cwd\" in [server] is empty; give a directory or remove the key",
    ),
    (
        "[server]\ncommand = \"uvx\"\n[server.env]\n\"A=B\" = \"1\"\n",
        4,
        1,
        "invalid environment variable name \"A=B\" in [server.env]; a name must be \
             non-empty and contain no \"=\" or NUL",
    ),
    // [limits].
    (
        "[limits]\nmax_line_bytes = 1023\n",
        2,
        18,
        "max_line_bytes 1023 in [limits] is out of range; expected an integer from 1024 to \
             1073741824 (1 GiB)",
    ),
    (
        "[limits]\nmax_line_bytes = 0x4000_0001\n",
        2,
        18,
        "max_line_bytes 0x4000_0001 in [limits] is out of range; expected an integer from \
             1024 to 1073741824 (1 GiB)",
    ),
];

#[test]
fn each_kind_of_problem_is_reported_where_it_is() {
    let mut failures = Vec::new();
    for &(text, line, column, message) in CASES {
        let expected = vec![Problem {
            line,
            column,
            message: message.to_owned(),
        }];
        let found = Config::parse(text).map_err(|e| e.problems);
        if found.as_ref().err() != Some(&expected) {
            failures.push(format!(
                "config:\n{text}expected: {expected:#?}\nfound: {found:#?}\n"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn reports_every_problem_in_position_order() {
    let text = "\
[policy]
default = \"maybe\"
colour = \"red\"

[[rules]]
tool = \"valkey_write\"
action = \"allow\"
rate_limit = { max = 0, window = \"soon\" }

[[rules]]
action = \"deny\"
hide = 1

[[rules]]
tool = \"CreateCodeConnection\"
action = \"forbid\"
";
    let found: Vec<String> = problems(text).iter().map(ToString::to_string).collect();
    assert_eq!(
        found,
        [
            "line 2, column 11: unknown default \"maybe\" in [policy]; expected \"allow\" or \
                 \"deny\"",
            "line 3, column 1: unknown key \"colour\" in [policy]; expected one of \"default\", \
                 \"violation\", \"mode\", \"reload\"",
            "line 8, column 22: max 0 in the rate_limit of rule 1 is out of range; expected \
                 an integer from 1 to 1000000",
            "line 8, column 34: invalid window \"soon\" in the rate_limit of rule 1; expected \
                 whole seconds such as 60, or a whole number with a unit: \"500ms\", \"90s\", \
                 \"5m\", \"1h\", \"1d\"",
            "line 10, column 1: rule 2 has no \"tool\"; add tool = \"<exact name or glob>\", \
                 e.g. tool = \"valkey_*\"",
            "line 12, column 8: \"hide\" in rule 2 must be true or false, found integer 1",
            "line 16, column 10: unknown action \"forbid\" in rule 3; expected one of \
                 \"allow\", \"deny\", \"require_approval\"",
        ]
    );
}

#[test]
fn every_syntax_error_is_reported_and_nothing_else() {
    // The second rule has no action only because its line is broken; that is not reported.
    let text = "[[rules]]\ntool = \"a\"\naction = \"deny\n\n[[rules]]\ntool = \"b\"\naction = \n";
    let found = problems(text);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(
        found
            .iter()
            .all(|p| p.message.starts_with("invalid toml: "))
    );
    assert_eq!((found[0].line, found[1].line), (3, 7));
}

#[test]
fn columns_count_characters_not_bytes() {
    // "É" is two bytes; the column of the 1 after it counts it once.
    assert_one_problem(
        "[server]\ncommand = \"uvx\"\nenv = { \"CAFÉ\" = \"1\", PORT = 1 }\n",
        3,
        30,
        "\"PORT\" in [server.env] must be a string, found integer 1; quote the value",
    );
}

#[test]
fn near_misses_of_problems_are_valid() {
    for text in [
        "[[rules]]\ntool = \"t\"\naction = \"deny\"\nhide = true\n",
        "[[rules]]\ntool = \"t\"\naction = \"allow\"\nhide = false\n",
        "[[rules]]\ntool = \"*\"\naction = \"require_approval\"\n",
        "[[rules]]\ntool = \"json_{get,set}\"\naction = \"allow\"\n\
             rate_limit = { max = 1_000_000, window = 604800 }\n",
        "[[rules]]\ntool = \"t\"\naction = \"allow\"\n\
             [rules.rate_limit]\nmax = 1\nwindow = \"7d\"\n",
        "[limits]\nmax_line_bytes = 1024\n",
        "[limits]\nmax_line_bytes = 1073741824\n",
        "[server]\ncommand = \"uvx\"\nargs = []\nenv = {}\n",
        "[policy]\nviolation = \"jsonrpc_error\"\n",
    ] {
        if let Err(errors) = Config::parse(text) {
            panic!("expected a valid config, got:\n{errors}\nfor config:\n{text}");
        }
    }
}

#[test]
fn omitted_sections_take_their_defaults() {
    let config = Config::parse("").unwrap();
    assert_eq!(config, Config::default());
    assert_eq!(config.server, None);
    assert_eq!(config.policy.default, DefaultAction::Allow);
    assert_eq!(config.policy.violation, ViolationStyle::Result);
    assert_eq!(config.limits.max_line_bytes, DEFAULT_MAX_LINE_BYTES);
    assert!(config.rules.is_empty());

    let config = Config::parse("[policy]\n[limits]\n[server]\ncommand = \"srv\"\n").unwrap();
    assert_eq!(config.policy, PolicySettings::default());
    assert_eq!(config.limits, Limits::default());
    assert_eq!(
        config.server,
        Some(ServerSpec {
            command: "srv".to_owned(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
        })
    );

    let config = Config::parse(RULE).unwrap();
    assert_eq!(
        config.rules,
        [RuleSpec {
            number: 1,
            line: 1,
            name: None,
            tool: "t".to_owned(),
            action: Action::Allow,
            reason: None,
            rate_limit: None,
            hide: false,
            glob: None,
            session_grant: SessionGrant::Call,
            when: None,
            class: None,
            shadow: false,
        }]
    );
}

#[test]
fn every_field_is_read() {
    let text = "\
# comment
[server]
command = \"uvx\"
args = [\"awslabs.valkey-mcp-server@latest\", \"--verbose\"]
env = { VALKEY_PORT = \"6379\", VALKEY_HOST = \"127.0.0.1\" }
cwd = \"/srv\"

[policy]
default = \"deny\"
violation = \"jsonrpc_error\"

[limits]
max_line_bytes = 1024

[[rules]]
name = \"no code connections\"
tool = \"CreateCodeConnection\"
action = \"deny\"
reason = \"exposes source\"
hide = true

[[rules]]
tool = \"valkey_*\"
action = \"allow\"
rate_limit = { max = 10, window = \"60s\" }
";
    let config = Config::parse(text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        config.server,
        Some(ServerSpec {
            command: "uvx".to_owned(),
            args: vec![
                "awslabs.valkey-mcp-server@latest".to_owned(),
                "--verbose".to_owned()
            ],
            // File order, not alphabetical.
            env: vec![
                ("VALKEY_PORT".to_owned(), "6379".to_owned()),
                ("VALKEY_HOST".to_owned(), "127.0.0.1".to_owned()),
            ],
            cwd: Some(PathBuf::from("/srv")),
        })
    );
    assert_eq!(
        config.policy,
        PolicySettings {
            default: DefaultAction::Deny,
            violation: ViolationStyle::JsonRpcError,
            mode: PolicyMode::Enforce,
            reload: crate::config::ReloadMode::File,
        }
    );
    assert_eq!(config.limits.max_line_bytes, 1024);
    assert_eq!(
        config.rules,
        [
            RuleSpec {
                number: 1,
                line: 15,
                name: Some("no code connections".to_owned()),
                tool: "CreateCodeConnection".to_owned(),
                action: Action::Deny,
                reason: Some("exposes source".to_owned()),
                rate_limit: None,
                hide: true,
                glob: None,
                session_grant: SessionGrant::Call,
                when: None,
                class: None,
                shadow: false,
            },
            RuleSpec {
                number: 2,
                line: 22,
                name: None,
                tool: "valkey_*".to_owned(),
                action: Action::Allow,
                reason: None,
                rate_limit: Some(RateLimitSpec {
                    max: 10,
                    window: Duration::from_secs(60),
                    scope: crate::config::LimitScope::Session,
                }),
                hide: false,
                glob: Some(globset::Glob::new("valkey_*").unwrap()),
                session_grant: SessionGrant::Call,
                when: None,
                class: None,
                shadow: false,
            },
        ]
    );
}

#[test]
fn inline_rules_are_accepted_too() {
    let text = "rules = [\n  { tool = \"a\", action = \"deny\" },\n  { tool = \"b\", action = \"require_approval\" },\n]\n";
    let config = Config::parse(text).unwrap();
    let summary: Vec<_> = config
        .rules
        .iter()
        .map(|r| (r.number, r.line, r.tool.as_str(), r.action))
        .collect();
    assert_eq!(
        summary,
        [
            (1, 2, "a", Action::Deny),
            (2, 3, "b", Action::RequireApproval)
        ]
    );
}

#[test]
fn window_forms_parse_to_durations() {
    let cases: &[(&str, Duration)] = &[
        ("\"500ms\"", Duration::from_millis(500)),
        ("\"60s\"", Duration::from_secs(60)),
        ("60", Duration::from_secs(60)),
        ("\"1m\"", Duration::from_secs(60)),
        ("\"90s\"", Duration::from_secs(90)),
        ("\"1h\"", Duration::from_secs(3_600)),
        ("\"1d\"", Duration::from_secs(86_400)),
        ("\"7d\"", MAX_RATE_WINDOW),
        ("\"1ms\"", Duration::from_millis(1)),
    ];
    for &(window, expected) in cases {
        let text = format!("{RULE}rate_limit = {{ max = 3, window = {window} }}\n");
        let config = Config::parse(&text).unwrap_or_else(|e| panic!("{window}: {e}"));
        assert_eq!(
            config.rules[0].rate_limit,
            Some(RateLimitSpec {
                max: 3,
                window: expected,
                scope: crate::config::LimitScope::Session,
            }),
            "{window}"
        );
    }
}

#[test]
fn malformed_durations_are_rejected() {
    for text in [
        "", "s", "60", "1.5s", "-1s", "+1s", "1 s", " 1s", "1S", "1sec", "1w", "1hs", "١s",
    ] {
        assert_eq!(parse_duration(text), None, "{text:?}");
    }
    assert_eq!(parse_duration("99999999999999999999d"), Some(Duration::MAX));
    assert_eq!(parse_duration("0ms"), Some(Duration::ZERO));
}

#[test]
fn example_config_is_valid_and_refuses_code_connections() {
    let config = Config::parse(EXAMPLE).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.policy.default, DefaultAction::Deny);
    let server = config.server.as_ref().expect("[server]");
    assert_eq!(server.command, "uvx");
    assert_eq!(server.args, ["awslabs.valkey-mcp-server@latest"]);

    let deny = config
        .rules
        .iter()
        .find(|r| r.tool == "CreateCodeConnection")
        .expect("a CreateCodeConnection rule");
    assert_eq!(deny.action, Action::Deny);
    assert_eq!(
        deny.reason.as_deref(),
        Some("creating code connections can expose source code and CI/CD pipelines")
    );

    let rule_for = |tool: &str| {
        config
            .rules
            .iter()
            // The rule that decides a call whatever its arguments.
            .find(|r| {
                let glob = globset::Glob::new(&r.tool).unwrap().compile_matcher();
                r.when.is_none() && glob.is_match(tool)
            })
            .unwrap_or_else(|| panic!("no rule matches {tool}"))
    };
    assert_eq!(rule_for("valkey_read").action, Action::Allow);
    assert_eq!(rule_for("valkey_admin").action, Action::Deny);
    assert_eq!(rule_for("manage_index").action, Action::RequireApproval);
    assert_eq!(
        rule_for("valkey_write").rate_limit,
        Some(RateLimitSpec {
            max: 10,
            window: Duration::from_secs(60),
            scope: crate::config::LimitScope::Session,
        })
    );
    for tool in ["json_set", "json_arrappend", "json_arrpop", "json_arrtrim"] {
        let rule = rule_for(tool);
        assert_eq!(rule.action, Action::Allow, "{tool}");
        assert!(rule.rate_limit.is_some(), "{tool} should be rate-limited");
    }
    // Every tool the Valkey server has is decided by a rule, not left to the default.
    for tool in [
        "json_get",
        "add_documents",
        "aggregate",
        "search",
        "valkey_read",
    ] {
        rule_for(tool);
    }
}

#[test]
fn load_names_the_path() {
    let dir = std::env::temp_dir().join(format!("mcp-policy-proxy-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let missing = dir.join("missing.toml");
    let error = Config::load(&missing).unwrap_err();
    assert!(matches!(error, ConfigError::Read { .. }));
    assert_eq!(
        error.to_string(),
        format!("cannot read configuration file {}", missing.display())
    );
    assert!(std::error::Error::source(&error).is_some());

    let invalid = dir.join("invalid.toml");
    std::fs::write(&invalid, "[policy]\ndefault = \"alow\"\nviolation = 3\n").unwrap();
    let error = Config::load(&invalid).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "invalid configuration in {}:\n  line 2, column 11: unknown default \"alow\" in \
                 [policy]; expected \"allow\" or \"deny\"\n  line 3, column 13: \"violation\" in \
                 [policy] must be a string, found integer 3",
            invalid.display()
        )
    );

    let valid = dir.join("valid.toml");
    std::fs::write(&valid, RULE).unwrap();
    assert_eq!(Config::load(&valid).unwrap().rules.len(), 1);

    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn action_names_round_trip() {
    for (action, name) in [
        (Action::Allow, "allow"),
        (Action::Deny, "deny"),
        (Action::RequireApproval, "require_approval"),
    ] {
        assert_eq!(action.as_str(), name);
        assert!(ACTIONS.contains(&name));
    }
    assert_eq!(Action::from(DefaultAction::Deny), Action::Deny);
    assert_eq!(ViolationStyle::JsonRpcError.as_str(), "jsonrpc_error");
}

#[test]
fn words_conditions_need_a_known_command_line_and_text() {
    let rule = |when: &str| {
        format!("[[rules]]\ntool = \"run_shell\"\naction = \"deny\"\nwhen = [ {when} ]\n")
    };
    assert_one_problem(
        &rule("{ arg = \"@words[0]\", eq = \"rm\" }"),
        4,
        8,
        "a condition tests @words, but the proxy does not know how tool \"run_shell\" turns \
         its arguments into words; declare it with [[command_lines]] tool = \"run_shell\", \
         words = [ ... ]",
    );
    let declared =
        "[[command_lines]]\ntool = \"run_shell\"\nwords = [ { arg = \"line\", split = true } ]\n";
    Config::parse(&format!(
        "{declared}{}",
        rule("{ arg = \"@words[0]\", eq = \"rm\" }")
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    // The Valkey server's command tools are known; a glob pattern is judged at run time.
    for tool in ["valkey_admin", "valkey_read", "valkey_write", "valkey_*"] {
        let text = format!(
            "[[rules]]\ntool = \"{tool}\"\naction = \"deny\"\nwhen = [ {{ arg = \"@words[0]\", in = [\"FLUSHALL\"] }} ]\n"
        );
        Config::parse(&text).unwrap_or_else(|e| panic!("{tool}: {e}"));
    }
    let valkey = |when: &str| {
        format!("[[rules]]\ntool = \"valkey_admin\"\naction = \"deny\"\nwhen = [ {when} ]\n")
    };
    assert_one_problem(
        &valkey("{ arg = \"@words[1]\", gt = 5 }"),
        4,
        36,
        "\"gt\" in a condition of rule 1 compares numbers, but the words of a command line are \
         text; use eq, in, glob, regex or prefix",
    );
    assert_one_problem(
        &valkey("{ arg = \"@words[1]\", in = [\"A\", 5] }"),
        4,
        36,
        "\"in\" in a condition of rule 1 compares a word of the command line with something \
         that is not a string; the words are text, so write \"5\" rather than 5",
    );
    assert_one_problem(
        &valkey("{ arg = \"@word[0]\", eq = \"A\" }"),
        4,
        18,
        "unknown path \"@word[0]\"; write @words[0] for the first word of the command line the \
         server runs, @words[1] for the second, or @words[*] for any word in a condition of rule 1",
    );
}
