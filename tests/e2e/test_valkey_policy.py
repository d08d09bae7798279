"""The proxy in front of the real Valkey MCP server, driven by the official Python SDK client in
both protocol eras, with every effect checked in Valkey itself.

The policy is the one a team would write for an agent: reads are free, writes are rate-limited,
administration is for people, anything not named is refused.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import harness
from harness import Valkey, assert_allowed, assert_refused

ADMIN_REASON = "administration (CONFIG, FLUSHALL, ...) is for people, not agents"
APPROVAL_REASON = "writes to the shared cache need a person's go-ahead"

POLICY = f"""
[policy]
default = "deny"

[[rules]]
tool = "valkey_read"
action = "allow"

[[rules]]
tool = "valkey_write"
action = "allow"
rate_limit = {{ max = 3, window = "60s" }}

[[rules]]
tool = "valkey_admin"
action = "deny"
reason = "{ADMIN_REASON}"
"""

WRITE_RULE, ADMIN_RULE = 2, 3
WRITE_LIMIT, WINDOW_MS = 3, 60_000

# Both eras of the SDK client: its default (server/discover, 2026-07-28, no initialize) and the
# initialize handshake every host shipped before it.
MODES = [pytest.param("auto", id="2026-07-28"), pytest.param("legacy", id="legacy")]

# A harmless admin command whose effect is easy to read back: the valkey_admin tool runs
# CONFIG SET when admin mode is on and confirm is given.
CONFIG_PARAM = "maxmemory-samples"


def admin_config_set(value: int) -> dict[str, object]:
    return {"command": "CONFIG", "args": ["SET", CONFIG_PARAM, str(value)], "confirm": True}


def config_value(valkey: Valkey) -> int:
    return int(valkey("CONFIG", "GET", CONFIG_PARAM)[1])


@pytest.mark.parametrize("mode", MODES)
def test_policy_decides_every_call_and_valkey_shows_it(
    mode: str, valkey: Valkey, workdir: Path, prefix: str
) -> None:
    policy = harness.write_policy(workdir, POLICY)
    valkey("SET", f"{prefix}greeting", "hello")
    samples_before = config_value(valkey)

    async def session() -> None:
        async with harness.open_client(harness.proxied(valkey, workdir, policy, admin=True), mode=mode) as client:
            expected_era = "2026-07-28" if mode == "auto" else "2025-11-25"
            assert client.protocol_version == expected_era

            names = {tool.name for tool in (await client.list_tools()).tools}
            assert {"valkey_read", "valkey_write", "valkey_admin"} <= names, names

            # Allowed: a read sees what is in Valkey.
            read = await client.call_tool("valkey_read", {"command": "GET", "args": [f"{prefix}greeting"]})
            assert_allowed(read, "valkey_read GET")
            assert read.structured_content == {"status": "success", "result": "hello"}

            # Rate-limited: the first WRITE_LIMIT writes run, the next one is refused.
            for n in range(1, WRITE_LIMIT + 1):
                write = await client.call_tool("valkey_write", {"command": "SET", "args": [f"{prefix}w{n}", f"v{n}"]})
                assert_allowed(write, f"valkey_write #{n}")
                assert write.structured_content == {"status": "success", "result": "OK"}
            over = await client.call_tool("valkey_write", {"command": "SET", "args": [f"{prefix}w4", "v4"]})
            found = assert_refused(
                over, decision="rate_limited", tool="valkey_write", rule=WRITE_RULE, pattern="valkey_write"
            )
            assert 0 < found["retryAfterMs"] <= WINDOW_MS, found
            assert "rate-limited" in harness.text_of(over)
            assert f"{WRITE_LIMIT}" in harness.text_of(over), "the model is not told the limit"

            # The limit is per rule: reads still run after the writes ran out.
            again = await client.call_tool("valkey_read", {"command": "GET", "args": [f"{prefix}w1"]})
            assert_allowed(again, "valkey_read after the write limit")
            assert again.structured_content == {"status": "success", "result": "v1"}

            # Denied, although the server would run it (admin mode is on; see the test below).
            admin = await client.call_tool("valkey_admin", admin_config_set(samples_before + 3))
            assert_refused(
                admin, decision="deny", tool="valkey_admin", rule=ADMIN_RULE, pattern="valkey_admin",
                reason=ADMIN_REASON,
            )

            # No rule names json_set: the default decides.
            other = await client.call_tool("json_set", {"key": f"{prefix}doc", "path": "$", "value": "{}"})
            assert_refused(other, decision="default_deny", tool="json_set", rule=None)

    harness.run(session)

    assert valkey("MGET", *(f"{prefix}w{n}" for n in range(1, 5))) == ["v1", "v2", "v3", None], (
        "Valkey should hold exactly the three allowed writes"
    )
    assert config_value(valkey) == samples_before, "the denied CONFIG SET reached Valkey"
    assert valkey("EXISTS", f"{prefix}doc") == 0


def test_the_denied_admin_call_works_without_the_proxy(valkey: Valkey, workdir: Path) -> None:
    """Proves the denial above is what stopped the admin call: the same call, straight to the
    server, changes Valkey's config."""
    before = config_value(valkey)

    async def session() -> None:
        async with harness.open_client(harness.direct(valkey, workdir, admin=True)) as client:
            result = await client.call_tool("valkey_admin", admin_config_set(before + 3))
            assert result.structured_content == {"status": "success", "result": "OK"}, harness.dump(result)

    try:
        harness.run(session)
        assert config_value(valkey) == before + 3
    finally:
        valkey("CONFIG", "SET", CONFIG_PARAM, str(before))


def test_a_hidden_tool_is_not_listed_and_does_not_run(valkey: Valkey, workdir: Path) -> None:
    """`hide = true` takes a denied tool out of tools/list; calling it anyway still changes
    nothing (whether the proxy answers with a refusal or an unknown-tool error)."""
    from mcp import MCPError

    policy = harness.write_policy(
        workdir,
        f"""
        [[rules]]
        tool = "valkey_admin"
        action = "deny"
        reason = "{ADMIN_REASON}"
        hide = true
        """,
    )
    before = config_value(valkey)

    async def session() -> None:
        async with harness.open_client(harness.proxied(valkey, workdir, policy, admin=True)) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert names == harness.VALKEY_TOOLS - {"valkey_admin"}, names
            try:
                result = await client.call_tool("valkey_admin", admin_config_set(before + 5))
            except MCPError:
                pass
            else:
                assert result.is_error is True, harness.dump(result)

    harness.run(session)
    assert config_value(valkey) == before, "the hidden tool ran"


def test_require_approval_without_a_way_to_ask_refuses_and_writes_nothing(
    valkey: Valkey, workdir: Path, prefix: str
) -> None:
    """The SDK client declares no elicitation, so nobody can be asked: the call must not run."""
    policy = harness.write_policy(
        workdir,
        f"""
        [policy]
        default = "allow"

        [[rules]]
        tool = "valkey_write"
        action = "require_approval"
        reason = "{APPROVAL_REASON}"
        """,
    )

    async def session() -> None:
        async with harness.open_client(harness.proxied(valkey, workdir, policy)) as client:
            result = await client.call_tool("valkey_write", {"command": "SET", "args": [f"{prefix}k", "v"]})
            assert_refused(
                result, decision="approval_unavailable", tool="valkey_write", rule=1, pattern="valkey_write",
                reason=APPROVAL_REASON,
            )
            assert "approval" in harness.text_of(result)
            read = await client.call_tool("valkey_read", {"command": "EXISTS", "args": [f"{prefix}k"]})
            assert_allowed(read, "valkey_read under default allow")

    harness.run(session)
    assert valkey("EXISTS", f"{prefix}k") == 0


def test_jsonrpc_error_violations_reach_the_sdk_as_errors(valkey: Valkey, workdir: Path, prefix: str) -> None:
    """With `violation = "jsonrpc_error"` a refusal is a JSON-RPC error, which the SDK raises."""
    from mcp import MCPError

    policy = harness.write_policy(
        workdir,
        """
        [policy]
        default = "allow"
        violation = "jsonrpc_error"

        [[rules]]
        tool = "valkey_write"
        action = "deny"
        reason = "read-only agent"
        """,
    )

    async def session() -> None:
        async with harness.open_client(harness.proxied(valkey, workdir, policy), mode="legacy") as client:
            with pytest.raises(MCPError) as refused:
                await client.call_tool("valkey_write", {"command": "SET", "args": [f"{prefix}k", "v"]})
            assert "valkey_write" in str(refused.value), str(refused.value)
            read = await client.call_tool("valkey_read", {"command": "PING"})
            assert_allowed(read, "valkey_read PING")

    harness.run(session)
    assert valkey("EXISTS", f"{prefix}k") == 0


def test_an_invalid_policy_never_starts_the_server(workdir: Path) -> None:
    """An invalid config must stop the proxy before it runs an unprotected server."""
    policy = harness.write_policy(workdir, '[[rules]]\ntool = "valkey_admin"\naction = "alow"\n')
    check = subprocess.run(
        [str(harness.proxy_bin()), "--config", str(policy), "--check"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30,
    )
    assert check.returncode == 2, check
    assert "alow" in check.stderr, check.stderr

    marker = workdir / "child-started"
    run = subprocess.run(
        [str(harness.proxy_bin()), "--config", str(policy), "--", "/bin/sh", "-c", f"touch {marker}"],
        input="", capture_output=True, text=True, timeout=30, cwd=workdir,
    )
    assert run.returncode != 0, run
    assert run.stdout == "", "stdout is the protocol channel: nothing but MCP messages may go there"
    assert not marker.exists(), "the child was started despite the invalid policy"


def test_the_policy_can_come_from_the_environment(valkey: Valkey, workdir: Path, prefix: str) -> None:
    """MCP_POLICY_PROXY_CONFIG names the policy when the command line does not."""
    policy = harness.write_policy(workdir, POLICY)
    launch = harness.proxied(valkey, workdir, policy, proxy_args=[])
    launch.env["MCP_POLICY_PROXY_CONFIG"] = str(policy)

    async def session() -> None:
        async with harness.open_client(launch) as client:
            result = await client.call_tool("valkey_admin", {"command": "FLUSHALL", "args": [], "confirm": True})
            assert_refused(result, decision="deny", tool="valkey_admin", rule=ADMIN_RULE, reason=ADMIN_REASON)

    valkey("SET", f"{prefix}survivor", "1")
    harness.run(session)
    assert valkey("GET", f"{prefix}survivor") == "1"


def test_the_server_can_come_from_the_policy_file(valkey: Valkey, workdir: Path, prefix: str) -> None:
    """With a [server] table, `mcp-policy-proxy --config FILE` is the whole command line a host
    needs; the table's env reaches the server."""
    server = {
        "command": str(harness.valkey_mcp_server()),
        "env": harness.server_env(valkey, workdir, admin=True),
        "cwd": str(workdir),
    }
    env_table = ", ".join(f'{name} = "{value}"' for name, value in server["env"].items())
    policy = harness.write_policy(
        workdir,
        f'[server]\ncommand = "{server["command"]}"\nenv = {{ {env_table} }}\ncwd = "{server["cwd"]}"\n{POLICY}',
    )
    launch = harness.Launch("proxied-server-table", str(harness.proxy_bin()), ["--config", str(policy)], {}, workdir)

    async def session() -> None:
        async with harness.open_client(launch) as client:
            write = await client.call_tool("valkey_write", {"command": "SET", "args": [f"{prefix}k", "v"]})
            assert_allowed(write, "valkey_write")
            admin = await client.call_tool("valkey_admin", admin_config_set(1))
            assert_refused(admin, decision="deny", tool="valkey_admin", rule=ADMIN_RULE)

    harness.run(session)
    assert valkey("GET", f"{prefix}k") == "v"
