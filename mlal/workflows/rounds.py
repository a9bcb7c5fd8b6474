"""The resumable bookkeeping shared by the active-learning workflows' rounds.

A workflow's work directory holds ``state.json`` (the round, the stage within it, the current
model's path and what a subclass adds), ``labels.extxyz`` (every oracle label, written atomically
before the training that uses it) and ``journal.jsonl`` (one JSON event per line, appended). A
run started again with the same directory reads them back and continues where it stopped.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Dict, List, Union

from ase import Atoms


class Rounds:
    """Base class: :meth:`_open` the work directory, :meth:`_save` after each change of stage,
    :meth:`_log` events. Subclasses name their ``first_stage`` and may add keys to the state
    through :meth:`_state`."""

    first_stage = "relax"

    def _open(self, workdir: Union[str, Path], model: Union[str, Path]) -> Dict[str, Any]:
        """Read (or start) the state in ``workdir``; returns the stored state (empty when new)."""
        from ..active.store import read_extxyz
        self.root = Path(workdir)
        self.root.mkdir(parents=True, exist_ok=True)
        p = self.root / "state.json"
        state = json.loads(p.read_text()) if p.exists() else {}
        self.round: int = state.get("round", 0)
        self.stage: str = state.get("stage", self.first_stage)  # "train": the round's labels are in, not trained on
        self.model_path: str = state.get("model_path", str(model))
        lab = self.root / "labels.extxyz"
        self.labels: List[Atoms] = read_extxyz(lab) if lab.exists() else []
        return state

    def _state(self) -> Dict[str, Any]:
        return {"round": self.round, "stage": self.stage, "model_path": self.model_path,
                "n_labels": len(self.labels)}

    def _labels_in(self) -> None:
        """The round's labels are in: stage ``"train"``, saved before the training starts."""
        self.stage = "train"
        self._save()

    def _next_round(self) -> None:
        """The round's training is done (``model_path`` is its model): the next round, saved."""
        self.round += 1
        self.stage = self.first_stage
        self._save()

    def _save(self) -> None:
        from ..active.store import atomic_write_extxyz, atomic_write_text
        atomic_write_extxyz(self.root / "labels.extxyz", self.labels)
        atomic_write_text(self.root / "state.json", json.dumps(self._state()))

    def _log(self, event: str, **kw: Any) -> None:
        with open(self.root / "journal.jsonl", "a") as f:
            f.write(json.dumps({"t": round(time.time(), 3), "event": event, **kw}) + "\n")
