"""Bad suites and overrides found in a user walk: each is refused before anything runs,
in one line naming the file, the full key path and what is valid (exit 2)."""
from __future__ import annotations

import json

import pytest
from support.suites import tiny_suite

from benchbase.cli import main
from benchbase.config import load_suite
from benchbase.errors import ConfigError


def _write(tmp_path, suite: dict, name="s.yaml"):
    path = tmp_path / name
    path.write_text(json.dumps(suite))
    return path


def _error(tmp_path, registry, overrides=(), **suite) -> str:
    """The one-line error that loading ``tiny_suite(**suite)`` with ``overrides`` ends in."""
    path = _write(tmp_path, tiny_suite(**suite))
    with pytest.raises(ConfigError) as info:
        load_suite(path, list(overrides), registry=registry)
    message = str(info.value)
    assert len(message.splitlines()) == 1, message
    return message.replace(f"invalid suite: {path}: ", "")


@pytest.mark.parametrize("override, key, numbers", [
    ("datasets.x.n=3", "datasets.x", "0..0"),
    ("models.first.label=x", "models.first", "0..1"),
    ("models.-1.label=x", "models.-1", "0..1"),  # OmegaConf would count from the end
])
def test_a_list_indexed_by_a_name_or_a_negative_number_is_refused(tmp_path, registry, override, key, numbers):
    list_name = key.split(".")[0]
    assert _error(tmp_path, registry, [override]) == f"{key}: {list_name} is a list; index it by number ({numbers})"


def test_a_list_indexed_by_a_name_exits_2_in_one_line(tmp_path, capsys):
    path = _write(tmp_path, tiny_suite())
    assert main(["validate", str(path), "datasets.x.n=3"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: invalid suite: {path}: datasets.x: datasets is a list; index it by number (0..0)"]
