"""Loading model files: metadata, and clear errors for bad files."""


import pytest
import torch

from mlal.deploy import ModelFormatError, load_model, model_metadata


def test_metadata_roundtrip(mo_model):
    m = load_model(mo_model)
    meta = model_metadata(m)
    assert list(m.species) == ["Mo"] and m.cutoff == 5.0 and m.n_members == 3
    assert m.dtype_name == "float64" and m.format_version == 1
    assert meta["versions"]["torch"] == torch.__version__
    assert meta["units"]["energy"] == "eV"
    assert meta["provenance"]["kind"] == "random test model"


def test_missing_file(tmp_path):
    with pytest.raises(ModelFormatError, match="not found"):
        load_model(tmp_path / "nope.pt")


def test_corrupt_file(mo_model, tmp_path):
    data = mo_model.read_bytes()
    bad = tmp_path / "truncated.pt"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFormatError, match="corrupt or truncated"):
        load_model(bad)
    text = tmp_path / "text.pt"
    text.write_text("hello")
    with pytest.raises(ModelFormatError, match="not a readable TorchScript"):
        load_model(text)


def test_wrong_format_and_version(tmp_path):
    class Other(torch.nn.Module):
        format_name: str
        format_version: int

        def __init__(self, name, version):
            super().__init__()
            self.format_name = name
            self.format_version = version

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    torch.jit.save(torch.jit.script(Other("something-else", 1)), str(tmp_path / "a.pt"))
    with pytest.raises(ModelFormatError, match="not an mlal model"):
        load_model(tmp_path / "a.pt")
    torch.jit.save(torch.jit.script(Other("mlal-ensemble", 99)), str(tmp_path / "b.pt"))
    with pytest.raises(ModelFormatError, match="version 99"):
        load_model(tmp_path / "b.pt")
