"""Campaign storage: labels in an ASE database, a journal of every event, and the state.

Layout of a campaign directory::

    campaign.yaml      the configuration (copied at the first start)
    labels.db          ASE database (SQLite): every labelled structure, one row per
                       oracle call that succeeded; key ``uid`` is unique
    journal.jsonl      append-only log: model versions, iterations, decisions, each
                       oracle call and its outcome, pauses, resumes (fsync'ed)
    state.json         where the campaign is (phase, iteration, model, MD checkpoint);
                       replaced atomically (write + rename)
    models/vNNN/       one folder per model version (model.pt, checkpoint.pt)
    md/                restart files and preselected candidates of each checkpoint
    thermo.jsonl       step, time, temperature, energy, max γ/σ (trajectory log)

Every write is atomic: the database is transactional and a label's ``uid``
(``iteration:candidate``) is checked before the oracle is called, so a campaign
killed at any point and started again neither loses nor duplicates labels.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence

import ase.db
import ase.io
import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from ..data.io import Labelled


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file, fsync and rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_extxyz(path: Path, frames: Sequence[Atoms]) -> None:
    """Write frames as extxyz via a temporary file and rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.extxyz")
    ase.io.write(str(tmp), list(frames), format="extxyz")
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_extxyz(path: Path) -> List[Atoms]:
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return []
    return list(ase.io.read(str(path), index=":", format="extxyz"))


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (np.floating,)):
        return float(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, Path):
        return str(x)
    return x


class CampaignStore:
    """Files of one campaign (see the module docstring)."""

    def __init__(self, root, create: bool = True):
        self.root = Path(root).resolve()
        if create:
            self.root.mkdir(parents=True, exist_ok=True)
            (self.root / "models").mkdir(exist_ok=True)
            (self.root / "md").mkdir(exist_ok=True)
        elif not self.root.is_dir():
            raise FileNotFoundError(f"no campaign directory {self.root}")
        self.journal_path = self.root / "journal.jsonl"
        self.state_path = self.root / "state.json"
        self.db_path = self.root / "labels.db"
        self.thermo_path = self.root / "thermo.jsonl"
        self._db = None

    # ------------------------------------------------------------------ journal and state
    def log(self, event: str, **fields) -> Dict[str, Any]:
        """Append one event to the journal (fsync'ed before returning)."""
        rec = {"t": round(time.time(), 3), "event": event, **_jsonable(fields)}
        line = json.dumps(rec, sort_keys=False) + "\n"
        with open(self.journal_path, "a") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        return rec

    def journal(self) -> List[Dict[str, Any]]:
        """Every complete journal record (a torn last line from a kill is skipped)."""
        return _read_jsonl(self.journal_path)

    def load_state(self) -> Optional[Dict[str, Any]]:
        if not self.state_path.exists():
            return None
        return json.loads(self.state_path.read_text())

    def save_state(self, state: Dict[str, Any]) -> None:
        atomic_write_text(self.state_path, json.dumps(_jsonable(state), indent=1, sort_keys=True))

    # ------------------------------------------------------------------ labels
    @property
    def db(self):
        if self._db is None:
            self._db = ase.db.connect(str(self.db_path), type="db", append=True)
        return self._db

    def has_label(self, uid: str) -> bool:
        return self.db.count(uid=uid) > 0

    def label_uids(self) -> set:
        return {row.uid for row in self.db.select(columns=["key_value_pairs"], include_data=False)}

    def add_label(self, atoms: Atoms, uid: str, energy: float, forces: np.ndarray,
                  stress: Optional[np.ndarray], **keys) -> bool:
        """Store one labelled structure (one transaction). False if ``uid`` is already there."""
        if self.has_label(uid):
            return False
        a = Atoms(atoms.get_chemical_symbols(), positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
        a.calc = SinglePointCalculator(a, energy=energy, free_energy=energy, forces=forces,
                                       **({"stress": stress} if stress is not None else {}))
        kv = {"uid": uid, **{k: v for k, v in keys.items() if v is not None}}
        self.db.write(a, key_value_pairs=_jsonable(kv))
        return True

    def count_labels(self, **selection) -> int:
        return self.db.count(**selection)

    def labels(self, kind: Optional[str] = None) -> List[Labelled]:
        """All stored labels (``kind``: ``initial``, ``otf``, ``validation``...) as :class:`Labelled`."""
        out = []
        sel = {"kind": kind} if kind else {}
        for row in self.db.select(**sel):
            a = row.toatoms()
            stress = row.get("stress")
            out.append(Labelled(atoms=Atoms(a.get_chemical_symbols(), positions=a.positions, cell=a.cell,
                                            pbc=a.pbc),
                                energy=float(row.energy), forces=np.array(row.forces, dtype=float),
                                stress=None if stress is None else np.array(stress, dtype=float),
                                source=f"{self.db_path.name}:{row.uid}", config_type=str(row.get("kind", ""))))
        return out

    def label_rows(self) -> List[Dict[str, Any]]:
        """Key-value pairs of every label (for reports)."""
        return [dict(row.key_value_pairs, id=row.id) for row in self.db.select(include_data=False)]

    def export_extxyz(self, path: Path, kind: Optional[str] = None) -> int:
        frames = []
        for item in self.labels(kind):
            a = item.atoms.copy()
            a.calc = SinglePointCalculator(a, energy=item.energy, forces=item.forces,
                                           **({"stress": item.stress} if item.stress is not None else {}))
            a.info["config_type"] = item.config_type
            frames.append(a)
        atomic_write_extxyz(path, frames)
        return len(frames)

    # ------------------------------------------------------------------ trajectory log
    def append_thermo(self, rows: Iterable[Dict[str, Any]]) -> None:
        rows = list(rows)
        if not rows:
            return
        with open(self.thermo_path, "a") as f:
            for r in rows:
                f.write(json.dumps(_jsonable(r)) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def thermo(self) -> List[Dict[str, Any]]:
        """Every complete thermo record (a torn last line from a kill is skipped)."""
        return _read_jsonl(self.thermo_path)

    def truncate_thermo(self, after_step: int, pass_index: int = 0) -> None:
        """Drop trajectory rows beyond ``after_step`` of pass ``pass_index`` (they will be
        simulated again on resume)."""
        rows = [r for r in self.thermo() if (r.get("pass", 0), r.get("step", 0)) <= (pass_index, after_step)]
        atomic_write_text(self.thermo_path, "".join(json.dumps(r) + "\n" for r in rows))

    def model_dir(self, version: int) -> Path:
        d = self.root / "models" / f"v{version:03d}"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def close(self) -> None:
        self._db = None


def _read_jsonl(path: Path) -> List[Dict[str, Any]]:
    """The records of a JSON-lines file; lines that do not parse (a torn write) are skipped."""
    if not path.exists():
        return []
    out = []
    with open(path) as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out
