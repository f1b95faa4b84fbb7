"""Loading a model for any stage: a folder saved by this project, any Hugging Face folder, or a hub id.

A folder written by the models or train stage carries ``fairgender_source.json`` with its family
(``masked`` or ``causal``); for anything else the family must be given. The tokenizer always gets a
padding token (EOS, else UNK, for causal LMs that have none).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

from fairgender_utils.paths import repo_path

Family = Literal["masked", "causal"]


def load_model(location: str | Path, family: Family | None = None, revision: str | None = None,
               dtype: str = "float32"):
    """Load (model, tokenizer, family) from a folder (relative to the repo root) or a hub id."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

    local = repo_path(location)
    where = str(local) if local.exists() else str(location)
    meta = local / "fairgender_source.json"
    if family is None and meta.exists():
        family = json.loads(meta.read_text())["family"]
    if family is None:
        raise ValueError(f"{location}: no fairgender_source.json there; pass family='masked' or 'causal'")
    cls = AutoModelForMaskedLM if family == "masked" else AutoModelForCausalLM
    kwargs = {"revision": revision} if revision else {}
    tok = AutoTokenizer.from_pretrained(where, **kwargs)
    model = cls.from_pretrained(where, dtype=getattr(torch, dtype), **kwargs)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
    model.eval()
    return model, tok, family


def pad_id(tokenizer) -> int:
    """The id used to pad batches (0 for a tokenizer without one; padded positions are masked anyway)."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


def hub_reachable() -> bool:
    """False when HF_HUB_OFFLINE is set (the offline default of this project's Makefile)."""
    return os.environ.get("HF_HUB_OFFLINE", "0") in ("0", "", "false", "False")


