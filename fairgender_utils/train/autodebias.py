"""The ``autodebias`` training variant: Auto-Debias's fine-tuning (Guo, Yang, Abbasi, ACL 2022; METHOD.md §6).

Every attribute pair (m_j, f_j) of the word lists - loaded as every stage loads them
(:func:`fairgender_utils.loaders.load_gender_words`), so a curation of the lists applies here too - is
combined with every prompt the prompts stage found: an *example* is the two probes "m_j prompt [MASK]" and
"f_j prompt [MASK]" (causal LMs: "m_j prompt" and "f_j prompt", slot = the next token;
:mod:`fairgender_utils.lm.probes`). Its loss is

    JSD(p(slot | m_j probe), p(slot | f_j probe)) over the full vocabulary
    + cos_weight x (1 - cos(e_m, e_f)),

e the mean-pooled last hidden state of each probe (the sentence embedding every stage uses; the original's
pooler output exists for BERT-style models only), averaged over the batch.

An example is a :class:`~fairgender_utils.lm.slots.PairSlots` with the ``target_slot`` rule and its
target at the slot (masked LM: the mask; causal LM: the position after the prompt, read at the prompt's
last token), so the training loop's batches and its L_b with w0 = 1 (no neighbours) compute the JSD term
unchanged; this module adds the embedding term.
"""

from __future__ import annotations

from pathlib import Path

import torch

from fairgender_utils.io import read_jsonl
from fairgender_utils.lm.heads import PositionLogits, body_of, head_logits
from fairgender_utils.lm.probes import probe_inputs, probe_text
from fairgender_utils.lm.slots import Family, PairError, PairSlots
from fairgender_utils.loaders import DataFormatError, load_gender_words
from fairgender_utils.paths import repo_path
from fairgender_utils.train.config import TrainConfig, TrainingError


def data_files(cfg: TrainConfig) -> list[Path]:
    """The files a run reads: the prompts and the attribute word lists."""
    base = repo_path(cfg.data_dir) / "gender_word_lists" / "context_debias"
    return [repo_path(cfg.prompts_path), base / "male.txt", base / "female.txt"]


def load_prompts(path: str | Path) -> list[str]:
    """The prompts of the prompts stage's ``prompts.jsonl`` (one record per prompt, key ``prompt``)."""
    p = repo_path(path)
    if not p.exists():
        raise TrainingError(f"{p}: not found (run the prompts stage first: dvc repro prompts)")
    try:
        records = list(read_jsonl(p))
    except ValueError as err:
        raise TrainingError(str(err)) from None
    prompts = []
    for n, rec in enumerate(records, 1):
        if not isinstance(rec.get("prompt"), str) or not rec["prompt"].strip():
            raise TrainingError(f"{p}: record {n} has no non-empty string 'prompt'")
        prompts.append(rec["prompt"].strip())
    if not prompts:
        raise TrainingError(f"{p}: no prompts")
    return list(dict.fromkeys(prompts))


def _example(tok, family: Family, eid: str, m: str, f: str, prompt: str, max_length: int) -> PairSlots:
    (ids_m, read_m), (ids_f, read_f) = probe_inputs(
        tok, [probe_text(tok, m, prompt, family), probe_text(tok, f, prompt, family)], family, max_length)
    shift = 1 if family == "causal" else 0  # a causal LM's slot is the token after the read position
    lead = next(k for k, t in enumerate(ids_m) if t not in tok.all_special_ids)  # CLS / BOS before the word
    n_m = len(tok(m, add_special_tokens=False)["input_ids"])
    n_f = len(tok(f, add_special_tokens=False)["input_ids"])
    return PairSlots(eid, tuple(ids_m), tuple(ids_f), (read_m + shift, read_m + shift + 1),
                     (read_f + shift, read_f + shift + 1), (lead, lead + n_m), (lead, lead + n_f),
                     "target_slot", ())


def load_examples(cfg: TrainConfig, tok, family: Family) -> tuple[list[PairSlots], dict[str, str]]:
    """Attribute pairs (the first ``max_pairs``; 0: all) x prompts, as encoded examples, and
    {example id: reason} for those that cannot be encoded (too long for ``max_length``)."""
    try:
        pairs = load_gender_words(repo_path(cfg.data_dir)).pairs
    except (FileNotFoundError, DataFormatError, ValueError) as err:
        raise TrainingError(f"attribute pairs: {err}") from None
    pairs = pairs[:cfg.max_pairs] if cfg.max_pairs else pairs
    prompts = load_prompts(cfg.prompts_path)
    examples, failed = [], {}
    for j, (m, f) in enumerate(pairs):
        for k, prompt in enumerate(prompts):
            eid = f"a{j:03d}-p{k:03d}"
            try:
                examples.append(_example(tok, family, eid, m, f, prompt, cfg.max_length))
            except PairError as err:
                failed[eid] = str(err)
    return examples, failed


class SlotAndPooled(PositionLogits):
    """:class:`PositionLogits` that also returns each row's mean-pooled last hidden state (float32)."""

    def forward(self, input_ids, attention_mask, rows, cols):
        if self.head is None:
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
            hidden, logits = out.hidden_states[-1], out.logits[rows, cols]
        else:
            hidden = body_of(self.model)(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            logits = head_logits(self.model, self.head, hidden[rows, cols])
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        return logits.float(), pooled.float()


def add_embedding_term(parts: dict[str, torch.Tensor], pooled: torch.Tensor, sides: list[tuple[int, int]],
                       weight: float) -> dict[str, torch.Tensor]:
    """``parts`` with ``embedding`` = mean over the examples of 1 - cos(e_m, e_f) (rows ``sides``) and
    ``loss`` increased by ``weight`` x that."""
    rm = torch.tensor([a for a, _ in sides], device=pooled.device)
    rf = torch.tensor([b for _, b in sides], device=pooled.device)
    term = (1 - torch.nn.functional.cosine_similarity(pooled[rm], pooled[rf], dim=-1)).mean()
    return {**parts, "embedding": term, "loss": parts["loss"] + weight * term}
