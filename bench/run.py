"""`python -m bench.run [overrides]`: train and evaluate one method on one dataset.

A single run's command line is composed and checked before Hydra sets up its job (a bad
value is one paragraph and exit 2); then Hydra runs `bench.experiment.run_experiment`, the
function every launcher ends in.
"""
from __future__ import annotations

import signal
import sys

import hydra
from omegaconf import DictConfig

from bench.app import CONFIG_DIR, check_command_line
from bench.errors import guarded, raise_on_signal
from bench.help import help_text


@hydra.main(config_path=CONFIG_DIR, config_name="config", version_base="1.3")
def hydra_main(cfg: DictConfig) -> None:
    from bench.experiment import run_experiment  # deferred: torch and open_clip, for a run only (not --help, --cfg)
    guarded(run_experiment)(cfg)


def main() -> None:
    signal.signal(signal.SIGTERM, raise_on_signal)  # `kill`: the same one-line stop as Ctrl-C
    arguments = sys.argv[1:]
    if "--help" in arguments or "-h" in arguments:  # generated from the schema (bench/help.py)
        print(guarded(help_text)([a for a in arguments if a not in ("--help", "-h")]))
        return
    if not any(a.startswith("-") for a in arguments):  # a single run (not -m, --cfg, --help)
        guarded(check_command_line)(arguments)
    hydra_main()


if __name__ == "__main__":
    main()
