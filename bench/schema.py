"""The typed configuration, the foundation every other module stands on: every setting, its
type, its allowed values and its default.  It imports nothing of the project.

Each config group has a dataclass here (train, runtime, model, dataset, speed) and each
method declares its own block as a subclass of `MethodConfig` in its module, registered
with `@register_method(name, config=...)`.  The dataclasses are the only place a default
lives: the run wiring (bench/app.py) stores them in Hydra's ConfigStore, the YAML files in
configs/ set only what differs (a method's paper settings, a dataset's layout), and code
reads the resolved, typed config, never a default of its own (no `get` with a fallback).

Precedence, lowest first: these defaults < the dataset's training defaults
(configs/dataset_defaults/<dataset>.yaml) < the method's paper settings
(configs/method/<method>.yaml) < the command line.

bench/config_checks.py checks every value against its field's type (`Literal[...]` for
choices, `setting(..., min=, max=, above=)` for ranges) and builds these dataclasses from
the checked values; the engine, methods and datasets receive them, typed.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, Optional, Union



def setting(default: Any, doc: str = "", *, min: float | None = None, max: float | None = None,
            above: float | None = None, below: float | None = None, length: int | None = None,
            min_length: int | None = None, ascending: bool = False) -> Any:
    """A config field: its default, a one-line doc, and an optional range (`above`, `below`:
    strict > and <).  For a list the range applies to every element; `length` (exact) and
    `min_length` bound its length, and `ascending` asks for elements in non-decreasing order."""
    metadata = {"doc": doc, "min": min, "max": max, "above": above, "below": below, "length": length,
                "min_length": min_length, "ascending": ascending}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


# ---- the groups ------------------------------------------------------------------------
@dataclass
class TrainConfig:
    """The one training loop (bench/engine.py). Methods override what their papers prescribe."""

    epochs: int = setting(5, "training epochs; 0 evaluates the initial state", min=0)
    batch_size: int = setting(8, "images per task per step (every step holds a sub-batch of every task)", min=1)
    task_sampling: Literal["all", "round_robin"] = setting(
        "all", "all: each step a sub-batch of every task | round_robin: one task per step, in turn")
    eval_batch_size: int = setting(64, "images per evaluation batch", min=1)
    steps_per_epoch: Optional[int] = setting(None, "null: enough steps for the largest task to be seen once", min=1)
    optimizer: Literal["sgd", "adamw"] = setting("sgd", "sgd (momentum) | adamw")
    lr: float = setting(0.002, "base learning rate", above=0)
    momentum: float = setting(0.9, "SGD momentum", min=0, max=1)
    weight_decay: float = setting(5e-4, "weight decay (SGD: L2; AdamW: decoupled)", min=0)
    betas: list[float] = setting([0.9, 0.999], "AdamW betas (beta1, beta2)", min=0, below=1, length=2)
    lr_min: float = setting(0.0, "learning rate at the end of the cosine", min=0)
    warmup_epochs: int = setting(1, "constant warm-up at warmup_lr for this many epochs (CoOp), then cosine", min=0)
    warmup_lr: float = setting(1e-5, "learning rate of the constant warm-up", min=0)
    schedule: Literal["cosine_dassl", "cosine_after_warmup", "constant"] = setting(
        "cosine_dassl", "cosine_dassl: the reference (Dassl) constant warm-up, then cosine over all epochs | "
        "cosine_after_warmup: timm's cosine over the epochs after the warm-up | constant: lr throughout "
        "(bench/schedule.py)")
    task_loss: Literal["sum", "mean"] = setting("sum", "sum | mean over tasks of each task's mean cross-entropy")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = setting(
        "auto", "auto: bf16 autocast on CUDA, fp32 elsewhere | fp32 | bf16 | fp16")
    selection: Literal["val", "last", "oracle"] = setting(
        "val", "val: the epoch with the best validation average (leave_one_out: the sources' validation) | last | "
               "oracle: leave_one_out only, the best validation average of the held-out domain (an upper bound)")
    augment: bool = setting(True, "random resized crop + flip (CoOp's augmentation)")
    max_nonfinite_steps: int = setting(
        5, "stop the run after this many consecutive steps with a NaN/inf loss (each one's update is "
           "skipped and counted in the record's nonfinite_steps)", min=1)
    crop_scale: list[float] = setting([0.08, 1.0], "RandomResizedCrop scale range (low, high), low <= high",
                                      above=0, max=1, length=2, ascending=True)
    jpeg_draft: bool = setting(False, "approximate, opt-in: decode training JPEGs at reduced scale (PIL draft, "
                               "libjpeg DCT scaling) when the crop is much smaller than the image; same crops, "
                               "slightly different pixels (datasets/decoding.py)")
    resized_cache_side: Optional[int] = setting(
        None, "approximate, opt-in: train from a one-time copy of the training images with this shorter side "
              "(JPEG q95 under runtime.cache_dir; smaller images are used as they are); null: the originals",
        min=1)


@dataclass
class RuntimeConfig:
    """How a run executes, never what it computes: left out of the run id."""

    device: str = setting("auto", "auto | cpu | cuda | cuda:N")
    num_workers: Union[int, Literal["auto"]] = setting(
        "auto", "data-loader processes: auto = the usable CPU cores (at most 8) | 0 | N", min=0)
    progress: bool = setting(True, "progress bars")
    prefetch_factor: Optional[int] = setting(None, "batches each loader worker prepares ahead; null: PyTorch's "
                                                   "default (2)", min=1)
    worker_malloc_trim_mib: Optional[int] = setting(
        128, "glibc only: each loader worker pins malloc's mapping threshold at 32 MiB and its trim threshold at "
             "this many MiB, so a large photo's decode buffers are reused, not returned to the kernel and faulted "
             "in again (ImageFolder's loader at 2 workers on 300-4,000 px JPEGs: 115 -> 152 images/s, `python -m "
             "bench.speed.data_loading unpinned_rows=true`; pixels unchanged; a worker keeps up to this much freed "
             "memory; bench/malloc.py); null: glibc's moving thresholds, as the worker inherits them from its "
             "parent's history", min=0)
    results_dir: str = setting("results/runs", "where result records go")
    checkpoint_dir: str = setting("outputs/checkpoints", "where checkpoints go")
    checkpoint_every_steps: int = setting(0, "also checkpoint inside an epoch (0: only at epoch ends)", min=0)
    resume: bool = setting(True, "resume from the run's checkpoint when one exists")
    skip_done: bool = setting(True, "a run whose record exists is not run again (prints it); "
                                    "false: train again from scratch")
    keep_checkpoint: Literal["nothing", "trainable", "everything"] = setting(
        "nothing", "what stays in checkpoint_dir/<run id>/ once the run's record is written: nothing | "
                     "trainable: the selected trainable state alone (trainable.pt; no optimiser state) | "
                     "everything: the last training checkpoint. Default nothing: a sweep's disk use stays bounded (the record holds the results)")
    sweep: Optional[str] = setting(None, "name of the sweep this run belongs to (set by bench.sweep)")
    trial: Optional[int] = setting(None, "trial number of a hyper-parameter search (set by bench.sweep; "
                                   "bench/search_space.py); null: not a search trial", min=0)
    logger: Literal["csv", "tensorboard"] = setting(
        "csv", "learning curves: csv: <run id>.curves.csv (beside the checkpoint while training, then beside the "
               "record) | tensorboard: also TensorBoard "
               "event files under <run id>.tb/ (pip install 'clip-prompt-bench[tensorboard]')")
    log_every_steps: int = setting(0, "also log the training loss and lr every k steps (0: epoch ends only)", min=0)
    cache_dir: str = setting("${oc.env:CPB_CACHE,'~/.cache/clip-prompt-bench'}",
                             "image-check verdicts (by path, size and mtime) and other caches")
    collective_timeout_s: float = setting(
        300.0, "several processes (torchrun, SLURM): how long a rank waits in a collective before the run "
               "stops (a rank that died takes the others down)", above=0)


@dataclass
class ModelConfig:
    """The frozen CLIP every method wraps (bench/models.py)."""

    arch: str = setting("${dataset.model.arch}", "any open_clip ViT architecture, or ours in "
                        "bench/model_configs/; default: the dataset's model")
    pretrained: Optional[str] = setting("${dataset.model.pretrained}", "an open_clip tag, a local "
                                        "checkpoint path, or none; default: the dataset's model")
    cache_dir: Optional[str] = setting(None, "a Hugging Face cache holding the pretrained weights")
    quick_gelu: Optional[bool] = setting("${dataset.model.quick_gelu}", "null: from the pretrained tag "
                                         "(OpenAI weights use QuickGELU)")
    grad_checkpointing: bool = setting(False, "recompute each tower block in backward instead of keeping its "
                                              "activations: less memory for large towers, exact (not in the run id)")


@dataclass
class DatasetModelConfig:
    """A dataset's own default model (configs/model/default.yaml reads it)."""

    arch: str = setting("ViT-B-16", "CLIP ViT-B/16, the MmAP paper's model")
    pretrained: Optional[str] = setting("openai", "OpenAI's weights")
    quick_gelu: Optional[bool] = setting(None, "null: from the tag")


@dataclass
class DatasetConfig:
    """A multi-domain dataset: every domain is one task (datasets/)."""

    name: str = setting("", "the dataset's name in records and reports")
    builder: str = setting("", "registered builder (datasets/registry.py)")
    root: str = setting("", "folder holding the domain folders")
    domains: Optional[list[str]] = setting(None, "the domains (tasks), in order; null: every sub-folder",
                                           min_length=1)
    num_classes: Optional[int] = setting(None, "sanity check of the class count; null: none", min=1)
    val_fraction: float = setting(0.2, "validation share of each domain and class", min=0, max=1)
    test_fraction: float = setting(0.2, "test share (datasets without an official test split)", min=0, max=1)
    split_seed: int = setting(0, "seed of the stratified split", min=0)
    split_dir: Optional[str] = setting(None, "user split files {domain}_{train,val,test}.txt")
    few_shot: Optional[int] = setting(None, "keep k training images per class and domain; null: all", min=1)
    few_shot_seed: int = setting(0, "seed of the few-shot subset", min=0)
    few_shot_short: Literal["error", "warn"] = setting(
        "error", "a class with fewer training images than few_shot: error: stop at start-up | warn: "
                 "train on what there is, stated in the record's warnings and image counts")
    fingerprint: Literal["listing", "content"] = setting(
        "listing", "what the run id knows of the images: listing: paths and sizes (instant) | content: "
                   "SHA-256 of every file, cached by path, size and mtime (a damaged copy gets another run id)")
    download_hint: str = setting("", "shown in the 'not found' error")
    unreadable: Literal["error", "skip"] = setting(
        "error", "images that cannot be read: error: stop at start-up listing them | skip: leave them out, "
        "counted per split and task in the record (docs/reliability.md)")
    target: Optional[str] = setting(None, "protocol=leave_one_out: the held-out domain (never trained or "
                                          "validated on, tested); null under multitask")
    task_order: Optional[list[str]] = setting(None, "protocol=sequential: the order the domains are trained in, "
                                                    "every domain once (null: the dataset's order)", min_length=1)
    model: DatasetModelConfig = field(default_factory=DatasetModelConfig)


@dataclass
class MethodConfig:
    """Settings every method has; a method's own block subclasses this."""

    name: str = setting("", "registered method name (methods/registry.py)")
    mode: str = setting("mt", "parameter sharing: mt (one set for all tasks) | st (one per task) | "
                              "the method's own modes")
    truncate_text: bool = setting(True, "run the causal text tower only up to the last EOT (exact)")

    def warmup_on_every_task(self) -> Optional[str]:
        """What this method trains on every task's training data before its own training (a
        phrase naming it and the settings that avoid it), None when nothing: protocol=sequential
        refuses such a warm-up, which would see later stages' domains before stage 1."""
        return None

    @classmethod
    def without_warmup_on_every_task(cls, mode: str) -> tuple[str, ...]:
        """Overrides under which `mode` needs no such warm-up (a sweep's `method: all` adds them
        under protocol=sequential); () where its defaults need none."""
        return ()


@dataclass
class SpeedConfig:
    """`python -m bench.speed`: throughput and memory per method and mode."""

    variant: Literal["compare", "fast", "baseline"] = setting(
        "compare", "compare: optimised and baseline in one process | fast | baseline")
    data: Literal["synthetic", "real"] = setting("synthetic", "synthetic tensors | the dataset's loaders")
    methods: Any = setting("all", "all: every registered method and mode | a list, e.g. [coop, coop:st]")
    tasks: int = setting(4, "synthetic: tasks, each with the same class list", min=1)
    classes: int = setting(65, "synthetic: classes per task", min=1)
    batch_size: int = setting(8, "images per task per step (overrides train.batch_size)", min=1)
    warmup_steps: int = setting(2, "untimed steps first (fills the image cache where it applies)", min=0)
    steps: int = setting(3, "timed training steps", min=1)
    eval_images: int = setting(8, "synthetic: evaluation images per task", min=1)
    eval_repeats: int = setting(1, "timed evaluations, after one warm-up evaluation", min=1)
    augment: list[bool] = setting([True, False], "training rows; false only where it changes something",
                                  min_length=1)
    wrapper_rounds: int = setting(3, "wrapper vs open_clip timing: interleaved rounds (0: skip it)", min=0)
    loader_batches: int = setting(5, "real data: batches timed for decoding + augmentation alone", min=1)
    output: str = setting("results/speed.md", "the table; rows also accumulate in the .json beside it")


@dataclass
class DataSpeedConfig:
    """`python -m bench.speed.data_loading`: images/s of the training loaders on generated JPEGs."""

    images: int = setting(128, "generated JPEGs (one domain, `classes` classes); fewer make epochs too short "
                                "for ratios that hold still (at 64 they moved by 20-50 % between rounds)", min=2)
    classes: int = setting(4, "class folders they are spread over", min=1)
    long_side_min: int = setting(300, "long side of the smallest image, px (sizes are log-uniform)", min=16)
    long_side_max: int = setting(4000, "long side of the largest image, px", min=16)
    quality: int = setting(90, "JPEG quality of the generated images", min=1, max=100)
    image_size: int = setting(224, "the model's input size (CoOp's ViT-B/16: 224)", min=8)
    batch_size: int = setting(32, "images per batch", min=1)
    workers: list[int] = setting([1, 2], "loader worker counts to measure (runtime.num_workers=auto is added)")
    cache_side: int = setting(448, "shorter side of the resized-cache row (train.resized_cache_side)", min=8)
    rounds: int = setting(5, "timed epochs per pipeline, taken in turn with its comparison (A, B, A, B); the "
                             "table gives the median and the min-max, each ratio within a round", min=1)
    warmup_rounds: int = setting(1, "untimed epochs per pipeline first (page cache, persistent workers)", min=0)
    min_round_seconds: float = setting(2.0, "a timed round repeats a pipeline's epoch until this long has passed "
                                            "(the resized-copy rows' epochs last a tenth of a second)", min=0.0)
    unpinned_rows: bool = setting(False, "also time the baseline and ours with glibc's malloc thresholds as each "
                                         "worker inherits them (runtime.worker_malloc_trim_mib=null): what pinning "
                                         "them buys; these two rows depend on the process's history and may move "
                                         "between runs")
    stats_images: int = setting(24, "images whose crops are compared pixel by pixel with the reference", min=1)
    seed: int = setting(0, "seed of the generated images and of the crops", min=0)
    folder: Optional[str] = setting(None, "where the images are generated; null: <cache_dir>/speed-data")
    cache_dir: str = setting("${oc.env:CPB_CACHE,'~/.cache/clip-prompt-bench'}", "generated images, resized copies")
    output: Optional[str] = setting(None, "also write the table to this Markdown file; null: print only")


@dataclass
class StartupSpeedConfig:
    """`python -m bench.speed.startup`: how long the commands that need no model take to answer."""

    rounds: int = setting(5, "timed rounds; each runs every path once, in turn with the yardstick", min=1)
    warmup_rounds: int = setting(1, "untimed rounds first (the page cache warm)", min=0)
    records: int = setting(1000, "run records the timed `bench.report` reads", min=1)
    preset: str = setting("toy_all", "the sweep preset whose `status` is timed (toy_all: 60 runs)")
    folder: Optional[str] = setting(None, "where the records and the sweep's state are written; null: a temporary "
                                          "folder, removed afterwards")
    output: Optional[str] = setting(None, "also write the table to this Markdown file; null: print only")


@dataclass
class SearchSettings:
    """A sweep preset's `search: {trials: K, seed: S}`: K trials per method and grid point, trial t
    of method m drawing its settings from m's search space with a generator seeded by (S, m, t)
    (bench/search_space.py)."""

    trials: int = setting(1, "search trials per method and grid point", min=1)
    seed: int = setting(0, "the seed of every trial's draw", min=0)


@dataclass
class SweepPreset:
    """A sweep (configs/sweep/<name>.yaml, read by `bench.sweep.load_preset`): every combination
    of the `grid`'s axes, each run with the `fixed` overrides first."""

    name: str = setting("", "the sweep's name: its folder results/sweeps/<name>/ and each run's runtime.sweep")
    fixed: list[str] = setting([], "overrides every run of the sweep gets")
    grid: dict = setting({}, "axes: a key and its list of values (`seed: [1, 2]`) or of override strings "
                             "(`method: [method=coop, method=vpt method.mode=st]`); `method: all` is every "
                             "registered method in each of its modes")
    search: Optional[SearchSettings] = setting(None, "null (`paper` in a YAML): every run at its method's paper "
                                                     "settings; {trials, seed}: a random search")


@dataclass
class RunConfig:
    """The root: `python -m bench.run` trains and evaluates one method on one dataset."""

    seed: int = setting(1, "the run's seed (initialisation, batches, augmentation)", min=0)
    protocol: Literal["multitask", "leave_one_out", "sequential"] = setting(
        "multitask", "multitask: every domain trains and is tested (the MmAP paper's) | leave_one_out: "
                     "dataset.target is held out (DomainBed; bench/protocols.py) | sequential: the domains trained one "
                     "after another in dataset.task_order, every domain measured after every stage (docs/protocols.md)")
    train: TrainConfig = field(default_factory=TrainConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    method: MethodConfig = field(default_factory=MethodConfig)




def defaults_of(schema: type) -> dict:
    """The schema's defaults as a plain dict (what Hydra's ConfigStore holds)."""
    return dataclasses.asdict(schema())
