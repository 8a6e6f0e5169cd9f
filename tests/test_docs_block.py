"""benchmarks/docs_block.py: a generated block is headed by a command that regenerates it."""
from __future__ import annotations

import shlex

from support.benchmark_scripts import import_benchmark


def test_the_shown_command_pastes_into_a_shell_and_leaves_out_the_folders(monkeypatch):
    docs_block = import_benchmark(monkeypatch, "docs_block")
    argv = ["--space-config", '{"copy_descriptor": {"members": 5}}', "--compare", "1:1.0[0,2]",
            "--write-docs", "docs/metrics.md", "--cache=results/cache", "--block", "copy-detection-ensemble"]
    shown = docs_block.shown_command("benchmarks/bench_copy_detection.py", argv)
    assert shlex.split(shown) == ["python", "benchmarks/bench_copy_detection.py", "--space-config",
                                  '{"copy_descriptor": {"members": 5}}', "--compare", "1:1.0[0,2]",
                                  "--block", "copy-detection-ensemble"]


def test_a_block_is_replaced_between_its_markers_only(tmp_path, monkeypatch):
    docs_block = import_benchmark(monkeypatch, "docs_block")
    page = tmp_path / "page.md"
    begin, end = docs_block.markers("b", "s.py")
    page.write_text(f"before\n{begin}\nold\n{end}\nafter\n")
    docs_block.replace_block(page, "b", "s.py", "python s.py", "new")
    assert page.read_text() == f"before\n{begin}\n`python s.py`\n\nnew\n{end}\nafter\n"
