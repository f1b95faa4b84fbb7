"""The training script: ``accelerate launch --config_file params/accelerate/<profile>.yaml
-m fairgender_utils.train --config results/train/<variant>/config.json`` (see :mod:`fairgender_utils.train.loop`)."""

from __future__ import annotations

import argparse
import json
import sys

from fairgender_utils.config import ConfigError
from fairgender_utils.paths import repo_path
from fairgender_utils.train.config import TrainConfig, TrainingError


def main(argv: list[str] | None = None) -> int:
    """Validate the resolved config once and train; a training or config error is one line, exit status 2."""
    ap = argparse.ArgumentParser(description="Fine-tune a PLM with L_b + lambda L_r under Accelerate.")
    ap.add_argument("--config", required=True, help="the resolved config JSON the notebook wrote")
    args = ap.parse_args(argv)
    from fairgender_utils.train.loop import train  # torch and accelerate load only here

    try:
        values = json.loads(repo_path(args.config).read_text())
        train(TrainConfig.from_params(values, args.config))
    except (TrainingError, ConfigError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
