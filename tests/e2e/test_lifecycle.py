"""A host ends a stdio server by closing its stdin and, after a grace period (2 s in both official
SDKs), killing its process group. The proxy must not need the kill: when the client goes, the
proxy and the real server behind it are gone within the grace period."""

from __future__ import annotations

import time
from pathlib import Path

import harness
from harness import Valkey

# mcp.client.stdio.PROCESS_TERMINATION_TIMEOUT in mcp 2.3.0: after this the SDK kills the group.
SDK_GRACE_SECONDS = 2.0


def processes_with_env(marker: str) -> list[int]:
    """Pids whose environment mentions `marker` (both the proxy and the server get MCP_LOG_FILE)."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker.encode() in environ.read_bytes():
                found.append(int(environ.parent.name))
        except OSError:
            continue
    return found


def test_closing_the_client_ends_the_proxy_and_the_server_promptly(valkey: Valkey, workdir: Path) -> None:
    policy = harness.write_policy(workdir, '[policy]\ndefault = "allow"\n')
    launch = harness.proxied(valkey, workdir, policy)
    marker = launch.env["MCP_LOG_FILE"]
    seen: dict[str, object] = {}

    async def session() -> None:
        client_context = harness.open_client(launch, mode="legacy")
        client = await client_context.__aenter__()
        try:
            result = await client.call_tool("valkey_read", {"command": "PING"})
            harness.assert_allowed(result, "valkey_read PING")
            seen["running"] = processes_with_env(marker)
        finally:
            start = time.monotonic()
            await client_context.__aexit__(None, None, None)
            seen["close_seconds"] = time.monotonic() - start

    harness.run(session)
    assert len(seen["running"]) >= 2, f"expected the proxy and the server to be running: {seen}"  # type: ignore[arg-type]
    assert seen["close_seconds"] < SDK_GRACE_SECONDS, (
        f"closing took {seen['close_seconds']:.2f} s: the proxy did not exit on stdin EOF within the SDK's "
        f"{SDK_GRACE_SECONDS} s grace period, so the host had to kill it"
    )
    assert processes_with_env(marker) == [], "the proxy or the server outlived the session"
