"""What a training run reads: the causal stage's pairs of the train split, their neighbour index, and the
seeded order in which they are visited (METHOD.md §3.5, §5)."""

from __future__ import annotations

from pathlib import Path

import torch

from fairgender_utils.io import numbered_jsonl, read_jsonl
from fairgender_utils.lm.losses import stable_seed
from fairgender_utils.loaders.formats import DataFormatError
from fairgender_utils.loaders.pairs import split_records
from fairgender_utils.paths import repo_path
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


def collate(items: list[int]) -> torch.Tensor:
    return torch.tensor(items, dtype=torch.long)


def data_files(cfg: TrainConfig) -> list[Path]:
    """The files a run reads: aligned (+ unaligned) pairs and the neighbour index of stage 02; the autodebias
    objective's prompts and word lists."""
    if cfg.objective == "autodebias":
        from fairgender_utils.train import autodebias
        return autodebias.data_files(cfg)
    base = repo_path(cfg.causal_dir)
    return [base / n for n in ("aligned.jsonl", *(["unaligned.jsonl"] if cfg.data == "all" else []),
                               "neighbours.jsonl")]


def _train_split(path: Path) -> list[dict]:
    rows = []
    for lineno, rec, problem in numbered_jsonl(path):
        if problem is not None:
            raise TrainingError(f"{path}:{lineno}: {problem}")
        rows.append((lineno, rec))
    try:
        return split_records(rows, "train", str(path))
    except DataFormatError as err:
        raise TrainingError(str(err)) from None


def load_training_data(cfg: TrainConfig) -> tuple[list[dict], dict[str, list[str]]]:
    """Pairs of ``data`` (aligned, or aligned + unaligned) of the train split, and {id: neighbour ids}
    from ``causal_dir``. Pairs of the dev and test splits are never trained on, whatever stage 02 kept."""
    base = repo_path(cfg.causal_dir)
    files = ["aligned.jsonl"] + (["unaligned.jsonl"] if cfg.data == "all" else [])
    for name in [*files, "neighbours.jsonl"]:
        if not (base / name).exists():
            raise TrainingError(f"{base / name}: not found (run the causal stage first: dvc repro causal)")
    pairs = [p for name in files for p in _train_split(base / name)]
    if cfg.max_pairs:
        pairs = pairs[:cfg.max_pairs]
    if not pairs:
        raise TrainingError(f"no training pairs (split 'train') in {', '.join(str(base / f) for f in files)}")
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
