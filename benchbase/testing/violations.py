"""How the conformance kit reports a broken contract: one exception naming the
plugin, the clause and the fix, so a failing test reads like a code review."""
from __future__ import annotations

import contextlib
import traceback
from dataclasses import dataclass, field


class ContractViolation(AssertionError):
    """A plugin broke a clause of its contract.

    An ``AssertionError`` so pytest reports it as a test failure (not an error) and
    shows the message as is. ``clause`` is a stable dotted name such as
    ``"sample.shape"`` that tests and docs can refer to.
    """

    def __init__(self, plugin: str, clause: str, problem: str, fix: str):
        self.plugin, self.clause, self.problem, self.fix = plugin, clause, problem, fix
        super().__init__(f"{plugin} breaks contract clause '{clause}': {problem}\n  How to fix: {fix}")


@dataclass
class Report:
    """What a check verified (clause names in order) and what it had to skip, and why."""

    plugin: str
    checked: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        text = f"{self.plugin}: {len(self.checked)} clause(s) hold"
        if self.skipped:
            text += "; skipped: " + "; ".join(f"{c} ({why})" for c, why in self.skipped)
        return text


class Checker:
    """Collects passed clauses into a :class:`Report` and raises on the first broken one."""

    def __init__(self, plugin: str):
        self.report = Report(plugin)
        self.opted_out: dict[str, str] = {}

    def opt_out(self, clause: str, reason: str) -> None:
        """The plugin declared that ``clause`` does not apply to it: skipped, with the reason."""
        self.opted_out[clause] = reason

    @property
    def plugin(self) -> str:
        return self.report.plugin

    def fail(self, clause: str, problem: str, fix: str):
        raise ContractViolation(self.plugin, clause, problem, fix)

    def require(self, ok: bool, clause: str, problem: str, fix: str) -> None:
        if clause in self.opted_out:
            self.skip(clause, f"opted out: {self.opted_out[clause]}")
            return
        if not ok:
            self.fail(clause, problem, fix)
        self.passed(clause)

    def passed(self, clause: str) -> None:
        if clause not in self.report.checked:
            self.report.checked.append(clause)

    def skip(self, clause: str, why: str) -> None:
        if (clause, why) not in self.report.skipped:
            self.report.skipped.append((clause, why))

    @contextlib.contextmanager
    def calling(self, clause: str, what: str, fix: str = "see the traceback above this message"):
        """Plugin code raising inside the block breaks ``clause``; the cause stays chained.
        A BenchbaseInputError (missing files, an optional dependency not installed, a
        device not present) is about the machine, not the contract: it passes through."""
        from benchbase.errors import BenchbaseInputError

        try:
            yield
        except (ContractViolation, BenchbaseInputError):
            raise
        except Exception as exc:
            where = traceback.extract_tb(exc.__traceback__)[-1]
            raise ContractViolation(
                self.plugin, clause,
                f"{what} raised {type(exc).__name__}: {exc} (at {where.filename}:{where.lineno})",
                fix) from exc
