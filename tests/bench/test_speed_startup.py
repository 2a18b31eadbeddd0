"""`python -m bench.speed.startup` runs end to end at a tiny size (its figures come from the
command, never from this test): every path is timed in a fresh process with its own peak
memory, the report reads the generated records, and a command that fails is an error."""
from __future__ import annotations


import pytest

from bench.errors import ConfigError, UserError
from bench.records import load_complete_record
from bench.speed.startup import Probe, config_from, main, run, time_once


@pytest.mark.long
def test_the_benchmark_times_every_path_against_the_yardstick(tmp_path, toy_dataset):
    cfg = config_from(["rounds=1", "warmup_rounds=0", "records=8", "preset=toy_smoke", f"folder={tmp_path}",
                       f"output={tmp_path}/startup.md"])
    text = run(cfg)
    lines = (tmp_path / "startup.md").read_text().splitlines()
    assert lines[0].startswith("| path") and text.splitlines()[0] == lines[0]
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in lines[2:] if "|" in line}
    assert rows['yardstick: python -c "import torch, open_clip"'][2] == "1.00"
    for label in ("bench.run --help", "bench.run train.lr=abc (a config error)", "bench.report on 8 records",
                  "bench.sweep toy_smoke status (6 runs)"):
        median, spread, ratio, peak, goal, met = rows[label]
        assert float(median) > 0 and float(peak) > 0 and met in ("yes", "NO")
    records = sorted((tmp_path / "results" / "runs").glob("*.json"))
    assert len(records) == 8 and all(load_complete_record(r) is not None for r in records)
    assert (tmp_path / "report" / "toy.md").is_file()


def test_a_path_that_ends_otherwise_than_expected_is_an_error(tmp_path):
    seconds, peak_mib = time_once(Probe("print", ("-c", "print('hi')")), tmp_path)
    assert seconds > 0 and 1 < peak_mib < 200  # the child's own peak, not this process's
    with pytest.raises(UserError, match="ended with exit status 3, not 0:\nboom"):
        time_once(Probe("fails", ("-c", "import sys; print('boom'); sys.exit(3)")), tmp_path)


def test_bad_settings_are_a_clear_error(capsys):
    with pytest.raises(ConfigError, match="rounds=0 is not allowed"):
        config_from(["rounds=0"])
    with pytest.raises(ConfigError, match="rouns"):
        config_from(["rouns=3"])
    with pytest.raises(SystemExit) as exit_info:
        main(["records=many"])
    assert exit_info.value.code == 2 and "records" in capsys.readouterr().err
    assert main(["--help"]) == 0 and "StartupSpeedConfig" in capsys.readouterr().out
