"""The body of `python -m bench.pretrain_toy` (bench/pretrain_toy.py documents the recipe and
takes the command line): render the toy images, pretrain the tiny CLIP contrastively, write
the fp16 checkpoint with its loss curve.  Kept apart from the command so that its `--help`
and argument errors never import torch."""
from __future__ import annotations

import argparse
import csv
import hashlib
import io
import math
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from bench.clip import TowerPrompts
from bench.datasets.toy import CLASSES, DOMAINS, render_image
from bench.models import build_clip

PROBE_PER_CLASS = 40
LOGIT_SCALE = 100.0   # the released CLIPs' learned scale (at open_clip's clamp)
MAX_TEXT_PROMPTS, MAX_VISUAL_PROMPTS = 16, 8
TEMPLATES = ("a {style} of a {shape}.", "a {shape}.", "a {style} of the {shape}.", "{shape}.",
             "a picture of a {shape}.", "a drawing of a small {shape}.", "a {shape} in {style} style.",
             "this is a {style} of a big {shape}.", "a photo of a {shape}.")
STYLE_TEMPLATES = ("a {style} of a {shape}.", "a {style} of the {shape}.", "a {shape} in {style} style.",
                   "this is a {style} of a big {shape}.", "a {style} showing a {shape}.")
ZERO_SHOT_TEMPLATE = "a photo of a {}."  # the zeroshot method's default, for the probe


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def render_pool(styles, per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(uint8 images (N, 3, H, W), shape labels, style indices into `styles`), drawn as the
    benchmark draws them (photo and painting go through JPEG, as the benchmark stores them)."""
    rng = np.random.default_rng(seed)
    images, shapes, style_ids = [], [], []
    for s, style in enumerate(styles):
        for c, shape in enumerate(CLASSES):
            for _ in range(per_class):
                image = render_image(style, shape, rng)
                if style in ("photo", "painting"):
                    buffer = io.BytesIO()
                    image.save(buffer, format="JPEG", quality=90)
                    image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
                images.append(np.asarray(image))
                shapes.append(c)
                style_ids.append(s)
    return (torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous(),
            torch.tensor(shapes), torch.tensor(style_ids))


def random_resized_crops(images: torch.Tensor, scale: tuple[float, float], gen: torch.Generator) -> torch.Tensor:
    """Per image: a crop of area fraction ~ U(scale), aspect ratio log-uniform in [3/4, 4/3],
    resized back (the benchmark's RandomResizedCrop, drawn from `gen`)."""
    from torchvision.transforms.v2 import functional as TF
    n, _, h, w = images.shape
    out = torch.empty_like(images)
    area = torch.empty(n).uniform_(*scale, generator=gen)
    log_ratio = torch.empty(n).uniform_(math.log(3 / 4), math.log(4 / 3), generator=gen)
    u = torch.rand(n, 2, generator=gen)
    for i in range(n):
        ratio = math.exp(log_ratio[i])
        cw = min(w, max(1, round(math.sqrt(area[i] * h * w * ratio))))
        ch = min(h, max(1, round(math.sqrt(area[i] * h * w / ratio))))
        top, left = int(u[i, 0] * (h - ch + 1)), int(u[i, 1] * (w - cw + 1))
        out[i] = TF.resized_crop(images[i], top, left, ch, cw, [h, w], antialias=True)
    return out


def normalize(images_u8: torch.Tensor, mean, std) -> torch.Tensor:
    x = images_u8.float() / 255.0
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def multi_positive_loss(logits: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """Mean over rows of -log(total softmax probability of the row's positives)."""
    log_probs = logits.log_softmax(1)
    return -torch.logsumexp(log_probs.masked_fill(~positive, -1e9), 1).mean()


class Pretrainer:
    """The state of one pretraining run: model, data, optimiser and the seeded generator."""

    def __init__(self, args):
        self.args = args
        torch.manual_seed(args.seed)  # open_clip's initialisation draws from the global generator
        self.clip = build_clip("cpb-tiny", "none")
        self.clip.model.requires_grad_(True)
        with torch.no_grad():  # the temperature is fixed at CLIP's, not learned (docstring)
            self.clip.model.logit_scale.fill_(math.log(LOGIT_SCALE))
        self.clip.model.logit_scale.requires_grad_(False)
        self.clip.train()
        cfg = self.clip.preprocess_cfg
        self.mean, self.std = cfg["mean"], cfg["std"]
        self.styles = [d for d in DOMAINS if d not in args.held_out]
        self.pool, self.pool_shape, self.pool_style = render_pool(self.styles, args.per_class, args.seed)
        probe, self.probe_shape, self.probe_style = render_pool(list(DOMAINS), PROBE_PER_CLASS, args.seed + 1)
        self.probe = normalize(probe, self.mean, self.std)
        self.templates = STYLE_TEMPLATES if args.positives == "style_shape" else TEMPLATES
        self.gen = torch.Generator().manual_seed(args.seed)
        named = list(self.clip.model.named_parameters())
        decay = [p for n, p in named if p.ndim >= 2 and "embedding" not in n]
        rest = [p for n, p in named if not (p.ndim >= 2 and "embedding" not in n)]
        self.optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                                            {"params": rest, "weight_decay": 0.0}], lr=args.lr)
        self._tokens: dict[str, torch.Tensor] = {}

    def lr_at(self, step: int) -> float:
        a = self.args
        if step < a.warmup:
            return a.lr * (step + 1) / a.warmup
        return a.lr * 0.5 * (1 + math.cos(math.pi * (step - a.warmup) / max(1, a.steps - a.warmup)))

    def tokens(self, texts: list[str]) -> torch.Tensor:
        missing = [t for t in texts if t not in self._tokens]
        if missing:
            self._tokens.update(zip(missing, self.clip.tokenize(missing)))
        return torch.stack([self._tokens[t] for t in texts])

    def random_prompts(self, batch: int, n_tokens: int, width: int, depth: int) -> TowerPrompts:
        """Random input prompts, and (half the time) random deep prompts at every later layer."""
        std, gen = self.args.prompt_std, self.gen
        first = torch.randn(batch, n_tokens, width, generator=gen) * std
        deep = {}
        if torch.rand((), generator=gen).item() < 0.5:
            deep = {i: torch.randn(batch, n_tokens, width, generator=gen) * std for i in range(1, depth)}
        return TowerPrompts(input=first, deep=deep)

    def step(self, step: int) -> float:
        a, gen, clip = self.args, self.gen, self.clip
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_at(step)
        idx = torch.randint(len(self.pool), (a.batch,), generator=gen)
        images = random_resized_crops(self.pool[idx], (a.crop, 1.0), gen)
        flip = torch.rand(a.batch, generator=gen) < 0.5
        images = normalize(torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images), self.mean, self.std)
        shapes, styles = self.pool_shape[idx], self.pool_style[idx]
        template = torch.randint(len(self.templates), (a.batch,), generator=gen).tolist()
        texts = [self.templates[k].format(style=self.styles[s], shape=CLASSES[c])
                 for k, s, c in zip(template, styles.tolist(), shapes.tolist())]
        soft = torch.rand((), generator=gen).item() < a.soft_steps
        if soft:  # CoOp-like: n placeholders, one random context shared by the batch's captions
            n_ctx = int(torch.randint(1, MAX_TEXT_PROMPTS + 1, (), generator=gen))
            texts = [("X " * n_ctx + CLASSES[c] + ".") if i < a.batch // 2 else t
                     for i, (t, c) in enumerate(zip(texts, shapes.tolist()))]
        is_soft = torch.tensor([t.startswith("X ") for t in texts])
        unique = sorted(set(texts))
        order = [t for t in unique if not t.startswith("X ")] + [t for t in unique if t.startswith("X ")]
        n_hard = len(order) - int(soft) * len({t for t in texts if t.startswith("X ")})
        features = [clip.encode_text(self.tokens(order[:n_hard]))]
        if soft:
            prompts = self.random_prompts(1, n_ctx, clip.text_width, clip.text_depth)
            features.append(clip.encode_text(self.tokens(order[n_hard:]), prompts=prompts))
        text = torch.cat(features)[torch.tensor([order.index(t) for t in texts])]
        visual = None
        if torch.rand((), generator=gen).item() < a.visual_steps:
            n_visual = int(torch.randint(1, MAX_VISUAL_PROMPTS + 1, (), generator=gen))
            visual = self.random_prompts(a.batch, n_visual, clip.vision_width, clip.vision_depth)
        image = clip.encode_image(images, prompts=visual)
        logits = clip.model.logit_scale.exp().clamp(max=100) * image @ text.T  # image i x caption j
        positive = shapes.view(-1, 1) == shapes.view(1, -1)
        if a.positives == "style_shape":  # soft captions name no style: positives by shape
            positive = positive & ((styles.view(-1, 1) == styles.view(1, -1)) | is_soft.view(1, -1))
        loss = (multi_positive_loss(logits, positive) + multi_positive_loss(logits.T, positive.T)) / 2
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.item()

    @torch.no_grad()
    def probe_cosines(self) -> torch.Tensor:
        """Cosines of the probe images with the zero-shot prompts of the 5 shapes."""
        self.clip.eval()
        text = self.clip.encode_text(self.tokens([ZERO_SHOT_TEMPLATE.format(c) for c in CLASSES]))
        cosines = self.clip.encode_image(self.probe) @ text.T
        self.clip.train()
        return cosines

    def probe_accuracy(self) -> dict[str, float]:
        hits = self.probe_cosines().argmax(-1) == self.probe_shape
        return {f"zeroshot_{d}": 100 * hits[self.probe_style == s].float().mean().item()
                for s, d in enumerate(DOMAINS)}

def save_curve(rows: list[dict], out: Path, held_out: list[str]) -> None:
    keys = ["step", "loss", "lr"] + [f"zeroshot_{d}" for d in DOMAINS]
    with open(out.with_suffix(".csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    steps = np.array([r["step"] for r in rows])
    loss = np.array([r["loss"] for r in rows])
    window = max(1, min(25, len(loss)))
    smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
    left.plot(steps, loss, color="0.8", lw=0.6, label="per step")
    left.plot(steps[window - 1:], smooth, color="C0", label=f"mean of {window}")
    left.set(xlabel="step", ylabel="contrastive loss", title="pretraining loss")
    left.legend()
    probed = [r for r in rows if r.get("zeroshot_photo") is not None]
    for d in DOMAINS:
        right.plot([r["step"] for r in probed], [r[f"zeroshot_{d}"] for r in probed], marker="o", ms=3,
                   label=d + (" (held out)" if d in held_out else ""))
    right.axhline(20, color="0.5", ls=":", lw=0.8)
    right.set(xlabel="step", ylabel="accuracy (%)", ylim=(0, 100),
              title=f'zero-shot "{ZERO_SHOT_TEMPLATE}", fresh images')
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=100, metadata={"Software": None})
    plt.close(fig)


def pretrain(args: argparse.Namespace) -> Path:
    """Pretrain with the command's arguments; returns the checkpoint's path."""
    torch.set_num_threads(1)  # bit-exact results need a fixed reduction order
    started = time.perf_counter()
    trainer = Pretrainer(args)
    print(f"rendered {len(trainer.pool)} training and {len(trainer.probe)} probe images "
          f"({time.perf_counter() - started:.0f} s)", flush=True)
    rows = []
    bar = tqdm(range(args.steps), desc="pretraining the tiny CLIP", disable=args.no_progress, mininterval=2)
    for step in bar:
        row = {"step": step + 1, "loss": trainer.step(step), "lr": trainer.lr_at(step)}
        if (step + 1) % args.probe_every == 0 or step + 1 == args.steps:
            row.update(trainer.probe_accuracy())
            bar.write(f"step {step + 1}: loss {row['loss']:.3f}, zero-shot on fresh images: "
                      + ", ".join(f"{d} {row['zeroshot_' + d]:.0f}%" for d in DOMAINS))
        bar.set_postfix(loss=f"{row['loss']:.3f}", refresh=False)
        rows.append(row)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(torch.float16) if v.is_floating_point() else v
             for k, v in trainer.clip.model.state_dict().items()}
    buffer = io.BytesIO()  # saved through a buffer: the archive's inner folder is then "archive",
    torch.save(state, buffer)  # not the file's name, so the bytes do not depend on --out
    out.write_bytes(buffer.getvalue())
    save_curve(rows, out, args.held_out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, "
          f"SHA-256 {sha256(out)}) in {time.perf_counter() - started:.0f} s")
    return out
