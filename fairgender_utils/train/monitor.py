"""What training measures besides its loss: the dev curve and the gradient of each loss term (METHOD.md §5, §9).

**Dev curve.** At step 0 (the untrained model: the base), every ``dev_every`` optimizer steps and at the
last step: the mean J and mean |delta| over every dev pair (split ``dev`` of the generated pairs, not
filtered by the causal stage; :func:`fairgender_utils.lm.objective.pair_objective`, the function the
evaluate stage's primary endpoint uses on the test pairs) and the per-token perplexity of the dev part of
the held-out QNLI questions (:func:`fairgender_utils.lm.objective.text_nll`). Every variant logs it, cda
included. It runs on the main process, in eval mode, and its time is not counted in the step times.

**Gradient parts.** ‖∇L_b‖ and ‖∇L_r‖ of an optimizer step, before clipping. With both terms on, L_b's
gradient is taken by one extra backward pass (``torch.autograd.grad`` of L_b alone on the trainable
parameters, graph kept) and summed over the step's micro-batches; the total gradient the ordinary backward
leaves in ``.grad`` is g = ∇L_b + λ∇L_r, so ∇L_r = (g − ∇L_b)/λ costs nothing more. Also logged: the
cosine between ∇L_b and ∇L_r. The extra pass runs every ``grad_parts_every`` steps (steps 1, 1+N, ...);
with one term only (cda, or λ = 0) both norms come from the total gradient norm at no cost, every step.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

import torch

from fairgender_utils.lm.objective import pair_objective, perplexity, text_nll
from fairgender_utils.loaders.heldout import heldout_texts
from fairgender_utils.loaders.pairs import load_split
from fairgender_utils.train.config import TrainConfig, TrainingError

if TYPE_CHECKING:
    from accelerate import Accelerator


class DevMonitor:
    """The dev pairs and dev texts of a run, and their evaluation by a model."""

    def __init__(self, cfg: TrainConfig, tokenizer, family: str):
        self.pairs = load_split(cfg.pairs_path, "dev")
        if not self.pairs:
            raise TrainingError(f"{cfg.pairs_path}: no pair of split 'dev' to log the dev curve with "
                                "(set dev_every: 0 to train without it)")
        self.texts = heldout_texts(cfg.data_dir, "dev", cfg.dev_ppl_n, cfg.ppl_dev_share, cfg.ppl_split_seed)
        self.cfg, self.tokenizer, self.family = cfg, tokenizer, family

    def due(self, step: int, total: int) -> bool:
        """Whether the dev curve has a point after ``step`` optimizer steps."""
        every = self.cfg.dev_every
        return bool(every) and (step % every == 0 or step == total)

    def evaluate(self, model, step: int) -> dict:
        """One point of the dev curve: step, dev_J, dev_abs_delta, dev_ppl and what they were computed on."""
        t0 = time.perf_counter()
        cfg = self.cfg
        obj = pair_objective(model, self.tokenizer, self.family, self.pairs, cfg.dev_batch_size, cfg.max_length,
                             cfg.context_weight)
        nll = text_nll(model, self.tokenizer, self.family, self.texts, cfg.dev_batch_size)
        return {"step": step, "dev_J": float(obj["J"].mean()), "dev_abs_delta": float(obj["delta"].abs().mean()),
                "dev_ppl": perplexity(nll), "dev_pairs": len(obj), "dev_unscorable": len(obj.attrs["unscorable"]),
                "dev_ppl_sentences": len(nll), "dev_ppl_tokens": int(nll["n_tokens"].sum()),
                "seconds": time.perf_counter() - t0}


class GradParts:
    """‖∇L_b‖, ‖∇L_r‖ and their cosine per optimizer step (see the module docstring)."""

    def __init__(self, params: list[torch.nn.Parameter], every: int, lambda_r: float, use_bias: bool,
                 use_lm: bool):
        self.params, self.every, self.lambda_r = params, every, lambda_r
        self.both = use_bias and use_lm
        self.single = "bias" if use_bias and not use_lm else "lm" if use_lm and not use_bias else None
        self.buffers: list[torch.Tensor] | None = None

    def active(self, done: int) -> bool:
        """Whether the step after ``done`` completed steps takes the extra backward pass."""
        return self.both and bool(self.every) and done % self.every == 0

    def add_bias(self, bias: torch.Tensor) -> None:
        """Add ∇(``bias``) (L_b of a micro-batch, scaled as its backward is) to the step's buffers."""
        if bias.grad_fn is None:
            return
        grads = torch.autograd.grad(bias, self.params, retain_graph=True, allow_unused=True)
        if self.buffers is None:
            self.buffers = [torch.zeros_like(p) for p in self.params]
        for buf, g in zip(self.buffers, grads, strict=True):
            if g is not None:
                buf += g

    def norms(self, accelerator: Accelerator, measured: bool, total_norm: float = float("nan")) -> dict[str, float]:
        """The step's norms: from the buffers and ``.grad`` (``measured``: call it before clipping), else
        from ``total_norm`` = ‖g‖ where one term alone makes the gradient."""
        nan = float("nan")
        if self.single == "bias":
            return {"grad_norm_bias": total_norm, "grad_norm_lm": nan, "grad_cos": nan}
        if self.single == "lm":
            return {"grad_norm_bias": 0.0, "grad_norm_lm": total_norm / self.lambda_r, "grad_cos": nan}
        if not measured:
            return {"grad_norm_bias": nan, "grad_norm_lm": nan, "grad_cos": nan}
        nb2 = nr2 = dot = 0.0
        for p, buf in zip(self.params, self.buffers or [torch.zeros_like(p) for p in self.params], strict=True):
            b = accelerator.reduce(buf, "mean") if accelerator.num_processes > 1 else buf
            g = p.grad if p.grad is not None else torch.zeros_like(p)
            r = g - b
            nb2, nr2, dot = nb2 + float(b.pow(2).sum()), nr2 + float(r.pow(2).sum()), dot + float((b * r).sum())
            buf.zero_()
        cos = dot / math.sqrt(nb2 * nr2) if nb2 and nr2 else nan
        return {"grad_norm_bias": math.sqrt(nb2), "grad_norm_lm": math.sqrt(nr2) / self.lambda_r, "grad_cos": cos}
