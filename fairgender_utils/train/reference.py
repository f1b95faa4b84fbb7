"""L_r as KL(p_θ0 ‖ p_θ) on neutral reference sentences (METHOD.md §5, ``lm_loss: kl``).

The sentences are GLUE train sentences drawn as the causal stage draws its reference corpus
(:func:`fairgender_utils.loaders.heldout.reference_sentences`). The frozen model's predictions p_θ0 are
computed once, before the first step, by the model about to be trained (in eval mode), at every position
the loss reads: a causal LM's next-token predictions of tokens 1..n-1, a masked LM's predictions at a fixed
seeded MLM mask of each sentence. Keeping p_θ0 over a 262k vocabulary at every position would take about a
megabyte per position, so it is kept at its top ``kl_top_k`` tokens plus one bucket for the rest; the loss
is the KL between the two distributions coarsened the same way (:func:`fairgender_utils.lm.losses.topk_kl`):
a lower bound of the full KL, equal to it when the top-k tokens hold all of p_θ0's mass.

Each training pair brings ``kl_sentences_per_pair`` reference sentences to its micro-batch, drawn from the
pool by (seed, epoch, pair id): the same on every process and after a resume. (The rows cost as much as
any others, the LM head at every position of a 262k vocabulary included: gemma-3-270m on 2 CPU cores took
18.5 s per step of 16 pairs with two sentences per pair, against 5.4 s with the own-LM loss.)
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from fairgender_utils.lm.heads import PositionLogits
from fairgender_utils.lm.loading import pad_id
from fairgender_utils.lm.losses import mlm_mask, rest_logprob, stable_seed
from fairgender_utils.lm.slots import Family, encode_text
from fairgender_utils.loaders.heldout import reference_sentences
from fairgender_utils.progress import tqdm

@dataclass
class NeutralReference:
    """Rows to feed the model, the columns L_r reads in each, and p_θ0 there (top-k + rest)."""

    rows: list[list[int]]
    cols: list[list[int]]
    offset: list[int]  # index of each row's first read position in the tables below
    top: torch.Tensor  # [positions, k] token ids
    top_logp: torch.Tensor  # [positions, k] log p_θ0 of those tokens
    rest_logp: torch.Tensor  # [positions] log p_θ0 of every other token together
    per_pair: int  # reference rows each training pair brings to its batch

    def draw(self, seed: int, epoch: int, pair_id: str) -> list[int]:
        """The reference rows a training pair brings to its batch in this epoch."""
        return random.Random(stable_seed(seed, "reference", epoch, pair_id)).sample(range(len(self.rows)),
                                                                                     self.per_pair)


def reference_rows(tokenizer, family: Family, texts: list[str], max_length: int, seed: int,
                   mlm_probability: float, vocab_size: int) -> tuple[list[list[int]], list[list[int]]]:
    """(rows, read columns) of the reference sentences: causal LMs read positions 0..n-2 (predicting
    tokens 1..n-1); masked LMs read a seeded MLM mask of each sentence."""
    rows, cols = [], []
    special = set(tokenizer.all_special_ids)
    for r, text in enumerate(texts):
        ids, _ = encode_text(tokenizer, text, family, max_length)
        if family == "causal":
            rows.append(ids)
            cols.append(list(range(len(ids) - 1)))
        else:
            masked, pos = mlm_mask(ids, [t in special for t in ids], tokenizer.mask_token_id, vocab_size,
                                   stable_seed(seed, "reference-mask", r), mlm_probability)
            rows.append(masked)
            cols.append(pos)
    keep = [n for n, c in enumerate(cols) if c]
    return [rows[n] for n in keep], [cols[n] for n in keep]


@torch.no_grad()
def build_reference(model, tokenizer, family: Family, data_dir: str, tasks: list[str], size: int,
                    min_words: int, top_k: int, max_length: int, seed: int, mlm_probability: float,
                    per_pair: int, batch_size: int = 16) -> NeutralReference:
    """Draw the sentences and compute the (frozen, eval-mode) model's top-k predictions at every read."""
    texts = reference_sentences(data_dir, tasks, size, min_words, seed)
    if len(texts) < per_pair:
        raise ValueError(f"{data_dir}: {len(texts)} reference sentences from {', '.join(tasks)}; "
                         f"at least {per_pair} are needed")
    vocab = model.get_output_embeddings().weight.shape[0]
    rows, cols = reference_rows(tokenizer, family, texts, max_length, seed, mlm_probability, vocab)
    scorer, pad = PositionLogits(model), pad_id(tokenizer)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    tops, top_lps, rests = [], [], []
    try:
        for b in tqdm(range(0, len(rows), batch_size), desc="KL reference", unit="batch"):
            chunk = rows[b:b + batch_size]
            width = max(len(r) for r in chunk)
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            att = torch.zeros_like(ids)
            for i, r in enumerate(chunk):
                ids[i, :len(r)], att[i, :len(r)] = torch.tensor(r), 1
            at = [(i, c) for i, c_list in enumerate(cols[b:b + batch_size]) for c in c_list]
            r, c = torch.tensor([i for i, _ in at], device=device), torch.tensor([c for _, c in at], device=device)
            logp = torch.log_softmax(scorer(ids.to(device), att.to(device), r, c), -1)
            v, idx = logp.topk(min(top_k, logp.shape[-1]), dim=-1)
            tops.append(idx.cpu())
            top_lps.append(v.cpu())
            rests.append(rest_logprob(logp, idx).cpu())
    finally:
        model.train(was_training)
    offset, n = [], 0
    for c in cols:
        offset.append(n)
        n += len(c)
    return NeutralReference(rows, cols, offset, torch.cat(tops), torch.cat(top_lps), torch.cat(rests), per_pair)
