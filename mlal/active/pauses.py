"""What a campaign does when its MD pauses or fails (methods of :class:`~mlal.active.campaign.Campaign`).

At a pause, rank 0 decides (:meth:`PauseHandling._decide`): learn from the
candidates, continue, step past a configuration that keeps breaking, or stop
on a budget; every rank writes the restart file, and rank 0 records the pause
(:meth:`PauseHandling._record`). A LAMMPS run that fails is rolled back to the
last restart file and re-run with γ checked at every step up to the failed
step (:meth:`PauseHandling._rollback`).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from ase import Atoms

from .store import atomic_write_extxyz


class CampaignError(RuntimeError):
    """The campaign cannot go on (with the reason)."""


class PauseHandling:
    """Mixed into :class:`~mlal.active.campaign.Campaign`; uses its ``cfg``, ``state``, ``store``,
    ``driver``, ``log``, ``save_state``, ``bcast``, ``labelling_calls`` and ``_start_md``."""

    def _enter_label(self, it: int, candidates: List[Atoms], forced: Optional[int], **state) -> None:
        """Root: save the candidates of iteration ``it`` and switch the state to ``label``."""
        cand_file = Path(self.cfg["workdir"]) / "md" / f"it{it:03d}_candidates.extxyz"
        atomic_write_extxyz(cand_file, candidates)
        self.state.update(phase="label", iteration=it, candidates=str(cand_file), forced=forced, **state)
        self.state.pop("selected", None)
        self.save_state()

    def _rollback(self, d, exc: Exception, pending: List[Atoms]):
        """The MD failed (a LAMMPS error such as lost atoms, a non-finite model output, or a
        break with γ above ``selection.gamma_runaway``: the MD ran far past the break between
        two checks, into a configuration neither worth labelling nor to resume from).

        Every rank goes back to the last restart file with a fresh LAMMPS instance, and
        γ/σ are checked at every step until just past the failed step, so that a break
        catches the extrapolation before it blows the run up. Candidates the fix saved
        before the failure are labelled first (an iteration from the restart step). The
        same restart failing more than ``budget.max_rollbacks`` times stops the campaign.
        Returns the new driver.
        """
        cfg, eng = self.cfg, self.cfg[self.cfg["engine"]]
        try:
            failed_at = d.step
        except Exception:  # noqa: BLE001
            failed_at = None
        cands = d.read_candidates() if self.root else []
        d.close()
        plan = None
        if self.root:
            st = self.state
            back_to = st["md"]["step"]
            prev = st.get("rollback", {})
            count = prev.get("count", 0) + 1 if prev.get("step") == back_to else 1
            if count > cfg["budget"]["max_rollbacks"]:
                plan = {"error": f"the MD failed {count} times after going back to step {back_to} "
                                 f"(last failure at step {failed_at}: {exc}); the model is confidently wrong "
                                 f"there (γ stays below selection.gamma_select = {cfg['selection']['gamma_select']}) "
                                 f"or runs away between two γ checks. Lower gamma_select/gamma_break or "
                                 f"lammps.check_every, or add such structures to `initial`, "
                                 f"then `mlal learn --resume {cfg['workdir']}`"}
            else:
                fail = back_to + eng["check_every"] if failed_at is None else failed_at
                st["rollback"] = {"step": back_to, "count": count}
                st["tight_until"] = fail + eng["check_every"]
                cands = pending + cands
                pending.clear()
                self.log("rollback", failed_at=failed_at, back_to=back_to, count=count, error=str(exc),
                         check_every=1, until=st["tight_until"], candidates=len(cands))
                self._progress.line(f"MD failed at step {failed_at} ({exc}); back to step {back_to}, "
                                    f"checking γ every step up to {st['tight_until']}"
                                    + (f", labelling {len(cands)} candidates first" if cands else ""))
                if cands:
                    it = st["iteration"] + 1
                    self._enter_label(it, cands, len(cands) - 1)
                    self.log("pause", iteration=it, reason="failure", step=back_to, gamma_max=None,
                             sigma_max=None, candidates=len(cands))
                else:
                    atomic_write_extxyz(Path(cfg["workdir"]) / "md" / "pending.extxyz", [])
                    self.save_state()
                plan = {"error": None}
        plan = self.bcast(plan)
        if plan["error"]:
            if self.root:
                self.log("stop", reason="md_failure", error=plan["error"])
            raise CampaignError(plan["error"])
        self.state = self.bcast(self.state)
        return self._start_md()               # γ every step: the loop reads state.tight_until

    def _decide(self, pause, pending, last_pause, max_iter, wall, progress) -> Dict[str, Any]:
        """What to do after a pause (root): learn, continue, skip a re-breaking step, or stop."""
        cfg = self.cfg
        eng = cfg[cfg["engine"]]
        md = Path(cfg["workdir"]) / "md"
        learnable = pause.reason in ("break", "candidates")
        learn = learnable or bool(pause.reason == "done" and pending and cfg["selection"]["final_learning"])
        spent = None
        if self.state["iteration"] >= max_iter:
            spent = f"budget.max_iterations ({max_iter}) reached"
        if self.labelling_calls() >= cfg["budget"]["max_oracle_calls"]:
            spent = f"budget.max_oracle_calls ({cfg['budget']['max_oracle_calls']}) reached"
        stop_reason, forced, skip, drop = None, None, None, False
        if wall is not None and time.time() - self.t_start > wall:
            stop_reason = f"budget.max_wall_time ({wall} s) reached"
        elif spent and learn:
            if cfg["budget"]["when_spent"] == "stop":
                stop_reason = spent
            else:                              # "continue": simulate to the end with the last model
                learn, drop = False, True
                if not self.state.get("budget_spent"):
                    self.state["budget_spent"] = spent
                    self.log("decision", what="budget_spent", step=pause.step, why=spent,
                             then="continue without labelling (budget.when_spent: continue)")
                    progress.line(f"{spent}: continuing to step {eng['steps']} with model version "
                                  f"{self.state['model_version']}, no more labelling")
                if pause.reason == "break":
                    skip = eng["steps"]        # breaks are ignored from here on
        decision = "stop" if stop_reason else ("learn" if learn else "continue")
        if pause.reason == "break" and skip is not None:
            decision = "skip"
        elif pause.reason == "break":
            same = last_pause.get("step") == pause.step
            count = last_pause.get("count", 0) + 1 if same else 1
            if same:
                forced = len(pending) - 1          # the break configuration itself is labelled
            if count >= 3 and decision == "learn":
                decision, skip = "skip", pause.step + eng["check_every"]
                self.log("decision", what="skip_break", step=pause.step,
                         why="the same step broke three times; continuing past it")
            last_pause = {"step": pause.step, "count": count}
        it = self.state["iteration"] + 1
        restart = md / (f"it{it:03d}.restart" if decision == "learn" else "checkpoint.restart")
        return {"decision": decision, "stop_reason": stop_reason, "forced": forced, "skip_break_until": skip,
                "last_pause": last_pause, "restart": str(restart), "iteration": it, "drop_pending": drop}

    def _record(self, plan, pause, pending: List[Atoms]) -> None:
        """Rank 0, after the restart file is written: candidates, state, journal."""
        d = self.driver
        md = Path(self.cfg["workdir"]) / "md"
        self.store.append_thermo(d.take_thermo())
        if plan["decision"] == "learn":
            it = plan["iteration"]
            self._enter_label(it, pending, plan["forced"], last_pause=plan["last_pause"],
                              md={"restart": plan["restart"], "step": pause.step, "pass": d.pass_index})
            self.log("pause", iteration=it, reason=pause.reason, step=pause.step, gamma_max=pause.gamma_max,
                     sigma_max=pause.sigma_max, candidates=len(pending), **{"pass": d.pass_index})
            self._progress.status(pause.step, f"pause ({pause.reason}, γ {pause.gamma_max:.2f}): "
                                  f"{len(pending)} candidates")
            pending.clear()
            return
        atomic_write_extxyz(md / "pending.extxyz", pending)
        self.state["md"] = {"restart": plan["restart"], "step": d.step, "pass": d.pass_index}
        self.state["last_pause"] = plan["last_pause"]
        if plan["decision"] == "skip":
            self.state["skip_break_until"] = plan["skip_break_until"]
        if plan["decision"] == "stop":
            self.state["phase"] = "done"
            self.state["stop_reason"] = plan["stop_reason"]
        self.save_state()
        self.log("decision", what=plan["decision"], reason=pause.reason, step=pause.step,
                 gamma_max=pause.gamma_max, pending=len(pending), stop_reason=plan["stop_reason"])
        self._progress.status(d.step, f"{len(pending)} candidates pending")
        if plan["stop_reason"]:
            self.log("checkpoint", step=d.step, pending=len(pending))
