"""A suite's training dynamics as text: one Markdown table row per run with its derived
quantities, the fits of tau_mem against n and the curve-collapse spreads, and the
same as JSON (``<suite>.dynamics.md`` / ``.json``, written by ``benchbase plot``)."""
from __future__ import annotations

import dataclasses

from benchbase.derived import SuiteData
from benchbase.distance_gap import format_summary, summarize
from benchbase.dynamics import format_collapse, format_fit, group_key
from benchbase.exponents import format_axis_fit, format_collapse_comparison, format_local_exponent
from benchbase.mdtext import md_escape
from benchbase.memscore import memscore_lines
from benchbase.verdicts import CopyRule


def analysis_sections(data: SuiteData) -> list[tuple[str, list[str]]]:
    """(title, lines) of the analyses beyond the per-run table, those a suite has data for."""
    sections = [
        ("Exponents of every swept axis (one fit per family, 95% intervals)",
         [format_axis_fit(f) for f in data.axis_fits]),
        ("Local exponents between adjacent values of an axis (is it one power law?)",
         [format_local_exponent(e) for e in data.local_exponents]),
        ("The paper's normalization against the measured exponents",
         [format_collapse_comparison(c) for c in data.normalizations]),
        ("Do distributional distances tell train from test?",
         [format_summary(s, data.settings.loss_threshold) for s in summarize(data.distance_gaps)]),
        ("Leave-fold-out memorization score", memscore_lines(data)),
    ]
    return [(title, lines) for title, lines in sections if lines]


def dynamics_table(data: SuiteData) -> str:
    """Markdown: one line per run with its derived quantities, then the fits."""
    from tabulate import tabulate

    def num(v, fmt="{:.4g}"):
        return "–" if v is None else fmt.format(v)

    rows = []
    for r in sorted(data.runs, key=lambda r: (group_key(r.spec), r.n, r.run.seed)):
        d = r.derived
        best = d.get("best_before_mem", {})
        swd = best.get("swd[test]") or {}
        fd = best.get("fd[test]") or {}
        twin = d.get("twin") or {}
        sweep = {k: v for k, v in r.spec.sweep.items() if k != "n"}
        label = r.spec.model.label + (f" ({', '.join(f'{k.split(chr(46), 1)[-1]}={v}' for k, v in sweep.items())})"
                                      if sweep else "")
        rows.append([md_escape(label),
                     r.n, r.run.seed, num(d.get("tau_mem_copy"), "{:.0f}"), num(d.get("tau_mem_loss"), "{:.0f}"),
                     d.get("criterion") or "–", num(d.get("tau_mem_normalized"), "{:.0f}"),
                     num(d.get("mem_rate"), "{:.3f}"), num(d.get("mem_final"), "{:.3f}"),
                     f"{num(swd.get('value'))} @ {num(swd.get('step'), '{:.0f}')}" if swd else "–",
                     f"{num(fd.get('value'))} @ {num(fd.get('step'), '{:.0f}')}" if fd else "–",
                     num(twin.get("twin_similarity"), "{:.3f}"), num(twin.get("nearest_train_similarity"), "{:.3f}")])
    cfg = data.settings
    judged = sorted({m for r in data.runs for m in r.derived.get("copy_metrics") or []})
    head = (f"## {md_escape(data.name)}: training dynamics\n\n"
            f"tau_mem by the copy criterion ({md_escape(CopyRule.of(cfg).describe(judged))}) and by the loss criterion "
            f"(relative held-out gap above its first value by {cfg.loss_threshold:g}), confirmed at {cfg.confirm} "
            f"later evaluation(s), interpolated in log step; – = not reached within the budget (or not measured). "
            f"Headline criterion: {cfg.criterion}. mem_rate = slope of {cfg.rate_metric} per decade of steps "
            f"after the copy onset. Best fidelity = min over evaluations before tau_mem (value @ step). Definitions: "
            f"docs/training-dynamics.md.\n\n")
    table = tabulate(rows, headers=["model", "n", "seed", "tau_mem (copy)", "tau_mem (loss)", "headline",
                                    "tau_mem normalized", "mem_rate /decade", "final mem_ratio",
                                    "best swd[test] before", "best fd[test] before", "twin sim.",
                                    "nearest-train sim."],
                     tablefmt="github", disable_numparse=True)
    fits = "\n".join(f"- {md_escape(format_fit(f))}" for f in data.fits) or "- no fit: no run reached memorization"
    spread = "\n".join(f"- {md_escape(format_collapse(c))}" for c in data.collapse) or "- fewer than two n per group"
    text = (head + table + "\n\n### Fits of log tau_mem against log n (95% intervals)\n\n" + fits
            + "\n\n### Do the curves collapse under the normalized step?\n\n" + spread + "\n")
    for title, lines in analysis_sections(data):
        text += f"\n### {title}\n\n" + "\n".join(f"- {md_escape(line)}" for line in lines) + "\n"
    return text


def dynamics_json(data: SuiteData) -> dict:
    return {"suite": data.name, "settings": _asdict(data.settings), "fits": data.fits, "collapse": data.collapse,
            "axis_fits": [f.to_dict() for f in data.axis_fits],
            "normalizations": [c.to_dict() for c in data.normalizations],
            "local_exponents": [e.to_dict() for e in data.local_exponents],
            "distance_gaps": [g.to_dict() for g in data.distance_gaps],
            "runs": [{"run_id": r.run.run_id, "n": r.n, "seed": r.run.seed,
                      "sweep": r.spec.sweep, "model": r.spec.model.label, **r.derived}
                     for r in data.runs]}


def _asdict(obj) -> dict:
    return dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else dict(obj)
