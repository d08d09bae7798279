"""The desktop approver (`mcp-policy-proxy approve-desktop`) as a person meets it: a real zenity
window on a real X server (Xvfb), answered with real key presses and mouse clicks (xdotool), and
the approval-command protocol read back from its stdout and exit status.

The approver under test is `[harness.proxy_bin(), "approve-desktop"]`: the proxy binary from
$MCP_POLICY_PROXY_BIN, else target/debug/mcp-policy-proxy (`cargo build --bin mcp-policy-proxy`).
$MCP_POLICY_PROXY_APPROVER replaces that whole command (split like a shell would), e.g. to try
another build of the approver on its own.

Xvfb, xdotool and zenity are system packages, installed by scripts/setup-desktop-approver-deps.
When one is missing, the tests that need a display fail (they never skip) and say so.

The tests at the end put a fake `zenity` on PATH that records what it was given, to check what
the real one would be shown (no raw bidi or invisible characters, plain text, Deny focused) and
that the approver cannot be talked into an approval by zenity's exit-code variables.
"""

from __future__ import annotations

import json
import os
import secrets
import select
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import harness

DEPS_HINT = (
    "install them with scripts/setup-desktop-approver-deps (apt-get, as root), "
    "or run scripts/setup-e2e (without --python-only), which calls that script"
)

# Seconds; bounds that only stop a hung test. A zenity window maps in well under a second.
WINDOW_TIMEOUT = 15.0
ANSWER_TIMEOUT = 15.0

ONCE = "Approve once"
SESSION = "Approve for this session"
DENY = "Deny"

RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE
# Characters that must never reach the dialog as they are.
# (A newline is the dialog's own layout; one inside a value must arrive escaped, which the tests
# check by what the text says.)
HIDDEN = {chr(c) for c in [*range(0x00, 0x0A), *range(0x0B, 0x20), *range(0x7F, 0xA0)]} | {
    "\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\u202a", "\u202b", "\u202c", "\u202d", "\u202e",
    "\u2066", "\u2067", "\u2068", "\u2069", "\u061c", "\u2028", "\u2029", "\ufeff", "\u00ad", "\u2060",
    "\ufe0f", "\U000e0041",
}


def approver_command() -> list[str]:
    override = os.environ.get("MCP_POLICY_PROXY_APPROVER")
    if override:
        return shlex.split(override)
    return [str(harness.proxy_bin()), "approve-desktop"]


def request(code: str, *, tool: str = "CreateCodeConnection", arguments: Any = None, timeout_ms: int = 60_000) -> dict[str, Any]:
    """An approval request as the proxy writes it to an approval command's stdin."""
    return {
        "tool": tool,
        "arguments": {"name": "prod", "region": "eu-west-1"} if arguments is None else arguments,
        "rule": {"number": 3, "name": "code-connections", "pattern": "CreateCodeConnection"},
        "reason": "code connections reach production",
        "server": "uvx awslabs.valkey-mcp-server@latest",
        "code": code,
        "session": "e2e-session",
        "timeout_ms": timeout_ms,
    }


def new_code() -> str:
    """An approval code of the test's own, so that it finds its own window and no other."""
    return f"E2E-{secrets.token_hex(3).upper()}"


@dataclass
class Answer:
    returncode: int
    stdout: str
    stderr: str

    @property
    def decision(self) -> dict[str, Any]:
        lines = self.stdout.splitlines()
        assert len(lines) == 1, f"expected one JSON line on stdout, got {self.stdout!r} (stderr: {self.stderr!r})"
        decision = json.loads(lines[0])
        assert set(decision) == {"decision", "note"}, decision
        return decision


def start_approver(req: dict[str, Any], env: dict[str, str], workdir: Path) -> subprocess.Popen[str]:
    """Starts the approver with `req` on stdin, as the proxy would: stdin closed after the one
    object, no terminal."""
    process = subprocess.Popen(
        approver_command(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=workdir,
        start_new_session=True,
    )
    assert process.stdin is not None
    process.stdin.write(json.dumps(req))
    process.stdin.close()
    process.stdin = None  # so that communicate() does not flush the closed pipe
    return process


def finish(process: subprocess.Popen[str], timeout: float = ANSWER_TIMEOUT) -> Answer:
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        harness.fail(f"the approver gave no answer within {timeout} s; stdout {stdout!r}, stderr {stderr!r}")
    return Answer(process.returncode, stdout, stderr)


# --- a display of our own ----------------------------------------------------------------------


def require_programs(*names: str) -> dict[str, str]:
    found = {name: shutil.which(name) for name in names}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        harness.fail(f"{', '.join(missing)} not found on PATH; the desktop approver tests need Xvfb, xdotool and zenity: {DEPS_HINT}")
    return {name: path for name, path in found.items() if path is not None}


@dataclass
class Display:
    name: str
    xdotool: str

    def env(self) -> dict[str, str]:
        """The approver's environment: this display and nothing that could send zenity elsewhere
        (a Wayland socket) or make GTK wait for an accessibility bus."""
        env = {k: v for k, v in os.environ.items() if k not in ("WAYLAND_DISPLAY", "MCP_POLICY_PROXY_APPROVER")}
        return env | {"DISPLAY": self.name, "GDK_BACKEND": "x11", "NO_AT_BRIDGE": "1"}

    def xdo(self, *args: str, timeout: float = 10.0) -> str:
        out = subprocess.run(
            [self.xdotool, *args],
            env=self.env(), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
        )
        assert out.returncode == 0, f"xdotool {shlex.join(args)} failed ({out.returncode}): {out.stderr}"
        return out.stdout

    def wait_for_window(self, code: str, approver: subprocess.Popen[str]) -> str:
        """The id of the visible window whose title holds `code`, with `xdotool search --sync`;
        fails at once if the approver exits instead of showing one."""
        search = subprocess.Popen(
            [self.xdotool, "search", "--sync", "--onlyvisible", "--name", code],
            env=self.env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        deadline = time.monotonic() + WINDOW_TIMEOUT
        try:
            while search.poll() is None:
                if approver.poll() is not None:
                    answer = finish(approver)
                    harness.fail(f"the approver exited without showing a window: {answer}")
                if time.monotonic() > deadline:
                    harness.fail(f"no window titled with {code} appeared within {WINDOW_TIMEOUT} s")
                time.sleep(0.05)
            out, err = search.communicate()
        finally:
            if search.poll() is None:
                search.kill()
                search.wait()
        windows = out.split()
        assert search.returncode == 0 and windows, f"xdotool search failed ({search.returncode}): {err}"
        return windows[0]

    def focus(self, window: str) -> None:
        """Gives `window` the keyboard. There is no window manager on Xvfb, so xdotool sets the
        input focus itself (windowactivate needs a window manager)."""
        deadline = time.monotonic() + WINDOW_TIMEOUT
        while True:
            self.xdo("windowfocus", "--sync", window)
            if self.xdo("getwindowfocus").strip() == window:
                break
            if time.monotonic() > deadline:
                harness.fail(f"window {window} never took the keyboard focus")
            time.sleep(0.1)
        # GTK draws and wires up its buttons just after mapping; keys sent sooner can be lost.
        time.sleep(0.3)

    def keys(self, window: str, *keys: str) -> None:
        self.focus(window)
        self.xdo("key", "--delay", "150", *keys)

    def click(self, window: str, x_from_right: int, y_from_bottom: int) -> None:
        geometry = dict(
            line.split("=", 1) for line in self.xdo("getwindowgeometry", "--shell", window).split()
        )
        x = int(geometry["WIDTH"]) - x_from_right
        y = int(geometry["HEIGHT"]) - y_from_bottom
        time.sleep(0.3)
        self.xdo("mousemove", "--window", window, "--sync", str(x), str(y), "click", "1")


@pytest.fixture(scope="module")
def display() -> Iterator[Display]:
    """An Xvfb server on a display number it picks itself (-displayfd), so runs never collide."""
    programs = require_programs("Xvfb", "xdotool", "zenity")
    read_end, write_end = os.pipe()
    xvfb = subprocess.Popen(
        [programs["Xvfb"], "-displayfd", str(write_end), "-screen", "0", "1280x1024x24", "-nolisten", "tcp", "-noreset"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, pass_fds=(write_end,),
    )
    os.close(write_end)
    number = b""
    deadline = time.monotonic() + WINDOW_TIMEOUT
    try:
        while not number.endswith(b"\n"):
            left = deadline - time.monotonic()
            ready, _, _ = select.select([read_end], [], [], max(left, 0))
            chunk = os.read(read_end, 16) if ready else b""
            if not chunk:
                xvfb.kill()
                _, err = xvfb.communicate()
                harness.fail(f"Xvfb did not start (no display number within {WINDOW_TIMEOUT} s): {err.decode(errors='replace')[-2000:]}")
            number += chunk
    finally:
        os.close(read_end)
    try:
        yield Display(name=f":{int(number)}", xdotool=programs["xdotool"])
    finally:
        xvfb.terminate()
        try:
            xvfb.wait(timeout=10)
        except subprocess.TimeoutExpired:
            xvfb.kill()
            xvfb.wait()


# --- the real dialog -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "decision", "why"),
    [
        (["Tab", "Return"], "approve_once", "Tab moves from Deny to Approve once"),
        (["shift+Tab", "Return"], "approve_for_session", "Shift+Tab moves from Deny to Approve for this session"),
        (["Return"], "deny", "the dialog opens with Deny focused, so a stray Return denies"),
        (["space"], "deny", "the dialog opens with Deny focused, so a stray Space denies"),
        (["Escape"], "deny", "Escape closes the dialog, which denies"),
    ],
    ids=["approve-once", "approve-for-session", "return-denies", "space-denies", "escape-denies"],
)
def test_keyboard_answers(display: Display, tmp_path: Path, keys: list[str], decision: str, why: str) -> None:
    code = new_code()
    approver = start_approver(request(code), display.env(), tmp_path)
    window = display.wait_for_window(code, approver)
    display.keys(window, *keys)
    answer = finish(approver)
    assert answer.decision["decision"] == decision, f"{why}; got {answer}"
    assert (answer.returncode == 0) == (decision != "deny"), f"exit status {answer.returncode} for {decision}: {answer}"


@pytest.mark.parametrize(
    ("x_from_right", "decision"),
    [(40, "approve_once"), (300, "deny"), (500, "approve_for_session")],
    ids=["approve-once", "deny", "approve-for-session"],
)
def test_mouse_clicks(display: Display, tmp_path: Path, x_from_right: int, decision: str) -> None:
    """The buttons sit at the bottom right, [Approve for this session] [Deny] [Approve once], each
    about 190 px wide in zenity 3.44's default theme on Xvfb; a click well inside each one."""
    code = new_code()
    approver = start_approver(request(code), display.env(), tmp_path)
    window = display.wait_for_window(code, approver)
    display.click(window, x_from_right, 25)
    answer = finish(approver)
    assert answer.decision["decision"] == decision, f"clicked {x_from_right} px from the right edge; got {answer}"
    assert (answer.returncode == 0) == (decision != "deny"), answer


def test_window_title_names_the_proxy_and_the_code_and_shows_no_raw_bidi(display: Display, tmp_path: Path) -> None:
    code = new_code()
    approver = start_approver(request(code, tool=f"Create{RLO}CodeConnection"), display.env(), tmp_path)
    window = display.wait_for_window(code, approver)
    title = display.xdo("getwindowname", window).rstrip("\n")
    display.keys(window, "Escape")
    answer = finish(approver)
    assert "mcp-policy-proxy" in title and code in title, title
    assert RLO not in title, f"the window title carries a raw U+202E: {title!r}"
    assert "Create\\u{202E}CodeConnection" in title, title
    assert answer.decision["decision"] == "deny", answer


def test_no_answer_before_the_time_out_denies(display: Display, tmp_path: Path) -> None:
    """The dialog gives up a little before the proxy's time-out (here 3.5 s, so after 2 s) and
    says why, rather than being killed with nothing on stdout.

    zenity's own --timeout=2 counts from when its main loop starts. Usually it ends the dialog
    ("no answer ... within 2 s"); on a loaded machine zenity starts late, and the approver's
    backstop, 1 s later, closes it instead ("still open after its 2 s time-out"). Both are the
    same clean refusal, on time, naming the time-out."""
    code = new_code()
    started = time.monotonic()
    approver = start_approver(request(code, timeout_ms=3500), display.env(), tmp_path)
    display.wait_for_window(code, approver)
    answer = finish(approver)
    took = time.monotonic() - started
    assert answer.returncode != 0, answer
    assert answer.decision["decision"] == "deny", answer
    note = answer.decision["note"]
    assert "within 2 s" in note or "after its 2 s time-out" in note, f"{answer} after {took:.1f} s"
    assert took < 3.5, f"the approver answered after {took:.1f} s, past the proxy's 3.5 s time-out: {answer}"


def test_the_dialog_does_not_outlive_a_killed_approver(display: Display, tmp_path: Path) -> None:
    """The proxy kills an approval command at its time-out; the question must leave the screen."""
    code = new_code()
    approver = start_approver(request(code), display.env(), tmp_path)
    display.wait_for_window(code, approver)
    approver.send_signal(signal.SIGKILL)
    approver.communicate(timeout=ANSWER_TIMEOUT)
    deadline = time.monotonic() + 5
    while True:
        left = subprocess.run(
            [display.xdotool, "search", "--onlyvisible", "--name", code],
            env=display.env(), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=10,
        ).stdout.split()
        if not left:
            break
        assert time.monotonic() < deadline, f"the dialog {left} is still on screen 5 s after the approver was killed"
        time.sleep(0.1)


# --- what zenity is given (a fake zenity, no display needed) -----------------------------------

FAKE_ZENITY = """#!{python}
import json, os, sys
with open(os.environ["FAKE_ZENITY_LOG"], "w") as log:
    json.dump({{"argv": sys.argv[1:], "env": dict(os.environ)}}, log)
sys.stdout.write(os.environ.get("FAKE_ZENITY_STDOUT", ""))
sys.exit(int(os.environ.get("FAKE_ZENITY_EXIT", "0")))
"""


@dataclass
class FakeZenity:
    bin_dir: Path
    log: Path

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("WAYLAND_DISPLAY", "MCP_POLICY_PROXY_APPROVER")}
        return env | {"PATH": str(self.bin_dir), "DISPLAY": ":99", "FAKE_ZENITY_LOG": str(self.log)} | extra

    def seen(self) -> dict[str, Any]:
        assert self.log.exists(), "the approver did not run zenity"
        return json.loads(self.log.read_text())


@pytest.fixture
def fake_zenity(tmp_path: Path) -> FakeZenity:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    zenity = bin_dir / "zenity"
    zenity.write_text(FAKE_ZENITY.format(python=sys.executable))
    zenity.chmod(0o755)
    return FakeZenity(bin_dir=bin_dir, log=tmp_path / "zenity-argv.json")


def option(argv: list[str], name: str) -> str:
    values = [arg.split("=", 1)[1] for arg in argv if arg.startswith(f"--{name}=")]
    assert len(values) == 1, f"expected one --{name}=... in {argv}"
    return values[0]


def test_zenity_is_shown_plain_safe_text(fake_zenity: FakeZenity, tmp_path: Path) -> None:
    code = new_code()
    arguments = {
        "url": f"https://example.com/{RLO}gpj.exe",
        "note": "line one\nproxy: approved by admin",
        "hidden": "a\u200bb\u2066c\u2069\ufeffd\U000e0041",
        "path": "C:\\temp",
        "nested": {"list": ["SET", 1, True, None]},
    }
    answer = finish(start_approver(request(code, arguments=arguments), fake_zenity.env(), tmp_path))
    argv = fake_zenity.seen()["argv"]
    assert answer.decision["decision"] == "approve_once" and answer.returncode == 0, answer

    for flag in ("--question", "--no-markup", "--default-cancel"):
        assert flag in argv, f"{flag} missing from {argv}"
    assert option(argv, "ok-label") == ONCE
    assert option(argv, "cancel-label") == DENY
    assert option(argv, "extra-button") == SESSION
    assert option(argv, "timeout") == "58"
    title, text = option(argv, "title"), option(argv, "text")
    assert "mcp-policy-proxy" in title and code in title, title
    for shown in (title, text):
        raw = sorted(f"U+{ord(c):04X}" for c in set(shown) & HIDDEN)
        assert not raw, f"raw invisible or bidi characters reach zenity: {raw} in {shown!r}"
    assert 'url = "https://example.com/\\u{202E}gpj.exe"' in text, text
    assert 'note = "line one\\nproxy: approved by admin"' in text, text
    assert 'hidden = "a\\u{200B}b\\u{2066}c\\u{2069}\\u{FEFF}d\\u{E0041}"' in text, text
    assert 'path = "C:\\\\temp"' in text, text
    assert 'nested.list[0] = "SET"\nnested.list[1] = 1\nnested.list[2] = true\nnested.list[3] = null' in text, text
    for fact in ("CreateCodeConnection", "uvx awslabs.valkey-mcp-server@latest", "code-connections",
                 "code connections reach production", code):
        assert fact in text, f"{fact!r} missing from the dialog text: {text!r}"


@pytest.mark.parametrize(
    ("exit_code", "stdout", "decision"),
    [
        (0, "", "approve_once"),
        (1, f"{SESSION}\n", "approve_for_session"),
        (1, "", "deny"),
        (5, "", "deny"),
        (255, "", "deny"),
        (0, "something else\n", "deny"),
        (1, f"{ONCE}\n", "deny"),
    ],
)
def test_zenity_exit_statuses(fake_zenity: FakeZenity, tmp_path: Path, exit_code: int, stdout: str, decision: str) -> None:
    env = fake_zenity.env(FAKE_ZENITY_EXIT=str(exit_code), FAKE_ZENITY_STDOUT=stdout)
    answer = finish(start_approver(request(new_code()), env, tmp_path))
    assert answer.decision["decision"] == decision, answer
    assert (answer.returncode == 0) == (decision != "deny"), answer


def test_zenity_exit_code_variables_are_not_passed_on(fake_zenity: FakeZenity, tmp_path: Path) -> None:
    """zenity reads ZENITY_CANCEL, DIALOG_CANCEL and friends to renumber its exit statuses: with
    ZENITY_CANCEL=0, Deny would exit 0, which means "approve once"."""
    names = [f"{prefix}_{what}" for prefix in ("ZENITY", "DIALOG") for what in ("OK", "CANCEL", "ESC", "ERROR", "EXTRA", "TIMEOUT")]
    env = fake_zenity.env(**dict.fromkeys(names, "0"))
    finish(start_approver(request(new_code()), env, tmp_path))
    passed = sorted(set(names) & set(fake_zenity.seen()["env"]))
    assert not passed, f"the approver passed {passed} on to zenity"


def test_no_dialog_program_denies_and_says_so(tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "MCP_POLICY_PROXY_APPROVER"} | {"PATH": str(empty), "DISPLAY": ":99"}
    answer = finish(start_approver(request(new_code()), env, tmp_path))
    assert answer.returncode == 1, answer
    assert answer.decision["decision"] == "deny", answer
    assert "no dialog program" in answer.decision["note"] and "zenity" in answer.decision["note"], answer


def test_no_display_denies_and_says_so(fake_zenity: FakeZenity, tmp_path: Path) -> None:
    env = {k: v for k, v in fake_zenity.env().items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    answer = finish(start_approver(request(new_code()), env, tmp_path))
    assert answer.returncode == 1, answer
    assert answer.decision["decision"] == "deny", answer
    assert "no display" in answer.decision["note"], answer
    assert not fake_zenity.log.exists(), "zenity was run with no display to show it on"


@pytest.mark.parametrize("stdin", ["", "{", "[]", '{"arguments": {}}', "not json"])
def test_a_malformed_request_is_refused_without_asking(fake_zenity: FakeZenity, tmp_path: Path, stdin: str) -> None:
    process = subprocess.Popen(
        approver_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=fake_zenity.env(), cwd=tmp_path,
    )
    stdout, stderr = process.communicate(stdin, timeout=ANSWER_TIMEOUT)
    answer = Answer(process.returncode, stdout, stderr)
    assert answer.returncode == 1, answer
    assert answer.decision["decision"] == "deny", answer
    assert not fake_zenity.log.exists(), "the approver asked about a request it could not read"
