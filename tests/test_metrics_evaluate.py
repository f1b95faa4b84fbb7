"""Evaluate stage: config and notebook parity, a tiny end-to-end run, files, figures, compare_to_base."""

from __future__ import annotations

import json

import matplotlib
import pytest
import yaml

from fairgender_utils.config import ConfigError
from fairgender_utils.evaluate import figures as plots
from fairgender_utils.evaluate import run as evaluate
from fairgender_utils.evaluate.config import EvaluateConfig
from fairgender_utils.io import write_tables
from fairgender_utils.plots import save_figure
from fairgender_utils.report.paired import compare_to_base
from fairgender_utils.paths import repo_path
from tests.metrics_fixtures import one_thread, tiny  # noqa: F401  (fixtures)
from tests.params import stage_config, stage_params

matplotlib.use("Agg")


@pytest.mark.parametrize(("change", "message"), [
    ({"glue_tasks": ["mnli"]}, r"glue_tasks.0.*'sst2', 'cola'"),
    ({"model": "models/trained/nonexistent"}, "folder not found"),
    ({"profile": "fast", "full_profile_models": []}, "profile"),
    ({"full_profile_models": "base"}, "full_profile_models"),
    ({"ppl_dev_share": 1.0}, "ppl_dev_share"),
    ({"n_boot": 10}, "n_boot"),
    ({"colour": 1}, "unknown key"),
])
def test_bad_params_are_clear_errors(change, message, data_dir, tmp_path):
    from fairgender_utils.io import write_jsonl
    from tests import fixture_pairs

    pairs = write_jsonl(tmp_path / "pairs.jsonl", fixture_pairs.pairs()) or tmp_path / "pairs.jsonl"
    values = stage_params("evaluate", **{"data_dir": str(data_dir), "model": "a-hub/model-id",
                                         "pairs_path": str(pairs), **change})
    with pytest.raises(ConfigError, match=message):
        EvaluateConfig.from_params(values, "params/evaluate.yaml")


@pytest.fixture(scope="module")
def run(tiny_model_dirs, data_dir, tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("evaluate")
    base = out / "base"
    cfg = stage_config("evaluate", model=str(tiny_model_dirs["bert"]), data_dir=str(data_dir), out_dir=str(base),
                       profile="quick", full_profile_models=[], ppl_part="test", ppl_n=40, ppl_dev_share=0.5,
                       ppl_split_seed=0,
                       seat_tests=["sent-weat7b"],
                       n_boot=100, seat_n_samples=2000, glue_tasks=["wnli"], glue_train_n=30, glue_dev_n=20,
                       metrics_path=str(base / "metrics.json"), config_path=str(base / "config.json"))
    model, tok, family, scorer = evaluate.setup(cfg)
    seat_res = evaluate.run_seat(cfg, model, tok)
    ss_res, ss_table = evaluate.run_stereoset(cfg, scorer)
    crows_res, crows_table = evaluate.run_crows(cfg, scorer)
    ppl_items, ppl_table = evaluate.run_perplexity(cfg, scorer)
    assert evaluate.run_glue(cfg, model, tok)[0].empty  # the quick profile runs no GLUE
    glue_table, glue_skipped = evaluate.run_glue(cfg.model_copy(update={"profile": "full"}), model, tok)
    skipped = evaluate.skipped_items(seat_res, ss_res, crows_res, glue_skipped)
    summary = evaluate.summary_table(cfg.variant, seat_res, ss_table, crows_table, glue_table, ppl_table)
    write_tables(cfg.out_dir, "items", {"seat": seat_res.items, "stereoset": ss_res.items,
                                    "crows_pairs": crows_res.items, "perplexity": ppl_items,
                                    "skipped": skipped})
    timing = {"seat": {"wall": 2.0, "cpu": 1.0}}
    metrics = evaluate.metrics(cfg, family, seat_res, ss_table, crows_table, glue_table, skipped, timing,
                               ppl_table)
    return {"cfg": cfg, "out": out, "seat": seat_res, "ss": ss_res, "ss_table": ss_table, "crows": crows_res,
            "crows_table": crows_table, "glue": glue_table, "summary": summary, "metrics": metrics}


def test_tiny_end_to_end(run):
    assert len(run["crows"].items) == 262 and len(run["ss"].items) == 255  # the gender subsets
    assert list(run["ss_table"]["subset"]) == ["gender"] and list(run["crows_table"]["subset"]) == ["gender"]
    m = run["metrics"]
    assert set(m) >= {"seat", "stereoset", "crows_pairs", "glue", "skipped", "timing_s"}
    assert 0 <= m["crows_pairs"]["gender"]["score"] <= 100 and m["stereoset"]["gender"]["n_terms"] == 10
    assert set(m["seat"]["tests"]) == {"sent-weat7b"} and m["glue"]["wnli"]["metric"] == "accuracy"
    json.dumps(m, allow_nan=False)  # strict JSON: no NaN (sd of a single run is null)
    assert m["timing_s"]["total"] == {"wall": 2.0, "cpu": 1.0}
    s = run["summary"]
    assert set(s["benchmark"]) == {"SEAT", "StereoSet", "CrowS-Pairs", "GLUE", "Held-out text"}
    ppl = m["perplexity"]
    assert ppl["kind"] == "pseudo-perplexity" and ppl["n_sentences"] == 40 and ppl["part"] == "test"
    assert ppl["ppl_ci_low"] <= ppl["ppl"] <= ppl["ppl_ci_high"] and m["profile"] == "quick"
    crows_rows = s[s["benchmark"] == "CrowS-Pairs"]["metric"].tolist()
    assert crows_rows == ["score", "score (bias-bench)", "pct_stereotype (lm-eval)", "likelihood_diff (lm-eval)"]
    assert set(s["variant"]) == {"base"}
    items = repo_path(run["cfg"].out_dir) / "items"
    assert {p.name for p in items.iterdir()} == {"seat.csv", "stereoset.csv", "crows_pairs.csv",
                                                 "perplexity.csv", "skipped.csv"}


def test_figures_for_several_variants(run, tmp_path):
    both = [run["summary"], run["summary"].assign(variant="cda")]
    summary = evaluate.pd.concat(both, ignore_index=True)
    save_figure(plots.metric_bars(summary, "gender"), summary, tmp_path / "figures", tmp_path / "plots", "bars")
    png = tmp_path / "figures" / "bars.png"
    seat_tab = evaluate.pd.concat([run["seat"].table.assign(variant=v) for v in ("base", "cda")])
    save_figure(plots.seat_heatmap(seat_tab), seat_tab, tmp_path / "figures", tmp_path / "plots", "seat")
    diffs = run["crows"].items.assign(benchmark="CrowS-Pairs", variant="base")
    diffs = diffs[["variant", "benchmark", "diff"]]
    save_figure(plots.score_differences(diffs), diffs, tmp_path / "figures", tmp_path / "plots", "diffs")
    assert png.stat().st_size > 1000
    assert {p.name for p in (tmp_path / "plots").iterdir()} == {"bars.csv", "seat.csv", "diffs.csv"}


def test_compare_to_base_on_written_items(run):
    items = repo_path(run["cfg"].out_dir) / "items"
    df = compare_to_base(items, items, n_perm=500, n_boot=200)
    assert list(df["comparison"]) == ["crows_pairs/gender", "stereoset/gender/SS", "stereoset/gender/LMS",
                                      "stereoset/gender/ICAT", "seat/mean |d|", "seat/sent-weat7b", "perplexity"]
    assert set(df["direction"]) == {"same"}
    assert (df["p"] == 1.0).all() and (df["n_base_only"].fillna(0) == 0).all()


def test_models_named_for_the_full_profile_get_it():
    assert stage_config("evaluate", variant="base", profile="quick", full_profile_models=["base"]).profile == "full"
    assert stage_config("evaluate", variant="no_knn", profile="quick", full_profile_models=["base"]).profile == "quick"
    assert stage_config("evaluate", variant="no_knn", profile="full", full_profile_models=[]).profile == "full"
