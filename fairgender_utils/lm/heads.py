"""The LM head apart from the body: logits at chosen positions only, never the vocabulary-sized logits of
every position (for a 262k vocabulary that is most of a forward pass).

Masked and causal LMs alike are a body (``model.base_model``) and one head module (BERT ``cls``, RoBERTa
``lm_head``, ALBERT ``predictions``, a causal LM's ``lm_head``). Gemma's final logit soft-capping is
applied as the model's own forward pass applies it. A model laid out otherwise has no separable head: its
callers fall back to the full forward pass. :func:`restricted_logits` goes one step further: the logits of
a few chosen tokens only (the output projection's rows of those tokens).
"""

from __future__ import annotations

import torch


def body_of(model):
    """The transformer without its LM head (hidden states are the same; no vocabulary-sized logits)."""
    base = getattr(model, "base_model", None)
    return base if base is not None and base is not model else model


def lm_head(model) -> torch.nn.Module | None:
    """The module mapping the body's last hidden state to logits, when there is exactly one."""
    base = body_of(model)
    if base is model:
        return None
    heads = [m for _, m in model.named_children() if m is not base]
    return heads[0] if len(heads) == 1 else None


def head_logits(model, head: torch.nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """``head(hidden)`` with the model's final logit soft-capping, where its config has one."""
    logits = head(hidden)
    cap = getattr(model.config, "final_logit_softcapping", None)
    return torch.tanh(logits / cap) * cap if cap else logits


class PositionLogits(torch.nn.Module):
    """A trainable wrapper: the model's logits (float32) at chosen (row, column) positions only."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.head = lm_head(model)

    def forward(self, input_ids, attention_mask, rows, cols):
        if self.head is None:
            return self.model(input_ids=input_ids, attention_mask=attention_mask).logits[rows, cols].float()
        hidden = body_of(self.model)(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return head_logits(self.model, self.head, hidden[rows, cols]).float()


def restricted_logits(model, hidden: torch.Tensor, token_ids: torch.Tensor) -> torch.Tensor:
    """``head_logits(model, head, hidden)[:, token_ids]`` without the vocabulary-sized product: the head runs
    with its output projection (``get_output_embeddings()``) cut to the rows (and biases) of ``token_ids``,
    so the layers before it (BERT's transform, RoBERTa's dense + LayerNorm) run as they are; soft-capping
    as the model's forward pass. Differentiable (the rows are gathered from the projection's weight)."""
    head, out = lm_head(model), model.get_output_embeddings()
    if head is None or out is None:
        raise ValueError(f"{type(model).__name__}: no separable LM head with an output projection")
    weight = out.weight[token_ids]
    bias = None if getattr(out, "bias", None) is None else out.bias[token_ids]
    if head is out:
        logits = torch.nn.functional.linear(hidden, weight, bias)
    else:  # the head's own forward pass, with the projection's parameters replaced by their rows
        override = {}
        for name, p in head.named_parameters(remove_duplicate=False):
            if p is out.weight:
                override[name] = weight
            elif bias is not None and p is out.bias:
                override[name] = bias
        logits = torch.func.functional_call(head, override, (hidden,))
    cap = getattr(model.config, "final_logit_softcapping", None)
    return torch.tanh(logits / cap) * cap if cap else logits
