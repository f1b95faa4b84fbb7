"""Device check: resolved training config for the single-gpu profile (bf16)."""
import sys
from fairgender_utils.config import read_params
from fairgender_utils.train.config import TrainConfig, launch_command
variant, steps = sys.argv[1], int(sys.argv[2])
vals = {**read_params("params/train.yaml"), "variant": variant, "model_path": "models/base/gemma-3-270m",
        "accelerate_profile": "single-gpu", "max_steps": steps, "checkpoint_every": steps,
        "freeze_embeddings": False, "dev_every": 0, "lm_loss": "own",  # the GPU machine has no data/raw
        "data_dir": "tests/gpu", "pairs_path": "tests/gpu", "ppl_dev_share": 0.5, "ppl_split_seed": 0, "epochs": 100, "batch_size": 16, "micro_batch_size": 16,
        "output_dir": "models/trained/gpu-{variant}", "checkpoint_dir": "models/checkpoints/gpu-{variant}",
        "figures_dir": "/tmp/gpu/{variant}/figures", "plots_dir": "/tmp/gpu/{variant}/plots",
        "metrics_path": "/tmp/gpu/{variant}/metrics.json", "config_path": "/tmp/gpu/{variant}/config.json"}
cfg = TrainConfig.from_params(vals, "params/train.yaml")
cfg.write(cfg.config_path)
print(" ".join(launch_command(cfg, "python3")))
