"""The audit log of a session against the real Valkey MCP server: exactly one record per
decision with its fields, no secret argument value, and `mcp-policy-proxy audit --json` counting
the same."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import harness
from harness import Valkey, assert_allowed, assert_refused

SECRET = "s3cret-token-value"


def test_one_record_per_decision_and_the_summary_agrees(valkey: Valkey, workdir: Path, prefix: str) -> None:
    log = workdir / "audit.jsonl"
    policy = harness.write_policy(
        workdir,
        f"""
[policy]
default = "deny"

[audit]
path = "{log}"
include_arguments = true
redact = ["args[1]"]

[[rules]]
tool = "valkey_read"
action = "allow"

[[rules]]
name = "writes"
tool = "valkey_write"
action = "allow"
rate_limit = {{ max = 1, window = "1h" }}

[[rules]]
tool = "valkey_admin"
action = "deny"
reason = "administration is for people"
""",
    )

    async def session() -> None:
        async with harness.open_client(harness.proxied(valkey, workdir, policy), mode="legacy") as client:
            assert_allowed(await client.call_tool("valkey_read", {"command": "GET", "args": [f"{prefix}k"]}), "read")
            assert_allowed(
                await client.call_tool("valkey_write", {"command": "SET", "args": [f"{prefix}k", SECRET]}), "write"
            )
            limited = await client.call_tool("valkey_write", {"command": "SET", "args": [f"{prefix}k", SECRET]})
            assert_refused(limited, decision="rate_limited", tool="valkey_write", rule=2)
            denied = await client.call_tool("valkey_admin", {"command": "INFO", "args": []})
            assert_refused(denied, decision="deny", tool="valkey_admin", rule=3)
            other = await client.call_tool("json_get", {"key": f"{prefix}doc"})
            assert_refused(other, decision="default_deny", tool="json_get", rule=None)

    harness.run(session)
    assert valkey("GET", f"{prefix}k") == SECRET, "the allowed write ran"

    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["decision"] for r in records] == ["allow", "allow", "rate_limited", "deny", "default_deny"], records
    for record in records:
        for field in ("time", "session", "tool", "decision", "args_sha256"):
            assert record.get(field), (field, record)
        assert record["time"].endswith("Z"), record
    assert records[1]["rule"] == "writes"
    assert records[3]["reason"] == "administration is for people"
    assert records[1]["arguments"]["args"] == [f"{prefix}k", "[redacted]"]
    assert SECRET not in log.read_text(), "a redacted value reached the audit log"

    summary = subprocess.run(
        [str(harness.proxy_bin()), "audit", "--json", str(log)],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30,
    )
    assert summary.returncode == 0, summary.stderr
    counts = json.loads(summary.stdout)["decisions"]
    assert counts == {"allow": 2, "rate_limited": 1, "deny": 1, "default_deny": 1}, counts
