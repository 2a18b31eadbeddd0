"""`run_speed`: the whole benchmark of one composed `configs/speed.yaml`.

Under torchrun (or a SLURM step) every rank measures its share of each step's global batch
(speed.batch_size per task, shared out as in a run: bench/distributed.py), with the step's
gradient reduction; rows give the images/s of all ranks together and the peak memory of the
fullest rank, with the world size as a column.  Rank 0 prints and writes."""
from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timezone
from pathlib import Path

import torch
from omegaconf import DictConfig

from bench import distributed
from bench.app import check, speed_config
from bench.data import MultiTaskData
from bench.datasets import build_dataset
from bench.device import resolve_device
from bench.models import build_clip
from bench.input_checks import resolve_num_workers
from bench.speed.measure import loader_throughput, measure, wrapper_vs_open_clip
from bench.speed.tables import format_number, format_split, table, wrapper_table, write_report
from bench.speed.workloads import VARIANTS, RealData, SyntheticData, method_configs, synthetic_tasks


# ---- the command ------------------------------------------------------------------------------
def run_speed(composed: DictConfig, command: str = "python -m bench.speed") -> list[dict]:
    cfg, scfg = check(composed), speed_config(composed)
    world = distributed.setup(cfg.runtime.device, cfg.runtime.collective_timeout_s)
    device = distributed.local_device(resolve_device(cfg.runtime.device))
    share = len(distributed.shard_of(range(scfg.batch_size)))  # this rank's images per task and step
    clip = build_clip(cfg.model.arch, cfg.model.pretrained, cfg.model.cache_dir, cfg.model.quick_gelu).to(device)
    train_cfg = dataclasses.replace(cfg.train, batch_size=scfg.batch_size)
    notes = []
    if scfg.data == "synthetic":
        tasks = synthetic_tasks(scfg.tasks, scfg.classes)
        data = SyntheticData(len(tasks), scfg.classes, share, scfg.warmup_steps,
                             scfg.eval_images, clip.image_size)
        what = f"synthetic, {len(tasks)} tasks x {scfg.classes} classes"
    elif scfg.data == "real":
        dataset = build_dataset(cfg.dataset)
        tasks = dataset.tasks
        loaders = MultiTaskData(dataset, clip, train_cfg, seed=cfg.seed,
                                num_workers=resolve_num_workers(cfg.runtime.num_workers),
                                pin_memory=device.type == "cuda", unreadable=cfg.dataset.unreadable,
                                prefetch_factor=cfg.runtime.prefetch_factor, cache_dir=cfg.runtime.cache_dir,
                                worker_malloc_trim_mib=cfg.runtime.worker_malloc_trim_mib)
        data = RealData(loaders)
        ips = loader_throughput(loaders, scfg.loader_batches)
        notes.append(f"data loading alone (decode + augment + collate, {loaders.loader_args['num_workers']} workers, "
                     f"persistent, pin_memory={device.type == 'cuda'}): {ips:.1f} images/s")
        what = f"{dataset.name}, {len(tasks)} tasks"
    else:
        raise ValueError(f"speed.data={scfg.data}: use synthetic or real.")
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"CPU, {torch.get_num_threads()} threads"
    setting = f"{cfg.model.arch}|{cfg.model.pretrained}|{what}|b{scfg.batch_size}|{device_name}"
    info = {"title": f"{cfg.model.arch} ({cfg.model.pretrained} weights), {what}, batch "
                     f"{scfg.batch_size} per task, {device_name}, precision {train_cfg.precision}",
            "command": f"{_launcher(world)}{command}", "when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC") +
            f", {scfg.warmup_steps} warm-up + {scfg.steps} measured steps", "notes": notes}
    if device.type == "cpu":
        notes.append("CPU: these numbers say little about GPUs (and processes of one machine share its cores "
                     "and memory bandwidth, so N processes on a CPU rarely scale)")
    rows = []
    augments = [bool(a) for a in scfg.augment]
    configs = method_configs(cfg, scfg)
    # The first configuration measured in a process runs slow (thread pools, allocator, lazy
    # initialisation): one discarded run of it first, so it does not penalise either path.
    measure(configs[0], clip, tasks, data, scfg, train_cfg, device, "baseline", augments[:1], seed=cfg.seed)
    if scfg.wrapper_rounds > 0:
        info["wrapper"] = wrapper_vs_open_clip(clip, tasks[0].classnames, scfg.batch_size,
                                               scfg.wrapper_rounds, device)
        info["wrapper_title"] = (f"Wrapper vs open_clip ({scfg.batch_size} images; {len(tasks[0].classnames)} class "
                                 f"prompts; no prompts; medians of {scfg.wrapper_rounds} interleaved rounds; "
                                 "baseline: speed-ups off, full context; fast: speed-ups on, truncated text)")
        print(info["wrapper_title"] + "\n" + wrapper_table(info["wrapper"]) + "\n", flush=True)
    for method_cfg in configs:
        for variant in VARIANTS[scfg.variant]:
            for row in measure(method_cfg, clip, tasks, data, scfg, train_cfg, device, variant, augments,
                               seed=cfg.seed):
                row.update(setting=setting, setting_info=info, world_size=world.size)
                rows.append(row)
                if not world.is_writer:
                    continue
                print(f"{row['method']:>8} {row['mode']:>7} aug={row['augment']!s:>5} {variant:>8} x{world.size}: "
                      f"train {format_number(row['train_ips'])} img/s, eval {format_number(row['eval_ips'])} img/s, "
                      f"peak {format_number(row['peak_mb'], 0)} MB, split {format_split(row['split_ms'])}", flush=True)
    if not world.is_writer:
        return rows
    output = Path(scfg.output)
    store = output.with_suffix(".json")
    old = json.loads(store.read_text()) if store.is_file() else []
    key = lambda r: (r["setting"], r["method"], r["mode"], r["augment"], r["variant"], r.get("world_size", 1))  # noqa: E731
    done = {key(r) for r in rows}
    kept = [r for r in old if key(r) not in done]
    all_rows = kept + rows
    store.parent.mkdir(parents=True, exist_ok=True)
    store.write_text(json.dumps(all_rows, indent=1))
    print("\n" + table(rows)[0])
    write_report(all_rows, output, info)
    print(f"\nwritten to {output}")
    return rows


def _launcher(world) -> str:
    return f"torchrun --nproc_per_node={world.size} -m bench.speed ... : " if world.distributed else ""
