"""GLUE: does debiasing cost language understanding?

- ``probe`` (CPU): frozen features, a linear model. A sentence is the mean over its tokens of the last
  hidden state (:func:`fairgender_utils.lm.embed.mean_pooled`); a sentence pair (u, v) becomes
  [u, v, |u - v|, u * v] (InferSent/SentEval's pair features). Standardised features, then scikit-learn
  logistic regression (classification) or ridge regression (STS-B). Train and dev sets are subsampled
  (seeded) to the sizes given.
- ``finetune`` (GPU): full fine-tuning of a sequence-classification head under Hugging Face
  Accelerate (the same code on a CPU, one GPU or several); mean and sd over seeds are the caller's.

Metrics (GLUE's): Matthews correlation for CoLA, F1 and accuracy for MRPC, Pearson and Spearman for
STS-B, accuracy otherwise.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import numpy as np
import torch
from scipy.stats import pearsonr, spearmanr
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fairgender_utils.lm.embed import mean_pooled
from fairgender_utils.loaders import GlueExample
from fairgender_utils.lm.heads import body_of

REGRESSION = {"stsb"}


def subsample(examples: Sequence[GlueExample], n: int, seed: int) -> list[GlueExample]:
    """A seeded random subset of size n (all of them when n is 0 or at least their number)."""
    if n <= 0 or n >= len(examples):
        return list(examples)
    return random.Random(seed).sample(list(examples), n)


def task_metrics(task: str, y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """GLUE's metrics for ``task`` (percentages, as GLUE reports them)."""
    if task in REGRESSION:
        return {"pearson": 100 * float(pearsonr(y_true, y_pred)[0]),
                "spearman": 100 * float(spearmanr(y_true, y_pred)[0])}
    y_true, y_pred = y_true.astype(int), y_pred.astype(int)
    out = {"accuracy": 100 * float(accuracy_score(y_true, y_pred))}
    if task == "cola":
        out = {"mcc": 100 * float(matthews_corrcoef(y_true, y_pred)), **out}
    if task == "mrpc":
        out = {"f1": 100 * float(f1_score(y_true, y_pred)), **out}
    return out


def main_metric(task: str) -> str:
    return {"cola": "mcc", "mrpc": "f1", "stsb": "pearson"}.get(task, "accuracy")


def features(model, tokenizer, examples: Sequence[GlueExample], batch_size: int = 32,
             max_length: int = 128, cache: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Frozen sentence features; [u, v, |u-v|, u*v] for pairs. ``cache`` keeps embeddings across calls."""
    cache = {} if cache is None else cache
    texts = [t for e in examples for t in (e.text_a, e.text_b) if t is not None and t not in cache]
    texts = list(dict.fromkeys(texts))
    if texts:
        emb = mean_pooled(body_of(model), tokenizer, texts, batch_size=batch_size, max_length=max_length)
        cache.update({t: emb[i].numpy() for i, t in enumerate(texts)})
    u = np.stack([cache[e.text_a] for e in examples])
    if examples[0].text_b is None:
        return u
    v = np.stack([cache[e.text_b] for e in examples])
    return np.concatenate([u, v, np.abs(u - v), u * v], axis=1)


def probe_task(task: str, model, tokenizer, train: Sequence[GlueExample], dev: Sequence[GlueExample],
               c: float = 1.0, alpha: float = 1.0, seed: int = 0, batch_size: int = 32,
               max_length: int = 128) -> dict[str, float]:
    """Fit a linear probe on frozen train features; GLUE metrics on the dev examples."""
    cache: dict[str, np.ndarray] = {}
    x_tr = features(model, tokenizer, train, batch_size, max_length, cache)
    x_dev = features(model, tokenizer, dev, batch_size, max_length, cache)
    y_tr = np.array([e.label for e in train])
    y_dev = np.array([e.label for e in dev])
    if task in REGRESSION:
        clf = make_pipeline(StandardScaler(), Ridge(alpha=alpha))
    else:
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000, random_state=seed))
    clf.fit(x_tr, y_tr if task in REGRESSION else y_tr.astype(int))
    return {"n_train": len(train), "n_dev": len(dev), **task_metrics(task, y_dev, clf.predict(x_dev))}


def finetune_task(location: str, task: str, train: Sequence[GlueExample], dev: Sequence[GlueExample],
                  lr: float = 2e-5, batch_size: int = 32, epochs: int = 3, seed: int = 0,
                  max_length: int = 128, accelerator=None) -> dict[str, float]:
    """Fine-tune ``location`` (a folder or hub id) with a classification head under Accelerate."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer,
                              get_linear_schedule_with_warmup)

    acc = accelerator or Accelerator()
    set_seed(seed)
    tok = AutoTokenizer.from_pretrained(location)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
    n_labels = 1 if task in REGRESSION else int(max(e.label for e in train)) + 1
    model = AutoModelForSequenceClassification.from_pretrained(location, num_labels=n_labels)
    model.config.pad_token_id = tok.pad_token_id

    def collate(batch: list[GlueExample]) -> dict[str, torch.Tensor]:
        a = [e.text_a for e in batch]
        b = [e.text_b for e in batch] if batch[0].text_b is not None else None
        enc = tok(a, b, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        dtype = torch.float32 if task in REGRESSION else torch.long
        enc["labels"] = torch.tensor([e.label for e in batch], dtype=dtype)
        return dict(enc)

    g = torch.Generator().manual_seed(seed)
    tr = torch.utils.data.DataLoader(list(train), batch_size=batch_size, shuffle=True, collate_fn=collate,
                                     generator=g)
    dv = torch.utils.data.DataLoader(list(dev), batch_size=batch_size, collate_fn=collate)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    steps = epochs * math.ceil(len(tr) / acc.num_processes)
    sched = get_linear_schedule_with_warmup(opt, int(0.06 * steps), steps)
    model, opt, tr, dv, sched = acc.prepare(model, opt, tr, dv, sched)
    model.train()
    for _ in range(epochs):
        for batch in tr:
            with acc.accumulate(model):
                acc.backward(model(**batch).loss)
                opt.step()
                sched.step()
                opt.zero_grad()
    model.eval()
    preds, labels = [], []
    with torch.inference_mode():
        for batch in dv:
            logits = model(**batch).logits
            out = logits.squeeze(-1) if task in REGRESSION else logits.argmax(-1)
            p, y = acc.gather_for_metrics((out, batch["labels"]))
            preds.append(p.float().cpu().numpy())
            labels.append(y.float().cpu().numpy())
    return {"n_train": len(train), "n_dev": len(dev), "seed": seed,
            **task_metrics(task, np.concatenate(labels), np.concatenate(preds))}

