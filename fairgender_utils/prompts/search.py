"""Auto-Debias's prompt search (Guo et al. 2022; METHOD.md §6): beam search for the prompts that make the
model's predictions at the slot differ most between the male and the female word of a pair.

A prompt's score is the mean, over the search pairs (m_j, f_j), of the Jensen-Shannon divergence between
the slot distributions of the probes "m_j prompt" and "f_j prompt" (:mod:`fairgender_utils.lm.probes`),
each restricted to the stereotype words' tokens and renormalised. Length 1 scores every vocabulary word;
length l + 1 scores every top-K prompt of length l extended by every vocabulary word; the top K of each
length are kept (K x PL prompts).

Only what the score needs is computed: one row per distinct (word, prompt) probe (a word in two pairs is
run once), rows sorted by length into batches (little padding), and the LM head at the slot only, cut to
the stereotype tokens (:func:`fairgender_utils.lm.heads.restricted_logits`).
"""

from __future__ import annotations

import re
import time
from copy import deepcopy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fairgender_utils.lm.heads import body_of, restricted_logits
from fairgender_utils.lm.losses import jsd
from fairgender_utils.lm.probes import probe_inputs, probe_text
from fairgender_utils.lm.slots import Family
from fairgender_utils.loaders import GenderWords
from fairgender_utils.loaders.formats import DataFormatError, _text
from fairgender_utils.progress import tqdm

LETTERS = re.compile(r"^[a-z]+$")


def excluded_words(words: GenderWords) -> set[str]:
    """Words a prompt may not contain: every gendered word (attribute pairs and the swap list) and every
    stereotype word, lower-cased."""
    flat = [w for pair in (*words.pairs, *words.swap_pairs) for w in pair] + list(words.targets)
    return {w.lower() for w in flat}


def vocabulary(vocab_file: str | Path, exclude: set[str], size: int) -> list[str]:
    """The first ``size`` words of a frequency list (first column of each line) that are lower-case
    letters only (no possessives, digits or symbols) and not in ``exclude``."""
    words: dict[str, None] = {}
    lines = _text(Path(vocab_file)).splitlines()
    for line in lines:
        w = line.split()[0] if line.strip() else ""
        if LETTERS.match(w) and w not in exclude:
            words[w] = None
            if len(words) == size:
                return list(words)
    raise DataFormatError(f"{vocab_file}: {len(words)} usable words in {len(lines)} lines, fewer than "
                          f"vocab_size={size}")


@dataclass(frozen=True)
class Probe:
    """A model ready to score prompts: the distinct words of the search pairs and the slot's tokens."""

    model: torch.nn.Module
    tokenizer: object
    family: Family
    words: tuple[str, ...]  # distinct words of the pairs, male and female
    male: torch.Tensor  # per pair: index of its male word in ``words``
    female: torch.Tensor
    slot_ids: torch.Tensor  # the stereotype words' tokens
    batch_size: int
    max_length: int
    reuse_prefix: bool  # causal LMs: a prefix shared by several probes runs once (KV cache)

    @classmethod
    def of(cls, model, tokenizer, family: Family, pairs: Sequence[Sequence[str]], slot_ids: Sequence[int],
           batch_size: int, max_length: int, reuse_prefix: bool) -> Probe:
        words = tuple(dict.fromkeys(w for pair in pairs for w in pair))
        index = {w: n for n, w in enumerate(words)}
        device = next(model.parameters()).device
        return cls(model, tokenizer, family, words, torch.tensor([index[m] for m, _ in pairs]),
                   torch.tensor([index[f] for _, f in pairs]), torch.tensor(list(slot_ids), device=device),
                   batch_size, max_length, reuse_prefix)


def _padded(rows: Sequence[Sequence[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    att = torch.zeros((len(rows), width), dtype=torch.long)
    for n, r in enumerate(rows):
        ids[n, :len(r)] = torch.tensor(list(r))
        att[n, :len(r)] = 1
    return ids, att


def _slot_rows(probe: Probe, hidden: torch.Tensor, reads: Sequence[int]) -> torch.Tensor:
    """Renormalised log-probabilities over the slot tokens from the body's hidden states at ``reads``."""
    h = hidden[torch.arange(len(reads), device=hidden.device), torch.tensor(list(reads), device=hidden.device)]
    return torch.log_softmax(restricted_logits(probe.model, h, probe.slot_ids).float(), -1).cpu()


def _full_rows(probe: Probe, inputs: Sequence[tuple[list[int], int]], idx: Sequence[int],
               out: torch.Tensor) -> None:
    """Rows ``idx`` of ``out`` from whole probes, in length-sorted padded batches."""
    device, pad = probe.slot_ids.device, probe.tokenizer.pad_token_id or 0
    order = sorted(idx, key=lambda i: len(inputs[i][0]))
    for start in range(0, len(order), probe.batch_size):
        batch = order[start:start + probe.batch_size]
        ids, att = _padded([inputs[i][0] for i in batch], pad)
        body = body_of(probe.model)
        hidden = body(input_ids=ids.to(device), attention_mask=att.to(device)).last_hidden_state
        out[batch] = _slot_rows(probe, hidden, [inputs[i][1] for i in batch])


def _continued_rows(probe: Probe, prefix: list[int], rests: dict[int, list[int]],
                    out: torch.Tensor) -> None:
    """Causal LMs: rows of probes that share the token prefix ``prefix``, which runs once; each probe's
    remaining tokens ``rests[i]`` continue it from a copy of its KV cache (right-padded: a causal LM's real
    tokens never see the padding after them)."""
    device, pad = probe.slot_ids.device, probe.tokenizer.pad_token_id or 0
    body = body_of(probe.model)
    cache = body(input_ids=torch.tensor([prefix], device=device), use_cache=True).cache
    order = sorted(rests, key=lambda i: len(rests[i]))
    for start in range(0, len(order), probe.batch_size):
        batch = order[start:start + probe.batch_size]
        ids, _ = _padded([rests[i] for i in batch], pad)
        copy = deepcopy(cache)
        copy.batch_repeat_interleave(len(batch))
        hidden = body(input_ids=ids.to(device), cache=copy, use_cache=True).last_hidden_state
        out[batch] = _slot_rows(probe, hidden, [len(rests[i]) - 1 for i in batch])


@torch.inference_mode()
def slot_logprobs(probe: Probe, texts: Sequence[str]) -> torch.Tensor:
    """Log-probabilities over the slot tokens (renormalised among them) for each probe text; (n, S), CPU.

    With ``probe.reuse_prefix`` (causal LMs), texts that share all but their last word share the forward
    pass of that prefix (:func:`_continued_rows`) where its tokens begin theirs; the rest run whole.
    """
    inputs = probe_inputs(probe.tokenizer, texts, probe.family, probe.max_length)
    out = torch.empty(len(texts), len(probe.slot_ids))
    whole = list(range(len(texts)))
    if probe.reuse_prefix and probe.family == "causal":
        groups: dict[str, list[int]] = {}
        for i, t in enumerate(texts):
            if " " in t:
                groups.setdefault(t.rsplit(" ", 1)[0], []).append(i)
        groups = {k: v for k, v in groups.items() if len(v) > 1}
        heads = dict(zip(groups, probe_inputs(probe.tokenizer, list(groups), "causal", probe.max_length)))
        whole = []
        for key, members in groups.items():
            prefix = heads[key][0]
            n = len(prefix)
            rests = {i: inputs[i][0][n:] for i in members
                     if inputs[i][0][:n] == prefix and len(inputs[i][0]) > n}
            whole += [i for i in members if i not in rests]
            _continued_rows(probe, prefix, rests, out)
        grouped = {i for v in groups.values() for i in v}
        whole += [i for i in range(len(texts)) if i not in grouped]
    _full_rows(probe, inputs, whole, out)
    return out


@torch.inference_mode()
def prompt_jsd(probe: Probe, prompts: Sequence[str], chunk_texts: int = 0,
               desc: str | None = None) -> np.ndarray:
    """Mean JSD over the search pairs per prompt (nats). Prompts are scored in chunks of about
    ``chunk_texts`` probe texts (0: 64 batches), so memory does not grow with the candidate count; a
    chunk holds many continuations of one prefix (what ``reuse_prefix`` shares)."""
    n_words = len(probe.words)
    per_chunk = max(1, (chunk_texts or 64 * probe.batch_size) // n_words)
    scores = np.empty(len(prompts))
    starts = range(0, len(prompts), per_chunk)
    for start in tqdm(starts, desc=desc, disable=desc is None or len(starts) < 2, unit="chunk", leave=False):
        chunk = prompts[start:start + per_chunk]
        texts = [probe_text(probe.tokenizer, w, p, probe.family) for p in chunk for w in probe.words]
        logp = slot_logprobs(probe, texts).view(len(chunk), n_words, -1)
        d = jsd(logp[:, probe.male], logp[:, probe.female])  # (prompts, pairs)
        scores[start:start + len(chunk)] = d.mean(-1).double().numpy()
    return scores


def beam_search(score: Callable[[list[str]], np.ndarray], vocab: Sequence[str], length: int,
                beam: int) -> tuple[list[dict], list[dict]]:
    """Top ``beam`` prompts of every length 1..``length`` by ``score`` (higher first; ties keep candidate
    order). Returns the prompts (length, rank, prompt, jsd) and one summary per length (candidates
    scored, their mean and maximum score, seconds)."""
    records: list[dict] = []
    steps: list[dict] = []
    current = list(vocab)
    bar = tqdm(range(1, length + 1), desc="beam search", unit="length")
    for n in bar:
        t0 = time.perf_counter()
        s = np.asarray(score(current), dtype=float)
        order = np.argsort(-s, kind="stable")[:beam]
        top = [current[i] for i in order]
        records += [{"length": n, "rank": r + 1, "prompt": current[i], "jsd": float(s[i])}
                    for r, i in enumerate(order)]
        steps.append({"length": n, "candidates": len(current), "jsd_mean": float(s.mean()),
                      "jsd_max": float(s.max()), "seconds": time.perf_counter() - t0})
        bar.set_postfix(best=f"{s.max():.4f}", candidates=len(current))
        current = [f"{p} {w}" for p in top for w in vocab]
    bar.close()
    return records, steps
