"""Datasets' shared pieces (datasets/decoding.py): an unreadable image is None and the collate counts it."""
from __future__ import annotations

import pytest
import torch
from bench.datasets.decoding import ImageListDataset, collate_skip_unreadable
from helpers import (
    write_image,
)


def test_corrupt_image_returns_none_and_collate_counts(tmp_path):
    good = tmp_path / "good.jpg"
    write_image(good)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"this is not a jpeg")
    missing = tmp_path / "missing.jpg"
    to_tensor = lambda im: torch.from_numpy(__import__("numpy").asarray(im).copy()).permute(2, 0, 1).float()
    data = ImageListDataset([(str(good), 1), (str(bad), 2), (str(missing), 0)], to_tensor)
    with pytest.warns(RuntimeWarning):
        items = [data[i] for i in range(3)]
    assert items[0][1] == 1 and items[0][0].shape == (3, 4, 4)
    assert items[1] is None and items[2] is None
    images, labels, n_bad = collate_skip_unreadable(items)
    assert images.shape == (1, 3, 4, 4) and labels.tolist() == [1] and labels.dtype == torch.long
    assert n_bad == 2
    images, labels, n_bad = collate_skip_unreadable([None, None])
    assert images.numel() == 0 and labels.numel() == 0 and n_bad == 2
    loader = torch.utils.data.DataLoader(data, batch_size=3, collate_fn=collate_skip_unreadable)
    with pytest.warns(RuntimeWarning):
        assert next(iter(loader))[2] == 2
