"""Stage 03: fine-tune a PLM with L = mean_i L_b(i) + λ·L_r (METHOD.md §5) under Hugging Face Accelerate.

    accelerate launch --config_file params/accelerate/cpu.yaml -m fairgender_utils.train \
        --config results/train/fairgender/config.json

The same code runs one CPU process, one GPU or many (DDP); the profile in params/accelerate/ decides.
``batch_size`` is the global number of pairs per optimizer step: gradient accumulation makes up the
difference to ``micro_batch_size`` x processes, so results do not depend on the profile. Checkpoints
(``accelerator.save_state``) go to ``checkpoint_dir`` every ``checkpoint_every`` steps; a rerun resumes
from the newest complete one. At the end: model + tokenizer + ``fairgender_source.json`` +
``training_log.jsonl`` (one line per optimizer step) in ``output_dir``.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import gather_object, set_seed
from torch.utils.flop_counter import FlopCounterMode
from transformers import get_scheduler

from fairgender_utils.train.checkpoints import fingerprint, save_checkpoint, start_or_resume
from fairgender_utils.config import ConfigError
from fairgender_utils.runtime import deterministic
from fairgender_utils.io import append_jsonl, read_jsonl, write_json
from fairgender_utils.lm.losses import stable_seed
from fairgender_utils.lm.heads import PositionLogits
from fairgender_utils.lm.loading import load_model, pad_id
from fairgender_utils.paths import repo_path
from fairgender_utils.progress import tqdm
from fairgender_utils.runtime import matmul_gflops, peak_memory_mib
from fairgender_utils.lm.slots import encode_pairs
from fairgender_utils.train import autodebias
from fairgender_utils.train.batches import TokenInfo, batch_loss, build_batch
from fairgender_utils.train.config import TrainConfig, TrainingError


class EpochOrder(torch.utils.data.Dataset):
    """A seeded permutation of the pairs per epoch, cut to whole global batches."""

    def __init__(self, n: int, keep: int, seed: int):
        self.n, self.keep, self.seed, self.order = n, keep, seed, list(range(n))
        self.use_epoch(0)

    def use_epoch(self, epoch: int) -> None:  # not "set_epoch": accelerate would call that with its own count
        g = torch.Generator().manual_seed(stable_seed(self.seed, "order", epoch) % 2**63)
        self.order = torch.randperm(self.n, generator=g).tolist()

    def __len__(self) -> int:
        return self.keep

    def __getitem__(self, i: int) -> int:
        return self.order[i]


def _collate(items: list[int]) -> torch.Tensor:
    return torch.tensor(items, dtype=torch.long)


def data_files(cfg: TrainConfig) -> list[Path]:
    """The stage-02 files a run reads: aligned (+ unaligned) pairs and the neighbour index."""
    if cfg.objective == "autodebias":
        return autodebias.data_files(cfg)
    base = repo_path(cfg.causal_dir)
    return [base / n for n in ("aligned.jsonl", *(["unaligned.jsonl"] if cfg.data == "all" else []),
                               "neighbours.jsonl")]


def load_training_data(cfg: TrainConfig) -> tuple[list[dict], dict[str, list[str]]]:
    """Pairs of ``data`` (aligned, or aligned + unaligned) and {id: neighbour ids} from ``causal_dir``."""
    base = repo_path(cfg.causal_dir)
    files = ["aligned.jsonl"] + (["unaligned.jsonl"] if cfg.data == "all" else [])
    for name in [*files, "neighbours.jsonl"]:
        if not (base / name).exists():
            raise TrainingError(f"{base / name}: not found (run the causal stage first: dvc repro causal)")
    pairs = [p for name in files for p in read_jsonl(base / name)]
    if cfg.max_pairs:
        pairs = pairs[:cfg.max_pairs]
    if not pairs:
        raise TrainingError(f"no training pairs in {', '.join(str(base / f) for f in files)}")
    key = "neighbours" if cfg.data == "aligned" else "neighbours_all"
    return pairs, {r["id"]: list(r.get(key, [])) for r in read_jsonl(base / "neighbours.jsonl")}


def prepare_model(model, cfg: TrainConfig) -> None:
    """Training mode; optionally no dropout (deterministic) and frozen input embeddings."""
    model.train()
    if not cfg.dropout:
        for mod in model.modules():
            if isinstance(mod, torch.nn.Dropout):
                mod.p = 0.0
            if isinstance(getattr(mod, "attention_dropout", None), float):
                mod.attention_dropout = 0.0
    if cfg.freeze_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)


def optimizer_for(model, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases and normalisation weights (as run_mlm_no_trainer.py)."""
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    no_decay = ("bias", "norm", "LayerNorm")
    decay = [p for n, p in params if not any(k in n for k in no_decay)]
    rest = [p for n, p in params if any(k in n for k in no_decay)]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr)


def _check_finite(accelerator: Accelerator, loss: torch.Tensor, step: int, pair_ids: list[str]) -> None:
    """Stop every process when any has a non-finite loss, naming the step and the batch's pairs."""
    bad = accelerator.gather(torch.tensor([0.0 if torch.isfinite(loss) else 1.0], device=accelerator.device))
    if bad.sum() > 0:
        ids = gather_object([pid for pid in pair_ids] if not torch.isfinite(loss) else [])
        raise TrainingError(f"non-finite loss ({float(loss.detach())}) at step {step + 1}; "
                            f"pairs in the batch: {', '.join(ids)}")


def train(cfg: TrainConfig) -> Path:
    """Run (or resume) one training run of a resolved config with deterministic algorithms; return the
    saved model's folder."""
    with deterministic():
        return _train(cfg)


def _train(cfg: TrainConfig) -> Path:
    accelerator = Accelerator()
    nproc = accelerator.num_processes
    accum, rest = divmod(cfg.batch_size, cfg.micro_batch_size * nproc)
    if rest or not accum:
        raise ConfigError(f"batch_size={cfg.batch_size} is not a multiple of "
                          f"micro_batch_size={cfg.micro_batch_size} x {nproc} process(es)")
    accelerator.gradient_accumulation_steps = accum
    set_seed(cfg.seed)
    with accelerator.main_process_first():
        model, tok, family = load_model(cfg.model_path, family=cfg.family or None)
        if ad := cfg.objective == "autodebias":  # attribute pairs x searched prompts (train/autodebias.py)
            (slots, failed), nb_ids = autodebias.load_examples(cfg, tok, family), {}
        else:
            pairs, nb_ids = load_training_data(cfg)
            slots, failed = encode_pairs(tok, pairs, family, cfg.max_length)
    index = {s.id: n for n, s in enumerate(slots)}
    neighbours = [[index[j] for j in nb_ids.get(s.id, []) if j in index] for s in slots]
    steps_per_epoch = len(slots) // cfg.batch_size
    if not steps_per_epoch:
        raise TrainingError(f"{len(slots)} usable pairs, fewer than batch_size={cfg.batch_size}")
    total = cfg.epochs * steps_per_epoch
    total = min(cfg.max_steps, total) if cfg.max_steps else total
    use_bias, use_lm = cfg.bias_loss, cfg.lambda_r > 0
    tinfo = TokenInfo(pad_id(tok), tok.mask_token_id, model.get_output_embeddings().weight.shape[0],
                      frozenset(tok.all_special_ids))
    prepare_model(model, cfg)
    scorer = (autodebias.SlotAndPooled if ad else PositionLogits)(model)
    frozen = None
    if use_lm and cfg.lm_loss == "kl":
        frozen = PositionLogits(load_model(cfg.model_path, family=family)[0].to(accelerator.device)).eval()
    optimizer = optimizer_for(model, cfg)
    order = EpochOrder(len(slots), steps_per_epoch * cfg.batch_size, cfg.seed)
    loader = torch.utils.data.DataLoader(order, batch_size=cfg.micro_batch_size, shuffle=False,
                                         drop_last=True, collate_fn=_collate)
    # the prepared scheduler steps once per process per optimizer step (as in run_mlm_no_trainer.py)
    scheduler = get_scheduler(cfg.lr_scheduler, optimizer, num_training_steps=total * nproc,
                              num_warmup_steps=math.ceil(cfg.warmup_ratio * total) * nproc)
    scorer, optimizer, loader, scheduler = accelerator.prepare(scorer, optimizer, loader, scheduler)

    run = fingerprint(cfg, data_files(cfg))
    step, resumed_from, log_path = start_or_resume(accelerator, cfg, total, run)
    peak = [matmul_gflops()] if accelerator.is_main_process else []
    accelerator.wait_for_everyone()

    epoch, t_start, first_step = step // steps_per_epoch, time.perf_counter(), step
    flops_per_token = 0.0  # counted on the first step of this run, then used to estimate the others
    bar = tqdm(total=total, initial=step, desc=f"train {cfg.variant}", unit="step",
               disable=not accelerator.is_local_main_process)
    while step < total:
        order.use_epoch(epoch)
        skip = (step - epoch * steps_per_epoch) * accum
        batches = accelerator.skip_first_batches(loader, skip) if skip else loader
        sums, t_step, micro = torch.zeros(5), time.perf_counter(), 0
        for idx in batches:
            torch.manual_seed(stable_seed(cfg.seed, step, micro, accelerator.process_index) % 2**63)
            b = build_batch(slots, idx.tolist(), neighbours, family, tinfo, epoch=epoch, seed=cfg.seed,
                            use_bias=use_bias, use_lm=use_lm, neighbour_sample=cfg.neighbour_sample,
                            w0=cfg.w0, mlm_probability=cfg.mlm_probability,
                            context_weight=cfg.context_weight)
            dev = accelerator.device
            counting = cfg.count_flops and step == first_step  # the counter itself slows a step down
            counter = FlopCounterMode(display=False) if counting else nullcontext()
            with accelerator.accumulate(scorer), counter:
                ids, att = b.input_ids.to(dev), b.attention_mask.to(dev)
                rows, cols, sizes = b.head_positions()
                out = scorer(ids, att, rows.to(dev), cols.to(dev))
                logits = torch.split(out[0] if ad else out, sizes)
                logp0 = None
                if frozen is not None:
                    with torch.no_grad():
                        lm_rows, lm_cols = rows[len(rows) - sizes[-1]:], cols[len(cols) - sizes[-1]:]
                        logp0 = torch.log_softmax(frozen(ids, att, lm_rows.to(dev), lm_cols.to(dev)), -1)
                parts = batch_loss(logits, b, use_bias=use_bias, use_lm=use_lm, w0=cfg.w0,
                                   lambda_r=cfg.lambda_r, context_weight=cfg.context_weight,
                                   logp_frozen=logp0)
                if ad:  # + cos_weight x (1 - cos) of the pooled embeddings of each example's two probes
                    parts = autodebias.add_embedding_term(parts, out[1], b.sides, cfg.cos_weight)
                _check_finite(accelerator, parts["loss"], step, b.pair_ids)
                accelerator.backward(parts["loss"])
                grad_norm = (accelerator.clip_grad_norm_(scorer.parameters(), cfg.max_grad_norm)
                             if accelerator.sync_gradients else None)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            micro += 1
            flops = counter.get_total_flops() if counting else 0.0
            losses = [float(parts[k].detach()) for k in ("loss", "bias", "lm")]
            sums += torch.tensor([*losses, b.tokens, flops])
            if not accelerator.sync_gradients:
                continue
            step += 1
            tot = accelerator.gather(sums[None].to(accelerator.device)).cpu()
            means, summed = tot[:, :3].mean(0) / micro, tot[:, 3:].sum(0)
            if counting:
                flops_per_token = float(summed[1] / summed[0])
            flops = float(summed[1]) if counting else flops_per_token * float(summed[0])
            rec = {"step": step, "epoch": epoch, "loss": float(means[0]), "bias_loss": float(means[1]),
                   "lm_loss": float(means[2]), "lr": scheduler.get_last_lr()[0],
                   "grad_norm": float(grad_norm), "tokens": int(summed[0]), "flops": flops,
                   "flops_counted": counting, "seconds": time.perf_counter() - t_step,
                   "peak_memory_mib": peak_memory_mib()}
            if accelerator.is_main_process:
                append_jsonl(log_path, rec)
            bar.update(1)
            bar.set_postfix(loss=f"{rec['loss']:.4f}", bias=f"{rec['bias_loss']:.4g}")
            if step % cfg.checkpoint_every == 0 or step == total:
                save_checkpoint(accelerator, cfg, step, run)
            sums, t_step, micro = torch.zeros(5), time.perf_counter(), 0
            if step >= total:
                break
        epoch += 1

    bar.close()
    peak += [matmul_gflops()] if accelerator.is_main_process else []
    facts = {"steps": step, "pairs": len(slots), "unscorable_pairs": failed, "num_processes": nproc,
             "gradient_accumulation_steps": accum, "resumed_from": resumed_from,
             "wall_s_this_run": time.perf_counter() - t_start, "matmul_gflops": peak,
             "device": str(accelerator.device), "mixed_precision": accelerator.mixed_precision}
    return _save_final(accelerator, cfg, scorer, tok, family, log_path, facts)


def _save_final(accelerator: Accelerator, cfg: TrainConfig, scorer, tok, family: str, log_path: Path,
                facts: dict) -> Path:
    """unwrap_model + save_pretrained, the tokenizer, the training log and fairgender_source.json."""
    accelerator.wait_for_everyone()
    out = repo_path(cfg.output_dir)
    accelerator.unwrap_model(scorer).model.save_pretrained(out, is_main_process=accelerator.is_main_process,
                                                           save_function=accelerator.save)
    if accelerator.is_main_process:
        tok.save_pretrained(out)
        shutil.copyfile(log_path, out / "training_log.jsonl")
        src = repo_path(cfg.model_path) / "fairgender_source.json"
        meta = json.loads(src.read_text()) if src.exists() else {}
        meta.update({"family": family, "base_model": cfg.model_path, "variant": cfg.variant,
                     "training": facts})
        write_json(out / "fairgender_source.json", meta)
    accelerator.wait_for_everyone()
    return out
