"""Building a CLIP (bench/models.py): local weights load exactly; an unknown arch or tag names the choices."""
from __future__ import annotations

import pytest
import torch

from bench.clip import ModelError


def test_local_checkpoint_path_loads_those_weights(tiny_clip, tmp_path):
    from bench.models import build_clip
    path = tmp_path / "tiny.pt"
    torch.save(tiny_clip.model.state_dict(), path)
    loaded = build_clip("cpb-tiny", str(path))
    for (name, a), (_, b) in zip(tiny_clip.model.state_dict().items(), loaded.model.state_dict().items()):
        assert torch.equal(a, b), name
    assert all(not p.requires_grad for p in loaded.model.parameters())


def test_unknown_arch_and_tag_are_clear_errors():
    from bench.models import build_clip
    with pytest.raises(ModelError, match="Unknown model.arch 'ViT-Q-99'"):
        build_clip("ViT-Q-99", "none")
    with pytest.raises(ModelError, match="Known tags for ViT-B-16: .*openai"):
        build_clip("ViT-B-16", "no-such-tag")
