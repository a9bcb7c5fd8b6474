"""Trainer: loss goes down, reproducibility, resume, missing labels, export, γ, warm start, config."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

from ase_calculators import MlalCalculator
from mlal.data.graph import collate, to_graph
from mlal.data.io import Labelled
from mlal.deploy import load_model
from mlal.train import TrainConfig, load_checkpoint, train
from mlal.train.predict import predict
from mlal.train.checkpoint import build_model
from mlal.train.loss import GPA, batch_loss, errors

torch.set_num_threads(1)

TINY = dict(cutoff=4.0, n_members=2, n_basis=5, channels=[4, 2, 2, 1], latent=8, hidden=8, batch_size=4,
            lr=1e-2, epochs=4, max_time=None, valid_fraction=0.25, warmup_epochs=0, dtype="float64",
            final_energy_weight=None)


def emt_structures(n=12, seed=0, stress=True, symbol="Cu"):
    """Rattled, strained 8-atom fcc cells labelled with EMT (optionally without stress)."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        a = bulk(symbol, "fcc", a=3.6 * (1 + 0.02 * rng.standard_normal()), cubic=True) * (2, 1, 1)
        a.positions += 0.1 * rng.standard_normal(a.positions.shape)
        a.calc = EMT()
        e, f = a.get_potential_energy(), a.get_forces()
        s = a.get_stress() if stress else None
        a.calc = None
        out.append(Labelled(atoms=a, energy=float(e), forces=f, stress=s, source=f"emt:{k}"))
    return out


@pytest.fixture(scope="module")
def data():
    return emt_structures(12)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data):
    out = tmp_path_factory.mktemp("trained")
    return train(data, TrainConfig(**dict(TINY, epochs=12)), out, progress=False), out


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_training_reduces_loss_and_beats_untrained(tmp_path, data, trained):
    result, out = trained
    untrained = train(data, TrainConfig(**dict(TINY, epochs=0)), tmp_path / "untrained", progress=False)
    assert result.metrics["epochs"] == 12
    index = {"Cu": 0}
    graphs = [to_graph(d, index, 4.0) for d in data]
    e_trained, e_untrained = errors(result.model, graphs), errors(untrained.model, graphs)
    assert e_trained["force_mae"] < 0.7 * e_untrained["force_mae"]
    assert e_trained["energy_mae"] < e_untrained["energy_mae"]
    log = (out / "log.csv").read_text().splitlines()
    assert len(log) == 13 and log[0].startswith("epoch,")
    train_loss = [float(line.split(",")[3]) for line in log[1:]]
    assert min(train_loss[-3:]) < 0.5 * train_loss[0]
    assert (out / "learning_curve.png").stat().st_size > 1000
    assert result.metrics["evaluated_on"] == "valid" and result.metrics["n_valid"] == 3


def test_reproducible_from_seed(tmp_path, data):
    cfg = TrainConfig(**dict(TINY, epochs=3, bootstrap=True))
    a = train(data, cfg, tmp_path / "a", progress=False)
    b = train(data, cfg, tmp_path / "b", progress=False)
    c = train(data, cfg.replace(seed=1), tmp_path / "c", progress=False)
    wa, wb, wc = _weights(a.model), _weights(b.model), _weights(c.model)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not torch.equal(wa["head_w1"], wc["head_w1"])
    assert a.metrics["energy_mae"] == b.metrics["energy_mae"]


def test_members_differ(trained):
    m = trained[0].model
    assert not torch.allclose(m.head_w1[0], m.head_w1[1])


def test_resume_continues_like_uninterrupted(tmp_path, data):
    cfg = TrainConfig(**dict(TINY, epochs=6, lr_schedule="constant"))
    full = train(data, cfg, tmp_path / "full", progress=False)
    first = train(data, cfg.replace(epochs=3), tmp_path / "split", progress=False)
    assert first.metrics["epochs"] == 3
    _, _, state = load_checkpoint(tmp_path / "split" / "checkpoint.pt")
    assert state["epoch"] == 3 and len(state["history"]) == 3
    second = train(data, cfg, tmp_path / "split", progress=False, resume=True)
    assert second.metrics["epochs"] == 6
    assert len((tmp_path / "split" / "log.csv").read_text().splitlines()) == 7
    wf, ws = _weights(full.model), _weights(second.model)
    for k in wf:
        assert torch.allclose(wf[k], ws[k], rtol=1e-9, atol=1e-12), k


def test_missing_stress_is_skipped(tmp_path):
    with_s = emt_structures(4, seed=1)
    without = emt_structures(4, seed=1, stress=False)
    cfg = TrainConfig(**dict(TINY, stress_weight=1.0))
    model = build_model(cfg, ["Cu"]).double()
    g_with = [to_graph(d, {"Cu": 0}, 4.0) for d in with_s]
    g_without = [to_graph(d, {"Cu": 0}, 4.0) for d in without]
    loss_without, parts = batch_loss(model, collate(g_without), cfg)
    assert "s" not in parts and torch.isfinite(loss_without)
    loss_no_weight, _ = batch_loss(model, collate(g_with), cfg.replace(stress_weight=0.0))
    assert torch.allclose(loss_without, loss_no_weight)
    loss_with, parts = batch_loss(model, collate(g_with), cfg)
    assert "s" in parts and float(loss_with.detach()) > float(loss_without.detach())
    # half labelled: only the labelled half enters the stress term
    mixed = g_with[:2] + g_without[2:]
    _, parts_mixed = batch_loss(model, collate(mixed), cfg)
    _, parts_half = batch_loss(model, collate(g_with[:2]), cfg)
    assert parts_mixed["s"] == pytest.approx(parts_half["s"], rel=1e-9)
    # a Cu set without any stress trains and reports no stress error
    r = train(without + emt_structures(4, seed=2, stress=False), TrainConfig(**dict(TINY, epochs=2)),
              tmp_path / "nostress", progress=False)
    assert np.isnan(r.metrics["stress_mae"]) and np.isfinite(r.metrics["force_mae"])


def test_rotating_member_loss_is_mean_and_one_member(data):
    """``member=j``: energies of all members, forces and stress of the ensemble mean and member j, half each."""
    cfg = TrainConfig(**dict(TINY, n_members=3, stress_weight=0.5))
    model = build_model(cfg, ["Cu"]).double()
    b = collate([to_graph(d, {"Cu": 0}, 4.0) for d in data[:3]])
    every = {k: v.detach() for k, v in predict(model, b, members=True).items()}
    two = predict(model, b, members=2)
    for key in ("forces", "stress"):
        assert torch.allclose(two[key][0], every[key].mean(0), rtol=1e-12, atol=1e-12), key
        assert torch.allclose(two[key][1], every[key][2], rtol=1e-12, atol=1e-12), key
    loss, parts = batch_loss(model, b, cfg, member=2)
    n = b.n_atoms.double()
    le = (((every["energy"] - b.energy) / n) ** 2).mean()
    lf = 0.5 * (((every["forces"].mean(0) - b.forces) ** 2).mean() + ((every["forces"][2] - b.forces) ** 2).mean())
    ls = 0.5 * (((every["stress"].mean(0) - b.stress) * GPA) ** 2).mean() \
        + 0.5 * (((every["stress"][2] - b.stress) * GPA) ** 2).mean()
    assert parts["e"] == pytest.approx(float(le), rel=1e-10)
    assert parts["f"] == pytest.approx(float(lf), rel=1e-10)
    assert parts["s"] == pytest.approx(float(ls), rel=1e-10)
    assert float(loss.detach()) == pytest.approx(cfg.energy_weight * float(le) + float(lf) + 0.5 * float(ls), rel=1e-10)
    # all members: the mean over members of each member's own errors
    _, parts_all = batch_loss(model, b, cfg)
    assert parts_all["f"] == pytest.approx(float(((every["forces"] - b.forces) ** 2).mean()), rel=1e-10)
    with pytest.raises(ValueError, match="force_members"):
        TrainConfig(force_members="some")


def test_force_huber_delta_counts_large_force_residuals_linearly(data):
    """``force_huber_delta``: residuals up to delta squared (as the MSE), beyond it ``2·delta·|x| − delta²``."""
    from mlal.train.loss import squared_or_huber
    x = torch.tensor([-3.0, -0.1, 0.0, 0.05, 0.2, 2.0], dtype=torch.float64)
    assert torch.equal(squared_or_huber(x, None), x * x)
    assert torch.allclose(squared_or_huber(x, 0.1), torch.tensor([0.59, 0.01, 0.0, 0.0025, 0.03, 0.39],
                                                                dtype=torch.float64), rtol=1e-12, atol=0)
    cfg = TrainConfig(**dict(TINY, n_members=3))
    model = build_model(cfg, ["Cu"]).double()
    b = collate([to_graph(d, {"Cu": 0}, 4.0) for d in data[:3]])
    every = {k: v.detach() for k, v in predict(model, b, members=True).items()}
    df = every["forces"].mean(0) - b.forces
    delta = float(df.abs().median())                      # half the residuals beyond it
    _, plain = batch_loss(model, b, cfg, member=0)
    _, far = batch_loss(model, b, cfg.replace(force_huber_delta=1e6), member=0)
    loss, huber = batch_loss(model, b, cfg.replace(force_huber_delta=delta), member=0)
    assert far["f"] == pytest.approx(plain["f"], rel=1e-12) and far["e"] == huber["e"] == plain["e"]
    h = lambda r: torch.where(r.abs() <= delta, r * r, 2 * delta * r.abs() - delta * delta).mean()
    want = 0.5 * (h(df) + h(every["forces"][0] - b.forces))
    assert huber["f"] == pytest.approx(float(want), rel=1e-10) and huber["f"] < 0.9 * plain["f"]
    loss.backward()                                       # differentiable through the kink
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    with pytest.raises(ValueError, match="force_huber_delta"):
        TrainConfig(force_huber_delta=0.0)


@pytest.mark.parametrize("member", [None, 1])
def test_step_split_over_processes_equals_whole_batch(data, member):
    """Splitting a batch over processes gives the whole batch's loss and gradient (with structure weights)."""
    from mlal.train.parallel import GradientStep, split_batch
    graphs = [to_graph(d, {"Cu": 0}, 4.0) for d in data[:5]]
    graphs[1].stress = None                      # a missing label in one part only
    cfg = TrainConfig(**dict(TINY, n_members=3, stress_weight=0.5, batch_size=5))
    model = build_model(cfg, ["Cu"]).double()
    params = list(model.parameters())
    w = torch.tensor(np.random.default_rng(0).integers(0, 3, (4, 5)), dtype=torch.float64)   # 3 members, the mean
    loss, _ = batch_loss(model, collate(graphs), cfg, w, member)
    ref = torch.autograd.grad(loss, params, allow_unused=True)
    with torch.no_grad():                        # the workers must see parameters changed after they started
        model.latent_bias.add_(0.1)
    for processes in (1, 2, 3):
        step = GradientStep(model, graphs, cfg.replace(processes=processes), torch.float64)
        with torch.no_grad():
            model.latent_bias.sub_(0.1)
        assert len(split_batch(graphs, processes)) == processes == step.processes
        got = step([0, 1, 2, 3, 4], w, member)
        step.close()
        with torch.no_grad():
            model.latent_bias.add_(0.1)
        assert got == pytest.approx(float(loss.detach()), rel=1e-12)
        for p, r in zip(params, ref):
            assert (p.grad is None) == (r is None)
            if r is not None:
                assert torch.allclose(p.grad, r, rtol=1e-10, atol=1e-14)
    with pytest.raises(ValueError, match="processes"):
        TrainConfig(processes=-1)


def _log_rows(out):
    """``out/log.csv`` as a list of rows of floats."""
    import csv
    with open(out / "log.csv") as f:
        return [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]


def test_energy_weight_override_reaches_the_workers(data):
    """``GradientStep(..., energy_weight=w)`` is the loss with that energy weight, in every process."""
    from mlal.train.parallel import GradientStep
    graphs = [to_graph(d, {"Cu": 0}, 4.0) for d in data[:4]]
    cfg = TrainConfig(**dict(TINY, stress_weight=0.5))
    model = build_model(cfg, ["Cu"]).double()
    params = list(model.parameters())
    loss, _ = batch_loss(model, collate(graphs), cfg.replace(energy_weight=123.0))
    ref = torch.autograd.grad(loss, params, allow_unused=True)
    plain = float(batch_loss(model, collate(graphs), cfg)[0].detach())
    assert abs(plain - float(loss.detach())) > 1e-6 * abs(plain)      # the override matters here
    for processes in (1, 2):
        step = GradientStep(model, graphs, cfg.replace(processes=processes), torch.float64)
        got = step([0, 1, 2, 3], None, None, energy_weight=123.0)
        step.close()
        assert got == pytest.approx(float(loss.detach()), rel=1e-12)
        for p, r in zip(params, ref):
            if r is not None:
                assert torch.allclose(p.grad, r, rtol=1e-10, atol=1e-14)


def test_final_stage_switches_the_energy_weight_and_resumes(tmp_path, data):
    """The last ``final_fraction`` of the epochs ramps the loss up to ``final_energy_weight`` and
    validates with it; the best epoch is chosen by that criterion; a resumed run stays in the stage."""
    cfg = TrainConfig(**dict(TINY, epochs=6, lr_schedule="constant", final_energy_weight=5000.0,
                             final_fraction=0.5))
    full = train(data, cfg, tmp_path / "full", progress=False)
    rows = _log_rows(tmp_path / "full")
    assert len(rows) == 6
    for r in rows:
        w = 5000.0 if r["epoch"] > 3 else cfg.energy_weight      # epochs 4..6: progress >= 0.5
        want = w * (r["valid_energy_mae"] * 1e-3) ** 2 + r["valid_force_mae"] ** 2 \
            + cfg.stress_weight * r["valid_stress_mae"] ** 2
        assert r["valid_loss"] == pytest.approx(want, rel=1e-4), r     # the log keeps 6 digits
    # the loss's weight: 30 until the stage, then geometric up to 5000 over its first half
    ramp = [30.0, 30.0, 30.0, 30.0, 30.0 * (5000.0 / 30.0) ** (2.0 / 3.0), 5000.0]
    assert [r["energy_weight"] for r in rows] == pytest.approx(ramp, rel=1e-5)
    # the kept epoch is the best by the final criterion, first-stage epochs re-scored by it
    final = [5000.0 * (r["valid_energy_mae"] * 1e-3) ** 2 + r["valid_force_mae"] ** 2
             + cfg.stress_weight * r["valid_stress_mae"] ** 2 for r in rows]
    assert full.metrics["best_epoch"] == int(np.argmin(final)) + 1
    # stopped after epoch 4, inside stage two (which starts at the same epoch: 3/4 >= 1 - 0.25)
    train(data, cfg.replace(epochs=4, final_fraction=0.25), tmp_path / "split", progress=False)
    _, _, state = load_checkpoint(tmp_path / "split" / "checkpoint.pt")
    assert state["final_stage"] is True
    second = train(data, cfg, tmp_path / "split", progress=False, resume=True)
    wf, ws = _weights(full.model), _weights(second.model)
    for k in wf:
        assert torch.allclose(wf[k], ws[k], rtol=1e-9, atol=1e-12), k
    with pytest.raises(ValueError, match="final_fraction"):
        TrainConfig(final_fraction=1.0)


def test_final_stage_keeps_the_first_stage_best_unless_beaten(tmp_path, data, monkeypatch):
    """A final stage that only makes things worse (here one that climbs the loss) does not replace
    the first stage's best: that one is re-scored, not forgotten."""
    import mlal.train.parallel as parallel
    import mlal.train.schedule as schedule
    plain_weight, plain_loss = schedule.energy_weight, parallel.batch_loss
    marker = 1234.0                                # the stage's loss weight, recognised below

    def climbing_loss(model, b, cfg, *args):
        loss, out = plain_loss(model, b, cfg, *args)
        return (-loss if cfg.energy_weight == marker else loss), out
    monkeypatch.setattr(schedule, "energy_weight", lambda cfg, progress:
                        (marker, True) if plain_weight(cfg, progress)[1] else plain_weight(cfg, progress))
    monkeypatch.setattr(parallel, "batch_loss", climbing_loss)
    cfg = TrainConfig(**dict(TINY, epochs=8, lr_schedule="constant", final_energy_weight=30.0,
                             final_fraction=0.5, processes=1))
    res = train(data, cfg, tmp_path, progress=False)
    rows = _log_rows(tmp_path)
    assert [r["energy_weight"] for r in rows[4:]] == [marker] * 4
    score = [r["valid_loss"] for r in rows]
    assert min(score[4:]) > min(score[:4])         # the stage made things worse ...
    assert res.metrics["best_epoch"] <= 4          # ... so the first stage's best is kept


def test_early_stopping_waits_for_the_final_stage(tmp_path, data, monkeypatch):
    """Patience that runs out in the first stage does not end the run before the final stage
    (mlearn Mo: stopped at 77% of the run, the energy stage never came); in the stage it applies."""
    import mlal.train.trainer as trainer
    monkeypatch.setattr(trainer, "validation_score", lambda vm, cfg: 1.0)    # never improves
    base = dict(TINY, epochs=12, lr_schedule="constant", patience=2, processes=1)
    plain = train(data, TrainConfig(**base), tmp_path / "plain", progress=False)
    assert len(_log_rows(tmp_path / "plain")) == 3 and plain.metrics["stopped"] == "early_stopping"
    cfg = TrainConfig(**dict(base, final_energy_weight=1000.0, final_fraction=0.25))
    res = train(data, cfg, tmp_path / "staged", progress=False)
    rows = _log_rows(tmp_path / "staged")
    # 9 first-stage epochs (the stage starts at 9/12 = 75%, its ramp at the first stage's weight),
    # then the patience of 2 in the stage
    assert len(rows) == 11 and [r["energy_weight"] for r in rows[:10]] == [cfg.energy_weight] * 10
    assert rows[10]["energy_weight"] > cfg.energy_weight
    assert load_checkpoint(tmp_path / "staged" / "checkpoint.pt")[2]["final_stage"] is True
    assert res.metrics["stopped"] == "early_stopping"


def test_killed_trainer_leaves_no_worker_processes(tmp_path):
    """``kill -9`` of the training process: its gradient workers see their pipe close and leave."""
    import os
    import subprocess
    import sys
    import time
    script = tmp_path / "kill.py"
    script.write_text(
        "import os, sys, torch\n"
        f"sys.path.insert(0, {os.path.dirname(__file__)!r})\n"
        "from test_train import emt_structures, TINY\n"
        "from mlal.data.graph import to_graph\n"
        "from mlal.train import TrainConfig\n"
        "from mlal.train.checkpoint import build_model\n"
        "from mlal.train.parallel import GradientStep\n"
        "gs = [to_graph(d, {'Cu': 0}, 4.0) for d in emt_structures(6)]\n"
        "cfg = TrainConfig(**dict(TINY, processes=3, batch_size=6))\n"
        "step = GradientStep(build_model(cfg, ['Cu']).double(), gs, cfg, torch.float64)\n"
        "step(range(6), None, None)\n"
        "print(' '.join(str(p.pid) for p in step.workers), flush=True)\n"
        "os.kill(os.getpid(), 9)\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    pids = [int(p) for p in out.stdout.split()]
    assert len(pids) == 2, out.stderr
    deadline = time.time() + 20
    alive = pids
    while alive and time.time() < deadline:
        time.sleep(0.2)
        alive = [p for p in pids if os.path.exists(f"/proc/{p}") and "zombie" not in
                 open(f"/proc/{p}/status").read().lower()]
    assert not alive


def test_worker_failure_is_reported(data, monkeypatch):
    """An exception in a gradient worker reaches the trainer with the worker's traceback."""
    import os
    from mlal.train import parallel
    main, real = os.getpid(), parallel._part_gradient

    def failing_in_workers(*args, **kwargs):
        if os.getpid() != main:
            raise FloatingPointError("boom in a worker")
        return real(*args, **kwargs)

    monkeypatch.setattr(parallel, "_part_gradient", failing_in_workers)
    graphs = [to_graph(d, {"Cu": 0}, 4.0) for d in data[:4]]
    cfg = TrainConfig(**dict(TINY, processes=2))
    step = parallel.GradientStep(build_model(cfg, ["Cu"]).double(), graphs, cfg, torch.float64)
    with pytest.raises(RuntimeError, match="FloatingPointError: boom in a worker"):
        step(range(4), None, None)
    step.close()


def test_validation_score_uses_mean_absolute_errors():
    """Best weights are chosen on MAEs (loss weights and units): an outlier's squared error does not decide."""
    from mlal.train.loss import validation_score
    cfg = TrainConfig(energy_weight=1000.0, force_weight=1.0, stress_weight=0.01)
    early = {"energy_mae": 5.65, "force_mae": 0.0966, "stress_mae": 0.486, "loss_energy": 6.0e-5,
             "loss_force": 0.020, "loss_stress": 0.4}        # Ge, epoch 45: lower RMSE by luck
    late = {"energy_mae": 4.68, "force_mae": 0.0573, "stress_mae": 0.289, "loss_energy": 9.0e-5,
            "loss_force": 0.008, "loss_stress": 0.2}         # Ge, epoch 343
    assert validation_score(late, cfg) < validation_score(early, cfg)
    assert validation_score(late, cfg) == pytest.approx(1000 * 4.68e-3 ** 2 + 0.0573 ** 2 + 0.01 * 0.289 ** 2)
    no_stress = dict(late, stress_mae=float("nan"))          # a label the data lacks is left out
    assert validation_score(no_stress, cfg) == pytest.approx(1000 * 4.68e-3 ** 2 + 0.0573 ** 2)


def test_exported_model_equals_eager_best_weights(trained, data):
    result, out = trained
    module = load_model(result.model_path)
    assert module.dtype_name == "float64"
    best, _, state = load_checkpoint(result.checkpoint)
    assert state["done"]
    g = collate([to_graph(d, {"Cu": 0}, 4.0) for d in data[:3]])
    n = int(g.species.shape[0])
    ref = result.model(g.species, g.edge_index, g.edge_vec, n, True)
    got = module(g.species, g.edge_index, g.edge_vec, n, True)
    from_ckpt = best(g.species, g.edge_index, g.edge_vec, n, True)
    for key in ("atom_energy", "edge_grad", "member_edge_grad", "gamma"):
        assert torch.allclose(ref[key], got[key], rtol=1e-12, atol=1e-12), key
        assert torch.allclose(ref[key], from_ckpt[key], rtol=1e-12, atol=1e-12), key
    import json
    meta = json.loads(module.metadata_json)
    assert meta["provenance"]["config"]["epochs"] == 12
    assert meta["provenance"]["data"]["n_structures"] == len(data)


def test_gamma_at_most_one_on_training_atoms(trained, data):
    result, _ = trained
    g = collate([to_graph(d, {"Cu": 0}, 4.0) for d in data])
    n = int(g.species.shape[0])
    gamma = result.model(g.species, g.edge_index, g.edge_vec, n, True)["gamma"]
    assert float(gamma.max()) <= 1 + 1e-6
    assert float(gamma.max()) > 0.5          # the active set is built from these atoms


def test_warm_start_from_init(tmp_path, trained):
    result, out = trained
    new = emt_structures(8, seed=5)
    cfg = TrainConfig(**dict(TINY, epochs=1, lr=1e-3))
    warm = train(new, cfg, tmp_path / "warm", init=result.model_path, progress=False)
    cold = train(new, cfg, tmp_path / "cold", progress=False)
    assert torch.equal(warm.model.reference_energy, result.model.reference_energy)
    assert torch.equal(warm.model.feature_std, result.model.feature_std)
    graphs = [to_graph(d, {"Cu": 0}, 4.0) for d in new]
    assert errors(warm.model, graphs)["force_mae"] < errors(cold.model, graphs)["force_mae"]
    # from the checkpoint as well
    again = train(new, cfg, tmp_path / "warm2", init=result.checkpoint, progress=False)
    assert again.model.n_members == result.model.n_members
    with pytest.raises(ValueError, match="Au"):
        train(emt_structures(4, symbol="Au"), cfg, tmp_path / "bad", init=result.model_path, progress=False)


def test_r_min_travels_through_training_export_deploy_and_warm_start(tmp_path, data):
    from mlal.train.checkpoint import deploy_checkpoint
    cfg = TrainConfig(**dict(TINY, epochs=2, r_min=1.5))
    res = train(data, cfg, tmp_path / "a", progress=False)
    again = deploy_checkpoint(res.checkpoint, tmp_path / "again.pt")
    warm = train(data[:6], TrainConfig(**dict(TINY, epochs=1)), tmp_path / "w", init=res.model_path, progress=False)
    a = data[0].atoms.copy()
    energies = []
    for path in (res.model_path, again):
        assert load_model(path).r_min == 1.5
        a.calc = MlalCalculator(str(path))
        energies.append(a.get_potential_energy())
    assert energies[0] == pytest.approx(energies[1], abs=1e-10)
    assert load_model(warm.model_path).r_min == 1.5      # the warm start keeps the model's basis
    with pytest.raises(ValueError, match="r_min"):
        TrainConfig(**dict(TINY, r_min=4.0))


def test_atoms_input_and_species_inference(tmp_path):
    atoms = []
    for d in emt_structures(4, seed=3):
        a = d.atoms.copy()
        a.calc = SinglePointCalculator(a, energy=d.energy, forces=d.forces, stress=d.stress)
        atoms.append(a)
    r = train(atoms, TrainConfig(**dict(TINY, epochs=1)), tmp_path / "atoms", progress=False)
    assert r.model.species == ["Cu"] and r.model_path.is_file()


def test_config_type_weights_weigh_the_structures_of_a_type(tmp_path):
    """``config_type_weights`` multiply a type's labels in the loss (the ensemble mean's forces
    too): at weight 0 a type's labels change nothing; at weight 1 wrong ones spoil the fit."""
    import dataclasses
    from mlal.train.trainer import _structure_weights
    cfg = TrainConfig(**dict(TINY, n_members=2, config_type_weights={"b": 3.0}))
    assert np.array_equal(_structure_weights(["a", "b", "a"], 2, cfg), [[1, 3, 1]] * 3)   # 2 members, the mean
    assert _structure_weights(["a", "c"], 2, cfg) is None        # every weight 1: the unweighted loss
    boot = _structure_weights(["a", "b", "a", "b"], 2, cfg.replace(bootstrap=True, config_type_weights={}))
    both = _structure_weights(["a", "b", "a", "b"], 2, cfg.replace(bootstrap=True))
    assert np.array_equal(both, boot * [1, 3, 1, 3])
    for bad in ({"b": -1.0}, {"b": "x"}, ["b"]):
        with pytest.raises(ValueError, match="config_type_weights"):
            TrainConfig(config_type_weights=bad)
    with pytest.raises(ValueError, match="weigh every training structure 0"):
        train(emt_structures(4), TrainConfig(**dict(TINY, config_type_weights={"": 0})), tmp_path / "none",
              progress=False)

    clean = emt_structures(12, seed=3)
    other = emt_structures(12, seed=4)
    base = dict(TINY, epochs=15, valid_fraction=0.0, stress_weight=0.0)
    graphs = [to_graph(d, {"Cu": 0}, 4.0) for d in clean]
    f_mae, models = {}, {}
    for sign, w in ((-1, 0.0), (-1, 1.0), (1, 0.0)):     # sign -1: wrong forces, energies 5 eV/atom off
        noisy = [dataclasses.replace(d, forces=sign * d.forces, energy=d.energy + (sign < 0) * 40.0,
                                     config_type="noisy", source=f"noisy:{k}") for k, d in enumerate(other)]
        r = train(clean + noisy, TrainConfig(**dict(base, config_type_weights={"noisy": w})),
                  tmp_path / f"{sign}_{w}", progress=False)
        f_mae[sign, w], models[sign, w] = errors(r.model, graphs)["force_mae"], _weights(r.model)
    # weight 0: the type's labels do not matter at all (nor in the reference energies); weight 1:
    # the wrong forces spoil the fit
    assert all(torch.equal(models[-1, 0.0][k], models[1, 0.0][k]) for k in models[1, 0.0])
    assert f_mae[-1, 0.0] < 0.5 * f_mae[-1, 1.0]
    # and a type at weight 0 is not in the γ active set: compressed cells stay extrapolative
    squeezed = [dataclasses.replace(d, atoms=_scaled(d.atoms, 0.85), config_type="squeezed") for d in other[:4]]
    for w, outside in ((0.0, True), (1.0, False)):
        r = train(clean + squeezed, TrainConfig(**dict(base, epochs=1, config_type_weights={"squeezed": w})),
                  tmp_path / f"squeezed_{w}", progress=False)
        gammas = []
        for d in squeezed:
            a = d.atoms.copy()
            a.calc = MlalCalculator(r.model_path)
            a.get_potential_energy()
            gammas.append(a.calc.results["gamma_max"])
        assert (min(gammas) > 1.5) == outside and (max(gammas) <= 1 + 1e-6) == (not outside)


def _scaled(atoms, f):
    a = atoms.copy()
    a.set_cell(a.cell * f, scale_atoms=True)
    return a


def test_config_yaml_roundtrip_and_unknown_key(tmp_path):
    cfg = TrainConfig(epochs=7, channels=[6, 3, 3, 2])
    path = cfg.to_yaml(tmp_path / "c.yaml")
    assert TrainConfig.from_yaml(path) == cfg
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: 3\nlearning_rat: 0.1\n")
    with pytest.raises(ValueError, match="learning_rat"):
        TrainConfig.from_yaml(bad)
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainConfig(lr_schedule="linear")


def test_auto_cutoff_follows_the_atomic_density(tmp_path):
    """``cutoff: auto`` keeps ~45 neighbours in the sphere: dense fcc Cu 5 Å, open diamond Si 6 Å."""
    from mlal.train.prepare import auto_cutoff

    def lab(a):
        return Labelled(atoms=a, energy=None, forces=None, stress=None, source="x")
    assert auto_cutoff([lab(bulk("Cu", "fcc", a=3.61, cubic=True))]) == 5.0
    assert auto_cutoff([lab(bulk("Mo", "bcc", a=3.16, cubic=True))]) == 5.5
    assert auto_cutoff([lab(bulk("Si", "diamond", a=5.43))]) == 6.0
    assert auto_cutoff([lab(bulk("Cu", "fcc", a=3.61 * 0.8))]) == 4.0           # clipped to the limits
    r = train(emt_structures(4, seed=5), TrainConfig(**dict(TINY, cutoff="auto", epochs=1)), tmp_path / "a",
              progress=False)
    assert r.model.cutoff == 5.0 and load_model(r.model_path).cutoff == 5.0
    assert TrainConfig().cutoff == "auto"
    with pytest.raises(ValueError, match="cutoff"):
        TrainConfig(cutoff="far")
    with pytest.raises(ValueError, match="cutoff"):
        TrainConfig(cutoff=-1.0)


def test_auto_r_min_sits_under_the_shortest_distance(tmp_path):
    """``r_min: auto`` is 0.3 Å under the data's shortest distance, rounded to 0.1 Å, across a
    periodic boundary too; the trained and exported model carry it; no pair within the cutoff: 0."""
    from ase import Atoms
    from mlal.train.prepare import auto_r_min

    def lab(a):
        return Labelled(atoms=a, energy=None, forces=None, stress=None, source="x")
    cu = lab(bulk("Cu", "fcc", a=3.61, cubic=True))                 # nearest neighbours 2.553 Å
    assert auto_r_min([cu], 5.0) == 2.3
    squeezed = Atoms("Cu2", positions=[[0.1, 0, 0], [9.9, 0, 0]], cell=[10, 10, 10], pbc=True)
    assert auto_r_min([cu, lab(squeezed)], 5.0) == pytest.approx(0.0)  # 0.2 Å apart through the boundary
    dimer = Atoms("Cu2", positions=[[0, 0, 0], [2.14, 0, 0]])
    assert auto_r_min([lab(dimer)], 5.0) == 1.8
    assert auto_r_min([lab(Atoms("Cu2", positions=[[0, 0, 0], [6.0, 0, 0]]))], 5.0) == 0.0
    items = emt_structures(4, seed=5)
    expected = auto_r_min(items, 4.0)
    assert 1.5 < expected < 2.5
    r = train(items, TrainConfig(**dict(TINY, r_min="auto", epochs=1)), tmp_path / "a", progress=False)
    assert r.model.r_min == expected and load_model(r.model_path).r_min == expected
    with pytest.raises(ValueError, match="r_min"):
        TrainConfig(r_min="short")


def test_training_checks_the_stress_labels_shear_order(tmp_path):
    """The trainer reads the labels' shear slots against the trained model's own stress (a strain
    derivative): the model's own stress as labels passes, the same with yz and xz exchanged warns."""
    import dataclasses
    from mlal.evaluate import predict_structures
    from mlal.train.trainer import _check_stress_labels
    items = emt_structures(n=12, seed=4)
    rng = np.random.default_rng(5)
    for k, it in enumerate(items):                       # one clear shear per cell, in turn yz, xz, xy
        cell = it.atoms.cell[:].copy()
        i, j = [(1, 2), (0, 2), (1, 0)][k % 3]
        cell[i, j] = 0.3 * (1 + rng.random())
        it.atoms.set_cell(cell, scale_atoms=True)
    result = train(items, TrainConfig(**TINY), tmp_path / "run", progress=False)
    assert set(result.metrics["stress_shear_order"]) == {"shear_mae", "best_order", "best_shear_mae",
                                                         "label_shear_mean", "suspect"}
    own = predict_structures(result.model, items)["stress"] / GPA            # eV/Å³, the model's own
    right = [dataclasses.replace(it, stress=s) for it, s in zip(items, own)]
    swapped = [dataclasses.replace(it, stress=s[[0, 1, 2, 4, 3, 5]]) for it, s in zip(items, own)]
    def graphs(labelled):
        return [to_graph(it, {"Cu": 0}, result.model.cutoff) for it in labelled]
    check = _check_stress_labels(result.model, right, graphs(right))
    assert not check["suspect"] and check["shear_mae"] == pytest.approx(0.0, abs=1e-9)
    with pytest.warns(UserWarning, match="'xz yz xy'"):
        check = _check_stress_labels(result.model, swapped, graphs(swapped))
    assert check["suspect"] and check["best_order"] == "xz yz xy"
    assert _check_stress_labels(result.model, right[:9], graphs(right[:9])) is None     # too few to judge
