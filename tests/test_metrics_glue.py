"""GLUE: metrics by hand, pair features, probe and finetune on a tiny model, skipped rows counted."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fairgender_utils.loaders import GlueExample
from fairgender_utils.evaluate import crows, glue, seat, stereoset
from fairgender_utils.evaluate import run as evaluate
from tests.params import stage_config
from tests.metrics_fixtures import one_thread, tiny  # noqa: F401  (fixtures)


def test_task_metrics_by_hand():
    y, p = np.array([1, 1, 0, 0]), np.array([1, 0, 0, 0])
    cola = glue.task_metrics("cola", y, p)  # MCC = (1*2 - 0*1) / sqrt((1+0)(1+1)(2+0)(2+1))
    assert cola["mcc"] == pytest.approx(100 * 2 / np.sqrt(12)) and cola["accuracy"] == 75.0
    mrpc = glue.task_metrics("mrpc", y, p)  # precision 1, recall 1/2
    assert mrpc["f1"] == pytest.approx(200 / 3) and mrpc["accuracy"] == 75.0
    assert glue.task_metrics("rte", y, p) == {"accuracy": 75.0}
    st = glue.task_metrics("stsb", np.array([0.0, 1.0, 2.0, 4.0]), np.array([1.0, 3.0, 5.0, 9.0]))
    assert st["pearson"] == pytest.approx(100.0) and st["spearman"] == pytest.approx(100.0)
    main = [glue.main_metric(t) for t in ("cola", "mrpc", "stsb", "sst2")]
    assert main == ["mcc", "f1", "pearson", "accuracy"]


def test_subsample_is_seeded():
    ex = [GlueExample(str(i), None, 0.0) for i in range(50)]
    assert glue.subsample(ex, 10, 3) == glue.subsample(ex, 10, 3) != glue.subsample(ex, 10, 4)
    assert glue.subsample(ex, 0, 3) == ex and len(glue.subsample(ex, 80, 3)) == 50


def test_pair_features(tiny):
    model, tok, _ = tiny["bert"]
    single = glue.features(model, tok, [GlueExample("a man", None, 0.0), GlueExample("a woman", None, 1.0)])
    pair = glue.features(model, tok, [GlueExample("a man", "a woman", 0.0)])
    u, v = single
    assert pair.shape == (1, 4 * u.shape[0])
    assert pair[0] == pytest.approx(np.concatenate([u, v, np.abs(u - v), u * v]), abs=1e-6)


def _examples(n, pair=False, regression=False):
    words = ["good", "bad", "nice", "awful", "fine", "poor"]
    out = []
    for i in range(n):
        w = words[i % len(words)]
        y = float(i % 5) if regression else float(w in ("good", "nice", "fine"))
        out.append(GlueExample(f"it was {w} today", f"this is {w}" if pair else None, y))
    return out


def test_probe_runs_for_classification_and_regression(tiny):
    model, tok, _ = tiny["bert"]
    cls = glue.probe_task("sst2", model, tok, _examples(40), _examples(12))
    assert set(cls) == {"n_train", "n_dev", "accuracy"} and cls["accuracy"] > 90  # separable by the word
    reg = glue.probe_task("stsb", model, tok, _examples(40, True, True), _examples(10, True, True))
    assert {"pearson", "spearman"} <= set(reg)


def test_finetune_runs_under_accelerate(tiny_model_dirs):
    res = glue.finetune_task(str(tiny_model_dirs["bert"]), "mrpc", _examples(16, pair=True),
                             _examples(8, pair=True), lr=1e-3, batch_size=8, epochs=1, seed=0)
    assert {"f1", "accuracy", "seed"} <= set(res) and res["n_dev"] == 8


def test_missing_label_is_counted_and_reported(tmp_path, tiny_model_dirs, tiny):
    sst = tmp_path / "glue" / "SST-2"
    sst.mkdir(parents=True)
    rows = [f"it was {w} today\t{int(w == 'good')}" for w in ["good", "bad"] * 10]
    (sst / "train_full.tsv").write_text("sentence\tlabel\n" + "\n".join(rows + ["no label here\t"]) + "\n")
    (sst / "dev.tsv").write_text("sentence\tlabel\n" + "\n".join(rows[:6]) + "\n")
    cfg = stage_config("evaluate", model=str(tiny_model_dirs["bert"]), data_dir=str(tmp_path), glue_tasks=["sst2"])
    model, tok, _ = tiny["bert"]
    table, skipped = evaluate.run_glue(cfg, model, tok)
    assert skipped == {"sst2": {"missing label": 1}} and table.iloc[0]["n_train"] == 20
    none = pd.DataFrame()
    rep = evaluate.skipped_items(seat.SeatResult(none, none, none, {}), stereoset.StereoSetResult(none, none),
                                 crows.CrowsResult(none, none), skipped)
    assert rep.drop(columns="bias_type").to_dict("records") == [
        {"benchmark": "GLUE", "item_id": "sst2", "reason": "missing label", "count": 1}]
