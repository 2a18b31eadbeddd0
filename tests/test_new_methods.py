"""CLIP-Adapter, BitFit, LoRA, CoCoOp and CoOp's variants against slow references written from
the papers' formulas (logits and gradients, fp64, tiny model), exact ViT-B/16 counts, frozen
CLIP, per-task routing."""
from __future__ import annotations

import copy
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from conftest import make_tasks, method_cfg
from test_prompt_methods import (
    assert_only_own_parameters_train,
    make_batches,
    mixed_tasks,
    officehome_like_tasks,
    train_steps,
)
from test_speed import test_optimised_step_equals_baseline as check_speedups_exact
from torch import nn

from bench.app import build_method

NEW = [("clip_adapter", {}), ("bitfit", {}), ("lora", {"dropout": 0.0}), ("cocoop", {})]
CASES = [(name, dict(overrides, mode=mode)) for name, overrides in NEW for mode in ("mt", "st")] + [
    ("coop", {"mode": mode, "csc": csc, "class_token_position": position, "n_ctx": 3})
    for mode in ("mt", "st") for csc in (False, True) for position in ("end", "middle", "front")
    if csc or position != "end"]
IDS = [f"{n}-" + "-".join(f"{k}={v}" for k, v in o.items()) for n, o in CASES]
# Class names of 1, 2 and 3 tokens (CoOp's middle/front group them by length), unequal class counts.
VARIED_TASKS = [SimpleNamespace(name="task0", classnames=("dog", "traffic light", "car", "grand piano lid")),
                SimpleNamespace(name="task1", classnames=("tree", "boat", "sea bird")),
                SimpleNamespace(name="task2", classnames=("dog", "traffic light", "car", "grand piano lid"))]


@pytest.fixture(scope="module")
def clip64(tiny_clip):
    """The tiny CLIP in float64, so that reference and method agree to ~1e-12."""
    return copy.deepcopy(tiny_clip).double()


# ---- the slow references: one image / one prompt at a time, plain torch ops ---------------------
def ref_block(block, x, mask=None, qkv_weight=None, bias=lambda name, b: b):
    """One residual block from its formula: x + MHA(LN1 x), then + MLP(LN2 x).  `qkv_weight`
    replaces the fused in-projection weight; `bias(name, pretrained)` gives each bias."""
    attn = block.attn
    d, heads = x.shape[-1], attn.num_heads
    head = d // heads

    def ln(module, name, y):
        return F.layer_norm(y, (d,), module.weight, None, module.eps) + bias(name, module.bias)

    h = ln(block.ln_1, "ln_1.bias", x)
    w = attn.in_proj_weight if qkv_weight is None else qkv_weight
    qkv = h @ w.T + bias("attn.in_proj_bias", attn.in_proj_bias)
    outs = []
    for i in range(heads):
        q, k, v = (qkv[:, j * d + i * head: j * d + (i + 1) * head] for j in range(3))
        scores = q @ k.T / math.sqrt(head) + (0 if mask is None else mask)
        outs.append(torch.softmax(scores, dim=-1) @ v)
    x = x + torch.cat(outs, -1) @ attn.out_proj.weight.T + bias("attn.out_proj.bias", attn.out_proj.bias)
    h = ln(block.ln_2, "ln_2.bias", x)
    hidden = block.mlp.gelu(h @ block.mlp.c_fc.weight.T + bias("mlp.c_fc.bias", block.mlp.c_fc.bias))
    return x + hidden @ block.mlp.c_proj.weight.T + bias("mlp.c_proj.bias", block.mlp.c_proj.bias)


def ref_image(model, image, qkv=None, bias=lambda name, b: b):
    """The unnormalised image embedding; qkv(layer) -> weight or None, bias(full name, b)."""
    visual = model.visual
    x = visual.conv1(image[None])[0].flatten(1).T
    x = torch.cat([visual.class_embedding[None], x]) + visual.positional_embedding
    x = F.layer_norm(x, x.shape[-1:], visual.ln_pre.weight, None, visual.ln_pre.eps) + bias("visual.ln_pre.bias", visual.ln_pre.bias)
    for i, block in enumerate(visual.transformer.resblocks):
        x = ref_block(block, x, None, qkv and qkv("vision", i),
                      lambda n, b, i=i: bias(f"visual.transformer.resblocks.{i}.{n}", b))
    x = F.layer_norm(x, x.shape[-1:], visual.ln_post.weight, None, visual.ln_post.eps) + bias("visual.ln_post.bias", visual.ln_post.bias)
    return x[0] @ visual.proj


def ref_text(model, embeddings, eot, qkv=None, bias=lambda name, b: b):
    """The normalised text feature of one prompt's token embeddings (77, d), pooled at `eot`."""
    x = embeddings + model.positional_embedding
    for i, block in enumerate(model.transformer.resblocks):
        x = ref_block(block, x, model.attn_mask, qkv and qkv("text", i),
                      lambda n, b, i=i: bias(f"transformer.resblocks.{i}.{n}", b))
    x = F.layer_norm(x, x.shape[-1:], model.ln_final.weight, None, model.ln_final.eps) + bias("ln_final.bias", model.ln_final.bias)
    return F.normalize(x[eot] @ model.text_projection, dim=-1)


def template_text(model, tokenizer, text, **kw):
    tokens = tokenizer([text])[0]
    return ref_text(model, model.token_embedding(tokens), int(tokens.argmax()), **kw)


def ref_coop_prompt(method, model, tokenizer, task, c):
    """Reference CoOp: tokenize "X.. X name.", keep [SOS] and the suffix embeddings, insert the
    context at the end / around the name / after the name."""
    name = method.tasks[task].classnames[c]
    m = method.n_ctx
    tokens = tokenizer([" ".join(["X"] * m) + f" {name}."])[0]
    emb = model.token_embedding(tokens)
    prefix, suffix = emb[:1], emb[1 + m:]
    k = int(tokenizer([name])[0].argmax()) - 1
    ctx = method.context[method.context_entry[task, c]] if method.csc else method.context[method.set_of_task[task]]
    half = m // 2
    sequence = {"end": [prefix, ctx, suffix],
                "middle": [prefix, ctx[:half], suffix[:k], ctx[half:], suffix[k:]],
                "front": [prefix, suffix[:k], ctx, suffix[k:]]}[method.position]
    return ref_text(model, torch.cat(sequence), int(tokens.argmax()))


def reference_logits(method, model, images, task_ids):
    """Row b: logit_scale * cos(image_b, class c of task_ids[b]) by each paper's formula, on
    open_clip's unmodified `model`."""
    tokenizer = method.clip.tokenizer
    name = method.cfg.name
    scale = model.logit_scale.exp()
    logits = torch.full((len(images), method.max_classes), float("-inf"), dtype=images.dtype)
    for b, t in enumerate(task_ids.tolist()):
        s = method.set_of_task[t] if hasattr(method, "set_of_task") else 0
        names = method.tasks[t].classnames
        kw = {}
        if name == "lora":
            def qkv(tower, layer, s=s):
                blocks = model.visual.transformer.resblocks if tower == "vision" else model.transformer.resblocks
                delta = torch.cat([getattr(method, f"{tower}_B")[s, layer, j] @ getattr(method, f"{tower}_A")[s, layer, j]
                                   for j in range(3)])
                return blocks[layer].attn.in_proj_weight + method.scale * delta     # W + s B A
            kw = {"qkv": qkv}
        if name == "bitfit":
            kw = {"bias": lambda full, b, s=s: method.biases[full.replace(".", "_")][s]}
        image = ref_image(model, images[b], **kw)
        if name == "clip_adapter":
            adapted = F.relu(method.up[s] @ F.relu(method.down[s] @ image))
            image = method.ratio * adapted + (1 - method.ratio) * image
        image = F.normalize(image, dim=-1)
        if name == "cocoop":
            bias = method.meta_w2[s] @ F.relu(method.meta_w1[s] @ image + method.meta_b1[s]) + method.meta_b2[s]
            text = []
            for c in names:
                tokens = tokenizer([" ".join(["X"] * method.n_ctx) + f" {c}."])[0]
                emb = model.token_embedding(tokens)
                emb = torch.cat([emb[:1], method.context[s] + bias, emb[1 + method.n_ctx:]])
                text.append(ref_text(model, emb, int(tokens.argmax())))
            text = torch.stack(text)
        elif name == "coop":
            text = torch.stack([ref_coop_prompt(method, model, tokenizer, t, c) for c in range(len(names))])
        else:
            text = torch.stack([template_text(model, tokenizer, method.cfg.template.format(c), **kw) for c in names])
        logits[b, :len(names)] = scale * text @ image
    return logits


def randomize(method, seed=0):
    """Random trainable values (LoRA's B included, so its update is not 0)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in method.trainable_parameters():
            p.add_(torch.randn(p.shape, generator=generator, dtype=p.dtype) * 0.2)


@pytest.mark.parametrize("name,overrides", CASES, ids=IDS)
def test_logits_and_gradients_match_slow_reference(clip64, name, overrides):
    method = build_method(method_cfg(name, **overrides), clip64, VARIED_TASKS, seed=3).double().eval()
    randomize(method)
    images = torch.randn(5, 3, 64, 64, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    task_ids = torch.tensor([0, 1, 2, 1, 0])
    labels = torch.tensor([3, 2, 0, 1, 1])
    params = [p for _, p in method.trainable_parameters()]
    got = method(images, task_ids)
    want = reference_logits(method, clip64.model, images, task_ids)
    assert torch.equal(torch.isinf(got), torch.isinf(want))
    finite = torch.isfinite(want)
    torch.testing.assert_close(got[finite], want[finite], atol=1e-10, rtol=1e-10)
    got_grads = torch.autograd.grad(F.cross_entropy(got, labels), params)
    want_grads = torch.autograd.grad(F.cross_entropy(want, labels), params)
    for (n, _), g, w in zip(method.trainable_parameters(), got_grads, want_grads):
        assert w.abs().sum() > 0, n
        torch.testing.assert_close(g, w, atol=1e-10, rtol=1e-8, msg=n)


def test_reference_is_open_clip_without_changes(clip64):
    """The slow reference itself: with no update it is open_clip's own encoder."""
    model, tokenizer = clip64.model, clip64.tokenizer
    images = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    want = model.encode_image(images)
    torch.testing.assert_close(torch.stack([ref_image(model, i) for i in images]), want, atol=1e-12, rtol=0)
    text = template_text(model, tokenizer, "a photo of a dog.")
    torch.testing.assert_close(text, model.encode_text(tokenizer(["a photo of a dog."]), normalize=True)[0],
                               atol=1e-12, rtol=0)


# ---- zero-shot at init, frozen CLIP, routing ----------------------------------------------------
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


@pytest.mark.parametrize("name,overrides", CASES, ids=IDS)
def test_only_own_parameters_train_and_clip_stays_bit_identical(tiny_clip, name, overrides):
    assert_only_own_parameters_train(tiny_clip, name, overrides)


@pytest.mark.parametrize("name,overrides", [c for c in CASES if c[0] != "coop" and c[1]["mode"] == "st"],
                         ids=[i for i, c in zip(IDS, CASES) if c[0] != "coop" and c[1]["mode"] == "st"])
def test_st_task_trains_as_if_alone(tiny_clip, name, overrides):
    tasks = mixed_tasks()
    multi = build_method(method_cfg(name, **overrides), tiny_clip, tasks, seed=5)
    alone = build_method(method_cfg(name, **overrides), tiny_clip, tasks[1:2], seed=5)
    batches = make_batches(3, tasks)
    single = [(x[t == 1], y[t == 1], torch.zeros_like(t[t == 1])) for x, y, t in batches]
    train_steps(multi, batches, 3)
    train_steps(alone, single, 1)
    for (n, p), (_, q) in zip(multi.trainable_parameters(), alone.trainable_parameters()):
        assert p.shape[0] == 3 and q.shape[0] == 1, n
        torch.testing.assert_close(p[1], q[0], atol=1e-6, rtol=1e-5, msg=n)


@pytest.mark.parametrize("name,overrides", [c for c in CASES if c[0] != "coop" or c[1]["mode"] == "st"],
                         ids=[i for i, c in zip(IDS, CASES) if c[0] != "coop" or c[1]["mode"] == "st"])
def test_speedups_are_exact(tiny_clip, name, overrides):
    check_speedups_exact(tiny_clip, name, overrides)


def test_lora_dropout_only_while_training(tiny_clip):
    method = build_method(method_cfg("lora", dropout=0.5), tiny_clip, make_tasks(2), seed=1)
    randomize(method)
    images, task_ids = torch.randn(2, 3, 64, 64), torch.tensor([0, 1])
    with torch.no_grad():
        method.train()
        noisy = [method(images, task_ids) for _ in range(2)]
        method.eval()
        clean = [method(images, task_ids) for _ in range(2)]
    assert not torch.equal(noisy[0], noisy[1]) and torch.equal(clean[0], clean[1])
    method.dropout.p = 1e-12  # the dropout path (a mask per projection) keeps everything: eval's result
    method.train()
    with torch.no_grad():
        torch.testing.assert_close(method(images, task_ids), clean[0], atol=1e-5, rtol=1e-6)


def test_coop_csc_shares_a_class_across_tasks_in_mt_only(tiny_clip):
    tasks = mixed_tasks()  # task0 and task2 have the same four classes, task1 three others
    mt = build_method(method_cfg("coop", csc=True, n_ctx=2), tiny_clip, tasks)
    st = build_method(method_cfg("coop", csc=True, n_ctx=2, mode="st"), tiny_clip, tasks)
    assert mt.context.shape[0] == 7 and st.context.shape[0] == 11
    assert torch.equal(mt.context_entry[0, :4], mt.context_entry[2, :4])
    assert len(set(st.context_entry[0, :4].tolist()) & set(st.context_entry[2, :4].tolist())) == 0


def test_coop_default_is_unchanged(tiny_clip):
    """End position, shared context: the prompt texts and initial context of before."""
    coop = build_method(method_cfg("coop", n_ctx=2), tiny_clip, make_tasks(1))
    assert coop.prompt_texts(0)[0] == "X X dog." and coop.context.shape == (1, 2, 64)
    middle = build_method(method_cfg("coop", n_ctx=3, class_token_position="middle"), tiny_clip, make_tasks(1))
    front = build_method(method_cfg("coop", n_ctx=2, class_token_position="front"), tiny_clip, make_tasks(1))
    assert middle.prompt_texts(0)[0] == "X dog X X." and front.prompt_texts(0)[0] == "dog X X."
    assert torch.equal(middle.context[0, :2], coop.context[0])  # per-name seeded: same draws


# ---- ViT-B/16 trainable counts (random weights, no download) ---------------------------------------
def test_vit_b16_counts(vit_b16_clip):
    tasks = officehome_like_tasks()

    def count(name, **overrides):
        method = build_method(method_cfg(name, **overrides), vit_b16_clip, tasks)
        return sum(p.numel() for _, p in method.trainable_parameters())

    per_set = {
        "clip_adapter": 2 * 512 * 128,                                             # 131,072
        "bitfit": 11 * 12 * 768 + 2 * 768 + 11 * 12 * 512 + 512,                   # 171,008
        "lora": 2 * 3 * 2 * (12 * 512 + 12 * 768),                                 # 184,320
        "cocoop": 4 * 512 + (512 * 32 + 32) + (32 * 512 + 512),                    # 35,360
    }
    assert per_set == {"clip_adapter": 131_072, "bitfit": 171_008, "lora": 184_320, "cocoop": 35_360}
    for name, value in per_set.items():
        assert count(name, mode="mt") == value
        assert count(name, mode="st") == 4 * value
    bitfit = build_method(method_cfg("bitfit"), vit_b16_clip, tasks)
    biases = {n for n, _ in vit_b16_clip.model.named_parameters() if n.endswith("bias")}
    assert {k for k in bitfit.biases} == {n.replace(".", "_") for n in biases}
    assert sum(p.numel() for n, p in vit_b16_clip.model.named_parameters() if n in biases) == 171_008
    assert count("coop", csc=True) == 65 * 16 * 512 == 532_480
    assert count("coop", csc=True, mode="st") == 4 * 532_480
    assert count("coop", class_token_position="middle") == 8_192
