"""`python -m bench.speed [--baseline|--fast|--compare] [overrides]`: how fast each method
trains and evaluates, with the exact speed-ups of bench/feature_cache.py on and off.

Per method and mode it measures, after warm-up: training images/s, evaluation images/s
(evaluation repeated as every epoch does: the first, warm-up evaluation fills the caches),
peak memory of a training step, and where a step's time goes (text tower, image tower,
backward, data loading; the rest is "other": optimiser, loss, prompt assembly).  `--compare`
(the default) runs the baseline path and the optimised path one after the other in this
process and prints their ratios, so a noisy machine affects both alike.

Peak memory is the growth over the measured training steps above the memory held before
them (weights, optimiser state and caches excluded): on CUDA `max_memory_allocated`, on CPU
the resident set's high-water mark (VmHWM, reset through /proc/self/clear_refs after
`malloc_trim`, so each phase is measured on its own in one process).

Data: `speed.data=synthetic` (default) draws random images for tasks that share Office-Home's
65 class names; `speed.data=real` uses dataset=...'s loaders (workers, pinned memory,
persistent workers from runtime.num_workers) and also times decoding + augmentation alone.
It also times the wrapper against open_clip (`speed.wrapper_rounds`): `PromptableCLIP`'s
encode_image / encode_text with no prompts against the model's own, forward + backward and
forward only, so a slowdown of the wrapper shows as a ratio in every run.
Rows are kept in results/speed.json (keyed by setting, so `-m` sweeps add up) and the table
is written to results/speed.md.
"""
from __future__ import annotations

import contextlib
import copy
import ctypes
import gc
import json
import statistics
import sys
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from bench.data import MultiTaskBatch
from bench.engine import build_grad_scaler, build_optimizer, evaluate, train_images_fixed, train_step
from bench.config import method_config, validate
from bench.errors import guarded
from bench.feature_cache import SPEEDUPS, speedups
from bench.preflight import resolve_num_workers
from bench.run import CONFIG_DIR, resolve_device, seed_everything

OFFICE_HOME_CLASSES = tuple(name.replace("_", " ") for name in (
    "Alarm_Clock Backpack Batteries Bed Bike Bottle Bucket Calculator Calendar Candles Chair "
    "Clipboards Computer Couch Curtains Desk_Lamp Drill Eraser Exit_Sign Fan File_Cabinet Flipflops "
    "Flowers Folder Fork Glasses Hammer Helmet Kettle Keyboard Knives Lamp_Shade Laptop Marker Monitor "
    "Mop Mouse Mug Notebook Oven Pan Paper_Clip Pen Pencil Postit_Notes Printer Push_Pin Radio "
    "Refrigerator Ruler Scissors Screwdriver Shelf Sink Sneakers Soda Speaker Spoon TV Table Telephone "
    "ToothBrush Toys Trash_Can Webcam").split())
VARIANTS = {"compare": ("baseline", "fast"), "fast": ("fast",), "baseline": ("baseline",)}
PARTS = ("text", "image", "backward", "data")


# ---- what to measure ------------------------------------------------------------------------
def method_configs(cfg: DictConfig) -> list[DictConfig]:
    """Resolved method configs to benchmark: `method=...` on the command line picks that one,
    else `speed.methods` (all: every registered method in each of its modes)."""
    from methods import METHODS

    chosen = [o.split("=", 1)[1] for o in _task_overrides() if o.split("=", 1)[0] == "method"]
    if chosen:
        return [cfg.method]
    wanted = cfg.speed.methods
    if wanted == "all":
        wanted = [f"{name}:{mode}" for name in METHODS for mode in METHODS[name].modes]
    out = []
    for item in wanted:
        name, _, mode = str(item).partition(":")
        method = OmegaConf.load(Path(CONFIG_DIR) / "method" / f"{name}.yaml").method
        if mode:
            method.mode = mode
        out.append(method_config(method))
    return out


def _task_overrides() -> list[str]:
    try:
        return list(HydraConfig.get().overrides.task)
    except ValueError:  # not under Hydra (tests)
        return []


def synthetic_tasks(n_tasks: int, n_classes: int) -> list[SimpleNamespace]:
    names = [OFFICE_HOME_CLASSES[c % len(OFFICE_HOME_CLASSES)] + ("" if c < len(OFFICE_HOME_CLASSES)
             else f" {c // len(OFFICE_HOME_CLASSES)}") for c in range(n_classes)]
    return [SimpleNamespace(name=f"task{t}", classnames=tuple(names)) for t in range(n_tasks)]


class SyntheticData:
    """Random images as a seeded loader would give them: sample i of an epoch is a pure function
    of (i, epoch) with augmentation, of i alone without.  An epoch has `epoch_steps` steps."""

    unreadable = "skip"  # every synthetic image is readable

    def __init__(self, n_tasks: int, n_classes: int, batch_size: int, epoch_steps: int,
                 eval_per_task: int, image_size: int):
        self.n_tasks, self.n_classes, self.batch = n_tasks, n_classes, batch_size
        self.epoch_steps, self.eval_per_task, self.size = max(1, epoch_steps), eval_per_task, image_size

    def _images(self, indices, salt: int) -> torch.Tensor:
        return torch.stack([torch.randn(3, self.size, self.size,
                                        generator=torch.Generator().manual_seed(int(i) * 1_000_003 + salt))
                            for i in indices])

    def _batch(self, indices: torch.Tensor, per_task: int, salt: int) -> MultiTaskBatch:
        tasks = torch.arange(self.n_tasks).repeat_interleave(per_task)
        labels = indices % self.n_classes
        return MultiTaskBatch((self._images(indices, salt), labels, tasks, 0), indices)

    def train_batch(self, step: int, augment: bool) -> MultiTaskBatch:
        epoch, slot = divmod(step, self.epoch_steps)
        pool = self.batch * self.epoch_steps
        indices = torch.cat([t * pool + slot * self.batch + torch.arange(self.batch) for t in range(self.n_tasks)])
        return self._batch(indices, self.batch, epoch + 1 if augment else 0)

    @property
    def task_names(self) -> list[str]:
        return [f"task{t}" for t in range(self.n_tasks)]

    @property
    def eval_images(self) -> int:
        return self.n_tasks * self.eval_per_task

    def eval_loader(self, split: str) -> list[MultiTaskBatch]:
        """One fixed batch of every task (what bench.engine.evaluate iterates)."""
        return [self._batch(torch.arange(self.eval_images), self.eval_per_task, 0)]


class RealData:
    """The dataset's own loaders (as bench.run builds them), cycled over epochs."""

    def __init__(self, data):
        self.data, self.task_names, self.unreadable = data, data.task_names, data.unreadable
        self.eval_images = sum(len(t.test) for t in data.dataset.tasks)
        self._iter, self._epoch = None, -1

    def train_batch(self, step: int, augment: bool):
        while True:
            if self._iter is None:
                self._epoch += 1
                self._iter = iter(self.data.train_loader(self._epoch))
            try:
                return next(self._iter)
            except StopIteration:
                self._iter = None

    def eval_loader(self, split: str):
        return self.data.eval_loader(split)


# ---- instruments ----------------------------------------------------------------------------
class Timers:
    """Wall time per part; `sync` (CUDA) makes a part's time its own at the cost of syncs."""

    def __init__(self, device: torch.device, enabled: bool):
        self.device, self.enabled = device, enabled
        self.seconds: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def __call__(self, part: str):
        if not self.enabled:
            yield
            return
        self._sync()
        start = time.perf_counter()
        try:
            yield
        finally:
            self._sync()
            self.seconds[part] += time.perf_counter() - start

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def wrap_towers(self, method) -> None:
        from bench.clip import PromptableCLIP
        for module in method.modules():
            if isinstance(module, PromptableCLIP):
                for name, part in (("encode_text", "text"), ("encode_image", "image")):
                    original = getattr(type(module), name).__get__(module)
                    setattr(module, name, self._timed(original, part))

    def _timed(self, function, part):
        def timed(*args, **kwargs):
            with self(part):
                return function(*args, **kwargs)
        return timed


class PeakMemory:
    """Growth of memory over a phase: CUDA max allocated, or the CPU resident high-water mark."""

    def __init__(self, device: torch.device):
        self.device, self.start, self.peak_mb = device, 0, 0.0

    def __enter__(self):
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start = torch.cuda.memory_allocated(self.device)
        else:
            with contextlib.suppress(OSError, AttributeError):
                ctypes.CDLL("libc.so.6").malloc_trim(0)
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # reset VmHWM to the current resident set
            self.start = _status_kb("VmRSS") * 1024
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
        else:
            peak = _status_kb("VmHWM") * 1024
        self.peak_mb = (peak - self.start) / 2**20


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


# ---- one measurement ------------------------------------------------------------------------
def build(method_cfg, clip, tasks, seed: int, device):
    """A fresh method on a private copy of CLIP when it trains CLIP itself (full)."""
    from methods import build_method
    cfg = copy.deepcopy(method_cfg)
    if cfg.name == "mmap" and cfg.mode == "grouped":  # fixed halves: no warm-up in a benchmark
        half = (len(tasks) + 1) // 2
        cfg.grouping.strategy = "manual"
        cfg.grouping.groups = [[t.name for t in tasks[:half]], [t.name for t in tasks[half:]]]
    depth = min(clip.text_depth, clip.vision_depth)
    if "prompt_depth" in cfg and cfg.prompt_depth is not None and cfg.prompt_depth > depth:  # small test models
        cfg.prompt_depth = depth
    seed_everything(seed)
    base = copy.deepcopy(clip) if cfg.name == "full" else clip
    return build_method(cfg, base, tasks, seed=seed).to(device)


def measure(method_cfg, clip, tasks, data, scfg, train_cfg, device, variant: str, augment_values,
            seed: int = 1) -> list[dict]:
    """Rows (one per augmentation setting) for one method config and one variant."""
    rows = []
    with speedups(variant == "fast"):
        method = build(method_cfg, clip, tasks, seed, device)
        trains = bool(method.trainable_parameters()) and int(scfg.steps) > 0
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
    del method
    gc.collect()
    return rows


def _step(method, optimizer, scaler, batch, device, train_cfg, fixed: bool, timers: Timers, n_tasks: int):
    """The training loop's own step (bench.engine.train_step), timed by part."""
    train_step(method, batch, optimizer, scaler, device, train_cfg, n_tasks, fixed, timed=timers)
    return len(batch[1])


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

    for _ in range(int(scfg.warmup_steps)):
        _step(method, optimizer, scaler, fetch(warm), device, train_cfg, fixed, warm, n_tasks)
    timers = Timers(device, instrument_inline)
    timers.wrap_towers(method)
    images = 0
    with PeakMemory(device) as memory:
        started = time.perf_counter()
        for _ in range(int(scfg.steps)):
            images += _step(method, optimizer, scaler, fetch(timers), device, train_cfg, fixed, timers, n_tasks)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - started
    if not instrument_inline:  # CUDA: the split from extra, synchronised steps
        timers = Timers(device, True)
        timers.wrap_towers(method)
        started = time.perf_counter()
        for _ in range(int(scfg.steps)):
            _step(method, optimizer, scaler, fetch(timers), device, train_cfg, fixed, timers, n_tasks)
        split_seconds = time.perf_counter() - started
    else:
        split_seconds = seconds
    _unwrap(method)
    steps = int(scfg.steps)
    split = {part: 1000 * timers.seconds[part] / steps for part in PARTS}
    split["other"] = max(0.0, 1000 * split_seconds / steps - sum(split.values()))
    return {"train_ips": images / seconds, "peak_mb": memory.peak_mb, "split_ms": split}


def _unwrap(method) -> None:
    from bench.clip import PromptableCLIP
    for module in method.modules():
        if isinstance(module, PromptableCLIP):
            module.__dict__.pop("encode_text", None)
            module.__dict__.pop("encode_image", None)


@torch.no_grad()
def _evaluate(method, data, scfg, train_cfg, device) -> float | None:
    """Images/s of an evaluation repeated as each epoch repeats it (train() between them)."""
    if int(scfg.eval_repeats) < 1:
        return None
    images, seconds = 0, 0.0
    for repeat in range(1 + int(scfg.eval_repeats)):
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


def wrapper_table(rows: list[dict]) -> str:
    lines = ["| tower | pass | open_clip s | wrapper, baseline s | open_clip / wrapper | wrapper, fast s "
             "| open_clip / wrapper |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['tower']} | {r['pass']} | {r['open_clip']:.3f} | {r['baseline']:.3f} "
                     f"| {r['open_clip'] / r['baseline']:.2f}x | {r['fast']:.3f} | {r['open_clip'] / r['fast']:.2f}x |")
    return "\n".join(lines)


# ---- the table --------------------------------------------------------------------------------
def _fmt(value, digits=2):
    return "–" if value is None else f"{value:.{digits}f}"


def _ratio(fast, base, invert=False):
    if fast is None or base is None or not fast or not base:
        return "–"
    return f"{(base / fast) if invert else (fast / base):.1f}x"


def _split(split):
    if not split:
        return "–"
    return "/".join(f"{split[p] / 1000:.2f}" for p in (*PARTS, "other"))


def table(rows: list[dict]) -> str:
    """Markdown table: one line per (setting, method, mode, augmentation), fast vs baseline."""
    by_key: dict[tuple, dict] = {}
    for row in rows:
        key = (row["setting"], row["method"], row["mode"], row["augment"])
        by_key.setdefault(key, {})[row["variant"]] = row
    head = ("| method | mode | augment | train img/s fast | baseline | speed-up | eval img/s fast | baseline "
            "| speed-up | peak MB fast | baseline | lower by | split s/step fast (text/image/bwd/data/other) "
            "| split baseline |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    settings = []
    for (setting, method, mode, augment), variants in by_key.items():
        if setting not in settings:
            settings.append(setting)
        fast, base = variants.get("fast", {}), variants.get("baseline", {})
        aug = {None: "–", True: "on", False: "off"}[augment]
        lines.append(
            f"| {method} | {mode} | {aug} | {_fmt(fast.get('train_ips'))} | {_fmt(base.get('train_ips'))} "
            f"| {_ratio(fast.get('train_ips'), base.get('train_ips'))} | {_fmt(fast.get('eval_ips'))} "
            f"| {_fmt(base.get('eval_ips'))} | {_ratio(fast.get('eval_ips'), base.get('eval_ips'))} "
            f"| {_fmt(fast.get('peak_mb'), 0)} | {_fmt(base.get('peak_mb'), 0)} "
            f"| {_ratio(fast.get('peak_mb'), base.get('peak_mb'), invert=True)} "
            f"| {_split(fast.get('split_ms'))} | {_split(base.get('split_ms'))} |")
    return "\n".join(lines), settings


def write_report(all_rows: list[dict], path: Path, extras: dict) -> str:
    text_parts = ["# Speed: optimised vs baseline path (`python -m bench.speed`)\n",
                  "Images/s after warm-up; evaluation repeated as every epoch repeats it (the first, "
                  "warm-up evaluation fills the caches and is not counted). Peak MB: growth over the "
                  "measured training steps (CUDA max allocated, or CPU resident high-water mark reset "
                  "per phase). Split: seconds per training step in the text tower, image tower, "
                  "backward, data loading, and the rest. Baseline = every speed-up of "
                  "bench/feature_cache.py off.\n"]
    settings = {}
    for row in all_rows:
        settings.setdefault(row["setting"], row["setting_info"])
    for setting, info in settings.items():
        rows = [r for r in all_rows if r["setting"] == setting]
        body, _ = table(rows)
        text_parts.append(f"## {info['title']}\n\n`{info['command']}` ({info['when']})\n\n{body}\n")
        if info.get("wrapper"):
            text_parts.append(f"{info['wrapper_title']}\n\n{wrapper_table(info['wrapper'])}\n")
        for line in info.get("notes", []):
            text_parts.append(f"- {line}")
        text_parts.append("")
    text = "\n".join(text_parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return text


# ---- the command ------------------------------------------------------------------------------
def run_speed(cfg: DictConfig, command: str = "python -m bench.speed") -> list[dict]:
    from bench.data import MultiTaskData
    from bench.models import build_clip

    validate(cfg)
    scfg = cfg.speed
    device = resolve_device(cfg.runtime.device)
    clip = build_clip(cfg.model.arch, cfg.model.pretrained, cfg.model.cache_dir, cfg.model.quick_gelu).to(device)
    train_cfg = copy.deepcopy(cfg.train)
    train_cfg.batch_size = int(scfg.batch_size)
    notes = []
    if scfg.data == "synthetic":
        tasks = synthetic_tasks(int(scfg.tasks), int(scfg.classes))
        data = SyntheticData(len(tasks), int(scfg.classes), int(scfg.batch_size), int(scfg.warmup_steps),
                             int(scfg.eval_images), clip.image_size)
        what = f"synthetic, {len(tasks)} tasks x {scfg.classes} classes"
    elif scfg.data == "real":
        from datasets import build_dataset
        dataset = build_dataset(cfg.dataset)
        tasks = dataset.tasks
        loaders = MultiTaskData(dataset, clip, train_cfg, seed=int(cfg.seed),
                                num_workers=resolve_num_workers(cfg.runtime.num_workers),
                                pin_memory=device.type == "cuda", unreadable=cfg.dataset.unreadable)
        data = RealData(loaders)
        ips = loader_throughput(loaders, int(scfg.loader_batches))
        notes.append(f"data loading alone (decode + augment + collate, {loaders.loader_args['num_workers']} workers, "
                     f"persistent, pin_memory={device.type == 'cuda'}): {ips:.1f} images/s")
        what = f"{dataset.name}, {len(tasks)} tasks"
    else:
        raise ValueError(f"speed.data={scfg.data}: use synthetic or real.")
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"CPU, {torch.get_num_threads()} threads"
    setting = f"{cfg.model.arch}|{cfg.model.pretrained}|{what}|b{scfg.batch_size}|{device_name}"
    info = {"title": f"{cfg.model.arch} ({cfg.model.pretrained} weights), {what}, batch "
                     f"{scfg.batch_size} per task, {device_name}, precision {train_cfg.precision}",
            "command": command, "when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC") +
            f", {scfg.warmup_steps} warm-up + {scfg.steps} measured steps", "notes": notes}
    rows = []
    augments = [bool(a) for a in scfg.augment]
    configs = method_configs(cfg)
    # The first configuration measured in a process runs slow (thread pools, allocator, lazy
    # initialisation): one discarded run of it first, so it does not penalise either path.
    measure(configs[0], clip, tasks, data, scfg, train_cfg, device, "baseline", augments[:1], seed=int(cfg.seed))
    if int(scfg.wrapper_rounds) > 0:
        info["wrapper"] = wrapper_vs_open_clip(clip, tasks[0].classnames, int(scfg.batch_size),
                                               int(scfg.wrapper_rounds), device)
        info["wrapper_title"] = (f"Wrapper vs open_clip ({scfg.batch_size} images; {len(tasks[0].classnames)} class "
                                 f"prompts; no prompts; medians of {scfg.wrapper_rounds} interleaved rounds; "
                                 "baseline: speed-ups off, full context; fast: speed-ups on, truncated text)")
        print(info["wrapper_title"] + "\n" + wrapper_table(info["wrapper"]) + "\n", flush=True)
    for method_cfg in configs:
        for variant in VARIANTS[scfg.variant]:
            for row in measure(method_cfg, clip, tasks, data, scfg, train_cfg, device, variant, augments,
                               seed=int(cfg.seed)):
                row.update(setting=setting, setting_info=info)
                rows.append(row)
                print(f"{row['method']:>8} {row['mode']:>7} aug={row['augment']!s:>5} {variant:>8}: "
                      f"train {_fmt(row['train_ips'])} img/s, eval {_fmt(row['eval_ips'])} img/s, "
                      f"peak {_fmt(row['peak_mb'], 0)} MB, split {_split(row['split_ms'])}", flush=True)
    output = Path(scfg.output)
    store = output.with_suffix(".json")
    old = json.loads(store.read_text()) if store.is_file() else []
    done = {(r["setting"], r["method"], r["mode"], r["augment"], r["variant"]) for r in rows}
    kept = [r for r in old if (r["setting"], r["method"], r["mode"], r["augment"], r["variant"]) not in done]
    all_rows = kept + rows
    store.parent.mkdir(parents=True, exist_ok=True)
    store.write_text(json.dumps(all_rows, indent=1))
    print("\n" + table(rows)[0])
    write_report(all_rows, output, info)
    print(f"\nwritten to {output}")
    return rows


FLAGS = {"--baseline": "speed.variant=baseline", "--fast": "speed.variant=fast",
         "--compare": "speed.variant=compare"}


@hydra.main(config_path=CONFIG_DIR, config_name="speed", version_base="1.3")
def _main(cfg: DictConfig) -> None:
    guarded(run_speed)(cfg, command=COMMAND)


COMMAND = "python -m bench.speed " + " ".join(sys.argv[1:])

if __name__ == "__main__":
    sys.argv = [sys.argv[0]] + [FLAGS.get(a, a) for a in sys.argv[1:]]
    _main()
