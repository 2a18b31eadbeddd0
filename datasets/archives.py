"""From the official archives a user has downloaded to the folder layout our builders read.

``extract(name, archives, root)`` unpacks each archive of dataset ``name`` (officehome,
minidomainnet, domainnet) into ``root``, with the folder names normalised to those the
builders accept:

* Office-Home: ``OfficeHomeDataset_10072016.zip`` holds ``OfficeHomeDataset_10072016/<Domain>/
  <Class>/*.jpg``; the top folder is dropped and ``Real_World`` / ``RealWorld`` become
  ``Real World``, so ``root`` holds ``Art``, ``Clipart``, ``Product``, ``Real World``.
* DomainNet and mini-DomainNet: one zip per domain (``clipart.zip`` holds ``clipart/<class>/
  *.jpg``; a domain folder's case is lowered), the official lists ``<domain>_{train,test}.txt``
  (given as files or in a zip) go to ``root`` for domainnet and to ``root/splits_mini/`` for
  minidomainnet (Dassl's ``splits_mini``).

Safety and resume: every file is written to a temporary name and renamed, so a killed
extraction never leaves half a file under its real name; a file already there with the same
content (size and the zip's CRC-32) is skipped, so running the command again resumes; a file
there with *different* content is never overwritten (the user's): it is listed in the error
raised at the end.  ``root/.cpb-prepare/<archive>.json`` records an archive fully extracted
(its size and mtime), so a later run only checks that its files still exist.  Progress is a
tqdm bar on a terminal.  Nothing is downloaded: ``URLS`` are printed for the user.
"""
from __future__ import annotations

import json
import os
import posixpath
import shutil
import sys
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

from tqdm import tqdm

from bench import faults
from bench.atomic_io import atomic_write
from bench.errors import StorageError

from .base import DatasetError

MARKERS = ".cpb-prepare"
PART = ".cpb-part"
OFFICEHOME_TOP = "OfficeHomeDataset_10072016"
OFFICEHOME_DOMAINS = {"art": "Art", "clipart": "Clipart", "product": "Product", "real world": "Real World",
                      "real_world": "Real World", "realworld": "Real World"}
DOMAINNET_DOMAINS = ("clipart", "infograph", "painting", "quickdraw", "real", "sketch")
MINI_DOMAINS = ("clipart", "painting", "real", "sketch")
_DN = "http://csr.bu.edu/ftp/visda/2019/multi-source"
_DN_ZIPS = {"clipart": f"{_DN}/groundtruth/clipart.zip", "infograph": f"{_DN}/infograph.zip",
            "painting": f"{_DN}/groundtruth/painting.zip", "quickdraw": f"{_DN}/quickdraw.zip",
            "real": f"{_DN}/real.zip", "sketch": f"{_DN}/sketch.zip"}
#: What to download, printed by `bench.prepare` (public pages; Google Drive links are not stable).
URLS = {
    "officehome": ["OfficeHomeDataset_10072016.zip: https://www.hemanthdv.org/officeHomeDataset.html "
                   "(the page links the current copy)"],
    "domainnet": [f"{d}.zip: {u}" for d, u in _DN_ZIPS.items()]
                 + [f"{d}_train.txt, {d}_test.txt: {_DN}/domainnet/txt/{d}_train.txt (and _test.txt)"
                    for d in DOMAINNET_DOMAINS]
                 + ["all of them: http://ai.bu.edu/M3SDA/ ('cleaned' version)"],
    "minidomainnet": [f"{d}.zip: {_DN_ZIPS[d]}" for d in MINI_DOMAINS]
                     + ["splits_mini (the <domain>_{train,test}.txt lists): Dassl.pytorch's DATASETS.md, "
                        "section miniDomainNet, https://github.com/KaiyangZhou/Dassl.pytorch/blob/master/DATASETS.md"],
}
DATASETS = tuple(URLS)


def _is_list_file(name: str) -> bool:
    return name.endswith(("_train.txt", "_test.txt"))


def _officehome_target(member: str) -> Optional[str]:
    parts = member.split("/")
    if parts[0] == OFFICEHOME_TOP:
        parts = parts[1:]
    if not parts or not parts[0]:
        return None
    domain = OFFICEHOME_DOMAINS.get(parts[0].lower())
    if domain is not None:
        parts[0] = domain
    return "/".join(parts)


def _domainnet_target(member: str, lists_dir: str) -> Optional[str]:
    parts = member.split("/")
    if _is_list_file(parts[-1]):  # a list, at any depth of its zip (splits_mini/clipart_train.txt)
        return posixpath.join(lists_dir, parts[-1]) if lists_dir else parts[-1]
    if parts[0].lower() in DOMAINNET_DOMAINS:
        parts[0] = parts[0].lower()
    return "/".join(parts)


TARGETS: dict[str, Callable[[str], Optional[str]]] = {
    "officehome": _officehome_target,
    "domainnet": lambda m: _domainnet_target(m, ""),
    "minidomainnet": lambda m: _domainnet_target(m, "splits_mini"),
}


@dataclass
class Extracted:
    """What one `extract` call did, per archive and in all."""

    written: int = 0
    skipped: int = 0                                      # already there with the same content
    conflicts: list[str] = field(default_factory=list)   # there with different content: left alone
    lines: list[str] = field(default_factory=list)       # one summary line per archive


def _crc_of_file(path: str) -> int:
    crc = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            crc = zlib.crc32(chunk, crc)
    return crc


def _same_content(path: str, size: int, crc: int) -> bool:
    return os.path.getsize(path) == size and _crc_of_file(path) == crc


def _safe_join(root: str, relative: str, archive: str) -> str:
    target = os.path.normpath(os.path.join(root, relative))
    if os.path.isabs(relative) or not target.startswith(os.path.normpath(root) + os.sep):
        raise DatasetError(f"{archive} holds a member '{relative}' that would land outside {root}; "
                           "the archive is not an official one. Download it again.")
    return target


class _Writer:
    """Writes files under `root` through a temporary name, skipping same content, keeping conflicts."""

    def __init__(self, root: str, result: Extracted):
        self.root, self.result, self.count = root, result, 0

    def put(self, relative: str, size: int, crc: int, source: Callable[[], "object"], archive: str) -> None:
        target = _safe_join(self.root, relative, archive)
        if os.path.lexists(target):
            if os.path.isfile(target) and _same_content(target, size, crc):
                self.result.skipped += 1
            else:
                self.result.conflicts.append(target)
            return
        part = os.path.join(os.path.dirname(target), f".{os.path.basename(target)}{PART}")
        try:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with source() as src, open(part, "wb") as dst:  # a stale part of a killed run is ours: overwritten
                shutil.copyfileobj(src, dst, 1 << 20)
            os.replace(part, target)
        except OSError as error:  # a full disk, a read-only folder: the files so far are kept
            if os.path.exists(part):
                os.remove(part)
            raise DatasetError(
                f"Could not write {target} ({error.strerror or error}); {self.result.written:,} files were "
                f"written before it and are kept. Free space (or make {self.root} writable) and rerun the "
                "same command: it resumes where it stopped.") from None
        self.result.written += 1
        self.count += 1
        faults.at_extract(self.count)


def _marker(root: str, archive: str) -> str:
    return os.path.join(root, MARKERS, os.path.basename(archive) + ".json")


def _stamp(archive: str) -> dict:
    st = os.stat(archive)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _members(name: str, archive: str) -> list[tuple[zipfile.ZipInfo, str]]:
    """(member, target path relative to root) for the files of a zip worth extracting."""
    target_of = TARGETS[name]
    chosen = []
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError) as error:
        raise DatasetError(f"{archive} is not a readable zip archive ({error}); the download is "
                           "probably incomplete. Download it again.") from None
    for info in infos:
        parts = info.filename.split("/")
        if info.is_dir() or parts[0] == "__MACOSX" or any(p.startswith(".") for p in parts if p):
            continue
        relative = target_of(info.filename)
        if relative:
            chosen.append((info, relative))
    return chosen


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def archive_layout(names: Sequence[str]) -> Optional[str]:
    """The dataset a zip's member names are laid out as: officehome (OfficeHomeDataset_10072016/
    or Office-Home's domain folders), domainnet (DomainNet's domain folders or split lists), or
    None (neither)."""
    tops = {n.split("/")[1] if n.startswith(OFFICEHOME_TOP + "/") and n.count("/") > 1 else n.split("/")[0]
            for n in names if n.split("/")[0]}
    # "clipart" is a domain of both: DomainNet's folders are lower-case, Office-Home's capitalised
    office = {t for t in tops if t.lower() in OFFICEHOME_DOMAINS and (t.lower() not in DOMAINNET_DOMAINS or t[0].isupper())}
    if office or OFFICEHOME_TOP in {n.split("/")[0] for n in names}:
        return "officehome"
    if any(t in DOMAINNET_DOMAINS for t in tops) or any(_is_list_file(n.split("/")[-1]) for n in names):
        return "domainnet"
    return None


def check_layout(name: str, archive: str) -> None:
    """Refuse a zip that is not one of `name`'s, by its layout, naming what it is."""
    with zipfile.ZipFile(archive) as zf:
        names = zf.namelist()
    layout = archive_layout(names)
    images = sum(n.lower().endswith(IMAGE_SUFFIXES) for n in names)
    lists = any(_is_list_file(n.split("/")[-1]) for n in names)
    wanted = "officehome" if name == "officehome" else "domainnet"
    if layout == wanted and (images or lists):
        return
    what = ({"officehome": "Office-Home's archive (OfficeHomeDataset_10072016/<domain>/...)",
             "domainnet": "a DomainNet archive (<domain>/<class>/... or split lists)"}[layout] if layout
            else f"no dataset's layout ({len(names):,} members, {images:,} images; first: {names[:2]})")
    if layout == wanted:
        what = f"{what}, but it holds no image"
    raise DatasetError(f"{archive} is {what}, not an archive of {name}; nothing was extracted. {name} comes as: "
                       f"{'; '.join(URLS[name])}." + (f" Prepare it with: python -m bench.prepare {layout} "
                                                    f"--archive {archive} --root <its own folder>."
                                                    if layout and layout != wanted else ""))


def _extract_zip(name: str, archive: str, writer: _Writer, progress: bool) -> str:
    members = _members(name, archive)
    marker = _marker(writer.root, archive)
    try:
        with open(marker) as handle:
            done = json.load(handle) == {**_stamp(archive), "files": len(members)}
    except (OSError, ValueError):
        done = False
    if done and all(os.path.isfile(os.path.join(writer.root, rel)) for _, rel in members):
        writer.result.skipped += len(members)
        return f"{os.path.basename(archive)}: already extracted ({len(members):,} files)"
    before = (writer.result.written, writer.result.skipped, len(writer.result.conflicts))
    try:
        with zipfile.ZipFile(archive) as zf:
            bar = tqdm(members, desc=os.path.basename(archive), unit="file", disable=not progress, leave=False)
            for info, relative in bar:
                writer.put(relative, info.file_size, info.CRC, lambda i=info: zf.open(i), archive)
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        raise DatasetError(f"{archive} is damaged ({error}); the files extracted so far are kept. "
                           "Download it again and rerun the command: it resumes.") from None
    written, skipped, conflicts = (now - was for now, was in zip(
        (writer.result.written, writer.result.skipped, len(writer.result.conflicts)), before))
    if not conflicts:  # atomically: a full disk leaves no empty marker to be read as "done"
        os.makedirs(os.path.dirname(marker), exist_ok=True)
        stamp = json.dumps({**_stamp(archive), "files": len(members)})
        atomic_write(Path(marker), lambda tmp: tmp.write_text(stamp))
    return (f"{os.path.basename(archive)}: {written:,} files written, {skipped:,} already there"
            + (f", {conflicts:,} different files left alone" if conflicts else ""))


def _copy_list(name: str, path: str, writer: _Writer) -> str:
    relative = TARGETS[name](os.path.basename(path))
    size, crc = os.path.getsize(path), _crc_of_file(path)
    before = writer.result.written
    writer.put(relative, size, crc, lambda: open(path, "rb"), path)
    return f"{os.path.basename(path)}: {'copied' if writer.result.written > before else 'already there'}"


def extract(name: str, archives: Sequence[str], root: str, progress: Optional[bool] = None,
            log: Callable[[str], None] = print) -> Extracted:
    """Unpack `archives` of dataset `name` into `root` (see the module docstring).

    Raises DatasetError for an unknown dataset, a missing, non-zip or damaged archive, and at
    the end, after every other file is in place, for files of the user's that differ."""
    if name not in TARGETS:
        raise DatasetError(f"bench.prepare knows no dataset '{name}'; it prepares {', '.join(DATASETS)}.")
    progress = sys.stderr.isatty() if progress is None else progress
    missing = [a for a in archives if not os.path.isfile(a)]
    if missing or not archives:
        raise DatasetError(
            f"{'archive(s) not found: ' + ', '.join(missing) if missing else 'no --archive given'}. "
            f"{name} is prepared from these downloads (this command works offline, from files you "
            f"have): {'; '.join(URLS[name])}.")
    for archive in archives:
        if not (zipfile.is_zipfile(archive) or _is_list_file(os.path.basename(archive))):
            with open(archive, "rb") as handle:
                starts_as_zip = handle.read(4) == b"PK\x03\x04"
            if starts_as_zip:  # a zip's directory is at its end: a cut download has none
                raise DatasetError(
                    f"{archive} starts as a zip archive but its end (the zip's directory) is missing: the "
                    f"download is incomplete ({os.path.getsize(archive):,} bytes). Resume it (wget -c URL, or "
                    f"curl -C - -O URL) or download it again, then rerun; {name} comes as: {'; '.join(URLS[name])}.")
            raise DatasetError(
                f"{archive} is neither a zip archive nor a split list (<domain>_train.txt or "
                f"<domain>_test.txt); {name} comes as: {'; '.join(URLS[name])}.")
        if zipfile.is_zipfile(archive):
            check_layout(name, archive)  # every archive before a file is written
    root = os.path.abspath(os.path.expanduser(root))
    os.makedirs(root, exist_ok=True)
    result = Extracted()
    writer = _Writer(root, result)
    for archive in archives:
        try:
            line = (_extract_zip(name, archive, writer, progress) if zipfile.is_zipfile(archive)
                    else _copy_list(name, archive, writer))
        except (OSError, StorageError) as error:  # a full disk, a read-only folder, an I/O error
            reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error).split(";")[0]
            raise DatasetError(f"Writing under {root} failed while extracting {os.path.basename(archive)} "
                               f"({reason}); the files extracted so far are kept and no partial marker is left. "
                               "Free space on that disk (or make the folder writable, or choose another --root) and "
                               "rerun the same command: it goes on where it stopped.") from None
        result.lines.append(line)
        log(line)
    if result.conflicts:
        shown = ", ".join(result.conflicts[:5]) + (f" ... and {len(result.conflicts) - 5} more"
                                                   if len(result.conflicts) > 5 else "")
        raise DatasetError(
            f"{len(result.conflicts)} file(s) under {root} differ from the archives' and were left "
            f"untouched (bench.prepare never overwrites a file): {shown}. Move them away (or choose "
            f"another --root) and rerun: the rest is extracted and is not redone.")
    return result


def list_urls(name: str) -> Iterable[str]:
    """The downloads a dataset is prepared from (nothing is downloaded here)."""
    return URLS[name]
