"""The yield levers measured one by one on the first cells: the table the generate notebook shows.

Each row adds one lever to the row above it, from the setup of earlier runs (the first five examples in a
fixed order, no pre-fill, exact word forms only, one candidate, replies read to ``max_tokens`` because the
server ignores ``stop``) to the params file's setting. Every row runs the generator of the params file on
the same first ``--cells`` cells at the concurrency of earlier runs (16; replies that are read to the end
take too long at a higher one); its answers go to a journal of their own (``--journal``), so rerunning
the command replays it and rewrites the same table. A row that changes only validation asks nothing new.

    python -m fairgender_utils.generate.levers   # writes levers_path of the params
"""

from __future__ import annotations

import argparse
import contextlib
import time
from typing import Any

import pandas as pd

from fairgender_utils.config import load
from fairgender_utils.generate.config import GenerateConfig
from fairgender_utils.generate.llm_client import Journal
from fairgender_utils.generate.run import (generate, journal_ask, missing, open_endpoint, resolve_cell,
                                          sample_cells, settings_hash, swap_list)
from fairgender_utils.loaders import load_gender_words
from fairgender_utils.paths import repo_path

BASELINE = {"fewshot_rotate": False, "fewshot_k_step1": 5, "fewshot_k_step2": 4, "step1_prefill": False, "step2_prefill": False,
            "inflect": False, "candidates": 1, "step2_candidates": 1, "stream": False,
            "max_tokens_step1": 28, "max_tokens_step2": 36, "concurrency": 16}
STEPS = (("earlier setup (fixed 5 examples, exact forms, 1 candidate, full max_tokens)", {}),
         ("+ stop at the first newline (stream, close)", {"stream": True, "max_tokens_step1": None,
                                                          "max_tokens_step2": None}),
         ("+ rotating few-shot examples", {"fewshot_rotate": True, "fewshot_k_step1": None,
                                            "fewshot_k_step2": None}),
         ("+ inflected forms accepted", {"inflect": True}),
         ("+ step-1 pre-fill (attribute word)", {"step1_prefill": True}),
         ("+ step-2 pre-fill (up to the first swap)", {"step2_prefill": True}),
         ("+ step-1 candidates", {"candidates": None}),
         ("+ step-2 candidates (= params)", {"step2_candidates": None}))


def rows(cfg: GenerateConfig) -> list[tuple[str, GenerateConfig]]:
    """The cumulative lever rows; ``None`` in a step means: the params file's value."""
    out, current = [], dict(BASELINE)
    for name, change in STEPS:
        current.update({k: getattr(cfg, k) if v is None else v for k, v in change.items()})
        label = name if not any(v is None for v in change.values()) else (
            name + " (" + ", ".join(f"{k}={getattr(cfg, k)}" for k, v in change.items() if v is None) + ")")
        out.append((label, cfg.model_copy(update=dict(current))))
    return out


def measure(cfg: GenerateConfig, key: str, cells, journal: Journal, words, phase: str) -> dict[str, Any]:
    """One row: valid pairs, LLM-written share, requests and completion tokens per valid pair, and the wall
    time of the requests this row added (``phase``; the first two rows ask every cell)."""
    swap = swap_list(cfg, words)
    settings, api = settings_hash(cfg, key), cfg.generators[key].api
    outs = [resolve_cell(c, cfg, api, swap, journal_ask(journal), settings) for c in cells]
    recs = [journal.get(k) for o in outs for k in o.keys]
    n, llm, swapped = len(outs), sum(o.status == "llm" for o in outs), sum(o.status == "swap" for o in outs)
    valid, tokens = llm + swapped, sum(r["completion_tokens"] or 0 for r in recs)
    new = [r for r in recs if r.get("phase") == phase]
    span = max(r["t_end"] for r in new) - min(r["t_start"] for r in new) if new else 0.0
    return {"cells": n, "valid_pairs": valid, "valid_rate": valid / n, "pairs_llm": llm, "pairs_swap": swapped,
            "llm_share": llm / valid if valid else 0.0, "requests": len(recs), "completion_tokens": tokens,
            "requests_per_valid_pair": len(recs) / valid if valid else None,
            "tokens_per_valid_pair": tokens / valid if valid else None, "new_requests": len(new),
            "new_requests_s": round(span, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params/generate.yaml")
    ap.add_argument("--cells", type=int, default=100, help="the first N cells of the params' sample")
    ap.add_argument("--journal", default="results/generate/levers_journal.jsonl")
    ap.add_argument("--out", default="", help="the table (default: levers_path of the params)")
    args = ap.parse_args(argv)
    cfg = load(args.params)
    assert isinstance(cfg, GenerateConfig)
    key, journal = cfg.generator, Journal(args.journal)
    words = load_gender_words(repo_path(cfg.data_dir), cfg.word_curation or None)
    cells = sample_cells(words, cfg.n_cells, cfg.seed)[:args.cells]
    table, ep = [], None
    with contextlib.ExitStack() as stack:  # one server for every row, started when a row asks
        for i, (label, row_cfg) in enumerate(rows(cfg)):
            todo = missing(row_cfg, key, swap_list(row_cfg, words), cells, journal)
            if todo:
                ep = ep or stack.enter_context(open_endpoint(row_cfg, key))
                t0 = time.perf_counter()
                generate(ep, row_cfg, swap_list(row_cfg, words), todo, journal, row_cfg.concurrency, f"lever{i}")
                print(f"{label}: {len(todo)} cells asked in {time.perf_counter() - t0:.0f} s")
            table.append({"lever": label, **measure(row_cfg, key, cells, journal, words, f"lever{i}")})
            print(table[-1])
    out = repo_path(args.out or cfg.levers_path)
    pd.DataFrame(table).to_csv(out, index=False, float_format="%.4g")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
