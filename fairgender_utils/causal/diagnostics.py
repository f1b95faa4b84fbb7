"""Diagnostics of stage 02, per split (train, dev): the mean effect with its CI, X^C vs X^NC, survivors per
word, the controls' AUC, the ranking by a, the neighbour counts and the metrics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from fairgender_utils.causal.scores import auc

SPLITS = ("train", "dev")


def mean_ci(x: Sequence[float], level: float = 0.95) -> dict[str, float]:
    """Mean with a t-based confidence interval (NaNs ignored)."""
    v = np.asarray(x, dtype=float)
    v = v[~np.isnan(v)]
    if len(v) < 2:
        m = float(v.mean()) if len(v) else float("nan")
        return {"mean": m, "ci_low": float("nan"), "ci_high": float("nan"), "n": len(v)}
    lo, hi = stats.t.interval(level, len(v) - 1, loc=v.mean(), scale=stats.sem(v))
    return {"mean": float(v.mean()), "ci_low": float(lo), "ci_high": float(hi), "n": len(v)}


def survivors(table: pd.DataFrame, by: str) -> pd.DataFrame:
    """Pairs and aligned survivors per value of ``by`` (e.g. 'male_word', 'target'), with the share kept."""
    g = table.groupby(by)["aligned"].agg(pairs="size", aligned="sum").reset_index()
    g["share"] = g["aligned"] / g["pairs"]
    return g.sort_values(["pairs", by], ascending=[False, True]).reset_index(drop=True)


def compare_split(table: pd.DataFrame, columns: Sequence[str] = ("loglik", "words", "toxicity", "tau"),
                  by: str = "aligned") -> pd.DataFrame:
    """Per split: mean and sd of each column in X^C and X^NC, with a two-sided Mann-Whitney U p-value."""
    rows = []
    for name, part in table.groupby("split", sort=False):
        for col in columns:
            c, nc = part.loc[part[by], col].dropna(), part.loc[~part[by], col].dropna()
            p = float(stats.mannwhitneyu(c, nc).pvalue) if len(c) and len(nc) else float("nan")
            rows.append({"split": name, "measure": col, "mean_XC": c.mean(), "sd_XC": c.std(),
                         "mean_XNC": nc.mean(), "sd_XNC": nc.std(), "n_XC": len(c), "n_XNC": len(nc),
                         "mann_whitney_p": p})
    return pd.DataFrame(rows)


def effect_cis(table: pd.DataFrame) -> pd.DataFrame:
    """Mean tau and signed effect with 95% CIs per split: all pairs, X^C, X^NC, and per rule."""
    rows = []
    for name, part in table.groupby("split", sort=False):
        groups = {"all": part, "X^C": part[part["aligned"]], "X^NC": part[~part["aligned"]]}
        groups.update({f"rule {r}": g for r, g in part.groupby("rule")})
        rows += [{"split": name, "quantity": q, "group": g, **mean_ci(d[q])}
                 for q in ("tau", "effect") for g, d in groups.items()]
    return pd.DataFrame(rows)


def rule_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per rule: pairs, mean tau, mean |omega|, mean naive target-slot JSD (zero for attribute_logodds),
    mean context JSD and mean signed effect."""
    t = table.assign(abs_omega=table["omega"].abs())
    cols = ("tau", "abs_omega", "slot_jsd", "context_jsd", "effect")
    return t.groupby("rule").agg(pairs=("id", "size"), **{c: (c, "mean") for c in cols}).reset_index()


def auc_table(table: pd.DataFrame, controls: pd.DataFrame) -> pd.DataFrame:
    """Per split and overall, real pairs against each kind of control and against all: the ROC AUC of a,
    and ``paired``, the share of controls scored below their own real pair (ties count one half)."""
    real_a = controls["source"].map(table.set_index("id")["alignment"])
    won = (real_a > controls["alignment"]) + 0.5 * (real_a == controls["alignment"])
    rows = []
    for name in (*SPLITS, "train+dev"):
        real = table if name == "train+dev" else table[table["split"] == name]
        in_split = controls["split"].isin(SPLITS if name == "train+dev" else [name])
        for kind in (*dict.fromkeys(controls["kind"]), "all controls"):
            sel = in_split & (controls["kind"] == kind if kind != "all controls" else True)
            ok = len(real) and sel.any()
            rows.append({"split": name, "control": kind, "real": len(real), "controls": int(sel.sum()),
                         "auc": auc(real["alignment"], controls.loc[sel, "alignment"]) if ok else np.nan,
                         "paired": float(won[sel].mean()) if ok else np.nan})
    return pd.DataFrame(rows)


def ranked(table: pd.DataFrame, n: int) -> pd.DataFrame:
    """The ``n`` highest and ``n`` lowest pairs by a (train and dev), with their rank and s^m."""
    t = table.sort_values("alignment", ascending=False).reset_index(drop=True)
    t["rank"] = np.arange(1, len(t) + 1)
    cols = ["rank", "split", "alignment", "align_knn", "align_slor", "aligned", "s_m"]
    return pd.concat([t.head(n), t.tail(n)]).drop_duplicates("rank")[cols]


def neighbour_counts(view: dict[str, Any], k_c: int) -> dict[str, float]:
    """How many aligned pairs have fewer than K_c neighbours, how many none, and the mean count."""
    nb = [len(r["neighbours"]) for r in view["neighbours"] if r["aligned"]]
    return {"aligned_with_fewer_than_k_c_neighbours": sum(n < k_c for n in nb),
            "aligned_without_neighbours": sum(n == 0 for n in nb),
            "neighbours_mean": float(np.mean(nb)) if nb else 0.0}


def stage_metrics(table: pd.DataFrame, controls: pd.DataFrame, views: dict[str, dict[str, Any]],
                  counts: dict[str, int], cfg) -> dict[str, Any]:
    """The numbers written to results/causal/metrics.json (readable keys; scalars first)."""
    scr = views["screened"]
    auc_rows = auc_table(table, controls).set_index(["split", "control"])
    aucs = auc_rows["auc"]
    shuffled = controls.loc[controls["kind"] == "shuffled", "alignment"]
    out: dict[str, Any] = {
        **counts, "toxic": int(table["toxic"].sum()),
        "aligned": len(scr["aligned_rows"]), "unaligned": len(scr["unaligned_rows"]),
        "theta_mode": cfg.theta_mode, "theta_threshold": scr["threshold"],
        "shuffled_controls_rejected": float((shuffled < scr["threshold"]).mean()),
        "replaced_controls_rejected": float((controls.loc[controls["kind"] == "replaced", "alignment"]
                                             < scr["threshold"]).mean()),
        "sim_min_mode": cfg.sim_min_mode, "sim_min_cosine": scr["sim_min"], "k_c": cfg.k_c,
        **neighbour_counts(scr, cfg.k_c),
        "auc_real_vs_shuffled": float(aucs[("train+dev", "shuffled")]),
        "auc_real_vs_replaced": float(aucs[("train+dev", "replaced")]),
        "auc_real_vs_all_controls": float(aucs[("train+dev", "all controls")]),
        "auc": {s: {k: float(v) for k, v in aucs[s].items()} for s in (*SPLITS, "train+dev")},
        "paired_share_below_own_pair": {s: {k: float(v) for k, v in auc_rows["paired"][s].items()}
                                        for s in (*SPLITS, "train+dev")},
    }
    if "unscreened" in views:
        out["aligned_unscreened"] = len(views["unscreened"]["aligned_rows"])
        out["unaligned_unscreened"] = len(views["unscreened"]["unaligned_rows"])
    out["per_split"] = {}
    for name in SPLITS:
        part = table[table["split"] == name]
        out["per_split"][name] = {
            "pairs": len(part), "passing_theta": int(part["aligned"].sum()),
            "alignment_min": float(part["alignment"].min()) if len(part) else float("nan"),
            "alignment_max": float(part["alignment"].max()) if len(part) else float("nan"),
            "rules": {k: int(v) for k, v in part["rule"].value_counts().items()},
            "tau": mean_ci(part["tau"]), "effect": mean_ci(part["effect"]),
            "tau_passing_theta": mean_ci(part.loc[part["aligned"], "tau"])}
    return out
