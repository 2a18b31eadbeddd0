"""`python -m bench.prepare` on tiny archives in the official formats: the tree loads, the
counts table is right, an interrupted extraction resumes, a user's file is never overwritten."""
from __future__ import annotations

import errno
import io
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from bench import faults, prepare
from bench.app import compose_config
from bench.check import load_dataset_config
from bench.check import main as check_main
from bench.datasets import DatasetError, build_dataset
from bench.datasets.archives import DOMAINNET_DOMAINS, MINI_DOMAINS, extract
from bench.experiment import run_experiment

REPO = Path(__file__).resolve().parents[2]
OH_CLASSES = ("Alarm_Clock", "Back_Pack")
DN_CLASSES = ("aircraft_carrier", "The_Eiffel_Tower")
PER_CLASS = 3  # images per class and domain; DomainNet lists: 2 train, 1 test


def _jpeg(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (12, 9), ((seed * 37) % 256, (seed * 91) % 256, 128)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def officehome_zip(folder: Path, real_world: str = "Real World") -> Path:
    """OfficeHomeDataset_10072016.zip as published: a top folder, one folder per domain."""
    path = folder / "OfficeHomeDataset_10072016.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("OfficeHomeDataset_10072016/ImageInfo.csv", "image,author\n")
        for d, domain in enumerate(("Art", "Clipart", "Product", real_world)):
            zf.writestr(f"OfficeHomeDataset_10072016/{domain}/", "")
            for c, cls in enumerate(OH_CLASSES):
                for i in range(PER_CLASS):
                    zf.writestr(f"OfficeHomeDataset_10072016/{domain}/{cls}/{i + 1:05d}.jpg", _jpeg(d * 10 + c * 3 + i))
    return path


def domainnet_files(folder: Path, domains, lists_zip: str | None = None) -> list[Path]:
    """One <domain>.zip per domain and the official <domain>_{train,test}.txt lists
    (as plain files, or inside `lists_zip` under splits_mini/ as Dassl ships them)."""
    files, lists = [], {}
    for d, domain in enumerate(domains):
        path = folder / f"{domain}.zip"
        train, test = [], []
        with zipfile.ZipFile(path, "w") as zf:
            for label, cls in enumerate(DN_CLASSES):
                for i in range(PER_CLASS):
                    member = f"{domain}/{cls}/{domain}_{label:03d}_{i:06d}.jpg"
                    zf.writestr(member, _jpeg(d * 10 + label * 3 + i))
                    (train if i < 2 else test).append(f"{member} {label}\n")
        files.append(path)
        lists[f"{domain}_train.txt"], lists[f"{domain}_test.txt"] = "".join(train), "".join(test)
    if lists_zip:
        with zipfile.ZipFile(folder / lists_zip, "w") as zf:
            for name, text in lists.items():
                zf.writestr(f"splits_mini/{name}", text)
        return files + [folder / lists_zip]
    for name, text in lists.items():
        (folder / name).write_text(text)
        files.append(folder / name)
    return files


OH_EXPECTED = {d: {"images": len(OH_CLASSES) * PER_CLASS} for d in ("Art", "Clipart", "Product", "Real World")}
DN_EXPECTED = {d: {"train": 2 * len(DN_CLASSES), "test": len(DN_CLASSES)} for d in DOMAINNET_DOMAINS}


def _prepare(capsys, *argv, expected=None) -> tuple[int, str]:
    code = prepare.main([*map(str, argv), "--no-progress"], expected=expected)
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.mark.parametrize("real_world", ["Real World", "Real_World"])
def test_officehome_archive_to_a_tree_that_loads_with_the_counts_table(tmp_path, capsys, real_world):
    archive, root = officehome_zip(tmp_path, real_world), tmp_path / "office home"  # a space in the root too
    code, out = _prepare(capsys, "officehome", "--archive", archive, "--root", root, "--set", "num_classes=2",
                         expected=OH_EXPECTED)
    assert code == 0, out
    assert sorted(os.listdir(root)) == [".cpb-prepare", "Art", "Clipart", "ImageInfo.csv", "Product", "Real World"]
    ds = build_dataset(load_dataset_config("officehome", [f"root={root}", "num_classes=2"]))
    assert ds.task_names == ("Art", "Clipart", "Product", "Real World")
    assert ds.tasks[0].classnames == ("alarm clock", "back pack")
    assert "hemanthdv.org" in out and "Ready: python -m bench.run dataset=officehome" in out
    rows = [line.split() for line in out.splitlines() if line.startswith(("Art ", "Real World ")) and " images " in line]
    assert rows == [["Art", "images", "6", "6", "ok"], ["Real", "World", "images", "6", "6", "ok"]]


def test_a_short_copy_is_a_warning_naming_domains_and_counts_and_exit_1(tmp_path, capsys):
    root = tmp_path / "oh"
    expected = {**OH_EXPECTED, "Art": {"images": 7}, "Product": {"images": 9}}
    code, out = _prepare(capsys, "officehome", "--archive", officehome_zip(tmp_path), "--root", root,
                         "--set", "num_classes=2", expected=expected)
    assert code == 1
    assert "WARNING: incomplete copy: fewer images than published for Art images 6 of 7; Product images 6 of 9" in out
    assert check_main(["dataset=officehome", f"dataset.root={root}", "dataset.num_classes=2"], expected=expected) == 1
    assert check_main(["dataset=officehome", f"dataset.root={root}", "dataset.num_classes=2"],
                      expected=OH_EXPECTED) == 0


def test_the_published_table_is_the_default_and_a_tiny_copy_is_short_of_it(tmp_path, capsys):
    root = tmp_path / "oh"
    code, out = _prepare(capsys, "officehome", "--archive", officehome_zip(tmp_path), "--root", root,
                         "--set", "num_classes=null")
    assert code == 1 and "Art images 6 of 2,427" in out and "Real World images 6 of 4,357" in out
    # a deliberate subset (another class count, or few-shot) is shown but not compared
    code = check_main(["dataset=officehome", f"dataset.root={root}", "dataset.num_classes=2"])
    assert code == 0 and "not compared: dataset.num_classes=2 (published: 65)" in capsys.readouterr().out
    assert check_main(["dataset=officehome", f"dataset.root={root}", "dataset.num_classes=null",
                       "dataset.few_shot=1"]) == 0


def test_domainnet_zips_and_official_lists(tmp_path, capsys):
    root = tmp_path / "domainnet"
    code, out = _prepare(capsys, "domainnet", "--archive", *domainnet_files(tmp_path, DOMAINNET_DOMAINS),
                         "--root", root, "--set", "num_classes=2", "--set", "val_fraction=0.5", expected=DN_EXPECTED)
    assert code == 0, out
    assert "groundtruth/clipart.zip" in out and "groundtruth/painting.zip" in out
    ds = build_dataset(load_dataset_config("domainnet", [f"root={root}", "num_classes=2"]))
    assert ds.task_names == DOMAINNET_DOMAINS
    assert ds.tasks[0].classnames == ("aircraft carrier", "the eiffel tower")
    assert all(len(t.train) + len(t.val) == 4 and len(t.test) == 2 for t in ds.tasks)
    table = [line.split() for line in out.splitlines() if line.startswith("quickdraw ") and ("train" in line or "test" in line)]
    assert table == [["quickdraw", "train", "4", "4", "ok"], ["quickdraw", "test", "2", "2", "ok"]]


def test_minidomainnet_with_splits_mini_zip_counts_every_listed_line(tmp_path, capsys):
    root = tmp_path / "dn"
    files = domainnet_files(tmp_path, MINI_DOMAINS, lists_zip="splits_mini.zip")
    code, out = _prepare(capsys, "minidomainnet", "--archive", *files, "--root", root, "--set", "num_classes=2",
                         "--set", "val_fraction=0.5")
    assert code == 0, out
    assert sorted(os.listdir(root / "splits_mini"))[:2] == ["clipart_test.txt", "clipart_train.txt"]
    assert len(build_dataset(load_dataset_config("minidomainnet", [f"root={root}", "num_classes=2"])).tasks) == 4
    # a listed image gone: the check names the domain and the counts (and the missing file)
    os.remove(root / "sketch" / "aircraft_carrier" / "sketch_000_000002.jpg")
    assert check_main(["dataset=minidomainnet", f"dataset.root={root}", "dataset.num_classes=2",
                       "dataset.val_fraction=0.5"]) == 1
    out = capsys.readouterr().out
    assert "sketch test 1 of 2" in out and "1 missing file(s)" in out


def test_an_interrupted_extraction_resumes_without_redoing_files(tmp_path, capsys, monkeypatch):
    archive, root = officehome_zip(tmp_path), tmp_path / "oh"
    monkeypatch.setenv("CPB_FAULT", "raise_at_extract:5")
    faults.reset()
    with pytest.raises(RuntimeError, match="raise_at_extract:5"):
        extract("officehome", [str(archive)], str(root), progress=False, log=lambda line: None)
    monkeypatch.delenv("CPB_FAULT")
    result = extract("officehome", [str(archive)], str(root), progress=False, log=lambda line: None)
    assert (result.written, result.skipped) == (25 - 5, 5)  # 24 images + ImageInfo.csv
    again = extract("officehome", [str(archive)], str(root), progress=False, log=lambda line: None)
    assert (again.written, again.skipped) == (0, 25) and "already extracted" in again.lines[0]


def test_a_killed_extraction_resumes_from_the_command_line(tmp_path):
    archive, root = officehome_zip(tmp_path), tmp_path / "oh"
    command = [sys.executable, "-m", "bench.prepare", "officehome", "--archive", str(archive), "--root", str(root),
               "--set", "num_classes=null"]
    env = {**os.environ, "CPB_FAULT": "kill_at_extract:3"}
    killed = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9
    # a half-written file of the killed run, under its temporary name, is not taken for an image
    (root / "Art" / "Alarm_Clock" / ".00003.jpg.cpb-part").write_bytes(b"half")
    env.pop("CPB_FAULT")
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr  # complete tree, but short of the published counts
    assert "22 files written, 3 already there" in done.stdout and "Art images 6 of 2,427" in done.stdout
    assert not list(root.rglob("*.cpb-part"))


def test_a_users_different_file_is_never_overwritten_and_same_content_is_skipped(tmp_path, capsys):
    archive, root = officehome_zip(tmp_path), tmp_path / "oh"
    mine = root / "Art" / "Alarm_Clock" / "00001.jpg"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"my own file")
    with zipfile.ZipFile(archive) as zf:
        same = zf.read("OfficeHomeDataset_10072016/Clipart/Back_Pack/00002.jpg")
    (root / "Clipart" / "Back_Pack").mkdir(parents=True)
    (root / "Clipart" / "Back_Pack" / "00002.jpg").write_bytes(same)
    code, out = _prepare(capsys, "officehome", "--archive", archive, "--root", root, "--set", "num_classes=2")
    assert code == 2 and "1 file(s) under" in out and str(mine) in out and "never overwrites" in out
    assert mine.read_bytes() == b"my own file"
    assert "23 files written, 1 already there, 1 different files left alone" in out


@pytest.mark.parametrize("case, message", [
    ("missing", "archive(s) not found"), ("not a zip", "neither a zip archive nor a split list"),
    ("damaged", "damaged"), ("unknown", "invalid choice")])
def test_bad_archives_are_one_clear_error(tmp_path, capsys, case, message):
    archive = tmp_path / "OfficeHomeDataset_10072016.zip"
    if case == "not a zip":
        archive.write_text("<html>Google Drive: quota exceeded</html>")
    elif case == "damaged":
        officehome_zip(tmp_path)
        data = bytearray(archive.read_bytes())
        offset = data.index(b"OfficeHomeDataset_10072016/Art/Alarm_Clock/00001.jpg") + 60
        data[offset:offset + 40] = bytes(40)  # corrupt one member's bytes: its CRC no longer matches
        archive.write_bytes(bytes(data))
    name = "pacs" if case == "unknown" else "officehome"
    if case == "unknown":
        with pytest.raises(SystemExit) as exit_info:
            prepare.main([name, "--archive", str(archive), "--root", str(tmp_path / "r")])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
        return
    code, out = _prepare(capsys, name, "--archive", archive, "--root", tmp_path / "r")
    assert code == 2 and message in out and "Traceback" not in out


def test_a_run_on_a_short_copy_records_its_counts_and_warns(tmp_path, caplog):
    root = tmp_path / "oh"
    extract("officehome", [str(officehome_zip(tmp_path))], str(root), progress=False, log=lambda line: None)
    overrides = ["dataset=officehome", f"dataset.root={root}", "dataset.num_classes=null", "model=tiny",
                 "model.pretrained=none", "method=zeroshot", "train.epochs=0", "runtime.progress=false",
                 "runtime.num_workers=0", f"runtime.results_dir={tmp_path}/results",
                 f"runtime.checkpoint_dir={tmp_path}/checkpoints", f"runtime.cache_dir={tmp_path}/cache"]
    record = run_experiment(compose_config(overrides))
    assert {"domain": "Art", "split": "images", "seen": 6, "expected": 2427} in record.dataset_counts
    assert len(record.dataset_counts) == 4
    assert "fewer images than published for Art images 6 of 2,427" in caplog.text


def test_a_full_disk_is_a_clear_error_and_the_files_so_far_are_kept(tmp_path, monkeypatch):
    archive, root = officehome_zip(tmp_path), tmp_path / "oh"
    real_copy, calls = shutil.copyfileobj, []

    def copy_until_full(src, dst, length=0):
        calls.append(1)
        if len(calls) == 4:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_copy(src, dst, length)

    monkeypatch.setattr(shutil, "copyfileobj", copy_until_full)
    with pytest.raises(DatasetError, match="No space left on device.*3 files were written before it"):
        extract("officehome", [str(archive)], str(root), progress=False, log=lambda line: None)
    assert not list(root.rglob("*.cpb-part"))
    monkeypatch.setattr(shutil, "copyfileobj", real_copy)
    result = extract("officehome", [str(archive)], str(root), progress=False, log=lambda line: None)
    assert (result.written, result.skipped) == (22, 3)


def test_urls_are_printed_without_extracting_and_progress_shows_on_request(tmp_path, capsys):
    assert prepare.main(["domainnet", "--urls"]) == 0
    out = capsys.readouterr().out
    assert "nothing is downloaded here" in out and f"{DOMAINNET_DOMAINS[-1]}.zip: http://" in out
    assert "/domainnet/txt/clipart_train.txt" in out
    extract("officehome", [str(officehome_zip(tmp_path))], str(tmp_path / "oh"), progress=True, log=lambda line: None)
    assert "OfficeHomeDataset_10072016.zip: " in capsys.readouterr().err  # tqdm's bar, on stderr


def test_out_of_space_on_the_completion_marker_is_exit_2_and_leaves_no_marker(tmp_path, capsys, monkeypatch):
    """The marker says "this archive is done": written atomically, a full disk leaves none to be
    believed, and the rerun finishes (the files already there are not redone)."""
    from bench import faults
    archive, root = officehome_zip(tmp_path), tmp_path / "oh"
    faults.reset()
    monkeypatch.setenv("CPB_FAULT", "enospc_at_write:1")  # the process's first atomic write: the marker
    code, out = _prepare(capsys, "officehome", "--archive", archive, "--root", root)
    assert code == 2 and "Writing under" in out and "No space left on" in out and "Traceback" not in out
    assert not [p for p in root.rglob("*") if "marker" in p.name or p.suffix == ".json"]
    monkeypatch.delenv("CPB_FAULT")
    faults.reset()
    code, out = _prepare(capsys, "officehome", "--archive", archive, "--root", root, "--set", "num_classes=null")
    assert code == 1 and "0 files written, 25 already there" in out  # complete; short of the published counts


def test_a_root_that_cannot_be_written_is_exit_2_before_extracting(tmp_path, capsys):
    archive, blocker = officehome_zip(tmp_path), tmp_path / "a-file"
    blocker.write_text("not a folder")  # as a read-only folder would, even for root
    code, out = _prepare(capsys, "officehome", "--archive", archive, "--root", blocker / "oh")
    assert code == 2 and f"--root={blocker / 'oh'} is not writable" in out and "Traceback" not in out


def test_the_wrong_archive_is_named_by_its_layout_before_anything_is_written(tmp_path, capsys):
    office = officehome_zip(tmp_path)
    (clipart,) = [f for f in domainnet_files(tmp_path, ["clipart"]) if f.suffix == ".zip"]
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("readme.txt", "no images here")
    for name, archive, message in (
            ("domainnet", office, "is Office-Home's archive (OfficeHomeDataset_10072016/<domain>/...), not an "
                                  "archive of domainnet; nothing was extracted."),
            ("officehome", clipart, "is a DomainNet archive (<domain>/<class>/... or split lists), not an archive "
                                    "of officehome; nothing was extracted."),
            ("officehome", empty, "is no dataset's layout (1 members, 0 images")):
        root = tmp_path / f"root-{name}-{archive.stem}"
        code, out = _prepare(capsys, name, "--archive", archive, "--root", root)
        assert code == 2 and message in out, out
        assert not root.exists() or not [p for p in root.rglob("*") if p.is_file()]
    code, out = _prepare(capsys, "domainnet", "--archive", office, "--root", tmp_path / "r")
    assert "Prepare it with: python -m bench.prepare officehome" in out


def test_a_cut_download_is_named_incomplete_with_how_to_resume(tmp_path, capsys):
    archive = officehome_zip(tmp_path)
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])  # the zip's directory is at the end
    code, out = _prepare(capsys, "officehome", "--archive", archive, "--root", tmp_path / "r")
    assert code == 2 and "starts as a zip archive but its end (the zip's directory) is missing: the download is " \
                         "incomplete" in out and "wget -c" in out
