"""One measurement: a fresh method trained and evaluated for a few steps, on one path
(baseline or fast); and the wrapper timed against open_clip."""
from __future__ import annotations

import contextlib
import copy
import gc
import statistics
import time
from collections import defaultdict

import torch

from bench import distributed
from bench.app import build_method
from bench.clip import PromptableCLIP
from bench.engine import evaluate
from bench.schema import MethodConfig
from bench.seeding import seed_everything
from bench.speedups import SPEEDUPS, speedups
from bench.step import build_grad_scaler, build_optimizer, train_images_fixed, train_step
from bench.speed.instruments import PeakMemory, Timers
from bench.speed.workloads import PARTS


# ---- one measurement ------------------------------------------------------------------------
def build(method_cfg: MethodConfig, clip, tasks, seed: int, device):
    """A fresh method (methods never change the CLIP they are given: full fine-tuning trains a
    private copy), with MmAP's groups fixed and prompt depths cut to small test models."""
    cfg = copy.deepcopy(method_cfg)
    if cfg.name == "mmap" and cfg.mode == "grouped":  # fixed halves: no warm-up in a benchmark
        half = (len(tasks) + 1) // 2
        cfg.grouping.strategy = "manual"
        cfg.grouping.groups = [[t.name for t in tasks[:half]], [t.name for t in tasks[half:]]]
    depth = min(clip.text_depth, clip.vision_depth)
    if getattr(cfg, "prompt_depth", None) is not None and cfg.prompt_depth > depth:  # small test models
        cfg.prompt_depth = depth
    seed_everything(seed)
    return build_method(cfg, clip, tasks, seed=seed).to(device)


def measure(method_cfg, clip, tasks, data, scfg, train_cfg, device, variant: str, augment_values,
            seed: int = 1) -> list[dict]:
    """Rows (one per augmentation setting) for one method config and one variant."""
    rows = []
    with speedups(variant == "fast"):
        method = build(method_cfg, clip, tasks, seed, device)
        trains = bool(method.trainable_parameters()) and scfg.steps > 0
        cacheable = not method.image_depends_on_parameters
        augments = [a for a in augment_values if a or cacheable] if trains else [None]
        instrument_inline = device.type != "cuda"  # CPU: timing costs nothing, so time the same steps
        for augment in augments:
            row = {"method": method_cfg.name, "mode": method.mode, "variant": variant,
                   "augment": augment, "train_ips": None, "peak_mb": None, "split_ms": None}
            if augment is not None:
                row.update(_train(method, data, scfg, train_cfg, device, augment, instrument_inline))
            rows.append(row)
        eval_ips = _evaluate(method, data, scfg, train_cfg, device)
        for row in rows:
            row["eval_ips"] = eval_ips
        _over_ranks(rows)
    del method
    gc.collect()
    return rows


def _over_ranks(rows: list[dict]) -> None:
    """Several processes: images/s of all ranks together, peak memory of the fullest rank."""
    if not distributed.current().distributed:
        return
    for row in rows:
        for key, reduce in (("train_ips", distributed.sum_numbers), ("eval_ips", distributed.sum_numbers),
                            ("peak_mb", distributed.max_numbers)):
            value = reduce([row[key] or 0.0])[0]  # the same rows on every rank: one collective each
            row[key] = value if row[key] is not None else None


def _step(method, optimizer, scaler, batch, device, train_cfg, fixed: bool, timers: Timers, n_tasks: int):
    """The training loop's own step (bench.engine.train_step), timed by part."""
    train_step(method, batch, optimizer, scaler, device, train_cfg, n_tasks, fixed, timed=timers)
    return len(batch.labels)


def _train(method, data, scfg, train_cfg, device, augment: bool, instrument_inline: bool) -> dict:
    method.train()
    method.image_cache.clear()
    optimizer = build_optimizer([p for _, p in method.trainable_parameters()], train_cfg)
    scaler = build_grad_scaler(device, train_cfg)
    fixed = train_images_fixed(augment)
    n_tasks = len(method.tasks)
    warm = Timers(device, False)
    step = 0

    def fetch(timers):
        nonlocal step
        with timers("data"):
            batch = data.train_batch(step, augment)
        step += 1
        return batch

    for _ in range(scfg.warmup_steps):
        _step(method, optimizer, scaler, fetch(warm), device, train_cfg, fixed, warm, n_tasks)
    timers = Timers(device, instrument_inline)
    timers.wrap_towers(method)
    images = 0
    with PeakMemory(device) as memory:
        started = time.perf_counter()
        for _ in range(scfg.steps):
            images += _step(method, optimizer, scaler, fetch(timers), device, train_cfg, fixed, timers, n_tasks)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - started
    if not instrument_inline:  # CUDA: the split from extra, synchronised steps
        timers = Timers(device, True)
        timers.wrap_towers(method)
        started = time.perf_counter()
        for _ in range(scfg.steps):
            _step(method, optimizer, scaler, fetch(timers), device, train_cfg, fixed, timers, n_tasks)
        split_seconds = time.perf_counter() - started
    else:
        split_seconds = seconds
    _unwrap(method)
    steps = scfg.steps
    split = {part: 1000 * timers.seconds[part] / steps for part in PARTS}
    split["other"] = max(0.0, 1000 * split_seconds / steps - sum(split.values()))
    return {"train_ips": images / seconds, "peak_mb": memory.peak_mb, "split_ms": split}


def _unwrap(method) -> None:
    for module in method.modules():
        if isinstance(module, PromptableCLIP):
            module.__dict__.pop("encode_text", None)
            module.__dict__.pop("encode_image", None)


@torch.no_grad()
def _evaluate(method, data, scfg, train_cfg, device) -> float | None:
    """Images/s of an evaluation repeated as each epoch repeats it (train() between them)."""
    if scfg.eval_repeats < 1:
        return None
    images, seconds = 0, 0.0
    for repeat in range(1 + scfg.eval_repeats):
        method.train()  # as between two epochs' evaluations: drops what training invalidates
        started = time.perf_counter()
        evaluate(method, data, "test", device, train_cfg.precision)  # ends in a host sync
        if repeat:  # the first evaluation is the warm-up (fills the caches)
            images, seconds = images + data.eval_images, seconds + time.perf_counter() - started
    return images / seconds if seconds else None


def loader_throughput(data, batches: int) -> float:
    """Images/s of the train loader alone: decoding + augmentation (+ collation, pinning)."""
    loader = data.train_loader(0)
    iterator = iter(loader)
    next(iterator)  # start the workers
    images, started = 0, time.perf_counter()
    for _ in range(batches):
        try:
            images += len(next(iterator)[1])
        except StopIteration:
            iterator = iter(data.train_loader(1))
    return images / (time.perf_counter() - started)


# ---- the wrapper against open_clip ------------------------------------------------------------
WRAPPER_PASSES = ("forward + backward", "forward")


@contextlib.contextmanager
def _positional_embeddings_trainable(clip):
    """Gradients through every block of both towers (as prompt gradients run) for a backward
    timing of a frozen CLIP; restored afterwards."""
    tables = [clip.model.visual.positional_embedding, clip._text.positional_embedding]
    saved = [t.requires_grad for t in tables]
    for table in tables:
        table.requires_grad_(True)
    try:
        yield
    finally:
        for table, flag in zip(tables, saved):
            table.requires_grad_(flag)
            table.grad = None


def wrapper_vs_open_clip(clip, classnames, n_images: int, rounds: int, device) -> list[dict]:
    """Median seconds of open_clip's encode_image / encode_text and of PromptableCLIP's with no
    prompts, speed-ups off (full context, as open_clip) and on, on the same inputs: `n_images`
    images and one task's class prompts; interleaved rounds after one warm-up round.  Eval mode,
    as in evaluation (forward only, open_clip's attention takes PyTorch's fused inference path)."""
    clip.eval()
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(n_images, 3, clip.image_size, clip.image_size, generator=generator).to(device)
    tokens = clip.tokenize([f"a photo of a {name}." for name in classnames]).to(device)
    towers = {"image": (lambda: clip.model.encode_image(images, normalize=True),
                        lambda: clip.encode_image(images)),
              "text": (lambda: clip.model.encode_text(tokens, normalize=True),
                       lambda: clip.encode_text(tokens, truncate=SPEEDUPS.enabled))}
    timers = Timers(device, True)
    rows = []
    with _positional_embeddings_trainable(clip):
        for tower, (reference, wrapper) in towers.items():
            for what in WRAPPER_PASSES:
                seconds = defaultdict(list)
                for round_ in range(1 + rounds):
                    for name, enabled, encode in (("open_clip", True, reference), ("baseline", False, wrapper),
                                                  ("fast", True, wrapper)):
                        timers.seconds.clear()
                        with speedups(enabled), timers(name), torch.set_grad_enabled(what != "forward"):
                            features = encode()
                            if what != "forward":
                                features.sum().backward()
                        if round_:
                            seconds[name].append(timers.seconds[name])
                medians = {name: statistics.median(values) for name, values in seconds.items()}
                rows.append({"tower": tower, "pass": what, **medians})
    return rows
