"""What the server runs, with Valkey's MONITOR as the oracle: the proxy's view of a Valkey
command (the words `explain --json` reports, and the verdict of a rule on them) must be what
Valkey records, for a generated corpus of argument shapes; a shape the proxy cannot view
faithfully must be refused, with a reason.

Each shape is run three ways against a valkey-server of this module's own (the corpus flushes
it):

* the control: the real Valkey MCP server, no proxy. MONITOR says which shapes it runs, and as
  what;
* `explain --json --tools` with each policy: the words the proxy says the server would run, and
  the decision;
* the same server behind the proxy, once per policy: what it lets through must be what the
  control ran, and no flush may get through.

The corpus is made from a seed, so a failure names a shape that can be run again. MONITOR leaves
out Valkey's administrative commands (CONFIG, CLIENT KILL, ...): for those shapes only explain
and the session are compared.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import harness

FLUSHES = frozenset({b"FLUSHALL", b"FLUSHDB"})


def dangerous(words: list[bytes]) -> bool:
    """What both policies refuse: a flush, or CONFIG SET (Valkey reads the subcommand in any
    case). MONITOR never shows CONFIG (Valkey leaves administrative commands out of it), so only
    the flushes are seen to run; CONFIG SET shapes are still checked for agreement between
    explain and the session."""
    return bool(words) and (words[0] in FLUSHES or [w.upper() for w in words[:2]] == [b"CONFIG", b"SET"])
SEED = 23
SHAPES_PER_BASE = 24

# The way the README now teaches: deny by what runs.
WORDS_POLICY = """
[policy]
default = "allow"

[[rules]]
name = "no flush"
tool = "valkey_{admin,read,write}"
action = "deny"
reason = "flushing the database needs an operator"
when = [ { any = [
  { arg = "@words[0]", in = ["FLUSHALL", "FLUSHDB"] },
  { all = [ { arg = "@words[0]", eq = "CONFIG" }, { arg = "@words[1]", eq = "SET", ignore_case = true } ] },
] } ]
"""

# The way the docs taught until now: a rule on the `command` field.
COMMAND_POLICY = """
[policy]
default = "allow"

[[rules]]
name = "no flush"
tool = "valkey_{admin,read,write}"
action = "deny"
reason = "flushing the database needs an operator"
when = [ { arg = "command", in = ["FLUSHALL", "FLUSHDB", "CONFIG SET"], ignore_case = true } ]
"""

# Each tool's commands, as words (the first one or two the command, the rest its arguments).
BASES: dict[str, list[list[str]]] = {
    "valkey_admin": [
        ["FLUSHALL"],
        ["FLUSHALL", "SYNC"],
        ["FLUSHDB", "ASYNC"],
        ["CONFIG", "SET", "maxmemory-samples", "5"],
        ["CLIENT", "SETNAME", "diff"],
    ],
    "valkey_read": [["GET", "d:k"], ["DBSIZE"], ["MEMORY", "USAGE", "d:k"], ["EXISTS", "d:k", "d:j"]],
    "valkey_write": [["SET", "d:k", "v"], ["DEL", "d:k"], ["FLUSHALL"], ["INCR", "d:n"]],
}

# Between the words of a command: Python's str.split() splits on every one of these but the
# zero-width space (not whitespace to Python) and the plain letters.
SEPARATORS = [" ", "  ", "\t", "\n", "\u00a0", "\u3000", "\u2003", "\u1680", "\u2028", "\x1f", "\x85", "\u200b"]
PADS = ["", "", " ", "\t", "\u00a0", "\u3000", "\u202f", "\x1c"]


def spell(word: str, rng: random.Random) -> str:
    """A spelling of `word` that Python's str.upper() may or may not bring back to it."""
    choice = rng.randrange(8)
    if choice == 0:
        return word.lower()
    if choice == 1:
        return word.title()
    if choice == 2:  # ligatures: upper() gives FL, FF, ST
        return word.lower().replace("fl", "\ufb02").replace("ff", "\ufb00").replace("st", "\ufb06")
    if choice == 3:  # long s and dotless i: upper() gives S and I
        return word.lower().replace("s", "\u017f").replace("i", "\u0131")
    if choice == 4:  # full-width letters: upper() keeps them full-width, so Valkey knows no such command
        return "".join(chr(ord(c) + 0xFEE0) if "A" <= c <= "Z" else c for c in word)
    if choice == 5:  # a Cyrillic look-alike: no ASCII upper-case
        return word.replace("A", "\u0410").replace("E", "\u0415")
    return word


def shape(tool: str, words: list[str], rng: random.Random) -> dict[str, Any]:
    """One call's arguments that a careless or hostile agent might send for `words`. The server
    checks its allowlist on `" ".join([command] + args)` before it runs anything, so the corpus
    leans to shapes that pass it (the command's first word at the very start, a plain space
    after an allowlisted name) and then differ in what follows: those are the ones that run."""
    split = rng.randrange(1, len(words) + 1) if rng.randrange(5) else 0  # words in `command`
    head = [spell(w, rng) for w in words[:split]]
    rest = list(words[split:])

    def separator() -> str:
        return " " + rng.choice(["", "", " ", "\t", "\u3000", "\u00a0", "\x1f", "\u2028"]) if rng.randrange(5) < 3 else rng.choice(SEPARATORS)

    lead = rng.choice(PADS) if rng.randrange(7) == 0 else ""
    trail = rng.choice(["", "", " " + rng.choice(PADS), rng.choice(PADS)])
    command = lead + "".join(w if i == 0 else separator() + w for i, w in enumerate(head)) + trail
    if rng.randrange(3) == 0 and rest and split == 1 and len(words) > 2:
        rest[0] = spell(rest[0], rng)  # a subcommand in args, in another case
    if rng.randrange(6) == 0 and rest:
        rest[-1] = rest[-1] + rng.choice([" ", "\u00a0"])  # whitespace inside an argument
    if rng.randrange(8) == 0:
        rest.append("")
    arguments: dict[str, Any] = {"command": command}
    form = rng.randrange(8)
    if form == 0:
        arguments["args"] = json.dumps(rest)  # JSON text, which the server decodes
    elif form == 1 and not rest:
        arguments["args"] = None
    elif form == 2 and not rest:
        pass  # no args at all
    elif form == 3 and split == 0:
        arguments["command"] = json.dumps(rest[:1])  # JSON in the command
        arguments["args"] = rest[1:]
    else:
        arguments["args"] = rest
    if tool == "valkey_admin":
        arguments["confirm"] = True
    return arguments


def corpus() -> list[tuple[str, dict[str, Any]]]:
    rng = random.Random(SEED)
    shapes: list[tuple[str, dict[str, Any]]] = [
        # The issue's call, and its neighbours.
        ("valkey_admin", {"command": "FLUSHALL SYNC", "args": [], "confirm": True}),
        ("valkey_admin", {"command": "FLUSHALL", "args": ["SYNC"], "confirm": True}),
        ("valkey_admin", {"command": "\ufb02ushall", "confirm": True}),
        ("valkey_admin", {"command": "FLUSHALL\u00a0SYNC", "confirm": True}),
        ("valkey_admin", {"command": "FLUSHALL \u3000SYNC", "confirm": True}),
        ("valkey_admin", {"command": "", "args": ["FLUSHALL"], "confirm": True}),
        ("valkey_write", {"command": "FLUSHALL SYNC"}),
    ]
    seen = {json.dumps([t, a], sort_keys=True) for t, a in shapes}
    for tool, bases in BASES.items():
        for words in bases:
            made = 0
            while made < SHAPES_PER_BASE:
                arguments = shape(tool, words, rng)
                key = json.dumps([tool, arguments], sort_keys=True)
                if key in seen:
                    continue
                seen.add(key)
                shapes.append((tool, arguments))
                made += 1
    return shapes


def unrepr(text: str) -> bytes:
    """One argument as MONITOR writes it (sdscatrepr: printable ASCII, \\xHH and C escapes)."""
    escapes = {"n": b"\n", "r": b"\r", "t": b"\t", "a": b"\a", "b": b"\b", "\\": b"\\", '"': b'"'}
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            n = text[i + 1]
            if n == "x":
                out.append(int(text[i + 2 : i + 4], 16))
                i += 4
                continue
            out += escapes[n]
            i += 2
            continue
        out += c.encode("latin-1")
        i += 1
    return bytes(out)


def monitor_words(line: str) -> tuple[str, list[bytes]]:
    """The client address and the words of one MONITOR line:
    `+1733600000.123456 [0 127.0.0.1:50000] "FLUSHALL" "SYNC"`."""
    client, _, rest = line.partition("] ")
    address = client.rpartition(" ")[2]
    words: list[bytes] = []
    i = 0
    while i < len(rest):
        if rest[i] == " ":
            i += 1
            continue
        assert rest[i] == '"', line
        j = i + 1
        while rest[j] != '"':
            j += 2 if rest[j] == "\\" else 1
        words.append(unrepr(rest[i + 1 : j]))
        i = j + 1
    return address, words


@dataclass
class Monitor:
    """MONITOR on one connection; a marker (`ECHO`) sent on another after each call ends the
    call's share of the stream, so each call gets exactly the commands it ran."""

    port: int
    sock: socket.socket = field(init=False)
    file: Any = field(init=False)
    marker: harness.Resp = field(init=False)
    marker_address: str = field(init=False)
    count: int = 0

    def __post_init__(self) -> None:
        self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        self.sock.sendall(b"*1\r\n$7\r\nMONITOR\r\n")
        self.file = self.sock.makefile("rb")
        assert self.file.readline() == b"+OK\r\n"
        self.marker = harness.Resp(self.port)
        host, port = self.marker.sock.getsockname()[:2]
        self.marker_address = f"{host}:{port}"

    def since_last(self) -> list[list[bytes]]:
        """The commands other clients ran since the previous call of this method."""
        self.count += 1
        token = f"diff-marker-{self.count}"
        assert self.marker("ECHO", token) == token
        ran = []
        while True:
            line = self.file.readline().decode("ascii").rstrip("\r\n")
            address, words = monitor_words(line)
            if address == self.marker_address:
                if words == [b"ECHO", token.encode()]:
                    return ran
                continue
            ran.append(words)

    def close(self) -> None:
        self.marker.close()
        self.file.close()
        self.sock.close()


@dataclass
class Outcome:
    ran: list[list[bytes]]
    refused_by_proxy: bool
    text: str


async def drive(launch: harness.Launch, monitor: Monitor, shapes: list[tuple[str, dict[str, Any]]], tools_file: Path | None) -> list[Outcome]:
    outcomes = []
    async with harness.open_client(launch) as client:
        listed = await client.list_tools()
        if tools_file is not None:
            tools_file.write_text(json.dumps({"tools": [harness.dump(t) for t in listed.tools]}))
        # The first call connects the server to Valkey; what that runs is no shape's.
        await client.call_tool("valkey_read", {"command": "DBSIZE"})
        monitor.since_last()
        for tool, arguments in shapes:
            result = await client.call_tool(tool, arguments)
            outcomes.append(
                Outcome(
                    ran=monitor.since_last(),
                    refused_by_proxy=harness.decision_of(result) is not None,
                    text=harness.text_of(result),
                )
            )
    return outcomes


def explain(policy: Path, tools_file: Path, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [str(harness.proxy_bin()), "explain", "--config", str(policy), "--json", "--tools", str(tools_file), tool, json.dumps(arguments)],
        capture_output=True,
        check=True,
        timeout=30,
    )
    return json.loads(done.stdout)


def test_the_proxy_views_each_command_as_valkey_runs_it(tmp_path: Path) -> None:
    started = time.monotonic()
    valkey = harness.start_valkey(tmp_path / "valkey")
    monitor = Monitor(valkey.port)
    shapes = corpus()
    tools_file = tmp_path / "tools.json"
    policies = {
        "words": harness.write_policy(tmp_path, WORDS_POLICY, "words.toml"),
        "command": harness.write_policy(tmp_path, COMMAND_POLICY, "command.toml"),
    }
    try:
        control = harness.run(drive, harness.direct(valkey, tmp_path, admin=True), monitor, shapes, tools_file)
        proxied = {
            name: harness.run(drive, harness.proxied(valkey, tmp_path, policy, admin=True), monitor, shapes, None)
            for name, policy in policies.items()
        }
    finally:
        monitor.close()
        valkey.stop()

    disagreements: list[str] = []
    ran = sum(1 for outcome in control if outcome.ran)
    flushes = 0
    views = refusals = partial_views = 0
    for index, ((tool, arguments), direct) in enumerate(zip(shapes, control)):
        name = f"shape {index}: {tool} {json.dumps(arguments)}"
        assert len(direct.ran) <= 1, f"{name}: one call ran {direct.ran}"
        ran_words = direct.ran[0] if direct.ran else None
        if ran_words and dangerous(ran_words):
            flushes += 1
        for policy_name, policy in policies.items():
            report = explain(policy, tools_file, tool, arguments)
            through = proxied[policy_name][index]
            view = report["words"]
            if ran_words is not None:
                if view is not None:
                    views += 1
                    if [w.encode() for w in view] != ran_words:
                        disagreements.append(f"{name} [{policy_name}]: explain views {view}, Valkey ran {ran_words}")
                elif report["decision"] == "allow":
                    # The rest of the line is unreadable (args as JSON text), and the rule read
                    # only the words the command makes: those must be what Valkey ran first.
                    partial = report["commandWords"]
                    if partial is None or [w.encode() for w in partial] != ran_words[: len(partial)]:
                        disagreements.append(f"{name} [{policy_name}]: allowed on the command's words {partial}, Valkey ran {ran_words}")
                    else:
                        partial_views += 1
                # What the rule matched: a flush or CONFIG SET is refused, nothing else is
                # refused for it.
                flush = dangerous(ran_words)
                if flush and report["decision"] == "allow":
                    disagreements.append(f"{name} [{policy_name}]: Valkey ran {ran_words}; explain allows it")
                if policy_name == "words" and report["decision"] in ("allow", "deny") and (report["decision"] == "deny") != flush:
                    disagreements.append(f"{name} [{policy_name}]: rule says {report['decision']}, Valkey ran {ran_words}")
            # The session decides as explain does, and a refusal says why.
            if through.refused_by_proxy != (report["decision"] != "allow"):
                disagreements.append(f"{name} [{policy_name}]: explain says {report['decision']}, the session {'refused' if through.refused_by_proxy else 'forwarded'}")
            if through.refused_by_proxy:
                refusals += 1
                if through.ran:
                    disagreements.append(f"{name} [{policy_name}]: refused, yet Valkey ran {through.ran}")
                if not through.text.startswith(harness.VIOLATION_PREFIX) or len(through.text) < 60:
                    disagreements.append(f"{name} [{policy_name}]: a refusal without a reason: {through.text!r}")
            elif through.ran != direct.ran:
                disagreements.append(f"{name} [{policy_name}]: through the proxy Valkey ran {through.ran}, without it {direct.ran}")
            if any(dangerous(words) for words in through.ran):
                disagreements.append(f"{name} [{policy_name}]: {through.ran} got through the proxy")

    elapsed = time.monotonic() - started
    print(
        f"\ndifferential: {len(shapes)} shapes tried, {ran} calls Valkey ran ({flushes} flushes), "
        f"{views} views compared with MONITOR (and {partial_views} command-only views), "
        f"{refusals} refusals over {len(policies)} policies, "
        f"disagreements: {len(disagreements)} ({elapsed:.1f} s)"
    )
    assert not disagreements, "\n".join(disagreements[:40])
    # The corpus must exercise what it is for: flushes the server runs from odd shapes, and
    # commands that run as Valkey knows them.
    assert flushes >= 15 and ran >= 50, (flushes, ran)


def test_flushall_sync_is_refused_under_the_rule_the_docs_taught(tmp_path: Path) -> None:
    """The issue's call, through the proxy, under a rule on `command` as the docs taught it and
    under the `@words` rule they teach now: refused both times, and the data is still there."""
    valkey = harness.start_valkey(tmp_path / "valkey")
    try:
        valkey("SET", "keep", "1")
        for name, text in [("command", COMMAND_POLICY), ("words", WORDS_POLICY)]:
            policy = harness.write_policy(tmp_path, text, f"{name}.toml")

            async def session(policy: Path = policy) -> tuple[Any, Any]:
                async with harness.open_client(harness.proxied(valkey, tmp_path, policy, admin=True)) as client:
                    await client.list_tools()
                    issue = await client.call_tool("valkey_admin", {"command": "FLUSHALL SYNC", "args": [], "confirm": True})
                    config = await client.call_tool("valkey_admin", {"command": "CONFIG GET", "args": ["maxmemory"], "confirm": True})
                    return issue, config

            issue, config = harness.run(session)
            decision = "unjudgeable_arguments" if name == "command" else "deny"
            found = harness.assert_refused(issue, decision=decision, tool="valkey_admin", rule=1)
            if name == "command":
                assert '["FLUSHALL","SYNC"]' in harness.text_of(issue), harness.text_of(issue)
            else:
                assert found["reason"] == "flushing the database needs an operator"
            # CONFIG GET is not in the server's admin allowlist: the proxy forwards it and the
            # server answers for itself.
            assert harness.decision_of(config) is None, harness.dump(config)
            assert valkey("GET", "keep") == "1", f"FLUSHALL SYNC ran under the {name} policy"
    finally:
        valkey.stop()


def test_the_starter_policy_scan_writes_refuses_flushes_by_what_runs(tmp_path: Path) -> None:
    """`scan` of the real server writes a policy that refuses FLUSHALL SYNC and CONFIG with
    args = ["set", ...] (denied by their words), while reads run."""
    valkey = harness.start_valkey(tmp_path / "valkey")
    try:
        scanned = subprocess.run(
            [str(harness.proxy_bin()), "scan", str(harness.valkey_mcp_server())],
            capture_output=True,
            check=True,
            timeout=60,
            cwd=tmp_path,
            env={**os.environ, **harness.server_env(valkey, tmp_path)},
        )
        policy = harness.write_policy(tmp_path, scanned.stdout.decode(), "starter.toml")
        valkey("SET", "keep", "1")

        async def session() -> tuple[Any, Any, Any]:
            async with harness.open_client(harness.proxied(valkey, tmp_path, policy, admin=True)) as client:
                await client.list_tools()
                flush = await client.call_tool("valkey_admin", {"command": "FLUSHALL SYNC", "args": [], "confirm": True})
                config = await client.call_tool("valkey_admin", {"command": "CONFIG", "args": ["set", "maxmemory-samples", "7"], "confirm": True})
                read = await client.call_tool("valkey_read", {"command": "get", "args": ["keep"]})
                return flush, config, read

        flush, config, read = harness.run(session)
        reason = "flushing, shutting down or reconfiguring the server needs an operator"
        for refused in (flush, config):
            found = harness.decision_of(refused)
            assert refused.is_error and found is not None, harness.dump(refused)
            assert found["decision"] == "deny" and found["reason"] == reason, found
        harness.assert_allowed(read, "GET through the starter policy")
        assert valkey("GET", "keep") == "1"
        assert valkey("CONFIG", "GET", "maxmemory-samples")[1] != "7"
    finally:
        valkey.stop()
