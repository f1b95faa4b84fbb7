"""Device check: the evaluate stage's quick profile on CUDA for one model folder; prints timings."""
import json, sys, time
import torch
from fairgender_utils.config import read_params
from fairgender_utils.evaluate import run as evaluate
from fairgender_utils.evaluate.config import EvaluateConfig
variant, model = sys.argv[1], sys.argv[2]
vals = {**read_params("params/evaluate.yaml"), "variant": variant, "model": model, "device": "cuda",
        "profile": "quick", "full_profile_models": [], "out_dir": "/tmp/gpu/eval-{variant}",
        "metrics_path": "/tmp/gpu/eval-{variant}/metrics.json", "config_path": "/tmp/gpu/eval-{variant}/config.json"}
cfg = EvaluateConfig.from_params(vals, "params/evaluate.yaml")
timing = {}
with evaluate.timed(timing, "load"):
    model, tok, family, scorer = evaluate.setup(cfg)
print("dtype", next(model.parameters()).dtype, "device", next(model.parameters()).device)
with evaluate.timed(timing, "seat"):
    seat_res = evaluate.run_seat(cfg, model, tok)
with evaluate.timed(timing, "stereoset"):
    ss_res, ss_table = evaluate.run_stereoset(cfg, scorer)
with evaluate.timed(timing, "crows_pairs"):
    crows_res, crows_table = evaluate.run_crows(cfg, scorer)
with evaluate.timed(timing, "perplexity"):
    ppl_items, ppl_table = evaluate.run_perplexity(cfg, scorer)
print(json.dumps({"variant": variant, "timing_s": timing,
                  "peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20}, indent=1))
