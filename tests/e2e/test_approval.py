"""`action = "require_approval"` end to end: the real Valkey MCP server behind the proxy, a real
Valkey, and real clients answering the proxy's question the way a person would, in both protocol
eras. What Valkey holds afterwards says what ran.

1. The official Python SDK client (mcp 2.3.0) with an elicitation callback: in the handshake era
   the proxy holds the call and sends `elicitation/create`; in 2026-07-28 it answers with an
   InputRequiredResult and checks the SDK's retry (which `Client.call_tool` drives by itself).
2. The approval command: a program the proxy runs with the call as JSON on its stdin, alone or
   racing the person's form.
3. Raw JSON lines over a pipe, for the 2026-07-28 retries a client could forge: a tampered,
   moved, missing or replayed `requestState` runs nothing. The fixture server's log of what it
   received shows that the proxy's own members never reach the server.
4. A second real client: the official TypeScript SDK v2 (@modelcontextprotocol/client, pinned
   in tests/e2e/ts-client and installed by scripts/setup-e2e).

The real server speaks both eras: `server/discover` answers `supportedVersions: ["2026-07-28"]`,
so the SDK's default mode="auto" lands on 2026-07-28 (checked), and mode="legacy" on 2025-11-25.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

import harness
from harness import Valkey, assert_allowed, assert_refused

REASON = "writes to the shared cache need a person's go-ahead"
RULE_NAME = "shared-writes"
INPUT_KEY = "mcp-policy-proxy/approval"
STATE_PREFIX = "mcp-policy-proxy.v1."
DECISIONS = ["approve_once", "approve_for_session", "deny"]
MODERN = "2026-07-28"

# The SDK client's modes, as in test_valkey_policy: its default (a server/discover probe, then
# 2026-07-28) and the initialize handshake. The era each lands on against the real server:
MODES = [pytest.param("auto", id="2026-07-28"), pytest.param("legacy", id="legacy")]
ERA = {"auto": MODERN, "legacy": "2025-11-25"}

# Seconds. The approval time-out where the time-out itself is under test, and how long the too
# slow person and the too slow approval command take: well past it, so that the outcome cannot
# depend on scheduling.
SHORT_TIMEOUT = 2
SLOW_PERSON = 4
SLOW_COMMAND = 10
# Only stops a hung wait for something that happens at once (a killed process disappearing).
GONE_TIMEOUT = 5.0


def policy(
    workdir: Path,
    *,
    timeout: str | None = None,
    channels: list[str] | None = None,
    command: list[str] | None = None,
    session_grant: str | None = None,
) -> Path:
    """Writes (rule 1, `valkey_write`) approval by a person; everything else is allowed."""
    approval = []
    if channels is not None:
        approval.append(f"channels = {json.dumps(channels)}")
    if timeout is not None:
        approval.append(f"timeout = {json.dumps(timeout)}")
    if command is not None:
        approval.append(f"command = {json.dumps(command)}")
    grant = f"session_grant = {json.dumps(session_grant)}\n" if session_grant else ""
    section = "[approval]\n" + "\n".join(approval) + "\n" if approval else ""
    return harness.write_policy(
        workdir,
        f"""
[policy]
default = "allow"

{section}
[[rules]]
name = "{RULE_NAME}"
tool = "valkey_write"
action = "require_approval"
reason = "{REASON}"
{grant}""",
    )


def set_call(key: str, value: str = "v") -> dict[str, Any]:
    return {"command": "SET", "args": [key, value]}


def assert_approval_refused(
    result: Any,
    kind: str,
    *,
    channel: str | None = None,
    note: str | None = None,
    problem: str | None = None,
) -> dict[str, Any]:
    """A refusal of rule 1 because the approval did not happen, as the SDK hands it over."""
    found = assert_refused(
        result, decision=kind, tool="valkey_write", rule=1, pattern="valkey_write", reason=REASON
    )
    assert found.get("ruleName") == RULE_NAME, found
    if channel is not None:
        assert found.get("channel") == channel, found
    if note is not None:
        assert found.get("note") == note, found
    if problem is not None:
        # What the proxy says went wrong is not presented as the person's words.
        assert found.get("problem") == problem, found
        assert "The person said" not in harness.text_of(result), harness.text_of(result)
    assert "not approved" in harness.text_of(result), harness.text_of(result)
    return found


# --- the person behind the Python SDK client's elicitation callback ----------------------------


def accept(decision: str, note: str | None = None) -> Any:
    from mcp import types

    content: dict[str, str] = {"decision": decision}
    if note is not None:
        content["note"] = note
    return types.ElicitResult(action="accept", content=content)


class Person:
    """Answers the proxy's questions with the given answers in turn (the last one repeats), and
    remembers what was asked. `gate`, when given, holds each answer until it is set; `delay`
    makes the person that many seconds slow."""

    def __init__(self, *answers: Any, gate: Any = None, delay: float = 0) -> None:
        import anyio

        self.answers = list(answers)
        self.gate = gate
        self.delay = delay
        self.questions: list[Any] = []
        self.request_ids: list[Any] = []
        self.asked = anyio.Event()

    async def __call__(self, context: Any, params: Any) -> Any:
        import anyio

        self.questions.append(params)
        self.request_ids.append(context.request_id)
        self.asked.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.delay:
            await anyio.sleep(self.delay)
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]

    @property
    def count(self) -> int:
        return len(self.questions)


def check_question(person: Person, mode: str, key: str) -> None:
    """The last question is the proxy's form: the call shown, a required decision of three."""
    params = person.questions[-1]
    assert getattr(params, "mode", "form") in (None, "form"), params
    schema = params.requested_schema
    decision = schema["properties"]["decision"]
    assert decision["type"] == "string" and decision["enum"] == DECISIONS, schema
    assert schema["required"] == ["decision"], schema
    assert schema["properties"]["note"]["type"] == "string", schema
    assert "valkey_write" in params.message and key in params.message, params.message
    if ERA[mode] == MODERN:
        # An InputRequiredResult's question is known by its key, not by a JSON-RPC id.
        assert person.request_ids[-1] == INPUT_KEY, person.request_ids
    else:
        assert person.request_ids[-1] != INPUT_KEY, person.request_ids


@contextlib.asynccontextmanager
async def open_client(launch: harness.Launch, mode: str, person: Person | None) -> AsyncIterator[Any]:
    """harness.open_client with an elicitation callback: the SDK then declares elicitation
    (form and url) in `initialize`, or in every 2026-07-28 request's `_meta`."""
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(command=launch.command, args=launch.args, env=launch.env, cwd=launch.cwd)
    stderr_path = launch.cwd / f"{launch.label}-{mode}.stderr.log"
    with open(stderr_path, "a") as errlog:
        errlog.write(f"--- {launch.describe()}\n")
        errlog.flush()
        async with Client(
            stdio_client(params, errlog=errlog),
            mode=mode,
            read_timeout_seconds=harness.CALL_TIMEOUT,
            elicitation_callback=person,
        ) as client:
            assert client.protocol_version == ERA[mode], client.protocol_version
            yield client


# --- 1. a person answers through the Python SDK client, in both eras ----------------------------


@pytest.mark.parametrize("mode", MODES)
def test_approve_once_runs_the_call_and_the_same_call_asks_again(
    mode: str, valkey: Valkey, workdir: Path, prefix: str
) -> None:
    launch = harness.proxied(valkey, workdir, policy(workdir))
    person = Person(accept("approve_once"))
    key = f"{prefix}k"

    async def session() -> None:
        async with open_client(launch, mode, person) as client:
            first = await client.call_tool("valkey_write", set_call(key, "first"))
            assert_allowed(first, "an approved write")
            assert first.structured_content == {"status": "success", "result": "OK"}
            assert person.count == 1
            check_question(person, mode, key)
            assert valkey("GET", key) == "first"

            # Once means once: the identical call is asked about again, and runs again.
            valkey("DEL", key)
            again = await client.call_tool("valkey_write", set_call(key, "first"))
            assert_allowed(again, "the same write, approved again")
            assert person.count == 2, "the identical call ran without asking"
            assert valkey("GET", key) == "first"

    harness.run(session)


@pytest.mark.parametrize("mode", MODES)
def test_anything_but_an_approval_refuses_and_runs_nothing(
    mode: str, valkey: Valkey, workdir: Path, prefix: str
) -> None:
    from mcp import types

    launch = harness.proxied(valkey, workdir, policy(workdir))
    answers = {
        "decline": (types.ElicitResult(action="decline"), None),
        "deny": (accept("deny", "use the replica"), "use the replica"),
        "bare-accept": (types.ElicitResult(action="accept"), None),
        "cancel": (types.ElicitResult(action="cancel"), None),
    }
    person = Person(*(answer for answer, _ in answers.values()))

    async def session() -> None:
        async with open_client(launch, mode, person) as client:
            for n, (name, (_, note)) in enumerate(answers.items(), start=1):
                result = await client.call_tool("valkey_write", set_call(f"{prefix}{name}"))
                assert person.count == n, name
                found = assert_approval_refused(result, "approval_denied", channel="elicitation", note=note)
                if name == "deny":
                    assert "The person said: use the replica" in harness.text_of(result)
                if name == "bare-accept":
                    assert found.get("problem") == "the answer carried no decision", found
                    assert "The person said" not in harness.text_of(result), harness.text_of(result)
            # The session goes on: an allowed call still runs.
            read = await client.call_tool("valkey_read", {"command": "EXISTS", "args": [f"{prefix}deny"]})
            assert_allowed(read, "valkey_read after the refusals")

    harness.run(session)
    assert valkey("KEYS", f"{prefix}*") == [], "a refused call reached Valkey"


@pytest.mark.parametrize("mode", MODES)
def test_a_person_too_slow_to_answer_is_a_time_out_and_runs_nothing(
    mode: str, valkey: Valkey, workdir: Path, prefix: str
) -> None:
    launch = harness.proxied(valkey, workdir, policy(workdir, timeout=f"{SHORT_TIMEOUT}s"))
    person = Person(accept("approve_once"), delay=SLOW_PERSON)
    key = f"{prefix}k"
    results: dict[str, Any] = {}

    async def session() -> None:
        async with open_client(launch, mode, person) as client:
            started = time.monotonic()
            results["write"] = await client.call_tool("valkey_write", set_call(key))
            elapsed = time.monotonic() - started
            assert person.count == 1
            if ERA[mode] != MODERN:
                # The proxy held the call and refused it at the time-out, without waiting for
                # the person (the SDK abandons the question when the proxy withdraws it).
                assert elapsed < SLOW_PERSON, elapsed
            read = await client.call_tool("valkey_read", {"command": "EXISTS", "args": [key]})
            assert_allowed(read, "valkey_read after the time-out")
            assert read.structured_content == {"status": "success", "result": 0}

    harness.run(session)
    assert valkey("EXISTS", key) == 0
    result = results["write"]
    assert result.is_error is True, harness.dump(result)
    assert_approval_refused(result, "approval_timeout")
    assert "nobody answered within" in harness.text_of(result), harness.text_of(result)


@pytest.mark.parametrize("mode", MODES)
def test_approve_for_session_covers_the_same_call_only_and_only_this_session(
    mode: str, valkey: Valkey, workdir: Path, prefix: str
) -> None:
    launch = harness.proxied(valkey, workdir, policy(workdir))
    person = Person(accept("approve_for_session"), accept("deny"))
    key, other = f"{prefix}k", f"{prefix}other"

    async def session() -> None:
        async with open_client(launch, mode, person) as client:
            first = await client.call_tool("valkey_write", set_call(key))
            assert_allowed(first, "a write approved for the session")
            assert person.count == 1
            assert valkey("GET", key) == "v"

            valkey("DEL", key)
            again = await client.call_tool("valkey_write", set_call(key))
            assert_allowed(again, "the same write under the session grant")
            assert person.count == 1, "the grant did not cover the identical call"
            assert valkey("GET", key) == "v", "the granted call did not run"

            # Other arguments are another call: asked about (and denied here).
            different = await client.call_tool("valkey_write", set_call(other))
            assert person.count == 2, "the grant covered a call with other arguments"
            assert_approval_refused(different, "approval_denied", channel="elicitation")

    async def next_session() -> None:
        # A grant lives in the proxy's memory for one session: a new one asks again.
        fresh = Person(accept("deny"))
        valkey("DEL", key)
        async with open_client(launch, mode, fresh) as client:
            result = await client.call_tool("valkey_write", set_call(key))
            assert fresh.count == 1, "a session grant outlived its session"
            assert_approval_refused(result, "approval_denied", channel="elicitation")

    harness.run(session)
    harness.run(next_session)
    assert valkey("KEYS", f"{prefix}*") == []


@pytest.mark.parametrize("mode", MODES)
def test_session_grant_tool_covers_the_tool_with_any_arguments(
    mode: str, valkey: Valkey, workdir: Path, prefix: str
) -> None:
    launch = harness.proxied(valkey, workdir, policy(workdir, session_grant="tool"))
    person = Person(accept("approve_for_session"))

    async def session() -> None:
        async with open_client(launch, mode, person) as client:
            for n in range(3):
                result = await client.call_tool("valkey_write", set_call(f"{prefix}k{n}", str(n)))
                assert_allowed(result, f"write #{n} under a tool-wide grant")
            assert person.count == 1

    harness.run(session)
    assert valkey("MGET", *(f"{prefix}k{n}" for n in range(3))) == ["0", "1", "2"]


@pytest.mark.parametrize("mode", MODES)
def test_other_calls_flow_while_a_person_decides(mode: str, valkey: Valkey, workdir: Path, prefix: str) -> None:
    import anyio

    launch = harness.proxied(valkey, workdir, policy(workdir))
    gate = anyio.Event()
    person = Person(accept("approve_once"), gate=gate)
    key = f"{prefix}k"
    valkey("SET", f"{prefix}seen", "meanwhile")
    results: dict[str, Any] = {}

    async def session() -> None:
        async with open_client(launch, mode, person) as client:

            async def write() -> None:
                results["write"] = await client.call_tool("valkey_write", set_call(key))

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(write)
                await person.asked.wait()
                # The person is looking at the question: a read in the same session completes.
                read = await client.call_tool("valkey_read", {"command": "GET", "args": [f"{prefix}seen"]})
                assert_allowed(read, "valkey_read while a write waits for a person")
                assert read.structured_content == {"status": "success", "result": "meanwhile"}
                assert "write" not in results and valkey("EXISTS", key) == 0, "the write ran before its approval"
                gate.set()
            assert_allowed(results["write"], "the write, approved after the read")

    harness.run(session)
    assert valkey("GET", key) == "v"


# --- 2. the approval command ---------------------------------------------------------------------

APPROVER = """#!{python}
# An approval command for the tests: it saves the call it is given and answers as the value of
# the SET asks it to.
import json, os, sys, time
request = sys.stdin.read()
out = {out!r}
n = len([name for name in os.listdir(out) if name.startswith("call-")])
with open(os.path.join(out, f"call-{{n}}.json"), "w") as f:
    f.write(request)
how = json.loads(request)["arguments"]["args"][1]
if how == "exit-0":
    sys.exit(0)
if how == "exit-1":
    sys.exit(1)
if how == "deny-with-note":
    print(json.dumps({{"decision": "deny", "note": "ask the on-call first"}}))
    sys.exit(0)
if how == "approve-for-session":
    print(json.dumps({{"decision": "approve_for_session"}}))
    sys.exit(0)
if how == "says-yes":
    print("yes")
    sys.exit(0)
if how == "crash":
    os.kill(os.getpid(), 9)
if how == "wait":
    with open(os.path.join(out, "waiting.tmp"), "w") as f:
        f.write(str(os.getpid()))
    os.rename(os.path.join(out, "waiting.tmp"), os.path.join(out, "waiting.pid"))
    time.sleep(600)
sys.exit(3)
"""

SLOW_APPROVER = """#!/bin/sh
# Saves its pid and the call, then takes far longer than the time-out before approving.
echo $$ > "$1/pid.tmp" && mv "$1/pid.tmp" "$1/pid"
cat > "$1/call.json"
sleep {slow}
touch "$1/finished"
exit 0
"""


def write_script(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


def saved_calls(out: Path) -> list[dict[str, Any]]:
    return [json.loads((out / f"call-{n}.json").read_text()) for n in range(len(list(out.glob("call-*.json"))))]


def process_group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes in the process group `pgid`."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        state, pgrp = fields[0], int(fields[2])
        if pgrp == pgid and state not in ("Z", "X"):
            members.append(int(entry.name))
    return members


async def assert_group_gone(pid: int) -> None:
    """Waits (briefly) for the process group of the approval command `pid` to be killed."""
    import anyio

    deadline = time.monotonic() + GONE_TIMEOUT
    while process_group_members(pid) and time.monotonic() < deadline:
        await anyio.sleep(0.05)
    assert process_group_members(pid) == [], "the approval command outlived its question"


@pytest.mark.parametrize("mode", MODES)
def test_the_approval_command_decides(mode: str, valkey: Valkey, workdir: Path, prefix: str) -> None:
    out = workdir / "approver-calls"
    out.mkdir()
    approver = write_script(workdir / "approver.py", APPROVER.format(python=sys.executable, out=str(out)))
    launch = harness.proxied(
        valkey, workdir, policy(workdir, channels=["command"], command=[str(approver)], timeout="60s")
    )

    async def session() -> None:
        # No elicitation callback: the client cannot show a form, so the command is the way.
        async with harness.open_client(launch, mode=mode) as client:
            assert client.protocol_version == ERA[mode]
            ran = await client.call_tool("valkey_write", set_call(f"{prefix}a", "exit-0"))
            assert_allowed(ran, "a write the approval command approved by exit 0")
            assert valkey("GET", f"{prefix}a") == "exit-0"

            for how, note, problem in [
                ("exit-1", None, None),
                ("deny-with-note", "ask the on-call first", None),
                ("says-yes", None, "the approval command's output was not a decision"),
                ("crash", None, None),
            ]:
                result = await client.call_tool("valkey_write", set_call(f"{prefix}{how}", how))
                found = assert_approval_refused(
                    result, "approval_denied", channel="command", note=note, problem=problem
                )
                assert valkey("EXISTS", f"{prefix}{how}") == 0, f"{how}: the refused write reached Valkey"
                assert found["channel"] == "command"

            granted = set_call(f"{prefix}s", "approve-for-session")
            for n in range(2):
                result = await client.call_tool("valkey_write", granted)
                assert_allowed(result, f"write #{n} approved for the session by the command")
            assert valkey("GET", f"{prefix}s") == "approve-for-session"

    harness.run(session)
    calls = saved_calls(out)
    # One run per question; the session grant answered the repeated call without a run.
    assert [c["arguments"]["args"][1] for c in calls] == [
        "exit-0", "exit-1", "deny-with-note", "says-yes", "crash", "approve-for-session",
    ], calls
    first = calls[0]
    assert first["tool"] == "valkey_write"
    assert first["arguments"] == set_call(f"{prefix}a", "exit-0")
    assert first["rule"] == {"number": 1, "name": RULE_NAME, "pattern": "valkey_write"}
    assert first["reason"] == REASON
    assert first["timeout_ms"] == 60_000
    assert "valkey-mcp-server" in first["server"], first["server"]
    assert isinstance(first["code"], str) and first["code"], first
    assert isinstance(first["session"], str) and first["session"], first
    assert len({c["session"] for c in calls}) == 1, "one session, one session id"
    assert len({c["code"] for c in calls}) == len(calls), "each question has a code of its own"


@pytest.mark.parametrize("mode", MODES)
def test_an_approval_command_past_the_time_out_is_killed_and_runs_nothing(
    mode: str, valkey: Valkey, workdir: Path, prefix: str
) -> None:
    out = workdir / "slow-approver"
    out.mkdir()
    approver = write_script(workdir / "slow-approver.sh", SLOW_APPROVER.format(slow=SLOW_COMMAND))
    launch = harness.proxied(
        valkey,
        workdir,
        policy(workdir, channels=["command"], command=[str(approver), str(out)], timeout=f"{SHORT_TIMEOUT}s"),
    )
    key = f"{prefix}k"

    async def session() -> None:
        async with harness.open_client(launch, mode=mode) as client:
            started = time.monotonic()
            result = await client.call_tool("valkey_write", set_call(key))
            assert time.monotonic() - started < SLOW_COMMAND
            assert_approval_refused(result, "approval_timeout")

            # The command was killed with its whole process group (its `sleep` too), so it
            # can never exit 0 later, and the call stays unrun for good.
            await assert_group_gone(int((out / "pid").read_text()))
            assert not (out / "finished").exists()

            read = await client.call_tool("valkey_read", {"command": "EXISTS", "args": [key]})
            assert_allowed(read, "valkey_read after the time-out")
            assert read.structured_content == {"status": "success", "result": 0}

    harness.run(session)
    assert valkey("EXISTS", key) == 0
    call = json.loads((out / "call.json").read_text())
    assert call["tool"] == "valkey_write" and call["arguments"] == set_call(key), call
    assert call["timeout_ms"] == SHORT_TIMEOUT * 1000


def test_the_first_channel_to_answer_decides_and_the_other_is_withdrawn(
    valkey: Valkey, workdir: Path, prefix: str
) -> None:
    """Both channels at once (handshake era: in 2026-07-28 a client that can show a form is asked
    through its retry only): the command approves while the person still looks at the form, whose
    question the proxy then withdraws; then the person denies while the command still runs, and
    the command is killed."""
    import anyio

    out = workdir / "approver-calls"
    out.mkdir()
    approver = write_script(workdir / "approver.py", APPROVER.format(python=sys.executable, out=str(out)))
    launch = harness.proxied(
        valkey, workdir,
        policy(workdir, channels=["elicitation", "command"], command=[str(approver)], timeout="60s"),
    )
    withdrawn = anyio.Event()
    asked: list[str] = []

    async def person(context: Any, params: Any) -> Any:
        asked.append(params.message)
        if "exit-0" in params.message:
            try:
                await anyio.sleep_forever()
            except anyio.get_cancelled_exc_class():
                withdrawn.set()
                raise
        # The person answers once the command is surely running (it has written its pid).
        with anyio.fail_after(harness.CALL_TIMEOUT):
            while not (out / "waiting.pid").exists():
                await anyio.sleep(0.02)
        return accept("deny", "the person was quicker")

    async def session() -> None:
        async with open_client(launch, "legacy", person) as client:
            ran = await client.call_tool("valkey_write", set_call(f"{prefix}a", "exit-0"))
            assert_allowed(ran, "a write the command approved while the form was open")
            assert valkey("GET", f"{prefix}a") == "exit-0"
            with anyio.fail_after(harness.CALL_TIMEOUT):
                await withdrawn.wait()  # notifications/cancelled reached the SDK

            denied = await client.call_tool("valkey_write", set_call(f"{prefix}b", "wait"))
            assert_approval_refused(denied, "approval_denied", channel="elicitation", note="the person was quicker")
            await assert_group_gone(int((out / "waiting.pid").read_text()))

    harness.run(session)
    assert len(asked) == 2 and len(saved_calls(out)) == 2, (asked, saved_calls(out))
    assert valkey("EXISTS", f"{prefix}b") == 0


# --- 3. 2026-07-28 retries, as raw JSON lines ----------------------------------------------------

MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}},
    "io.modelcontextprotocol/clientInfo": {"name": "e2e-raw", "version": "0.0.0"},
}
APPROVE_ONCE = {"action": "accept", "content": {"decision": "approve_once"}}


class RawClient:
    """A client that is nothing but JSON lines over the proxy's stdin and stdout."""

    def __init__(self, launch: harness.Launch, stderr: Path) -> None:
        self.errlog = open(stderr, "a")
        self.process = subprocess.Popen(
            launch.argv(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.errlog,
            env=os.environ | launch.env,
            cwd=launch.cwd,
        )
        self.lines: queue.Queue[bytes] = queue.Queue()
        self.next_id = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(b"")

    def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message).encode() + b"\n")
        self.process.stdin.flush()

    def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Sends a request with a fresh id and returns its response (notifications skipped)."""
        self.next_id += 1
        sent = {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}
        self.send(sent)
        deadline = time.monotonic() + harness.CALL_TIMEOUT
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                harness.fail(f"no answer within {harness.CALL_TIMEOUT} s to {json.dumps(sent)}")
            if not line:
                harness.fail(f"the proxy closed its stdout before answering {json.dumps(sent)}")
            message = json.loads(line)
            if message.get("id") == self.next_id and "method" not in message:
                return message

    def call(self, arguments: dict[str, Any], *, meta: dict[str, Any] = MODERN_META, **extra: Any) -> dict[str, Any]:
        """A 2026-07-28 `tools/call` of valkey_write; `extra` goes into params (inputResponses,
        requestState)."""
        return self.request("tools/call", {"name": "valkey_write", "arguments": arguments, "_meta": meta, **extra})

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=harness.CALL_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.errlog.close()


@contextlib.contextmanager
def raw_client(launch: harness.Launch, workdir: Path) -> Iterator[RawClient]:
    client = RawClient(launch, workdir / f"{launch.label}-raw.stderr.log")
    try:
        yield client
    finally:
        client.close()


def question_of(response: dict[str, Any]) -> str:
    """Checks an InputRequiredResult carrying the proxy's question; returns its requestState."""
    result = response.get("result")
    assert isinstance(result, dict) and result.get("resultType") == "input_required", response
    asked = result["inputRequests"][INPUT_KEY]
    assert asked["method"] == "elicitation/create", asked
    assert set(asked) == {"method", "params"}, "an InputRequest carries no jsonrpc and no id"
    decision = asked["params"]["requestedSchema"]["properties"]["decision"]
    assert decision["enum"] == DECISIONS, asked
    state = result["requestState"]
    assert isinstance(state, str) and state.startswith(STATE_PREFIX), result
    return state


def refusal_of(response: dict[str, Any], kind: str) -> dict[str, Any]:
    result = response.get("result")
    assert isinstance(result, dict), response
    assert result.get("isError") is True and result.get("resultType") == "complete", response
    found = result["_meta"][harness.DECISION_META]
    assert found["decision"] == kind and found["tool"] == "valkey_write" and found["rule"] == 1, response
    assert result["content"][0]["text"].startswith(harness.VIOLATION_PREFIX), response
    return found


def ran(response: dict[str, Any]) -> dict[str, Any]:
    result = response.get("result")
    assert isinstance(result, dict) and result.get("resultType") == "complete", response
    assert not result.get("isError") and harness.DECISION_META not in result.get("_meta", {}), response
    assert result["structuredContent"]["status"] == "success", response
    return result


def tampered(state: str) -> str:
    """The state with the last hex digit of its MAC changed."""
    return state[:-1] + ("0" if state[-1] != "0" else "1")


def test_a_modern_retry_runs_only_with_its_own_unused_state(valkey: Valkey, workdir: Path, prefix: str) -> None:
    launch = harness.proxied(valkey, workdir, policy(workdir))
    counter = f"{prefix}counter"
    incr = {"command": "INCR", "args": [counter]}
    answer = {"inputResponses": {INPUT_KEY: APPROVE_ONCE}}

    with raw_client(launch, workdir) as client:
        # The real server speaks 2026-07-28 (it is what the SDK's auto mode lands on).
        discover = client.request("server/discover", {"_meta": MODERN_META})
        assert MODERN in discover["result"]["supportedVersions"], discover

        # Tampered: the seal no longer matches.
        state = question_of(client.call(incr))
        found = refusal_of(client.call(incr, **answer, requestState=tampered(state)), "approval_denied")
        assert found["channel"] == "elicitation" and "does not match" in found["problem"], found
        assert valkey("EXISTS", counter) == 0

        # Moved: a genuine state, shown for one call, used for another.
        other = {"command": "INCR", "args": [f"{prefix}other"]}
        state = question_of(client.call(incr))
        found = refusal_of(client.call(other, **answer, requestState=state), "approval_denied")
        assert "does not match" in found["problem"], found
        assert valkey("EXISTS", f"{prefix}other") == 0 and valkey("EXISTS", counter) == 0

        # Missing: an answer without the state is no answer; the proxy asks again.
        question_of(client.call(incr, **answer))
        assert valkey("EXISTS", counter) == 0

        # Genuine: runs once, with the proxy's members taken out before the server sees them.
        state = question_of(client.call(incr))
        ran(client.call(incr, **answer, requestState=state))
        assert valkey("GET", counter) == "1"

        # Replayed: the same retry again (a new id) approves nothing.
        found = refusal_of(client.call(incr, **answer, requestState=state), "approval_denied")
        assert "already used" in found["problem"], found
        assert valkey("GET", counter) == "1"

        # A modern request that declares no elicitation cannot be asked about.
        no_form = MODERN_META | {"io.modelcontextprotocol/clientCapabilities": {}}
        refusal_of(client.call(incr, meta=no_form), "approval_unavailable")
        assert valkey("GET", counter) == "1"


def test_the_server_never_sees_the_proxys_question_or_state(workdir: Path) -> None:
    """What reaches the child, read from the fixture server's FIXTURE_LOG (the real server keeps
    no such record): the held first call never, the retry without the proxy's members, and a
    server's own input response left in place."""
    fixture = harness.fixture_bin()
    log = workdir / "fixture-received.jsonl"
    rules = harness.write_policy(workdir, '[[rules]]\ntool = "echo"\naction = "require_approval"\n')
    launch = harness.Launch(
        "fixture", str(harness.proxy_bin()), ["--config", str(rules), "--", str(fixture)],
        {"FIXTURE_LOG": str(log)}, workdir,
    )
    arguments = {"x": 1}
    with raw_client(launch, workdir) as client:
        first = client.request("tools/call", {"name": "echo", "arguments": arguments, "_meta": MODERN_META})
        state = question_of(first)
        retry = client.request("tools/call", {
            "name": "echo",
            "arguments": arguments,
            "_meta": MODERN_META,
            "inputResponses": {INPUT_KEY: APPROVE_ONCE, "server/own": {"action": "decline"}},
            "requestState": state,
        })
        assert retry["result"]["structuredContent"]["arguments"] == arguments, retry
    received = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    calls = [m for m in received if m.get("method") == "tools/call"]
    assert [c["id"] for c in calls] == [retry["id"]], "the call waiting for its answer reached the server"
    params = calls[0]["params"]
    assert "requestState" not in params, params
    assert params["inputResponses"] == {"server/own": {"action": "decline"}}, params
    assert params["arguments"] == arguments and params["_meta"] == MODERN_META, params


# --- 4. a second real client: the TypeScript SDK v2 ----------------------------------------------

TS_CLIENT = harness.E2E / "ts-client"
TS_CLIENT_VERSION = "2.4.0"
TS_ERAS = [pytest.param("legacy", id="legacy"), pytest.param("auto", id="2026-07-28")]


def ts_client_modules() -> Path:
    """node_modules of the pinned TypeScript client that scripts/setup-e2e installs next to the
    venv ($MCP_POLICY_PROXY_TS_CLIENT names another install dir)."""
    override = os.environ.get("MCP_POLICY_PROXY_TS_CLIENT")
    if override:
        home = Path(override)
    else:
        pins = TS_CLIENT / "package.json", TS_CLIENT / "package-lock.json"
        home = Path(sys.prefix).parent / f"ts-client-{harness.short_hash(*pins)}"
    package = home / "node_modules" / "@modelcontextprotocol" / "client" / "package.json"
    if not package.is_file():
        harness.fail(f"the TypeScript MCP client is not installed in {home}; {harness.SETUP_HINT}")
    version = json.loads(package.read_text())["version"]
    if version != TS_CLIENT_VERSION:
        harness.fail(f"{package} is version {version}, not {TS_CLIENT_VERSION}; {harness.SETUP_HINT}")
    return home / "node_modules"


def run_ts_client(
    launch: harness.Launch, era: str, answer: dict[str, Any], calls: list[dict[str, Any]]
) -> dict[str, Any]:
    """Runs tests/e2e/ts-client/approval_client.mjs on `launch`; returns what it printed."""
    node = shutil.which("node")
    if node is None:
        harness.fail(f"node is not on PATH; the TypeScript client needs Node.js 20 or newer; {harness.SETUP_HINT}")
    # Node resolves an ES module's imports from the script's own directory.
    home = launch.cwd / "ts-client"
    home.mkdir()
    (home / "node_modules").symlink_to(ts_client_modules())
    script = home / "approval_client.mjs"
    shutil.copy(TS_CLIENT / "approval_client.mjs", script)
    spec = home / "spec.json"
    spec.write_text(json.dumps({
        "era": era,
        "answer": answer,
        "calls": calls,
        "server": {"command": launch.command, "args": launch.args, "env": launch.env, "cwd": str(launch.cwd)},
    }))
    with open(launch.cwd / "ts-client.stderr.log", "w") as errlog:
        done = subprocess.run(
            [node, str(script), str(spec)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errlog, text=True,
            cwd=launch.cwd, timeout=harness.SESSION_TIMEOUT,
        )
    assert done.returncode == 0, f"the TypeScript client failed (exit {done.returncode}); see ts-client.stderr.log"
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("era", TS_ERAS)
def test_typescript_client_approves_once(era: str, valkey: Valkey, workdir: Path, prefix: str) -> None:
    launch = harness.proxied(valkey, workdir, policy(workdir))
    key = f"{prefix}k"
    out = run_ts_client(launch, era, APPROVE_ONCE, [{"name": "valkey_write", "arguments": set_call(key, "ts")}])
    assert out["protocolVersion"] == ERA[era], out["protocolVersion"]
    assert len(out["elicitations"]) == 1, out["elicitations"]
    assert out["elicitations"][0]["requestedSchema"]["properties"]["decision"]["enum"] == DECISIONS
    [result] = out["results"]
    assert not result.get("isError") and harness.DECISION_META not in result.get("_meta", {}), result
    assert result["structuredContent"] == {"status": "success", "result": "OK"}, result
    assert valkey("GET", key) == "ts"


@pytest.mark.parametrize("era", TS_ERAS)
def test_typescript_client_denies_and_nothing_runs(era: str, valkey: Valkey, workdir: Path, prefix: str) -> None:
    launch = harness.proxied(valkey, workdir, policy(workdir))
    key = f"{prefix}k"
    deny = {"action": "accept", "content": {"decision": "deny", "note": "not from the TS client"}}
    out = run_ts_client(launch, era, deny, [{"name": "valkey_write", "arguments": set_call(key, "ts")}])
    assert out["protocolVersion"] == ERA[era], out["protocolVersion"]
    assert len(out["elicitations"]) == 1, out["elicitations"]
    [result] = out["results"]
    assert result.get("isError") is True, result
    found = result["_meta"][harness.DECISION_META]
    assert found["decision"] == "approval_denied" and found["channel"] == "elicitation", found
    assert found["note"] == "not from the TS client", found
    assert valkey("EXISTS", key) == 0
