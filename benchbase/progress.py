"""What a person sees while a suite runs: a progress bar on a terminal (run i of N,
step, examples/s, ETA), plain log lines otherwise (CI logs, files, pipes)."""
from __future__ import annotations

import sys
import time
from typing import TextIO


class Reporter:
    """Receives the driver's view of events; draws nothing itself unless told to."""

    def __init__(self, stream: TextIO | None = None, quiet: bool = False, tty: bool | None = None):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.tty = self.stream.isatty() if tty is None else tty
        self._bar = None
        self._bar_run: str | None = None  # the run the bar shows (several may run at once)
        self._last_line = 0.0
        self._titles: dict[str, tuple[int, int, str]] = {}

    def write(self, text: str) -> None:
        if self.quiet:
            return
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def warn(self, text: str) -> None:
        """Something the user must hear even with --quiet (a damaged checkpoint, a restart)."""
        if self._bar is not None:
            self._bar.write(f"warning: {text}", file=self.stream)
        else:
            print(f"warning: {text}", file=self.stream, flush=True)

    def plan(self, total: int, skipped: int, name: str) -> None:
        done = f", {skipped} already done" if skipped else ""
        self.write(f"suite '{name}': {total} run(s) to do{done}")

    def start(self, run_id: str, index: int, total_runs: int, title: str, total_steps: int,
              resumed_from: int) -> None:
        self._titles[run_id] = (index, total_runs, title)
        prefix = f"[{index + 1}/{total_runs}] {title}"
        resumed = f" (resuming at step {resumed_from})" if resumed_from else ""
        if self.quiet:
            return
        if self.tty and self._bar is not None and self._bar_run != run_id:
            self.write(f"{prefix}: started{resumed}")  # another run has the bar
        elif self.tty:
            from tqdm import tqdm

            self.close_bar()
            self._bar_run = run_id
            self._bar = tqdm(total=max(total_steps, 1), initial=resumed_from, desc=prefix, unit="step",
                             file=self.stream, leave=False, dynamic_ncols=True)
        else:
            self.write(f"{prefix}: started{resumed}")

    def progress(self, run_id: str, step: int, total: int, examples_per_s: float,
                 steps_per_s: float) -> None:
        if self.quiet:
            return
        if self._bar is not None and self._bar_run == run_id:
            self._bar.n = step
            self._bar.set_postfix_str(f"{examples_per_s:,.0f} ex/s", refresh=False)
            self._bar.refresh()
        elif self._bar is None and time.monotonic() - self._last_line > 15:
            index, total_runs, title = self._titles.get(run_id, (0, 1, run_id))
            eta = (total - step) / max(steps_per_s, 1e-9)
            self.write(f"[{index + 1}/{total_runs}] {title}: step {step}/{total}, "
                       f"{examples_per_s:,.0f} ex/s, ETA {eta:.0f}s")
            self._last_line = time.monotonic()

    def evaluated(self, run_id: str, step: int, headline: str) -> None:
        if self._bar is not None and self._bar_run == run_id:
            self._bar.n = max(self._bar.n, step)
            self._bar.refresh()
        elif not self.quiet and self._bar is None:
            index, total_runs, title = self._titles.get(run_id, (0, 1, run_id))
            self.write(f"[{index + 1}/{total_runs}] {title}: eval at step {step}: {headline}")

    def finish(self, run_id: str, status: str, summary: dict) -> None:
        index, total_runs, title = self._titles.get(run_id, (0, 1, run_id))
        if self._bar_run == run_id:
            self.close_bar()
        wall = summary.get("wall_time")
        extra = f" in {wall:.1f}s" if isinstance(wall, (int, float)) else ""
        reason = f": {summary['reason']}" if status != "done" and summary.get("reason") else ""
        self.write(f"[{index + 1}/{total_runs}] {title}: {status}{extra}{reason}")

    def close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
            self._bar_run = None
