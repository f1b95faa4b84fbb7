"""Forward passes shared by the stages: sentence embeddings from a masked or causal LM."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from fairgender_utils.progress import tqdm


def length_sorted_batches(texts: Sequence[str], batch_size: int) -> list[list[int]]:
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
