"""README's test command runs two pytest-xdist workers with ``--dist loadgroup``: tests of
one ``xdist_group`` must run on one worker, one after the other (a test that pip-installs
plugins must never overlap one that lists the installed plugins). Checked in a small
session of its own that uses the suite's helper the way tests/conftest.py does."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent

CONFTEST = f"""
import sys
import pytest
sys.path.insert(0, {str(TESTS)!r})
from support.xdist_groups import send_each_xdist_group_to_one_worker


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    send_each_xdist_group_to_one_worker(config, items)
"""

GROUPED = """
import os
import pytest
pytestmark = pytest.mark.xdist_group("together")


@pytest.mark.parametrize("i", range(3))
def test_grouped(i, tmp_path_factory):
    print("WORKER", os.environ["PYTEST_XDIST_WORKER"])
"""

LOOSE = """
import os


def test_loose():
    print("WORKER", os.environ["PYTEST_XDIST_WORKER"])
"""


def test_tests_of_one_xdist_group_run_on_one_worker(tmp_path):
    for i in range(3):
        (tmp_path / f"test_grouped_{i}.py").write_text(GROUPED)
        (tmp_path / f"test_loose_{i}.py").write_text(LOOSE)
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    done = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-v", "-p",
                           "no:cacheprovider", str(tmp_path)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    # -v names the worker of each test as it reports: "[gw1] [ 25%] PASSED test_grouped_0.py::..."
    worker_of = {line.split()[-1]: line.split()[0] for line in done.stdout.splitlines()
                 if line.startswith("[gw") and " PASSED " in line}
    grouped = {test: worker for test, worker in worker_of.items() if test.startswith("test_grouped")}
    assert len(grouped) == 9 and len(worker_of) == 12, done.stdout[-3000:]
    assert len(set(grouped.values())) == 1, grouped
    assert all(test.endswith("]@together") for test in grouped), grouped
