"""The install channels, each tested from what was built, in a fresh root or venv, as a user
installs it: `cargo install --path .` gives exactly one program; the crate holds the program and
not the test tools; the wheel (scripts/dist, Cargo's dist profile) holds the one program, and
`uvx --from WHEEL`, `pip install WHEEL` in a fresh venv and `pipx install WHEEL` each run it in
front of the real Valkey MCP server: a denied call refused, an allowed call answered.

The wheel is $MCP_POLICY_PROXY_WHEEL (scripts/test sets it after building it once with
scripts/dist), else the one wheel for this machine in cargo's target/wheels/. Every channel must
print the same `--version` as the debug build under test, commit included, so a stale wheel fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import harness
from harness import Valkey, assert_allowed, assert_refused

# Seconds: `cargo install --debug` reuses the debug build scripts/test made, and `cargo package
# --list` builds nothing; pip, pipx and uv install a wheel with no dependencies from a file.
INSTALL_TIMEOUT = 600

WRITE_REASON = "agents read the cache; writes go through a person"
POLICY = f"""
[policy]
default = "deny"

[[rules]]
tool = "valkey_read"
action = "allow"

[[rules]]
tool = "valkey_write"
action = "deny"
reason = "{WRITE_REASON}"
"""
WRITE_RULE = 2


def run(argv: list[str | Path], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Runs a command to completion; a non-zero exit fails the test with its output."""
    done = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=INSTALL_TIMEOUT, **kwargs
    )
    if done.returncode != 0:
        harness.fail(f"`{' '.join(map(str, argv))}` exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


def expected_version() -> str:
    """What every channel must print: the debug build's `--version`, commit included."""
    return run([harness.proxy_bin(), "--version"]).stdout


def cargo_target_dir() -> Path:
    return harness.cargo_debug_dir().parent


def wheel() -> Path:
    override = os.environ.get("MCP_POLICY_PROXY_WHEEL")
    if override:
        path = Path(override)
        if not path.is_file():
            harness.fail(f"MCP_POLICY_PROXY_WHEEL={path} is not a file; build it with scripts/dist")
        return path
    found = sorted((cargo_target_dir() / "wheels").glob("mcp_policy_proxy-*-*linux*.whl"))
    if len(found) != 1:
        harness.fail(
            f"expected one Linux wheel in {cargo_target_dir() / 'wheels'}, found {[p.name for p in found]}; "
            "build it with scripts/dist (scripts/test does) or point MCP_POLICY_PROXY_WHEEL at one"
        )
    return found[0]


def tool(name: str) -> Path:
    """uv, uvx and pipx from the pinned venv (tests/e2e/requirements.txt)."""
    path = harness.venv_bin(name)
    if not os.access(path, os.X_OK):
        harness.fail(f"{path} is missing; {harness.SETUP_HINT}")
    return path


def uv_env(home: Path) -> dict[str, str]:
    """uv with a cache and tool folder of its own, offline (the wheel has no dependencies, so it
    needs no index), and the Python it finds on PATH instead of a download."""
    return {
        "UV_CACHE_DIR": str(home / "uv-cache"),
        "UV_TOOL_DIR": str(home / "uv-tools"),
        "UV_OFFLINE": "1",
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_NO_CONFIG": "1",
    }


def through_the_real_server(launch: harness.Launch, valkey: Valkey, prefix: str) -> None:
    """The installed program in front of the real Valkey MCP server, driven by the SDK client."""
    valkey("SET", f"{prefix}greeting", "hello")

    async def session() -> None:
        async with harness.open_client(launch) as client:
            read = await client.call_tool("valkey_read", {"command": "GET", "args": [f"{prefix}greeting"]})
            assert_allowed(read, f"{launch.label}: valkey_read GET")
            assert read.structured_content == {"status": "success", "result": "hello"}

            write = await client.call_tool("valkey_write", {"command": "SET", "args": [f"{prefix}greeting", "bye"]})
            assert_refused(write, decision="deny", tool="valkey_write", rule=WRITE_RULE, reason=WRITE_REASON)

    harness.run(session)
    assert valkey("GET", f"{prefix}greeting") == "hello", f"{launch.label}: a refused write reached Valkey"


def launch_with(label: str, program: Path | str, front: list[str], policy: Path, valkey: Valkey, workdir: Path,
                extra_env: dict[str, str] | None = None) -> harness.Launch:
    return harness.Launch(
        label,
        str(program),
        [*front, "--config", str(policy), "--", str(harness.valkey_mcp_server())],
        harness.server_env(valkey, workdir) | (extra_env or {}),
        workdir,
    )


# --- crates.io ---------------------------------------------------------------------------------


def test_cargo_install_installs_exactly_one_program(tmp_path: Path) -> None:
    root = tmp_path / "root"
    # --debug and the shared target folder: the debug build scripts/test made is reused, so this
    # checks what is installed, not how long a release build takes.
    run([
        "cargo", "install", "--quiet", "--locked", "--debug", "--path", harness.REPO,
        "--root", root, "--target-dir", cargo_target_dir(),
    ])
    assert sorted(p.name for p in (root / "bin").iterdir()) == ["mcp-policy-proxy"]
    installs = json.loads((root / ".crates2.json").read_text())["installs"]
    assert [entry["bins"] for entry in installs.values()] == [["mcp-policy-proxy"]], installs
    assert run([root / "bin" / "mcp-policy-proxy", "--version"]).stdout == expected_version()


def test_the_crate_holds_the_program_and_not_the_test_tools() -> None:
    # --allow-dirty: this lists what `include` takes; scripts/test packages and verifies the
    # committed tree without it.
    listed = run(["cargo", "package", "--list", "--allow-dirty", "--locked", "-p", "mcp-policy-proxy"],
                 cwd=harness.REPO).stdout.split()
    for needed in ["Cargo.toml", "Cargo.lock", "LICENSE", "README.md", "build.rs", "src/main.rs", "src/lib.rs",
                   "schema/mcp-policy-proxy.schema.json"]:
        assert needed in listed, f"{needed} missing from the crate: {listed}"
    strays = [p for p in listed if p.split("/")[0] in {"fixture", "tests", "benches", "scripts", "examples", ".github"}
              or p in {"pyproject.toml"}]
    assert strays == [], f"the crate carries files users do not build: {strays}"


# --- PyPI --------------------------------------------------------------------------------------


def test_the_wheel_holds_one_program_and_nothing_to_import() -> None:
    with zipfile.ZipFile(wheel()) as archive:
        names = archive.namelist()
    scripts = [n for n in names if ".data/scripts/" in n]
    assert [n.rsplit("/", 1)[1] for n in scripts] == ["mcp-policy-proxy"], names
    others = [n for n in names if n not in scripts and ".dist-info/" not in n]
    assert others == [], f"the wheel carries more than the program: {others}"


def test_uvx_from_the_wheel_runs_the_program(valkey: Valkey, workdir: Path, prefix: str, tmp_path: Path) -> None:
    env = os.environ | uv_env(tmp_path)
    front = ["--from", str(wheel()), "mcp-policy-proxy"]
    assert run([tool("uvx"), *front, "--version"], env=env).stdout == expected_version()
    policy = harness.write_policy(workdir, POLICY)
    launch = launch_with("uvx", tool("uvx"), front, policy, valkey, workdir, uv_env(tmp_path))
    through_the_real_server(launch, valkey, prefix)


def test_pip_install_in_a_fresh_venv_gives_the_same_program(
    valkey: Valkey, workdir: Path, prefix: str, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv])
    run([venv / "bin" / "python", "-m", "pip", "install", "--quiet", "--no-index", "--disable-pip-version-check",
         wheel()])
    program = venv / "bin" / "mcp-policy-proxy"
    assert run([program, "--version"]).stdout == expected_version()
    policy = harness.write_policy(workdir, POLICY)
    through_the_real_server(launch_with("pip", program, [], policy, valkey, workdir), valkey, prefix)
    run([venv / "bin" / "python", "-m", "pip", "uninstall", "--yes", "--quiet", "mcp-policy-proxy"])
    assert not program.exists(), "pip uninstall left the program behind"


def test_pipx_install_gives_the_same_program(valkey: Valkey, workdir: Path, prefix: str, tmp_path: Path) -> None:
    env = os.environ | {
        "PIPX_HOME": str(tmp_path / "pipx"),
        "PIPX_BIN_DIR": str(tmp_path / "bin"),
        "PIPX_MAN_DIR": str(tmp_path / "man"),
        # pipx installs with pip; the wheel needs no index.
        "PIP_NO_INDEX": "1",
    }
    run([tool("pipx"), "install", "--quiet", wheel()], env=env)
    program = tmp_path / "bin" / "mcp-policy-proxy"
    assert run([program, "--version"]).stdout == expected_version()
    policy = harness.write_policy(workdir, POLICY)
    through_the_real_server(launch_with("pipx", program, [], policy, valkey, workdir), valkey, prefix)
    assert sorted(p.name for p in (tmp_path / "bin").iterdir()) == ["mcp-policy-proxy"]

