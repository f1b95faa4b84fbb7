"""Corrupted controls (METHOD.md §4): pairs that the alignment filter must score below real ones.

Built from the stage's own pairs, each with a seed of its own (stable across runs and processes):
``shuffled`` permutes the words of both sentences (the same permutation on both sides, sentence case and
the final mark kept), ``replaced`` puts one random frequent word, unrelated to gender and to the target
words, in place of the target in both sentences. They are scored exactly as the real pairs are.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from fairgender_utils.lm.losses import stable_seed
from fairgender_utils.lm.slots import word_chars
from fairgender_utils.loaders import load_gender_words
from fairgender_utils.paths import repo_path

KINDS = ("shuffled", "replaced")


def control_words(path: str, data_dir: str, exclude: Sequence[str] = ()) -> list[str]:
    """Words of a frequency list (first column), alphabetic and of 3 letters or more, without any
    gendered word (the swap list: pronouns, bias-bench pairs, attribute pairs), any target word of the
    word lists, or a word of ``exclude``."""
    gw = load_gender_words(repo_path(data_dir))
    banned = {w.lower() for pair in gw.swap_pairs for side in pair for w in side.split()}
    banned |= {w.lower() for w in (*gw.targets, *exclude)}
    words = []
    for line in repo_path(path).read_text(encoding="utf-8").splitlines():
        w = line.split()[0] if line.strip() else ""
        if w.isalpha() and len(w) >= 3 and w.lower() not in banned:
            words.append(w.lower())
    if not words:
        raise ValueError(f"{path}: no usable control word (alphabetic, 3+ letters, not gendered or a target)")
    return list(dict.fromkeys(words))


def _uncap(word: str) -> str:
    """A sentence-initial capital undone ("The" -> "the"; "I", "NATO" and "McDonald" kept)."""
    return word[0].lower() + word[1:] if len(word) > 1 and word[1:].islower() else word


def shuffle_words(sentence: str, rng: random.Random) -> str:
    """The sentence's words in a random order other than the original (when it has two or more)."""
    words = sentence.split()
    mark = words[-1][-1] if words and words[-1][-1] in ".!?" and len(words[-1]) > 1 else ""
    if mark:
        words[-1] = words[-1][:-1]
    words[0] = _uncap(words[0])
    order = list(range(len(words)))
    while len(order) > 1 and order == sorted(order):
        rng.shuffle(order)
    out = [words[i] for i in order]
    out[0] = out[0][:1].upper() + out[0][1:]
    return " ".join(out) + mark


def replace_word(sentence: str, word: str, new: str) -> str:
    """The first whole-word occurrence of ``word`` replaced by ``new`` (capitalised where it was)."""
    a, b = word_chars(sentence, word)
    return sentence[:a] + (new.capitalize() if sentence[a].isupper() else new) + sentence[b:]


def build_controls(pairs: Sequence[dict[str, Any]], words: Sequence[str], seed: int,
                   per_pair: int = 1) -> list[dict[str, Any]]:
    """For each pair ``per_pair`` controls of each kind: id ``<pair id>~<kind>~<n>``, source, kind, split,
    s_m, s_f."""
    out = []
    for p in pairs:
        for kind in KINDS:
            for n in range(per_pair):
                rng = random.Random(stable_seed(seed, p["id"], kind, n))
                if kind == "shuffled":
                    state = rng.getstate()
                    s_m = shuffle_words(p["s_m"], rng)
                    rng.setstate(state)  # the same permutation on both sides
                    s_f = shuffle_words(p["s_f"], rng)
                else:
                    new = rng.choice(words)
                    s_m = replace_word(p["s_m"], p["target"], new)
                    s_f = replace_word(p["s_f"], p["target"], new)
                out.append({"id": f"{p['id']}~{kind}~{n}", "source": p["id"], "kind": kind,
                            "split": p["split"], "s_m": s_m, "s_f": s_f})
    return out
