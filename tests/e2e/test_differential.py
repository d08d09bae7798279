"""For allowed calls the proxy must be invisible: the same client sees the same server, the same
tools and the same results with and without it, in both protocol eras.

Each side runs the same script of calls against the same keys (cleared in between), so even the
values that depend on state (INCR, RPUSH lengths) must match.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import harness
from harness import Valkey

# A restrictive policy on purpose: allowed calls must pass untouched even when rules around them
# deny, limit and default-deny.
POLICY = """
[policy]
default = "deny"

[[rules]]
tool = "valkey_admin"
action = "deny"
reason = "not for agents"

[[rules]]
tool = "valkey_read"
action = "allow"

[[rules]]
tool = "valkey_write"
action = "allow"
rate_limit = { max = 100, window = "60s" }

[[rules]]
tool = "json_*"
action = "allow"
"""

MODES = [pytest.param("auto", id="2026-07-28"), pytest.param("legacy", id="legacy")]


def script(prefix: str) -> list[tuple[str, dict[str, Any]]]:
    """Successes, Valkey errors and the server's own refusals: all of them are allowed calls."""
    return [
        ("valkey_write", {"command": "SET", "args": [f"{prefix}s", "text with ünïcode and \"quotes\"\n"]}),
        ("valkey_read", {"command": "GET", "args": [f"{prefix}s"]}),
        ("valkey_write", {"command": "HSET", "args": [f"{prefix}h", "a", "1", "b", "2"]}),
        ("valkey_read", {"command": "HGETALL", "args": [f"{prefix}h"]}),
        ("valkey_write", {"command": "RPUSH", "args": [f"{prefix}l", "x", "y", "z"]}),
        ("valkey_read", {"command": "LRANGE", "args": [f"{prefix}l", "0", "-1"]}),
        ("valkey_write", {"command": "incr", "args": [f"{prefix}n"]}),
        ("valkey_write", {"command": "INCRBY", "args": [f"{prefix}n", "41"]}),
        ("valkey_read", {"command": "TYPE", "args": [f"{prefix}h"]}),
        ("valkey_read", {"command": "GET", "args": [f"{prefix}missing"]}),
        # Valkey's own error, passed through as the server words it.
        ("valkey_read", {"command": "GET", "args": [f"{prefix}h"]}),
        # The server's own refusals (isError false, status error).
        ("valkey_read", {"command": "SET", "args": [f"{prefix}x", "1"]}),
        ("valkey_write", {"command": "FLUSHALL", "args": []}),
        # No JSON module in this Valkey: an error result from another tool family.
        ("json_get", {"key": f"{prefix}doc", "path": "$"}),
    ]


async def transcript(launch: harness.Launch, mode: str, prefix: str) -> dict[str, Any]:
    async with harness.open_client(launch, mode=mode) as client:
        record: dict[str, Any] = {
            "protocol_version": client.protocol_version,
            "server_info": harness.dump(client.server_info) if client.server_info else None,
            "capabilities": harness.dump(client.server_capabilities),
            "instructions": client.instructions,
            "tools": harness.dump(await client.list_tools()),
            "calls": [],
        }
        for name, arguments in script(prefix):
            result = await client.call_tool(name, arguments)
            record["calls"].append({"call": [name, arguments], "result": harness.dump(result)})
        return record


@pytest.mark.parametrize("mode", MODES)
def test_allowed_calls_see_the_same_server_with_and_without_the_proxy(
    mode: str, valkey: Valkey, workdir: Path, prefix: str
) -> None:
    policy = harness.write_policy(workdir, POLICY)

    without = harness.run(transcript, harness.direct(valkey, workdir), mode, prefix)
    state_without = valkey_state(valkey, prefix)
    valkey.delete_prefix(prefix)
    with_proxy = harness.run(transcript, harness.proxied(valkey, workdir, policy), mode, prefix)
    state_with = valkey_state(valkey, prefix)

    assert {tool["name"] for tool in without["tools"]["tools"]} == harness.VALKEY_TOOLS
    assert without["calls"][1]["result"]["structuredContent"]["status"] == "success", "the script itself is broken"
    for key in ("protocol_version", "server_info", "capabilities", "instructions", "tools"):
        assert with_proxy[key] == without[key], (
            f"{key} differs through the proxy:\n{diff(without[key], with_proxy[key])}"
        )
    for plain, proxied in zip(without["calls"], with_proxy["calls"], strict=True):
        assert proxied == plain, f"a call's result differs through the proxy:\n{diff(plain, proxied)}"
    assert state_with == state_without


def valkey_state(valkey: Valkey, prefix: str) -> dict[str, Any]:
    state: dict[str, Any] = {}
    for key in sorted(valkey("KEYS", f"{prefix}*")):
        kind = valkey("TYPE", key)
        if kind == "string":
            state[key] = valkey("GET", key)
        elif kind == "hash":
            state[key] = valkey("HGETALL", key)
        elif kind == "list":
            state[key] = valkey("LRANGE", key, 0, -1)
        else:
            state[key] = kind
    return state


def diff(expected: Any, actual: Any) -> str:
    return (
        "without the proxy: " + json.dumps(expected, indent=1, sort_keys=True)[:3000]
        + "\nthrough the proxy: " + json.dumps(actual, indent=1, sort_keys=True)[:3000]
    )
