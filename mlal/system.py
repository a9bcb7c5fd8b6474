"""What this process may use of the machine (no torch import: oracle worker processes load it)."""
from __future__ import annotations

import os


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:   # not on Linux
        return max(1, os.cpu_count() or 1)
