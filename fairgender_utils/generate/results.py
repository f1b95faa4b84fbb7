"""From journalled responses to the stage outputs: validated pairs with their split, rejects, screen,
summaries that count LLM-written and swapped pairs apart, provenance."""

from __future__ import annotations

import platform
import re
from collections import Counter
from collections.abc import Sequence
from importlib.metadata import version
from typing import Any

import pandas as pd

from fairgender_utils.generate import counterfactual as cf
from fairgender_utils.generate.endpoint_url import public_url
from fairgender_utils.generate.llm_client import Journal
from fairgender_utils.generate.run import (Cell, GenerateConfig, cell_fields, decoding, journal_ask, resolve_cell,
                                          settings_hash, templates)
from fairgender_utils.generate.toxicity import screen_pairs, screen_version
from fairgender_utils.stats import wilson

STATUSES = ("llm", "swap", "rejected")  # a pair written by the LLM in both steps, a swapped pair, a reject


def _key(s_m: str, s_f: str) -> tuple[str, str]:
    norm = lambda s: re.sub(r"\s+", " ", s.strip().lower())  # noqa: E731
    return norm(s_m), norm(s_f)


def assemble(cfg: GenerateConfig, key: str, cells: Sequence[Cell], journal: Journal, swap: cf.SwapList,
             splits: dict[str, str] | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Replay every cell from the journal -> (pairs, rejects), in cell order.

    Pairs carry ``step2`` (``llm`` or ``swap``), the word forms used (``target`` is the target's form as
    written, ``target_word`` the list entry, ``form_m`` / ``form_f`` the attribute forms) and ``split``
    (of ``target_word`` in ``splits``; empty without). Rejects carry ``reason`` and ``detail``. Cells not
    fully journalled are skipped; a duplicate of an earlier pair is rejected.
    """
    settings, api = settings_hash(cfg, key), cfg.generators[key].api
    pairs, rejects, seen = [], [], set()
    for cell in cells:
        o = resolve_cell(cell, cfg, api, swap, journal_ask(journal), settings)
        if o.status == "incomplete":
            continue
        base = {**cell_fields(cell), "generator": key, "step1_tries": o.step1_tries, "step2_tries": o.step2_tries,
                "keys": o.keys}
        if o.status != "rejected" and _key(o.s_m, o.s_f) in seen:
            o.status, o.reason, o.detail = "rejected", "duplicate", "same pair as an earlier cell"
        if o.status == "rejected":
            raws = [journal.get(k)["raw"] for k in o.keys]  # type: ignore[index]
            rejects.append({**base, "reason": o.reason, "detail": o.detail, "s_m": o.s_m, "s_f": o.s_f,
                            "raw": raws, "step2_reason": o.step2_reason})
            continue
        seen.add(_key(o.s_m, o.s_f))
        form_m, form_f, form_t = o.forms
        step2 = [journal.get(k) for k in o.keys if k.split(":")[2] == "step2"]
        base["swaps"] = len(step2[-1]["mapping"]) if step2 else 0  # gendered words step 2 had to swap
        pairs.append({**base, "target": form_t, "target_word": cell.target, "form_m": form_m, "form_f": form_f,
                      "s_m": o.s_m, "s_f": o.s_f, "step2": o.status, "step2_reason": o.step2_reason,
                      "split": (splits or {}).get(cell.target, "")})
    return pairs, rejects


def screen(pairs: list[dict[str, Any]], threshold: float) -> list[dict[str, Any]]:
    """Add ``toxicity`` (max over the two sentences) and ``toxic`` to every pair."""
    scores, toxic = screen_pairs([p["s_m"] for p in pairs], [p["s_f"] for p in pairs], threshold)
    return [{**p, "toxicity": round(float(s), 6), "toxic": bool(t)} for p, s, t in zip(pairs, scores, toxic,
                                                                                     strict=True)]


PAIR_FIELDS = ("id", "attr_index", "male_word", "female_word", "target", "target_word", "form_m", "form_f",
               "start", "s_m", "s_f", "step2", "split", "toxicity", "toxic")


def pair_record(p: dict[str, Any]) -> dict[str, Any]:
    """The pairs.jsonl schema, in order."""
    return {k: p[k] for k in PAIR_FIELDS}


def outcome_table(key: str, cells: Sequence[Cell], pairs, rejects) -> pd.DataFrame:
    """One row per generated cell: generator, cell fields, status (llm / swap / rejected), reason (for a
    swapped pair: why the LLM rewrite failed), candidates used, split."""
    rows = {p["id"]: (p["step2"], p["step2_reason"], p["split"], p["step1_tries"], p["step2_tries"])
            for p in pairs}
    rows.update({r["id"]: ("rejected", r["reason"], "", r["step1_tries"], r["step2_tries"]) for r in rejects})
    cols = ["status", "reason", "split", "step1_tries", "step2_tries"]
    data = [{"generator": key, **cell_fields(c), **dict(zip(cols, rows[c.id], strict=True))}
            for c in cells if c.id in rows]
    return pd.DataFrame(data, columns=["generator", "id", "attr_index", "male_word", "female_word", "target",
                                       "start", *cols])


def rates(outcomes: pd.DataFrame) -> pd.DataFrame:
    """Per generator: cells, pairs written by the LLM in both steps and all valid pairs (with the swap
    fallback), their rates and Wilson 95% CIs."""
    rows = []
    for key, g in outcomes.groupby("generator", sort=False):
        n, k_llm = len(g), int((g.status == "llm").sum())
        k_all = k_llm + int((g.status == "swap").sum())
        lo, hi = wilson(k_llm, n)
        lo_all, hi_all = wilson(k_all, n)
        rows.append({"generator": key, "cells": n, "pairs_llm": k_llm, "valid_rate_llm": k_llm / n if n else 0.0,
                     "ci_low": lo, "ci_high": hi, "pairs": k_all, "valid_rate": k_all / n if n else 0.0,
                     "ci_low_all": lo_all, "ci_high_all": hi_all})
    return pd.DataFrame(rows)


def split_table(pairs: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Per split: pairs (LLM-written and swapped apart) and distinct target words."""
    df = pd.DataFrame(pairs, columns=["split", "step2", "target_word"])
    out = df.groupby("split").agg(pairs=("step2", "size"), pairs_llm=("step2", lambda s: int((s == "llm").sum())),
                                  pairs_swap=("step2", lambda s: int((s == "swap").sum())),
                                  target_words=("target_word", "nunique"))
    return out.reindex([s for s in ("train", "dev", "test") if s in out.index]).reset_index()


def throughput(journal: Journal, key: str, settings: str, kept_ids: set[str] | None = None) -> pd.DataFrame:
    """Per phase: cells, kept pairs and tokens per unit time over the time its runs were in flight.

    A phase's time is the sum over its runs (one per ``generate`` call) of first request start to last
    answer, from the journal timestamps, so a resumed phase does not count the time in between.
    """
    cols = ["phase", "concurrency", "cells", "pairs", "requests", "completion_tokens", "busy_s",
            "cells_per_min", "pairs_per_min", "tokens_per_s", "tokens_per_pair", "mean_latency_s"]
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
    out["tokens_per_pair"] = out.completion_tokens / out.pairs.where(out.pairs > 0)
    return out.reset_index()[cols]


def reason_counts(rejects: Sequence[dict[str, Any]]) -> dict[str, int]:
    return dict(Counter(r["reason"] for r in rejects).most_common())


def provenance(cfg: GenerateConfig, key: str, journal: Journal, pairs: Sequence[dict[str, Any]],
               rejects: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Everything needed to know how each sentence came about (METHOD.md §3.6): per cell, every
    request it made (candidates that failed too) with its prompt hash key, pre-fill, seed and response."""
    entry = cfg.generators[key]
    per_cell, endpoints = {}, set()
    fields = ("raw", "prefill", "request", "finish_reason", "completion_tokens", "t_start", "t_end", "attempts")
    for item in [*pairs, *rejects]:
        recs = [journal.get(k) for k in item["keys"]]
        endpoints.update(public_url(r.get("base_url") or "") for r in recs if r)
        per_cell[item["id"]] = [{"key": r["key"], "step": r["step"], **{f: r.get(f) for f in fields}}
                                for r in recs if r]
    return {
        "generator": key, "model": entry.model, "api": entry.api, "endpoints": sorted(endpoints - {""}),
        "settings_hash": settings_hash(cfg, key), "templates": templates(cfg, entry.api),
        "decoding": {"step1": decoding(cfg, entry.api, 1), "step2": decoding(cfg, entry.api, 2)},
        "levers": {k: getattr(cfg, k) for k in ("candidates", "step2_candidates", "fewshot_k_step1",
                                                "fewshot_k_step2", "fewshot_rotate", "step1_prefill",
                                                "step2_prefill", "inflect", "stream", "swap_fallback")},
        "seed": cfg.seed, "n_cells": cfg.n_cells, "word_curation": cfg.word_curation,
        "split": {"shares": cfg.split_shares, "seed": cfg.split_seed, "together": cfg.split_together},
        "toxicity_screen": {"classifier": screen_version(), "threshold": cfg.toxicity_threshold},
        "software": {"python": platform.python_version(), "transformers": version("transformers"),
                     "openai": version("openai")},
        "counts": {"pairs": len(pairs), "rejects": len(rejects)},
        "responses": per_cell,
    }
