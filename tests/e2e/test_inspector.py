"""A second real client: the MCP Inspector CLI (npm @modelcontextprotocol/inspector, pinned in
tests/e2e/inspector), which spawns the proxy from its own command line, as a CI job or a person
trying a server would.

The Inspector v2.12 takes everything after its first bare `--` as the target's argv, verbatim;
v1 strips every `--` (mcp-spec-notes §10.3). Without a `--` it would read the proxy's `--config`
as its own flag, so the forms that work are `proxy -- --config P ...` and `proxy --policy P ...`.
Every form must end in the same policy being enforced.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import harness
from harness import Valkey

REASON = "administration is for people"
POLICY = f"""
[policy]
default = "deny"

[[rules]]
tool = "valkey_read"
action = "allow"

[[rules]]
tool = "valkey_write"
action = "allow"

[[rules]]
tool = "valkey_admin"
action = "deny"
reason = "{REASON}"
"""

# The Inspector's documented exit codes (v2): 0 ok, 5 the tool returned isError:true.
EXIT_OK, EXIT_TOOL_IS_ERROR = 0, 5


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def inspector(workdir: Path, valkey: Valkey, method_args: list[str], target: list[str]) -> Outcome:
    """`mcp-inspector --cli -e ... --method ... --format json TARGET...` with the Inspector's own
    flags first, as documented. The Inspector passes the spawned command only the env it is
    given with -e (plus PATH, HOME and the like)."""
    env_flags: list[str] = []
    for name, value in harness.server_env(valkey, workdir, admin=True).items():
        env_flags += ["-e", f"{name}={value}"]
    argv = [str(harness.inspector_bin()), "--cli", *env_flags, *method_args, "--format", "json", *target]
    home = workdir / "inspector-home"
    home.mkdir(exist_ok=True)
    done = subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=harness.SESSION_TIMEOUT,
        cwd=workdir,
        # A home of its own, so the Inspector's state files land in the temp dir.
        env={"PATH": os.environ["PATH"], "HOME": str(home)},
    )
    (workdir / "inspector.stderr.log").open("a").write(f"--- {argv}\n{done.stderr}\n")
    return Outcome(done.returncode, done.stdout, done.stderr)


def call(tool: str, arguments: dict[str, Any]) -> list[str]:
    return ["--method", "tools/call", "--tool-name", tool, "--tool-args-json", json.dumps(arguments)]


def proxy_forms(policy: Path) -> dict[str, list[str]]:
    proxy, server = str(harness.proxy_bin()), str(harness.valkey_mcp_server())
    return {
        # v2.12 eats its separator; the proxy gets `--config P SERVER`.
        "inspector-separator": [proxy, "--", "--config", str(policy), server],
        # The proxy's own `--` survives the Inspector's.
        "both-separators": [proxy, "--", "--config", str(policy), "--", server],
        # No separator at all: works because the Inspector has no --policy flag of its own.
        "no-separator": [proxy, "--policy", str(policy), server],
    }


def test_inspector_sees_the_same_tools_through_the_proxy(valkey: Valkey, workdir: Path) -> None:
    policy = harness.write_policy(workdir, POLICY)
    listing = ["--method", "tools/list"]
    plain = inspector(workdir, valkey, listing, [str(harness.valkey_mcp_server())])
    proxied = inspector(workdir, valkey, listing, proxy_forms(policy)["both-separators"])
    assert plain.returncode == EXIT_OK, plain.stderr[-2000:]
    assert proxied.returncode == EXIT_OK, proxied.stderr[-2000:]
    assert {tool["name"] for tool in plain.json()["result"]["tools"]} == harness.VALKEY_TOOLS
    assert proxied.json() == plain.json()


def test_inspector_allowed_call_runs(valkey: Valkey, workdir: Path, prefix: str) -> None:
    policy = harness.write_policy(workdir, POLICY)
    out = inspector(
        workdir, valkey,
        call("valkey_write", {"command": "SET", "args": [f"{prefix}k", "from the inspector"]}),
        proxy_forms(policy)["no-separator"],
    )
    assert out.returncode == EXIT_OK, out.stderr[-2000:]
    result = out.json()["result"]
    assert result["structuredContent"] == {"status": "success", "result": "OK"}, result
    assert valkey("GET", f"{prefix}k") == "from the inspector"


@pytest.mark.parametrize("form", ["inspector-separator", "both-separators", "no-separator"])
def test_inspector_denied_call_is_refused_in_every_command_line_form(
    form: str, valkey: Valkey, workdir: Path
) -> None:
    policy = harness.write_policy(workdir, POLICY)
    setting = "maxmemory-samples"
    before = valkey("CONFIG", "GET", setting)[1]
    out = inspector(
        workdir, valkey,
        call("valkey_admin", {"command": "CONFIG", "args": ["SET", setting, str(int(before) + 4)], "confirm": True}),
        proxy_forms(policy)[form],
    )
    assert out.returncode == EXIT_TOOL_IS_ERROR, (out.returncode, out.stdout, out.stderr[-2000:])
    assert '"tool_is_error"' in out.stderr
    result = out.json()["result"]
    assert result["isError"] is True
    decision = result["_meta"][harness.DECISION_META]
    assert decision["decision"] == "deny" and decision["tool"] == "valkey_admin" and decision["rule"] == 3, decision
    text = result["content"][0]["text"]
    assert text.startswith(harness.VIOLATION_PREFIX) and REASON in text, text
    assert valkey("CONFIG", "GET", setting)[1] == before, "the denied CONFIG SET reached Valkey"
