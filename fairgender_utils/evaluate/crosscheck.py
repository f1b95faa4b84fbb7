"""Cross-check: the scorer's sentence log-likelihoods against independent implementations.

    python -m fairgender_utils.evaluate.crosscheck [--model models/base/gemma-3-270m] [--n 40] [--lm-eval]

Sentences: the first ``n`` StereoSet gender candidates (stored sentences) and the first ``n`` CrowS-Pairs
gender sentences. For each, the batched scorer's summed log-probability of every token after BOS
(what StereoSet's mean, bias-bench's mean and lm-eval's sum are made of) is compared with

- transformers' own loss on one unbatched forward pass: ``-model(ids, labels=ids).loss x (len - 1)``
  (shift-by-one cross-entropy over every token after the first), the ids from a separate call of the
  tokenizer (BOS put in front where the tokenizer adds none; Gemma's adds it, so a mismatch would show);
- with ``--lm-eval``, where the ``lm_eval`` package imports: ``HFLM.loglikelihood`` with an empty
  context (the harness then conditions on the BOS token, as its ``crows_pairs`` task does).

Prints the largest |difference| per sentence of the mean and of the sum; exits 1 above ``--tol``
(1e-4 on the mean log-probability).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from fairgender_utils.loaders import load_crows, load_stereoset
from fairgender_utils.evaluate.scoring import Request, Scorer
from fairgender_utils.lm.loading import load_model
from fairgender_utils.paths import repo_path


def sentences(data_dir: str | Path, n: int) -> list[str]:
    """The first n StereoSet gender candidates (all three per item) and n CrowS-Pairs gender sentences."""
    items = load_stereoset(data_dir, "intrasentence", "gender")
    ss = [s for it in items for s in (it.stereotype, it.anti_stereotype, it.unrelated)][:n]
    cp = [s for p in load_crows(data_dir, "gender") for s in (p.sent_more, p.sent_less)][:n]
    return list(dict.fromkeys(ss + cp))


@torch.inference_mode()
def transformers_loglik(model, tokenizer, text: str) -> tuple[float, int, tuple[int, ...]]:
    """(summed log-likelihood of every token after the first, number of such tokens, ids): HF's own loss."""
    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    bos = tokenizer.bos_token_id
    if bos is not None and ids[0, 0].item() != bos:  # a tokenizer that adds no BOS (Gemma's does)
        ids = torch.cat([torch.tensor([[bos]]), ids], dim=1)
    loss = model(input_ids=ids, labels=ids).loss.item()
    n = ids.shape[1] - 1
    return -loss * n, n, tuple(ids[0].tolist())


def lm_eval_loglik(model, tokenizer, texts: list[str]) -> list[float]:
    """lm-evaluation-harness's loglikelihood('' -> text) per text (its crows_pairs request)."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=1)
    reqs = [Instance(request_type="loglikelihood", doc={}, arguments=("", t), idx=i) for i, t in enumerate(texts)]
    return [ll for ll, _ in lm.loglikelihood(reqs, disable_tqdm=True)]


def crosscheck(model, tokenizer, texts: list[str], with_lm_eval: bool = False) -> pd.DataFrame:
    """One row per text: the scorer's and the independent sums and means of token log-probabilities."""
    scorer = Scorer(model, tokenizer, "causal")
    encs = [scorer.encode(t) for t in texts]
    out = scorer.logprobs([Request(e.ids, tuple(i for i, ok in enumerate(e.scorable) if ok)) for e in encs])
    rows = []
    for t, e, lp in zip(texts, encs, out, strict=True):
        ll, n, ids = transformers_loglik(model, tokenizer, t)
        rows.append({"text": t, "n_tokens": len(lp), "same_ids": ids == e.ids, "scorer_sum": math.fsum(lp.tolist()),
                     "hf_sum": ll, "scorer_mean": float(np.mean(lp)), "hf_mean": ll / n})
    df = pd.DataFrame(rows)
    if with_lm_eval:
        df["lm_eval_sum"] = lm_eval_loglik(model, tokenizer, texts)
    return df


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="models/base/gemma-3-270m")
    ap.add_argument("--data-dir", default="data/raw")
    ap.add_argument("--n", type=int, default=40, help="sentences from each benchmark")
    ap.add_argument("--lm-eval", action="store_true", help="also lm-evaluation-harness (needs lm_eval)")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--json", default="")
    args = ap.parse_args(argv)
    model, tok, family = load_model(args.model)
    if family != "causal":
        raise SystemExit("the cross-check compares causal log-likelihoods")
    df = crosscheck(model, tok, sentences(repo_path(args.data_dir), args.n), args.lm_eval)
    res = {"model": args.model, "sentences": len(df), "tokens": int(df["n_tokens"].sum()),
           "all_ids_equal": bool(df["same_ids"].all()),
           "max_abs_diff_mean_hf": float((df["scorer_mean"] - df["hf_mean"]).abs().max()),
           "max_abs_diff_sum_hf": float((df["scorer_sum"] - df["hf_sum"]).abs().max())}
    if args.lm_eval:
        res["max_abs_diff_sum_lm_eval"] = float((df["scorer_sum"] - df["lm_eval_sum"]).abs().max())
        res["max_abs_diff_mean_lm_eval"] = float(((df["scorer_sum"] - df["lm_eval_sum"]) / df["n_tokens"]).abs().max())
    print(json.dumps(res, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    ok = res["all_ids_equal"] and all(v <= args.tol for k, v in res.items() if k.startswith("max_abs_diff_mean"))
    print("OK" if ok else f"FAIL: differences above {args.tol}", file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
