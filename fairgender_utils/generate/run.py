"""Generate stage: two-step LLM generation of attribute-balanced counterfactual sentence pairs.

For each grid cell (METHOD.md §3), step 1 asks for a sentence with the attribute word and the target word,
up to ``candidates`` times (each candidate with its own few-shot draw) until one passes the sentence
checks; step 2 asks the LLM, up to ``step2_candidates`` times, to rewrite that sentence with the given
gender mapping; when no rewrite makes a valid pair, the deterministic swap is the fallback
(``step2: swap``). :func:`resolve_cell` is the one procedure for both asking and replaying: it takes its
answers from ``ask``, which reads the journal and asks the endpoint only for what is not there. Every
response goes to the journal as it arrives, so a rerun resumes and never asks twice.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fairgender_utils.generate import counterfactual as cf
from fairgender_utils.generate.cells import SPLITS, Cell, assign_splits, cell_fields, sample_cells
from fairgender_utils.generate.config import GenerateConfig
from fairgender_utils.generate.forms import inflect_like, inflected_pairs
from fairgender_utils.generate.llm_client import Endpoint, Journal, complete, make_client
from fairgender_utils.generate.prompts import (build_prompt, clean_response, decoding, mapping_text, prompt_hash,
                                              request_seed, settings_hash, step1_prefill, step2_prefill,
                                              templates)
from fairgender_utils.loaders import GenderWords
from fairgender_utils.paths import REPO_ROOT

__all__ = ["SPLITS", "Cell", "Outcome", "assign_splits", "build_prompt", "cell_fields", "clean_response",
           "decoding", "generate", "journal_ask", "mapping_text", "missing", "open_endpoint", "resolve_cell",
           "sample_cells", "settings_hash", "swap_list", "templates"]

# ask(key, step, candidate, prompt, prefill, mapping) -> the journal record, or None when not journalled
Ask = Callable[[str, int, int, Any, str, list], "dict[str, Any] | None"]


@dataclass
class Outcome:
    """What became of one cell: status ``llm`` / ``swap`` (a pair), ``rejected`` or ``incomplete`` (not all
    answers journalled yet); ``keys`` lists every journal record the cell used, failed candidates too."""

    status: str
    s_m: str = ""
    s_f: str = ""
    reason: str = ""
    detail: str = ""
    forms: tuple[str, ...] = ()
    step2_reason: str = ""  # why the LLM rewrite failed, for a swapped pair
    keys: list[str] = field(default_factory=list)
    step1_tries: int = 0
    step2_tries: int = 0


def journal_key(settings: str, cell: Cell, step: int, k: int, prompt: Any) -> str:
    return f"{settings}:{cell.id}:step{step}:c{k}:{prompt_hash(prompt)}"


def resolve_cell(cell: Cell, cfg: GenerateConfig, api: str, swap: cf.SwapList, ask: Ask,
                 settings: str) -> Outcome:
    """Steps 1 and 2 of one cell with the yield levers of ``cfg``; answers come from ``ask``."""
    limits = (cfg.min_words, cfg.max_words, cfg.require_end_mark)
    out = Outcome("rejected")
    other = "f" if cell.start == "m" else "m"
    for k in range(cfg.candidates):
        pre = step1_prefill(cfg, api, cell.attribute)
        prompt = build_prompt(cfg, api, 1, cell.id, k, pre, attribute=cell.attribute, target=cell.target)
        key = journal_key(settings, cell, 1, k, prompt)
        rec = ask(key, 1, k, prompt, pre, [])
        if rec is None:
            return Outcome("incomplete", keys=out.keys)
        out.keys.append(key)
        out.step1_tries = k + 1
        text = clean_response(pre + rec["raw"])
        c = cf.check_sentence(text, cell.start, cell.attribute, cell.target, swap, *limits, inflect=cfg.inflect)
        if not c.ok:
            first = {cell.start: text, other: ""}
            out.s_m, out.s_f, out.reason, out.detail = first["m"], first["f"], f"step1_{c.reason}", c.detail
            continue
        return _step2(cell, cfg, api, swap, ask, settings, text, c.forms, out)
    return out


def _step2(cell: Cell, cfg: GenerateConfig, api: str, swap: cf.SwapList, ask: Ask, settings: str, text: str,
           forms: tuple[str, ...], out: Outcome) -> Outcome:
    """Step 2 for the kept step-1 sentence: LLM rewrites, then the deterministic swap as the fallback."""
    limits = (cfg.min_words, cfg.max_words, cfg.require_end_mark)
    a_form, t_form = forms
    partner = cell.female_word if cell.start == "m" else cell.male_word
    pf = inflect_like(partner, cell.attribute, a_form)
    m_form, f_form = (a_form, pf) if cell.start == "m" else (pf, a_form)
    to = "f" if cell.start == "m" else "m"
    mapping = cf.gender_mapping(text, to, m_form, f_form, t_form, swap)
    args = (cell.start, cell.male_word, cell.female_word, cell.target, swap, *limits, cfg.inflect)

    def pair(second: str) -> tuple[str, str]:
        return (text, second) if cell.start == "m" else (second, text)

    for j in range(cfg.step2_candidates):
        pre = step2_prefill(cfg, api, text, mapping)
        prompt = build_prompt(cfg, api, 2, cell.id, j, pre, sentence=text, mapping=mapping_text(mapping))
        key = journal_key(settings, cell, 2, j, prompt)
        rec = ask(key, 2, j, prompt, pre, mapping)
        if rec is None:
            return Outcome("incomplete", keys=out.keys)
        out.keys.append(key)
        out.step2_tries = j + 1
        s_m, s_f = pair(clean_response(pre + rec["raw"]))
        v = cf.validate_pair(s_m, s_f, *args)
        if v.ok:
            out.status, out.s_m, out.s_f, out.forms, out.reason, out.detail = "llm", s_m, s_f, v.forms, "", ""
            return out
        out.s_m, out.s_f, out.reason, out.detail = s_m, s_f, v.reason, v.detail
    if cfg.swap_fallback:
        s_m, s_f = pair(cf.swap_gender(text, to, m_form, f_form, t_form, swap))
        v = cf.validate_pair(s_m, s_f, *args)
        if v.ok:
            out.step2_reason = out.reason
            out.status, out.s_m, out.s_f, out.forms, out.reason, out.detail = "swap", s_m, s_f, v.forms, "", ""
            return out
        out.step2_reason, out.detail = v.reason, f"{out.detail}; the swap fails too: {v.detail}"
    return out


def swap_list(cfg: GenerateConfig, words: GenderWords) -> cf.SwapList:
    """The validation swap list: with ``inflect``, the attribute pairs' inflected forms too."""
    return cf.build_swap_list([*words.swap_pairs, *inflected_pairs(words.pairs)] if cfg.inflect
                              else words.swap_pairs)


def journal_ask(journal: Journal) -> Ask:
    """Replay: answers from the journal only."""
    return lambda key, *_: journal.get(key)


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


class _Stopped(Exception):
    """Another cell failed for good: ask nothing more."""


def _asker(cfg: GenerateConfig, ep: Endpoint, client, journal: Journal, meta: dict[str, Any], cell: Cell,
           stop: threading.Event, counter: list[int]) -> Ask:
    def ask(key: str, step: int, k: int, prompt: Any, prefill: str, mapping: list) -> dict[str, Any]:
        rec = journal.get(key)
        if rec is None:
            if stop.is_set():
                raise _Stopped
            params = {**decoding(cfg, ep.api, step), "seed": request_seed(cfg, cell.id, step, k)}
            reply = complete(client, ep, prompt, params, cfg.max_retries, cfg.backoff_s, stop, cfg.stream, prefill)
            rec = {"key": key, "cell_id": cell.id, "step": step, "candidate": k, **meta, "prompt": prompt,
                   "prefill": prefill, "mapping": mapping, "request": params, **reply}
            journal.add(rec)
            counter[0] += 1
        return rec
    return ask


def generate(ep: Endpoint, cfg: GenerateConfig, swap: cf.SwapList, cells: Sequence[Cell], journal: Journal,
             concurrency: int, phase: str) -> dict[str, Any]:
    """Resolve ``cells`` with at most ``concurrency`` cells (so requests) in flight; return run stats."""
    from fairgender_utils.progress import tqdm

    client = make_client(ep.base_url, cfg.read_timeout_s, cfg.api_key_env, cfg.connect_timeout_s)
    served = Path(ep.model)  # a local server is asked for its absolute folder: the journal keeps it relative
    inside = served.is_absolute() and served.is_relative_to(REPO_ROOT)
    model = os.path.relpath(served, REPO_ROOT) if inside else ep.model
    settings = settings_hash(cfg, ep.key)
    meta = {"generator": ep.key, "model": model, "api": ep.api, "base_url": ep.public_url, "settings": settings,
            "phase": phase, "run_id": uuid.uuid4().hex[:12], "concurrency": concurrency}
    stop, t0, counter = threading.Event(), time.perf_counter(), [0]

    def work(cell: Cell) -> None:
        with contextlib.suppress(_Stopped):
            resolve_cell(cell, cfg, ep.api, swap, _asker(cfg, ep, client, journal, meta, cell, stop, counter),
                         settings)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = [pool.submit(work, c) for c in cells]
        try:
            with tqdm(total=len(futures), desc=f"{ep.key} [{phase}, concurrency {concurrency}]") as bar:
                pending = set(futures)
                while pending:
                    done, pending = wait(pending, timeout=1.0, return_when=FIRST_EXCEPTION)
                    bar.update(len(done))
                    for f in done:
                        f.result()  # re-raises the first worker error (e.g. EndpointUnreachable)
        except BaseException:
            stop.set()
            for f in futures:
                f.cancel()
            raise
    return {"generator": ep.key, "phase": phase, "cells": len(cells), "new_requests": counter[0],
            "wall_s": round(time.perf_counter() - t0, 2), "run_id": meta["run_id"]}


def missing(cfg: GenerateConfig, key: str, swap: cf.SwapList, cells: Sequence[Cell],
            journal: Journal) -> list[Cell]:
    """Cells whose answers are not all journalled yet (no endpoint is needed when this is empty)."""
    settings, api = settings_hash(cfg, key), cfg.generators[key].api
    return [c for c in cells
            if resolve_cell(c, cfg, api, swap, journal_ask(journal), settings).status == "incomplete"]
