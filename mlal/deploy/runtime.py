"""Process-level settings that make TorchScript inference fast on CPU.

Each force call allocates tensors of a few MB to tens of MB. With glibc's
default, dynamic mmap threshold those come fresh from the kernel on every call
and the page faults cost more than the arithmetic. :func:`tune_malloc` raises
the mmap and trim thresholds once per process (the LAMMPS plugin does the same
in C++ when it is registered). ``MLAL_MALLOC_TUNING=0`` in the environment
turns it off (for comparisons).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3
_done = False


def tune_malloc(mmap_threshold: int = 64 << 20, trim_threshold: int = 256 << 20,
                top_pad: int = 64 << 20) -> bool:
    """Call glibc ``mallopt`` once per process; returns False where it is unavailable."""
    global _done
    if _done:
        return True
    if os.environ.get("MLAL_MALLOC_TUNING", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = all(mallopt(p, v) == 1 for p, v in ((_M_MMAP_THRESHOLD, mmap_threshold),
                                              (_M_TRIM_THRESHOLD, trim_threshold),
                                              (_M_TOP_PAD, top_pad)))
    _done = ok
    return ok
