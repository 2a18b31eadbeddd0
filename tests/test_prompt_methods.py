"""VPT, MaPLe and MmAP: forward passes against a slow reference, sharing modes, frozen CLIP,
ViT-B/16 parameter counts, ViT-L/14 widths."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from conftest import make_tasks, method_cfg
from omegaconf import OmegaConf

from bench.app import build_method
from bench.data import MultiTaskBatch
from bench.step import build_optimizer, multitask_loss

CLIP_B16_TOTAL = 149_620_737
# (method, config overrides) for every method and mode; the tiny model has 4 + 4 layers.
CASES = [
    ("vpt", {"mode": "mt"}), ("vpt", {"mode": "st"}), ("vpt", {"mode": "mt", "deep": False}),
    ("vpt", {"mode": "st", "prompt_depth": 2}),
    ("maple", {"mode": "mt", "prompt_depth": 4}), ("maple", {"mode": "st", "prompt_depth": 3}),
    ("maple", {"mode": "mt", "prompt_depth": 2, "ctx_init": None, "n_ctx": 3}),
    ("mmap", {"mode": "mt"}), ("mmap", {"mode": "st", "n_ctx": 3, "prompt_depth": 2}),
    ("mmap", {"mode": "grouped", "grouping.strategy": "manual",
              "grouping.groups": [["task0", "task2"], ["task1"]], "n_ctx": 2, "n_task_ctx": 3}),
    ("mmap", {"mode": "grouped", "grouping.strategy": "singletons", "n_task_ctx": 0, "prompt_depth": 3}),
]
IDS = [f"{m}-" + "-".join(f"{k}={v}" for k, v in o.items()) for m, o in CASES]


def mixed_tasks():
    """Three tasks with different class lists (so the -inf masking is exercised)."""
    return [SimpleNamespace(name="task0", classnames=("dog", "cat", "car", "house")),
            SimpleNamespace(name="task1", classnames=("tree", "boat", "bird")),
            SimpleNamespace(name="task2", classnames=("dog", "cat", "car", "house"))]


def randomize(method, scale=0.5, seed=0):
    """Random values everywhere, so that no prompt is trivially 0 or 1."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in method.trainable_parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * scale)


# ---- the slow, obviously-correct reference -----------------------------------------------
def ref_text_features(model, tokenizer, texts, layer_prompts):
    """One text at a time, full 77-token context; layer_prompts[r] = {layer: (n, d)}."""
    out = []
    for r, text in enumerate(texts):
        tokens = tokenizer([text])[0]
        x = model.token_embedding(tokens)
        prompts = layer_prompts[r]
        n = prompts[0].shape[0] if prompts else 0
        if prompts:
            x = torch.cat([x[:1], prompts[0], x[1 + n:]])
        x = x + model.positional_embedding
        for i, block in enumerate(model.transformer.resblocks):
            if i > 0 and i in prompts:
                x = torch.cat([x[:1], prompts[i], x[1 + n:]])
            x = block(x[None], attn_mask=model.attn_mask)[0]
        x = model.ln_final(x)
        out.append(F.normalize(x[tokens.argmax()] @ model.text_projection, dim=-1))
    return torch.stack(out)


def ref_image_features(visual, images, layer_prompts):
    assert visual.attn_pool is None and not visual.final_ln_after_pool and visual.pool_type == "tok"
    out = []
    for b, image in enumerate(images):
        x = visual.conv1(image[None])[0].flatten(1).T                         # (patches, width)
        x = torch.cat([visual.class_embedding[None], x]) + visual.positional_embedding
        prompts = layer_prompts[b]
        n = prompts[0].shape[0] if prompts else 0
        if prompts:
            x = torch.cat([x, prompts[0]])
        x = visual.ln_pre(x)
        for i, block in enumerate(visual.transformer.resblocks):
            if i > 0 and i in prompts:
                x = torch.cat([x[:-n], prompts[i]])
            x = block(x[None])[0]
        x = x[:len(x) - n]
        out.append(F.normalize(visual.ln_post(x)[0] @ visual.proj, dim=-1))
    return torch.stack(out)


def reference_prompts(method, task):
    """({layer: text prompt}, {layer: visual prompt}, text template) of a task, from the
    method's parameters by the papers' formulas (independent of the methods' code)."""
    name = method.cfg.name
    if name == "vpt":
        s = method.set_of_task[task]
        visual = {j: method.prompts[s, j] for j in range(method.prompt_depth)} if method.n_tokens else {}
        return {}, visual, "a photo of a {}."
    if name == "maple":
        s = method.set_of_task[task]
        text = {j: method.text_context[s, j] for j in range(method.prompt_depth)}
        visual = {j: F.linear(text[j], method.coupling_weight[s, j], method.coupling_bias[s, j]) for j in text}
        prefix = method.cfg.ctx_init or " ".join(["X"] * method.n_ctx)
        return text, visual, prefix + " {}."

    def kron(sets, s, j, factor):
        return torch.kron(sets.source[s, j], getattr(sets, factor)[s, j])

    units = ([(method.prompts, method.set_of_task[task])] if method.mode != "grouped" else
             [(method.group_prompts, method.group_of_task[task])] +
             ([(method.task_prompts, task)] if method.task_prompts is not None else []))
    text = {j: torch.cat([kron(u, s, j, "text_factor") for u, s in units]) for j in range(method.prompt_depth)}
    visual = {j: torch.cat([kron(u, s, j, "vision_factor") for u, s in units]) for j in range(method.prompt_depth)}
    n = text[0].shape[0]
    return text, visual, " ".join(["X"] * n) + " {}."


def reference_logits(method, images, task_ids):
    clip = method.clip
    image_prompts = [reference_prompts(method, int(t))[1] for t in task_ids]
    image = ref_image_features(clip.model.visual, images, image_prompts)
    logits = torch.full((len(task_ids), method.max_classes), float("-inf"))
    for b, t in enumerate(task_ids.tolist()):
        text_prompts, _, template = reference_prompts(method, t)
        names = method.tasks[t].classnames
        text = ref_text_features(clip.model, clip.tokenizer, [template.format(c) for c in names],
                                 [text_prompts] * len(names))
        logits[b, :len(names)] = clip.model.logit_scale.exp() * text @ image[b]
    return logits


@pytest.mark.parametrize("name,overrides", CASES, ids=IDS)
def test_forward_matches_slow_reference(tiny_clip, name, overrides):
    method = build_method(method_cfg(name, **overrides), tiny_clip, mixed_tasks(), seed=3)
    randomize(method)
    images = torch.randn(5, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    task_ids = torch.tensor([0, 1, 2, 1, 0])
    with torch.no_grad():
        got = method(images, task_ids)
        want = reference_logits(method, images, task_ids)
    assert torch.equal(torch.isinf(got), torch.isinf(want))
    finite = torch.isfinite(want)
    torch.testing.assert_close(got[finite], want[finite], atol=2e-5, rtol=1e-4)


def test_vpt_zero_tokens_is_zero_shot(tiny_clip):
    tasks = mixed_tasks()
    vpt = build_method(method_cfg("vpt", n_tokens=0), tiny_clip, tasks)
    zeroshot = build_method(method_cfg("zeroshot"), tiny_clip, tasks)
    assert vpt.trainable_parameters() == []
    images = torch.randn(4, 3, 64, 64)
    task_ids = torch.tensor([0, 1, 2, 1])
    with torch.no_grad():
        assert torch.equal(vpt(images, task_ids), zeroshot(images, task_ids))


def test_maple_first_context_is_template_words(tiny_clip):
    maple = build_method(method_cfg("maple", prompt_depth=2), tiny_clip, make_tasks(1))
    tokens = tiny_clip.tokenize(["a photo of a"])[0]
    words = tiny_clip.token_embedding(tokens[1:3])
    assert torch.equal(maple.text_context[0, 0].detach(), words.detach())
    assert maple.prompt_texts(0)[0] == "a photo of a dog."


def sgd_cfg():
    return OmegaConf.create({"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4})


def train_steps(method, batches, n_tasks):
    optimizer = build_optimizer([p for _, p in method.trainable_parameters()], sgd_cfg())
    method.train()
    for images, labels, task_ids in batches:
        loss = multitask_loss(method(images, task_ids), labels, task_ids, n_tasks)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def make_batches(n_steps, tasks, per_task=2, seed=0):
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(n_steps):
        task_ids = torch.arange(len(tasks)).repeat_interleave(per_task)
        labels = torch.cat([torch.randint(len(tasks[t].classnames), (per_task,), generator=generator)
                            for t in range(len(tasks))])
        batches.append((torch.randn(len(task_ids), 3, 64, 64, generator=generator), labels, task_ids))
    return batches


@pytest.mark.parametrize("name,overrides", [("vpt", {}), ("maple", {"prompt_depth": 3}),
                                            ("mmap", {"prompt_depth": 3, "n_ctx": 2})],
                         ids=["vpt", "maple", "mmap"])
def test_st_task_trains_as_if_alone(tiny_clip, name, overrides):
    tasks = mixed_tasks()
    multi = build_method(method_cfg(name, mode="st", **overrides), tiny_clip, tasks, seed=5)
    alone = build_method(method_cfg(name, mode="st", **overrides), tiny_clip, tasks[1:2], seed=5)
    batches = make_batches(3, tasks)
    single = [(x[t == 1], y[t == 1], torch.zeros_like(t[t == 1])) for x, y, t in batches]
    before = {n: p.detach().clone() for n, p in multi.trainable_parameters()}
    train_steps(multi, batches, 3)
    train_steps(alone, single, 1)
    for (n, p), (_, q) in zip(multi.trainable_parameters(), alone.trainable_parameters()):
        assert p.shape[0] == 3 and q.shape[0] == 1
        assert not torch.equal(p[1], before[n][1])
        # Equal up to float rounding: the batched GEMMs see 6 images (3 tasks) instead of 2,
        # which changes summation order on CPU, not the mathematics.
        torch.testing.assert_close(p[1], q[0], atol=1e-6, rtol=1e-5)


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


def test_grouped_uses_each_tasks_group_and_own_prompts(tiny_clip):
    cfg = method_cfg("mmap", mode="grouped", prompt_depth=2, n_ctx=2, n_task_ctx=2,
                     **{"grouping.strategy": "manual", "grouping.groups": [["task0", "task1"], ["task2"]]})
    method = build_method(cfg, tiny_clip, mixed_tasks()).eval()
    images = torch.randn(6, 3, 64, 64)
    task_ids = torch.tensor([0, 0, 1, 1, 2, 2])

    def changed(parameter, index):
        with torch.no_grad():
            base = method(images, task_ids)
            parameter[index] += 0.5
            method.invalidate_cache()
            after = method(images, task_ids)
            parameter[index] -= 0.5
            method.invalidate_cache()
        per_sample = (base != after).any(dim=1)
        return sorted({int(t) for t in task_ids[per_sample]})

    assert method.groups == [[0, 1], [2]]
    assert changed(method.group_prompts.source, 0) == [0, 1]
    assert changed(method.group_prompts.vision_factor, 1) == [2]
    assert changed(method.task_prompts.source, 1) == [1]
    assert changed(method.task_prompts.text_factor, 2) == [2]
    n_params = sum(p.numel() for _, p in method.trainable_parameters())
    d_s, depth = 32, 2  # gcd(64, 96); (2 groups x 2 tokens + 3 tasks x 2 tokens) per layer
    assert n_params == depth * ((2 + 3) * 2 * d_s + (2 + 3) * (64 // d_s + 96 // d_s))


def assert_only_own_parameters_train(tiny_clip, name, overrides):
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


@pytest.mark.parametrize("name,overrides", CASES, ids=IDS)
def test_clip_frozen_and_prompts_trained(tiny_clip, name, overrides):
    assert_only_own_parameters_train(tiny_clip, name, overrides)


def officehome_like_tasks():
    return [SimpleNamespace(name=d, classnames=tuple(f"class {i}" for i in range(65)))
            for d in ("Art", "Clipart", "Product", "Real_World")]


def test_vit_b16_counts(vit_b16_clip):
    tasks = officehome_like_tasks()

    def count(name, **overrides):
        method = build_method(method_cfg(name, **overrides), vit_b16_clip, tasks)
        return sum(p.numel() for _, p in method.trainable_parameters())

    assert sum(p.numel() for p in vit_b16_clip.model.parameters()) == CLIP_B16_TOTAL
    expected = {
        ("vpt", "mt"): 8 * 768 * 12,                                  # 73,728
        ("maple", "mt"): 2 * 512 + 8 * 2 * 512 + 9 * (512 * 768 + 768),  # 3,555,072
        ("mmap", "mt"): 12 * (8 * 256 + 2 + 3),                        # 24,636
    }
    assert expected[("maple", "mt")] == 3_555_072
    for (name, _), value in expected.items():
        assert count(name, mode="mt") == value
        assert count(name, mode="st") == 4 * value
    assert count("vpt", deep=False) == 8 * 768
    groups = [["Art", "Clipart"], ["Product", "Real_World"]]
    assert count("mmap", mode="grouped", **{"grouping.strategy": "manual", "grouping.groups": groups}) \
        == (2 + 4) * 24_636 == 147_816


def duck_data(tasks, size, steps=1, per_task=2):
    """A stand-in with MultiTaskData's train interface (the real one is used in test_grouping)."""
    batches = [MultiTaskBatch(F.interpolate(x, size=size), y, t) for x, y, t in make_batches(steps, tasks, per_task)]
    return SimpleNamespace(task_names=[t.name for t in tasks], train_loader=lambda epoch, start=0: batches)


@pytest.mark.parametrize("name,overrides", [
    ("vpt", {"mode": "mt"}), ("vpt", {"mode": "st"}), ("maple", {"mode": "mt", "prompt_depth": 2}),
    ("maple", {"mode": "st", "prompt_depth": 2}), ("mmap", {"mode": "mt"}), ("mmap", {"mode": "st"}),
    ("mmap", {"mode": "grouped"})])
def test_vit_l14_widths_one_step(vit_l14_widths_clip, name, overrides):
    tasks = mixed_tasks()
    method = build_method(method_cfg(name, **overrides), vit_l14_widths_clip, tasks)
    train_cfg = OmegaConf.merge(sgd_cfg(), {"precision": "fp32", "task_loss": "sum"})
    if hasattr(method, "prepare"):
        method.prepare(duck_data(tasks, 28), train_cfg, torch.device("cpu"), None)
    before = {n: p.detach().clone() for n, p in method.trainable_parameters()}
    batch = make_batches(1, tasks, per_task=1)[0]
    images = F.interpolate(batch[0], size=28)
    train_steps(method, [(images, batch[1], batch[2])], 3)
    assert all(not torch.equal(p, before[n]) for n, p in method.trainable_parameters())


@pytest.mark.parametrize("name", ["vpt", "maple", "mmap"])
def test_prompt_deeper_than_the_model_is_a_clear_error(name, tiny_clip):
    from bench.methods import MethodError
    with pytest.raises(MethodError, match=r"method.prompt_depth=7, but the model has 4"):
        build_method(method_cfg(name, prompt_depth=7, mode="mt"), tiny_clip, make_tasks(2))


def test_maple_default_depth_is_nine_or_the_whole_shallower_model(tiny_clip, vit_b16_clip):
    assert build_method(method_cfg("maple"), vit_b16_clip, make_tasks(1)).prompt_depth == 9
    assert build_method(method_cfg("maple"), tiny_clip, make_tasks(1)).prompt_depth == 4
