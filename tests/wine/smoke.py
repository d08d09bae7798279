"""The Windows build, run under Wine: an end-to-end smoke test of what differs on Windows.

Run by scripts/wine-smoke, which builds the .exe files, prepares the Wine prefix and sets
WINEPREFIX, BIN (the folder of the .exe files) and WINE (the loader). Each check drives the real
mcp-policy-proxy.exe in front of the real mcp-fixture-server.exe, from a folder whose name has a
space and non-ASCII letters, as a user's profile folder may:

- it relays, refuses a denied call with its reason, and writes its audit log;
- it approves and refuses through an approval command (cmd.exe, found through PATH);
- it starts a server named by a bare name that is a .cmd shim on PATH (as `npx` is `npx.cmd`);
- an argument holding `&` and `>` reaches the server as data, never as a second command;
- killed outright (the Linux process of the Windows one gets SIGKILL, so no handler runs), it
  leaves no server behind: the server runs as cmd.exe's child through the shim, in the proxy's
  Job Object, which Windows (here Wine) ends when the proxy's handles close.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

WINE = os.environ.get("WINE", "/usr/lib/wine/wine64")
BIN = os.environ["BIN"]
# The proxy under test, when it is not BIN's: the program from the Windows wheel (scripts/dist
# --windows), run by `scripts/wine-smoke --wheel WHEEL` in front of BIN's fixture server.
PROXY_EXE = os.environ.get("PROXY_EXE") or os.path.join(BIN, "mcp-policy-proxy.exe")
# What its --version must print (without the line end), when the caller knows.
EXPECTED_VERSION = os.environ.get("EXPECTED_VERSION")
TIMEOUT = 60


def win(path):
    return "Z:" + path.replace("/", "\\")


def lines_of(messages):
    return "".join(json.dumps(m) + "\n" for m in messages).encode()


INIT = [
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "wine-smoke", "version": "1"},
        },
    },
    {"jsonrpc": "2.0", "method": "notifications/initialized"},
]


def call(id_, tool, arguments):
    return {
        "jsonrpc": "2.0",
        "id": id_,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments},
    }


class Proxy:
    """The proxy under Wine, with its stdin kept open until the answers are read."""

    def __init__(self, home, policy, server, env=None):
        self.home = home
        path = os.path.join(home, "policy ü.toml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(policy)
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.process = subprocess.Popen(
            [WINE, win(os.path.join(home, "mcp-policy-proxy.exe")), "--config", win(path), "--"]
            + server,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=full_env,
            cwd=home,
        )

    def exchange(self, messages, answers):
        """Sends `messages`, reads `answers` lines, returns them parsed."""
        self.process.stdin.write(lines_of(messages))
        self.process.stdin.flush()
        got = []
        deadline = time.time() + TIMEOUT
        while len(got) < answers:
            if time.time() > deadline:
                raise AssertionError(f"only {len(got)} of {answers} answers: {got}")
            line = self.process.stdout.readline()
            if not line:
                err = self.process.stderr.read().decode(errors="replace")
                raise AssertionError(f"the proxy closed stdout after {got}; stderr:\n{err}")
            got.append(json.loads(line))
        return got

    def close(self):
        self.process.stdin.close()
        try:
            self.process.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError("the proxy did not exit after its stdin closed")
        return self.process.stderr.read().decode(errors="replace")


def text_of(answer):
    result = answer.get("result") or {}
    content = result.get("content") or [{}]
    return content[0].get("text", "") + json.dumps(answer.get("error", ""))


def fixture_processes():
    out = subprocess.run(["pgrep", "-f", "mcp-fixture-server.exe"], capture_output=True, text=True)
    return out.stdout.split()


DENY = """
[[rules]]
tool = "CreateCodeConnection"
action = "deny"
reason = "code connections expose source code"

[audit]
path = "audit log ü.jsonl"
"""


def check_relay_deny_audit(home):
    proxy = Proxy(home, DENY, [win(os.path.join(home, "mcp-fixture-server.exe"))])
    answers = proxy.exchange(
        INIT + [call(2, "echo", {"text": "hi from wine"}), call(3, "CreateCodeConnection", {})], 3
    )
    by_id = {a["id"]: a for a in answers}
    assert "hi from wine" in text_of(by_id[2]), by_id[2]
    assert "code connections expose source code" in text_of(by_id[3]), by_id[3]
    proxy.close()
    with open(os.path.join(home, "audit log ü.jsonl"), encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    decisions = [r.get("decision") for r in records]
    assert "deny" in decisions and "allow" in decisions, records
    print(f"  relay, deny with reason, audit log ({len(records)} records): ok")


def approval_policy(code):
    return f"""
[[rules]]
tool = "CreateCodeConnection"
action = "require_approval"
reason = "a person decides"

[approval]
channels = ["command"]
timeout = "30s"
command = ["cmd", "/c", "exit {code}"]
"""


def check_approval_command(home):
    for code, approved in ((0, True), (1, False)):
        proxy = Proxy(home, approval_policy(code), [win(os.path.join(home, "mcp-fixture-server.exe"))])
        answers = proxy.exchange(INIT + [call(2, "CreateCodeConnection", {"repo": "r"})], 2)
        answer = next(a for a in answers if a["id"] == 2)
        refused = "not approved" in text_of(answer)
        assert refused != approved, (code, answer)
        proxy.close()
    print("  approval command (cmd.exe through PATH): approves on exit 0, refuses on exit 1: ok")


def shim(home):
    shims = os.path.join(home, "shims")
    os.makedirs(shims, exist_ok=True)
    # As npm's shims do: the program relative to the shim (%~dp0), so the batch file itself
    # holds only ASCII (cmd.exe reads batch files in the OEM code page).
    with open(os.path.join(shims, "fixture-shim.cmd"), "w", newline="\r\n") as f:
        # Its stderr goes nowhere: a server that writes stderr after the proxy is gone fails on
        # the closed pipe and ends by itself, which is not the mechanism under test.
        f.write('@"%~dp0..\\mcp-fixture-server.exe" %* 2>NUL\n')
    return {"WINEPATH": win(shims)}


def check_cmd_shim(home):
    env = shim(home)
    marker = os.path.join(home, "pwned")
    proxy = Proxy(home, DENY, ["fixture-shim", "a&b>pwned"], env)
    answers = proxy.exchange(INIT + [call(2, "echo", {"text": "through the shim"})], 2)
    answer = next(a for a in answers if a["id"] == 2)
    assert "through the shim" in text_of(answer), answer
    proxy.close()
    assert not os.path.exists(marker), "an argument was run as a second command"
    print("  a bare name resolved to a .cmd shim on PATH; `a&b>pwned` stayed an argument: ok")


def check_killed_outright(home):
    env = shim(home)
    env.update({"FIXTURE_IGNORE_EOF": "1"})
    before = set(fixture_processes())
    proxy = Proxy(home, DENY, ["fixture-shim"], env)
    proxy.exchange(INIT, 1)
    started = [p for p in fixture_processes() if p not in before]
    assert started, "no server process to watch"
    proxy.process.kill()  # SIGKILL to the Windows process: no handler of the proxy's runs
    proxy.process.wait(timeout=TIMEOUT)
    deadline = time.time() + 20
    while time.time() < deadline:
        left = [p for p in fixture_processes() if p in started]
        if not left:
            print(f"  killed outright: the server (through cmd.exe) ended with it: ok")
            return
        time.sleep(0.2)
    raise AssertionError(f"the server outlived the killed proxy: {left}")


def message_box(home, keys):
    """Runs approve-desktop with a request, presses `keys` in its message box in turn, returns
    (exit code, stdout line)."""
    request = json.dumps({"tool": "CreateCodeConnection", "arguments": {"repo": "r"},
                          "code": "ABC-123", "timeout_ms": 60000})
    process = subprocess.Popen(
        [WINE, win(os.path.join(home, "mcp-policy-proxy.exe")), "approve-desktop"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=home)
    process.stdin.write(request.encode())
    process.stdin.close()
    deadline = time.time() + TIMEOUT
    window = ""
    while not window:
        if time.time() > deadline or process.poll() is not None:
            process.kill()
            raise AssertionError(f"no message box appeared: {process.stderr.read()!r}")
        found = subprocess.run(["xdotool", "search", "--name", "approve CreateCodeConnection"],
                               capture_output=True, text=True)
        window = found.stdout.split()[0] if found.stdout.split() else ""
        time.sleep(0.2)
    time.sleep(0.5)
    subprocess.run(["xdotool", "windowactivate", "--sync", window], capture_output=True)
    for key in keys:
        if key == "y":
            # A stray keystroke meant for another window: it must not answer the question.
            subprocess.run(["xdotool", "key", "--window", window, key], check=True, capture_output=True)
            time.sleep(1)
            assert process.poll() is None, "a single 'y' answered the message box"
            continue
        subprocess.run(["xdotool", "key", "--window", window, key], check=True, capture_output=True)
    process.wait(timeout=TIMEOUT)
    out = process.stdout.read()
    return process.returncode, out.decode(errors="replace").strip()


def check_message_box(home):
    if not os.environ.get("DISPLAY"):
        raise AssertionError("no DISPLAY: scripts/wine-smoke starts Xvfb for this check")
    code, line = message_box(home, ["y", "shift+Tab", "space"])
    assert code == 0 and json.loads(line)["decision"] == "approve_once", (code, line)
    code, line = message_box(home, ["y", "Return"])
    assert code != 0 and json.loads(line)["decision"] == "deny", (code, line)
    print("  the Win32 message box: a stray 'y' answers nothing; OK approves once; Return denies: ok")


def check_version(home):
    out = subprocess.run(
        [WINE, win(os.path.join(home, "mcp-policy-proxy.exe")), "--version"],
        capture_output=True, timeout=TIMEOUT, cwd=home)
    assert out.returncode == 0, out
    line = out.stdout.decode().rstrip("\r\n")
    assert line.startswith("mcp-policy-proxy "), line
    if EXPECTED_VERSION:
        assert line == EXPECTED_VERSION, f"{line!r} != {EXPECTED_VERSION!r}"
    print(f"  --version: {line}: ok")


def main():
    base = tempfile.mkdtemp(prefix="wine smoke ")
    home = os.path.join(base, "Zoë's tools")
    os.makedirs(home)
    shutil.copy(PROXY_EXE, os.path.join(home, "mcp-policy-proxy.exe"))
    shutil.copy(os.path.join(BIN, "mcp-fixture-server.exe"), home)
    checks = [
        check_version,
        check_relay_deny_audit,
        check_approval_command,
        check_cmd_shim,
        check_killed_outright,
        check_message_box,
    ]
    failed = 0
    for check in checks:
        try:
            check(home)
        except AssertionError as err:
            failed += 1
            print(f"  FAILED {check.__name__}: {err}", file=sys.stderr)
    shutil.rmtree(base, ignore_errors=True)
    print(f"wine smoke: {len(checks) - failed} of {len(checks)} checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
