"""The client set-up examples under examples/clients cannot rot: each is parsed, checked for the
shape its client expects, and then launched the way that client would launch it (its variables
expanded, `uvx awslabs.valkey-mcp-server@latest` replaced by the same console script from the
pinned venv, the policy path pointed at a temp copy) and driven through the real proxy.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import harness
from harness import Valkey, assert_allowed, assert_refused

EXAMPLES = harness.REPO / "examples" / "clients"
POLICY = EXAMPLES / "valkey-policy.toml"
SERVER_PACKAGE = "awslabs.valkey-mcp-server@latest"
SERVER_NAME = "valkey"


@dataclass(frozen=True)
class Example:
    client: str
    path: str
    servers_key: str
    needs_type: bool  # whether the entry must say "type": "stdio"
    absolute_paths: bool  # GUI apps do not inherit the shell's PATH or cwd

    def file(self) -> Path:
        return EXAMPLES / self.path


EXAMPLE_FILES = [
    Example("Claude Desktop", "claude-desktop/claude_desktop_config.json", "mcpServers", False, True),
    Example("Claude Code", "claude-code/.mcp.json", "mcpServers", True, False),
    Example("Cursor", "cursor/.cursor/mcp.json", "mcpServers", False, False),
    Example("VS Code", "vscode/.vscode/mcp.json", "servers", True, False),
]
IDS = [example.client for example in EXAMPLE_FILES]


def entry_of(example: Example) -> dict[str, Any]:
    config = json.loads(example.file().read_text())
    assert set(config) <= {example.servers_key, "inputs"}, (
        f"{example.path}: {example.client} reads the top-level key {example.servers_key!r}, found {sorted(config)}"
    )
    servers = config[example.servers_key]
    assert list(servers) == [SERVER_NAME], servers
    return servers[SERVER_NAME]


# --- the proxy's command-line grammar, as the README documents it ------------------------------


@dataclass
class ProxyArgv:
    config: str | None
    config_index: int | None
    child_start: int  # index in args where the wrapped command starts
    separator: bool


def parse_proxy_args(args: list[str]) -> ProxyArgv:
    """`[--config PATH | --policy PATH] [--log-level LEVEL] [--] COMMAND [ARGS...]`: options until
    the first positional argument or `--`; everything after belongs to the child."""
    config = config_index = None
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("--config", "--policy"):
            config, config_index = args[i + 1], i + 1
            i += 2
        elif arg == "--log-level":
            i += 2
        elif arg == "--":
            return ProxyArgv(config, config_index, i + 1, True)
        elif arg.startswith("-"):
            raise AssertionError(f"{arg!r} is not an option of mcp-policy-proxy")
        else:
            break
    return ProxyArgv(config, config_index, i, False)


# --- expanding a client's variables ------------------------------------------------------------

VARIABLE = re.compile(r"\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand(value: str, env: dict[str, str], workspace: Path) -> str:
    """${workspaceFolder} (VS Code, Cursor), ${env:NAME} (Cursor), ${NAME} and ${NAME:-default}
    (Claude Code). An unset variable without a default is an error, as in Claude Code."""

    def one(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name == "workspaceFolder":
            return str(workspace)
        if name in env:
            return env[name]
        assert default is not None, f"${{{name}}} is unset and has no default"
        return default

    return VARIABLE.sub(one, value)


def is_uvx(word: str) -> bool:
    return word == "uvx" or word.endswith("/uvx")


# --- shape -------------------------------------------------------------------------------------


@pytest.mark.parametrize("example", EXAMPLE_FILES, ids=IDS)
def test_example_has_its_clients_shape(example: Example) -> None:
    entry = entry_of(example)
    allowed = {"type", "command", "args", "env"}
    assert set(entry) <= allowed, f"unexpected keys {set(entry) - allowed}"
    if example.needs_type:
        assert entry.get("type") == "stdio"
    assert Path(entry["command"]).name == "mcp-policy-proxy"
    assert all(isinstance(a, str) for a in entry["args"])

    env = {name: expand(value, {}, Path("/ws")) for name, value in entry["env"].items()}
    assert env["VALKEY_HOST"] == "127.0.0.1" and env["VALKEY_PORT"] == "6379", env

    argv = parse_proxy_args(entry["args"])
    assert argv.config is not None and argv.config.endswith("valkey-policy.toml"), entry["args"]
    child = entry["args"][argv.child_start:]
    assert len(child) == 2 and is_uvx(child[0]) and child[1] == SERVER_PACKAGE, child

    if example.absolute_paths:
        for path in (entry["command"], argv.config, child[0]):
            assert path.startswith("/") and "${" not in path, f"{example.client} needs absolute paths: {path}"


def claude_mcp_add_words() -> list[str]:
    """The `claude mcp add` command in the example script, as argv."""
    script = (EXAMPLES / "claude-code" / "claude-mcp-add.sh").read_text()
    lines = [line for line in script.replace("\\\n", " ").splitlines() if line.strip().startswith("claude ")]
    assert len(lines) == 1, lines
    return shlex.split(lines[0])


def test_claude_mcp_add_writes_the_example_mcp_json() -> None:
    """The `claude mcp add` line and the .mcp.json example describe the same server: what the
    command writes with --scope project is the .mcp.json with its defaults filled in."""
    words = claude_mcp_add_words()
    assert words[:3] == ["claude", "mcp", "add"], words
    split = words.index("--")
    options, name, command = words[3:split - 1], words[split - 1], words[split + 1:]

    env: dict[str, str] = {}
    settings: dict[str, str] = {}
    i = 0
    while i < len(options):
        flag = options[i]
        assert flag.startswith("--"), f"Claude's options must come before the server name: {options}"
        value = options[i + 1]
        if flag == "--env":
            key, _, val = value.partition("=")
            env[key] = val
        else:
            settings[flag] = value
        i += 2
    assert settings == {"--transport": "stdio", "--scope": "project"}, settings
    assert name == SERVER_NAME

    entry = entry_of(EXAMPLE_FILES[1])
    assert command == [entry["command"], *entry["args"]]
    assert env == {k: expand(v, {}, Path(".")) for k, v in entry["env"].items()}


def test_example_policy_is_valid() -> None:
    check = subprocess.run(
        [str(harness.proxy_bin()), "--config", str(POLICY), "--check"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30,
    )
    assert check.returncode == 0, check.stderr


# --- launch ------------------------------------------------------------------------------------


def launch_for(example: Example, valkey: Valkey, workdir: Path) -> harness.Launch:
    """The example's command line as its client would run it here."""
    entry = entry_of(example)
    policy = workdir / "valkey-policy.toml"
    shutil.copy(POLICY, policy)
    # The user's environment, for clients that expand ${VAR}: points at our Valkey.
    user_env = valkey.env()
    args = [expand(a, user_env, workdir) for a in entry["args"]]
    argv = parse_proxy_args(args)
    assert argv.config_index is not None
    config = args[argv.config_index]
    # A relative path resolves against the cwd, the workdir; ${workspaceFolder} expanded to it too.
    if os.path.isabs(config) and not config.startswith(str(workdir)):
        args[argv.config_index] = str(policy)  # /Users/me/... in the Desktop example
    child = args[argv.child_start:]
    assert is_uvx(child[0]) and child[1:] == [SERVER_PACKAGE], child
    args = args[:argv.child_start] + [str(harness.valkey_mcp_server())]

    env = {k: expand(v, user_env, workdir) for k, v in entry.get("env", {}).items()}
    env |= harness.server_env(valkey, workdir)  # our Valkey's port, and the log file in the temp dir
    return harness.Launch(f"example-{example.client.replace(' ', '-')}", str(harness.proxy_bin()), args, env, workdir)


@pytest.mark.parametrize("example", EXAMPLE_FILES, ids=IDS)
def test_example_command_line_really_works(example: Example, valkey: Valkey, workdir: Path, prefix: str) -> None:
    launch = launch_for(example, valkey, workdir)

    async def session() -> None:
        # These hosts speak the initialize handshake (TypeScript SDK v1 clients).
        async with harness.open_client(launch, mode="legacy") as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert names == harness.VALKEY_TOOLS
            write = await client.call_tool("valkey_write", {"command": "SET", "args": [f"{prefix}k", example.client]})
            assert_allowed(write, "valkey_write")
            admin = await client.call_tool("valkey_admin", {"command": "FLUSHALL", "args": [], "confirm": True})
            assert_refused(admin, decision="deny", tool="valkey_admin", rule=3, pattern="valkey_admin")
            doc = await client.call_tool("json_set", {"key": f"{prefix}doc", "path": "$", "value": "{}"})
            assert_refused(doc, decision="approval_unavailable", tool="json_set", rule=5, pattern="json_*")

    harness.run(session)
    assert valkey("GET", f"{prefix}k") == example.client


def test_the_docs_show_the_tested_examples() -> None:
    """Every client config shown in the README or docs/clients.md is one of the tested files, so
    the prose cannot drift from what the tests run."""
    examples = [json.loads(example.file().read_text()) for example in EXAMPLE_FILES]
    add_words = claude_mcp_add_words()
    checked = 0
    for doc in (harness.REPO / "README.md", harness.REPO / "docs" / "clients.md"):
        if not doc.exists():
            continue
        text = doc.read_text()
        for block in re.findall(r"```json\n(.*?)```", text, re.S):
            shown = json.loads(block)
            servers = shown.get("mcpServers") or shown.get("servers") or {}
            if isinstance(servers, dict) and SERVER_NAME in servers:
                assert shown in examples, f"{doc.name} shows a client config that is not in examples/clients:\n{block}"
                checked += 1
        for block in re.findall(r"```(?:sh|bash|shell)\n(.*?)```", text, re.S):
            for line in block.replace("\\\n", " ").splitlines():
                if line.strip().startswith("claude mcp add"):
                    assert shlex.split(line) == add_words, (
                        f"{doc.name} shows a `claude mcp add` line that is not the tested one: {line}"
                    )
                    checked += 1
    assert checked, "neither README.md nor docs/clients.md shows a client example"
