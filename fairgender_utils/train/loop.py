"""Stage 03: fine-tune a PLM with L = mean_i L_b(i) + λ·L_r (METHOD.md §5) under Hugging Face Accelerate.

    accelerate launch --config_file params/accelerate/cpu.yaml -m fairgender_utils.train \
        --config results/train/fairgender-s0/config.json

The same code runs one CPU process, one GPU or many (DDP); the profile in params/accelerate/ decides.
``batch_size`` is the global number of pairs per optimizer step: gradient accumulation makes up the
difference to ``micro_batch_size`` x processes, so results do not depend on the profile. Checkpoints
(``accelerator.save_state``) go to ``checkpoint_dir`` every ``checkpoint_every`` steps; a rerun resumes
from the newest complete one. At the end: model + tokenizer + ``fairgender_source.json`` (unless
``save_final`` is off) + ``training_log.jsonl`` (one line per optimizer step: losses, applied learning rate,
gradient norms) + ``dev_log.jsonl`` (the dev curve, :mod:`fairgender_utils.train.monitor`) in ``output_dir``.
"""

from __future__ import annotations

import json
import shutil
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import gather_object, set_seed
from torch.utils.flop_counter import FlopCounterMode

from fairgender_utils.config import ConfigError
from fairgender_utils.io import append_jsonl, write_json
from fairgender_utils.lm.heads import PositionLogits
from fairgender_utils.lm.loading import load_model, pad_id
from fairgender_utils.lm.losses import knn_weights, stable_seed
from fairgender_utils.lm.slots import encode_pairs
from fairgender_utils.paths import repo_path
from fairgender_utils.progress import tqdm
from fairgender_utils.runtime import deterministic, matmul_gflops, peak_memory_mib
from fairgender_utils.train import autodebias
from fairgender_utils.train.batches import TokenInfo, batch_loss, build_batch
from fairgender_utils.train.checkpoints import fingerprint, save_checkpoint, start_or_resume
from fairgender_utils.train.config import TrainConfig, TrainingError
from fairgender_utils.train.data import EpochOrder, collate, data_files, load_training_data, optimizer_for, prepare_model
from fairgender_utils.train.monitor import DevMonitor, GradParts
from fairgender_utils.train.reference import build_reference
from fairgender_utils.train.schedule import scheduler as lr_scheduler


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
    use_bias, use_lm = cfg.bias_loss, cfg.lambda_r > 0
    with accelerator.main_process_first():
        model, tok, family = load_model(cfg.model_path, family=cfg.family or None)
        dev = DevMonitor(cfg, tok, family) if cfg.dev_every and accelerator.is_main_process else None
        if ad := cfg.objective == "autodebias":  # attribute pairs x searched prompts (train/autodebias.py)
            (slots, failed), nb_ids = autodebias.load_examples(cfg, tok, family), {}
        else:
            pairs, nb_ids = load_training_data(cfg)
            slots, failed = encode_pairs(tok, pairs, family, cfg.max_length)
        reference = build_reference(  # the frozen model's predictions: before any training or resume
            model, tok, family, cfg.data_dir, cfg.kl_reference_tasks, cfg.kl_reference_size,
            cfg.kl_reference_min_words, cfg.kl_top_k, cfg.max_length, cfg.seed, cfg.mlm_probability,
            cfg.kl_sentences_per_pair, cfg.dev_batch_size) if use_lm and cfg.lm_loss == "kl" else None
    index = {s.id: n for n, s in enumerate(slots)}
    neighbours = [[index[j] for j in nb_ids.get(s.id, []) if j in index] for s in slots]
    weights = knn_weights(neighbours, cfg.w0) if cfg.knn_mode == "weights" else None
    steps_per_epoch = len(slots) // cfg.batch_size
    if not steps_per_epoch:
        raise TrainingError(f"{len(slots)} usable pairs, fewer than batch_size={cfg.batch_size}")
    total = cfg.epochs * steps_per_epoch
    total = min(cfg.max_steps, total) if cfg.max_steps else total
    tinfo = TokenInfo(pad_id(tok), tok.mask_token_id, model.get_output_embeddings().weight.shape[0],
                      frozenset(tok.all_special_ids))
    prepare_model(model, cfg)
    scorer = (autodebias.SlotAndPooled if ad else PositionLogits)(model)
    optimizer = optimizer_for(model, cfg)
    order = EpochOrder(len(slots), steps_per_epoch * cfg.batch_size, cfg.seed)
    loader = torch.utils.data.DataLoader(order, batch_size=cfg.micro_batch_size, shuffle=False,
                                         drop_last=True, collate_fn=collate)
    scheduler = lr_scheduler(optimizer, cfg.warmup_steps, total, cfg.lr_scheduler, nproc)
    scorer, optimizer, loader, scheduler = accelerator.prepare(scorer, optimizer, loader, scheduler)
    parts_of = GradParts([p for p in scorer.parameters() if p.requires_grad], cfg.grad_parts_every,
                         cfg.lambda_r, use_bias, use_lm)

    run = fingerprint(cfg, data_files(cfg))
    step, resumed_from, log_path = start_or_resume(accelerator, cfg, total, run)
    dev_path = log_path.parent / "dev_log.jsonl"
    peak = [matmul_gflops()] if accelerator.is_main_process else []
    if dev is not None and step == 0 and cfg.dev_at_start:
        append_jsonl(dev_path, dev.evaluate(accelerator.unwrap_model(scorer).model, 0))
    accelerator.wait_for_everyone()

    epoch, t_start = step // steps_per_epoch, time.perf_counter()
    flops_per_token: dict[bool, float] = {}  # counted on the first step of each kind (with or without
    # the extra backward of the gradient parts), then used to estimate the others
    bar = tqdm(total=total, initial=step, desc=f"train {cfg.run}", unit="step",
               disable=not accelerator.is_local_main_process)
    while step < total:
        order.use_epoch(epoch)
        skip = (step - epoch * steps_per_epoch) * accum
        batches = accelerator.skip_first_batches(loader, skip) if skip else loader
        sums, t_step, micro = torch.zeros(5), time.perf_counter(), 0
        measured = parts_of.active(step)
        counting = cfg.count_flops and measured not in flops_per_token  # the counter slows a step down
        lr = optimizer.param_groups[0]["lr"]  # the learning rate this step applies
        for idx in batches:
            torch.manual_seed(stable_seed(cfg.seed, step, micro, accelerator.process_index) % 2**63)
            b = build_batch(slots, idx.tolist(), neighbours, family, tinfo, epoch=epoch, seed=cfg.seed,
                            use_bias=use_bias, use_lm=use_lm, neighbour_sample=cfg.neighbour_sample,
                            w0=cfg.w0, mlm_probability=cfg.mlm_probability, context_weight=cfg.context_weight,
                            weights=weights, reference=reference)
            dev_ = accelerator.device
            counter = FlopCounterMode(display=False) if counting else nullcontext()
            with accelerator.accumulate(scorer), counter:
                rows, cols, sizes = b.head_positions()
                out = scorer(b.input_ids.to(dev_), b.attention_mask.to(dev_), rows.to(dev_), cols.to(dev_))
                logits = torch.split(out[0] if ad else out, sizes)
                parts = batch_loss(logits, b, use_bias=use_bias, use_lm=use_lm, w0=cfg.w0,
                                   lambda_r=cfg.lambda_r, context_weight=cfg.context_weight, reference=reference)
                if ad:  # + cos_weight x (1 - cos) of the pooled embeddings of each example's two probes
                    parts = autodebias.add_embedding_term(parts, out[1], b.sides, cfg.cos_weight)
                _check_finite(accelerator, parts["loss"], step, b.pair_ids)
                if measured:
                    parts_of.add_bias(parts["bias"] / accum)
                accelerator.backward(parts["loss"])
                grad_norm, norms = None, {}
                if accelerator.sync_gradients:
                    norms = parts_of.norms(accelerator, True) if measured else {}  # before clipping
                    grad_norm = accelerator.clip_grad_norm_(scorer.parameters(), cfg.max_grad_norm)
                    norms = norms or parts_of.norms(accelerator, False, float(grad_norm))
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
                flops_per_token[measured] = float(summed[1] / summed[0])
            flops = float(summed[1]) if counting else flops_per_token.get(measured, 0.0) * float(summed[0])
            rec = {"step": step, "epoch": epoch, "loss": float(means[0]), "bias_loss": float(means[1]),
                   "lm_loss": float(means[2]), "lr": lr, "grad_norm": float(grad_norm), **norms,
                   "grad_parts_measured": measured, "tokens": int(summed[0]), "flops": flops,
                   "flops_counted": counting, "seconds": time.perf_counter() - t_step,
                   "peak_memory_mib": peak_memory_mib()}
            if accelerator.is_main_process:
                append_jsonl(log_path, rec)
            bar.update(1)
            bar.set_postfix(loss=f"{rec['loss']:.4f}", bias=f"{rec['bias_loss']:.4g}")
            if dev is not None and dev.due(step, total):
                append_jsonl(dev_path, dev.evaluate(accelerator.unwrap_model(scorer).model, step))
            if step % cfg.checkpoint_every == 0 or (step == total and cfg.save_final):
                save_checkpoint(accelerator, cfg, step, run)
            sums, t_step, micro = torch.zeros(5), time.perf_counter(), 0
            measured = parts_of.active(step)
            counting = cfg.count_flops and measured not in flops_per_token
            lr = optimizer.param_groups[0]["lr"]
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
    """unwrap_model + save_pretrained, the tokenizer (unless ``save_final`` is off), the training and dev
    logs and fairgender_source.json."""
    accelerator.wait_for_everyone()
    out = repo_path(cfg.output_dir)
    if cfg.save_final:
        accelerator.unwrap_model(scorer).model.save_pretrained(
            out, is_main_process=accelerator.is_main_process, save_function=accelerator.save)
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        if cfg.save_final:
            tok.save_pretrained(out)
        shutil.copyfile(log_path, out / "training_log.jsonl")
        dev_log = log_path.parent / "dev_log.jsonl"
        if dev_log.exists():
            shutil.copyfile(dev_log, out / "dev_log.jsonl")
        src = repo_path(cfg.model_path) / "fairgender_source.json"
        meta = json.loads(src.read_text()) if src.exists() else {}
        meta.update({"family": family, "base_model": cfg.model_path, "variant": cfg.variant, "run": cfg.run,
                     "seed": cfg.seed, "training": facts})
        write_json(out / "fairgender_source.json", meta)
    accelerator.wait_for_everyone()
    return out
