"""Statistics: effect size, permutation p (exact, sampled), Wilson, McNemar, Holm, compare_to_base."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from fairgender_utils import stats
from fairgender_utils.report import paired


def test_effect_size_by_hand():
    # s_X = [1, 2], s_Y = [0, 1]: means 1.5 and 0.5; s over X u Y = [1, 2, 0, 1], mean 1, var (0+1+1+0)/3
    d = stats.effect_size(np.array([1.0, 2.0]), np.array([0.0, 1.0]))
    assert d == pytest.approx(1 / math.sqrt(2 / 3))
    assert math.isnan(stats.effect_size(np.ones(2), np.ones(2)))  # no spread: undefined, not inf


def test_exact_permutation_p_by_hand():
    # X = {3, 2}: T = 5. Partitions of {3, 2, 1, 0} into 2 + 2: sums 5 4 3 3 2 1 -> one is >= 5
    p, exact, n = stats.permutation_p(np.array([3.0, 2.0, 1.0, 0.0]), 2)
    assert (p, exact, n) == (pytest.approx(1 / 6), True, 6)
    # X = {2, 1}: T = 3; the sums 5 4 3 3 (of 6) are >= 3 (ties count: the observed split is one of them)
    assert stats.permutation_p(np.array([2.0, 1.0, 3.0, 0.0]), 2)[0] == pytest.approx(4 / 6)


def test_sampled_permutation_p_matches_exact_and_is_seeded():
    rng = np.random.default_rng(1)
    s = rng.normal(size=12) + np.r_[np.full(6, 0.4), np.zeros(6)]
    exact, is_exact, n_exact = stats.permutation_p(s, 6)  # C(12, 6) = 924 <= 100,000
    assert is_exact and n_exact == 924
    sampled, is_exact, n = stats.permutation_p(s, 6, n_samples=20_000, exact_max=100, seed=3)
    assert not is_exact and n == 20_000
    assert sampled == pytest.approx(exact, abs=0.015)
    assert stats.permutation_p(s, 6, n_samples=20_000, exact_max=100, seed=3)[0] == sampled  # seeded
    # the most extreme split: exact p = 1/924, sampled p = (1 + hits) / (1 + n) is never 0
    top = np.sort(s)[::-1]
    assert stats.permutation_p(top, 6)[0] == pytest.approx(1 / 924)
    p_top = stats.permutation_p(top, 6, n_samples=2000, exact_max=100, seed=0)[0]
    assert 1 / 2001 <= p_top < 0.01


def test_wilson_by_hand():
    lo, hi = stats.wilson(5, 10)
    z = 1.959963984540054  # p = 0.5, n = 10: centre 0.5, half-width z sqrt(p(1-p)/n + z^2/4n^2) / (1 + z^2/n)
    half = z * math.sqrt(0.025 + z * z / 400) / (1 + z * z / 10)
    assert (lo, hi) == (pytest.approx(0.5 - half), pytest.approx(0.5 + half))
    assert all(math.isnan(v) for v in stats.wilson(0, 0))
    assert stats.wilson(10, 10) == (pytest.approx(0.7224672001371107), 1.0)  # holds k/n: 1.0, not 1 - 1e-16
    assert stats.wilson(0, 10)[0] == 0.0


def test_mcnemar_exact_by_hand():
    base = np.array([1, 1, 1, 1, 0, 0], bool)
    variant = np.array([0, 0, 0, 1, 0, 0], bool)  # 3 pairs flip away from the stereotype, none towards it
    res = stats.mcnemar_test(base, variant)
    assert (res["n_base_only"], res["n_variant_only"]) == (3, 0)
    assert res["p"] == pytest.approx(2 * 0.5 ** 3)  # two-sided exact binomial, 3 of 3 discordant one way
    assert res["base"] == pytest.approx(400 / 6) and res["variant"] == pytest.approx(100 / 6)


def test_holm_by_hand():
    reject, adjusted = stats.holm([0.01, 0.04, 0.03], alpha=0.05)
    # sorted 0.01, 0.03, 0.04 -> 3*0.01, max(.., 2*0.03), max(.., 1*0.04)
    assert adjusted == pytest.approx([0.03, 0.06, 0.06])
    assert list(reject) == [True, False, False]


def test_bootstrap_ci_seeded_and_sensible():
    x = np.arange(100, dtype=float)
    ci = stats.bootstrap_ci(lambda i: x[i].mean(), (100,), n_boot=500, seed=0)
    assert ci == stats.bootstrap_ci(lambda i: x[i].mean(), (100,), n_boot=500, seed=0)
    assert ci[0] < 49.5 < ci[1] and ci[1] - ci[0] < 20


def _items(folder, crows_stereo, ss_stereo, seat_shift):
    folder.mkdir(parents=True)
    n = len(crows_stereo)
    pd.DataFrame({"item_id": range(n), "bias_type": ["gender"] * (n - 2) + ["race"] * 2,
                  "stereo": crows_stereo}).to_csv(folder / "crows_pairs.csv", index=False)
    pd.DataFrame({"item_id": range(len(ss_stereo)), "bias_type": "gender", "target": "t",
                  "stereo": ss_stereo, "related": 2}).to_csv(folder / "stereoset.csv", index=False)
    s = np.r_[np.linspace(0.5, 1.5, 8), np.linspace(-1.5, -0.5, 8)] * seat_shift
    pd.DataFrame({"test": "w6", "set": ["X"] * 8 + ["Y"] * 8, "index": list(range(8)) * 2, "text": "x",
                  "s": s}).to_csv(folder / "seat.csv", index=False)


def test_compare_to_base(tmp_path):
    _items(tmp_path / "base", [1, 1, 1, 1, 0, 1, 1], [1, 1, 0, 1], 1.0)
    _items(tmp_path / "var", [0, 0, 0, 1, 0, 1, 1, 1], [1, 1, 0, 1], 1.0)  # one extra item: unpaired
    df = paired.compare_to_base(tmp_path / "base", tmp_path / "var", n_perm=2000, n_boot=200)
    df = df.set_index("comparison")
    # StereoSet has only gender items: no "all" rows for it; CrowS-Pairs has race too
    assert list(df.index) == ["crows_pairs/gender", "crows_pairs/all", "stereoset/gender/SS",
                              "stereoset/gender/LMS", "stereoset/gender/ICAT", "seat/mean |d|", "seat/w6"]
    g = df.loc["crows_pairs/gender"]
    assert (g["n"], g["n_base_only"], g["n_variant_only"], g["n_unpaired"]) == (5, 3, 0, 1)
    assert g["p"] == pytest.approx(0.25)
    # 80% -> 20% stereotypical: as far from 50 as before, so neither better nor worse
    assert (g["base"], g["variant"], g["direction"]) == (80.0, 20.0, "same")
    assert df.loc["stereoset/gender/SS", "p"] == pytest.approx(1.0)  # identical outcomes
    assert (df.loc["stereoset/gender/LMS", "statistic"], df.loc["stereoset/gender/LMS", "p"]) == (0.0, 1.0)
    seat_row = df.loc["seat/w6"]
    assert seat_row["statistic"] == pytest.approx(0.0) and seat_row["p"] == pytest.approx(1.0)
    _, expected = stats.holm(df["p"].to_numpy())
    assert df["p_holm"].to_numpy() == pytest.approx(expected)


def test_two_sided_bootstrap_p_by_hand():
    # 1 replicate <= 0, 3 >= 0: p = 2 (1 + 1) / (1 + 4)
    assert paired.two_sided_p(np.array([-1.0, 1.0, 2.0, 3.0])) == pytest.approx(0.8)
    assert paired.two_sided_p(np.zeros(10)) == 1.0


def _ss_items(stereo_b, stereo_v, related_b, related_v, targets):
    return pd.DataFrame({"target": targets, "stereo_b": stereo_b, "stereo_v": stereo_v,
                         "related_b": related_b, "related_v": related_v})


def test_stereoset_paired_per_term_ss_by_hand():
    # term A: base [1, 1], variant [1, 0]; term B: base [1, 0], variant [0, 1]
    # per-term SS: base (100 + 50) / 2 = 75, variant (50 + 50) / 2 = 50 (the pooled share would be 75 vs 50
    # too, but per term is what the table shows). |50 - 50| - |75 - 50| = -25: toward 50, "better".
    m = _ss_items([1, 1, 1, 0], [1, 0, 0, 1], [2, 2, 2, 2], [2, 2, 2, 2], ["A", "A", "B", "B"])
    ss, lms, icat = paired.stereoset_paired(m, n_perm=400, n_boot=200, seed=0)
    assert (ss["base"], ss["variant"], ss["statistic"], ss["direction"]) == (75.0, 50.0, -25.0, "better")
    # every one of the 8 swaps of the 3 discordant items gives |statistic| = 25 (enumerated by hand): p = 1
    assert ss["p"] == 1.0
    assert (lms["base"], lms["variant"], lms["p"], lms["direction"]) == (100.0, 100.0, 1.0, "same")
    # ICAT = LMS min(SS, 100 - SS) / 50: base 100 * 25 / 50 = 50, variant 100
    assert (icat["base"], icat["variant"], icat["statistic"], icat["direction"]) == (50.0, 100.0, 50.0, "better")


def test_stereoset_paired_detects_clear_changes():
    n = 40
    terms = ["A"] * 20 + ["B"] * 20
    m = _ss_items([1] * n, [1, 0] * 20, [2] * n, [0] * n, terms)
    ss, lms, icat = paired.stereoset_paired(m, n_perm=2000, n_boot=999, seed=1)
    assert ss["statistic"] == -50.0 and ss["p"] < 0.01 and ss["direction"] == "better"
    # LMS 100 -> 0 in every bootstrap replicate: no replicate >= 0, p = 2 / (1 + 999)
    assert lms["statistic"] == -100.0 and lms["p"] == pytest.approx(2 / 1000) and lms["direction"] == "worse"
    assert icat["statistic"] == 0.0  # 100 * 0 / 50 = 0 before, 0 * 50 / 50 = 0 after


def test_seat_mean_abs_d_permutation():
    s = np.r_[np.linspace(0, 2, 20), np.linspace(-2, 0, 20)]
    rows = []
    for test, shrink in (("t1", 0.05), ("t2", 1.0)):
        for i, v in enumerate(s):
            rows.append({"test": test, "set": "X" if i < 20 else "Y", "s_b": v,
                         "s_v": v * shrink + (0.1 if i % 2 else -0.1) * (shrink < 1)})
    m = pd.DataFrame(rows)
    res = paired.seat_mean_abs_d_permutation(m, n_perm=2000, seed=0)
    d = stats.effect_size(s[:20], s[20:])
    assert res["base"] == pytest.approx(abs(d))  # both tests have the same base d
    assert res["variant"] < res["base"] and res["direction"] == "better" and res["p"] < 0.01
    same = paired.seat_mean_abs_d_permutation(m.assign(s_v=m["s_b"]), n_perm=500)
    assert (same["statistic"], same["p"], same["direction"]) == (0.0, 1.0, "same")


def test_perplexity_paired_by_hand():
    m = pd.DataFrame({"nll_b": [2.0, 4.0], "n_tokens_b": [1, 1], "nll_v": [1.0, 1.0], "n_tokens_v": [1, 1]})
    res = paired.perplexity_paired(m, n_boot=999, seed=0)
    assert res["base"] == pytest.approx(math.exp(3)) and res["variant"] == pytest.approx(math.e)
    # log ppl falls by 2; every replicate falls (each sentence's NLL falls): p = 2 / (1 + 999)
    assert res["statistic"] == -2.0 and res["direction"] == "better" and res["p"] == pytest.approx(0.002)


def test_seat_paired_permutation_detects_a_change():
    s = np.r_[np.linspace(0, 2, 20), np.linspace(-2, 0, 20)]
    base = pd.DataFrame({"set": ["X"] * 20 + ["Y"] * 20, "s": s})
    variant = base.assign(s=base["s"] * 0.05 + np.tile([0.1, -0.1], 20))  # much smaller |d|
    res = stats.seat_paired_permutation(base, variant, n_perm=2000, seed=0)
    assert res["variant"] < res["base"] and res["statistic"] < 0
    assert res["p"] < 0.01
