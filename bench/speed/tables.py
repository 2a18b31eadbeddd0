"""The benchmark's tables: Markdown rows of measurements and their ratios."""
from __future__ import annotations

from pathlib import Path


from bench.speed.workloads import PARTS


def wrapper_table(rows: list[dict]) -> str:
    lines = ["| tower | pass | open_clip s | wrapper, baseline s | open_clip / wrapper | wrapper, fast s "
             "| open_clip / wrapper |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['tower']} | {r['pass']} | {r['open_clip']:.3f} | {r['baseline']:.3f} "
                     f"| {r['open_clip'] / r['baseline']:.2f}x | {r['fast']:.3f} | {r['open_clip'] / r['fast']:.2f}x |")
    return "\n".join(lines)


# ---- the table --------------------------------------------------------------------------------
def format_number(value, digits=2):
    return "–" if value is None else f"{value:.{digits}f}"


def _ratio(fast, base, invert=False):
    if fast is None or base is None or not fast or not base:
        return "–"
    return f"{(base / fast) if invert else (fast / base):.1f}x"


def format_split(split):
    if not split:
        return "–"
    return "/".join(f"{split[p] / 1000:.2f}" for p in (*PARTS, "other"))


def table(rows: list[dict]) -> str:
    """Markdown table: one line per (setting, method, mode, augmentation, processes), fast vs
    baseline; `procs` is the world size (images/s of all ranks, peak MB of the fullest) and
    `scaling` the fast train images/s over procs x those of one process (1.0x: linear)."""
    by_key: dict[tuple, dict] = {}
    for row in rows:
        key = (row["setting"], row["method"], row["mode"], row["augment"], row.get("world_size", 1))
        by_key.setdefault(key, {})[row["variant"]] = row
    head = ("| method | mode | augment | procs | scaling | train img/s fast | baseline | speed-up | eval img/s fast "
            "| baseline "
            "| speed-up | peak MB fast | baseline | lower by | split s/step fast (text/image/bwd/data/other) "
            "| split baseline |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    settings = []
    for (setting, method, mode, augment, world), variants in by_key.items():
        if setting not in settings:
            settings.append(setting)
        fast, base = variants.get("fast", {}), variants.get("baseline", {})
        aug = {None: "–", True: "on", False: "off"}[augment]
        alone = by_key.get((setting, method, mode, augment, 1), {}).get("fast", {}).get("train_ips")
        scaling = _ratio(fast.get("train_ips"), alone * world if alone else None) if world > 1 else "–"
        lines.append(
            f"| {method} | {mode} | {aug} | {world} | {scaling} | {format_number(fast.get('train_ips'))} | {format_number(base.get('train_ips'))} "
            f"| {_ratio(fast.get('train_ips'), base.get('train_ips'))} | {format_number(fast.get('eval_ips'))} "
            f"| {format_number(base.get('eval_ips'))} | {_ratio(fast.get('eval_ips'), base.get('eval_ips'))} "
            f"| {format_number(fast.get('peak_mb'), 0)} | {format_number(base.get('peak_mb'), 0)} "
            f"| {_ratio(fast.get('peak_mb'), base.get('peak_mb'), invert=True)} "
            f"| {format_split(fast.get('split_ms'))} | {format_split(base.get('split_ms'))} |")
    return "\n".join(lines), settings


def write_report(all_rows: list[dict], path: Path, extras: dict) -> str:
    text_parts = ["# Speed: optimised vs baseline path (`python -m bench.speed`)\n",
                  "Images/s after warm-up; evaluation repeated as every epoch repeats it (the first, "
                  "warm-up evaluation fills the caches and is not counted). Peak MB: growth over the "
                  "measured training steps (CUDA max allocated, or CPU resident high-water mark reset "
                  "per phase). Split: seconds per training step in the text tower, image tower, "
                  "backward, data loading, and the rest. Baseline = every speed-up of "
                  "bench/speedups.py off.\n"]
    settings = {}
    for row in all_rows:
        settings.setdefault(row["setting"], row["setting_info"])
    for setting, info in settings.items():
        rows = [r for r in all_rows if r["setting"] == setting]
        body, _ = table(rows)
        text_parts.append(f"## {info['title']}\n\n`{info['command']}` ({info['when']})\n\n{body}\n")
        if info.get("wrapper"):
            text_parts.append(f"{info['wrapper_title']}\n\n{wrapper_table(info['wrapper'])}\n")
        for line in info.get("notes", []):
            text_parts.append(f"- {line}")
        text_parts.append("")
    text = "\n".join(text_parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return text
