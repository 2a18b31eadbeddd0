"""`python -m bench.speed.data_loading` runs end to end at a tiny size (its figures come from the
command, never from this test), and its settings are checked like every other."""
from __future__ import annotations

import pytest
import torch
from PIL import Image

from bench.errors import ConfigError
from bench.speed.data_loading import config_from, main
from bench.speed.loader_benchmark import BASELINE, UNPINNED_BASELINE, UNPINNED_OURS, generate_images, run


def test_generated_images_follow_the_size_spread_and_quality(tmp_path):
    cfg = config_from([f"cache_dir={tmp_path}", "images=6", "classes=2", "long_side_min=300", "long_side_max=900"])
    folder = generate_images(cfg)
    files = sorted((folder / "photo").rglob("*.jpg"))
    assert len(files) == 6 and {f.parent.name for f in files} == {"class_0", "class_1"}
    for f in files:
        with Image.open(f) as im:
            assert im.format == "JPEG" and 300 <= max(im.size) <= 900
    assert generate_images(cfg) == folder  # made once


def test_the_benchmark_measures_every_pipeline_and_the_pixel_statistics(tmp_path):
    cfg = config_from([f"cache_dir={tmp_path}", "images=6", "classes=2", "long_side_max=900", "batch_size=3",
                       "workers=[0]", "rounds=2", "warmup_rounds=0", "stats_images=2", "image_size=32", "cache_side=64",
                       "min_round_seconds=0", "unpinned_rows=true",
                       f"output={tmp_path}/speed_data.md"])
    result = run(cfg, log=lambda text: None)
    names = [row.name for row in result["rows"]]
    assert names.count(BASELINE) == names.count("ours, default (reference pixels)") >= 2
    assert {"ours + train.jpeg_draft", "ours + train.resized_cache_side=64", "ours + runtime.prefetch_factor=4"} <= set(names)
    assert {UNPINNED_BASELINE, UNPINNED_OURS} <= set(names) and result["best"].name not in (UNPINNED_BASELINE,
                                                                                             UNPINNED_OURS)
    assert all(len(row.rates) == len(row.ratios) == 2 and row.rate > 0 for row in result["rows"])
    baselines = [row for row in result["rows"] if row.name == BASELINE]
    assert all(row.ratios == (1.0, 1.0) for row in baselines)
    text = (tmp_path / "speed_data.md").read_text()
    assert "train.jpeg_draft (same crop boxes)" in text and "default vs baseline, same workers" in text
    assert "images/s (median)" in text and "vs baseline (median)" in text and "may move between runs" in text
    if not torch.cuda.is_available():
        assert "GPU decode: not measured (no CUDA device here)" in text


def test_bad_settings_are_a_clear_error(capsys):
    with pytest.raises(ConfigError, match="quality=0 is not allowed"):
        config_from(["quality=0"])
    with pytest.raises(ConfigError, match="imgaes"):
        config_from(["imgaes=3"])
    with pytest.raises(SystemExit) as exit_info:
        main(["workers=two"])
    assert exit_info.value.code == 2 and "workers" in capsys.readouterr().err


def test_a_ratio_that_moves_between_rounds_is_flagged():
    from bench.speed.loader_benchmark import RATIO_SPREAD_WARNING, rows_against
    steady, unsteady = rows_against([100.0, 100.0, 100.0], {"a": [150.0, 155.0, 152.0], "b": [150.0, 90.0, 120.0]},
                                    "2")
    assert steady.ratio == 1.52 and steady.ratio_spread < RATIO_SPREAD_WARNING < unsteady.ratio_spread
    assert (steady.rate, min(unsteady.ratios), max(unsteady.ratios)) == (152.0, 0.9, 1.5)


def test_a_round_repeats_whole_epochs_until_it_has_lasted_long_enough(monkeypatch):
    import itertools
    import time

    from bench.speed.loader_benchmark import interleaved_rates

    clock = itertools.count(0.0, 1.0)  # every reading one second after the last
    monkeypatch.setattr(time, "perf_counter", lambda: next(clock))
    seen = {"a": [], "b": []}

    def pipeline(name, images_per_batch):
        def epoch(number):
            seen[name].append(number)
            return [(torch.zeros(images_per_batch),)] * 2
        return epoch

    rates = interleaved_rates([pipeline("a", 4), pipeline("b", 8)], rounds=2, warmup_rounds=1, min_round_seconds=2.0)
    assert seen == {"a": [0, 1, 2, 3, 4], "b": [0, 1, 2, 3, 4]}  # the untimed epoch 0, then two epochs a round
    assert rates == [[8.0, 8.0], [16.0, 16.0]]  # 2 epochs x 2 batches x 4 (8) images in 2 s
