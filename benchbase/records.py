"""What the store hands back for a run: its typed spec and what became of it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from benchbase.specs import RunSpec


@dataclass(frozen=True)
class RunRecord:
    """One stored run. Readers that merge or annotate runs return changed copies
    (``dataclasses.replace``), never edit a record in place."""

    run_id: str
    spec: RunSpec
    status: str  # pending | running | interrupted | done | failed | diverged | timeout (| conflict, from a ResultSet)
    error: str | None = None
    provenance: dict = field(default_factory=dict)  # versions, device, dataset content hash, ...
    summary: dict = field(default_factory=dict)  # what the run consumed; the reason it stopped
    created_at: float | None = None
    updated_at: float | None = None
    source: str = ""  # the results directory it was read from (set by a ResultSet)
    conflict: Any = None  # a benchbase.resultset.Conflict when copies of the run disagree
    derived: dict | None = None  # its training-dynamics record, where a reader attached it

    @property
    def title(self) -> str:
        return self.spec.title

    @property
    def model_label(self) -> str:
        return self.spec.model.label

    @property
    def dataset_label(self) -> str:
        return self.spec.dataset.label

    @property
    def n(self) -> int | None:
        return self.spec.subset.n

    @property
    def seed(self) -> int:
        return self.spec.seed
