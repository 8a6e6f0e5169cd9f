"""A reader that closes stdout early (`benchbase plugins | head -1`) ends the command
quietly with exit 141 (128 + SIGPIPE), not a BrokenPipeError traceback and exit 1."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchbase import cli
from benchbase.commands import plugins as plugins_command

REPO = Path(__file__).resolve().parents[1]
ENTRY = "import sys; from benchbase.cli import main; sys.exit(main())"  # the console script's body


@pytest.mark.parametrize("argv", [["plugins"], ["plugins", "--json"]])
def test_a_closed_stdout_ends_the_command_quietly(argv):
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the command writes a byte: every write fails
    try:
        done = subprocess.run([sys.executable, "-c", ENTRY, *argv], stdout=write, stderr=subprocess.PIPE,
                              text=True, cwd=REPO, timeout=600)
    finally:
        os.close(write)
    assert done.stderr == "" and done.returncode == 141


def test_any_command_whose_reader_left_exits_141(monkeypatch):
    def gone(args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(plugins_command, "run", gone)
    assert cli.main(["plugins"]) == 141
