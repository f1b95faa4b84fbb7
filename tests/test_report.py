"""Report stage: side-by-side tables and Holm-corrected significance marks, on synthetic evaluate outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fairgender_utils.report import tables as report
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


def test_tradeoff_and_headline(cfg: report.ReportConfig) -> None:
    summary = report.load_summary(cfg)
    fig, data = report.tradeoff(summary)
    assert data.set_index("variant").loc["debiased", "SS |SS-50|"] == pytest.approx(5.0)
    head = report.headline(summary, report.significance(cfg))
    assert head["debiased"]["CrowS-Pairs score"] == 50.0 and head["debiased"]["significant_vs_base"] >= 1
    assert head["debiased"]["significant_better"] >= 1 and head["biased"]["significant_worse"] >= 1


def test_ablation_table_reads_training_facts(cfg: report.ReportConfig) -> None:
    import json

    with pytest.raises(FileNotFoundError, match="biased/metrics.json: missing"):
        report.ablation_table(cfg)
    for v, pairs in (("debiased", 49), ("same", 12), ("biased", 3)):
        (Path(cfg.train_dir) / v / "metrics.json").write_text(json.dumps(
            {"pairs": pairs, "unscorable_pairs": 0, "steps": 9, "lm_loss_start": 4.9, "lm_loss_end": 3.4,
             "bias_loss_start": 0.2, "bias_loss_end": 0.8}))
    table = report.ablation_table(cfg)
    assert list(table.index) == ["base", "biased", "debiased", "same"]
    assert table.loc["debiased", "pairs"] == 49 and table.loc["same", "pairs"] == 12
    assert pd.isna(table.loc["base", "steps"]) and table.loc["base", "loss"] == "the original model"
