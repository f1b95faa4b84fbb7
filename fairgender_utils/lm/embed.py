"""Forward passes shared by the stages: sentence embeddings from a masked or causal LM, and (causal stage)
embeddings over a sentence's own tokens with how likely the model finds the sentence."""

from __future__ import annotations

from collections.abc import Sequence, Sized
from dataclasses import dataclass

import torch

from fairgender_utils.progress import tqdm


def length_sorted_batches(texts: Sequence[Sized], batch_size: int) -> list[list[int]]:
    """Index batches of similar length (less padding); the caller scatters results back by index."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


@torch.inference_mode()
def mean_pooled(model, tokenizer, texts: Sequence[str], batch_size: int = 32, normalize: bool = False,
                max_length: int = 128, desc: str | None = None) -> torch.Tensor:
    """Mean over all (non-padding) tokens of the last hidden state, one row per text (float32, CPU).

    Special tokens are included, as in bias-bench's SEAT encoding. ``normalize`` L2-normalises rows.
    """
    device = next(model.parameters()).device
    out = torch.empty(len(texts), model.config.hidden_size, dtype=torch.float32)
    batches = length_sorted_batches(texts, batch_size)
    for idx in tqdm(batches, desc=desc, disable=desc is None, unit="batch"):
        enc = tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True, truncation=True,
                        max_length=max_length).to(device)
        hidden = model(**enc, output_hidden_states=True).hidden_states[-1].float()
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        out[idx] = pooled.cpu()
    return torch.nn.functional.normalize(out, dim=-1) if normalize else out



@dataclass
class SentenceFeatures:
    """What :func:`sentence_features` returns for ``n`` sentences (CPU tensors)."""

    emb: torch.Tensor  # [n, d] mean last hidden state over the sentence's own tokens, L2-normalised
    emb_special: torch.Tensor  # [n, d] the same over every token, special ones included (for comparison)
    loglik: torch.Tensor | None = None  # [n] mean log-probability of the sentence's own tokens
    tokens: list[list[int]] | None = None  # the token ids behind ``loglik``, per sentence
    prob_sum: torch.Tensor | None = None  # [V] float64: sum of the predicted distributions behind ``loglik``
    positions: int = 0  # how many distributions ``prob_sum`` adds up


def _pad(rows: Sequence[Sequence[int]], pad: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    att = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r, dtype=torch.long)
        att[i, :len(r)] = 1
    return ids.to(device), att.to(device)


def _forward(model, head, ids: torch.Tensor, att: torch.Tensor, rows: torch.Tensor | None = None,
             cols: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(last hidden state [b, t, d], float32 logits at the (row, col) positions, or None without rows)."""
    from fairgender_utils.lm.heads import body_of, head_logits

    body = body_of(model)
    if rows is not None and (head is None or body is model):
        out = model(input_ids=ids, attention_mask=att, output_hidden_states=True)
        return out.hidden_states[-1], out.logits[rows, cols].float()
    if body is model:
        return model(input_ids=ids, attention_mask=att, output_hidden_states=True).hidden_states[-1], None
    hidden = body(input_ids=ids, attention_mask=att).last_hidden_state
    return hidden, None if rows is None else head_logits(model, head, hidden[rows, cols]).float()


@torch.inference_mode()
def sentence_features(model, tokenizer, texts: Sequence[str], family: str, batch_size: int = 32,
                      max_length: int = 128, loglik: bool = False,
                      desc: str | None = None) -> SentenceFeatures:
    """Embeddings of each sentence from its own tokens, and (``loglik``) how likely the model finds it.

    Sentences are tokenised as the effect code tokenises them (a causal LM gets a BOS in front when its
    tokenizer adds none). ``emb`` pools the last hidden state over the sentence's own tokens only: a
    special token (BOS, CLS, SEP) has nearly the same state in every sentence and pulls all cosines
    together. ``loglik`` is the mean log-probability of the sentence's own tokens: for a causal LM each
    one predicted from its prefix, for a masked LM each one masked in turn (pseudo-log-likelihood).
    ``prob_sum`` adds up those predicted distributions (divided by ``positions``: the model's marginal
    distribution of a token over these texts).
    """
    from fairgender_utils.lm.heads import lm_head
    from fairgender_utils.lm.loading import pad_id
    from fairgender_utils.lm.slots import encode_text

    device = next(model.parameters()).device
    special = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=torch.long, device=device)
    encoded = [encode_text(tokenizer, t, family, max_length)[0] for t in texts]
    head = lm_head(model) if loglik else None
    n, d = len(texts), model.config.hidden_size
    emb, emb_special = torch.empty(n, d), torch.empty(n, d)
    ll, tokens = torch.full((n,), float("nan")), [[] for _ in range(n)]
    prob_sum, positions = torch.zeros(0, dtype=torch.float64), 0
    batches = length_sorted_batches(encoded, batch_size)
    for idx in tqdm(batches, desc=desc, disable=desc is None, unit="batch"):
        ids, att = _pad([encoded[i] for i in idx], pad_id(tokenizer), device)
        own = att.bool() & ~torch.isin(ids, special)
        rows = cols = None
        if loglik and family == "causal":  # read at the position before each own token
            rows, cols = torch.nonzero(own[:, 1:], as_tuple=True)
        hidden, logits = _forward(model, head, ids, att, rows, cols)
        for out, mask in ((emb, own), (emb_special, att.bool())):
            m = mask.unsqueeze(-1).float()
            pooled = (hidden.float() * m).sum(1) / m.sum(1).clamp(min=1)
            out[idx] = torch.nn.functional.normalize(pooled, dim=-1).cpu()
        if not loglik:
            continue
        if family == "causal":
            targets = ids[rows, cols + 1]
        else:  # one row per own token, that token masked, read where it was
            rows, cols = torch.nonzero(own, as_tuple=True)
            targets, parts = ids[rows, cols], []
            for b in range(0, len(rows), batch_size):
                r, c = rows[b:b + batch_size], cols[b:b + batch_size]
                masked = ids[r].clone()
                masked[torch.arange(len(r), device=device), c] = tokenizer.mask_token_id
                parts.append(_forward(model, head, masked, att[r], torch.arange(len(r), device=device), c)[1])
            logits = torch.cat(parts)
        logp = torch.log_softmax(logits, -1)
        prob = logp.exp().double().sum(0).cpu()
        prob_sum = prob if not len(prob_sum) else prob_sum + prob
        positions += len(targets)
        tok_lp, rows, targets = logp.gather(1, targets[:, None])[:, 0].cpu(), rows.cpu(), targets.cpu()
        for j, i in enumerate(idx):
            tokens[i] = targets[rows == j].tolist()
            ll[i] = tok_lp[rows == j].mean() if tokens[i] else float("nan")
    if not loglik:
        return SentenceFeatures(emb, emb_special)
    return SentenceFeatures(emb, emb_special, ll, tokens, prob_sum, positions)
