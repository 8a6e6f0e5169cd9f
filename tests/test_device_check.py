"""benchmarks/device_check.sh --dry-run: every step of the GPU check, on the CPU at toy
size, passes and ends with the summary table (the real run needs a GPU machine)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STEPS = ("gpu-tests", "loop-overhead", "metric-kernels", "fleet-throughput", "unet-calpha", "unet-scores")


@pytest.mark.slow
def test_device_check_dry_run_passes_on_the_cpu(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "DEVICE_CHECK_OUT": str(tmp_path),
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "device_check.sh"), "--dry-run"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=3000)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    table = out[out.index("device check (dry run"):]
    for step in STEPS:
        row = next(line for line in table.splitlines() if line.startswith(step))
        assert " ok " in row, row
    rows = (tmp_path / "summary.tsv").read_text().splitlines()
    assert [r.split("\t")[0] for r in rows] == list(STEPS)
    assert "fleet of 4" in (tmp_path / "fleet-throughput.log").read_text()
