"""The tables of one ``device_check.sh`` run, from the log folder it leaves
(``DEVICE_CHECK_OUT``): the device and versions, the summary table, and the lines of each
step's log that hold its figures. With ``--write-docs``, replaces the generated
``device-check`` block of docs/performance.md, so the committed GPU figures are
regenerated from the committed logs, never typed in.

    python benchmarks/device_check_report.py docs/device_check/h200-2026-11-29 [--write-docs docs/performance.md]
"""
from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from docs_block import write_block  # noqa: E402

#: Per step log, the lines that carry its figures (the rest is progress and warnings).
FIGURE_LINES = {
    "loop-overhead": r"^\S+: rectified_flow|^  median:|^ratios of medians",
    "metric-kernels": r"^(knn|fd|swd):|GEMM alone|knn \+ refinement|knn from host|RATIO|scipy sqrtm|ours \(eigh\)"
                      r"|POT numpy|^  ours:",
    "fleet-throughput": r"training throughput|^throughput ratios",
    "unet-scores": r"^\|",
}


@dataclass(frozen=True)
class StepRow:
    name: str
    status: str
    seconds: int
    figure: str


def summary_rows(folder: Path) -> list[StepRow]:
    rows = []
    for line in (folder / "summary.tsv").read_text().splitlines():
        name, status, seconds, figure = (line.split("\t") + ["", "", "", ""])[:4]
        rows.append(StepRow(name, status, int(seconds or 0), figure.strip()))
    return rows


def figure_lines(folder: Path, step: str) -> list[str]:
    log = folder / f"{step}.log"
    if step not in FIGURE_LINES or not log.exists():
        return []
    pattern = re.compile(FIGURE_LINES[step])
    return [line.rstrip() for line in log.read_text().splitlines() if pattern.search(line)]


def cell(text: str) -> str:
    """A summary figure as one markdown table cell."""
    return text.replace("|", "\\|") or "-"


def report(folder: Path) -> str:
    if not (folder / "summary.tsv").exists():
        raise SystemExit(f"{folder}: no summary.tsv (not a device_check.sh log folder)")
    gpu = (folder / "gpu.txt").read_text().strip() if (folder / "gpu.txt").exists() else "no GPU (dry run)"
    versions = ", ".join(v.strip() for v in (folder / "versions.txt").read_text().splitlines()) \
        if (folder / "versions.txt").exists() else "-"
    rows = summary_rows(folder)
    out = [f"Device: {gpu}. Versions: {versions}. Steps took {sum(r.seconds for r in rows)} s together.", "",
           "| step | status | s | key figures |", "|---|---|---|---|"]
    out += [f"| {r.name} | {r.status} | {r.seconds} | "
            f"{'its leaderboard row, below' if r.figure.startswith('|') else cell(r.figure)} |" for r in rows]
    for r in rows:
        lines = figure_lines(folder, r.name)
        if lines and r.name != "unet-scores":
            out += ["", f"{r.name}:", "", "```", *lines, "```"]
        elif lines:  # the leaderboard's own markdown table
            out += ["", "unet-scores (the U-Net's leaderboard row; fd and swd in pixel space):", "", *lines]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="the log folder of one device_check.sh run")
    parser.add_argument("--write-docs", default="", help="replace the generated device-check block of this file")
    args = parser.parse_args(argv)
    text = report(args.folder)
    print(text)
    if args.write_docs:
        write_block(args.write_docs, "device-check", "benchmarks/device_check_report.py",
                    sys.argv[1:] if argv is None else argv, text)


if __name__ == "__main__":
    main()
