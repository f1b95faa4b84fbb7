"""Fixtures shared by the tests of fairgender_utils.evaluate."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread: tiny models run many small ops, which a second thread on shared cores slows down."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def tiny(tiny_model_dirs):
    """{'bert'|'roberta'|'albert'|'llama': (model, tokenizer, family)} loaded once per module."""
    from fairgender_utils.lm.loading import load_model

    return {k: load_model(v) for k, v in tiny_model_dirs.items()}
