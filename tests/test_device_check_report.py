"""benchmarks/device_check_report.py: the GPU block of docs/performance.md is what the
script makes of the committed logs (regenerated, never edited), and a folder that is
not a device_check.sh log folder is refused in one line."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import device_check_report  # noqa: E402
from docs_block import markers  # noqa: E402

LOGS = ROOT / "docs" / "device_check" / "h200-2026-11-29-run3"


def test_the_committed_gpu_block_is_regenerated_from_the_committed_logs():
    begin, end = markers("device-check", "benchmarks/device_check_report.py")
    text = (ROOT / "docs" / "performance.md").read_text()
    block = text.split(begin, 1)[1].split(end, 1)[0]
    command, body = block.strip().split("\n\n", 1)
    logs = ROOT / command.strip("`").split()[-1]  # the run the block names
    assert logs.parent == ROOT / "docs" / "device_check" and logs.is_dir()
    assert body.strip() == device_check_report.report(logs).strip()


def test_the_report_names_the_device_every_step_and_its_figures():
    text = device_check_report.report(LOGS)
    assert "NVIDIA H200" in text and "torch 2.11.0" in text
    for step in ("gpu-tests", "loop-overhead", "metric-kernels", "fleet-throughput", "unet-calpha", "unet-scores"):
        assert f"| {step} | ok |" in text
    assert "RATIO knn rate / GEMM rate" in text and "a fleet of 64" in text


def test_a_failed_step_reads_as_failed(tmp_path):
    (tmp_path / "summary.tsv").write_text("gpu-tests\tFAILED (1)\t55\t2 failed, 7 passed\n")
    assert "| gpu-tests | FAILED (1) | 55 | 2 failed, 7 passed |" in device_check_report.report(tmp_path)


def test_a_folder_without_a_summary_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="no summary.tsv"):
        device_check_report.report(tmp_path)
