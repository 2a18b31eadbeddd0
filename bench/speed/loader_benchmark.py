"""The measurements of `python -m bench.speed.data_loading` (bench/speed/data_loading.py documents
them and takes the command line): the generated JPEGs, the pipelines, their interleaved
rounds, the rows and the table.  Kept apart from the command so that its `--help` and its
setting errors never import torch."""
from __future__ import annotations

import dataclasses
import gc
import itertools
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from omegaconf import OmegaConf
from PIL import Image
from tabulate import tabulate
from torch.utils.data import DataLoader, Dataset
from torchvision import datasets as tv_datasets
from torchvision import transforms as T
from torchvision.io import read_file

from bench.app import dataset_config, train_config
from bench.data import ImageSpec, MultiTaskBatchSampler, MultiTaskData, build_transforms
from bench.datasets import build_dataset
from bench.datasets.base import load_rgb
from bench.datasets.decoding import decode_jpegs_on_gpu, resized_copy
from bench.input_checks import resolve_num_workers
from bench.malloc import MMAP_THRESHOLD_MIB, is_glibc, malloc_pinning
from bench.schema import DataSpeedConfig, RuntimeConfig

OPENAI_PREPROCESS = {"mean": (0.48145466, 0.4578275, 0.40821073), "std": (0.26862954, 0.26130258, 0.27577711),
                     "interpolation": "bicubic"}
DOMAIN = "photo"
BASELINE = "ImageFolder + DataLoader (baseline)"
UNPINNED_BASELINE = "ImageFolder + DataLoader, malloc as inherited"
UNPINNED_OURS = "ours + runtime.worker_malloc_trim_mib=null (malloc as inherited)"
#: a ratio whose rounds spread more than this (max - min over the median) is flagged
RATIO_SPREAD_WARNING = 0.15


# ---- the images ------------------------------------------------------------------------------
def generate_images(cfg: DataSpeedConfig) -> Path:
    """`<folder>/photo/class_<k>/<i>.jpg`, made once per setting (a `done` marker)."""
    key = f"n{cfg.images}-c{cfg.classes}-{cfg.long_side_min}-{cfg.long_side_max}-q{cfg.quality}-s{cfg.seed}"
    folder = Path(os.path.expanduser(cfg.folder or os.path.join(cfg.cache_dir, "speed-data"))) / key
    if (folder / "done").is_file():
        return folder
    rng = np.random.default_rng(cfg.seed)
    grain = rng.integers(-10, 11, size=(256, 256, 3), dtype=np.int16)  # sensor-like noise, tiled
    low, high = math.log(cfg.long_side_min), math.log(cfg.long_side_max)
    for i in range(cfg.images):
        long_side = round(math.exp(rng.uniform(low, high)))
        short_side = max(16, round(long_side * rng.uniform(0.6, 0.9)))
        w, h = (long_side, short_side) if rng.random() < 0.7 else (short_side, long_side)
        coarse = Image.fromarray(rng.integers(0, 256, size=(max(2, h // 96), max(2, w // 96), 3), dtype=np.uint8))
        smooth = np.asarray(coarse.resize((w, h), Image.BICUBIC), dtype=np.int16)
        noisy = smooth + np.tile(grain, (h // 256 + 1, w // 256 + 1, 1))[:h, :w]
        target = folder / DOMAIN / f"class_{i % cfg.classes}" / f"{i:05d}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(target, "JPEG", quality=cfg.quality)
    (folder / "done").write_text("ok")
    return folder


# ---- timing ----------------------------------------------------------------------------------
def _count(batch) -> int:
    return int(batch[0].shape[0])


def timed_round(pipeline: Callable[[int], Iterable], epochs: Iterator[int], min_seconds: float) -> float:
    """Images/s of whole epochs of `pipeline` (numbered from `epochs`), as many as it takes to
    last `min_seconds`: a fast pipeline's 128-image epoch lasts a tenth of a second, too short
    to time alone."""
    start, seen = time.perf_counter(), 0
    while True:
        for batch in pipeline(next(epochs)):
            seen += _count(batch)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return seen / elapsed


def interleaved_rates(pipelines: Sequence[Callable[[int], Iterable]], rounds: int,
                      warmup_rounds: int = 1, min_round_seconds: float = 0.0) -> list[list[float]]:
    """Images/s of each pipeline (`epoch -> iterable of batches`) in each of `rounds` rounds:
    `warmup_rounds` untimed epochs each first, then the timed rounds taken in turn (A, B, A, B:
    a busy neighbour slows the pipelines of one round alike, so a ratio within a round holds),
    each at least `min_round_seconds` of whole epochs."""
    for _ in range(warmup_rounds):
        for pipeline in pipelines:
            for _ in pipeline(0):
                pass
    epochs = [itertools.count(1) for _ in pipelines]
    rates: list[list[float]] = [[] for _ in pipelines]
    for _ in range(rounds):
        for i, pipeline in enumerate(pipelines):
            rates[i].append(timed_round(pipeline, epochs[i], min_round_seconds))
    return rates


@dataclasses.dataclass(frozen=True)
class Row:
    """One pipeline's images/s over the rounds and its ratio to the baseline of the same rounds."""

    name: str
    workers: str
    rates: tuple[float, ...]
    ratios: tuple[float, ...]

    @property
    def rate(self) -> float:
        return statistics.median(self.rates)

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)

    @property
    def ratio_spread(self) -> float:
        """(max - min) / median of the per-round ratios: how far one round's ratio strays."""
        return (max(self.ratios) - min(self.ratios)) / self.ratio if self.ratio else math.inf


def rows_against(baseline: list[float], named: dict[str, list[float]], workers: str) -> list[Row]:
    """Each pipeline's rates and its per-round ratio to `baseline` (timed in the same rounds)."""
    return [Row(name, workers, tuple(rates), tuple(r / b for r, b in zip(rates, baseline)))
            for name, rates in named.items()]


class _SameBatches:
    """Our sampler's batches of an epoch, as indices of another dataset of the same files: the
    baseline reads the same images in the same batches as ours, so a round's two epochs do the
    same decoding (with 4 batches an epoch, which batch the largest photos fall in moves an
    epoch's time by 10-20 %)."""

    def __init__(self, sampler, our_paths: Sequence[str], their_paths: Sequence[str]):
        index_of = {path: i for i, path in enumerate(their_paths)}
        self.sampler, self.translate = sampler, [index_of[p] for p in our_paths]

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self):
        for batch in self.sampler:
            yield [self.translate[index] for index, _ in batch]


def baseline_pipeline(root: Path, transform, cfg: DataSpeedConfig, workers: int, our_paths: Sequence[str],
                      malloc_trim_mib: int | None = RuntimeConfig.worker_malloc_trim_mib) -> Callable[[int], Iterable]:
    """The usual pipeline: ImageFolder + the same transforms + a DataLoader, its batches our
    sampler's.  Its workers are persistent, as ours are: an epoch of a real dataset is thousands
    of images, so a worker's start (a fork, a heap grown from nothing) weighs nothing there,
    while here it would be a tenth of each 128-image epoch.  They pin glibc's malloc thresholds
    as ours do (bench/malloc.py): left as this process's history happens to set them, the same
    workers ran at 61-64 images/s in one run and 77 in the next, which was most of what made two
    runs of this benchmark disagree."""
    data = tv_datasets.ImageFolder(str(root / DOMAIN), transform=transform)
    order = MultiTaskBatchSampler([len(our_paths)], [DOMAIN], cfg.batch_size, cfg.seed, 0)
    loader = DataLoader(data, batch_sampler=_SameBatches(order, our_paths, [p for p, _ in data.samples]),
                        num_workers=workers, pin_memory=torch.cuda.is_available(), persistent_workers=workers > 0,
                        worker_init_fn=malloc_pinning(malloc_trim_mib) if workers else None)

    def epoch(number: int) -> DataLoader:
        order.epoch = number
        return loader

    return epoch


def ours_pipeline(dataset, spec: ImageSpec, cfg: DataSpeedConfig, workers: int, prefetch: int | None = None,
                  malloc_trim_mib: int | None = RuntimeConfig.worker_malloc_trim_mib, **train) -> Callable[[int], Iterable]:
    """Our train loader (MultiTaskData) with the given runtime settings and train.* opt-ins."""
    tcfg = train_config(OmegaConf.create({"batch_size": cfg.batch_size, **train}))
    data = MultiTaskData(dataset, spec, tcfg, seed=cfg.seed, num_workers=workers,
                         pin_memory=torch.cuda.is_available(), prefetch_factor=prefetch, cache_dir=cfg.cache_dir,
                         worker_malloc_trim_mib=malloc_trim_mib)
    return data.train_loader


class _EncodedFiles(Dataset):
    def __init__(self, paths: Sequence[str]):
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        return read_file(self.paths[index])


def gpu_decode_pipeline(paths: Sequence[str], spec: ImageSpec, cfg: DataSpeedConfig,
                        workers: int) -> Callable[[int], Iterable]:
    """Workers read the files; nvJPEG decodes each batch on the GPU, where it is cropped."""
    crop = T.Compose([T.RandomResizedCrop(spec.image_size, interpolation=T.InterpolationMode.BICUBIC, antialias=True),
                      T.RandomHorizontalFlip()])
    mean = torch.tensor(spec.preprocess_cfg["mean"], device="cuda").view(1, 3, 1, 1)
    std = torch.tensor(spec.preprocess_cfg["std"], device="cuda").view(1, 3, 1, 1)
    loader = DataLoader(_EncodedFiles(paths), batch_size=cfg.batch_size, shuffle=True, num_workers=workers,
                        collate_fn=list, persistent_workers=workers > 0,
                        worker_init_fn=malloc_pinning(RuntimeConfig.worker_malloc_trim_mib) if workers else None)

    def epoch(_):
        for encoded in loader:
            images = torch.stack([crop(x) for x in decode_jpegs_on_gpu(encoded)]).float().div_(255)
            yield ((images - mean) / std,)
        torch.cuda.synchronize()

    return epoch


# ---- what the approximations change ------------------------------------------------------------
def pixel_statistics(paths: Sequence[str], spec: ImageSpec, cfg: DataSpeedConfig) -> list[list]:
    """Rows (pipeline, per-channel mean, per-channel std, mean |difference| to the reference), 0-255."""
    reference, _ = build_transforms(spec, True, (0.08, 1.0))
    draft, _ = build_transforms(spec, True, (0.08, 1.0), jpeg_draft=True)
    cached = {p: q for p, (q, _) in zip(paths, resized_copy([(p, 0) for p in paths], cfg.cache_side, cfg.cache_dir))}
    std = torch.tensor(spec.preprocess_cfg["std"]).view(3, 1, 1) * 255
    mean = torch.tensor(spec.preprocess_cfg["mean"]).view(3, 1, 1) * 255

    def crops(transform, opener, path_of=lambda p: p):
        out = []
        for k, path in enumerate(paths):
            torch.manual_seed(cfg.seed * 100003 + k)
            out.append(transform(opener(path_of(path))) * std + mean)
        return torch.stack(out)

    ref = crops(reference, load_rgb)
    rows = []
    for name, images, same_boxes in (
            ("reference (PIL full decode)", ref, True),
            ("train.jpeg_draft (same crop boxes)", crops(draft, Image.open), True),
            (f"train.resized_cache_side={cfg.cache_side} (boxes drawn on the copy)",
             crops(reference, load_rgb, cached.get), False)):
        rows.append([name, _triple(images.mean(dim=(0, 2, 3))), _triple(images.std(dim=(0, 2, 3))),
                     f"{(images - ref).abs().mean():.2f}" if same_boxes else "- (other boxes)"])
    return rows


def _triple(values: torch.Tensor) -> str:
    return " / ".join(f"{v:.1f}" for v in values.tolist())


# ---- the run ---------------------------------------------------------------------------------
def run(cfg: DataSpeedConfig, log: Callable[[str], None] = print) -> dict:
    """Measure every row; returns {"rows": [...], "default_vs_baseline": min ratio, "best": (name, ratio)}."""
    started = time.perf_counter()
    torch.manual_seed(cfg.seed)  # the baseline's workers draw their crops from seeds of this generator
    root = generate_images(cfg)
    dataset = build_dataset(dataset_config(OmegaConf.create({
        "name": "speed-data", "builder": "imagefolder", "root": str(root), "domains": [DOMAIN],
        "val_fraction": 0.0, "test_fraction": 0.0})))
    paths = [p for p, _ in dataset.tasks[0].train]
    sizes = [max(Image.open(p).size) for p in paths]
    log(f"{len(paths)} JPEGs in {root}: long side {min(sizes)}-{max(sizes)} px (median {int(np.median(sizes))}), "
        f"quality {cfg.quality}; crops of {cfg.image_size} px, batch {cfg.batch_size}")
    spec = ImageSpec(cfg.image_size, OPENAI_PREPROCESS)
    transform, _ = build_transforms(spec, True, (0.08, 1.0))
    auto = resolve_num_workers("auto")
    counts = sorted(set(cfg.workers) | {auto})
    label = lambda w: f"{w} (auto)" if w == auto else str(w)  # noqa: E731
    rows: list[Row] = []
    for w in counts:  # the baseline and our default, in turn
        base, ours = interleaved_rates([baseline_pipeline(root, transform, cfg, w, paths),
                                        ours_pipeline(dataset, spec, cfg, w)], cfg.rounds, cfg.warmup_rounds,
                                        cfg.min_round_seconds)
        rows += rows_against(base, {BASELINE: base,
                                    "ours, default (reference pixels)": ours}, label(w))
        gc.collect()  # ends the persistent workers before the next row starts its own
    t0 = time.perf_counter()
    resized_copy(dataset.tasks[0].train, cfg.cache_side, cfg.cache_dir, auto)
    one_time = time.perf_counter() - t0
    opt_ins = {"ours + runtime.prefetch_factor=4": dict(prefetch=4),
               "ours + train.jpeg_draft": dict(jpeg_draft=True),
               f"ours + train.resized_cache_side={cfg.cache_side}": dict(resized_cache_side=cfg.cache_side),
               f"ours + jpeg_draft + resized_cache_side={cfg.cache_side}":
                   dict(jpeg_draft=True, resized_cache_side=cfg.cache_side)}
    pipelines = {BASELINE: baseline_pipeline(root, transform, cfg, auto, paths)}
    pipelines.update({name: ours_pipeline(dataset, spec, cfg, auto, **options) for name, options in opt_ins.items()})
    if cfg.unpinned_rows:  # what the pinning buys: rows that depend on this process's history
        pipelines[UNPINNED_BASELINE] = baseline_pipeline(root, transform, cfg, auto, paths, malloc_trim_mib=None)
        pipelines[UNPINNED_OURS] = ours_pipeline(dataset, spec, cfg, auto, malloc_trim_mib=None)
    if torch.cuda.is_available():
        pipelines["GPU decode (nvJPEG) + GPU crop"] = gpu_decode_pipeline(paths, spec, cfg, auto)
    rates = dict(zip(pipelines, interleaved_rates(list(pipelines.values()), cfg.rounds, cfg.warmup_rounds,
                                                           cfg.min_round_seconds)))
    baseline = rates.pop(BASELINE)  # the opt-ins' own rounds' baseline
    opt_in_rows = rows_against(baseline, rates, label(auto))
    rows += opt_in_rows
    best = max((row for row in opt_in_rows if row.name in opt_ins), key=lambda row: row.ratio)
    del pipelines
    gc.collect()
    table = tabulate([[row.name, row.workers, f"{row.rate:.1f}", f"{min(row.rates):.1f}-{max(row.rates):.1f}",
                       f"{row.ratio:.2f}x", f"{min(row.ratios):.2f}-{max(row.ratios):.2f}x"] for row in rows],
                     headers=["pipeline", "workers", "images/s (median)", "min-max", "vs baseline (median)",
                              "min-max"], tablefmt="github", disable_numparse=True)
    unsteady = [row for row in rows if row.name != BASELINE and row.ratio_spread > RATIO_SPREAD_WARNING]
    unpinned = ("" if not cfg.unpinned_rows else
                "\nThe two 'as inherited' rows leave glibc's malloc thresholds as each worker inherits them "
                "(runtime.worker_malloc_trim_mib=null): they depend on this process's allocation history and may "
                "move between runs, unlike the others.\n")
    warning = "".join(f"\nWARNING: {row.name} at {row.workers} workers: its ratio moved by "
                      f"{100 * row.ratio_spread:.0f}% between rounds (more than {100 * RATIO_SPREAD_WARNING:.0f}%): "
                      "the machine was not quiet, or the epoch is too short; do not read this ratio."
                      for row in unsteady)
    stats = tabulate(pixel_statistics(paths[:cfg.stats_images], spec, cfg),
                     headers=["crops of", "mean R/G/B", "std R/G/B", "mean |diff| to reference"], tablefmt="github")
    gpu = "" if torch.cuda.is_available() else "\nGPU decode: not measured (no CUDA device here).\n"
    defaults = [row for row in rows if row.name == "ours, default (reference pixels)"]
    summary = (f"{cfg.rounds} interleaved rounds after {cfg.warmup_rounds} untimed; default vs baseline, same "
               f"workers: {min(r.ratio for r in defaults):.2f}x at worst "
               f"({', '.join(f'{r.ratio:.2f}x' for r in defaults)}); best opt-in: {best.name} {best.ratio:.2f}x the "
               f"baseline at {auto} workers; resized copy ready in {one_time:.1f} s (made once: an earlier run's copy "
               "is reused)\n" + (
                   f"malloc in every loader worker, the baseline's too: mapping threshold {MMAP_THRESHOLD_MIB} MiB, "
                   f"trim threshold runtime.worker_malloc_trim_mib={RuntimeConfig.worker_malloc_trim_mib} MiB, pinned "
                   "(bench/malloc.py)" if is_glibc() else
                   "malloc: not glibc, its thresholds are not pinned; the ratios may move between runs"))
    text = (f"{table}\n{warning}{unpinned}{gpu}\npixel statistics of {min(cfg.stats_images, len(paths))} crops (0-255), same seeds:\n\n"
            f"{stats}\n\n{summary}\n(command: python -m bench.speed.data_loading {' '.join(sys.argv[1:])}; "
            f"{time.perf_counter() - started:.0f} s)")
    log(text)
    if cfg.output:
        Path(cfg.output).parent.mkdir(parents=True, exist_ok=True)
        Path(cfg.output).write_text(text + "\n")
    return {"rows": rows, "default_vs_baseline": min(r.ratio for r in defaults), "best": best, "text": text,
            "unsteady": unsteady}


