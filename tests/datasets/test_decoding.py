"""The loader's opt-ins change only what they say: the default stays PIL + torchvision bit for bit,
reduced-scale decoding keeps the crops and moves pixels a little, the resized copy is made once."""
from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T
from torchvision.io import read_file

from bench.data import ImageSpec, MultiTaskData, build_transforms
from bench.datasets import MultiDomainDataset, Task
from bench.datasets.decoding import ImageListDataset
from bench.datasets.decoding import DraftRandomResizedCrop, decode_jpegs_on_gpu, resized_copy
from bench.errors import ConfigError
from bench.identity import identity_config
from bench.schema import RunConfig, TrainConfig

SPEC = ImageSpec(32, {"mean": (0.5, 0.4, 0.3), "std": (0.2, 0.25, 0.3), "interpolation": "bicubic"})


def _photo(path, size, seed=0):
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize(size, Image.BICUBIC)
    coarse.save(path, "JPEG", quality=90)
    return str(path)


def _reference(size):
    """CoOp's training transforms written with torchvision alone, on a PIL image decoded in full."""
    return T.Compose([T.RandomResizedCrop(size, scale=(0.08, 1.0), interpolation=T.InterpolationMode.BICUBIC),
                      T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(SPEC.preprocess_cfg["mean"],
                                                                            SPEC.preprocess_cfg["std"])])


def test_the_default_train_sample_is_bit_identical_to_pil_and_torchvision(tmp_path):
    path = _photo(tmp_path / "a.jpg", (400, 300))
    train, _ = build_transforms(SPEC, True, (0.08, 1.0))
    for seed in range(5):
        torch.manual_seed(seed)
        ours, _ = ImageListDataset([(path, 0)], train)[0]
        torch.manual_seed(seed)
        with Image.open(path) as im:
            reference = _reference(32)(im.convert("RGB"))
        assert torch.equal(ours, reference)


def test_draft_keeps_the_crop_boxes_and_moves_pixels_only_slightly(tmp_path):
    path = _photo(tmp_path / "big.jpg", (1600, 1200))
    draft = DraftRandomResizedCrop(32, scale=(0.08, 1.0), interpolation=T.InterpolationMode.BICUBIC)
    full = T.RandomResizedCrop(32, scale=(0.08, 1.0), interpolation=T.InterpolationMode.BICUBIC)
    diffs = []
    for seed in range(8):
        torch.manual_seed(seed)
        a = np.asarray(draft(Image.open(path)), dtype=float)
        after_draft = torch.random.get_rng_state()
        torch.manual_seed(seed)
        with Image.open(path) as im:
            b = np.asarray(full(im.convert("RGB")), dtype=float)
        assert torch.equal(after_draft, torch.random.get_rng_state())  # the same random numbers, drawn alike
        diffs.append(np.abs(a - b).mean())
    assert max(diffs) < 6.0 and max(diffs) > 0  # a few grey levels of 255: approximate, never a different crop


def test_draft_decodes_at_reduced_scale_and_is_exact_when_it_cannot_reduce(tmp_path, monkeypatch):
    big, small = _photo(tmp_path / "big.jpg", (1600, 1200)), _photo(tmp_path / "small.jpg", (60, 40))
    resized_from = []
    resize = Image.Image.resize
    monkeypatch.setattr(Image.Image, "resize", lambda self, *a, **k: resized_from.append(self.size) or resize(self, *a, **k))
    torch.manual_seed(0)
    DraftRandomResizedCrop(32, scale=(0.9, 1.0))(Image.open(big))
    assert resized_from == [(200, 150)]  # a 32 px crop of ~90 % of the image: decoded at 1/8 scale
    monkeypatch.setattr(Image.Image, "resize", resize)
    crop = DraftRandomResizedCrop(32, scale=(0.08, 1.0), interpolation=T.InterpolationMode.BICUBIC)
    full = T.RandomResizedCrop(32, scale=(0.08, 1.0), interpolation=T.InterpolationMode.BICUBIC)
    for seed in range(4):  # a 60 px image cannot be reduced for a 32 px crop: the reference, bit for bit
        torch.manual_seed(seed)
        a = crop(Image.open(small))
        torch.manual_seed(seed)
        with Image.open(small) as im:
            assert np.array_equal(np.asarray(a), np.asarray(full(im.convert("RGB"))))


def test_an_unreadable_image_in_the_lazy_path_is_skipped_with_a_warning(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not really")
    train, _ = build_transforms(SPEC, True, (0.08, 1.0), jpeg_draft=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert ImageListDataset([(str(bad), 0)], train, lazy=True)[0] is None
    assert "skipping unreadable image" in str(caught[0].message)


def test_the_resized_copy_is_made_once_in_a_standard_format(tmp_path):
    big, small = _photo(tmp_path / "big.jpg", (900, 600)), _photo(tmp_path / "small.jpg", (90, 60))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"nope")
    out = resized_copy([(big, 1), (small, 2), (str(bad), 3)], 100, str(tmp_path / "cache"))
    assert out[1] == (small, 2) and out[2] == (str(bad), 3)  # already small; unreadable: reported later, as usual
    copy, label = out[0]
    assert label == 1 and copy.startswith(str(tmp_path / "cache")) and copy.endswith(".jpg")
    with Image.open(copy) as im:
        assert im.format == "JPEG" and min(im.size) == 100 and im.size[0] == 150
    stamp = os.stat(copy).st_mtime_ns
    assert resized_copy([(big, 1)], 100, str(tmp_path / "cache"))[0][0] == copy
    assert os.stat(copy).st_mtime_ns == stamp  # reused, not made again


def _dataset(paths):
    task = Task("photo", ("a",), tuple((p, 0) for p in paths), (), ())
    return MultiDomainDataset("d", "/", (task,))


def test_the_loader_opt_ins_are_checked_and_reach_the_loader(tmp_path):
    paths = [_photo(tmp_path / f"{i}.jpg", (300, 200), i) for i in range(4)]
    with pytest.raises(ConfigError, match="resized_cache_side=16 needs a side of at least"):
        MultiTaskData(_dataset(paths), SPEC, TrainConfig(resized_cache_side=16), seed=0, cache_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="no cache folder"):
        MultiTaskData(_dataset(paths), SPEC, TrainConfig(resized_cache_side=64), seed=0)
    data = MultiTaskData(_dataset(paths), SPEC, TrainConfig(batch_size=2, resized_cache_side=64, jpeg_draft=True),
                         seed=0, num_workers=1, prefetch_factor=3, cache_dir=str(tmp_path / "c"))
    loader = data.train_loader(0)
    assert loader.prefetch_factor == 3 and loader.dataset.images.lazy
    assert all(p.startswith(str(tmp_path / "c")) for p, _ in loader.dataset.images.samples)
    batches = list(loader)
    assert sum(b.images.shape[0] for b in batches) == 4 and batches[0].images.shape[1:] == (3, 32, 32)
    plain = MultiTaskData(_dataset(paths), SPEC, TrainConfig(), seed=0, prefetch_factor=3)
    assert "prefetch_factor" not in plain.loader_args  # no workers: PyTorch refuses the option


def test_opt_ins_off_leave_run_ids_alone_and_on_change_them():
    off = identity_config(RunConfig())
    assert "jpeg_draft" not in off["train"] and "resized_cache_side" not in off["train"]
    on = identity_config(RunConfig(train=TrainConfig(jpeg_draft=True, resized_cache_side=448)))
    assert on["train"]["jpeg_draft"] is True and on["train"]["resized_cache_side"] == 448


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given without CUDA")
def test_gpu_decoding_without_cuda_is_a_clear_error(tmp_path):
    encoded = [read_file(_photo(tmp_path / "a.jpg", (40, 30)))]
    with pytest.raises(ConfigError, match="GPU JPEG decoding needs a CUDA device.*not available here"):
        decode_jpegs_on_gpu(encoded)
    with pytest.raises(ConfigError, match="asked for cpu"):
        decode_jpegs_on_gpu(encoded, "cpu")
