"""The multi-task data (bench/data.py): the batch sampler is a pure function of seed, task and
epoch; round-robin sampling; the batch keeps its fields through pinning and workers; a seeded
sample draws exactly what `torch.manual_seed` would."""
from __future__ import annotations

import pickle

import pytest
import torch
from omegaconf import OmegaConf
from torch.utils.data._utils.pin_memory import pin_memory

from bench.data import MultiTaskBatch, MultiTaskBatchSampler
from bench.errors import ConfigError


def test_sampler_is_a_pure_function_of_seed_task_and_epoch():
    def batches(names, sizes, epoch, start=0):
        return list(MultiTaskBatchSampler(sizes, names, 4, seed=3, epoch=epoch, start_step=start))
    a = batches(["art", "clip"], [10, 7], 0)
    assert len(a) == 3 and all(len(b) == 8 for b in a)
    assert a == batches(["art", "clip"], [10, 7], 0)
    assert a != batches(["art", "clip"], [10, 7], 1)
    assert a[1:] == batches(["art", "clip"], [10, 7], 0, start=1)
    # A task's draws do not depend on which other tasks are present (ST == alone).
    alone = batches(["clip"], [7], 0)
    assert [b[4:] for b in a[:2]] == [[(i + 10, s) for i, s in b] for b in alone]
    # every task's samples are all seen within an epoch of the largest task
    assert {i for b in a for i, _ in b[:4]} == set(range(10))


def test_round_robin_sampling_shows_each_task_the_same_samples_one_task_per_step():
    sizes, names = [10, 7], ["art", "clip"]
    together = list(MultiTaskBatchSampler(sizes, names, 4, seed=3, epoch=0))
    turns = list(MultiTaskBatchSampler(sizes, names, 4, seed=3, epoch=0, task_sampling="round_robin"))
    assert len(turns) == 2 * len(together)
    assert turns[0::2] == [b[:4] for b in together] and turns[1::2] == [b[4:] for b in together]
    from bench.schema import TrainConfig, defaults_of
    from bench.config_checks import check_section
    bad = OmegaConf.create({**defaults_of(TrainConfig), "task_sampling": "random"})
    with pytest.raises(ConfigError, match="train.task_sampling='random'.*all, round_robin"):
        check_section(bad, TrainConfig, "train.")


def test_multitask_batch_keeps_indices_through_pinning_and_workers():
    batch = MultiTaskBatch(torch.zeros(2, 3), torch.tensor([0, 1]), torch.tensor([0, 0]), torch.tensor([5, 7]))
    pinned = pin_memory(batch) if torch.cuda.is_available() else batch
    for copy_ in (pickle.loads(pickle.dumps(batch)), pinned):
        assert isinstance(copy_, MultiTaskBatch)
        assert copy_.indices.tolist() == [5, 7] and copy_.unreadable == () and copy_.labels.tolist() == [0, 1]


def test_a_seeded_sample_draws_what_torch_manual_seed_draws_and_leaves_the_generator_as_it_was(tmp_path):
    """SeededSamples seeds only the CPU generator (the one torchvision's transforms draw from): the
    crops equal those under `torch.manual_seed(seed)`, and the caller's random stream goes on as if
    no sample had been drawn."""
    import numpy as np
    from PIL import Image
    from torchvision import transforms as T

    from bench.data import SeededSamples

    path = str(tmp_path / "a.jpg")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(path)
    transform = T.Compose([T.RandomResizedCrop(16, scale=(0.08, 1.0)), T.RandomHorizontalFlip(), T.ToTensor()])
    samples = SeededSamples([[(path, 3)]], transform)
    torch.manual_seed(123)
    expected_next = torch.rand(4)
    for seed in (0, 7, 2**40 + 5):
        torch.manual_seed(123)
        image, label, task, index = samples[(0, seed)]
        assert torch.equal(torch.rand(4), expected_next)
        torch.manual_seed(seed)
        with Image.open(path) as opened:
            assert torch.equal(image, transform(opened.convert("RGB")))
        assert (label, task, index) == (3, 0, 0)
