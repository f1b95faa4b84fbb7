# Device check of the single-gpu profile: train (bf16, accelerate) and evaluate gemma-3-270m's architecture.
# Ran at commit 737db1e (2026-11-30) with params/train.yaml of that commit; needs the gemma config and
# tokenizer in tests/gpu/gemma/ (tokenizer.json gzipped) and the pydantic + transformers 5.24 wheels in
# tests/gpu/whl/ (the GPU machine has neither), both carried, not committed.
set -e
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site tests/gpu/whl/*.whl
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch, transformers, accelerate; print('torch', torch.__version__, 'transformers', transformers.__version__, 'accelerate', accelerate.__version__)"
mkdir -p models/base/gemma-3-270m && gunzip -c tests/gpu/gemma/tokenizer.json.gz > models/base/gemma-3-270m/tokenizer.json
python3 tests/gpu/init_model.py
for v in fairgender cda; do
  cmd=$(python3 tests/gpu/train_cfg.py $v ${STEPS:-48})
  echo "+ $cmd"; t0=$(date +%s)
  $cmd 2>&1 | grep -v -E "^\s*$" | tail -n 8
  echo "train $v wall_s $(( $(date +%s) - t0 ))"
  tail -n 2 models/trained/gpu-$v/training_log.jsonl | cut -c1-400
  python3 - <<PY
import json
log=[json.loads(l) for l in open("models/trained/gpu-$v/training_log.jsonl")]
s=[r.get("seconds") for r in log if r.get("seconds") is not None]
print("steps", len(log), "median s/step", sorted(s)[len(s)//2] if s else None, "keys", sorted(log[-1])[:30])
PY
done
python3 tests/gpu/evaluate.py base models/base/gemma-3-270m
python3 tests/gpu/evaluate.py fairgender models/trained/gpu-fairgender
cp -r /tmp/gpu $OUT/ 2>/dev/null || true
for v in fairgender cda; do cp models/trained/gpu-$v/training_log.jsonl $OUT/training_log_$v.jsonl; done
