"""Names that become file names (a suite's name names its figures and tables), and
the guard that keeps every output inside the folder the user chose.

A suite name is checked when the suite is loaded, so a name like ``../../x`` never
reaches a store; the guard covers names read back from stores written before.
"""
from __future__ import annotations

import re
from pathlib import Path

from benchbase.errors import BenchbaseInputError

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,99}")
NAME_RULE = ("1 to 100 letters, digits, '_', '-', '.' or '+', starting with a letter or digit "
             "(it names files)")


def name_problem(value: object) -> str | None:
    """Why ``value`` cannot be a name that becomes a file name, or None if it can."""
    if not isinstance(value, str):
        return f"must be a string of {NAME_RULE}, got {type(value).__name__}"
    if not NAME_RE.fullmatch(value):
        return f"'{value}' is not a valid name: use {NAME_RULE}"
    return None


def output_path(out: str | Path, filename: str) -> Path:
    """``out/filename``, refusing any file name that would land outside ``out``."""
    base = Path(out).resolve()
    target = (base / filename).resolve()
    if target.parent != base:
        raise BenchbaseInputError(f"refusing to write '{filename}': it would land outside {out}/ "
                                  f"(a name that names files must be {NAME_RULE})")
    return target
