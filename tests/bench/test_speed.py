"""The benchmark command (bench/speed/): it runs end to end and writes its table."""
from __future__ import annotations


def test_speed_command_writes_a_table(tmp_path):
    """The benchmark runs end to end on a tiny model (its figures are not checked)."""
    from hydra import compose, initialize_config_dir

    from bench.app import CONFIG_DIR
    from bench.speed.benchmark import run_speed
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("speed", overrides=["model=tiny", "speed.methods=[coop:mt,vpt:mt]", "speed.tasks=2",
                                          "speed.classes=3", "speed.warmup_steps=1", "speed.steps=1",
                                          "speed.batch_size=2", "speed.eval_images=2", "runtime.device=cpu",
                                          f"speed.output={tmp_path / 'speed.md'}"])
    rows = run_speed(cfg)
    assert {(r["method"], r["variant"], r["augment"]) for r in rows} == {
        ("coop", "baseline", True), ("coop", "baseline", False), ("coop", "fast", True),
        ("coop", "fast", False), ("vpt", "baseline", True), ("vpt", "fast", True)}
    text = (tmp_path / "speed.md").read_text()
    assert "| coop | mt | off |" in text and (tmp_path / "speed.json").is_file()
    assert "Wrapper vs open_clip" in text and "| image | forward + backward |" in text and "| text | forward |" in text


def test_speed_on_real_data_goes_through_the_runs_loader_settings(tmp_path):
    """speed.data=real builds the loaders as a run does (workers, prefetch, malloc pinning)."""
    from hydra import compose, initialize_config_dir

    from bench.app import CONFIG_DIR
    from bench.speed.benchmark import run_speed
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("speed", overrides=["dataset=toy", "speed.data=real", "speed.methods=[coop:mt]",
                                          "speed.warmup_steps=1", "speed.steps=1", "speed.loader_batches=1",
                                          "runtime.device=cpu", "runtime.num_workers=1", "runtime.prefetch_factor=3",
                                          f"runtime.cache_dir={tmp_path / 'cache'}",
                                          f"speed.output={tmp_path / 'speed.md'}"])
    rows = run_speed(cfg)
    assert {(r["method"], r["variant"]) for r in rows} >= {("coop", "baseline"), ("coop", "fast")}
    text = (tmp_path / "speed.md").read_text()
    assert "data loading alone (decode + augment + collate, 1 workers" in text
