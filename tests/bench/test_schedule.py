"""The learning-rate schedules (bench/schedule.py): the reference (Dassl) and timm's, per epoch,
through a checkpoint and in the training loop."""
from __future__ import annotations

import pytest
import torch
from helpers import method_cfg, train_cfg

from bench.app import build_method
from bench.engine import fit
from bench.errors import ConfigError
from bench.schedule import build_lr_schedule as build_scheduler
from bench.step import build_optimizer

# Fractions of the base rate for epochs 2-5 of a 5-epoch run with one warm-up epoch (issue 10).
EXPECTED = {"cosine_dassl": [1.000, 0.905, 0.655, 0.345], "cosine_after_warmup": [1.000, 0.854, 0.500, 0.146]}


def rates(schedule: str, epochs: int = 5, resume_at: int | None = None) -> list[float]:
    cfg = train_cfg(epochs=epochs, warmup_epochs=1, warmup_lr=1e-5, lr=0.002, lr_min=0.0, schedule=schedule)
    params = [torch.nn.Parameter(torch.zeros(2))]
    optimizer = build_optimizer(params, cfg)
    scheduler = build_scheduler(optimizer, cfg)
    out = []
    for epoch in range(epochs):
        if epoch == resume_at:  # a fresh process: new optimiser and scheduler, then the checkpoint
            state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
            optimizer = build_optimizer(params, cfg)
            scheduler = build_scheduler(optimizer, cfg)
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
        scheduler.step(epoch)
        out.append(optimizer.param_groups[0]["lr"])
    return out


@pytest.mark.parametrize("schedule", sorted(EXPECTED))
def test_per_epoch_rates(schedule):
    got = rates(schedule)
    assert got[0] == pytest.approx(1e-5)
    assert [round(r / 0.002, 3) for r in got[1:]] == EXPECTED[schedule]


def test_dassl_formula_is_cosine_over_all_epochs_after_the_warmup():
    got = rates("cosine_dassl", epochs=10)
    for epoch in range(1, 10):
        assert got[epoch] == pytest.approx(0.002 * (1 + torch.cos(torch.tensor(torch.pi * (epoch - 1) / 10)).item()) / 2)


@pytest.mark.parametrize("schedule", sorted(EXPECTED))
@pytest.mark.parametrize("resume_at", [1, 3])
def test_resumed_schedule_is_the_uninterrupted_one(schedule, resume_at):
    assert rates(schedule, resume_at=resume_at) == rates(schedule)


def test_without_warmup_both_schedules_agree():
    for epochs in (1, 4):
        cfgs = [train_cfg(epochs=epochs, warmup_epochs=0, lr=0.1, lr_min=1e-3, schedule=s) for s in EXPECTED]
        lrs = []
        for cfg in cfgs:
            optimizer = build_optimizer([torch.nn.Parameter(torch.zeros(1))], cfg)
            scheduler = build_scheduler(optimizer, cfg)
            lrs.append([(scheduler.step(e), optimizer.param_groups[0]["lr"])[1] for e in range(epochs)])
        assert lrs[0] == pytest.approx(lrs[1])


def test_constant_schedule_holds_the_base_rate_exactly():
    """MmAP's grouping warm-up trains at the run's base rate throughout (methods/grouping.py)."""
    assert rates("constant") == [0.002] * 5 == rates("constant", resume_at=3)


def test_unknown_schedule_names_the_choices():
    from bench.schema import TrainConfig
    from bench.config_checks import check_section
    with pytest.raises(ConfigError, match="train.schedule='linear'.*cosine_dassl, cosine_after_warmup, constant"):
        check_section(train_cfg(schedule="linear"), TrainConfig, "train.")


def test_training_loop_runs_the_reference_schedule(tiny_clip, toy_dataset):
    from bench.data import MultiTaskData
    cfg = train_cfg(epochs=5, warmup_epochs=1, lr=0.002, steps_per_epoch=1, batch_size=2)
    assert cfg.schedule == "cosine_dassl"  # the default
    method = build_method(method_cfg("coop", n_ctx=2), tiny_clip, toy_dataset.tasks, seed=1)
    outcome = fit(method, MultiTaskData(toy_dataset, tiny_clip, cfg, seed=1), cfg, torch.device("cpu"), progress=False)
    assert [round(h["lr"] / 0.002, 3) for h in outcome.history[1:]] == EXPECTED["cosine_dassl"]
