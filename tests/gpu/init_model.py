"""Device check: the gemma-3-270m architecture with random weights (the real weights, 1 GB, cannot travel)."""
import json, shutil, sys, time
from pathlib import Path
import torch
from transformers import AutoConfig, AutoModelForCausalLM
src, out = Path("tests/gpu/gemma"), Path("models/base/gemma-3-270m")
out.mkdir(parents=True, exist_ok=True)
for f in src.iterdir():
    if f.suffix != ".gz":
        shutil.copy(f, out / f.name)
torch.manual_seed(0)
t0 = time.perf_counter()
model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(out))
model.save_pretrained(out)
print(f"random-init gemma-3-270m: {sum(p.numel() for p in model.parameters()):,} params, saved in {time.perf_counter()-t0:.1f}s")
