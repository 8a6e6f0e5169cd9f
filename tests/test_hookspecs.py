"""Every hook is documented in its spec, and docs/hooks.md is generated from the specs."""
from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from benchbase import hookspecs
from benchbase.hookdocs import hook_functions, render_hooks_markdown

DOCS = Path(__file__).resolve().parents[1] / "docs" / "hooks.md"


@pytest.mark.parametrize("hook", hook_functions(), ids=lambda f: f.__name__)
def test_every_hook_has_a_reference_docstring(hook):
    doc = inspect.getdoc(hook) or ""
    assert len(doc.split()) >= 15, f"{hook.__name__} needs a docstring that documents it"
    for arg in inspect.signature(hook).parameters:
        assert arg in doc, f"{hook.__name__}'s docstring does not explain its argument '{arg}'"


def test_docs_page_is_generated_from_the_specs():
    assert DOCS.read_text(encoding="utf-8") == render_hooks_markdown(), (
        "docs/hooks.md is stale: run `benchbase docs hooks --out docs/hooks.md`")


def test_every_spec_is_rendered():
    text = render_hooks_markdown()
    for hook in hook_functions():
        assert f"## `{hook.__name__}(" in text


def test_the_registrar_and_observer_hooks_exist():
    names = {f.__name__ for f in hook_functions()}
    assert {f"benchbase_register_{k}s" for k in
            ("model", "dataset", "metric", "feature", "executor", "publisher")} <= names
    assert {"benchbase_run_started", "benchbase_evaluated", "benchbase_run_finished"} <= names
    assert hookspecs.PROJECT_NAME == "benchbase"


def test_docs_out_must_be_a_file_whose_folder_can_be_made(tmp_path, capsys):
    from benchbase.cli import main

    (tmp_path / "a_file").write_text("keep")
    for out, says in ((tmp_path, "is a folder; name a file"),
                      (tmp_path / "a_file" / "x.md", "a_file is a file, not a folder")):
        assert main(["docs", "hooks", "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert says in err and str(out) in err and "\n" not in err
    assert (tmp_path / "a_file").read_text() == "keep"
    assert main(["docs", "hooks", "--out", str(tmp_path / "new" / "hooks.md")]) == 0
    assert (tmp_path / "new" / "hooks.md").read_text(encoding="utf-8") == render_hooks_markdown()
