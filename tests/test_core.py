"""The core harness: CLIP wrapper, zero-shot/CoOp/full, the loss, the sampler, the loop."""
from __future__ import annotations

import copy

import pytest
import torch
from bench.methods import METHODS
from conftest import make_tasks, method_cfg
from omegaconf import OmegaConf

from bench.app import build_method
from bench.clip import ModelError, TowerPrompts
from bench.data import MultiTaskBatchSampler
from bench.errors import ConfigError
from bench.step import multitask_loss


def test_wrapper_without_prompts_equals_open_clip(tiny_clip):
    tokens = tiny_clip.tokenize(["a photo of a dog.", "cat", "a very long sentence about a house"])
    ours = tiny_clip.encode_text(tokens, truncate=False)
    reference = tiny_clip.model.encode_text(tokens, normalize=True)
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-6)
    images = torch.randn(3, 3, tiny_clip.image_size, tiny_clip.image_size)
    torch.testing.assert_close(tiny_clip.encode_image(images), tiny_clip.model.encode_image(images, normalize=True),
                               rtol=0, atol=1e-6)


def test_text_truncation_is_exact(tiny_clip):
    tokens = tiny_clip.tokenize(["a", "a photo of a small dog on the grass."])
    prompts = TowerPrompts(input=torch.randn(2, 1, tiny_clip.text_width),
                           deep={1: torch.randn(1, 1, tiny_clip.text_width)})
    full = tiny_clip.encode_text(tokens, prompts, truncate=False)
    cut = tiny_clip.encode_text(tokens, prompts, truncate=True)
    torch.testing.assert_close(cut, full, rtol=1e-5, atol=1e-6)


def test_widths_and_depths_read_from_model(tiny_clip, vit_l14_widths_clip, vit_b16_clip):
    assert (tiny_clip.text_width, tiny_clip.vision_width) == (64, 96)
    assert (vit_l14_widths_clip.text_width, vit_l14_widths_clip.vision_width) == (768, 1024)
    assert (vit_b16_clip.text_width, vit_b16_clip.vision_width, vit_b16_clip.vision_depth) == (512, 768, 12)


def test_prompt_deeper_than_model_is_a_clear_error(tiny_clip):
    tokens = tiny_clip.tokenize(["X dog."])
    deep = {tiny_clip.text_depth: torch.zeros(1, 1, tiny_clip.text_width)}
    with pytest.raises(ModelError, match="Lower the prompt depth"):
        tiny_clip.encode_text(tokens, TowerPrompts(input=torch.zeros(1, 1, tiny_clip.text_width), deep=deep))


def test_coop_initialised_from_template_equals_zeroshot(tiny_clip):
    tasks = make_tasks(2)
    images = torch.randn(4, 3, tiny_clip.image_size, tiny_clip.image_size)
    task_ids = torch.tensor([0, 1, 1, 0])
    zeroshot = build_method(method_cfg("zeroshot", template="a photo of a {}."), tiny_clip, tasks).eval()
    for mode in ("mt", "st"):
        coop = build_method(method_cfg("coop", ctx_init="a photo of a", mode=mode), tiny_clip, tasks).eval()
        assert coop.n_ctx == 4
        torch.testing.assert_close(coop(images, task_ids), zeroshot(images, task_ids), rtol=1e-5, atol=1e-5)


def test_logits_cover_only_the_samples_own_task(tiny_clip):
    tasks = [make_tasks(1, ("a", "b", "c"))[0], make_tasks(1, ("d", "e"))[0]]
    method = build_method(method_cfg("zeroshot"), tiny_clip, tasks).eval()
    logits = method(torch.randn(2, 3, 64, 64), torch.tensor([0, 1]))
    assert logits.shape == (2, 3)
    assert torch.isfinite(logits[0]).all() and torch.isinf(logits[1, 2]) and torch.isfinite(logits[1, :2]).all()


def test_vit_b16_trainable_counts(vit_b16_clip):
    tasks = make_tasks(4, tuple(f"class{i}" for i in range(65)))
    count = lambda m: sum(p.numel() for _, p in m.trainable_parameters())  # noqa: E731
    assert count(build_method(method_cfg("coop", mode="mt"), vit_b16_clip, tasks)) == 16 * 512 == 8192
    assert count(build_method(method_cfg("coop", mode="st"), vit_b16_clip, tasks)) == 4 * 8192
    assert count(build_method(method_cfg("zeroshot"), vit_b16_clip, tasks)) == 0
    full = build_method(method_cfg("full", mode="mt"), copy.deepcopy(vit_b16_clip), tasks)
    assert count(full) == 149_620_737


def test_full_st_has_one_clip_per_task(tiny_clip):
    tasks = make_tasks(3)
    total = sum(p.numel() for p in tiny_clip.model.parameters())
    full = build_method(method_cfg("full", mode="st"), copy.deepcopy(tiny_clip), tasks)
    assert sum(p.numel() for _, p in full.trainable_parameters()) == 3 * total


def test_unknown_method_and_mode_name_the_choices(tiny_clip):
    with pytest.raises(ConfigError, match="Registered methods: .*coop"):
        build_method(OmegaConf.create({"name": "nope"}), tiny_clip, make_tasks(1))
    with pytest.raises(ConfigError, match="runs in mt, st"):
        build_method(method_cfg("coop", mode="grouped"), tiny_clip, make_tasks(1))
    assert {"zeroshot", "coop", "full"} <= set(METHODS)


def test_multitask_loss_is_sum_of_task_means():
    logits = torch.randn(5, 3)
    labels = torch.tensor([0, 1, 2, 0, 1])
    tasks = torch.tensor([0, 0, 1, 1, 1])
    ce = torch.nn.functional.cross_entropy
    expected = ce(logits[:2], labels[:2]) + ce(logits[2:], labels[2:])
    torch.testing.assert_close(multitask_loss(logits, labels, tasks, 3), expected)
    torch.testing.assert_close(multitask_loss(logits, labels, tasks, 3, "mean"), expected / 2)


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


def test_local_checkpoint_path_loads_those_weights(tiny_clip, tmp_path):
    from bench.models import build_clip
    path = tmp_path / "tiny.pt"
    torch.save(tiny_clip.model.state_dict(), path)
    loaded = build_clip("cpb-tiny", str(path))
    for (name, a), (_, b) in zip(tiny_clip.model.state_dict().items(), loaded.model.state_dict().items()):
        assert torch.equal(a, b), name
    assert all(not p.requires_grad for p in loaded.model.parameters())


def test_unknown_arch_and_tag_are_clear_errors():
    from bench.models import build_clip
    with pytest.raises(ModelError, match="Unknown model.arch 'ViT-Q-99'"):
        build_clip("ViT-Q-99", "none")
    with pytest.raises(ModelError, match="Known tags for ViT-B-16: .*openai"):
        build_clip("ViT-B-16", "no-such-tag")


def test_text_prompt_longer_than_its_placeholders_is_a_clear_error(tiny_clip):
    tokens = tiny_clip.tokenize(["X dog."])  # SOS x dog . EOT: EOT at position 4
    with pytest.raises(ModelError, match="placeholder"):
        tiny_clip.encode_text(tokens, TowerPrompts(input=torch.zeros(1, 4, tiny_clip.text_width)))
    tiny_clip.encode_text(tokens, TowerPrompts(input=torch.zeros(1, 3, tiny_clip.text_width)))


def test_round_robin_sampling_shows_each_task_the_same_samples_one_task_per_step():
    sizes, names = [10, 7], ["art", "clip"]
    together = list(MultiTaskBatchSampler(sizes, names, 4, seed=3, epoch=0))
    turns = list(MultiTaskBatchSampler(sizes, names, 4, seed=3, epoch=0, task_sampling="round_robin"))
    assert len(turns) == 2 * len(together)
    assert turns[0::2] == [b[:4] for b in together] and turns[1::2] == [b[4:] for b in together]
    from bench.schema import TrainConfig, defaults_of
    from bench.validation import check_section
    bad = OmegaConf.create({**defaults_of(TrainConfig), "task_sampling": "random"})
    with pytest.raises(ConfigError, match="train.task_sampling='random'.*all, round_robin"):
        check_section(bad, TrainConfig, "train.")
