"""Report stage: the primary endpoint by hand (5 pairs, 2 seeds; 3 target words as the unit of its test and
CI), benchmarks grouped by variant with Holm-corrected marks, flattening of the dev curve, the computed
statement, the input-key mapping, the rendered parameters cell, and the notebook run end to end on a
synthetic results tree with seeds."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fairgender_utils.report import figures, inputs, paired, primary, statement
from fairgender_utils.report import tables as report
from fairgender_utils.stage import merge_parameters
from tests import report_fixtures
from tests.params import stage_config


def _variant(root: Path, name: str, stereo: np.ndarray, ss: float, crows: float, seat_shift: float) -> None:
    items, tables = root / name / "items", root / name / "tables"
    items.mkdir(parents=True)
    tables.mkdir(parents=True)
    n = len(stereo)
    pd.DataFrame({"item_id": range(n), "bias_type": ["gender"] * n, "stereo": stereo.astype(int)}).to_csv(
        items / "crows_pairs.csv", index=False)
    rng = np.random.default_rng(0)
    s = np.r_[rng.normal(0.1 + seat_shift, 0.05, 20), rng.normal(0.0, 0.05, 20)]
    pd.DataFrame({"test": "sent-weat6", "set": ["X"] * 20 + ["Y"] * 20, "index": list(range(20)) * 2,
                  "s": s}).to_csv(items / "seat.csv", index=False)
    pd.DataFrame([("SEAT", "gender", "mean |d|", 0.5, 0.4, 0.6), ("StereoSet", "gender", "SS", ss, ss - 5, ss + 5),
                  ("StereoSet", "gender", "LMS", 90.0, 88.0, 92.0), ("StereoSet", "gender", "ICAT", 60.0, 55.0, 65.0),
                  ("CrowS-Pairs", "gender", "score", crows, crows - 6, crows + 6), ("GLUE", "sst2", "accuracy", 80.0,
                  np.nan, np.nan)], columns=["benchmark", "subset", "metric", "value", "ci_low", "ci_high"]).to_csv(
        tables / "summary.csv", index=False)
    pd.DataFrame({"test": ["sent-weat6"], "d": [0.5], "p": [0.01]}).to_csv(tables / "seat.csv", index=False)


@pytest.fixture()
def cfg(tmp_path: Path) -> report.ReportConfig:
    base = np.r_[np.ones(150), np.zeros(50)]  # 75% stereotypical
    debiased = base.copy()
    debiased[:50] = 0  # 50 pairs flip to anti-stereotypical: McNemar p ~ 1e-15
    unchanged = base.copy()
    unchanged[[0, 150]] = [0, 1]  # one flip each way: p = 1
    biased = np.ones(200)  # 50 pairs flip to stereotypical: away from the ideal 50
    _variant(tmp_path, "base", base, 68.0, 75.0, 0.0)
    _variant(tmp_path, "debiased", debiased, 55.0, 50.0, 0.0)
    _variant(tmp_path, "same", unchanged, 68.0, 75.0, 0.0)
    _variant(tmp_path, "biased", biased, 68.0, 100.0, 0.0)
    for f in ("g.json", "c.json"):
        (tmp_path / f).write_text("{}")
    return stage_config("report", evaluate_dir=str(tmp_path), generate_metrics=str(tmp_path / "g.json"),
                        causal_metrics=str(tmp_path / "c.json"), train_dir=str(tmp_path), n_perm=200, n_boot=200)


def test_significance_is_holm_corrected_across_variants(cfg: report.ReportConfig) -> None:
    sig = report.significance(cfg)
    crows = sig[sig["comparison"] == "crows_pairs/gender"].set_index("variant")
    assert crows.loc["debiased", "n_base_only"] == 50 and crows.loc["debiased", "n_variant_only"] == 0
    assert bool(crows.loc["debiased", "significant"]) and not bool(crows.loc["same", "significant"])
    assert crows.loc["same", "p"] == pytest.approx(1.0)
    # Holm over all rows: the smallest p is multiplied by the number of tests
    m = len(sig)
    assert sig["p_holm_all"].min() == pytest.approx(min(1.0, sig["p"].min() * m))


def test_paper_table_marks_and_cis(cfg: report.ReportConfig) -> None:
    summary = report.load_summary(cfg)
    table = report.paper_table(summary, report.significance(cfg)).set_index("variant")
    assert table.loc["base", "CrowS-Pairs"] == "75.00 [69.00, 81.00]"
    # the mark says which way the score moved: 75 -> 50 is toward the ideal, 75 -> 100 away from it
    assert table.loc["debiased", "CrowS-Pairs"] == "50.00 [44.00, 56.00] [better]"
    assert table.loc["biased", "CrowS-Pairs"] == "100.00 [94.00, 106.00] [worse]"
    assert table.loc["same", "CrowS-Pairs"] == "75.00 [69.00, 81.00]"  # not significant: no mark
    # SEAT's mark comes from the test of mean |d| itself (unchanged here), not from any single SEAT test
    assert table.loc["debiased", "SEAT mean |d|"] == "0.500 [0.400, 0.600]"
    assert table.loc["debiased", "StereoSet SS"] == "55.00 [50.00, 60.00]"


def test_variants_are_the_evaluated_folders_and_a_missing_table_is_named(cfg: report.ReportConfig) -> None:
    assert report.variants(cfg) == ["base", "biased", "debiased", "same"]
    root = Path(cfg.evaluate_dir)
    (root / "nope" / "tables").mkdir(parents=True)
    (root / "nope" / "tables" / "summary.csv").write_text((root / "same" / "tables" / "summary.csv").read_text())
    with pytest.raises(FileNotFoundError, match="nope/tables/seat.csv: missing"):
        report.load_seat(cfg)
    no_base = cfg.model_copy(update={"base_variant": "original"})
    with pytest.raises(FileNotFoundError, match="original/tables/summary.csv: missing"):
        report.variants(no_base)


# --- the primary endpoint by hand: 5 test pairs, fairgender with 2 seeds, base and cda with one ------------

BASE_J, BASE_DELTA = [0.10, 0.20, 0.30, 0.40, 0.50], [1.0, -2.0, 3.0, -4.0, 5.0]
RUNS = {"base": (BASE_J, BASE_DELTA),
        "fairgender-s0": ([0.08, 0.16, 0.24, 0.30, 0.52], [-0.5, 1.0, -1.5, 2.0, -2.5]),
        "fairgender-s1": ([0.10, 0.20, 0.26, 0.34, 0.54], [0.5, -1.0, 1.5, -2.0, 2.5]),  # |δ| as s0, signs flipped
        "cda-s0": ([0.05, 0.10, 0.15, 0.20, 0.25], [0.8, -1.6, 2.4, -3.2, 4.0])}  # J x 0.5, δ x 0.8 of base


def _primary_tree(root: Path, runs: dict = RUNS, targets: list[str] | str = "nurse") -> pd.DataFrame:
    for run, (j, delta) in runs.items():
        (root / run / "items").mkdir(parents=True)
        (root / run / "tables").mkdir(parents=True)
        (root / run / "tables" / "summary.csv").write_text("benchmark,subset,metric,value,ci_low,ci_high\n")
        pd.DataFrame({"id": [f"p{i}" for i in range(len(j))], "target": targets, "J": j, "delta": delta}).to_csv(
            root / run / "items" / "primary.csv", index=False)
    return inputs.load_primary(str(root), inputs.find_runs(str(root), "base"))


def test_primary_endpoint_by_hand(tmp_path: Path) -> None:
    long = _primary_tree(tmp_path)
    t = primary.primary_table(long, ["base", "fairgender", "cda"], "base", "fairgender", ["cda", "autodebias"],
                              "wilcoxon", "pair", 200, 0, 0.05).set_index(["endpoint", "a", "b"])
    assert len(t) == 6  # (fairgender, cda) vs base, fairgender vs cda; autodebias absent; x 2 endpoints
    r = t.loc[("mean J", "fairgender", "base")]
    # per pair, seeds averaged: .09 .18 .25 .32 .53 (mean .274) against .1 .2 .3 .4 .5 (mean .3)
    assert (r["mean_a"], r["mean_b"]) == (pytest.approx(0.274), pytest.approx(0.3))
    assert r["change_pct"] == pytest.approx(100 * (0.274 / 0.3 - 1))
    # differences -.01 -.02 -.05 -.08 +.03: ranks 1 2 4 5 3, W+ = 3; exact two-sided p = 2 * 5/32
    assert (r["statistic"], r["p"]) == (pytest.approx(3.0), pytest.approx(0.3125))
    # run means .26 and .288: sd (ddof 1) = .028 / sqrt 2; base has one run
    assert r["sd_seeds_a"] == pytest.approx(0.028 / np.sqrt(2)) and np.isnan(r["sd_seeds_b"])
    assert (r["seeds_a"], r["seeds_b"], r["n_pairs"], r["direction"]) == (2, 1, 5, "better")
    c = t.loc[("mean J", "cda", "base")]  # every pair halved: -50%, a CI of one point, all 5 differences < 0
    assert (c["change_pct"], c["ci_low"], c["ci_high"]) == (pytest.approx(-50), pytest.approx(-50), pytest.approx(-50))
    assert c["p"] == pytest.approx(2 / 32)
    v = t.loc[("mean J", "fairgender", "cda")]
    assert v["change_pct"] == pytest.approx(100 * (0.274 / 0.15 - 1)) and v["direction"] == "worse"
    # |δ| is taken per run before the seed mean: the signed mean of fairgender's seeds would be 0
    d = t.loc[("mean |δ|", "fairgender", "base")]
    assert (d["mean_a"], d["mean_b"], d["change_pct"]) == (pytest.approx(1.5), pytest.approx(3.0), pytest.approx(-50))
    assert d["sd_seeds_a"] == pytest.approx(0.0)
    assert t.loc[("mean |δ|", "cda", "base"), "change_pct"] == pytest.approx(-20)
    assert t.loc[("mean |δ|", "fairgender", "cda"), "change_pct"] == pytest.approx(100 * (1.5 / 2.4 - 1))
    # Holm over the family of six: p = .3125 and five of .0625 -> every adjusted p is max(6 x .0625, ...) = .375
    assert t["p_holm"].to_numpy() == pytest.approx([0.375] * 6) and not t["significant"].any()
    m = primary.by_model(long, ["base", "fairgender", "cda"], "pair", 200, 0).set_index(["endpoint", "variant"])
    assert m.loc[("mean J", "fairgender"), "mean"] == pytest.approx(0.274)
    assert m.loc[("mean J", "fairgender"), "sd_seeds"] == pytest.approx(0.028 / np.sqrt(2))


def test_primary_bootstrap_test_and_unpaired_pairs(tmp_path: Path) -> None:
    runs = {**RUNS, "cda-s0": (RUNS["cda-s0"][0][:4] + [np.nan], RUNS["cda-s0"][1])}  # cda did not score pair 5
    long = _primary_tree(tmp_path, runs)
    t = primary.primary_table(long, ["base", "fairgender", "cda"], "base", "fairgender", ["cda"], "bootstrap",
                              "pair", 500, 0, 0.05).set_index(["endpoint", "a", "b"])
    c = t.loc[("mean J", "cda", "base")]
    # four pairs, all halved: every replicate of the mean difference is < 0, so p = 2 (1 + 0) / (1 + 500)
    assert (c["n_pairs"], c["n_unpaired"], c["p"]) == (4, 1, pytest.approx(2 / 501))
    assert c["mean_b"] == pytest.approx(0.25) and c["test"] == "bootstrap"
    assert t.loc[("mean |δ|", "cda", "base"), "n_pairs"] == 5  # δ of pair 5 is there
    cda, base, targets = primary.seed_matrix(long, "cda", "J"), primary.seed_matrix(long, "base", "J"), \
        primary.pair_targets(long)
    with pytest.raises(ValueError, match="neither 'wilcoxon' nor 'bootstrap'"):
        primary.compare(cda, base, targets, "t", "pair", 10, 0)
    with pytest.raises(ValueError, match="primary_unit: 'word' is neither 'target' nor 'pair'"):
        primary.compare(cda, base, targets, "wilcoxon", "word", 10, 0)


# --- the unit of the primary test and CI: 3 target words x 2 pairs, fairgender with 2 seeds, base with one -----

WORDS = ["nurse", "nurse", "doctor", "doctor", "pilot", "pilot"]
UNIT_BASE = [0.20, 0.40, 0.10, 0.30, 0.50, 0.60]
UNIT_MEAN = [0.13, 0.29, 0.22, 0.31, 0.35, 0.55]  # fairgender's seed means
UNIT_RUNS = {"base": (UNIT_BASE, [1.0] * 6), "fairgender-s0": ([x - 0.02 for x in UNIT_MEAN], [1.0] * 6),
             "fairgender-s1": ([x + 0.02 for x in UNIT_MEAN], [1.0] * 6)}


def test_primary_unit_is_the_target_word(tmp_path: Path) -> None:
    long = _primary_tree(tmp_path, UNIT_RUNS, WORDS)

    def row(test: str, unit: str) -> pd.Series:
        t = primary.primary_table(long, ["base", "fairgender"], "base", "fairgender", [], test, unit, 2000, 0, 0.05)
        return t.set_index(["endpoint", "a", "b"]).loc[("mean J", "fairgender", "base")]

    t, p = row("wilcoxon", "target"), row("wilcoxon", "pair")
    # pair differences -.07 -.11 | +.12 +.01 | -.15 -.05; per word -.09, +.065, -.10: ranks 2 1 3, W+ = 1 (doctor),
    # the statistic min(W+, W-) = 1; exact two-sided p = 2 P(W+ <= 1) = 2 x 2/8 (W+ = 0 or 1 of the 8 sign patterns)
    assert (t["statistic"], t["p"]) == (pytest.approx(1.0), pytest.approx(0.5))
    assert (t["unit"], t["n_units"], t["n_targets"], t["n_pairs"]) == ("target", 3, 3, 6)
    # over the six pairs: |d| ranks 3 4 5 1 6 2, W+ = 5 + 1 = 6; 14 of the 64 subsets of 1..6 sum to <= 6: p = 28/64
    assert (p["statistic"], p["p"]) == (pytest.approx(6.0), pytest.approx(0.4375))
    assert (p["unit"], p["n_units"], p["n_targets"]) == ("pair", 6, 3)
    # the estimate itself is of the pair means whatever the unit: 1.85 / 2.1
    assert t["change_pct"] == p["change_pct"] == pytest.approx(100 * (1.85 / 2.1 - 1))
    # brute force: the 27 equally likely draws of 3 words, each bringing its 2 pairs; the exact 2.5% and 97.5%
    # quantiles of their % changes are a word drawn thrice (1/27 each > 2.5%): nurse .42/.6, doctor .53/.4
    sums = {w: (sum(a for a, x in zip(UNIT_MEAN, WORDS) if x == w), sum(b for b, x in zip(UNIT_BASE, WORDS) if x == w))
            for w in ("nurse", "doctor", "pilot")}
    draws = [100 * (sum(sums[w][0] for w in d) / sum(sums[w][1] for w in d) - 1)
             for d in itertools.product(sums, repeat=3)]
    lo, hi = (np.quantile(draws, q, method="inverted_cdf") for q in (0.025, 0.975))
    assert (lo, hi) == (pytest.approx(-30.0), pytest.approx(32.5))
    assert (t["ci_low"], t["ci_high"]) == (pytest.approx(lo), pytest.approx(hi))
    assert p["ci_low"] != pytest.approx(lo)  # single pairs resampled: another interval
    # every cluster replicate is one of the 10 multisets of words; a pair replicate splits a word's two pairs
    ids = pd.Index([f"p{i}" for i in range(6)])
    exact = {round(x, 9) for x in draws}
    for unit, inside in (("target", True), ("pair", False)):
        ma, mb = primary.resampled_means(primary.unit_codes(ids, primary.pair_targets(long), unit),
                                         [np.array(UNIT_MEAN), np.array(UNIT_BASE)], 500, 1)
        assert ({round(x, 9) for x in 100 * (ma / mb - 1)} <= exact) is inside
    with pytest.raises(ValueError, match="pair id 'p3' has no target word"):
        primary.unit_codes(ids, primary.pair_targets(long).where(lambda t: t.index != "p3"), "target")
    # the bootstrap test on words: the mean difference is >= 0 in the draws DDD, DDN x 3, DDP x 3 (word sums of
    # the differences -.18, +.13, -.20), so p -> 2 x 7/27
    assert row("bootstrap", "target")["p"] == pytest.approx(14 / 27, abs=0.05)
    # each model on its own: per-word means .21 .265 .45 (fairgender) and .3 .2 .55 (base): CI = the extreme words
    m = primary.by_model(long, ["base", "fairgender"], "target", 2000, 0).set_index(["endpoint", "variant"])
    assert tuple(m.loc[("mean J", "fairgender"), ["ci_low", "ci_high"]]) == (pytest.approx(0.21), pytest.approx(0.45))
    assert tuple(m.loc[("mean J", "base"), ["ci_low", "ci_high"]]) == (pytest.approx(0.2), pytest.approx(0.55))
    # the table and the statement name the unit
    table = primary.primary_table(long, ["base", "fairgender"], "base", "fairgender", [], "wilcoxon", "target", 2000,
                                  0, 0.05)
    assert list(primary.display(table)["unit (test, CI)"]) == ["3 target words"] * 2
    text = statement.statement(stage_config("report"), table, pd.DataFrame(
        columns=["variant", "benchmark", "subset", "metric", "value"]), pd.DataFrame(), statement.flattening(
        _curves(), 0.25, 0.02))
    assert "Holm p = 1; the unit is the target word (3 target words))" in text  # the headline
    assert "6 test pairs of 3 target words, 2 / 1 seeds; in the test and the CI the unit is the target word" in text


def test_primary_inputs_are_checked(tmp_path: Path) -> None:
    _primary_tree(tmp_path)
    runs = inputs.find_runs(str(tmp_path), "base")
    assert list(runs["run"]) == ["base", "fairgender-s0", "fairgender-s1", "cda-s0"]
    assert list(runs["seed"].astype("object").fillna(-1)) == [-1, 0, 1, 0]
    assert inputs.parse_run("no_knn-s12") == ("no_knn", 12) and inputs.parse_run("base") == ("base", None)
    (tmp_path / "cda-s0" / "metrics.json").write_text(json.dumps({"primary_mean_J": 0.15, "primary_mean_abs_delta": 2.4}))
    assert inputs.load_primary(str(tmp_path), runs)["J"].sum() == pytest.approx(sum(map(sum, [v[0] for v in RUNS.values()])))
    (tmp_path / "cda-s0" / "metrics.json").write_text(json.dumps({"primary_mean_J": 0.3}))  # not the file's mean
    with pytest.raises(ValueError, match=r"cda-s0/metrics.json: primary_mean_J = 0.3 but the mean of primary.csv is 0.15"):
        inputs.load_primary(str(tmp_path), runs)
    path = tmp_path / "cda-s0" / "items" / "primary.csv"
    path.write_text("id,target,J\np0,nurse,0.1\n")
    with pytest.raises(ValueError, match=r"cda-s0/items/primary.csv: column\(s\) \['delta'\] missing"):
        inputs.load_primary(str(tmp_path), runs)
    path.write_text("id,target,J,delta\np0,nurse,0.1,1\np0,nurse,0.2,1\n")
    with pytest.raises(ValueError, match="pair id 'p0' appears twice"):
        inputs.load_primary(str(tmp_path), runs)
    (tmp_path / "cda-s0" / "metrics.json").unlink()
    path.write_text("id,target,J,delta\np0,doctor,0.1,1\n")
    with pytest.raises(ValueError, match=r"pair id 'p0' has target 'nurse' in base/items/primary.csv but 'doctor' "
                                         r"in cda-s0/items/primary.csv"):
        inputs.load_primary(str(tmp_path), runs)
    path.unlink()
    with pytest.raises(FileNotFoundError, match="cda-s0/items/primary.csv: missing; run the evaluate stage"):
        inputs.load_primary(str(tmp_path), runs)


def test_input_keys_are_read_in_one_place(tmp_path: Path) -> None:
    paths = report_fixtures.build(tmp_path, seeds={"fairgender": 1}, n_pairs=10)
    counts = inputs.read_counts(paths["generate_metrics"], paths["causal_metrics"])
    assert set(counts) == set(inputs.INPUT_KEYS)
    assert (counts["grid cells"], counts["test pairs"], counts["train X^C"]) == (1000, 130, 300)
    gen = dict(report_fixtures.GENERATE, pairs_split={"train": 390, "dev": 130})
    Path(paths["generate_metrics"]).write_text(json.dumps(gen))
    with pytest.raises(KeyError, match="generate_metrics.json: key 'pairs_split.test' missing .*'test pairs'.*INPUT_KEYS"):
        inputs.read_counts(paths["generate_metrics"], paths["causal_metrics"])
    fig, data = figures.funnel(counts)
    assert data.set_index("part").loc["X^C (trained on)", "count"] == 300
    assert len(data) == len(inputs.INPUT_KEYS) - 2  # every count a bar but the pair total (a sum) and the AUC


# --- benchmarks grouped by variant ----------------------------------------------------------------------------

def test_benchmarks_by_variant_mean_sd_and_ci() -> None:
    rows = [("fairgender", "fairgender-s0", 60.0, 54.0, 66.0), ("fairgender", "fairgender-s1", 64.0, 58.0, 70.0),
            ("base", "base", 70.0, 64.0, 76.0)]
    summary = pd.DataFrame([{"variant": v, "run": r, "benchmark": "CrowS-Pairs", "subset": "gender", "metric": "score",
                             "value": x, "ci_low": lo, "ci_high": hi} for v, r, x, lo, hi in rows])
    bench = report.by_variant(summary).set_index("variant")
    assert (bench.loc["fairgender", "value"], bench.loc["fairgender", "seeds"]) == (62.0, 2)
    assert bench.loc["fairgender", "sd"] == pytest.approx(4 / np.sqrt(2)) and np.isnan(bench.loc["base", "sd"])
    table = report.paper_table(bench.reset_index(), pd.DataFrame()).set_index("variant")
    assert table.loc["fairgender", "CrowS-Pairs"] == "62.00 ± 2.83 [56.00, 68.00]"
    assert table.loc["base", "CrowS-Pairs"] == "70.00 [64.00, 76.00]" and table.loc["fairgender", "seeds"] == 2


def test_items_are_averaged_over_seeds_before_the_paired_test() -> None:
    frames = [pd.DataFrame({"item_id": [0, 1, 2, 3, 4], "bias_type": "gender", "stereo": s, "diff": 0.0})
              for s in ([0, 1, 1, 0, 1], [0, 0, 1, 0, 1])]
    frames[1] = frames[1].iloc[:4]  # item 4 scored by one seed only: left out
    m = paired.seed_mean(frames, "crows_pairs")
    assert list(m["item_id"]) == [0, 1, 2, 3] and list(m["stereo"]) == [0, 0.5, 1, 0]
    # base 1 1 1 0 against the seed means 0 .5 1 0: differences -1 and -.5; of the 4 sign patterns of the two,
    # two reach |mean| >= .375, so p -> 1/2
    res = paired.crows_paired(np.array([1, 1, 1, 0]), m["stereo"].to_numpy(), n_perm=4000, seed=0)
    assert res["test"] == "paired permutation (seed means)"
    assert (res["base"], res["variant"]) == (75.0, 37.5) and res["p"] == pytest.approx(0.5, abs=0.03)
    # on 0/1 outcomes it is McNemar; halved outcomes take the permutation form, whose null is McNemar's
    b, v = np.r_[np.ones(6), np.zeros(4)], np.zeros(10)  # 6 discordant pairs, one way: exact p = 2 / 2^6
    assert paired.crows_paired(b, v)["test"] == "mcnemar" and paired.crows_paired(b, v)["p"] == pytest.approx(2 / 64)
    assert paired.crows_paired(b / 2, v / 2, n_perm=20000)["p"] == pytest.approx(2 / 64, abs=0.006)


def test_significance_averages_the_seeds_of_a_variant(tmp_path: Path) -> None:
    base = np.r_[np.ones(150), np.zeros(50)]
    s0, s1 = base.copy(), base.copy()
    s0[:50], s1[:50] = 0, 1  # seed 0 flips 50 pairs, seed 1 none: the seed mean is 0.5 on those 50
    _variant(tmp_path, "base", base, 68.0, 75.0, 0.0)
    _variant(tmp_path, "fairgender-s0", s0, 60.0, 50.0, 0.0)
    _variant(tmp_path, "fairgender-s1", s1, 64.0, 75.0, 0.0)
    for f in ("g.json", "c.json"):
        (tmp_path / f).write_text("{}")
    cfg = stage_config("report", evaluate_dir=str(tmp_path), generate_metrics=str(tmp_path / "g.json"),
                       causal_metrics=str(tmp_path / "c.json"), train_dir=str(tmp_path), n_perm=500, n_boot=200)
    sig = report.significance(cfg).set_index("comparison")
    assert set(sig["variant"]) == {"fairgender"}
    crows = sig.loc["crows_pairs/gender"]
    assert crows["test"] == "paired permutation (seed means)" and crows["value_variant"] == pytest.approx(62.5)
    assert crows["p"] < 0.01 and crows["direction"] == "better"
    bench = report.by_variant(report.load_summary(cfg)).set_index(["variant", "metric"])
    assert bench.loc[("fairgender", "SS"), "value"] == 62.0


def test_ablation_table_reads_training_facts(tmp_path: Path) -> None:
    cfg = stage_config("report", **report_fixtures.build(tmp_path, seeds={"fairgender": 2, "no_knn": 1}, n_pairs=20),
                       n_boot=100)
    runs, names = report.runs(cfg), report.variants(cfg)
    long = inputs.load_primary(cfg.evaluate_dir, runs)
    prim = primary.primary_table(long, names, "base", "fairgender", ["cda"], "wilcoxon", "target", 100, 0, 0.05)
    bench = report.by_variant(report.load_summary(cfg))
    (tmp_path / "train" / "no_knn-s0" / "metrics.json").write_text(json.dumps({"pairs": 12, "steps": 9}))
    (tmp_path / "train" / "fairgender-s1" / "metrics.json").write_text(json.dumps({"pairs": 49}))
    table = report.ablation_table(cfg, prim, bench).set_index("variant")
    assert list(table.index) == ["base", "fairgender", "no_knn"]
    assert table.loc["fairgender", "runs"] == "fairgender-s0, fairgender-s1"
    assert table.loc["fairgender", "pairs"] == (300 + 49) / 2 and table.loc["fairgender", "steps"] == 60  # s1: none
    assert table.loc["no_knn", "pairs"] == 12 and pd.isna(table.loc["base", "steps"])
    row = prim.set_index(["endpoint", "a"]).loc[("mean J", "no_knn")]
    assert table.loc["no_knn", "mean J vs base (%)"] == f"{row['change_pct']:+.1f}"
    assert table.loc["base", "loss"] == "the original model"
    (tmp_path / "train" / "no_knn-s0" / "metrics.json").unlink()
    with pytest.raises(FileNotFoundError, match="no_knn-s0/metrics.json: missing; run the train stage"):
        report.ablation_table(cfg, prim, bench)


def test_tradeoff_and_headline(tmp_path: Path) -> None:
    cfg = stage_config("report", **report_fixtures.build(tmp_path, seeds={"fairgender": 2}, n_pairs=20), n_boot=100,
                       n_perm=100)
    runs, names = report.runs(cfg), report.variants(cfg)
    long = inputs.load_primary(cfg.evaluate_dir, runs)
    prim = primary.primary_table(long, names, "base", "fairgender", ["cda"], "wilcoxon", "target", 100, 0, 0.05)
    bench, sig = report.by_variant(report.load_summary(cfg)), report.significance(cfg)
    fig, data = figures.tradeoff(bench, report.glue_table(bench)["mean"])
    ss = bench[(bench["variant"] == "fairgender") & (bench["metric"] == "SS") & (bench["subset"] == "gender")]
    assert data.set_index("variant").loc["fairgender", "SS |SS-50|"] == pytest.approx(abs(ss["value"].iloc[0] - 50))
    flat = statement.flattening(inputs.load_curves(cfg.train_dir, runs, "base"), 0.25, 0.02)
    head = statement.headline(bench, sig, primary.by_model(long, names, "target", 100, 0), prim, flat, "base")
    assert head["fairgender"]["seeds"] == 2 and head["base"]["seeds"] == 1
    assert head["fairgender"]["CrowS-Pairs score"] == pytest.approx(ss.pipe(lambda _: bench[
        (bench["variant"] == "fairgender") & (bench["metric"] == "score") & (bench["subset"] == "gender")
        & (bench["benchmark"] == "CrowS-Pairs")]["value"].iloc[0]))
    vs = head["fairgender"]["primary mean J vs base"]
    assert vs["p_holm"] == pytest.approx(prim.iloc[0]["p_holm"]) and "significant_vs_base" in head["fairgender"]
    assert head["fairgender"]["primary mean J"] == pytest.approx(long[long["variant"] == "fairgender"].groupby("id")[
        "J"].mean().mean())


# --- dose-response and the statement --------------------------------------------------------------------------

def _curves() -> pd.DataFrame:
    steps = [0, 10, 20, 30, 40]
    flat = pd.DataFrame({"run": "fairgender-s0", "variant": "fairgender", "seed": 0, "step": steps,
                         "dev_J": [1.0, 0.5, 0.3, 0.29, 0.285], "dev_ppl": [10, 10, 10, 10, 11.0]})
    falling = [pd.DataFrame({"run": f"cda-s{s}", "variant": "cda", "seed": s, "step": steps,
                             "dev_J": np.array([1.0, 0.8, 0.6, 0.4, 0.2]) + off, "dev_ppl": 10.0})
               for s, off in ((0, 0.1), (1, -0.1))]
    return pd.concat([flat, *falling], ignore_index=True)


def test_flattening_by_hand() -> None:
    f = statement.flattening(_curves(), tail=0.25, tol=0.02).set_index("variant")
    # the last 25% of 0..40 starts at step 30: fairgender .29 -> .285 = 0.5% of 1.0; cda .4 -> .2 = 20%
    assert f.loc["fairgender", "tail_from_step"] == 30
    assert f.loc["fairgender", "tail_drop_share"] == pytest.approx(0.005) and bool(f.loc["fairgender", "flattened"])
    assert f.loc["cda", "tail_drop_share"] == pytest.approx(0.2) and not f.loc["cda", "flattened"]
    assert f.loc["cda", "seeds"] == 2 and f.loc["cda", "dev_J_last"] == pytest.approx(0.2)
    assert f.loc["fairgender", "dev_ppl_change_pct"] == pytest.approx(10.0)


def test_statement_says_a_null_and_a_negative_result(tmp_path: Path) -> None:
    cfg = stage_config("report")
    long = _primary_tree(tmp_path)
    prim = primary.primary_table(long, ["base", "fairgender", "cda"], "base", "fairgender", ["cda"], "wilcoxon",
                                 "pair", 200, 0, 0.05)
    flat = statement.flattening(_curves().replace({"fairgender": "x", "cda": "fairgender"}), 0.25, 0.02)
    text = statement.statement(cfg, prim, pd.DataFrame(columns=["variant", "benchmark", "subset", "metric", "value"]),
                               pd.DataFrame(), flat)
    assert "**Headline.** fairgender did not change the test-pair mean J detectably against the base model " \
           "(-8.7%" in text and ": a null result" in text
    assert "fairgender vs cda, mean J: no difference detected at α = 0.05, a null result; +82.7%" in text
    assert "Goal: mean J at least 50% below base, significantly: not met (-8.7%)" in text
    assert "it fell by 20.0% of its untrained value (threshold 2%): it was still falling" in text
    # a dev J that never left its untrained value: .995 at lowest, 1.0 -> 1.01 over the last quarter
    still = pd.DataFrame({"run": "fairgender-s0", "variant": "fairgender", "seed": 0, "step": [0, 10, 20, 30, 40],
                          "dev_J": [1.0, 1.01, 0.995, 1.0, 1.01], "dev_ppl": 10.0})
    text = statement.statement(cfg, prim, pd.DataFrame(columns=["variant", "benchmark", "subset", "metric", "value"]),
                               pd.DataFrame(), statement.flattening(still, 0.25, 0.02))
    assert "it rose by 1.0% of its untrained value (threshold 2%): it never fell by more than the threshold" in text
    # 30 pairs, each J of fairgender 1.5 x base: significantly higher, a negative result
    worse = {"base": ([0.1 + 0.01 * i for i in range(30)], [1.0] * 30),
             "fairgender-s0": ([1.5 * (0.1 + 0.01 * i) for i in range(30)], [1.0] * 30)}
    long = _primary_tree(tmp_path / "worse", worse)
    prim = primary.primary_table(long, ["base", "fairgender"], "base", "fairgender", ["cda"], "wilcoxon", "pair", 200,
                                 0, 0.05)
    text = statement.statement(cfg, prim, pd.DataFrame(columns=["variant", "benchmark", "subset", "metric", "value"]),
                               pd.DataFrame(), flat.iloc[:0])
    assert "raised the test-pair mean J by 50.0% against the base model" in text and "a negative result" in text
    assert "fairgender vs base, mean J: significantly higher, a negative result; +50.0%" in text


# --- the rendered page --------------------------------------------------------------------------------------

def _text(html: str) -> str:
    """What a browser shows of a page: its text without scripts and styles, images as [image]."""
    from html.parser import HTMLParser

    class Text(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.parts, self.skip = [], 0

        def handle_starttag(self, tag, attrs) -> None:
            self.skip += tag in ("style", "script")
            self.parts.append("[image]" if tag == "img" else "\n" if tag in ("p", "div", "tr", "li", "pre") else "")

        def handle_endtag(self, tag) -> None:
            self.skip -= tag in ("style", "script")

        def handle_data(self, data) -> None:
            self.parts.append("" if self.skip else data)

    parser = Text()
    parser.feed(html)
    return "".join(parser.parts)


def test_injected_parameters_are_merged_into_the_parameters_cell(tmp_path: Path) -> None:
    import nbformat

    from fairgender_utils.stage import render_html

    cells = [nbformat.v4.new_markdown_cell("# T"),
             nbformat.v4.new_code_cell("lr = 1e-05  # learning rate\nvariant = 'fairgender'  # which one (λ)\nflag = True",
                                       metadata={"tags": ["parameters"]}),
             nbformat.v4.new_code_cell('# Parameters\nlr = 1e-05\nvariant = "cda"\nflag = 1\nextra = [1, 2]\n',
                                       metadata={"tags": ["injected-parameters"]}),
             nbformat.v4.new_code_cell("print(lr)")]
    nb = merge_parameters(nbformat.v4.new_notebook(cells=[c.copy() for c in cells]))
    assert [c.source for c in nb.cells[1:]] == [
        "lr = 1e-05  # learning rate\n"
        "variant = \"cda\"  # which one (λ)  (this run; the notebook's default: 'fairgender')\n"
        "flag = 1  # (this run; the notebook's default: True)\n"
        "extra = [1, 2]  # (this run)", "print(lr)"]
    path = tmp_path / "x.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    text = _text(render_html(path).read_text())
    assert text.count("lr = 1e-05") == 1 and text.count("variant =") == 1 and "# Parameters" not in text
    assert nbformat.read(path, as_version=4).cells[2].source.startswith("# Parameters")  # the record is kept


def test_report_notebook_on_a_synthetic_tree_with_seeds(tmp_path: Path) -> None:
    from fairgender_utils.stage import main

    paths = report_fixtures.build(tmp_path / "results")
    out = tmp_path / "report"
    values = {**paths, "n_perm": 200, "n_boot": 200, "out_dir": str(out), "metrics_path": str(out / "metrics.json"),
              "config_path": str(out / "config.json")}
    assert main(["notebooks/05_report.ipynb", "params/report.yaml", str(out),
                 *[x for k, v in values.items() for x in ("-p", k, str(v))]]) == 0
    text = _text((out / "05_report.html").read_text())
    order = [text.index(h) for h in ("Headline.", "Primary endpoint: test pairs", "Dose-response: did training",
                                     "The data: from grid cells", "Benchmarks (gender)", "Ablations")]
    assert order == sorted(order), "the headline comes first, then the primary endpoint, then the rest"
    assert text.count("evaluate_dir =") == 1 and "# Parameters" not in text  # one parameters cell
    assert text.count("[image]") >= 5 and "generate: " not in text  # figures, no dump of metric keys
    prim = pd.read_csv(out / "tables" / "primary.csv").set_index(["endpoint", "a", "b"])
    r = prim.loc[("mean J", "fairgender", "base")]
    assert f"lowered the test-pair mean J by {-r['change_pct']:.1f}% against the base model" in text
    assert r["seeds_a"] == 3 and r["n_pairs"] == 130 and bool(r["significant"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"base", *report_fixtures.SEEDS}
    assert metrics["fairgender"]["seeds"] == 3 and metrics["no_knn"]["seeds"] == 1
    assert metrics["fairgender"]["primary mean J vs cda"]["significant"] is True
    assert isinstance(metrics["fairgender"]["dev_J_flattened"], bool)
    main_table = pd.read_csv(out / "tables" / "main_gender.csv").set_index("variant")
    assert " ± " in main_table.loc["fairgender", "CrowS-Pairs"] and " ± " not in main_table.loc["no_knn", "CrowS-Pairs"]
