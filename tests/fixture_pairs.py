"""Hand-written sentence pairs in the pair schema of data/generated/pairs.jsonl (tests only).

Words come from the tiny test models' corpus. ``{g}`` is the gendered word (``{G}`` capitalised, ``{h}``
a pronoun of the same side); the
target word comes after it in most pairs and before it in the rest (the causal-LM word-order case).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

# (template, male word, female word, target, toxic)
TEMPLATES = (
    ("The {g} said that the nurse works at the hospital.", "father", "mother", "nurse", False),
    ("The {g} said that the doctor works at the hospital.", "father", "mother", "doctor", False),
    ("My {g} is a teacher who helps people every day.", "brother", "sister", "teacher", False),
    ("My {g} is an engineer who likes math.", "son", "daughter", "engineer", False),
    ("{G} is a pilot who drives the car.", "he", "she", "pilot", False),
    ("{G} is a secretary at the office.", "he", "she", "secretary", False),
    ("The {g} thinks the doctor is smart.", "king", "queen", "doctor", False),
    ("The {g} and the teacher were at the school.", "uncle", "aunt", "teacher", False),
    ("Her {g} is a nurse at the hospital.", "husband", "wife", "nurse", False),
    ("The {g} said the engineer is very logical.", "man", "woman", "engineer", False),
    ("The {g} said the secretary is very emotional.", "man", "woman", "secretary", False),
    ("The {g} helps the pilot at the office.", "boy", "girl", "pilot", False),
    ("The {g} reads with the teacher at home.", "boy", "girl", "teacher", False),
    ("The {g} likes the nurse because {h} is kind.", "father", "mother", "nurse", False),
    ("The {g} works with the doctor in the team.", "brother", "sister", "doctor", False),
    ("The {g} cooks for the engineer at home.", "husband", "wife", "engineer", False),
    ("The {g} said the nurse is bad and weak.", "man", "woman", "nurse", True),
    ("The {g} said the secretary is bossy and bad.", "father", "mother", "secretary", True),
    # the target comes before the gendered word
    ("The nurse said that {g} works at the hospital.", "he", "she", "nurse", False),
    ("The doctor said that {g} works at the hospital.", "he", "she", "doctor", False),
    ("The teacher thinks the {g} is smart.", "boy", "girl", "teacher", False),
    ("The engineer and {g} were at the office.", "his brother", "her sister", "engineer", False),
    ("The pilot said that the {g} drives the car.", "man", "woman", "pilot", False),
    ("The secretary helps the {g} at the office.", "king", "queen", "secretary", False),
    ("The nurse likes the {g} because {h} is kind.", "father", "mother", "nurse", False),
    ("The doctor is a {g} who reads every day.", "man", "woman", "doctor", False),
    ("The teacher and the {g} were at the school.", "uncle", "aunt", "teacher", False),
    ("The engineer said that {g} likes science.", "he", "she", "engineer", False),
    ("A pilot is a {g} who works at the office.", "man", "woman", "pilot", False),
    ("The secretary said that {g} cooks at home.", "he", "she", "secretary", False),
    ("The nurse said the {g} is very caring.", "husband", "wife", "nurse", False),
    ("The doctor said the {g} is bad and weak.", "man", "woman", "doctor", True),
)
# split of each fixture target word (by target word, as the generate stage assigns them)
SPLITS = {"nurse": "train", "doctor": "train", "teacher": "train", "engineer": "train", "pilot": "dev",
          "secretary": "test"}

# split of each fixture target word (by target word, as the generate stage assigns them)
SPLITS = {"nurse": "train", "doctor": "train", "teacher": "train", "engineer": "train", "pilot": "dev",
          "secretary": "test"}

# split of each fixture target word (by target word, as the generate stage assigns them)
SPLITS = {"nurse": "train", "doctor": "train", "teacher": "train", "engineer": "train", "pilot": "dev",
          "secretary": "test"}


def _fill(template: str, word: str, pronoun: str) -> str:
    return template.replace("{g}", word).replace("{G}", word.capitalize()).replace("{h}", pronoun)


def pairs() -> list[dict]:
    """The fixture pairs, in the pair schema (ids stable across runs)."""
    out = []
    for n, (tpl, m, f, target, toxic) in enumerate(TEMPLATES):
        s_m, s_f = _fill(tpl, m, "he"), _fill(tpl, f, "she")
        digest = hashlib.sha256(f"{s_m}|{s_f}".encode()).hexdigest()[:8]
        out.append({"id": f"p{n:04d}-{digest}", "attr_index": n % 7, "male_word": m, "female_word": f,
                    "target": target, "start": "m" if n % 2 == 0 else "f", "s_m": s_m, "s_f": s_f,
                    "step2": "llm" if n % 3 else "swap", "split": SPLITS[target], "toxicity": 0.9 if toxic else 0.05, "toxic": toxic})
    return out


def opinionated(model_dir: Path, out: Path, init_range: float = 0.2, seed: int = 0) -> Path:
    """A copy of a tiny model re-initialised with larger weights: its predictions depend on the context
    enough for gender effects to be measurable (the 0.02 default gives JSDs near 1e-7)."""
    import shutil

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM

    family = json.loads((model_dir / "fairgender_source.json").read_text())["family"]
    config = AutoConfig.from_pretrained(model_dir)
    config.initializer_range = init_range
    torch.manual_seed(seed)
    model = (AutoModelForCausalLM if family == "causal" else AutoModelForMaskedLM).from_config(config)
    shutil.copytree(model_dir, out, dirs_exist_ok=True)
    model.save_pretrained(out)
    return out


def build_causal_dir(model_dir: Path, out: Path, sim_min: float = 0.0, theta: float = 0.2) -> Path:
    """Run stage 02's functions on the fixture pairs (reference corpus: the tiny models' corpus; θ the
    ``theta``-quantile of the train pool's a, ``sim_min`` an absolute cosine) into ``out``; return the
    folder that holds aligned.jsonl, unaligned.jsonl, neighbours.jsonl and the rest of the stage's data."""
    from fairgender_utils.causal import alignment as causal
    from fairgender_utils.causal import scores, tables, views
    from fairgender_utils.io import write_jsonl
    from fairgender_utils.lm.loading import load_model
    from tests import tiny_models
    from tests.params import stage_config

    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "pairs.jsonl", pairs())
    d = out / "causal"
    cfg = stage_config(
        "causal", pairs_path=str(out / "pairs.jsonl"), data_dir=str(out), model_path=str(model_dir),
        theta_mode="quantile", theta=theta, sim_min_mode="absolute", sim_min=sim_min,
        aligned_path=str(d / "aligned.jsonl"), unaligned_path=str(d / "unaligned.jsonl"),
        neighbours_path=str(d / "neighbours.jsonl"), dev_path=str(d / "dev.jsonl"),
        effects_path=str(d / "effects.csv"), embeddings_path=str(d / "pair_embeddings.safetensors"),
        index_path=str(d / "index.json"), unscreened_dir=str(d / "unscreened"))
    model, tok, family = load_model(model_dir)
    ref = scores.build_reference(model, tok, family, tiny_models.corpus(80), 40, 16, 64)
    train_dev, _ = causal.load_pairs(cfg.pairs_path)
    table, pair_emb, _, _ = tables.score_pairs(model, tok, family, train_dev, ref, cfg)
    pool = views.train_pool(table, cfg.screen_toxic)
    thr = causal.threshold(table["alignment"].to_numpy()[pool], "quantile", theta)
    views.write_outputs(cfg, table, pair_emb, thr, sim_min)
    return d
