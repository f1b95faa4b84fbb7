"""What the run shows, computed from its numbers: whether dev J had flattened (:func:`flattening`), the plain
statement the report opens with (:func:`statement`: the primary endpoint, null and negative results
included, language quality against the goals, the dose-response), and ``metrics.json`` (:func:`headline`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fairgender_utils.report.config import ReportConfig
from fairgender_utils.report.primary import unit_name


FLAT_COLUMNS = ["variant", "seeds", "first_step", "last_step", "tail_from_step", "dev_J_first", "dev_J_last",
                "dev_J_min", "step_of_min", "tail_drop_share", "flattened", "dev_ppl_change_pct"]


def flattening(curves: pd.DataFrame, tail: float, tol: float) -> pd.DataFrame:
    """Per variant, on the mean over its seeds: dev J at the first and last logged step, its lowest value,
    and the drop over the last ``tail`` share of the steps as a share of the untrained dev J; ``flattened``
    when that drop is below ``tol`` (a rise counts as flattened: more of the same training does not help).
    Also the dev perplexity change from the first to the last step, in %."""
    rows = []
    for v, part in curves.groupby("variant", sort=False):
        m = part.groupby("step")[["dev_J", "dev_ppl"]].mean().sort_index()
        steps = m.index.to_numpy()
        last = steps[-1]
        tail_start = steps[steps <= steps[0] + (last - steps[0]) * (1 - tail)].max()
        j0, j_tail, j_end = m["dev_J"].iloc[0], m.loc[tail_start, "dev_J"], m["dev_J"].iloc[-1]
        drop = (j_tail - j_end) / j0 if j0 else float("nan")
        rows.append({"variant": v, "seeds": part["run"].nunique(), "first_step": int(steps[0]),
                     "last_step": int(last), "tail_from_step": int(tail_start), "dev_J_first": j0,
                     "dev_J_last": j_end, "dev_J_min": m["dev_J"].min(), "step_of_min": int(m["dev_J"].idxmin()),
                     "tail_drop_share": drop, "flattened": bool(drop < tol),
                     "dev_ppl_change_pct": 100 * (m["dev_ppl"].iloc[-1] / m["dev_ppl"].iloc[0] - 1)})
    return pd.DataFrame(rows, columns=FLAT_COLUMNS)


def _value(bench: pd.DataFrame, variant: str, benchmark: str, metric: str) -> float:
    hit = bench[(bench["variant"] == variant) & (bench["benchmark"] == benchmark) & (bench["metric"] == metric)
                & bench["subset"].isin(["gender", "test"])]
    return float(hit["value"].iloc[0]) if len(hit) else float("nan")


def _sig(sig: pd.DataFrame, variant: str, comparison: str) -> str:
    hit = sig[(sig["variant"] == variant) & (sig["comparison"] == comparison)] if len(sig) else sig
    if not len(hit) or "significant" not in hit:
        return "not tested"
    r = hit.iloc[0]
    word = {"better": "toward the ideal", "worse": "away from the ideal"}.get(r["direction"], "unchanged")
    return f"{'significant' if r['significant'] else 'not significant'}, Holm p = {r['p_holm_all']:.3g}; {word}"


def _verdict(row: pd.Series, alpha: float) -> str:
    if not row["significant"]:
        return f"no difference detected at α = {alpha:g}, a null result"
    return "significantly lower" if row["direction"] == "better" else "significantly higher, a negative result"


def _unit(row: pd.Series) -> str:
    """What a comparison's test and CI resample: "the unit is the target word (25 target words)"."""
    word = "the target word" if row["unit"] == "target" else "the pair"
    return f"the unit is {word} ({unit_name(row['unit'], row['n_units'])})"


def _comparison(row: pd.Series, alpha: float) -> str:
    """One line on one primary comparison, saying a null or a negative result as such, and its unit."""
    return (f"{row['a']} vs {row['b']}, {row['endpoint']}: {_verdict(row, alpha)}; {row['change_pct']:+.1f}% "
            f"[95% CI {row['ci_low']:+.1f}, {row['ci_high']:+.1f}] ({row['mean_a']:.4g} vs {row['mean_b']:.4g}; "
            f"{row['test']} p = {row['p']:.3g}, Holm p = {row['p_holm']:.3g}; {row['n_pairs']} test pairs of "
            f"{unit_name('target', row['n_targets'])}, {row['seeds_a']} / {row['seeds_b']} seeds; in the test and the CI "
            f"{_unit(row)}).")


def _headline(own: pd.DataFrame, base: str, rivals: list[str], alpha: float) -> str:
    """The first sentence: the method's mean J against the base model and against its first rival present."""
    j = own[own["endpoint"] == "mean J"].set_index("b")
    if base not in j.index:
        return ""
    r = j.loc[base]
    ci = f"95% CI {r['ci_low']:+.1f} to {r['ci_high']:+.1f}%, Holm p = {r['p_holm']:.3g}; {_unit(r)}"
    if not r["significant"]:
        text = (f"{r['a']} did not change the test-pair mean J detectably against the base model "
                f"({r['change_pct']:+.1f}%, {ci}): a null result")
    elif r["direction"] == "better":
        text = f"{r['a']} lowered the test-pair mean J by {-r['change_pct']:.1f}% against the base model ({ci})"
    else:
        text = (f"{r['a']} raised the test-pair mean J by {r['change_pct']:.1f}% against the base model ({ci}): "
                f"a negative result")
    for rival in (x for x in rivals if x in j.index):
        q = j.loc[rival]
        text += (f"; against {rival} its mean J is {_verdict(q, alpha)} ({q['change_pct']:+.1f}%, "
                 f"Holm p = {q['p_holm']:.3g})")
        break
    return f"**Headline.** {text}."


def _primary_lines(cfg: ReportConfig, primary: pd.DataFrame) -> list[str]:
    m, base = cfg.method, cfg.base_variant
    own = primary[primary["a"] == m]
    lines = [_headline(own, base, cfg.rivals, cfg.alpha), "",
             "**Primary endpoint** (test pairs, pre-registered; lower is better):"]
    lines += [f"- {_comparison(r, cfg.alpha)}" for _, r in own.iterrows()]
    j = own[own["endpoint"] == "mean J"].set_index("b")
    if base in j.index:
        r = j.loc[base]
        met = r["significant"] and r["change_pct"] <= -cfg.goal_j_drop_pct
        lines.append(f"- Goal: mean J at least {cfg.goal_j_drop_pct:g}% below base, significantly: "
                     f"{'met' if met else 'not met'} ({r['change_pct']:+.1f}%).")
    for rival in (x for x in cfg.rivals if x in j.index):
        met = bool(j.loc[rival, "significant"]) and j.loc[rival, "direction"] == "better"
        lines.append(f"- Goal: mean J significantly below {rival}'s: {'met' if met else 'not met'}.")
    others = primary[(primary["b"] == base) & (primary["a"] != m) & (primary["endpoint"] == "mean J")]
    if len(others):
        lines.append("- Other models against base, mean J: " + "; ".join(
            f"{r.a} {r.change_pct:+.1f}% (Holm p = {r.p_holm:.3g})" for r in others.itertuples()) + ".")
    return lines


def _quality_lines(cfg: ReportConfig, bench: pd.DataFrame, sig: pd.DataFrame) -> list[str]:
    m, base = cfg.method, cfg.base_variant
    pick = {k: (_value(bench, base, b, metric), _value(bench, m, b, metric))
            for k, b, metric in (("ppl", "Held-out text", "perplexity"), ("lms", "StereoSet", "LMS"),
                                 ("crows", "CrowS-Pairs", "score"))}
    lines = ["", f"**Language quality and benchmarks** ({m}, mean over seeds, against base):"]
    (b, v), goal = pick["ppl"], cfg.goal_ppl_rise_pct
    if np.isfinite(b) and np.isfinite(v):
        rise = 100 * (v / b - 1)
        lines.append(f"- held-out perplexity {b:.1f} → {v:.1f} ({rise:+.1f}%; goal ≤ +{goal:g}%: "
                     f"{'met' if rise <= goal else 'not met'}; {_sig(sig, m, 'perplexity')}).")
    (b, v), goal = pick["lms"], cfg.goal_lms_drop
    if np.isfinite(b) and np.isfinite(v):
        lines.append(f"- StereoSet LMS (gender) {b:.2f} → {v:.2f} ({v - b:+.2f} points; goal a drop "
                     f"≤ {goal:g}: {'met' if b - v <= goal else 'not met'}; {_sig(sig, m, 'stereoset/gender/LMS')}).")
    b, v = pick["crows"]
    if np.isfinite(b) and np.isfinite(v):
        gap_b, gap_v = abs(b - 50), abs(v - 50)
        way = "toward" if gap_v < gap_b else "away from" if gap_v > gap_b else "no nearer to"
        lines.append(f"- CrowS-Pairs gender {b:.2f} → {v:.2f}, {way} the ideal 50 "
                     f"({_sig(sig, m, 'crows_pairs/gender')}).")
    return lines


def _dose_lines(cfg: ReportConfig, flat: pd.DataFrame) -> list[str]:
    m = cfg.method
    lines = ["", "**Dose-response** (dev pairs and neutral dev text, mean over seeds):"]
    f = flat[flat["variant"] == m]
    if not len(f):
        return [*lines, f"- no dev curve of {m}."]
    r = f.iloc[0]
    moved = 1 - r["dev_J_min"] / r["dev_J_first"] if r["dev_J_first"] else float("nan")
    if r["flattened"] and moved < cfg.flat_tol:
        state = ("never fell by more than the threshold below its untrained value: training did not lower it, "
                 "and more steps of the same training are unlikely to")
    elif r["flattened"]:
        state = "had flattened: more steps of the same training are unlikely to change the endpoint"
    else:
        state = "was still falling: more training could lower it further, so this run does not show the method's limit"
    tail = r["tail_drop_share"]
    return [*lines, f"- {m}'s dev J went from {r['dev_J_first']:.4g} (step {r['first_step']}) to "
            f"{r['dev_J_last']:.4g} (step {r['last_step']}; lowest {r['dev_J_min']:.4g} at step "
            f"{r['step_of_min']}); over steps {r['tail_from_step']}–{r['last_step']} it "
            f"{'fell' if tail >= 0 else 'rose'} by {abs(100 * tail):.1f}% of its untrained value (threshold "
            f"{100 * cfg.flat_tol:g}%): it {state}. Dev perplexity {r['dev_ppl_change_pct']:+.1f}%."]


def statement(cfg: ReportConfig, primary: pd.DataFrame, bench: pd.DataFrame, sig: pd.DataFrame,
              flat: pd.DataFrame) -> str:
    """The report's opening paragraph, in markdown, every claim computed from the tables it is given: the
    headline and the primary endpoint, the goals, language quality and CrowS-Pairs, the dose-response."""
    lines = ["## What this run shows", ""]
    if not (primary["a"] == cfg.method).any():
        return "\n".join([*lines, f"No run of the method '{cfg.method}' was evaluated: nothing to state."])
    return "\n".join([*lines, *_primary_lines(cfg, primary), *_quality_lines(cfg, bench, sig),
                      *_dose_lines(cfg, flat)])


def headline(bench: pd.DataFrame, sig: pd.DataFrame, prim_models: pd.DataFrame, primary: pd.DataFrame,
             flat: pd.DataFrame, base: str) -> dict:
    """metrics.json, per variant: seeds, the primary endpoint (and its comparisons), the gender benchmarks
    (seed means), the counts of Holm-significant benchmark differences, whether dev J had flattened."""
    out: dict = {}
    for v, part in bench[bench["subset"].isin(["gender", "test"])].groupby("variant", sort=False):
        values = part[["benchmark", "metric", "value"]].itertuples(index=False)
        out[v] = {"seeds": int(part["seeds"].max()), **{f"{b} {mt}": float(x) for b, mt, x in values}}
    for (v, endpoint), part in prim_models.groupby(["variant", "endpoint"], sort=False):
        out.setdefault(v, {})[f"primary {endpoint}"] = float(part["mean"].iloc[0])
    for r in primary.itertuples(index=False):
        out[r.a][f"primary {r.endpoint} vs {r.b}"] = {
            "change_pct": float(r.change_pct), "ci_low": float(r.ci_low), "ci_high": float(r.ci_high),
            "p": float(r.p), "p_holm": float(r.p_holm), "significant": bool(r.significant), "unit": r.unit}
    if len(sig) and "significant" in sig:
        for v, part in sig.groupby("variant", sort=False):
            out[v]["significant_vs_base"] = int(part["significant"].sum())
            hit = part["significant"].astype(bool)
            for way in ("better", "worse"):
                out[v][f"significant_{way}"] = int((hit & (part["direction"] == way)).sum())
    for r in flat.itertuples(index=False):
        out.setdefault(r.variant, {})["dev_J_flattened"] = bool(r.flattened)
    return out
