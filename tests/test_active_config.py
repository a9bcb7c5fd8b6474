"""Campaign files: bad keys and values give errors that name the key."""
from __future__ import annotations

import copy

import pytest

from mlal.active.config import ConfigError, load_config

GOOD = {
    "species": ["Cu"],
    "engine": "lammps",
    "oracle": {"type": "emt"},
    "initial": {"random": {"n": 2}},
    "lammps": {"system": "units metal\natom_style atomic", "dynamics": "timestep 0.001", "steps": 10},
}


def bad(**changes):
    cfg = copy.deepcopy(GOOD)
    for path, value in changes.items():
        keys = path.split("__")
        d = cfg
        for k in keys[:-1]:
            d = d.setdefault(k, {})
        if value is KeyError:
            d.pop(keys[-1])
        else:
            d[keys[-1]] = value
    return cfg


def test_good_config_gets_defaults(tmp_path):
    cfg = load_config(dict(GOOD, workdir=str(tmp_path / "w")))
    assert cfg["selection"]["gamma_break"] > cfg["selection"]["gamma_select"]
    assert cfg["lammps"]["check_every"] == 10 and cfg["budget"]["max_oracle_calls"] > 0


@pytest.mark.parametrize("changes, key", [
    ({"selction": {}}, "selction: unknown key (did you mean 'selection'?)"),
    ({"species": KeyError}, "species: required key is missing"),
    ({"species": ["Xx"]}, "species: 'Xx' is not a chemical element"),
    ({"oracle__type": "dft"}, "oracle.type"),
    ({"oracle__pair_style": "sw"}, "oracle.pair_style: unknown key for oracle type 'emt'"),
    ({"oracle__workers": 0}, "oracle.workers"),
    ({"oracle__timeout": -1}, "oracle.timeout"),
    ({"lammps__steps": "many"}, "lammps.steps: must be an integer"),
    ({"lammps__steps": 0}, "lammps.steps: must be > 0"),
    ({"lammps__system": "units real"}, "lammps.system: must contain `units metal`"),
    ({"lammps__dynamic": "x"}, "lammps.dynamic: unknown key (did you mean 'dynamics'?)"),
    ({"lammps__passes": 0}, "lammps.passes: must be > 0"),
    ({"lammps__passes": 2}, "lammps.passes: 2 passes draw other velocities each"),
    ({"lammps__passes": 2, "lammps__system": "units metal\nvelocity all create 300 ${s}"},
     "lammps.passes: 2 passes draw other velocities each (the `velocity ... create T SEED` seed + 7919 per "
     "pass), but lammps.system: `velocity all create 300 ${s}`: the seed '${s}' is not a literal integer"),
    ({"lammps": KeyError}, "lammps: required section"),
    ({"selection": {"gamma_select": 3.0, "gamma_break": 2.0}}, "selection.gamma_break: must be > selection.gamma_select"),
    ({"selection": {"gamma_select": 0.5}}, "selection.gamma_select: must be >= 1"),
    ({"selection": {"method": "random"}}, "selection.method"),
    ({"selection": {"method": "sigma"}}, "selection.sigma_select: required"),
    ({"selection": {"cluster": {"mode": "cube"}}}, "selection.cluster.mode"),
    ({"initial": {}}, "initial: give 'structures'"),
    ({"initial": {"structures": "no_such_file.xyz"}}, "initial.structures: no such file"),
    ({"initial": {"random": {"n": 0}}}, "initial.random.n"),
    ({"initial": {"random": {"n": 2, "composition": {"Ni": 1.0}}}},
     "initial.random.composition: 'Ni' is not among the species"),
    ({"initial": {"random": {"n": 2, "composition": {"Cu": -1.0}}}}, "initial.random.composition: fractions"),
    ({"training": {"epoch": 3}}, "training.epoch: unknown training setting (did you mean 'epochs'?)"),
    ({"retraining": {"cutoff": -1.0}}, "retraining.cutoff"),
    ({"retraining": {"warm_start": "no"}}, "retraining.warm_start: must be true or false"),
    ({"training": {"warm_start": False}}, "training.warm_start: unknown training setting"),
    ({"training": {"species": ["Cu"]}}, "training.species"),
    ({"budget": {"max_oracle_calls": -2}}, "budget.max_oracle_calls"),
    ({"budget": {"when_spent": "pause"}}, "budget.when_spent"),
    ({"engine": "gromacs"}, "engine"),
])
def test_bad_config_names_the_key(changes, key, tmp_path):
    cfg = bad(**changes)
    cfg["workdir"] = str(tmp_path / "w")
    with pytest.raises(ConfigError) as e:
        load_config(cfg)
    assert key in str(e.value), str(e.value)


def test_yaml_errors_name_the_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("species: [Cu\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_config(tmp_path / "missing.yaml")


def test_cli_reports_config_error(tmp_path, capsys):
    from mlal.cli import main
    p = tmp_path / "c.yaml"
    p.write_text("species: [Cu]\noracle: {type: emt}\ninitial: {random: {n: 2}}\nengine: ase\n"
                 "ase: {script: nope.py, steps: 5}\n")
    assert main(["learn", str(p)]) == 2
    err = capsys.readouterr().err
    assert "ase.script: no such file" in err


def test_random_composition_is_exact_and_on_random_sites():
    from mlal.active.structures import random_structures
    cells = random_structures(["Cu", "Ni"], n=4, lattice="fcc", a=3.6, supercell=[2, 2, 2],
                              composition={"Cu": 0.5, "Ni": 0.5}, seed=3)
    for a in cells:
        assert a.get_chemical_symbols().count("Cu") == 16 == a.get_chemical_symbols().count("Ni")
    assert len({tuple(a.get_chemical_symbols()) for a in cells}) == 4      # different decorations
    odd = random_structures(["Cu", "Ni"], n=1, lattice="fcc", a=3.6, supercell=[1, 1, 1],
                            composition={"Cu": 1, "Ni": 2}, seed=0)[0]
    assert sorted(odd.get_chemical_symbols()) == ["Cu", "Ni", "Ni", "Ni"]   # 4/3 and 8/3 -> 1 and 3
    free = random_structures(["Cu", "Ni"], n=6, lattice="fcc", a=3.6, supercell=[2, 2, 2], seed=3)
    assert len({a.get_chemical_symbols().count("Cu") for a in free}) > 1  # Dirichlet draws vary
