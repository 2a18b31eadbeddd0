"""`python -m bench.speed`: the command (see bench/speed/__init__.py)."""
from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from bench.app import CONFIG_DIR, check_speed_command_line
from bench.errors import guarded


FLAGS = {"--baseline": "speed.variant=baseline", "--fast": "speed.variant=fast",
         "--compare": "speed.variant=compare"}


@hydra.main(config_path=CONFIG_DIR, config_name="speed", version_base="1.3")
def _main(cfg: DictConfig) -> None:
    from bench.speed.benchmark import run_speed  # deferred: torch and open_clip, for a measurement only

    guarded(run_speed)(cfg, command=COMMAND)


COMMAND = "python -m bench.speed " + " ".join(sys.argv[1:])

if __name__ == "__main__":
    sys.argv = [sys.argv[0]] + [FLAGS.get(a, a) for a in sys.argv[1:]]
    if not any(a.startswith("-") for a in sys.argv[1:]):  # Hydra's own flags (--help, --cfg) pass through
        guarded(check_speed_command_line)(sys.argv[1:])
    _main()
