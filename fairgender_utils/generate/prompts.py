"""Prompts of the two steps: few-shot examples (rotated per request, seeded), pre-fill, decoding settings.

A completion template is an instruction, ``{examples}``, then the query line, e.g. ``Words: {attribute},
{target} | Sentence:``. Each few-shot example is the query line filled with the example's fields and
followed by its answer, one per line, so the model answers the query on one line. With ``fewshot_rotate``
every request draws its own ``fewshot_k_step1`` / ``_step2`` examples from the bank in its own order (seeded by the seed, the
cell, the step and the candidate): no fixed last example for the model to copy. A pre-fill is appended to
the prompt and is the start of the answer: step 1 starts with the attribute word ("The czar"), step 2 with
the rewritten sentence up to its first swapped word. Chat prompts take neither examples nor a pre-fill.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Sequence
from typing import Any

from fairgender_utils.generate.config import GenerateConfig
from fairgender_utils.io import short_hash

# attribute words that start a sentence capitalised and without an article; words that cannot start one
_BARE = frozenset("he she his her mr. mrs. mr mrs sir madam ma'am".split())
_NO_START = frozenset("him himself herself hers".split())


def examples_text(cfg: GenerateConfig, step: int, key: str, k: int) -> str:
    """The few-shot block of one request: ``fewshot_k_step<step>`` examples, each on its own line (``key``
    seeds the draw when ``fewshot_rotate``; else the first ones of the bank in order)."""
    bank = cfg.step1_examples if step == 1 else cfg.step2_examples
    tpl = cfg.step1_completion_prompt if step == 1 else cfg.step2_completion_prompt
    if "{examples}" not in tpl:
        return ""
    query = tpl.split("{examples}", 1)[1]
    n = min(cfg.fewshot_k_step1 if step == 1 else cfg.fewshot_k_step2, len(bank))
    chosen = random.Random(f"{cfg.seed}:{key}:{step}:{k}").sample(bank, n) if cfg.fewshot_rotate else bank[:n]
    names = ("attribute", "target") if step == 1 else ("sentence", "mapping")
    return "".join(query.format(**dict(zip(names, ex[:2], strict=True))) + " " + ex[2] + "\n" for ex in chosen)


def step1_prefill(cfg: GenerateConfig, api: str, attribute: str) -> str:
    """The start of the step-1 answer: "The <attribute>", a capitalised pronoun or title, or nothing."""
    a = attribute.lower()
    if api != "completions" or not cfg.step1_prefill or a in _NO_START or a.endswith("ed"):
        return ""
    return " " + (attribute[:1].upper() + attribute[1:] if a in _BARE else f"The {attribute}")


def step2_prefill(cfg: GenerateConfig, api: str, sentence: str, mapping: Sequence[tuple[str, str]]) -> str:
    """The rewritten sentence up to and including its first swapped word (nothing when off or unknown)."""
    if api != "completions" or not cfg.step2_prefill or not mapping:
        return ""
    old, new = mapping[0]
    m = re.search(rf"(?<!\w){re.escape(old)}(?!\w)", sentence)
    return "" if m is None else " " + sentence[:m.start()] + new


def build_prompt(cfg: GenerateConfig, api: str, step: int, key: str = "", k: int = 0,
                 prefill: str = "", **fields: str) -> str | list[dict[str, str]]:
    """The step-1 or step-2 prompt: a few-shot text ending in ``prefill`` (completions) or system + user
    messages (chat). ``key`` and ``k`` (cell id, candidate) seed the rotation of the examples."""
    if api == "completions":
        tpl = cfg.step1_completion_prompt if step == 1 else cfg.step2_completion_prompt
        return tpl.format(examples=examples_text(cfg, step, key, k), **fields) + prefill
    tpl = cfg.step1_chat_prompt if step == 1 else cfg.step2_chat_prompt
    return [{"role": "system", "content": cfg.chat_system_prompt},
            {"role": "user", "content": tpl.format(**fields)}]


def prompt_hash(prompt: str | list[dict[str, str]]) -> str:
    return short_hash(prompt)


def templates(cfg: GenerateConfig, api: str) -> dict[str, dict[str, Any]]:
    """The templates and example banks a generator uses, each with its sha256 (provenance)."""
    names = (["step1_completion_prompt", "step2_completion_prompt", "step1_examples", "step2_examples"]
             if api == "completions" else ["chat_system_prompt", "step1_chat_prompt", "step2_chat_prompt"])
    return {n: {"text": getattr(cfg, n), "sha256": hashlib.sha256(str(getattr(cfg, n)).encode()).hexdigest()}
            for n in names}


def mapping_text(mapping: Sequence[tuple[str, str]]) -> str:
    return ", ".join(f"{a} -> {b}" for a, b in mapping)


_LABEL = re.compile(r"^(sentence|rewritten|answer|output)\s*:\s*", re.I)
_QUOTES = "\"'“”‘’`"


def clean_response(raw: str) -> str:
    """The first non-empty line, without surrounding quotes or a leading label like ``Sentence:``."""
    line = next((ln.strip() for ln in raw.splitlines() if ln.strip()), "")
    line = _LABEL.sub("", line).strip()
    if len(line) > 1 and line[0] in _QUOTES and line[-1] in _QUOTES:
        line = line[1:-1].strip()
    return line


def request_seed(cfg: GenerateConfig, key: str, step: int, k: int) -> int:
    """The seed sent with one request (recorded; a shared batching server may not honour it per request)."""
    return int(hashlib.sha256(f"{cfg.seed}:{key}:{step}:{k}".encode()).hexdigest()[:8], 16) % 2**31


def decoding(cfg: GenerateConfig, api: str, step: int) -> dict[str, Any]:
    """Request parameters; ``stop`` at a newline for the few-shot format (servers may ignore it; with
    ``stream`` the client stops reading there and closes the stream)."""
    params = {"max_tokens": cfg.max_tokens_step1 if step == 1 else cfg.max_tokens_step2,
              "temperature": cfg.temperature, "top_p": cfg.top_p}
    return {**params, "stop": ["\n"]} if api == "completions" else params


def settings_hash(cfg: GenerateConfig, key: str) -> str:
    """Fingerprint of the generator, templates and decoding; journal keys add the prompt's own hash, so
    a changed prompt never reuses an old answer."""
    entry = cfg.generators[key]
    return short_hash({"model": entry.model, "api": entry.api, "templates": templates(cfg, entry.api),
                       "decoding": [decoding(cfg, entry.api, s) for s in (1, 2)], "stream": cfg.stream,
                       "seed": cfg.seed})
