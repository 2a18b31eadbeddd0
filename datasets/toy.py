"""Toy multi-domain dataset, generated on first use (tests, smoke runs, demos).

4 domains in visibly different styles x 5 shape classes x 200 images of 64x64:

* ``photo`` -- filled, shaded shape on a noisy textured background (JPEG);
* ``sketch`` -- black outline on white paper (PNG);
* ``clipart`` -- flat saturated fill with a thick black border on a flat
  background (PNG);
* ``painting`` -- blurred, brush-stroked, noisy rendering (JPEG).

Classes: circle, square, triangle, cross, star; position, size, rotation and
colours are jittered. Generation is deterministic (``numpy`` RNG with a fixed
seed: the same bytes every time on a given Pillow/libjpeg) and takes about 5
seconds. It is written into a temporary folder next to ``root`` and renamed
into place, so a killed or concurrent generation never leaves a half dataset;
afterwards the cached copy is reused (``<root>/toy_meta.json`` marks it
complete). Bump the folder name (``toy_v2``) when the generator changes.
Splits and few-shot are those of the generic ImageFolder builder.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from bench import faults
from bench.atomic_io import storage_error

from bench.schema import DatasetConfig

from .base import DatasetError, MultiDomainDataset
from .imagefolder import build_imagefolder
from .registry import register_dataset
from .splits import as_list, expand_root

VERSION = 2
SEED = 20240101
DOMAINS = ("photo", "sketch", "clipart", "painting")
CLASSES = ("circle", "square", "triangle", "cross", "star")
IMAGES_PER_CLASS = 200
SIZE = 64
SUPERSAMPLE = 2  # draw at 2x and downsample for anti-aliased edges
META_FILE = "toy_meta.json"


def _polygon(shape: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    def ring(radii, offset_deg):
        n = len(radii)
        return [
            (cx + rad * math.cos(math.radians(offset_deg + angle + 360 * i / n)),
             cy + rad * math.sin(math.radians(offset_deg + angle + 360 * i / n)))
            for i, rad in enumerate(radii)
        ]

    if shape == "square":
        return ring([r] * 4, 45)
    if shape == "triangle":
        return ring([r] * 3, -90)
    if shape == "star":
        return ring([r, 0.42 * r] * 5, -90)
    if shape == "cross":
        w = 0.34 * r
        pts = [(w, r), (w, w), (r, w), (r, -w), (w, -w), (w, -r),
               (-w, -r), (-w, -w), (-r, -w), (-r, w), (-w, w), (-w, r)]
        c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in pts]
    raise ValueError(shape)


def _draw_shape(draw: ImageDraw.ImageDraw, shape, cx, cy, r, angle, fill, outline, width):
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill, outline=outline, width=width)
    else:
        pts = _polygon(shape, cx, cy, r, angle)
        draw.polygon(pts, fill=fill, outline=outline, width=width)


def _color(rng: np.random.Generator, saturated: bool, value=(0.5, 0.95)) -> tuple[int, int, int]:
    hue = rng.uniform(0, 1)
    sat, val = (1.0, 1.0) if saturated else (rng.uniform(0.4, 0.9), rng.uniform(*value))
    i = int(hue * 6) % 6
    f = hue * 6 - int(hue * 6)
    p, q, t = val * (1 - sat), val * (1 - f * sat), val * (1 - (1 - f) * sat)
    rgb = [(val, t, p), (q, val, p), (p, val, t), (p, q, val), (t, p, val), (val, p, q)][i]
    return tuple(int(255 * c) for c in rgb)


def render_image(domain: str, shape: str, rng: np.random.Generator) -> Image.Image:
    """One ``SIZE`` x ``SIZE`` RGB image of ``shape`` in ``domain``'s style, drawn from ``rng``.

    Public so that other generators (e.g. bench.toy_pretrain's pretraining set, drawn
    with another seed) share the exact drawing code of the benchmark images.
    """
    big = SIZE * SUPERSAMPLE
    r = rng.uniform(0.22, 0.36) * big
    cx, cy = rng.uniform(r + 2, big - r - 2, size=2)
    angle = rng.uniform(-15, 15)
    if domain == "photo":
        base = np.array(_color(rng, False), dtype=np.float32)
        yy, xx = np.mgrid[0:big, 0:big] / big
        gradient = (xx * rng.uniform(-60, 60) + yy * rng.uniform(-60, 60))[..., None]
        noise = rng.normal(0, 25, size=(big, big, 3))
        bg = np.clip(base * 0.6 + gradient + noise, 0, 255).astype(np.uint8)
        im = Image.fromarray(bg)
        draw = ImageDraw.Draw(im)
        fill = _color(rng, False)
        _draw_shape(draw, shape, cx + 3, cy + 3, r, angle, (30, 30, 30), None, 0)  # shadow
        _draw_shape(draw, shape, cx, cy, r, angle, fill, None, 0)
        arr = np.asarray(im).astype(np.float32) + rng.normal(0, 8, size=(big, big, 3))
        im = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    elif domain == "sketch":
        gray = int(rng.integers(235, 256))
        im = Image.new("RGB", (big, big), (gray, gray, gray))
        draw = ImageDraw.Draw(im)
        width = int(rng.integers(2, 5)) * SUPERSAMPLE // 2 + 1
        _draw_shape(draw, shape, cx, cy, r, angle, None, (0, 0, 0), width)
    elif domain == "clipart":
        im = Image.new("RGB", (big, big), _color(rng, True))
        draw = ImageDraw.Draw(im)
        _draw_shape(draw, shape, cx, cy, r, angle, _color(rng, True), (0, 0, 0), 5)
    elif domain == "painting":
        dark_background = bool(rng.integers(0, 2))  # shape contrasts with its background
        bg_value, fg_value = ((0.25, 0.5), (0.8, 1.0)) if dark_background else ((0.8, 1.0), (0.25, 0.5))
        im = Image.new("RGB", (big, big), _color(rng, False, bg_value))
        draw = ImageDraw.Draw(im)
        for _ in range(14):  # background brush strokes
            x0, y0 = rng.uniform(0, big, size=2)
            dx, dy = rng.normal(0, big / 4, size=2)
            draw.line([x0, y0, x0 + dx, y0 + dy], fill=_color(rng, False, bg_value), width=int(rng.integers(4, 12)))
        _draw_shape(draw, shape, cx, cy, r, angle, _color(rng, False, fg_value), None, 0)
        im = im.filter(ImageFilter.GaussianBlur(radius=2.5))
        arr = np.asarray(im).astype(np.float32) + rng.normal(0, 12, size=(big, big, 3))
        im = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    else:
        raise ValueError(domain)
    return im.resize((SIZE, SIZE), Image.BILINEAR)


_render = render_image  # former private name


def generate_toy(out_dir: str) -> None:
    """Write the whole toy dataset into ``out_dir`` (deterministic bytes)."""
    rng = np.random.default_rng(SEED)
    for domain in DOMAINS:
        ext = "png" if domain in ("sketch", "clipart") else "jpg"
        for shape in CLASSES:
            folder = os.path.join(out_dir, domain, shape)
            os.makedirs(folder, exist_ok=True)
            for i in range(IMAGES_PER_CLASS):
                im = render_image(domain, shape, rng)
                path = os.path.join(folder, f"{shape}_{i:03d}.{ext}")
                faults.before_write(path)
                if ext == "jpg":
                    im.save(path, format="JPEG", quality=90)
                else:
                    im.save(path, format="PNG")
    meta = {"version": VERSION, "seed": SEED, "domains": DOMAINS, "classes": CLASSES,
            "images_per_class": IMAGES_PER_CLASS, "size": SIZE}
    with open(os.path.join(out_dir, META_FILE), "w") as f:
        json.dump(meta, f, indent=1)


def ensure_toy(root: str) -> bool:
    """Generate the toy dataset at ``root`` unless a complete copy is there.

    Returns True when it generated it now. Atomic: generate into a temporary
    sibling folder, then rename; a concurrent winner's copy is kept.
    """
    if os.path.isfile(os.path.join(root, META_FILE)):
        return False
    if os.path.exists(root) and os.listdir(root):
        raise DatasetError(
            f"Toy dataset folder {root} exists but is not a complete toy dataset (no {META_FILE}). "
            f"Delete it to regenerate, or pass dataset.root=/another/path (or set CPB_CACHE)."
        )
    parent = os.path.dirname(root.rstrip(os.sep)) or "."
    try:
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(root)}.tmp-", dir=parent)
    except OSError as exc:
        raise DatasetError(
            f"Cannot create the toy dataset under {parent} ({exc}). Pass a writable dataset.root=... "
            f"or set CPB_CACHE to a writable folder."
        ) from None
    try:
        generate_toy(tmp)
        if os.path.isdir(root) and not os.listdir(root):
            os.rmdir(root)
        os.rename(tmp, root)
    except OSError as error:  # a full disk, a quota: no half dataset is left behind
        shutil.rmtree(tmp, ignore_errors=True)
        if os.path.isfile(os.path.join(root, META_FILE)):
            return False  # another process won the race
        raise storage_error(error, Path(root)) from None
    return True


@register_dataset("toy")
def build_toy(cfg: DatasetConfig) -> MultiDomainDataset:
    root = expand_root(cfg.root)
    ensure_toy(root)
    return build_imagefolder(cfg, name="toy", root=root, domains=as_list(cfg.domains) or list(DOMAINS),
                             builder="toy")
