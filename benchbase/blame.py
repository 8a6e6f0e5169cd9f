"""Which plugin broke a run, and in which method.

A run fails when a plugin raises or returns what its contract forbids. The reason
the user reads (in the run summary, the leaderboard's failures, the suite's end
line) must name the plugin and the method: a worker's traceback is long and a
suite has many plugins. The core wraps each plugin call it makes in :func:`blame`
and checks returned values with :func:`expect`; either raises :class:`PluginFault`,
which fails that run only.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from benchbase.errors import BenchbaseInputError


class PluginFault(Exception):
    """A plugin method raised or broke its contract; fails its run, never the suite."""

    def __init__(self, kind: str, name: str, method: str, problem: str):
        self.kind, self.name, self.method, self.problem = kind, name, method, problem
        super().__init__(f"{kind} '{name}' {method}(): {problem}")


@contextmanager
def blame(kind: str, name: str, method: str) -> Iterator[None]:
    """Any exception raised inside becomes the :class:`PluginFault` of ``kind`` ``name``'s
    ``method`` (one raised by a nested call keeps its own, more precise, blame)."""
    try:
        yield
    except (PluginFault, BenchbaseInputError):  # already says what is wrong, for the user
        raise
    except Exception as exc:
        raise fault_of(exc, kind, name, method) from exc


def fault_of(exc: Exception, kind: str, name: str, method: str) -> PluginFault:
    """``exc``, raised by ``method`` of ``kind`` ``name``, as its :class:`PluginFault`."""
    return PluginFault(kind, name, method, f"{type(exc).__name__}: {_first_line(exc)}")


def expect(ok: bool, kind: str, name: str, method: str, problem: str) -> None:
    """Raise the :class:`PluginFault` ``problem`` unless ``ok``."""
    if not ok:
        raise PluginFault(kind, name, method, problem)


def describe(value: object, limit: int = 40) -> str:
    """A returned value as a message shows it: its type, and its start; an array by its
    shape and dtype, bytes by their size. Messages are built before the check that may
    raise them, on every evaluation's samples and checkpoint, so this never formats a
    whole array or checkpoint (milliseconds each)."""
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    if shape is not None and dtype is not None:
        return f"{type(value).__name__} of shape {tuple(shape)} and dtype {dtype}"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"{type(value).__name__} of {memoryview(value).nbytes} bytes"
    text = repr(value)
    return f"{type(value).__name__} {text[:limit]}{'...' if len(text) > limit else ''}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "(no message)"
