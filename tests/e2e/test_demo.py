"""scripts/demo's agent session (scripts/demo_session.py) cannot rot: it runs here against the
proxy under test, shows every kind of decision, and leaves nothing behind, even when interrupted.

(scripts/demo itself only adds `cargo build --release` and scripts/setup-e2e in front of it.)
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import harness

DEMO = harness.REPO / "scripts" / "demo_session.py"


def demo_command() -> list[str]:
    return [sys.executable, str(DEMO), "--proxy", str(harness.proxy_bin())]


def demo_env() -> dict[str, str]:
    return os.environ | {"PYTHONUNBUFFERED": "1", "NO_COLOR": "1"}


def processes_mentioning(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in args:
            found.append(f"{cmdline.parent.name}: {args}")
    return found


def port_is_closed(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def settings_of(out: str) -> tuple[Path, int]:
    workdir = re.search(r"^  workdir (\S+)", out, re.M)
    port = re.search(r"on 127\.0\.0\.1:(\d+)", out)
    assert workdir and port, out
    return Path(workdir.group(1)), int(port.group(1))


def test_demo_shows_each_decision_and_what_valkey_holds() -> None:
    done = subprocess.run(
        demo_command(), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, env=demo_env()
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    labels = ("ALLOWED", "RATE-LIMITED", "DENIED", "DENIED (no rule)", "APPROVED BY A PERSON", "REFUSED BY A PERSON")
    for label in labels:
        assert f"-> {label}" in out, f"no {label} call in the demo:\n{out}"
    assert out.count("policy violation: ") == 4, out
    assert 'demo:rate:EUR    = "1.08"' in out
    assert "demo:rate:CHF      absent" in out
    assert "4 keys survive" in out
    assert "5 allowed, 1 rate-limited, 1 denied, 1 approved by a person, 1 refused by a person, 1 denied (no rule)" in out

    # A person is shown the proxy's question twice, approves the first call and refuses the second.
    assert out.count("the person is asked:") == 2, out
    assert out.count("mcp-policy-proxy asks for your approval of a tool call.") == 2, out
    assert out.count("Tool: add_documents") == 2, out
    assert 'index_name = "demo"' in out and 'index_name = "fx"' in out, out
    assert "the person answers: approve_once" in out, out
    assert "the person answers: deny" in out, out
    # The approved call ran: its hash is in Valkey (read with valkey-cli, not through the proxy).
    assert 'demo:rates       = hash {EUR: "1.08", GBP: "0.86", JPY: "156.2"}' in out, out
    # The refused one did not, and the agent was told the person's note.
    assert "fx:rates           absent: a person refused that call" in out, out
    assert not re.search(r"^  fx:rates +=", out, re.M), out
    flat = " ".join(out.split())
    note = "Not the shared fx index: other teams read it. Keep the rates in the demo index."
    assert f"The person said: {note}" in flat, out
    workdir, port = settings_of(out)
    assert not workdir.exists(), "the demo left its temp dir behind"
    assert port_is_closed(port), "the demo left valkey-server running"
    assert not processes_mentioning(str(workdir))


def test_demo_cleans_up_when_interrupted() -> None:
    demo = subprocess.Popen(
        demo_command(),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=demo_env(),
    )
    assert demo.stdout is not None
    seen = []
    try:
        deadline = time.monotonic() + 60
        for line in demo.stdout:
            seen.append(line)
            # Interrupt once the proxy, the server and Valkey are all running.
            if line.startswith("connected (protocol") or time.monotonic() > deadline:
                break
        out = "".join(seen)
        workdir, port = settings_of(out)
        assert workdir.exists() and not port_is_closed(port), out
        demo.send_signal(signal.SIGINT)
        rest, err = demo.communicate(timeout=30)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    assert demo.returncode == 130, (out + rest, err)
    assert "interrupted; cleaning up" in err
    assert not workdir.exists(), "the interrupted demo left its temp dir behind"
    assert port_is_closed(port), "the interrupted demo left valkey-server running"
    # The SDK client stops the proxy's process group; give the kernel a moment to reap it.
    deadline = time.monotonic() + 5
    while processes_mentioning(str(workdir)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not processes_mentioning(str(workdir)), processes_mentioning(str(workdir))
