"""One-file TorchScript export and checked loading of mlal ensembles.

The file format is described in ``docs/model_format.md``; :data:`FORMAT_VERSION`
is the only version this code reads and writes.
"""
from __future__ import annotations

import copy
import json
import platform
import warnings
from pathlib import Path
from typing import Any, Dict, Optional, Union

import torch

from ..nn.model import EnsembleModel

FORMAT_NAME = "mlal-ensemble"
FORMAT_VERSION = 1
DTYPES = {"float64": torch.float64, "float32": torch.float32}


class ModelFormatError(RuntimeError):
    """The file is missing, corrupt, or not an mlal model of a readable version."""


def _versions() -> Dict[str, str]:
    from .. import __version__
    import ase
    import numpy
    return {"mlal": __version__, "torch": torch.__version__, "ase": ase.__version__,
            "numpy": numpy.__version__, "python": platform.python_version()}


def export_model(model: EnsembleModel, path: Union[str, Path], dtype: str = "float64",
                 provenance: Optional[Dict[str, Any]] = None) -> Path:
    """Script ``model`` and write it, with metadata, as one TorchScript file.

    Args:
        model: trained (or untrained) ensemble; it is copied, not modified.
        path: output file.
        dtype: ``"float64"`` (default, exact) or ``"float32"`` (faster MD).
        provenance: JSON-serialisable training provenance (data hashes, config...).
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    m = copy.deepcopy(model).to(DTYPES[dtype]).eval()
    for p in m.parameters():
        p.requires_grad_(False)
    m.dtype_name = dtype
    m.metadata_json = json.dumps({
        "format": FORMAT_NAME, "format_version": FORMAT_VERSION,
        "units": {"energy": "eV", "length": "Angstrom", "force": "eV/Angstrom", "stress": "eV/Angstrom^3"},
        "versions": _versions(), "hyperparameters": model.hyperparameters,
        "provenance": provenance or {},
    }, sort_keys=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with warnings.catch_warnings():   # TorchScript is what libtorch/LAMMPS load; silence its deprecation notice
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.script(m)
        torch.jit.save(scripted, str(tmp))
    tmp.replace(path)   # atomic: a reader never sees a half-written model
    return path


def load_model(path: Union[str, Path]) -> torch.jit.ScriptModule:
    """Load an exported ensemble, checking format name and version.

    Raises:
        ModelFormatError: missing file, corrupt file, or wrong format/version.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(f"mlal model file not found: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # torch raises several types for corrupt archives
        raise ModelFormatError(f"{path} is not a readable TorchScript file (corrupt or truncated?): "
                               f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    name = getattr(module, "format_name", None)
    if name != FORMAT_NAME:
        raise ModelFormatError(f"{path} is a TorchScript file but not an mlal model (format_name={name!r})")
    version = getattr(module, "format_version", None)
    if version != FORMAT_VERSION:
        raise ModelFormatError(f"{path} has mlal format version {version}; this mlal reads version "
                               f"{FORMAT_VERSION}. Re-export it with `mlal deploy CHECKPOINT -o model.pt`.")
    module.eval()
    return module


def model_metadata(module: torch.jit.ScriptModule) -> Dict[str, Any]:
    """The decoded ``metadata_json`` of a loaded model."""
    return json.loads(module.metadata_json)
