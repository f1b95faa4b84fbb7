"""Generate stage: two-step LLM generation of attribute-balanced counterfactual sentence pairs.

Cells (j, t) of the attribute x target grid are sampled without replacement and balanced over
attributes, targets and the side that starts (METHOD.md §3). Step 1 asks for a sentence with the
attribute word and the target word; step 2 asks for the same sentence with the given gender mapping
applied. Every response goes to a journal as it arrives, so a rerun resumes and never asks twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import re
import string
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from math import gcd
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fairgender_utils.generate import counterfactual as cf
from fairgender_utils.generate.config import GenerateConfig
from fairgender_utils.generate.llm_client import Endpoint, Journal, complete, make_client
from fairgender_utils.io import short_hash
from fairgender_utils.paths import REPO_ROOT
from fairgender_utils.loaders import GenderWords


# ---------------------------------------------------------------- cells


@dataclass(frozen=True)
class Cell:
    index: int
    id: str
    attr_index: int
    male_word: str
    female_word: str
    target: str
    start: Literal["m", "f"]

    @property
    def attribute(self) -> str:
        """The attribute word step 1 is given."""
        return self.male_word if self.start == "m" else self.female_word


def sample_cells(words: GenderWords, n: int, seed: int) -> list[Cell]:
    """``n`` distinct grid cells; every prefix is balanced over attributes, targets and starting side.

    Attributes and targets are shuffled (seeded); cell k pairs attribute k mod A with target
    (k + k // lcm(A, T)) mod T, which visits every (attribute, target) once before any repeats. An
    attribute alternates its starting side between its successive visits, half of them start male.
    """
    n_a, n_t = len(words.pairs), len(words.targets)
    if n > n_a * n_t:
        raise ValueError(f"n_cells={n} exceeds the grid ({n_a} attributes x {n_t} targets)")
    rng = random.Random(seed)
    attrs, targs = rng.sample(range(n_a), n_a), rng.sample(range(n_t), n_t)
    period = n_a * n_t // gcd(n_a, n_t)
    cells = []
    for k in range(n):
        a, t = k % n_a, (k % period + k // period) % n_t
        j, target = attrs[a], words.targets[targs[t]]
        start = "m" if (k // n_a + a) % 2 == 0 else "f"
        m, f = (w.replace("_", " ") for w in words.pairs[j])  # list entries write spaces as "_"
        digest = hashlib.sha256(f"{m}|{f}|{target}|{start}".encode()).hexdigest()[:8]
        cells.append(Cell(k, f"p{k:05d}-{digest}", j, m, f, target, start))  # type: ignore[arg-type]
    return cells


# ---------------------------------------------------------------- prompts


def build_prompt(cfg: GenerateConfig, api: str, step: int, **fields: str) -> str | list[dict[str, str]]:
    """The step-1 or step-2 prompt: a few-shot text (completions) or system + user messages (chat)."""
    if api == "completions":
        tpl = cfg.step1_completion_prompt if step == 1 else cfg.step2_completion_prompt
        return tpl.format(**fields)
    tpl = cfg.step1_chat_prompt if step == 1 else cfg.step2_chat_prompt
    return [{"role": "system", "content": cfg.chat_system_prompt},
            {"role": "user", "content": tpl.format(**fields)}]


def templates(cfg: GenerateConfig, api: str) -> dict[str, dict[str, str]]:
    """The templates a generator uses, each with its sha256 (provenance)."""
    names = (["step1_completion_prompt", "step2_completion_prompt"] if api == "completions"
             else ["chat_system_prompt", "step1_chat_prompt", "step2_chat_prompt"])
    return {n: {"text": getattr(cfg, n), "sha256": hashlib.sha256(getattr(cfg, n).encode()).hexdigest()}
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


def decoding(cfg: GenerateConfig, api: str, step: int) -> dict[str, Any]:
    """Request parameters; ``stop`` at a newline for the few-shot format (servers may ignore it)."""
    params = {"max_tokens": cfg.max_tokens_step1 if step == 1 else cfg.max_tokens_step2,
              "temperature": cfg.temperature, "top_p": cfg.top_p, "seed": cfg.seed}
    return {**params, "stop": ["\n"]} if api == "completions" else params


def settings_hash(cfg: GenerateConfig, key: str) -> str:
    """Fingerprint of everything that shapes a response: a changed prompt never reuses old answers."""
    entry = cfg.generators[key]
    return short_hash({"model": entry.model, "api": entry.api, "templates": templates(cfg, entry.api),
                        "decoding": [decoding(cfg, entry.api, s) for s in (1, 2)]})


# ---------------------------------------------------------------- endpoint and runs


@contextlib.contextmanager
def open_endpoint(cfg: GenerateConfig, key: str) -> Iterator[Endpoint]:
    """``base_url`` (params) or ``$OPENAI_BASE_URL`` when set; else a local ``transformers serve``."""
    entry = cfg.generators[key]
    url = cfg.base_url or os.environ.get("OPENAI_BASE_URL", "")
    if url:
        yield Endpoint(url, entry.model, entry.api, key)
        return
    from fairgender_utils.generate.llm_server import serve_local

    with serve_local(entry.model, continuous_batching=cfg.continuous_batching, device=cfg.server_device,
                     startup_timeout_s=cfg.server_startup_timeout_s, seed=cfg.seed,
                     threads=cfg.server_threads, cb_num_blocks=cfg.cb_num_blocks,
                     cb_max_batch_tokens=cfg.cb_max_batch_tokens) as srv:
        print(f"{key}: transformers serve at {srv.base_url} (continuous batching: {srv.continuous_batching}, "
              f"ready in {srv.startup_s:.0f} s, log {srv.log_path})")
        yield Endpoint(srv.base_url, srv.model, entry.api, key)


def _run_cell(cell: Cell, ep: Endpoint, client, cfg: GenerateConfig, swap: cf.SwapList, journal: Journal,
              meta: dict[str, Any], stop: threading.Event) -> int:
    """Steps 1 and 2 of one cell, each taken from the journal when already there; returns new requests."""
    new, text = 0, ""
    for step in (1, 2):
        key = f"{meta['settings']}:{cell.id}:step{step}"
        if key not in journal:
            if stop.is_set():
                return new
            if step == 1:
                prompt = build_prompt(cfg, ep.api, 1, attribute=cell.attribute, target=cell.target)
                mapping: list[tuple[str, str]] = []
            else:
                to = "f" if cell.start == "m" else "m"
                mapping = cf.gender_mapping(text, to, cell.male_word, cell.female_word, cell.target, swap)
                prompt = build_prompt(cfg, ep.api, 2, sentence=text, mapping=mapping_text(mapping))
            rec = complete(client, ep, prompt, decoding(cfg, ep.api, step), cfg.max_retries, cfg.backoff_s,
                           stop)
            journal.add({"key": key, "cell_id": cell.id, "step": step, **meta, "prompt": prompt,
                         "mapping": mapping, **rec})
            new += 1
        text = clean_response(journal.get(key)["raw"])  # type: ignore[index]
        if step == 1 and not cf.check_sentence(text, cell.start, cell.attribute, cell.target, swap,
                                               cfg.min_words, cfg.max_words, cfg.require_end_mark).ok:
            break  # no step 2 for an unusable first sentence
    return new


def generate(ep: Endpoint, cfg: GenerateConfig, swap: cf.SwapList, cells: Sequence[Cell], journal: Journal,
             concurrency: int, phase: str) -> dict[str, Any]:
    """Run both steps for ``cells`` with at most ``concurrency`` requests in flight; return run stats."""
    from fairgender_utils.progress import tqdm

    client = make_client(ep.base_url, cfg.read_timeout_s, cfg.api_key_env, cfg.connect_timeout_s)
    served = Path(ep.model)  # a local server is asked for its absolute folder: the journal keeps it relative
    inside = served.is_absolute() and served.is_relative_to(REPO_ROOT)
    model = os.path.relpath(served, REPO_ROOT) if inside else ep.model
    meta = {"generator": ep.key, "model": model, "api": ep.api, "base_url": ep.public_url,
            "settings": settings_hash(cfg, ep.key),
            "phase": phase, "run_id": uuid.uuid4().hex[:12], "concurrency": concurrency}
    stop, t0, new = threading.Event(), time.perf_counter(), 0
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = [pool.submit(_run_cell, c, ep, client, cfg, swap, journal, meta, stop) for c in cells]
        try:
            with tqdm(total=len(futures), desc=f"{ep.key} [{phase}, concurrency {concurrency}]") as bar:
                pending = set(futures)
                while pending:
                    done, pending = wait(pending, timeout=1.0, return_when=FIRST_EXCEPTION)
                    bar.update(len(done))
                    for f in done:
                        new += f.result()  # re-raises the first worker error (e.g. EndpointUnreachable)
        except BaseException:
            stop.set()
            for f in futures:
                f.cancel()
            raise
    return {"generator": ep.key, "phase": phase, "cells": len(cells), "new_requests": new,
            "wall_s": round(time.perf_counter() - t0, 2), "run_id": meta["run_id"]}


def missing(cfg: GenerateConfig, key: str, swap: cf.SwapList, cells: Sequence[Cell],
            journal: Journal) -> list[Cell]:
    """Cells whose responses are not all journalled yet (no endpoint is needed when this is empty)."""
    settings, out = settings_hash(cfg, key), []
    for c in cells:
        r1, r2 = responses(journal, settings, c)
        if r1 is None or (r2 is None and cf.check_sentence(
                clean_response(r1["raw"]), c.start, c.attribute, c.target, swap, cfg.min_words, cfg.max_words,
                cfg.require_end_mark).ok):
            out.append(c)
    return out


def responses(journal: Journal, settings: str, cell: Cell) -> tuple[dict | None, dict | None]:
    """The journalled step-1 and step-2 records of a cell (None where missing)."""
    return (journal.get(f"{settings}:{cell.id}:step1"), journal.get(f"{settings}:{cell.id}:step2"))


def cell_fields(cell: Cell) -> dict[str, Any]:
    d = asdict(cell)
    return {"id": d["id"], "attr_index": d["attr_index"], "male_word": d["male_word"],
            "female_word": d["female_word"], "target": d["target"], "start": d["start"]}
