"""From journalled responses to the stage outputs: validated pairs, rejects, screen, summaries, provenance."""

from __future__ import annotations

import platform
import re
from collections import Counter
from collections.abc import Sequence
from importlib.metadata import version
from typing import Any

import pandas as pd

from fairgender_utils.generate import counterfactual as cf
from fairgender_utils.generate.run import (Cell, GenerateConfig, cell_fields, clean_response, decoding,
                                         responses, settings_hash, templates)
from fairgender_utils.generate.endpoint_url import public_url
from fairgender_utils.generate.llm_client import Journal
from fairgender_utils.generate.toxicity import screen_pairs, screen_version
from fairgender_utils.stats import wilson


def _key(s_m: str, s_f: str) -> tuple[str, str]:
    norm = lambda s: re.sub(r"\s+", " ", s.strip().lower())  # noqa: E731
    return norm(s_m), norm(s_f)


def assemble(cfg: GenerateConfig, key: str, cells: Sequence[Cell], journal: Journal,
             swap: cf.SwapList) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Validate every cell's two responses (repairing a failed step 2 when enabled) -> (pairs, rejects).

    Pairs carry ``repaired``; rejects carry ``reason`` (a code) and ``detail``. Cells without a journalled
    step 1 are skipped (not generated yet). Duplicates of an earlier valid pair are rejected.
    """
    settings = settings_hash(cfg, key)
    pairs, rejects, seen = [], [], set()
    for cell in cells:
        r1, r2 = responses(journal, settings, cell)
        if r1 is None:
            continue
        first = clean_response(r1["raw"])
        second = clean_response(r2["raw"]) if r2 else ""
        s_m, s_f = (first, second) if cell.start == "m" else (second, first)
        args = (cell.start, cell.male_word, cell.female_word, cell.target, swap, cfg.min_words, cfg.max_words,
                cfg.require_end_mark)
        check, repaired, repair_reason = cf.validate_pair(s_m, s_f, *args), False, ""
        if not check.ok and check.reason.startswith("step2_") and cfg.repair:
            to = "f" if cell.start == "m" else "m"
            fixed = cf.swap_gender(first, to, cell.male_word, cell.female_word, cell.target, swap)
            rs_m, rs_f = (first, fixed) if cell.start == "m" else (fixed, first)
            retry = cf.validate_pair(rs_m, rs_f, *args)
            if retry.ok:
                s_m, s_f, repaired = rs_m, rs_f, True
            else:
                repair_reason = retry.reason
        if (check.ok or repaired) and _key(s_m, s_f) in seen:
            check, repaired = cf.Check(False, "duplicate", "same pair as an earlier cell"), False
        base = {**cell_fields(cell), "generator": key}
        if check.ok or repaired:
            seen.add(_key(s_m, s_f))
            pairs.append({**base, "s_m": s_m, "s_f": s_f, "repaired": repaired,
                          "step2_reason": check.reason if repaired else ""})
        else:
            rejects.append({**base, "reason": check.reason, "detail": check.detail, "s_m": s_m, "s_f": s_f,
                            "step1_raw": r1["raw"], "step2_raw": r2["raw"] if r2 else None,
                            "repair_tried": cfg.repair and check.reason.startswith("step2_"),
                            "repair_reason": repair_reason})
    return pairs, rejects


def screen(pairs: list[dict[str, Any]], threshold: float) -> list[dict[str, Any]]:
    """Add ``toxicity`` (max over the two sentences) and ``toxic`` to every pair."""
    scores, toxic = screen_pairs([p["s_m"] for p in pairs], [p["s_f"] for p in pairs], threshold)
    return [{**p, "toxicity": round(float(s), 6), "toxic": bool(t)} for p, s, t in zip(pairs, scores, toxic,
                                                                                     strict=True)]


PAIR_FIELDS = ("id", "attr_index", "male_word", "female_word", "target", "start", "s_m", "s_f", "repaired",
               "toxicity", "toxic")


def pair_record(p: dict[str, Any]) -> dict[str, Any]:
    """The pairs.jsonl schema, in order."""
    return {k: p[k] for k in PAIR_FIELDS}


def outcome_table(key: str, cells: Sequence[Cell], pairs, rejects) -> pd.DataFrame:
    """One row per generated cell: generator, cell fields, status (valid / repaired / rejected), reason."""
    status = {p["id"]: ("repaired" if p["repaired"] else "valid", p.get("step2_reason", "")) for p in pairs}
    status.update({r["id"]: ("rejected", r["reason"]) for r in rejects})
    rows = [{"generator": key, **cell_fields(c), "status": status[c.id][0], "reason": status[c.id][1]}
            for c in cells if c.id in status]
    return pd.DataFrame(rows, columns=["generator", "id", "attr_index", "male_word", "female_word", "target",
                                       "start", "status", "reason"])


def rates(outcomes: pd.DataFrame) -> pd.DataFrame:
    """Per generator: cells, LLM-valid rate (no repair), rate with repairs, Wilson 95% CIs."""
    rows = []
    for key, g in outcomes.groupby("generator", sort=False):
        n, k_llm = len(g), int((g.status == "valid").sum())
        k_all = k_llm + int((g.status == "repaired").sum())
        lo, hi = wilson(k_llm, n)
        rows.append({"generator": key, "cells": n, "valid_llm": k_llm,
                     "valid_rate_llm": k_llm / n if n else 0.0,
                     "ci_low": lo, "ci_high": hi, "valid_with_repair": k_all,
                     "valid_rate_with_repair": k_all / n if n else 0.0})
    return pd.DataFrame(rows)


def throughput(journal: Journal, key: str, settings: str, kept_ids: set[str] | None = None) -> pd.DataFrame:
    """Per phase: cells, kept pairs and tokens per unit time over the time its runs were in flight.

    A phase's time is the sum over its runs (one per ``generate`` call) of first request start to last
    answer, from the journal timestamps, so a resumed phase does not count the time in between.
    """
    cols = ["phase", "concurrency", "cells", "pairs", "requests", "completion_tokens", "busy_s",
            "cells_per_min", "pairs_per_min", "tokens_per_s", "mean_latency_s"]
    recs = [r for r in journal.records.values()
            if r.get("generator") == key and r.get("settings") == settings]
    if not recs:
        return pd.DataFrame(columns=cols)
    df = pd.DataFrame(recs)
    df["kept"] = df.cell_id.isin(kept_ids or set())
    spans = df.groupby(["phase", "run_id"]).agg(t0=("t_start", "min"), t1=("t_end", "max"))
    out = df.groupby("phase").agg(concurrency=("concurrency", "max"), cells=("cell_id", "nunique"),
                                  requests=("key", "count"), completion_tokens=("completion_tokens", "sum"),
                                  mean_latency_s=("latency_s", "mean"))
    out["pairs"] = df[df.kept].groupby("phase").cell_id.nunique().reindex(out.index, fill_value=0)
    out["busy_s"] = (spans.t1 - spans.t0).groupby("phase").sum()
    out["cells_per_min"] = out.cells / out.busy_s * 60
    out["pairs_per_min"] = out.pairs / out.busy_s * 60
    out["tokens_per_s"] = out.completion_tokens / out.busy_s
    return out.reset_index()[cols]


def reason_counts(rejects: Sequence[dict[str, Any]]) -> dict[str, int]:
    return dict(Counter(r["reason"] for r in rejects).most_common())


def provenance(cfg: GenerateConfig, key: str, cells: Sequence[Cell], journal: Journal,
               pairs: Sequence[dict[str, Any]], rejects: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Everything needed to know how each sentence came about (METHOD.md §3.5)."""
    entry = cfg.generators[key]
    settings = settings_hash(cfg, key)
    per_cell, endpoints = {}, set()
    for c in cells:
        r1, r2 = responses(journal, settings, c)
        endpoints.update(public_url(r.get("base_url") or "") for r in (r1, r2) if r is not None)
        if r1 is not None:
            per_cell[c.id] = {f"step{s}": {k: r[k] for k in ("raw", "finish_reason", "completion_tokens",
                                                             "t_start", "t_end", "attempts", "key")}
                              for s, r in ((1, r1), (2, r2)) if r is not None}
    return {
        "generator": key, "model": entry.model, "api": entry.api, "endpoints": sorted(endpoints - {""}),
        "settings_hash": settings, "templates": templates(cfg, entry.api),
        "decoding": {"step1": decoding(cfg, entry.api, 1), "step2": decoding(cfg, entry.api, 2)},
        "seed": cfg.seed, "n_cells": cfg.n_cells, "repair": cfg.repair,
        "toxicity_screen": {"classifier": screen_version(), "threshold": cfg.toxicity_threshold},
        "software": {"python": platform.python_version(), "transformers": version("transformers"),
                     "openai": version("openai")},
        "counts": {"pairs": len(pairs), "rejects": len(rejects)},
        "responses": per_cell,
    }
