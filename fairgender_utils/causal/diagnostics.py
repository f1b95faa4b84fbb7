"""Diagnostics of stage 02: the mean effect with its CI, X^C vs X^NC, survivors per word, metrics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats


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
    """Mean and sd of each column in X^C and X^NC, with a two-sided Mann-Whitney U p-value."""
    rows = []
    for col in columns:
        c, nc = table.loc[table[by], col].dropna(), table.loc[~table[by], col].dropna()
        p = float(stats.mannwhitneyu(c, nc).pvalue) if len(c) and len(nc) else float("nan")
        rows.append({"measure": col, "mean_XC": c.mean(), "sd_XC": c.std(), "mean_XNC": nc.mean(),
                     "sd_XNC": nc.std(), "n_XC": len(c), "n_XNC": len(nc), "mann_whitney_p": p})
    return pd.DataFrame(rows)


def stage_metrics(table: pd.DataFrame, views: dict[str, dict[str, Any]], n_pairs: int,
                  unscorable: dict[str, str]) -> dict[str, Any]:
    """The numbers written to results/causal/metrics.json."""
    scr = views["screened"]
    nb = [len(r["neighbours"]) for r in scr["neighbours"] if r["aligned"]]
    out: dict[str, Any] = {
        "pairs": n_pairs, "unscorable": len(unscorable), "toxic": int(table["toxic"].sum()),
        "pool": len(scr["aligned_rows"]) + len(scr["unaligned_rows"]),
        "aligned": len(scr["aligned_rows"]), "unaligned": len(scr["unaligned_rows"]),
        "theta_threshold": scr["threshold"], "alignment_min": float(table["alignment"].min()),
        "alignment_max": float(table["alignment"].max()), "alignment_mean": float(table["alignment"].mean()),
        "rules": {k: int(v) for k, v in table["rule"].value_counts().items()},
        "tau": mean_ci(table["tau"]), "effect": mean_ci(table["effect"]),
        "tau_aligned": mean_ci(table.loc[table["aligned"], "tau"]),
        "neighbours_mean": float(np.mean(nb)) if nb else 0.0,
        "aligned_without_neighbours": sum(n == 0 for n in nb),
    }
    if "unscreened" in views:
        out["aligned_unscreened"] = len(views["unscreened"]["aligned_rows"])
        out["unaligned_unscreened"] = len(views["unscreened"]["unaligned_rows"])
    return out


def effect_cis(table: pd.DataFrame) -> pd.DataFrame:
    """Mean tau and signed effect with 95% CIs: all pairs, X^C, X^NC, and per rule."""
    groups = {"all": table, "X^C": table[table["aligned"]], "X^NC": table[~table["aligned"]]}
    groups.update({f"rule {r}": g for r, g in table.groupby("rule")})
    return pd.DataFrame([{"quantity": q, "group": name, **mean_ci(g[q])}
                         for q in ("tau", "effect") for name, g in groups.items()])


def rule_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per rule: pairs, mean tau, mean naive target-slot JSD (zero for attribute_logodds), mean context
    JSD and mean signed effect."""
    agg = {"pairs": ("id", "size"), **{c: (c, "mean") for c in ("tau", "slot_jsd", "context_jsd", "effect")}}
    return table.groupby("rule").agg(**agg).reset_index()
