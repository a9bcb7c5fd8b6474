"""The learning-on-the-fly loop: label, train, simulate, pause, select, label, retrain, continue.

A :class:`Campaign` runs one configuration file (see :mod:`mlal.active.config`)
in one campaign directory (see :mod:`mlal.active.store`). Its phases, kept in
``state.json``:

``initial``  label the starting structures (uid ``init:K``) and the validation set
             (``val:K``), train model version 0;
``md``       run the dynamics with the current model from ``state.md.restart``
             (or from the start); every ``checkpoint_every`` steps the LAMMPS/ASE
             state, pending candidates and trajectory rows are saved;
``label``    a pause: the restart file at the pause step and the candidates are on
             disk; choose a batch (D-optimal or σ), label it (uid ``itN:K``), then
             ``train`` version N from version N-1 (warm start), redeploy, and
             go back to ``md`` from the same step;
``done``     the requested steps were simulated (or a budget ran out); report.

With ``lammps.passes`` (``ase.passes``) > 1 the dynamics run the whole
protocol again once ``md`` reaches its last step: pass k starts from the
system commands with other initial velocities (the ``velocity ... create``
seed + 7919 k; ASE: ``make_atoms(k)``) and the latest model, so a later pass
visits configurations of the same protocol that the earlier ones did not
(``state.md.pass``; steps count from 0 in every pass).

A LAMMPS run that fails between two γ checks (lost atoms, a model error) is
rolled back to the last restart file and re-run with γ checked at every step
up to the failed step (see :mod:`mlal.active.pauses`).

Every transition is journalled and written before the next side effect, so a
campaign killed at any point (``kill -9``) and started again with the same
command picks up where it was: labels already in the database are not asked
for again (uids), a model version is retrained only if it was not finished,
and the MD restarts from the last restart file (trajectory rows after it are
dropped and simulated again).

With MPI (``comm`` given), every rank runs the LAMMPS driver; rank 0 alone
labels, trains and writes files, then broadcasts its decisions and the new
model path.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np
from ase import Atoms

from .config import ConfigError, load_config
from .labelling import Labeller
from .lammps_driver import DriverError
from .pauses import CampaignError, PauseHandling
from .phases import Phases
from .progress import Progress
from .store import CampaignStore, atomic_write_extxyz, atomic_write_text, read_extxyz


def _ase_serial() -> None:
    """Make ASE per-process: with mpi4py loaded, ASE's file I/O would otherwise
    broadcast over COMM_WORLD from whichever rank reads (only rank 0 does here)."""
    import ase.parallel
    ase.parallel.world = ase.parallel.DummyMPI()


def saved_config(workdir, edit: Optional[Callable[[Dict[str, Any]], None]] = None) -> Dict[str, Any]:
    """The checked configuration saved in a campaign directory (``campaign.yaml``), its relative
    paths read from where the campaign was started; ``edit`` may change the raw mapping first."""
    workdir = Path(workdir).resolve()
    cfg_path = workdir / "campaign.yaml"
    if not cfg_path.is_file():
        raise ConfigError(f"{workdir}: not a campaign directory (no campaign.yaml)")
    import yaml
    raw = yaml.safe_load(cfg_path.read_text())
    base = raw.pop("_base_dir", str(workdir))
    if edit is not None:
        edit(raw)
    cwd = os.getcwd()
    try:
        os.chdir(base)
        return load_config(raw)
    finally:
        os.chdir(cwd)


class Campaign(Phases, PauseHandling):
    """One learning-on-the-fly campaign (see the module docstring).

    Args:
        config: path of the YAML file or an already loaded dict (checked here).
        workdir: campaign directory (default: the file's ``workdir`` key).
        comm: an mpi4py communicator for the LAMMPS driver (rank 0 does the rest).
        executor: a ``concurrent.futures.Executor`` for oracle calls (default:
            built from ``oracle.executor``/``oracle.workers``).
        stop_after: testing hook, a dict like ``{"iterations": 2}`` or ``{"step": 150}``
            (steps counted over the passes) that makes :meth:`run` return early.
    """

    def __init__(self, config, workdir=None, comm=None, executor=None, progress: Optional[bool] = None):
        self.cfg = config if isinstance(config, dict) and "base_dir" in config else load_config(config)
        if workdir is not None:
            self.cfg["workdir"] = str(Path(workdir).resolve())
        self.comm = comm
        self.rank = 0 if comm is None else comm.Get_rank()
        if comm is not None:
            _ase_serial()
        self.root = self.rank == 0
        self.store = CampaignStore(self.cfg["workdir"]) if self.root else None
        self.executor = executor
        show = self.cfg["progress"] if progress is None else progress
        self.show_progress = bool(show) and self.root
        self.labeller: Optional[Labeller] = None
        self.driver = None
        self.state: Dict[str, Any] = {}
        self.t_start = time.time()

    # ------------------------------------------------------------------ helpers
    @classmethod
    def resume(cls, workdir, comm=None, executor=None, progress: Optional[bool] = None) -> "Campaign":
        """The campaign of an existing directory, from its saved configuration."""
        workdir = Path(workdir).resolve()
        return cls(saved_config(workdir), workdir=workdir, comm=comm, executor=executor, progress=progress)

    def bcast(self, obj):
        return obj if self.comm is None else self.comm.bcast(obj, root=0)

    def log(self, event: str, **fields) -> None:
        if self.root:
            self.store.log(event, **fields)

    def save_state(self) -> None:
        if self.root:
            self.store.save_state(self.state)

    def _new_driver(self):
        cfg, st = self.cfg, self.state
        sel = cfg["selection"]
        common = dict(pass_index=st["md"].get("pass", 0), check_every=cfg[cfg["engine"]]["check_every"],
                      gamma_select=sel["gamma_select"],
                      gamma_break=sel["gamma_break"], sigma_select=sel["sigma_select"],
                      sigma_break=sel["sigma_break"], thermo_every=cfg[cfg["engine"]]["thermo_every"],
                      model_version=st["model_version"])
        if cfg["engine"] == "lammps":
            from .lammps_driver import LammpsDriver
            lam = cfg["lammps"]
            cand = Path(cfg["workdir"]) / "md" / "fix_candidates.extxyz"
            return LammpsDriver(st["model_path"], cfg["species"], lam["system"], lam["dynamics"], lam["steps"],
                                backend=lam["backend"], cmdargs=lam["cmdargs"], comm=self.comm,
                                candidates_file=cand, **common)
        from .ase_driver import AseDriver
        return AseDriver(st["model_path"], cfg["species"], cfg["ase"]["script"], cfg["ase"]["steps"], **common)

    def _select(self, model_path, candidates: List[Atoms], forced: Optional[int], n: int) -> List[int]:
        """Indices of at most ``n`` candidates to label (deterministic given model and candidates)."""
        from ..deploy import load_model
        from .selection import select_by_sigma, select_d_optimal
        sel = self.cfg["selection"]
        if not candidates:
            return []
        if sel["method"] == "sigma":
            chosen = select_by_sigma([a.info.get("sigma_max", 0.0) for a in candidates], n,
                                     steps=[a.info.get("step", 0) for a in candidates],
                                     min_separation=self.cfg[self.cfg["engine"]]["check_every"],
                                     sigma_min=sel["sigma_select"] or 0.0)
        else:
            model = load_model(model_path)
            chosen, _ = select_d_optimal(model, candidates, n)
        if forced is not None and forced not in chosen:
            chosen = chosen[:max(0, n - 1)] + [forced]
        return sorted(int(c) for c in chosen)

    def _cut(self, model_path, atoms: Atoms) -> Atoms:
        cl = self.cfg["selection"]["cluster"]
        if not cl or len(atoms) <= cl["max_atoms"]:
            return atoms
        from ..deploy import load_model
        from .selection import atom_features, cut_cluster
        g = atom_features(load_model(model_path), atoms).gamma
        out = cut_cluster(atoms, int(np.argmax(g)), cl["radius"], cl["mode"])
        out.info.update({k: v for k, v in atoms.info.items() if k in ("step", "gamma_max", "model_version")})
        return out

    # ------------------------------------------------------------------ the loop
    def run(self, stop_after: Optional[Dict[str, int]] = None) -> Dict[str, Any]:
        """Run (or resume) the campaign to its end; returns the summary (rank 0)."""
        cfg = self.cfg
        stop_after = stop_after or {}
        eng = cfg["engine"]
        total = cfg[eng]["steps"] * cfg[eng]["passes"]
        progress = self._progress = Progress(self.show_progress, total)
        try:
            if self.root:
                self.state = self.store.load_state() or {}
                if not self.state:
                    raw = {k: v for k, v in cfg.items() if k not in ("base_dir",)}
                    raw["_base_dir"] = cfg["base_dir"]
                    import yaml
                    atomic_write_text(self.store.root / "campaign.yaml", yaml.safe_dump(raw, sort_keys=False))
                    self.state = {"phase": "initial", "iteration": 0, "model_version": -1,
                                  "md": {"restart": None, "step": 0}}
                    self.log("start", name=cfg["name"], workdir=cfg["workdir"], engine=eng, steps=total)
                else:
                    md = self.state["md"]
                    self.log("resume", phase=self.state["phase"], iteration=self.state["iteration"],
                             step=md["step"], **{"pass": md.get("pass", 0)})
                    progress.line(f"resuming {self.store.root} at phase {self.state['phase']}, "
                                  f"iteration {self.state['iteration']}, step {md['step']}"
                                  + (f" of pass {md['pass'] + 1}" if md.get("pass") else ""))
                if self.state["phase"] == "initial":
                    self._initial(progress)
                    rec = self._train(0, progress)
                    self.state.update(phase="md", model_version=0, model_path=rec["model_path"],
                                      checkpoint=rec["checkpoint"])
                    self.save_state()
            self.state = self.bcast(self.state)
            if self.state["phase"] != "done":
                self._loop(progress, stop_after)
            st = self.state
            if (self.root and st["phase"] == "done" and cfg["final_training"] and not st.get("final_trained")
                    and not stop_after):
                progress.line("final training on all labels (final_training settings)")
                v = st["model_version"] + 1
                rec = self._train(v, progress, final=True)
                st.update(model_version=v, model_path=rec["model_path"], checkpoint=rec["checkpoint"],
                          final_trained=True)
                self.save_state()
            summary = self.finish(progress) if self.root and self.state["phase"] == "done" else None
            return self.bcast(summary) or {}
        finally:
            progress.close()
            if self.driver is not None:
                self.driver.close()
            if self.labeller is not None:
                self.labeller.close()

    def _loop(self, progress: Progress, stop_after: Dict[str, int]) -> None:
        cfg, st = self.cfg, self.state
        eng = cfg[cfg["engine"]]
        total = eng["steps"]
        md = Path(cfg["workdir"]) / "md"
        d = self._start_md()
        # candidates kept since the last labelling (saved with each checkpoint)
        pending: List[Atoms] = read_extxyz(md / "pending.extxyz") if self.root and st["md"]["restart"] else []
        last_pause = st.get("last_pause", {})
        max_iter = cfg["budget"]["max_iterations"]
        wall = cfg["budget"]["max_wall_time"]
        iterations_now = 0
        while True:
            if st["phase"] == "label":
                if self.root:
                    self._iteration(progress)
                st = self.state = self.bcast(self.state)
                d.set_model(st["model_path"], version=st["model_version"])
                pending = []
                iterations_now += 1
                if stop_after.get("iterations") and iterations_now >= stop_after["iterations"]:
                    return
                continue
            if d.step >= total:
                left = eng["passes"] - st["md"].get("pass", 0) - 1
                if left and not st.get("budget_spent"):
                    d = self._next_pass(d)
                    st, pending, last_pause = self.state, [], {}
                    continue
                if left:        # nothing more can be labelled: more passes would only simulate
                    self.log("decision", what="skip_passes", passes_left=left, why=st["budget_spent"])
                break
            until = min(total, (d.step // eng["checkpoint_every"] + 1) * eng["checkpoint_every"])
            tight = st.get("tight_until")
            if tight is not None and d.step >= tight:
                d.set_check_every(eng["check_every"])        # past the step that failed: normal checks again
                st.pop("tight_until")
            elif tight is not None:
                d.set_check_every(1)
                until = min(until, tight)
            try:
                pause = d.advance(until=until,
                                  max_candidates=max(1, cfg["selection"]["max_candidates"] - len(pending)),
                                  progress=progress.row)
            except DriverError as exc:
                if cfg["engine"] != "lammps":
                    raise
                d = self._rollback(d, exc, pending)
                st = self.state
                continue
            runaway = cfg["selection"]["gamma_runaway"]
            if (cfg["engine"] == "lammps" and pause.reason == "break" and pause.gamma_max > runaway
                    and pause.step > st["md"]["step"] and st.get("tight_until") is None):
                # the MD ran far past the break between two checks: its configuration is no
                # state to resume from (nor one to label); re-run from the last restart instead,
                # γ checked every step (not at the restart itself, nor when already every step)
                pending += [a for a in pause.candidates if a.info.get("gamma_max", 0.0) <= runaway]
                if self.root:
                    self.log("decision", what="runaway", step=pause.step, gamma_max=pause.gamma_max,
                             back_to=st["md"]["step"], why=f"γ above selection.gamma_runaway = {runaway:g}")
                exc = DriverError(f"runaway: γ {pause.gamma_max:.3g} > selection.gamma_runaway = {runaway:g} "
                                  f"at step {pause.step}")
                d = self._rollback(d, exc, pending)
                st = self.state
                continue
            pending += pause.candidates
            plan = self._decide(pause, pending, last_pause, max_iter, wall, progress) if self.root else None
            plan = self.bcast(plan)
            last_pause = plan["last_pause"]
            if plan["drop_pending"]:
                pending.clear()                  # the labelling budget is spent (budget.when_spent: continue)
            # every rank writes the restart (collective under MPI); then rank 0 records it
            d.write_restart(Path(plan["restart"]))
            if self.root:
                self._record(plan, pause, pending)
            else:
                d.take_thermo()
            self.state = st = self.bcast(self.state)
            if plan["decision"] == "skip":
                d.skip_break_until = plan["skip_break_until"]
            if plan["decision"] == "stop":
                return
            if plan["decision"] == "learn":
                continue
            if stop_after.get("step") and st["md"].get("pass", 0) * eng["steps"] + d.step >= stop_after["step"]:
                return
        if self.root:
            self.state["phase"] = "done"
            self.save_state()
            self.log("md_done", step=d.step, md_seconds=round(d.timings["md_seconds"], 2))
        self.state = self.bcast(self.state)

    def _next_pass(self, d):
        """The protocol again from its first step: other velocities, the latest model (all ranks)."""
        st = self.state
        done, step = st["md"].get("pass", 0), d.step
        d.close()
        if self.root:
            atomic_write_extxyz(Path(self.cfg["workdir"]) / "md" / "pending.extxyz", [])
            st["md"] = {"restart": None, "step": 0, "pass": done + 1}
            for k in ("last_pause", "rollback", "tight_until", "skip_break_until"):
                st.pop(k, None)
            self.save_state()
            self.log("pass_done", step=step, model_version=st["model_version"], **{"pass": done})
            self._progress.line(f"pass {done + 1} of {self.cfg[self.cfg['engine']]['passes']} done at step "
                                f"{step}; pass {done + 2} starts with other velocities and model "
                                f"v{st['model_version']}")
        self.state = self.bcast(self.state)
        return self._start_md()

    def _start_md(self):
        """A new driver at ``state.md.restart`` (or the start), trajectory rows after it dropped (all ranks)."""
        st, progress = self.state, self._progress
        self.driver = d = self._new_driver()
        d.start(restart=st["md"]["restart"])
        p = st["md"].get("pass", 0)
        self.log("md_start", step=d.step, backend=getattr(d, "backend", "ase"), restart=st["md"]["restart"],
                 model_version=st["model_version"], ranks=1 if self.comm is None else self.comm.Get_size(),
                 **{"pass": p})
        if self.root:
            self.store.truncate_thermo(d.step, pass_index=p)
            progress.offset = p * self.cfg[self.cfg["engine"]]["steps"]
            progress.restart_at(d.step)
        d.skip_break_until = st.get("skip_break_until") or -1
        return d

    def _iteration(self, progress: Progress) -> None:
        """Select, label and retrain for the iteration in ``state`` (root only)."""
        st = self.state
        it = st["iteration"]
        cands = read_extxyz(Path(st["candidates"]))
        if "selected" not in st:
            left = self.cfg["budget"]["max_oracle_calls"] - self.labelling_calls()
            # choose no more than the oracle budget has left, so D-optimality picks which ones
            # (_label enforces the budget in any case; a batch is never empty)
            chosen = self._select(st["model_path"], cands, st.get("forced"),
                                  max(1, min(self.cfg["selection"]["batch_size"], left)))
            st["selected"] = chosen
            self.save_state()
            self.log("decision", what="select", iteration=it, method=self.cfg["selection"]["method"],
                     candidates=len(cands), chosen=chosen,
                     gammas=[float(cands[c].info.get("gamma_max", 0.0)) for c in chosen])
        items = [(f"it{it}:{c}", self._cut(st["model_path"], cands[c])) for c in st["selected"]]
        counts = self._label(items, "otf", it, progress)
        n_labels = self.store.count_labels(kind="otf")
        progress.info.update(iteration=it, labels=n_labels)
        progress.line(f"iteration {it}: {len(items)} of {len(cands)} candidates chosen, "
                      f"{counts['ok']} labelled, {counts['failed']} failed; otf labels {n_labels}")
        if counts["ok"] + counts["already"] > 0 or not Path(st["model_path"]).exists():
            rec = self._train(it, progress)
            st.update(model_version=it, model_path=rec["model_path"], checkpoint=rec["checkpoint"])
        else:
            self.log("decision", what="no_new_labels", iteration=it, why="nothing labelled; model kept")
            st["last_pause"] = {"step": st["md"]["step"], "count": 3}
        st["phase"] = "md"
        self.save_state()

def learn(config, workdir=None, resume: bool = False, comm=None, progress: Optional[bool] = None,
          executor=None) -> Dict[str, Any]:
    """Run (``resume=False``) or resume a campaign; returns its summary."""
    if resume:
        return Campaign.resume(workdir, comm=comm, progress=progress, executor=executor).run()
    return Campaign(config, workdir=workdir, comm=comm, progress=progress, executor=executor).run()
