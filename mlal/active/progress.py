"""Progress display of a campaign: one line per event, and a tqdm bar on a terminal."""
from __future__ import annotations

import sys
import time
from typing import Any, Dict


class Progress:
    """Progress lines (and a tqdm bar on a terminal): iteration, labels, max γ, steps."""

    def __init__(self, enabled: bool, total: int, initial: int = 0):
        self.enabled = enabled
        self.total = total
        self.bar = None
        self.t0 = time.time()
        self.info: Dict[str, Any] = {}
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm
            self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)
        self._last_step = initial
        self.gmax = 0.0
        self.offset = 0           # steps of the passes before the current one

    def restart_at(self, step: int) -> None:
        """The MD (re)starts at ``step`` (a resume or a rollback): the bar shows it from there."""
        self._last_step = step
        if self.bar is not None:
            self.bar.n = self.offset + step
            self.bar.refresh()

    def row(self, row: Dict[str, Any]) -> None:
        self.gmax = max(self.gmax, float(row.get("gamma_max", 0.0)))
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(max(0, row["step"] - self._last_step))
            self.bar.set_postfix(it=self.info.get("iteration", 0), labels=self.info.get("labels", 0),
                                 gmax=f"{row.get('gamma_max', 0):.2f}", T=f"{row.get('temp', 0):.0f}")
        self._last_step = row["step"]

    def status(self, step: int, what: str = "") -> None:
        """One progress line: steps simulated vs requested, iteration, labels, max γ since the last line."""
        step += self.offset
        self.line(f"step {step}/{self.total} ({100.0 * step / max(1, self.total):.0f}%), "
                  f"iteration {self.info.get('iteration', 0)}, otf labels {self.info.get('labels', 0)}, "
                  f"max γ {self.gmax:.2f}{'; ' + what if what else ''}")
        self.gmax = 0.0

    def line(self, text: str) -> None:
        if not self.enabled:
            return
        msg = f"[mlal learn {time.time() - self.t0:7.1f}s] {text}"
        if self.bar is not None:
            self.bar.write(msg)
        else:
            print(msg, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
