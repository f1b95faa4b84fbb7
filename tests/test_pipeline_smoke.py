"""The whole DAG on tiny models and tiny data: data -> generate -> causal, prompts -> train@* -> evaluate@*
-> report.

A copy of the project runs every stage with ``dvc repro -s`` (the models stage converts GGUF files and is
covered by its own tests; here tiny models stand in its outputs). Generation talks through the real
openai client to a scripted OpenAI-compatible server on loopback. Assertions read the metrics files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fairgender_utils.config import read_params
from fairgender_utils.paths import REPO_ROOT, default_mirror
from tests import scripted_llm

GROUPS = read_params(REPO_ROOT / "params" / "train.yaml")["groups"]  # main and ablation variants
VARIANTS = [v for group in GROUPS.values() for v in group]  # the trained variants, one seed each here
RUNS = [f"{v}-s0" for v in VARIANTS]


def _copy_project(dst: Path) -> None:
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO_ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        if f.startswith("results/") or not (REPO_ROOT / f).is_file():
            continue
        (dst / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / f, dst / f)
    subprocess.run(["git", "init", "-q"], cwd=dst, check=True)


def _edit(root: Path, name: str, **values) -> None:
    path = root / "params" / f"{name}.yaml"
    params = yaml.safe_load(path.read_text())
    unknown = set(values) - set(params)
    assert not unknown, f"smoke overrides name keys missing from {name}.yaml: {unknown}"
    params.update(values)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, tiny_model_dirs) -> Path:
    root = tmp_path_factory.mktemp("project")
    _copy_project(root)
    for key in ("gemma-3-270m", "smollm2-135m-instruct"):
        shutil.copytree(tiny_model_dirs["llama"], root / "models" / "base" / key)
    server, url = scripted_llm.start()
    gens = {"gemma-3-270m": {"model": "scripted", "api": "completions"},
            "smollm2-135m-instruct": {"model": "scripted", "api": "chat"}}
    _edit(root, "data", try_network=False)
    _edit(root, "generate", base_url=url, generators=gens, n_cells=30, compare_cells=10, throughput_cells=4,
          concurrency=2, step1_completion_prompt=scripted_llm.STEP1, step2_completion_prompt=scripted_llm.STEP2,
          step1_chat_prompt=scripted_llm.STEP1, step2_chat_prompt=scripted_llm.STEP2, step1_prefill=False,
          step2_prefill=False)
    _edit(root, "causal", reference_size=60, reference_loglik_size=20, k_ref=5, batch_size=16, theta_mode="quantile")
    _edit(root, "prompts", vocab_size=12, prompt_length=2, beam=2, batch_size=64)
    _edit(root, "train", max_steps=2, batch_size=4, micro_batch_size=2, checkpoint_every=1,
          seeds={"main": [0], "ablation": [0]}, dev_every=1, dev_ppl_n=8, kl_reference_size=8)
    _edit(root, "evaluate", seat_n_samples=1000, seat_exact_max=1000, n_boot=100, glue_tasks=["sst2", "stsb"],
          glue_train_n=40, glue_dev_n=40, profile="quick", full_profile_models=["base"], ppl_n=40)
    _edit(root, "report", n_perm=200, n_boot=200)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "FAIRGENDER_DATA_MIRROR": str(default_mirror()), "HF_HUB_OFFLINE": "1"}
    runs = [("" if g == "main" else "-ablation", f"{v}-0") for g, group in GROUPS.items() for v in group]
    stages = ["data", "generate", "causal", "prompts", *[f"train{g}@{r}" for g, r in runs],
              "evaluate-base", *[f"evaluate{g}@{r}" for g, r in runs], "report"]
    try:
        for stage in stages:
            proc = subprocess.run([sys.executable, "-m", "dvc", "repro", "-s", stage], cwd=root, env=env,
                                  capture_output=True, text=True)
            assert proc.returncode == 0, f"dvc repro -s {stage} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    finally:
        server.shutdown()
    return root


def _metrics(root: Path, stage: str) -> dict:
    return json.loads((root / "results" / stage / "metrics.json").read_text())


def test_generation_metrics(pipeline: Path) -> None:
    m = _metrics(pipeline, "generate")
    assert m["pairs"] > 0 and m["pairs"] + m["rejects"] == m["generated_cells"] == 30
    pairs = [json.loads(x) for x in (pipeline / "data" / "generated" / "pairs.jsonl").read_text().splitlines()]
    assert len(pairs) == m["pairs"] and all(p["target"] in p["s_m"] and p["target"] in p["s_f"] for p in pairs)


def test_causal_split(pipeline: Path) -> None:
    aligned = (pipeline / "data" / "causal" / "aligned.jsonl").read_text().splitlines()
    unaligned = (pipeline / "data" / "causal" / "unaligned.jsonl").read_text().splitlines()
    assert aligned and len(aligned) + len(unaligned) <= _metrics(pipeline, "generate")["pairs"]
    assert (pipeline / "results" / "causal" / "metrics.json").exists()


@pytest.mark.parametrize("run", RUNS)
def test_trained_models_exist(pipeline: Path, run: str) -> None:
    out = pipeline / "models" / "trained" / run
    assert (out / "config.json").exists() and (out / "fairgender_source.json").exists()
    log = [json.loads(x) for x in (out / "training_log.jsonl").read_text().splitlines()]
    assert log and all(r["loss"] == r["loss"] for r in log if "loss" in r)  # no NaN
    dev = (pipeline / "results" / "train" / run / "plots" / "dev_curve.csv").read_text().splitlines()
    assert dev[0] == "step,dev_J,dev_abs_delta,dev_ppl" and [r.split(",")[0] for r in dev[1:]] == ["0", "1", "2"]


@pytest.mark.parametrize("run", ["base", *RUNS])
def test_evaluation_metrics_in_range(pipeline: Path, run: str) -> None:
    m = _metrics(pipeline, f"evaluate/{run}")
    items = (pipeline / "results" / "evaluate" / run / "items" / "primary.csv").read_text().splitlines()
    assert items[0] == "id,target,J,delta" and m["primary_n_pairs"] == len(items) - 1
    assert m["primary_mean_J"] >= 0 and m["primary_mean_abs_delta"] >= 0
    assert 0 <= m["crows_pairs"]["gender"]["score"] <= 100 and m["crows_pairs"]["gender"]["n"] == 262
    ss = m["stereoset"]["gender"]
    assert 0 <= ss["ss"] <= 100 and 0 <= ss["lms"] <= 100 and ss["n"] == 255
    assert 0 <= ss["icat"] <= 100 and abs(ss["icat"] - ss["lms"] * min(ss["ss"], 100 - ss["ss"]) / 50) < 1e-6
    assert m["seat"]["n_tests"] == 6 and m["seat"]["mean_abs_d"] >= 0


def test_prompt_search(pipeline: Path) -> None:
    m = _metrics(pipeline, "prompts")
    found = [json.loads(x) for x in (pipeline / "data" / "prompts" / "prompts.jsonl").read_text().splitlines()]
    assert m["prompts"] == len(found) == 4 and [s["candidates"] for s in m["steps"]] == [12, 24]
    assert all(r["jsd"] > 0 for r in found) and len(found[-1]["prompt"].split()) == 2


def test_report(pipeline: Path) -> None:
    m = _metrics(pipeline, "report")
    assert set(m) == {"base", *VARIANTS}
    assert all("significant_vs_base" in m[v] for v in VARIANTS)
    html = (pipeline / "results" / "report" / "05_report.html").read_text()
    assert "Published yardsticks" in html and "data:image/png;base64" in html
