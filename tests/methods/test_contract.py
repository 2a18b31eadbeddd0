"""The method contract over the registry (DomainBed's test_models style): every registered
method in each of its modes, and the variants of tests/helpers.py, keep the promises of
methods/contract.py: only its own parameters get gradients and the shared, frozen CLIP stays
bit-identical; it trains on the toy data through the real loop; ST trains each task as if it
were alone and MT shares one set; any width of model; the speed-ups are exact.  A new method
is covered here without edits; what is particular to one method is in tests/methods/test_<method>.py."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from bench.methods import METHODS
from bench.methods.contract import MethodError
from helpers import (
    FORMULA_CASES,
    PROMPT_CASES,
    case_id,
    duck_data,
    make_batches,
    make_tasks,
    method_cfg,
    mixed_tasks,
    random_batch,
    snapshot,
    train_cfg,
    train_steps,
    trainable_count,
)
from references import ref_image, template_text
from torch import nn

from bench.app import build_method
from bench.data import MultiTaskData
from bench.engine import fit, warm_up
from bench.speedups import speedups

#: every registered method in each of its modes: a new method is covered without edits here
EVERY_METHOD_AND_MODE = [(name, mode) for name, cls in METHODS.items() for mode in cls.modes]
ALL_CASES = PROMPT_CASES + FORMULA_CASES


# ---- trains through the real loop, and only its own parameters ---------------------------------------
@pytest.mark.parametrize("name,mode", EVERY_METHOD_AND_MODE, ids=[f"{n}-{m}" for n, m in EVERY_METHOD_AND_MODE])
def test_only_the_methods_parameters_change(name, mode, tiny_clip, toy_dataset):
    clip = copy.deepcopy(tiny_clip)
    frozen_before = snapshot(clip)
    overrides = {"grouping": {"strategy": "one_group"}} if (name, mode) == ("mmap", "grouped") else {}
    method = build_method(method_cfg(name, mode=mode, **overrides), clip, toy_dataset.tasks, seed=1)
    cfg = train_cfg(optimizer="adamw", lr=1e-3)
    data = MultiTaskData(toy_dataset, clip, cfg, seed=1)
    trainable = {n for n, _ in method.trainable_parameters()}
    before = snapshot(method)
    fit(method, data, cfg, torch.device("cpu"), progress=False)
    after = snapshot(method)
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert changed <= trainable, f"frozen tensors changed: {sorted(changed - trainable)[:5]}"
    assert changed == trainable, f"trainable tensors that did not move: {sorted(trainable - changed)[:5]}"
    if trainable and not any(n.startswith("clip.") for n in trainable):  # CLIP itself stays frozen
        assert all(torch.equal(frozen_before[n], t) for n, t in snapshot(clip).items())


@pytest.mark.parametrize("name,overrides", ALL_CASES, ids=[case_id(c) for c in ALL_CASES])
def test_only_own_parameters_train_and_clip_stays_bit_identical(tiny_clip, name, overrides):
    """Three steps of `name` leave the shared CLIP bit-identical (no gradient reaches it) and
    move every one of the method's own parameters; the % of CLIP counts the whole model."""
    frozen = {n: t.clone() for n, t in tiny_clip.model.state_dict().items()}
    method = build_method(method_cfg(name, **overrides), tiny_clip, mixed_tasks(), seed=2)
    trainable = {n: p.detach().clone() for n, p in method.trainable_parameters()}
    assert trainable and not any(n.startswith("clip.") for n in trainable)
    assert all(not p.requires_grad for p in method.clip.model.parameters())
    train_steps(method, make_batches(2, mixed_tasks()), 3)
    assert all(p.grad is None for p in method.clip.model.parameters())
    for n, t in tiny_clip.model.state_dict().items():
        assert torch.equal(t, frozen[n]), n
    for n, p in method.trainable_parameters():
        assert not torch.equal(p, trainable[n]), n
    total = sum(p.numel() for p in tiny_clip.model.parameters())
    assert sum(p.numel() for p in method.clip.model.parameters()) == total


@pytest.mark.parametrize("name", ["lora", "bitfit"])
@pytest.mark.parametrize("mode", ["mt", "st"])
def test_starts_as_zero_shot_and_leaves_the_shared_clip_alone(tiny_clip, name, mode):
    tasks = mixed_tasks()
    attention_types = [type(b.attn) for b in tiny_clip.model.transformer.resblocks]
    zeroshot = build_method(method_cfg("zeroshot"), tiny_clip, tasks)
    method = build_method(method_cfg(name, mode=mode), tiny_clip, tasks, seed=4)
    images = torch.randn(6, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    task_ids = torch.tensor([0, 1, 2, 2, 1, 0])
    for training in (True, False):
        method.train(training)
        zeroshot.train(training)
        with torch.no_grad():
            got, want = method(images, task_ids), zeroshot(images, task_ids)
        # B = 0 (lora) or the very biases (bitfit); equal up to float rounding, since zero-shot's
        # plain blocks take the fused path of bench/blocks.py and LoRA's modules open_clip's own
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-6)
    if name == "lora":  # the update itself is exactly zero at init, in every mode
        with method.routing(method.set_index[task_ids]):
            assert not method.qkv_update("vision", 0, torch.randn(6, 5, tiny_clip.vision_width)).any()
    assert [type(b.attn) for b in tiny_clip.model.transformer.resblocks] == attention_types
    assert all(type(b.attn) is nn.MultiheadAttention for b in tiny_clip.model.visual.transformer.resblocks)


# ---- sharing modes: ST as if alone, MT one set --------------------------------------------------------
ST_CASES = [(name, dict(overrides, mode="st")) for name, overrides in
            [("vpt", {}), ("maple", {"prompt_depth": 3}), ("mmap", {"prompt_depth": 3, "n_ctx": 2})]] + [
    case for case in FORMULA_CASES if case[0] != "coop" and case[1]["mode"] == "st"]


@pytest.mark.parametrize("name,overrides", ST_CASES, ids=[case_id(c) for c in ST_CASES])
def test_st_task_trains_as_if_alone(tiny_clip, name, overrides):
    tasks = mixed_tasks()
    multi = build_method(method_cfg(name, **overrides), tiny_clip, tasks, seed=5)
    alone = build_method(method_cfg(name, **overrides), tiny_clip, tasks[1:2], seed=5)
    batches = make_batches(3, tasks)
    single = [(x[t == 1], y[t == 1], torch.zeros_like(t[t == 1])) for x, y, t in batches]
    before = {n: p.detach().clone() for n, p in multi.trainable_parameters()}
    train_steps(multi, batches, 3)
    train_steps(alone, single, 1)
    for (n, p), (_, q) in zip(multi.trainable_parameters(), alone.trainable_parameters()):
        assert p.shape[0] == 3 and q.shape[0] == 1, n
        assert not torch.equal(p[1], before[n][1]), n
        # Equal up to float rounding: the batched GEMMs see 6 images (3 tasks) instead of 2,
        # which changes summation order on CPU, not the mathematics.
        torch.testing.assert_close(p[1], q[0], atol=1e-6, rtol=1e-5, msg=n)


@pytest.mark.parametrize("name", ["vpt", "maple", "mmap"])
def test_mt_shares_one_set(tiny_clip, name):
    overrides = {"prompt_depth": 3} if name != "vpt" else {}
    method = build_method(method_cfg(name, mode="mt", **overrides), tiny_clip, mixed_tasks())
    for _, p in method.trainable_parameters():
        assert p.shape[0] == 1
    images, labels, task_ids = make_batches(1, mixed_tasks(), per_task=1)[0]
    logits = method(images, task_ids)
    for t in range(3):  # every task alone reaches every shared parameter
        loss = F.cross_entropy(logits[t:t + 1], labels[t:t + 1])
        grads = torch.autograd.grad(loss, [p for _, p in method.trainable_parameters()], retain_graph=True)
        assert all(g.abs().sum() > 0 for g in grads)


SHARED_AND_SEPARATE = [name for name, cls in METHODS.items() if {"mt", "st"} <= set(cls.modes)]


@pytest.mark.parametrize("name", SHARED_AND_SEPARATE)
def test_st_holds_one_set_per_task(tiny_clip, name):
    """Counts: ST has exactly one MT-sized set of parameters per task."""
    tasks = make_tasks(3)
    mt = build_method(method_cfg(name, mode="mt"), copy.deepcopy(tiny_clip), tasks)
    st = build_method(method_cfg(name, mode="st"), copy.deepcopy(tiny_clip), tasks)
    assert trainable_count(mt) > 0 and trainable_count(st) == 3 * trainable_count(mt)


# ---- any model ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,overrides", [
    ("vpt", {"mode": "mt"}), ("vpt", {"mode": "st"}), ("maple", {"mode": "mt", "prompt_depth": 2}),
    ("maple", {"mode": "st", "prompt_depth": 2}), ("mmap", {"mode": "mt"}), ("mmap", {"mode": "st"}),
    ("mmap", {"mode": "grouped"})])
def test_vit_l14_widths_one_step(vit_l14_widths_clip, name, overrides):
    tasks = mixed_tasks()
    method = build_method(method_cfg(name, **overrides), vit_l14_widths_clip, tasks)
    warm_up(method, duck_data(tasks, 28), train_cfg(precision="fp32", optimizer="sgd", lr=0.05),
            torch.device("cpu"))  # MmAP grouped: its grouping warm-up (the others have none)
    before = {n: p.detach().clone() for n, p in method.trainable_parameters()}
    batch = make_batches(1, tasks, per_task=1)[0]
    images = F.interpolate(batch[0], size=28)
    train_steps(method, [(images, batch[1], batch[2])], 3)
    assert all(not torch.equal(p, before[n]) for n, p in method.trainable_parameters())


@pytest.mark.parametrize("name", ["vpt", "maple", "mmap"])
def test_prompt_deeper_than_the_model_is_a_clear_error(name, tiny_clip):
    with pytest.raises(MethodError, match=r"method.prompt_depth=7, but the model has 4"):
        build_method(method_cfg(name, prompt_depth=7, mode="mt"), tiny_clip, make_tasks(2))


# ---- the speed-ups of bench/speedups.py are exact for every method ----------------------------------------
SPEEDUP_CASES = [
    ("zeroshot", {}), ("coop", {"mode": "mt"}), ("coop", {"mode": "st"}), ("vpt", {"mode": "mt"}),
    ("maple", {"mode": "mt", "prompt_depth": 3}), ("maple", {"mode": "st", "prompt_depth": 3}),
    ("mmap", {"mode": "mt"}),
    ("mmap", {"mode": "grouped", "grouping.strategy": "manual",
              "grouping.groups": [["task0", "task1"], ["task2"]]}),
    ("full", {"mode": "mt"}), ("full", {"mode": "st"}),
] + [case for case in FORMULA_CASES if case[0] != "coop" or case[1]["mode"] == "st"]




def _logits_and_grads(method, images, labels, task_ids, sample_ids=None):
    method.zero_grad(set_to_none=True)
    logits = method(images, task_ids, sample_ids=sample_ids)
    params = [p for _, p in method.trainable_parameters()]
    if params:
        torch.nn.functional.cross_entropy(logits, labels).backward()
    grads = [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in params]
    return logits.detach(), grads


@pytest.mark.parametrize("name,overrides", SPEEDUP_CASES, ids=[case_id(c) for c in SPEEDUP_CASES])
def test_optimised_step_equals_baseline(tiny_clip, name, overrides):
    """Truncated text context, shared and cached text features, no-grad frozen towers and
    cached image features give the baseline's logits and gradients, step after step."""
    clip = copy.deepcopy(tiny_clip)  # full fine-tuning unfreezes the model it is given
    tasks = make_tasks(3, ("dog", "cat", "car", "a very long class name indeed"))
    method = build_method(method_cfg(name, **overrides), clip, tasks, seed=0)
    method.train()
    images, labels, task_ids = random_batch(clip)
    ids = ("train", torch.arange(len(images)))
    with speedups(False):
        base_logits, base_grads = _logits_and_grads(method, images, labels, task_ids)
    with speedups(True):
        for _ in range(2):  # the second step reads the image cache (coop, zeroshot)
            logits, grads = _logits_and_grads(method, images, labels, task_ids, ids)
            assert torch.allclose(logits, base_logits, rtol=1e-5, atol=1e-4)
            for grad, base in zip(grads, base_grads):
                # float summation order differs (one shared pass vs one per task): compare to scale
                assert (grad - base).abs().max() <= 1e-4 * base.abs().max() + 1e-7
    if not method.image_depends_on_parameters:
        assert len(method.image_cache) == len(images)


# ---- the slow references of tests/references.py -------------------------------------------------------------
def test_reference_is_open_clip_without_changes(clip64):
    """The slow reference itself: with no update it is open_clip's own encoder."""
    model, tokenizer = clip64.model, clip64.tokenizer
    images = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    want = model.encode_image(images)
    torch.testing.assert_close(torch.stack([ref_image(model, i) for i in images]), want, atol=1e-12, rtol=0)
    text = template_text(model, tokenizer, "a photo of a dog.")
    torch.testing.assert_close(text, model.encode_text(tokenizer(["a photo of a dog."]), normalize=True)[0],
                               atol=1e-12, rtol=0)
