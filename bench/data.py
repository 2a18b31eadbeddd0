"""Multi-task data pipeline: transforms, a seeded multi-task batch sampler, loaders.

Every random draw of the pipeline (which images form a batch, and each image's
augmentation) is a pure function of (seed, task name, epoch, step).  That is what makes a
run killed mid-epoch resume to the exact same result, makes the number of loader workers
irrelevant to the outcome, and makes an ST task see the same batches as a run of that
task alone.

Over several processes (bench/distributed.py) every rank draws the same global batch and
keeps its share of each task's sub-batch; evaluation batches are dealt out whole.
"""
from __future__ import annotations

import math
from typing import Iterator, NamedTuple, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision import transforms as T

from bench import distributed
from bench.datasets.decoding import ImageListDataset
from bench.datasets.decoding import DraftRandomResizedCrop, resized_copy
from bench.errors import ConfigError
from bench.malloc import malloc_pinning
from bench.protocols import TaskRoles
from bench.schema import TrainConfig
from bench.seeding import stable_seed

_INTERPOLATION = {"bicubic": T.InterpolationMode.BICUBIC, "bilinear": T.InterpolationMode.BILINEAR}


class ImageSpec(NamedTuple):
    """What the transforms need of a model: its input size and open_clip's preprocess config
    (mean, std, interpolation).  The CLIP wrapper has both attributes; tools pass this."""

    image_size: int
    preprocess_cfg: dict


def build_transforms(clip, augment: bool, crop_scale: Sequence[float], jpeg_draft: bool = False):
    """CLIP preprocessing; training adds CoOp's random resized crop and horizontal flip.
    `jpeg_draft`: the training crop decodes JPEGs at reduced scale (datasets/decoding.py; the
    train transform then takes images opened, not decoded)."""
    preprocess = clip.preprocess_cfg  # open_clip's, from the model and its pretrained tag
    size = clip.image_size
    interpolation = _INTERPOLATION.get(preprocess.get("interpolation", "bicubic"), T.InterpolationMode.BICUBIC)
    normalize = T.Normalize(preprocess["mean"], preprocess["std"])
    evaluation = T.Compose([T.Resize(size, interpolation=interpolation), T.CenterCrop(size),
                            T.Lambda(_rgb), T.ToTensor(), normalize])
    if not augment:
        return evaluation, evaluation
    crop = DraftRandomResizedCrop if jpeg_draft else T.RandomResizedCrop
    train = T.Compose([crop(size, scale=tuple(crop_scale), interpolation=interpolation),
                       T.RandomHorizontalFlip(), T.Lambda(_rgb), T.ToTensor(), normalize])
    return train, evaluation


def _rgb(image):
    return image.convert("RGB")


class SeededSamples(Dataset):
    """Concatenation of every task's samples; item (index, seed) is augmented under `seed`."""

    def __init__(self, task_samples: Sequence[Sequence[tuple[str, int]]], transform, lazy: bool = False):
        self.offsets = np.cumsum([0] + [len(s) for s in task_samples])
        self.task_of = np.concatenate([[t] * len(s) for t, s in enumerate(task_samples)]).astype(int) \
            if len(task_samples) else np.zeros(0, int)
        self.images = ImageListDataset([x for s in task_samples for x in s], transform, lazy=lazy)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, item):
        index, seed = item
        # torchvision's random transforms draw from the CPU generator only: seed it for this sample
        # and give its state back.  torch.manual_seed would also seed every accelerator's generator
        # (on a CUDA build it records a stack trace per call: 0.3-5 ms per image) and leave them so.
        generator = torch.default_generator
        state = generator.get_state()
        generator.manual_seed(seed)
        try:
            sample = self.images[index]
        finally:
            generator.set_state(state)
        if sample is None:
            return Unreadable(int(self.task_of[index]), self.images.samples[index][0])
        image, label = sample
        return image, label, int(self.task_of[index]), index


class Unreadable(NamedTuple):
    """A sample whose image could not be decoded (missed by the start-up check)."""
    task: int
    path: str


class MultiTaskBatch(NamedTuple):
    """A batch of samples from several tasks, fields by name: `images`, `labels` and
    `task_ids` of the readable samples, `indices` (their CPU indices in the split's dataset:
    the keys of the image-feature cache; None for data that has none, e.g. synthetic) and
    `unreadable` (the `Unreadable` samples left out).  DataLoader's pin_memory keeps the type."""

    images: torch.Tensor
    labels: torch.Tensor
    task_ids: torch.Tensor
    indices: torch.Tensor | None = None
    unreadable: tuple[Unreadable, ...] = ()


def collate_multitask(batch) -> MultiTaskBatch:
    """Stack the readable samples; the unreadable ones are listed, not stacked."""
    readable = [b for b in batch if not isinstance(b, Unreadable)]
    unreadable = tuple(b for b in batch if isinstance(b, Unreadable))
    if not readable:
        empty = torch.zeros(0, dtype=torch.long)
        return MultiTaskBatch(torch.zeros(0), empty, empty, empty, unreadable)
    images, labels, tasks, indices = zip(*readable)
    return MultiTaskBatch(torch.stack(images), torch.tensor(labels), torch.tensor(tasks),
                          torch.tensor(indices), unreadable)


class MultiTaskBatchSampler(Sampler):
    """Multi-task batches from seeded per-task streams (shorter tasks cycle).

    `task_sampling="all"` (default): each step takes `batch_size` samples from every task.
    `"round_robin"`: each step takes `batch_size` samples from one task, tasks in turn, so an
    epoch has T times the steps and shows every task the same samples as "all" does.
    Steps per epoch: `steps_per_epoch`, or by default enough for the largest task to be
    seen once.  `start_step` skips into an epoch when resuming from a mid-epoch checkpoint.
    Over several processes each rank yields its share of every task's sub-batch.  `trains`
    (default: every task) says which tasks are drawn: the others keep their place in the index
    space (their samples' indices stay what they are in a run that trains them) and are never drawn.
    """

    def __init__(self, task_sizes: Sequence[int], task_names: Sequence[str], batch_size: int,
                 seed: int, epoch: int, steps_per_epoch: int | None = None, start_step: int = 0,
                 task_sampling: str = "all", trains: Sequence[bool] | None = None):
        self.offsets = np.cumsum([0] + list(task_sizes))
        trains = [True] * len(task_sizes) if trains is None else list(trains)
        self.sizes, self.names = [n if t else 0 for n, t in zip(task_sizes, trains)], list(task_names)
        self.batch_size, self.seed, self.epoch, self.start_step = batch_size, seed, epoch, start_step
        self.tasks_per_step = len(self.sizes) if task_sampling == "all" else 1
        self.active = [t for t, n in enumerate(self.sizes) if n]  # tasks that train (leave_one_out: the sources)
        per_task = max(1, max(math.ceil(n / batch_size) for n in self.sizes))
        self.steps = steps_per_epoch or per_task * (len(self.active) if self.tasks_per_step == 1 else 1)

    def __len__(self) -> int:
        return self.steps - self.start_step

    def _task_stream(self, task: int) -> tuple[np.ndarray, np.ndarray]:
        # Separate streams for order and augmentation seeds keep every prefix of the stream
        # independent of how long the epoch is (i.e. of the other tasks' sizes).
        order_rng, seed_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(
            [stable_seed(self.names[task]), self.seed, self.epoch]).spawn(2))
        need = math.ceil(self.steps / (len(self.active) if self.tasks_per_step == 1 else 1)) * self.batch_size
        rounds = math.ceil(need / self.sizes[task])
        order = np.concatenate([order_rng.permutation(self.sizes[task]) for _ in range(rounds)])[:need]
        return order + self.offsets[task], seed_rng.integers(0, 2**62, size=need)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        streams = [self._task_stream(t) if self.sizes[t] else None for t in range(len(self.sizes))]
        for step in range(self.start_step, self.steps):
            if self.tasks_per_step == 1:  # round robin over the training tasks: the step's task, its k-th window
                tasks, k = [self.active[step % len(self.active)]], step // len(self.active)
            else:
                tasks, k = range(len(self.sizes)), step
            window = slice(k * self.batch_size, (k + 1) * self.batch_size)
            yield [(int(i), int(s)) for t in tasks if streams[t] is not None
                   for i, s in distributed.shard_of(list(zip(streams[t][0][window], streams[t][1][window])))]


class MultiTaskData:
    """Train and evaluation loaders for a `MultiDomainDataset`.

    One train DataLoader lives for the whole run (persistent workers when there are any);
    its batch sampler is re-pointed at each epoch, so workers start once, not per epoch.
    The training images' opt-ins (`cfg.jpeg_draft`, `cfg.resized_cache_side`, the latter under
    `cache_dir`) are in datasets/decoding.py; evaluation always decodes the originals in full.
    """

    def __init__(self, dataset, clip, cfg: TrainConfig, seed: int, num_workers: int = 0, pin_memory: bool = False,
                 unreadable: str = "skip", prefetch_factor: int | None = None, cache_dir: str | None = None,
                 roles: TaskRoles | None = None, worker_malloc_trim_mib: int | None = None):
        self.dataset, self.cfg, self.seed, self.unreadable = dataset, cfg, seed, unreadable
        self.task_names = [t.name for t in dataset.tasks]
        # which tasks each split serves (bench/protocols.py): the others' images never enter its loader
        self.roles = roles or TaskRoles(*[tuple(self.task_names)] * 3)
        self.train_transform, self.eval_transform = build_transforms(clip, cfg.augment, cfg.crop_scale,
                                                                     cfg.jpeg_draft)
        side = cfg.resized_cache_side
        if side is not None and (side < clip.image_size or cache_dir is None):
            raise ConfigError(
                f"train.resized_cache_side={side} needs a side of at least the model's input size "
                f"({clip.image_size} px) and a cache folder (runtime.cache_dir); got "
                f"{'no cache folder' if cache_dir is None else 'a smaller side'}. Pass "
                f"train.resized_cache_side={2 * clip.image_size} or null (the originals).")
        self.cache_dir, self.num_workers = cache_dir, num_workers
        self.loader_args = dict(num_workers=num_workers, pin_memory=pin_memory,
                                persistent_workers=num_workers > 0, collate_fn=collate_multitask)
        if num_workers > 0 and prefetch_factor is not None:
            self.loader_args["prefetch_factor"] = prefetch_factor
        if num_workers > 0:
            self.loader_args["worker_init_fn"] = malloc_pinning(worker_malloc_trim_mib)
        self.batch_size = cfg.batch_size
        self.sampler = MultiTaskBatchSampler([len(t.train) for t in dataset.tasks], self.task_names,
                                             self.batch_size, seed, 0, cfg.steps_per_epoch,
                                             task_sampling=cfg.task_sampling, trains=self._serves("train"))
        self.steps_per_epoch = self.sampler.steps
        self._train_loader: DataLoader | None = None
        self._eval_loaders: dict[str, DataLoader] = {}

    def train_loader(self, epoch: int, start_step: int = 0) -> DataLoader:
        self.sampler.epoch, self.sampler.start_step = epoch, start_step
        if self._train_loader is None:
            train = self._split_samples("train")
            if self.cfg.resized_cache_side is not None:  # made once, then reused by every run (the tasks it trains)
                train = [resized_copy(s, self.cfg.resized_cache_side, self.cache_dir, max(1, self.num_workers))
                         if serves else s for s, serves in zip(train, self._serves("train"))]
            samples = SeededSamples(train, self.train_transform, lazy=self.cfg.jpeg_draft and self.cfg.augment)
            self._train_loader = DataLoader(samples, batch_sampler=self.sampler, **self.loader_args)
        return self._train_loader

    def _split_samples(self, split: str) -> list[tuple]:
        """Every task's samples of `split`, those of a task the split does not serve too: a sample's
        index (the image-feature cache's key, bench/speedups.py) is the same whatever the roles, so
        the loaders of several roles in one run (protocol=sequential's stages) agree on it.  Only
        the served tasks' samples are ever drawn."""
        return [getattr(t, split) for t in self.dataset.tasks]

    def _serves(self, split: str) -> list[bool]:
        """Whether `split` serves each task (bench/protocols.py)."""
        return [name in self.roles.of(split) for name in self.task_names]

    def eval_task_names(self, split: str) -> list[str]:
        """The tasks `split` is evaluated on (leave_one_out: val the sources', or the target's for oracle)."""
        return [name for name in self.task_names if name in self.roles.of(split)]

    def eval_loader(self, split: str) -> DataLoader:
        """All tasks' samples of `split` in a fixed order; batches carry their task ids (this
        rank's batches over several processes: the counts are summed by `bench.engine.evaluate`)."""
        if split not in self._eval_loaders:
            data = SeededSamples(self._split_samples(split), self.eval_transform)
            size = self.cfg.eval_batch_size
            served = [i for t, serves in enumerate(self._serves(split)) if serves
                      for i in range(data.offsets[t], data.offsets[t + 1])]
            batches = distributed.deal([[(i, 0) for i in served[s:s + size]] for s in range(0, len(served), size)])
            self._eval_loaders[split] = DataLoader(data, batch_sampler=batches, **self.loader_args)
        return self._eval_loaders[split]
