"""The suite on several processes (pytest-xdist; `scripts/test.sh` picks how many).

Each process provisions its own database, Redis prefix, session server and, when a test asks,
its own Redis Cluster, RabbitMQ node and replica (tests/harness/services.py and the session
fixtures), so tests of different processes share nothing but the machine. What a process runs
whole is a *work unit*: a test module, or a whole package for the packages whose tests share
more than that (`WHOLE_PACKAGES`). Units holding a test marked `slow` are handed out first, so
the run does not end with one process alone on a long test.

A session-end line a process wants printed (the fuzz report's) goes through `report_line`: on a
worker it travels to the controller, which prints it in the terminal summary."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import pytest
from xdist.scheduler import LoadScopeScheduling

# Packages run whole by one process: built clients in build/ and a jobs stack of the package
# (clients), a jobs stack of the session (client), files the examples write to example-exports/
# (e2e), the fuzz report gathered over every fuzz test (fuzz).
WHOLE_PACKAGES = frozenset({"client", "clients", "e2e", "fuzz"})

_LINES = pytest.StashKey[list[str]]()
_WORKER_LINES = "tessera_report_lines"


def work_unit(nodeid: str) -> str:
    """`tests/e2e/test_x.py::test_y` -> `tests/e2e`; `tests/unit/test_x.py::test_y[1]` -> the module."""
    module = nodeid.split("::", 1)[0]
    parts = PurePosixPath(module).parts
    if len(parts) > 2 and parts[1] in WHOLE_PACKAGES:
        return "/".join(parts[:2])
    return module


class WorkUnitScheduling(LoadScopeScheduling):
    """xdist's scope scheduling with `work_unit` as the scope, in collection order."""

    def _split_scope(self, nodeid: str) -> str:
        return work_unit(nodeid)


@pytest.hookimpl(tryfirst=True, optionalhook=True)  # before xdist's own (firstresult)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> WorkUnitScheduling:
    # Collection order already puts the slow units first; xdist's own reordering (largest unit
    # first, by test count) would undo that.
    config.option.loadscopereorder = False
    return WorkUnitScheduling(config, log)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Units with a slow test first (stable, so every process collects the same order)."""
    slow = {work_unit(item.nodeid) for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: work_unit(item.nodeid) not in slow)


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_LINES] = []


def report_line(config: pytest.Config, line: str) -> None:
    """Print `line` in the run's terminal summary, from any process (call it at session finish)."""
    worker_output: dict[str, Any] | None = getattr(config, "workeroutput", None)
    if worker_output is not None:
        worker_output.setdefault(_WORKER_LINES, []).append(line)
    else:
        config.stash[_LINES].append(line)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    lines: list[str] = getattr(node, "workeroutput", {}).get(_WORKER_LINES, [])
    node.config.stash[_LINES].extend(lines)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    for line in config.stash[_LINES]:
        terminalreporter.write_line(line)
