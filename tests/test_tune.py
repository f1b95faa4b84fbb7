"""The tune stage: outside the default pipeline, unable to reach test pairs or benchmarks, its rule by hand, a
tiny end-to-end grid, and params/train.yaml equal to its committed choice."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from fairgender_utils.config import ConfigError, read_params
from fairgender_utils.io import read_jsonl, write_jsonl
from fairgender_utils.paths import REPO_ROOT
from fairgender_utils.tune import grid
from fairgender_utils.tune.config import TUNED_TRAIN_KEYS
from tests import fixture_pairs
from tests.params import stage_config
from tests.test_layout import DEPS, closure, notebook_source, referenced_modules

TUNE = "tune/dvc.yaml:tune"
BENCHMARKS = ("data/raw/seat", "data/raw/stereoset", "data/raw/crows_pairs", "results/evaluate", "results/report",
              "fairgender_utils/evaluate", "fairgender_utils/report")


def test_params_equal_the_committed_choice() -> None:
    path = REPO_ROOT / "results" / "tune" / "chosen.json"
    if not path.exists():
        pytest.skip("results/tune/chosen.json is not committed yet (dvc repro tune/dvc.yaml)")
    chosen = json.loads(path.read_text())
    train = yaml.safe_load((REPO_ROOT / "params" / "train.yaml").read_text())
    causal = yaml.safe_load((REPO_ROOT / "params" / "causal.yaml").read_text())
    assert {k: train[k] for k in TUNED_TRAIN_KEYS} == {k: chosen[k] for k in TUNED_TRAIN_KEYS}
    from fairgender_utils.tune.trainsets import theta_key

    assert chosen["theta_key"] == theta_key(causal["theta_mode"]) and causal[chosen["theta_key"]] == chosen["theta"]
    assert train["lr_scheduler"] == "constant"  # the chosen step count is a prefix of the tuning run


def test_tune_is_on_demand_only() -> None:
    root = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]
    assert "tune" not in root  # `dvc repro` (root dvc.yaml) never runs it
    outs = set(yaml.safe_load((REPO_ROOT / "tune" / "dvc.yaml").read_text())["stages"]["tune"]["outs"][0])
    assert outs and not any("results/tune" in str(d) for _, deps in DEPS.values() for d in deps)


def test_tune_cannot_reach_test_pairs_or_benchmarks() -> None:
    notebook, deps = DEPS[TUNE]
    assert not [d for d in deps if d.startswith(BENCHMARKS)], deps
    files = closure(referenced_modules(notebook_source(REPO_ROOT / notebook)))
    rel = {f.relative_to(REPO_ROOT).as_posix() for f in files}
    assert not [f for f in rel if f.startswith(BENCHMARKS)]
    assert "fairgender_utils/tune/trainsets.py" in rel and "fairgender_utils/train/loop.py" in rel
    cfg = stage_config("tune")
    strings = [str(v) for v in cfg.model_dump().values()]
    assert not [s for s in strings if s.startswith(BENCHMARKS)]
    # no code of the tune and train stages names the test split (they read pairs by split: loaders.pairs)
    sources = "".join((REPO_ROOT / f).read_text() for f in rel if f.startswith(("fairgender_utils/tune",
                                                                                 "fairgender_utils/train")))
    assert '"test"' not in sources and "'test'" not in sources and 'load_split(' in sources


def _table(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["run", "step", "dev_J", "dev_ppl", "theta", "lr", "lambda_r", "lm_loss",
                                       "dev_abs_delta"])


def test_the_rule_by_hand() -> None:
    # run a: base ppl 100; step 4 has the lowest J but ppl 106 (> 5%); step 2 (J .3, ppl 104) qualifies
    # run b: base ppl 100; step 2 J .3 ppl 101 (ties a's step 2 on J: fewer steps... equal steps: first listed)
    #        step 4 J .25 ppl 105 (exactly 5%: qualifies) -> the choice
    rows = [("a", 0, 0.5, 100.0), ("a", 2, 0.3, 104.0), ("a", 4, 0.1, 106.0),
            ("b", 0, 0.5, 100.0), ("b", 2, 0.3, 101.0), ("b", 4, 0.25, 105.0)]
    table = _table([(*r, 0.2, 1e-5 if r[0] == "a" else 5e-5, 0.1, "own", 1.0) for r in rows])
    marked = grid.mark(table, 0.05)
    assert marked["eligible"].tolist() == [False, True, False, False, True, True]
    chosen = grid.select(marked, 0.05)
    assert (chosen["run"], chosen["max_steps"], chosen["lr"], chosen["dev_J"]) == ("b", 4, 5e-5, 0.25)
    assert chosen["base_dev_ppl"] == 100.0 and chosen["ppl_rise"] == pytest.approx(0.05)
    with pytest.raises(grid.TuneError, match=r"no dev point keeps the dev perplexity within 0.5% .*lowest rise 1.0%"):
        grid.select(grid.mark(table, 0.005), 0.005)


def test_run_config_needs_a_constant_schedule_and_untuned_overrides(tmp_path: Path, tiny_model_dirs) -> None:
    values = yaml.safe_load((REPO_ROOT / "params" / "train.yaml").read_text())
    values.update(pairs_path=str(tmp_path), data_dir=str(tmp_path))  # a fresh checkout has no data/ yet
    train = tmp_path / "train_ok.yaml"
    train.write_text(yaml.safe_dump(values))
    cfg = stage_config("tune", train_params=str(train), model_path=str(tiny_model_dirs["llama"]))
    point = grid.grid_points(cfg)[0]
    run = grid.run_config(cfg, point, tmp_path)
    assert (run.lr, run.lambda_r, run.lm_loss, run.max_steps) == (point["lr"], point["lambda_r"], point["lm_loss"],
                                                                  cfg.max_steps)
    assert not run.save_final and run.dev_every == cfg.dev_every and run.epochs * 1 >= cfg.max_steps
    for change, message in (({"lr_scheduler": "linear"}, "needs 'constant'"),
                            ({"variants": {**values["variants"], "fairgender": {"lr": 1e-3}}}, "overrides 'lr'")):
        bad = tmp_path / "train.yaml"
        bad.write_text(yaml.safe_dump({**values, **change}))
        with pytest.raises(ConfigError, match=message):
            grid.run_config(stage_config("tune", train_params=str(bad), model_path=str(tiny_model_dirs["llama"])),
                            point, tmp_path)


def test_a_tiny_grid_end_to_end_never_touches_a_test_pair(tiny_model_dirs, data_dir, tmp_path) -> None:
    model_dir = fixture_pairs.opinionated(tiny_model_dirs["llama"], tmp_path / "model")
    causal_dir = fixture_pairs.build_causal_dir(model_dir, tmp_path)
    # the test pairs' sentences are poisoned: any code that tokenised them would fail
    poisoned = [{**p, "s_m": 1, "s_f": None} if p["split"] == "test" else p for p in fixture_pairs.pairs()]
    write_jsonl(tmp_path / "pairs.jsonl", poisoned)
    # control mode: θ is the share of shuffled controls rejected; their scores are the stage's controls table
    effects = pd.read_csv(causal_dir / "effects.csv")
    shuffled = np.linspace(effects["alignment"].min(), effects["alignment"].max(), 11)
    (tmp_path / "plots").mkdir()
    pd.DataFrame({"kind": ["shuffled"] * 11 + ["real"], "alignment": [*shuffled, 99.0]}).to_csv(
        tmp_path / "plots" / "controls.csv", index=False)
    causal = {**read_params("params/causal.yaml"), "pairs_path": str(tmp_path / "pairs.jsonl"),
              "data_dir": str(data_dir), "theta_mode": "control", "plots_dir": str(tmp_path / "plots"),
              **{k: str(causal_dir / n) for k, n in (("effects_path", "effects.csv"),
                                                   ("embeddings_path", "pair_embeddings.safetensors"),
                                                   ("index_path", "index.json"))}}
    train = {**read_params("params/train.yaml"), "pairs_path": str(tmp_path / "pairs.jsonl"), "data_dir": str(data_dir),
             "batch_size": 4, "micro_batch_size": 2, "warmup_steps": 1, "dev_ppl_n": 4, "kl_reference_size": 8,
             "grad_parts_every": 0, "freeze_embeddings": False, "dropout": False, "count_flops": False,
             "cpu_threads": 1}
    for name, values in (("causal.yaml", causal), ("train.yaml", train)):
        (tmp_path / name).write_text(yaml.safe_dump(values))
    cfg = stage_config("tune", model_path=str(model_dir), train_params=str(tmp_path / "train.yaml"),
                       causal_params=str(tmp_path / "causal.yaml"), lr=[1e-3], lambda_r=[0.5],
                       lm_loss=["own", "kl"], theta=[0.2, 0.6], max_steps=3, dev_every=2, cpu_threads=1,
                       work_dir=str(tmp_path / "work"))
    from fairgender_utils.tune import trainsets

    sets = trainsets.training_sets(cfg.theta, cfg.causal_params, cfg.model_path, cfg.work_dir)
    split = {p["id"]: p["split"] for p in fixture_pairs.pairs()}
    train_a = effects.set_index("id")["alignment"]
    sizes = {}
    for theta, (folder, thr) in sets.items():
        assert thr == pytest.approx(np.quantile(shuffled, theta))  # rejects the share theta of the controls
        ids = [r["id"] for name in ("aligned.jsonl", "unaligned.jsonl") for r in read_jsonl(folder / name)]
        assert ids and {split[i] for i in ids} == {"train"}
        aligned = [r["id"] for r in read_jsonl(folder / "aligned.jsonl")]
        assert all(train_a[i] >= thr for i in aligned)
        sizes[theta] = len(aligned)
    assert sizes[0.2] > sizes[0.6]  # a higher threshold keeps fewer pairs
    table = grid.run_grid(cfg, sets)
    assert len(table) == 4 * 3 and sorted(set(table["step"])) == [0, 2, 3]
    assert all(steps == [0, 2, 3] for steps in table.groupby("run", sort=False)["step"].apply(list))
    assert table.groupby("theta")["train_pairs"].first().to_dict() == sizes
    assert table.groupby("theta")["theta_threshold"].first().to_dict() == {t: thr for t, (_, thr) in sets.items()}
    logged = [[r["step"] for r in read_jsonl(Path(cfg.work_dir) / "logs" / run / "dev_log.jsonl")]
              for run in table["run"].unique()]
    assert logged == [[0, 2, 3]] + [[2, 3]] * 3  # the base model (step 0) is evaluated once
    assert table[table["step"] == 0]["dev_ppl"].nunique() == 1
    assert table["dev_pairs"].eq(sum(s == "dev" for s in split.values())).all()
    ok = table[(table["step"] > 0) & (table["ppl_rise"] <= cfg.max_ppl_rise)]
    if len(ok):
        assert table.loc[table["chosen"], "dev_J"].item() == ok["dev_J"].min()
    else:
        assert not table["chosen"].any()
    assert not (Path(cfg.work_dir) / table["run"].iloc[0] / "out").exists()  # nothing but logs is kept
