"""Argument conditions in front of the real Valkey MCP server: what runs is decided by what the
call does, and Valkey itself says what ran."""

from __future__ import annotations

from pathlib import Path

import pytest

import harness
from harness import Valkey, assert_allowed, assert_refused

NO_SET = "SET is reserved for the cache loader"
NO_PROD = "production keys are off limits"

POLICY = f"""
[policy]
default = "deny"

[[rules]]
tool = "valkey_write"
action = "deny"
reason = "{NO_SET}"
when = [ {{ arg = "command", eq = "SET", ignore_case = true }} ]

[[rules]]
tool = "valkey_write"
action = "deny"
reason = "{NO_PROD}"
when = [ {{ arg = "args[0]", glob = "prod:*" }} ]

[[rules]]
tool = "valkey_*"
action = "allow"
"""

MODES = [pytest.param("auto", id="2026-07-28"), pytest.param("legacy", id="legacy")]


@pytest.mark.parametrize("mode", MODES)
def test_conditions_decide_by_command_and_key(mode: str, valkey: Valkey, workdir: Path, prefix: str) -> None:
    policy = harness.write_policy(workdir, POLICY)

    async def session() -> None:
        async with harness.open_client(harness.proxied(valkey, workdir, policy), mode=mode) as client:
            await client.list_tools()
            # SET is refused by the command condition, however it is spelt.
            for spelling in ["SET", "set", "\u017fet"]:
                refused = await client.call_tool("valkey_write", {"command": spelling, "args": [f"{prefix}s", "1"]})
                assert_refused(refused, decision="deny", tool="valkey_write", rule=1, reason=NO_SET)
            # APPEND runs.
            append = await client.call_tool("valkey_write", {"command": "APPEND", "args": [f"{prefix}a", "x"]})
            assert_allowed(append, "APPEND")
            # A prod:* key is refused by the glob on args[0]; other keys run.
            prod = await client.call_tool("valkey_write", {"command": "APPEND", "args": ["prod:users", "x"]})
            assert_refused(prod, decision="deny", tool="valkey_write", rule=2, reason=NO_PROD)
            dev = await client.call_tool("valkey_write", {"command": "APPEND", "args": [f"{prefix}dev", "y"]})
            assert_allowed(dev, "APPEND to another key")
            # The same key sent as a JSON-encoded string, which the server would decode, is not
            # judged as the string it looks like: it is refused.
            encoded = await client.call_tool("valkey_write", {"command": "APPEND", "args": '["prod:users", "x"]'})
            found = assert_refused(encoded, decision="unjudgeable_arguments", tool="valkey_write", rule=2)
            assert "inputSchema" in found["reason"] or "inputSchema" in harness.text_of(encoded)

    harness.run(session)

    assert valkey("EXISTS", f"{prefix}s") == 0, "a refused SET reached Valkey"
    assert valkey("GET", f"{prefix}a") == "x"
    assert valkey("GET", f"{prefix}dev") == "y"
    assert valkey("EXISTS", "prod:users") == 0, "a write to a production key reached Valkey"
