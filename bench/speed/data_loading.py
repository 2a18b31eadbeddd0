"""`python -m bench.speed.data_loading [key=value ...]`: can the data pipeline feed a GPU?

Generates JPEGs with the size spread of real Office-Home and DomainNet photos (long side
log-uniform between `long_side_min` and `long_side_max`, default 300-4,000 px, quality 90;
settings: `DataSpeedConfig` in bench/schema.py), then measures, in this one process, training
images/s (CoOp's transforms at `image_size`: random resized crop, flip, normalise) of:

* the baseline: a plain `torchvision.datasets.ImageFolder` + the same transforms + `DataLoader`
  (`batch_size`, persistent workers), per worker count and for `runtime.num_workers=auto`;
* our default train loader (`bench.data.MultiTaskData`: seeded per-sample augmentation,
  persistent workers, glibc's malloc thresholds pinned in its workers by
  `runtime.worker_malloc_trim_mib`), the same worker counts: the reference pipeline,
  bit-identical to PIL + torchvision;
* the named opt-ins, at `auto` workers: `runtime.prefetch_factor=4`, `train.jpeg_draft=true`
  (reduced-scale JPEG decoding), `train.resized_cache_side=<cache_side>` (a one-time resized
  copy; its one-time cost is printed), both together, and, on CUDA only, nvJPEG decoding
  (`datasets.decoding.decode_jpegs_on_gpu`) with the crop on the GPU.

Each row is timed over `rounds` rounds after `warmup_rounds` untimed epochs (the page cache
warm, persistent workers started), the pipelines of a comparison taken in turn within each
round, a round being whole epochs until `min_round_seconds` have passed; a row gives the median
images/s and its min-max, and the median of its per-round ratios to the baseline timed in the
same rounds and their min-max.  What made two runs disagree by up to 2x is held fixed: the
baseline reads the same batches as ours (our sampler's, by file), its crops come from seeded
generators, and every loader worker, the baseline's too, runs with glibc's malloc thresholds
pinned (`runtime.worker_malloc_trim_mib`, bench/malloc.py), not as the history of the process
it was forked from left them.  A ratio whose rounds spread by
more than 15 % of its median is flagged with a warning: that figure decides nothing.  The approximate opt-ins also get their pixel statistics against the
reference on `stats_images` images under the same seeds: per-channel mean and standard
deviation of the crops (0-255 scale) and the mean absolute difference per pixel.
Example: ``python -m bench.speed.data_loading images=120 workers=[1,2]``.
"""
from __future__ import annotations

import dataclasses
import sys
from typing import Sequence

from omegaconf import OmegaConf

from bench.errors import guarded
from bench.schema import DataSpeedConfig, defaults_of
from bench.config_checks import check_section, instantiate


def config_from(argv: Sequence[str]) -> DataSpeedConfig:
    """`key=value` arguments over the schema's defaults, checked (a bad one is a ConfigError)."""
    node = OmegaConf.merge(defaults_of(DataSpeedConfig), OmegaConf.from_dotlist(list(argv)))
    check_section(node, DataSpeedConfig, "")
    return instantiate(DataSpeedConfig, OmegaConf.to_container(node, resolve=True))


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in args):
        print(__doc__.strip())
        print("\nsettings:", ", ".join(f"{f.name}={f.default if f.default is not dataclasses.MISSING else '...'}"
                                       for f in dataclasses.fields(DataSpeedConfig)))
        return 0
    guarded(measure)(args)
    return 0


def measure(args: Sequence[str]) -> dict:
    cfg = config_from(args)
    from bench.speed.loader_benchmark import run  # deferred: torch and torchvision, for the measurement only

    return run(cfg)


if __name__ == "__main__":
    sys.exit(main())
