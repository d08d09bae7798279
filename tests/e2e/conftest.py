"""Fixtures for the end-to-end suite, and two rules for the whole of it:

* nothing is ever skipped: a skip (from any source) is reported as a failure, so a missing piece
  can never make the suite pass by doing less;
* when a test fails, the stderr logs it kept (the proxy's, the server's, the Inspector's) are
  attached to the report, so a failure explains itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import harness


@pytest.fixture(scope="session", autouse=True)
def pinned_environment() -> None:
    """Fails every test up front, naming the fix, when the suite runs outside the pinned venv."""
    harness.check_pinned_packages()


@pytest.fixture(scope="session")
def valkey(tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness.Valkey]:
    """One real valkey-server for the whole session; tests keep apart by key prefix."""
    server = harness.start_valkey(tmp_path_factory.mktemp("valkey"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """The cwd for the servers a test starts: the Valkey MCP server drops a log file and reads
    `.env` from its cwd, so it never runs in the repo."""
    return tmp_path


@pytest.fixture
def prefix(request: pytest.FixtureRequest, valkey: harness.Valkey) -> Iterator[str]:
    """A key prefix of the test's own, cleared before and after it."""
    name = request.node.name.replace("[", ":").replace("]", "")
    key_prefix = f"e2e:{name}:"
    valkey.delete_prefix(key_prefix)
    yield key_prefix
    valkey.delete_prefix(key_prefix)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    if report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = (
            f"{item.nodeid} was skipped, and this suite never skips: a missing piece must fail. "
            f"Skip reason: {report.longrepr}. {harness.SETUP_HINT}"
        )
    if report.failed:
        tmp = getattr(item, "funcargs", {}).get("tmp_path")
        if isinstance(tmp, Path):
            for log in sorted(tmp.rglob("*.log")):
                text = log.read_text(errors="replace")
                tail = text[-6000:]
                cut = "" if len(text) == len(tail) else "[... earlier lines cut ...]\n"
                report.sections.append((f"{log.relative_to(tmp)} ({report.when})", cut + tail))
    return report
