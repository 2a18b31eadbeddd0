"""Slow, obviously-correct references written from the papers' formulas, one image and one
prompt at a time with plain torch ops and open_clip's unmodified model; the method tests
compare every method's logits (and gradients) with them.

Two families:
* `formula_logits`: CLIP-Adapter, BitFit, LoRA, CoCoOp and CoOp's variants, each block from
  its formula (used in float64: agreement to ~1e-12);
* `deep_prompt_logits`: VPT, MaPLe and MmAP, open_clip's own blocks with the prompts
  inserted at every prompted layer.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from helpers import VARIED_TASKS, method_cfg, mixed_tasks

from bench.app import build_method


# ---- CLIP-Adapter, BitFit, LoRA, CoCoOp, CoOp: each block from its formula ------------------------
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


def formula_logits(method, model, images, task_ids):
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


def perturb(method, seed=0):
    """Random trainable values added (LoRA's B included, so its update is not 0)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in method.trainable_parameters():
            p.add_(torch.randn(p.shape, generator=generator, dtype=p.dtype) * 0.2)


# ---- VPT, MaPLe, MmAP: open_clip's blocks with prompts at every prompted layer -----------------
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


def deep_prompt_logits(method, images, task_ids):
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


def randomize(method, scale=0.5, seed=0):
    """Random values everywhere, so that no prompt is trivially 0 or 1."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in method.trainable_parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * scale)


# ---- the checks each method's test file runs over its cases --------------------------------------------
def assert_logits_and_gradients_match_formula(clip64, name, overrides):
    """Logits and gradients of `name` (random trainable values) equal `formula_logits`' in float64."""
    method = build_method(method_cfg(name, **overrides), clip64, VARIED_TASKS, seed=3).double().eval()
    perturb(method)
    images = torch.randn(5, 3, 64, 64, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    task_ids = torch.tensor([0, 1, 2, 1, 0])
    labels = torch.tensor([3, 2, 0, 1, 1])
    params = [p for _, p in method.trainable_parameters()]
    got = method(images, task_ids)
    want = formula_logits(method, clip64.model, images, task_ids)
    assert torch.equal(torch.isinf(got), torch.isinf(want))
    finite = torch.isfinite(want)
    torch.testing.assert_close(got[finite], want[finite], atol=1e-10, rtol=1e-10)
    got_grads = torch.autograd.grad(F.cross_entropy(got, labels), params)
    want_grads = torch.autograd.grad(F.cross_entropy(want, labels), params)
    for (n, _), g, w in zip(method.trainable_parameters(), got_grads, want_grads):
        assert w.abs().sum() > 0, n
        torch.testing.assert_close(g, w, atol=1e-10, rtol=1e-8, msg=n)


def assert_forward_matches_deep_prompts(tiny_clip, name, overrides):
    """The logits of `name` (random prompts) equal `deep_prompt_logits`'."""
    method = build_method(method_cfg(name, **overrides), tiny_clip, mixed_tasks(), seed=3)
    randomize(method)
    images = torch.randn(5, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    task_ids = torch.tensor([0, 1, 2, 1, 0])
    with torch.no_grad():
        got = method(images, task_ids)
        want = deep_prompt_logits(method, images, task_ids)
    assert torch.equal(torch.isinf(got), torch.isinf(want))
    finite = torch.isfinite(want)
    torch.testing.assert_close(got[finite], want[finite], atol=2e-5, rtol=1e-4)
