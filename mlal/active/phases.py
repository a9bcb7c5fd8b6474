"""A campaign's phases outside the MD (methods of :class:`~mlal.active.campaign.Campaign`).

Labelling against the oracle budget (:meth:`Phases._label`), the initial and
validation sets (:meth:`Phases._initial`), training a model version and scoring
it on the validation labels (:meth:`Phases._train`), and the summary and report
at the end (:meth:`Phases.finish`). The MD loop itself is in
:mod:`mlal.active.campaign`, what happens at a pause in :mod:`mlal.active.pauses`.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import time
from typing import Any, Dict, List, Optional

import numpy as np

from ..system import available_cores
from .config import trainer_settings
from .labelling import Labeller
from .pauses import CampaignError
from .progress import Progress
from .store import atomic_write_text
from .structures import existing_labels, oracle_md_frames, structures_from


def trainer():
    """``(TrainConfig, train)`` of ``mlal.train``."""
    import mlal.train as mt
    if not hasattr(mt, "train"):
        raise CampaignError("mlal.train.train is not available in this installation")
    return mt.TrainConfig, mt.train


def force_errors(model_path, items, per_frame: bool = False) -> Dict[str, Any]:
    """Force RMSE/MAE (eV/Å) and energy MAE (eV/atom) of a model on labelled items.

    With ``per_frame``, also ``frames``: for each item its force RMSE (eV/Å) and the model's
    ``gamma_max`` and ``sigma_max`` (eV/Å) there, which tell an error on a configuration the
    training never covered (γ > 1) from a confidently wrong one (γ ≤ 1)."""
    from ase_calculators import MlalCalculator
    if not items:
        return {}
    calc = MlalCalculator(str(model_path), uncertainty=per_frame)
    df, de, frames = [], [], []
    for it in items:
        a = it.atoms.copy()
        a.calc = calc
        f = a.get_forces()
        df.append((f - it.forces).ravel())
        de.append((a.get_potential_energy() - it.energy) / len(a))
        if per_frame:
            frames.append({"force_rmse": float(np.sqrt(np.mean(df[-1] ** 2))),
                           "gamma_max": float(calc.results["gamma_max"]),
                           "sigma_max": float(np.max(calc.results["sigma"]))})
    df = np.concatenate(df)
    out: Dict[str, Any] = {"force_rmse": float(np.sqrt(np.mean(df ** 2))), "force_mae": float(np.mean(np.abs(df))),
                           "energy_mae_per_atom": float(np.mean(np.abs(de))), "n_frames": len(items)}
    if per_frame:
        out["frames"] = frames
    return out


def training_config(cfg: Dict[str, Any], version: int, final: bool = False):
    """``(TrainConfig, warm)`` of a campaign's model ``version``: ``training``, updated by
    ``retraining`` for the versions > 0 during the MD or by ``final_training`` for the last
    one; ``warm`` says whether it starts from the previous version's checkpoint."""
    TrainConfig, _ = trainer()
    settings = dict(cfg["training"])
    if final:
        settings.update(cfg["final_training"] or {})
    elif version > 0:
        settings.update(trainer_settings("retraining", cfg["retraining"]))
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    if "species" in fields:
        settings["species"] = list(cfg["species"])
    if "seed" in fields:
        settings.setdefault("seed", cfg["seed"])
    warm = version > 0 and not final and cfg["retraining"]["warm_start"]
    return TrainConfig(**settings), warm


class Phases:
    """Mixed into :class:`~mlal.active.campaign.Campaign`; uses its ``cfg``, ``state``, ``store``,
    ``executor``, ``labeller`` and ``log``."""

    def _labeller(self) -> Labeller:
        if self.labeller is None:
            o = self.cfg["oracle"]
            spec = {k: v for k, v in o.items() if k not in ("workers", "timeout", "executor", "max_force")}
            kind = o.get("executor", "process")
            self.labeller = Labeller(spec, executor=self.executor, executor_kind=kind,
                                     workers=o.get("workers", min(4, available_cores())),
                                     timeout=o.get("timeout"), max_force=o.get("max_force"))
        return self.labeller

    def oracle_calls(self, kind: Optional[str] = None) -> int:
        n = 0
        for r in self.store.journal():
            if r["event"] == "oracle_call" and (kind is None or r.get("kind") == kind):
                n += 1
        return n

    def labelling_calls(self) -> int:
        """Oracle calls counted against ``budget.max_oracle_calls``: initial and on the fly, not validation."""
        return sum(1 for r in self.store.journal()
                   if r["event"] == "oracle_call" and r.get("kind") in ("initial", "otf"))

    def _label(self, items: List[tuple], kind: str, iteration: int, progress: Progress) -> Dict[str, int]:
        """Label ``[(uid, atoms)]`` not yet in the database; returns counts."""
        todo = [(uid, a) for uid, a in items if not self.store.has_label(uid)]
        done = len(items) - len(todo)
        budget = self.cfg["budget"]["max_oracle_calls"]
        if kind != "validation":
            left = budget - self.labelling_calls()
            if left < len(todo):
                self.log("budget", what="max_oracle_calls", limit=budget, wanted=len(todo), allowed=max(0, left))
                todo = todo[:max(0, left)]
        by_uid = dict(todo)
        counts = {"ok": 0, "failed": 0, "already": done}

        def on_result(res):
            a = by_uid[res.key]
            self.store.log("oracle_call", uid=res.key, kind=kind, iteration=iteration, ok=res.ok,
                           error=res.error, seconds=round(res.seconds, 3), n_atoms=len(a))
            if res.ok:
                self.store.add_label(a, res.key, res.energy, res.forces, res.stress, kind=kind,
                                     iteration=iteration, step=a.info.get("step"),
                                     gamma=a.info.get("gamma_max"), model_version=a.info.get("model_version"))
                counts["ok"] += 1
            else:
                counts["failed"] += 1
                progress.line(f"oracle call {res.key} failed (skipped): {res.error}")

        if todo:
            self._labeller().label(todo, on_result)
        return counts

    # ------------------------------------------------------------------ phases
    def _initial(self, progress: Progress) -> None:
        cfg = self.cfg
        frames = structures_from(cfg["initial"], cfg["species"], cfg["seed"])
        items, preset = [], 0
        for k, a in enumerate(frames):
            uid = f"init:{k}"
            lab = existing_labels(a)
            if lab is not None:
                if not self.store.has_label(uid):
                    self.store.add_label(a, uid, *lab, kind="initial", iteration=0)
                preset += 1
            else:
                items.append((uid, a))
        c = self._label(items, "initial", 0, progress)
        progress.line(f"initial set: {c['ok'] + c['already'] + preset} labelled "
                      f"({c['ok']} oracle calls now, {c['failed']} failed)")
        val = cfg["validation"]
        if val:
            vframes = structures_from(val, cfg["species"], cfg["seed"] + 1000)
            vitems = []
            for k, a in enumerate(vframes):
                lab = existing_labels(a)
                uid = f"val:{k}"
                if lab is not None:
                    if not self.store.has_label(uid):
                        self.store.add_label(a, uid, *lab, kind="validation", iteration=0)
                else:
                    vitems.append((uid, a))
            self._label(vitems, "validation", 0, progress)
            om = val.get("oracle_md")
            if om and not self.store.count_labels(kind="validation_md"):
                lam = cfg["lammps"]
                fr = oracle_md_frames(om.get("system") or lam["system"], om.get("dynamics") or lam["dynamics"],
                                      om["steps"], om["every"], cfg["oracle"], cfg["species"], om["seed"])
                for k, a in enumerate(fr):
                    r = a.calc.results
                    self.store.add_label(a, f"valmd:{k}", r["energy"], r["forces"], r.get("stress"),
                                         kind="validation_md", iteration=0, step=a.info["step"])
                self.log("validation_md", frames=len(fr), steps=om["steps"], every=om["every"])
                progress.line(f"validation: {len(fr)} frames of an independent oracle MD")
        if not self.store.count_labels(kind="initial"):
            raise CampaignError("no initial structure could be labelled (see journal.jsonl for the errors)")

    def _validation_items(self):
        return self.store.labels("validation") + self.store.labels("validation_md")

    def _train(self, version: int, progress: Progress, final: bool = False) -> Dict[str, Any]:
        """Train model ``version`` on every training label.

        Settings: ``training``, updated by ``retraining`` for the versions > 0
        during the MD, warm-started from the previous version unless
        ``retraining.warm_start`` is false (then from scratch, as DP-GEN does
        by default). The last one (after the MD, ``final=True``) is trained
        **from scratch** with ``training`` updated by ``final_training``: on
        the demo protocol that halved the force error of a warm-started final
        model at the same time budget (0.120 vs 0.208 eV/Å).
        """
        _, train = trainer()
        cfg = self.cfg
        tc, warm = training_config(cfg, version, final)
        data = self.store.labels("initial") + self.store.labels("otf")
        out = self.store.model_dir(version)
        init = self.state.get("checkpoint") if warm else None
        t0 = time.time()
        import inspect
        kw = {}
        if "resume" in inspect.signature(train).parameters and (out / "checkpoint.pt").exists():
            kw["resume"] = True          # a training interrupted by a kill goes on where it was
        self.log("train_start", version=version, n_structures=len(data), init=init, **kw)
        res = train(data, tc, out, init=init, progress=False, **kw)
        errs = force_errors(res.model_path, self._validation_items(), per_frame=final)
        frames = errs.pop("frames", None)       # the final model's, frame by frame, for the summary
        metrics = {k: v for k, v in dict(res.metrics or {}).items() if isinstance(v, (int, float, str, bool))}
        rec = {"version": version, "model_path": str(res.model_path), "checkpoint": str(res.checkpoint),
               "n_structures": len(data), "seconds": round(time.time() - t0, 2), "validation": errs,
               "metrics": metrics, "oracle_calls": self.labelling_calls()}
        if frames is not None:
            rec["validation_frames"] = frames
        self.log("model", **rec)
        progress.line(f"model v{version}: {len(data)} structures, {rec['seconds']:.0f} s"
                      + (f", validation force RMSE {errs['force_rmse']:.3f} eV/Å" if errs else ""))
        return rec

    # ------------------------------------------------------------------ the end
    def finish(self, progress: Progress) -> Dict[str, Any]:
        from .report import write_report
        st = self.state
        journal = self.store.journal()
        models = [r for r in journal if r["event"] == "model"]
        summary = {
            "name": self.cfg["name"], "workdir": str(self.store.root),
            "steps": self.cfg[self.cfg["engine"]]["steps"], "step_reached": st["md"]["step"] if st.get("md") else 0,
            "passes": self.cfg[self.cfg["engine"]]["passes"], "pass_reached": st.get("md", {}).get("pass", 0),
            "iterations": st["iteration"], "model_version": st["model_version"], "model_path": st["model_path"],
            "oracle_calls": {"initial": self.oracle_calls("initial"), "otf": self.oracle_calls("otf"),
                             "validation": self.oracle_calls("validation")},
            "oracle_failures": sum(1 for r in journal if r["event"] == "oracle_call" and not r["ok"]),
            "labels": {"initial": self.store.count_labels(kind="initial"),
                       "otf": self.store.count_labels(kind="otf")},
            "validation": models[-1]["validation"] if models else {},
            "stop_reason": st.get("stop_reason"),
            "budget_spent": st.get("budget_spent"),
        }
        items = self._validation_items()
        if items:      # the final model frame by frame: is its error where it extrapolates (γ > 1)?
            last = models[-1] if models else {}
            frames = last.get("validation_frames") if last.get("model_path") == str(st["model_path"]) else None
            summary["validation_frames"] = (frames if frames is not None
                                            else force_errors(st["model_path"], items, per_frame=True)["frames"])
        if self.cfg["report"]:
            try:
                summary["report"] = str(write_report(self.store, frames=summary.get("validation_frames")))
            except Exception as exc:  # noqa: BLE001  (a plot must not lose a finished campaign)
                summary["report_error"] = f"{type(exc).__name__}: {exc}"
        shutil.copyfile(st["model_path"], self.store.root / "model.pt")
        summary["labels_extxyz"] = str(self.store.root / "labels.extxyz")
        self.store.export_extxyz(self.store.root / "labels.extxyz")       # all labels, one file (atomic)
        atomic_write_text(self.store.root / "summary.json", json.dumps(summary, indent=1))
        self.log("done", **summary)
        v = summary["validation"]
        progress.line(f"done: {summary['iterations']} iterations, oracle calls {summary['oracle_calls']}, "
                      + (f"validation force RMSE {v['force_rmse']:.3f} eV/Å, " if v else "")
                      + f"model {self.store.root / 'model.pt'}")
        return summary
