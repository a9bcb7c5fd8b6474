"""The campaign configuration file (YAML) and its checking.

Every problem is reported as a :class:`ConfigError` that names the key, e.g.
``selection.gamma_break: must be a number > selection.gamma_select (2.0), got 1.5``.
See ``examples/otf_*/*.yaml`` for complete files, and :data:`SCHEMA` for every key.
"""
from __future__ import annotations

import copy
import difflib
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import yaml

from .oracles import ORACLE_TYPES, oracle_keys


class ConfigError(ValueError):
    """The campaign file is wrong; the message names the key."""


_ANY = object()

# section -> key -> (type(s), default, required); nested dicts are checked by hand below.
SCHEMA: Dict[str, Dict[str, Any]] = {
    "": {
        "name": (str, None, False), "species": (list, None, True), "workdir": (str, None, False),
        "seed": (int, 0, False), "engine": (str, "lammps", False), "oracle": (dict, None, True),
        "initial": (dict, None, True), "validation": (dict, None, False), "lammps": (dict, None, False),
        "ase": (dict, None, False), "selection": (dict, {}, False), "training": (dict, {}, False),
        "retraining": (dict, {}, False), "final_training": (dict, None, False), "budget": (dict, {}, False), "report": (bool, True, False),
        "progress": (bool, True, False),
    },
    "initial": {"structures": ((str, list), None, False), "random": (dict, None, False)},
    "validation": {"structures": ((str, list), None, False), "random": (dict, None, False),
                   "oracle_md": (dict, None, False)},
    "random": {"n": (int, 8, False), "lattice": (str, None, False), "a": ((int, float), None, False),
               "supercell": (list, [1, 1, 1], False), "rattle": ((int, float), 0.1, False),
               "strain": ((int, float), 0.03, False), "vacancies": (int, 0, False), "seed": (int, 0, False),
               "species": (list, None, False), "composition": (dict, None, False)},
    "oracle_md": {"steps": (int, None, True), "every": (int, None, True), "seed": (int, 12345, False),
                  "system": (str, None, False), "dynamics": (str, None, False)},
    "lammps": {"system": (str, None, True), "dynamics": (str, None, True), "steps": (int, None, True),
               "check_every": (int, 10, False), "thermo_every": (int, 100, False),
               "checkpoint_every": (int, 1000, False), "backend": (str, "auto", False),
               "cmdargs": (list, [], False), "passes": (int, 1, False)},
    "ase": {"script": (str, None, True), "steps": (int, None, True), "check_every": (int, 10, False),
            "thermo_every": (int, 100, False), "checkpoint_every": (int, 1000, False),
            "passes": (int, 1, False)},
    "selection": {"gamma_select": ((int, float), 2.0, False), "gamma_break": ((int, float), 5.0, False),
                  "gamma_runaway": ((int, float, type(None)), None, False),
                  "sigma_select": ((int, float, type(None)), None, False),
                  "sigma_break": ((int, float, type(None)), None, False),
                  "method": (str, "maxvol", False), "batch_size": (int, 8, False),
                  "max_candidates": (int, 100, False), "final_learning": (bool, True, False),
                  "cluster": (dict, None, False)},
    "cluster": {"max_atoms": (int, 200, False), "radius": ((int, float), 6.0, False),
                "mode": (str, "sphere", False)},
    "budget": {"max_oracle_calls": (int, 1000, False), "max_iterations": (int, 1000, False),
               "max_wall_time": ((int, float), None, False), "max_rollbacks": (int, 3, False),
               "when_spent": (str, "stop", False)},
}


def _type_name(t) -> str:
    if isinstance(t, tuple):
        return " or ".join(_type_name(x) for x in t if x is not type(None))
    return {str: "a string", int: "an integer", float: "a number", list: "a list", dict: "a mapping",
            bool: "true/false"}.get(t, t.__name__)


def _check_section(d: Dict[str, Any], section: str, where: str) -> Dict[str, Any]:
    if not isinstance(d, dict):
        raise ConfigError(f"{where or 'the file'}: must be a mapping of keys, got {type(d).__name__}")
    schema = SCHEMA[section]
    out = {}
    for k, v in d.items():
        if k not in schema:
            close = difflib.get_close_matches(str(k), list(schema), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f" (known keys: {', '.join(schema)})"
            raise ConfigError(f"{where + '.' if where else ''}{k}: unknown key{hint}")
    for k, (types, default, required) in schema.items():
        key = f"{where + '.' if where else ''}{k}"
        if k not in d or d[k] is None:
            if required:
                raise ConfigError(f"{key}: required key is missing")
            out[k] = copy.deepcopy(default)
            continue
        v = d[k]
        ok_types = types if isinstance(types, tuple) else (types,)
        if float in ok_types and isinstance(v, int) and not isinstance(v, bool):
            v = float(v) if int not in ok_types else v
        if (isinstance(v, bool) and bool not in ok_types) or not isinstance(v, ok_types):
            raise ConfigError(f"{key}: must be {_type_name(types)}, got {v!r}")
        out[k] = v
    return out


def _positive(cfg, section, key, allow_zero=False):
    v = cfg[section][key] if section else cfg[key]
    if v is None:
        return
    if v < 0 or (v == 0 and not allow_zero):
        raise ConfigError(f"{section + '.' if section else ''}{key}: must be {'>= 0' if allow_zero else '> 0'}, got {v}")


TRAINING_SECTIONS = ("training", "retraining", "final_training")   # sections of TrainConfig settings
CAMPAIGN_KEYS = {"retraining": ("warm_start",)}   # keys of a training section that are the campaign's


def trainer_settings(section: str, d: Dict[str, Any]) -> Dict[str, Any]:
    """The TrainConfig settings of the training section ``section`` (``training``,
    ``retraining``, ``final_training``): ``d`` without the campaign's own keys."""
    own = CAMPAIGN_KEYS.get(section, ())
    return {k: v for k, v in d.items() if k not in own}


def _takes_an_argument(script: str, function: str) -> bool:
    """Whether ``def function(...)`` in the Python file ``script`` takes a positional argument
    (read with ``ast``: the script is not run here)."""
    import ast
    try:
        tree = ast.parse(Path(script).read_text(), filename=script)
    except SyntaxError as exc:
        raise ConfigError(f"ase.script: {script} is not valid Python: {exc}") from None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == function:
            a = node.args
            return bool(a.posonlyargs or a.args or a.vararg)
    return False


def load_config(source: Union[str, Path, Dict[str, Any]]) -> Dict[str, Any]:
    """Read and check a campaign file (or dict); returns it with defaults filled in.

    Relative paths in the file are resolved against the file's folder.
    """
    base = Path.cwd()
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"{path}: no such configuration file")
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
        base = path.resolve().parent
        default_workdir = str(base / path.stem)
    else:
        raw = copy.deepcopy(source)
        default_workdir = str(base / "campaign")
    if raw is None:
        raise ConfigError("the configuration file is empty")
    cfg = _check_section(raw, "", "")
    species = cfg["species"]
    if not species or not all(isinstance(s, str) for s in species):
        raise ConfigError(f"species: must be a non-empty list of element symbols, got {species!r}")
    from ase.data import atomic_numbers
    for s in species:
        if s not in atomic_numbers:
            raise ConfigError(f"species: {s!r} is not a chemical element")
    cfg["workdir"] = str(_resolve(cfg["workdir"], base).resolve()) if cfg["workdir"] else default_workdir
    cfg["name"] = cfg["name"] or Path(cfg["workdir"]).name
    cfg["base_dir"] = str(base)

    # oracle
    o = cfg["oracle"]
    kind = o.get("type")
    if kind not in ORACLE_TYPES:
        raise ConfigError(f"oracle.type: must be one of {', '.join(ORACLE_TYPES)}, got {kind!r}")
    allowed = oracle_keys(kind)
    for k in o:
        if k not in allowed:
            close = difflib.get_close_matches(str(k), list(allowed), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"oracle.{k}: unknown key for oracle type {kind!r}{hint}")
    for k, req in allowed.items():
        if req and k not in o:
            raise ConfigError(f"oracle.{k}: required for oracle type {kind!r}")
    if kind == "lammps":
        o.setdefault("species", list(species))
        if not isinstance(o["pair_coeff"], (str, list)):
            raise ConfigError("oracle.pair_coeff: must be a string or a list of strings")
    if "workers" in o and (not isinstance(o["workers"], int) or o["workers"] < 1):
        raise ConfigError(f"oracle.workers: must be an integer >= 1, got {o['workers']!r}")
    if "timeout" in o and o["timeout"] is not None and (not isinstance(o["timeout"], (int, float)) or o["timeout"] <= 0):
        raise ConfigError(f"oracle.timeout: must be a number of seconds > 0, got {o['timeout']!r}")
    if o.get("executor", "process") not in ("process", "thread", "serial", "mpi"):
        raise ConfigError(f"oracle.executor: must be process, thread, serial or mpi, got {o['executor']!r}")

    # initial / validation
    cfg["initial"] = _check_section(cfg["initial"], "initial", "initial")
    if not cfg["initial"]["structures"] and not cfg["initial"]["random"]:
        raise ConfigError("initial: give 'structures' (files) or 'random' (generated structures)")
    _structure_sources(cfg["initial"], "initial", base, cfg["species"])
    if cfg["validation"] is not None:
        cfg["validation"] = _check_section(cfg["validation"], "validation", "validation")
        _structure_sources(cfg["validation"], "validation", base, cfg["species"])
        if cfg["validation"]["oracle_md"] is not None:
            cfg["validation"]["oracle_md"] = _check_section(cfg["validation"]["oracle_md"], "oracle_md",
                                                            "validation.oracle_md")
            if o["type"] != "lammps":
                raise ConfigError("validation.oracle_md: needs a LAMMPS oracle (oracle.type: lammps)")
            if cfg["engine"] != "lammps":
                raise ConfigError("validation.oracle_md: needs engine: lammps")

    # engine
    if cfg["engine"] not in ("lammps", "ase"):
        raise ConfigError(f"engine: must be 'lammps' or 'ase', got {cfg['engine']!r}")
    eng = cfg["engine"]
    if cfg[eng] is None:
        raise ConfigError(f"{eng}: required section for engine: {eng}")
    cfg[eng] = _check_section(cfg[eng], eng, eng)
    for k in ("steps", "check_every", "thermo_every", "checkpoint_every", "passes"):
        _positive(cfg, eng, k)
    if eng == "lammps":
        if cfg["lammps"]["backend"] not in ("auto", "plugin", "python"):
            raise ConfigError(f"lammps.backend: must be auto, plugin or python, got {cfg['lammps']['backend']!r}")
        if "units metal" not in " ".join(cfg["lammps"]["system"].split()):
            raise ConfigError("lammps.system: must contain `units metal` (mlal models use eV and Å)")
        passes = cfg["lammps"]["passes"]
        if passes > 1:
            from .lammps_driver import PASS_SEED_STRIDE, _split, with_velocity_seed
            why = (f"lammps.passes: {passes} passes draw other velocities each (the `velocity ... create T SEED` "
                   f"seed + {PASS_SEED_STRIDE} per pass), but lammps.system")
            system = _split(cfg["lammps"]["system"])
            try:
                shifted = with_velocity_seed(system, offset=PASS_SEED_STRIDE)
            except ValueError as exc:
                raise ConfigError(f"{why}: {exc}") from None
            if shifted == system:          # no seed to shift
                raise ConfigError(f"{why} has no `velocity ... create` command")
    else:
        cfg["ase"]["script"] = str(_resolve(cfg["ase"]["script"], base))
        if not Path(cfg["ase"]["script"]).is_file():
            raise ConfigError(f"ase.script: no such file {cfg['ase']['script']}")
        if cfg["ase"]["passes"] > 1 and not _takes_an_argument(cfg["ase"]["script"], "make_atoms"):
            raise ConfigError(f"ase.passes: {cfg['ase']['passes']} passes need make_atoms(pass_index) in "
                              f"{cfg['ase']['script']}, to draw other velocities for each pass (0, 1, ...)")

    # selection
    sel = cfg["selection"] = _check_section(cfg["selection"], "selection", "selection")
    if sel["method"] not in ("maxvol", "sigma"):
        raise ConfigError(f"selection.method: must be 'maxvol' or 'sigma', got {sel['method']!r}")
    if sel["gamma_select"] < 1.0:
        raise ConfigError(f"selection.gamma_select: must be >= 1 (γ ≤ 1 is interpolation), got {sel['gamma_select']}")
    if sel["gamma_break"] <= sel["gamma_select"]:
        raise ConfigError(f"selection.gamma_break: must be > selection.gamma_select ({sel['gamma_select']}), "
                          f"got {sel['gamma_break']}")
    if sel["gamma_runaway"] is None:
        sel["gamma_runaway"] = 10.0 * sel["gamma_break"]
    if sel["gamma_runaway"] <= sel["gamma_break"]:
        raise ConfigError(f"selection.gamma_runaway: must be > selection.gamma_break ({sel['gamma_break']}), "
                          f"got {sel['gamma_runaway']}")
    if sel["sigma_select"] is not None and sel["sigma_break"] is not None and sel["sigma_break"] <= sel["sigma_select"]:
        raise ConfigError(f"selection.sigma_break: must be > selection.sigma_select ({sel['sigma_select']}), "
                          f"got {sel['sigma_break']}")
    if sel["method"] == "sigma" and sel["sigma_select"] is None:
        raise ConfigError("selection.sigma_select: required when selection.method is 'sigma'")
    _positive(cfg, "selection", "batch_size")
    _positive(cfg, "selection", "max_candidates")
    if sel["cluster"] is not None:
        sel["cluster"] = _check_section(sel["cluster"], "cluster", "selection.cluster")
        if sel["cluster"]["mode"] not in ("sphere", "periodic"):
            raise ConfigError(f"selection.cluster.mode: must be 'sphere' or 'periodic', got {sel['cluster']['mode']!r}")

    # training: checked against the trainer's TrainConfig fields when it is importable
    for sec in TRAINING_SECTIONS:
        if cfg[sec] is not None:
            _check_training(trainer_settings(sec, cfg[sec]), sec)
    cfg["retraining"].setdefault("warm_start", True)
    if not isinstance(cfg["retraining"]["warm_start"], bool):
        raise ConfigError(f"retraining.warm_start: must be true or false, got {cfg['retraining']['warm_start']!r}")
    cfg["budget"] = _check_section(cfg["budget"], "budget", "budget")
    for k in ("max_oracle_calls", "max_iterations", "max_wall_time", "max_rollbacks"):
        _positive(cfg, "budget", k, allow_zero=(k != "max_wall_time"))
    if cfg["budget"]["when_spent"] not in ("stop", "continue"):
        raise ConfigError(f"budget.when_spent: must be 'stop' or 'continue', got {cfg['budget']['when_spent']!r}")
    return cfg


def _resolve(p: str, base: Path) -> Path:
    p = Path(os.path.expanduser(p))
    return p if p.is_absolute() else (base / p)


def _structure_sources(sec: Dict[str, Any], where: str, base: Path, species: List[str]) -> None:
    s = sec.get("structures")
    if s:
        files = [s] if isinstance(s, str) else list(s)
        res = []
        for f in files:
            if not isinstance(f, str):
                raise ConfigError(f"{where}.structures: must be file names, got {f!r}")
            p = _resolve(f, base)
            if not p.exists():
                raise ConfigError(f"{where}.structures: no such file {p}")
            res.append(str(p))
        sec["structures"] = res
    if sec.get("random") is not None:
        sec["random"] = _check_section(sec["random"], "random", f"{where}.random")
        if sec["random"]["n"] < 1:
            raise ConfigError(f"{where}.random.n: must be >= 1, got {sec['random']['n']}")
        comp = sec["random"].get("composition")
        if comp is not None:
            pool = sec["random"].get("species") or species
            bad = [k for k in comp if k not in pool]
            if bad:
                raise ConfigError(f"{where}.random.composition: {bad[0]!r} is not among the species {pool}")
            if any(not isinstance(v, (int, float)) or v < 0 for v in comp.values()) or sum(comp.values()) <= 0:
                raise ConfigError(f"{where}.random.composition: fractions must be numbers >= 0 with a "
                                  f"positive sum, got {comp}")


def trainer_fields() -> Optional[List[str]]:
    """Field names of ``mlal.train.TrainConfig``, or ``None`` when the trainer is not available."""
    try:
        import dataclasses

        from ..train import TrainConfig  # type: ignore
        return [f.name for f in dataclasses.fields(TrainConfig)]
    except Exception:  # noqa: BLE001
        return None


def _check_training(d: Dict[str, Any], where: str) -> None:
    if not isinstance(d, dict):
        raise ConfigError(f"{where}: must be a mapping of TrainConfig fields, got {d!r}")
    names = trainer_fields()
    if names is None:
        return
    for k in d:
        if k not in names:
            close = difflib.get_close_matches(str(k), names, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"{where}.{k}: unknown training setting{hint}; TrainConfig has {', '.join(names)}")
    if "species" in d:
        raise ConfigError(f"{where}.species: set the species once at the top level of the file")
    try:                                   # value checks of the trainer itself
        from ..train import TrainConfig  # type: ignore
        TrainConfig(**d)
    except (TypeError, ValueError) as exc:
        msg = str(exc)
        key = next((k for k in d if repr(k) in msg or f"{k}:" in msg or f"{k} " in msg), None)
        raise ConfigError(f"{where}{'.' + key if key else ''}: {msg}") from None
