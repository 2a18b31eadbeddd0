"""Build a frozen `PromptableCLIP` from the `model` config group.

`model.arch` is any open_clip architecture (its JSON configs plus ours in
bench/model_configs/); `model.pretrained` is an open_clip tag (e.g. `openai`), one of our
own tags (`OUR_CHECKPOINTS`: weights shipped inside this package, e.g. `cpb-toy`, the tiny
CLIP pretrained on toy images by `python -m bench.pretrain_toy`), a local checkpoint path,
or `none` for random weights.  Pretrained tags are resolved *before*
open_clip is asked to download anything, so an offline machine gets one clear paragraph
at once instead of a minute of retries and a hub traceback.
"""
from __future__ import annotations

import contextlib
import logging
import os
import socket
from pathlib import Path

import open_clip
import torch

from bench.clip import ModelError, PromptableCLIP
from bench.shipped_weights import OUR_CHECKPOINTS, WEIGHTS_DIR

log = logging.getLogger(__name__)
_OUR_CONFIGS = Path(__file__).parent / "model_configs"
_HUB_HOST = ("huggingface.co", 443)
open_clip.add_model_config(_OUR_CONFIGS)


def _offline() -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}:
        return True
    try:
        socket.create_connection(_HUB_HOST, timeout=3).close()
        return False
    except OSError:
        return True


def _cached_hub_file(hub_entry: str, cache_dir: str | None) -> str | None:
    from huggingface_hub import hf_hub_download

    repo_id, filename = os.path.split(hub_entry)
    candidates = [filename or "open_clip_pytorch_model.bin"]
    if candidates[0].endswith(".bin"):
        candidates.insert(0, candidates[0][:-4] + ".safetensors")
    candidates.append("open_clip_model.safetensors")
    for name in candidates:
        try:
            return hf_hub_download(repo_id=repo_id, filename=name, cache_dir=cache_dir,
                                   local_files_only=True)
        except Exception:  # noqa: BLE001 - any miss means "not in the cache"
            continue
    return None


def resolve_pretrained(arch: str, pretrained: str | None, cache_dir: str | None) -> tuple[str | None, dict]:
    """Return (checkpoint path or None, the tag's open_clip config) for `pretrained`."""
    if pretrained in (None, "", "none", "None"):
        return None, {}
    if pretrained in OUR_CHECKPOINTS:
        fits, filename = OUR_CHECKPOINTS[pretrained]
        if arch != fits:
            raise ModelError(f"model.pretrained={pretrained} holds weights for model.arch={fits}, not "
                             f"{arch}. Use model.arch={fits}, or another model.pretrained for {arch}.")
        path = WEIGHTS_DIR / filename
        if not path.is_file():
            raise ModelError(f"The weights of model.pretrained={pretrained} should ship with the package "
                             f"at {path} but are missing. Regenerate them with `python -m "
                             "bench.pretrain_toy`, or reinstall the package.")
        return str(path), {}
    if os.path.isfile(os.path.expanduser(pretrained)):
        return os.path.expanduser(pretrained), {}
    tag_info = open_clip.get_pretrained_cfg(arch, pretrained)
    if not tag_info:
        tags = [tag for tag, (fits, _) in OUR_CHECKPOINTS.items() if fits == arch]
        tags += open_clip.list_pretrained_tags_by_model(arch)
        raise ModelError(
            f"model.pretrained='{pretrained}' is neither a pretrained tag of {arch} nor an existing "
            f"file. Known tags for {arch}: {', '.join(tags) or 'none'}. Pass a tag, the path of a "
            "local open_clip checkpoint (model.pretrained=/path/to/weights.bin), or "
            "model.pretrained=none for random weights.")
    cached = _cached_hub_file(tag_info["hf_hub"], cache_dir) if tag_info.get("hf_hub") else None
    if cached:
        return cached, tag_info
    if _offline():
        raise ModelError(
            f"Pretrained weights '{pretrained}' for {arch} are not in the local cache "
            f"({cache_dir or 'the Hugging Face default cache'}) and the hub cannot be reached "
            "(offline, or HF_HUB_OFFLINE is set). Download the checkpoint on a machine with "
            "internet access (open_clip.create_model('" + arch + "', pretrained='" + pretrained +
            "') fills the cache) and either copy the cache and set model.cache_dir=/path, or "
            "pass the file itself: model.pretrained=/path/to/open_clip_pytorch_model.bin.")
    from open_clip.pretrained import download_pretrained
    return download_pretrained(tag_info, cache_dir=cache_dir), tag_info


def build_clip(arch: str, pretrained: str | None = "none", cache_dir: str | None = None,
               quick_gelu: bool | None = None, device: str | torch.device = "cpu") -> PromptableCLIP:
    """Create the open_clip model, freeze it and wrap it with prompt hooks."""
    if arch not in open_clip.list_models():
        raise ModelError(
            f"Unknown model.arch '{arch}'. Any open_clip architecture works, e.g. ViT-B-16, "
            f"ViT-B-32, ViT-L-14, or ours: {', '.join(p.stem for p in _OUR_CONFIGS.glob('*.json'))}. "
            "See open_clip.list_models() for all of them.")
    checkpoint, tag_info = resolve_pretrained(arch, pretrained, cache_dir)
    if quick_gelu is None:
        quick_gelu = bool(tag_info.get("quick_gelu", False))
    preprocess = {k: tag_info[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in tag_info}
    try:
        with _info_to_log_file_only():
            model = open_clip.create_model(arch, pretrained=checkpoint, force_quick_gelu=quick_gelu,
                                           force_preprocess_cfg=preprocess or None, device=device,
                                           cache_dir=cache_dir)
    except Exception as error:  # noqa: BLE001 - classified below, re-raised untouched when not ours
        read_error = _read_error(checkpoint) if checkpoint is not None else None
        if read_error is not None:
            raise _unreadable_weights(checkpoint, pretrained, arch, read_error) from None
        if isinstance(error, RuntimeError):
            raise ModelError(f"open_clip could not build {arch} from '{checkpoint}': {_load_detail(error)}. "
                             "Check that the checkpoint matches the architecture (model.arch).") from None
        raise
    model.eval()
    model.requires_grad_(False)
    with _info_to_log_file_only():
        tokenizer = open_clip.get_tokenizer(arch)
    return PromptableCLIP(model, tokenizer, name=arch, pretrained=str(pretrained))


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:200]


def _load_detail(error: RuntimeError, shown: int = 3) -> str:
    """torch puts what does not fit (size mismatches, missing and unexpected keys) on the lines
    after a bare 'Error(s) in loading state_dict for CLIP:'; keep the first few of them."""
    lines = [line.strip() for line in str(error).strip().splitlines()]
    details = [line for line in lines[1:] if line]
    if not details:
        return _first_line(error)
    more = f" (and {len(details) - shown} more)" if len(details) > shown else ""
    return "; ".join(line[:200].rstrip(".") for line in details[:shown]) + more


def _read_error(checkpoint: str) -> Exception | None:
    """The exception reading `checkpoint` raises, or None when it reads.  Called only after a
    build failed, to tell a bad file from weights that do not fit: unpickling random or
    truncated bytes can raise nearly any type (IndexError, UnicodeDecodeError, struct.error...),
    so no list of exception types or messages can recognise it."""
    try:
        if Path(checkpoint).suffix in (".npz", ".npy"):
            import numpy
            numpy.load(checkpoint)
        else:
            open_clip.factory.load_state_dict(checkpoint, weights_only=True)
    except Exception as error:  # noqa: BLE001 - see above: any failure to read is the answer
        return error
    return None


def _unreadable_weights(checkpoint, pretrained, arch: str, error: Exception) -> ModelError:
    """One paragraph for a weights file torch cannot read.  torch's own message suggests
    `weights_only=False`, i.e. executing whatever the file contains: never pass that on."""
    detail = _first_line(error) if "weights_only" not in str(error) else type(error).__name__
    return ModelError(
        f"model.pretrained={pretrained} ({checkpoint}) is not a readable checkpoint ({type(error).__name__}"
        f"{'' if detail == type(error).__name__ else ': ' + detail}): the file is truncated, corrupt or not "
        f"a PyTorch/safetensors file of weights. Pass the open_clip weights file for {arch} (for example "
        "open_clip_pytorch_model.bin or open_clip_model.safetensors, downloaded again if in doubt), a "
        "pretrained tag such as openai, or model.pretrained=none for random weights.")


class _BelowWarningOnConsoleOnly(logging.Filter):
    """Drops INFO-and-below records of open_clip (it logs through the root logger)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.name != "root"


@contextlib.contextmanager
def _info_to_log_file_only():
    """open_clip logs ~10 INFO lines per model build through the root logger: keep them out of
    the console (stream handlers) but in Hydra's log file (file handlers)."""
    handlers = [h for h in logging.getLogger().handlers
                if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)]
    quiet = _BelowWarningOnConsoleOnly()
    for handler in handlers:
        handler.addFilter(quiet)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(quiet)
