"""A learned feature space that fits for minutes says how the fit goes (issue 20's
copy_descriptor fits ~33 min on a CPU core before a run's first evaluation): its lines reach
the user through the run's events, alone or in a fleet, and --quiet silences them."""
from __future__ import annotations

import io

import pytest
from support.executor_runs import run, suite_of

from benchbase.progress import Reporter
from benchbase_plugins.features.copy_descriptor import FitProgress, FitReport

FLOW = {"name": "rectified_flow", "framework": "torch", "config": {"width": 16, "depth": 2, "sample_steps": 3}}
TALKING = {"name": "faulty_features", "config": {"method": "none", "report_lines": 2}}


def _suite(**overrides) -> dict:
    return suite_of(FLOW, seeds=[0, 1], metrics=["mem_ratio"], budget={"batch_size": 16, "steps": 6},
                    eval={"points": 1, "n_samples": 32, "features": TALKING}, **overrides)


@pytest.mark.parametrize("fleet", [1, 16], ids=["alone", "fleet"])
def test_fit_lines_reach_the_user_with_the_runs_title(tmp_path, fleet):
    out = io.StringIO()
    suite, result = run(_suite(), tmp_path, executor={"name": "local", "config": {"fleet": fleet}},
                        reporter=Reporter(out, tty=False))
    text = out.getvalue()
    for spec in suite.runs:
        assert f"{spec.title}: fitting, line 1 of 2\n" in text, text
        assert f"{spec.title}: fitting, line 2 of 2\n" in text, text
        # said while the fit happens: before the run's first evaluation is reported
        assert text.index(f"{spec.title}: fitting, line 2 of 2") < text.index(f"{spec.title}: eval at step"), text


def test_quiet_silences_fit_lines(tmp_path):
    out = io.StringIO()
    run(_suite(), tmp_path, reporter=Reporter(out, quiet=True, tty=False))
    assert "fitting" not in out.getvalue()


def test_copy_descriptor_fit_progress_says_start_pace_and_end():
    lines, now = [], [100.0]
    say = FitProgress(lines.append, images=1105, steps=1500, path="cache/x.pt", every=30.0, clock=lambda: now[0])
    assert lines == ["copy_descriptor: fitting on 1105 training images, 1500 steps; cached in cache/x.pt"]
    now[0] = 110.0
    say(100, 1500, 5.1)  # 10 s in: too soon for a line
    now[0] = 160.0
    say(200, 1500, 4.6)  # 60 s for 200 steps: 390 s left
    assert lines[-1] == "copy_descriptor: step 200/1500, InfoNCE 4.60, 1.0 min so far, about 6.5 min left"
    now[0] = 170.0
    say(300, 1500, 4.4)  # 10 s after the last line
    assert len(lines) == 2
    say.done(FitReport(seconds=480.0, steps=1500, images=1105, final_infonce=3.55, final_koleo=0.1,
                       cpu_seconds=470.0))
    assert lines[-1] == "copy_descriptor: fitted in 8.0 min (470 CPU s), final InfoNCE 3.55"
    FitProgress(None, 10, 10)(5, 10, 1.0)  # nobody listening: nothing to do, nothing raised


def test_the_scoring_api_shows_fit_lines_on_stderr(capsys):
    import numpy as np
    from support.executor_runs import kit_registry

    from benchbase.scoring import SampleScorer

    rng = np.random.default_rng(0)
    SampleScorer.for_arrays(rng.normal(size=(40, 2)).astype(np.float32), rng.normal(size=(20, 2)).astype(np.float32),
                            metrics=["mem_ratio"], features=TALKING, registry=kit_registry())
    assert "fitting, line 2 of 2" in capsys.readouterr().err
