"""Shared test policy, and how the suite is split across processes.

Engines: tests marked `docker` or `vllm` need an engine this machine may lack. Locally they skip
with the reason; under CI=true a missing engine is a failure, never a skip (`require`).

Parallel runs: `make test` runs `pytest -n 2 --dist loadgroup` (pytest-xdist; README, "Running the
tests"). Most of the suite's time is spent waiting on subprocesses (`rlvr train/sft/rm/dpo/pipeline`
runs with one torch thread each, a vLLM engine, Docker containers), so two workers keep both
cores busy. The hooks below (and the scheduler they feed):
- keeps the tests that must share one process or must not overlap on one worker (xdist groups):
  every test that uses the session's vLLM engine (fixture `vllm_engine`: one engine start, not one
  per worker), every test of the demo model's `rlvr serve` (`demo_serve_url`) and of the SmolLM2
  engine (`smol_engine`) for the same reason, every Docker test (one warm pool; the recovery tests count containers), and any test
  a module marks `xdist_group(...)` itself (e.g. the 2-process DDP tests, which use one port);
- starts the slow tests (marker `slow`) and the vLLM group first, so the run does not end with one
  long test on one worker while the other idles.
Every run (workers or not) uses one torch thread unless OMP_NUM_THREADS says otherwise, like
the CLI subprocesses the tests start: two workers on two cores, no oversubscription. A plain
`pytest` (no `-n`) runs everything in order, in one process.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")  # "gw0", "gw1", ... in an xdist worker

# One torch thread, as in the CLI subprocesses the tests start (tests/trainers/conftest.py): the
# models are tiny, and a second OpenMP thread spin-waiting on a busy or shared machine cost the
# in-process trainer tests 10-15x their CPU time (docs/benchmarks.md, "Test suite").
os.environ.setdefault("OMP_NUM_THREADS", "1")  # before any test module imports torch
if "torch" in sys.modules:  # imported already (by a plugin): set it directly
    sys.modules["torch"].set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

# fixture (anywhere in a test's fixture closure) -> the xdist group its tests run in
# (an expensive session/module fixture set up on both workers is started twice: one `rlvr serve`
# of the demo model for the judge/cai tests, one SmolLM2 vLLM engine for test_sync.py and the
# SmolLM2 GRPO step on vLLM)
GROUP_BY_FIXTURE = {"vllm_engine": "vllm_engine", "demo_serve_url": "demo_serve", "smol_engine": "smol_engine"}
# marker -> the xdist group its tests run in
GROUP_BY_MARKER = {"docker": "docker"}


def require(condition: bool, why: str) -> None:
    """Skip locally, fail in CI, when a required engine or package is missing."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI=true and {why}: this test must run in CI", pytrace=False)
    pytest.skip(why)


def xdist_group_of(item: pytest.Item) -> str | None:
    """The group a test must run in under xdist (None: it may run on any worker)."""
    for fixture, group in GROUP_BY_FIXTURE.items():
        if fixture in getattr(item, "fixturenames", ()):
            return group
    for marker, group in GROUP_BY_MARKER.items():
        if item.get_closest_marker(marker) is not None:
            return group
    return None


def _start_order(item: pytest.Item) -> int:
    """0: the vLLM engine group (one long chain), 1: slow tests, 2: the rest."""
    if xdist_group_of(item) == "vllm_engine":
        return 0
    return 1 if item.get_closest_marker("slow") is not None else 2


def pytest_itemcollected(item: pytest.Item) -> None:
    """Marks each test with its xdist group as it is collected."""
    if not XDIST_WORKER:
        return
    group = xdist_group_of(item)
    if group is not None and item.get_closest_marker("xdist_group") is None:
        item.add_marker(pytest.mark.xdist_group(group))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In an xdist worker: the start order, and the test -> group map for the controller."""
    groups_file = getattr(config, "workerinput", {}).get(GROUPS_KEY)
    if not XDIST_WORKER or not groups_file:
        return
    items.sort(key=_start_order)  # stable: collection order within each class
    groups = {}
    for item in items:
        mark = item.get_closest_marker("xdist_group")
        if mark is not None:
            groups[item.nodeid] = str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
    tmp = Path(f"{groups_file}.{XDIST_WORKER}")
    tmp.write_text(json.dumps(groups))
    os.replace(tmp, groups_file)  # every worker collects the same tests, so any copy will do


# ----------------------------------------------------------------------------- the xdist controller
# xdist 3.8's own `--dist loadgroup` renames each grouped test's node id to "id@group", which
# pytest 9 ignores (node ids are structured there), so every group would be split across
# workers. Instead the workers write the test -> group map above and this scheduler reads it.
GROUPS_KEY = "rlvr_xdist_groups"
_GROUPS_FILE = Path(tempfile.gettempdir()) / f"rlvr-xdist-groups-{os.getpid()}.json"


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    node.workerinput[GROUPS_KEY] = str(_GROUPS_FILE)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class MarkGroupScheduling(LoadGroupScheduling):
        """`loadgroup`, with the groups read from the map the workers wrote at collection."""

        groups: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self.groups is None:
                self.groups = json.loads(_GROUPS_FILE.read_text()) if _GROUPS_FILE.exists() else {}
            return self.groups.get(nodeid) or super()._split_scope(nodeid)

    return MarkGroupScheduling(config, log)


def pytest_unconfigure(config: pytest.Config) -> None:
    if not XDIST_WORKER:
        _GROUPS_FILE.unlink(missing_ok=True)
