"""Faster ways to turn a JPEG into a training crop, each an opt-in that names what it changes.

The reference (the default) decodes every image at full size with PIL, then crops and resizes
(torchvision, as CoOp's Dassl pipeline does).  A training crop of 224 px taken from a 3,000 px
photo throws away most of those pixels; the opt-ins avoid decoding or storing them:

* ``DraftRandomResizedCrop`` (``train.jpeg_draft=true``): draws the crop exactly as
  ``torchvision.transforms.RandomResizedCrop`` does (same random numbers, same box on the full
  image), then asks PIL's ``draft`` for the largest JPEG DCT scale (1/2, 1/4, 1/8) at which the
  box still has at least the output size in both directions, decodes at that scale, maps the
  box onto it and resizes.  Same crops, slightly different pixels (DCT scaling is a box filter
  where the reference resizes bicubically); ``python -m bench.speed.data_loading`` measures the
  difference on pixel statistics.  Not used for evaluation: its resize is not proven exact.
* ``resized_copy`` (``train.resized_cache_side=S``): a one-time copy of the training images with
  shorter side S (JPEG quality 95, readable by any library), under the cache folder, keyed by
  the source's path, size and mtime; images already that small are used as they are.
* ``decode_jpegs_on_gpu``: ``torchvision.io.decode_jpeg`` on CUDA (nvJPEG) for a batch of
  encoded files; only behind a CUDA check (a clear ConfigError without one).
"""
from __future__ import annotations

import hashlib
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional, Sequence

import torch
from PIL import Image
from torchvision import transforms as T
from torchvision.io import ImageReadMode, decode_jpeg
from torchvision.transforms import functional as F

from bench.errors import ConfigError

from .base import Sample, load_rgb


class DraftRandomResizedCrop(T.RandomResizedCrop):
    """``RandomResizedCrop`` on a lazily opened PIL image, decoded at reduced scale (see the module
    docstring).  Expects the image as ``Image.open`` returns it (not yet loaded); any other image
    (loaded, PNG, tensor) is cropped exactly as the parent class does."""

    def forward(self, img):
        if not isinstance(img, Image.Image):
            return super().forward(img)
        top, left, height, width = self.get_params(img, self.scale, self.ratio)  # on the full image
        full_w, full_h = img.size
        out_h, out_w = self.size
        if img.format == "JPEG" and getattr(img, "tile", None):  # opened, not yet decoded
            # the smallest decoded size at which the box still has the output's pixels
            request = (max(1, -(-full_w * out_w // width)), max(1, -(-full_h * out_h // height)))
            img.draft("RGB", request)
        img = img.convert("RGB")
        sx, sy = img.size[0] / full_w, img.size[1] / full_h
        if (sx, sy) == (1.0, 1.0):
            return F.resized_crop(img, top, left, height, width, self.size, self.interpolation,
                                  antialias=self.antialias)
        box = (left * sx, top * sy, (left + width) * sx, (top + height) * sy)
        return img.resize((out_w, out_h), resample=_PIL_RESAMPLE[self.interpolation], box=box)


_PIL_RESAMPLE = {T.InterpolationMode.BICUBIC: Image.BICUBIC, T.InterpolationMode.BILINEAR: Image.BILINEAR,
                 T.InterpolationMode.NEAREST: Image.NEAREST}


def open_lazy(path: str) -> Image.Image:
    """The image at `path`, opened but not decoded (so a transform may choose its scale)."""
    return Image.open(path)


# ---- the one-time resized copy -------------------------------------------------------------------
def _cached_name(path: str, side: int) -> str:
    st = os.stat(path)
    key = hashlib.sha1(f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}|{side}".encode()).hexdigest()
    return f"{key[:2]}/{key}.jpg"


def _resize_one(path: str, side: int, folder: str) -> str:
    target = os.path.join(folder, _cached_name(path, side))
    if os.path.isfile(target):
        return target
    with Image.open(path) as image:
        if min(image.size) <= side:
            return path  # already small enough: used as it is
        image.draft("RGB", (side, side))  # the decode may be reduced, never below the target
        image = image.convert("RGB")
        scale = side / min(image.size)
        size = (max(side, round(image.size[0] * scale)), max(side, round(image.size[1] * scale)))
        resized = image.resize(size, Image.BICUBIC, reducing_gap=3.0)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    part = f"{target}.{os.getpid()}.part"
    resized.save(part, "JPEG", quality=95)
    os.replace(part, target)  # a killed copy never leaves half a file under the real name
    return target


def resized_copy(samples: Sequence[Sample], side: int, cache_dir: str, workers: int = 4) -> list[Sample]:
    """`samples` with each image replaced by its copy of shorter side `side` (made once, then reused).
    An unreadable image keeps its own path, so the loader reports it as it would without a copy."""
    folder = os.path.join(os.path.expanduser(cache_dir), "resized", str(side))

    def one(path: str) -> str:
        try:
            return _resize_one(path, side, folder)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            return path

    paths = sorted({p for p, _ in samples})
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        mapping = dict(zip(paths, pool.map(one, paths)))
    return [(mapping[p], label) for p, label in samples]


# ---- GPU decoding --------------------------------------------------------------------------------
def decode_jpegs_on_gpu(encoded: Sequence[torch.Tensor], device: str | torch.device = "cuda") -> list[torch.Tensor]:
    """Decode JPEG bytes (uint8 CPU tensors, ``torchvision.io.read_file``) on a CUDA device with
    nvJPEG: RGB uint8 tensors (C, H, W) on that device.  Without CUDA: a ConfigError, never a
    silent fall-back to another path (use the CPU loader instead)."""
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        raise ConfigError(f"GPU JPEG decoding needs a CUDA device; asked for {device}, and CUDA is "
                          f"{'available' if torch.cuda.is_available() else 'not available here'}. Decode "
                          "on the CPU workers instead (the default loader).")
    return decode_jpeg(list(encoded), mode=ImageReadMode.RGB, device=device)


class ImageListDataset(torch.utils.data.Dataset):
    """Map-style dataset over ``(path, label)`` samples.

    ``__getitem__`` returns ``(transform(rgb_image), label)``, or ``None`` when
    the file is missing, truncated or not an image (use
    :func:`collate_skip_unreadable` as the DataLoader's ``collate_fn``).
    """

    def __init__(self, samples: Sequence[Sample], transform: Optional[Callable] = None, lazy: bool = False):
        self.samples = list(samples)
        self.transform = transform
        self.lazy = lazy  # the transform receives the image opened, not decoded (it decodes it: draft)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, label = self.samples[index]
        try:
            image = Image.open(path) if self.lazy else load_rgb(path)
            if self.lazy and self.transform is not None:  # decoding happens inside the transform
                return self.transform(image), label
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            # OSError covers FileNotFoundError and PIL.UnidentifiedImageError.
            warnings.warn(f"skipping unreadable image {path}: {exc}", RuntimeWarning, stacklevel=2)
            return None
        if self.transform is not None:
            image = self.transform(image)
        return image, label


def collate_skip_unreadable(batch) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Collate ``(image, label)`` items, dropping ``None`` (unreadable) ones.

    Returns ``(images, labels, num_unreadable)``. When every item was
    unreadable, ``images`` and ``labels`` are empty tensors (``numel() == 0``);
    the caller should skip such a batch.
    """
    items = [item for item in batch if item is not None]
    num_unreadable = len(batch) - len(items)
    if not items:
        return torch.empty(0), torch.empty(0, dtype=torch.long), num_unreadable
    images = torch.stack([img for img, _ in items])
    labels = torch.as_tensor([int(lbl) for _, lbl in items], dtype=torch.long)
    return images, labels, num_unreadable
