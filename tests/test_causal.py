"""Stage 02: locating words in every tokenizer family, the word-order rule, effects, KNN, split, index."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from transformers import AutoTokenizer

from fairgender_utils.causal import alignment as causal
from fairgender_utils.causal import diagnostics as causal_report
from fairgender_utils.causal.alignment import EmptyAlignedSet
from fairgender_utils.causal.effects import pair_effects
from fairgender_utils.io import read_jsonl, write_jsonl
from fairgender_utils.lm.loading import load_model
from fairgender_utils.paths import REPO_ROOT
from fairgender_utils.lm.slots import encode_pair, encode_pairs, word_chars
from tests import fixture_pairs, tiny_models

PAIRS = fixture_pairs.pairs()


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # faster than 2 on a busy 2-core machine, and deterministic
    yield
    torch.set_num_threads(n)


def _clean(token: str) -> str:
    return token.replace("Ġ", "").replace("▁", "").replace("##", "").lower()


@pytest.mark.parametrize("kind", list(tiny_models.FAMILIES))
def test_words_are_located_in_every_tokenizer(kind, tiny_model_dirs) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_model_dirs[kind])
    family = tiny_models.FAMILIES[kind]
    slots, failed = encode_pairs(tok, PAIRS, family)
    assert not failed and len(slots) == len(PAIRS)
    for p, s in zip(PAIRS, slots):
        for ids, span in ((s.ids_m, s.target_m), (s.ids_f, s.target_f)):
            pieces = tok.convert_ids_to_tokens(list(ids[span[0]:span[1]]))
            assert "".join(_clean(t) for t in pieces) == p["target"]
        word_m = "".join(_clean(t) for t in tok.convert_ids_to_tokens(list(s.ids_m[s.diff_m[0]:s.diff_m[1]])))
        word_f = "".join(_clean(t) for t in tok.convert_ids_to_tokens(list(s.ids_f[s.diff_f[0]:s.diff_f[1]])))
        # the first difference: the (first word of the) attribute
        assert (word_m, word_f) == (p["male_word"].split()[0], p["female_word"].split()[0])


@pytest.mark.parametrize("kind", list(tiny_models.FAMILIES))
def test_gendered_word_sharing_a_first_token(kind, tiny_model_dirs) -> None:
    # "baron" / "baroness" may share their first token: the first differing *token* is then "was" vs
    # "ess", but the gendered word is still "baron" vs "baroness"
    tok = AutoTokenizer.from_pretrained(tiny_model_dirs[kind])
    pair = {"id": "b", "s_m": "The baron was a nurse.", "s_f": "The baroness was a nurse.", "target": "nurse"}
    s = encode_pair(tok, pair, tiny_models.FAMILIES[kind])

    def word(ids, span):
        return "".join(_clean(t) for t in tok.convert_ids_to_tokens(list(ids[span[0]:span[1]])))

    assert (word(s.ids_m, s.diff_m), word(s.ids_f, s.diff_f)) == ("baron", "baroness")
    if tiny_models.FAMILIES[kind] == "causal":
        assert s.rule == "target_slot"
        after = tok.convert_ids_to_tokens([s.ids_m[a] for a, _ in s.shared])
        assert _clean(after[0]) == "was"


def test_rules_follow_word_order(tiny_model_dirs) -> None:
    causal_tok = AutoTokenizer.from_pretrained(tiny_model_dirs["llama"])
    masked_tok = AutoTokenizer.from_pretrained(tiny_model_dirs["bert"])
    rules = set()
    for p in PAIRS:
        gendered = p["male_word"].split()[0]
        target_first = word_chars(p["s_m"], p["target"])[0] < word_chars(p["s_m"], gendered)[0]
        s = encode_pair(causal_tok, p, "causal")
        assert s.rule == ("attribute_logodds" if target_first else "target_slot"), p["s_m"]
        assert s.shared  # tokens after the first difference that both sentences share
        assert encode_pair(masked_tok, p, "masked").rule == "target_slot"
        rules.add(s.rule)
    assert rules == {"attribute_logodds", "target_slot"}


def test_no_pair_gets_zero_effect_from_word_order(tiny_model_dirs) -> None:
    model, tok, family = load_model(tiny_model_dirs["llama"])
    eff, failed = pair_effects(model, tok, family, PAIRS, batch_size=8)
    assert not failed
    first = eff[eff["rule"] == "attribute_logodds"]
    assert len(first) >= 10
    # the naive target-slot JSD vanishes when the target precedes the gendered word (shared prefix) ...
    assert (first["slot_jsd"].abs() < 1e-6).all()
    # ... so those pairs use |omega|, which does not
    assert (first["tau"] > 1e-4).all() and np.allclose(first["tau"], first["omega"].abs())
    assert (eff["tau"] > 0).all() and eff["context_jsd"].notna().all()
    later = eff[eff["rule"] == "target_slot"]
    assert (later["tau"] == later["slot_jsd"]).all() and later["omega"].isna().all()


@pytest.mark.parametrize("kind", ["bert", "llama"])
def test_swapping_the_sides_flips_the_signed_effect(kind, tiny_model_dirs) -> None:
    model, tok, family = load_model(tiny_model_dirs[kind])
    swapped = [{**p, "s_m": p["s_f"], "s_f": p["s_m"]} for p in PAIRS[:12] + PAIRS[-6:]]
    a = pair_effects(model, tok, family, PAIRS[:12] + PAIRS[-6:])[0].set_index("id")
    b = pair_effects(model, tok, family, swapped)[0].set_index("id").loc[a.index]
    assert np.allclose(a["effect"], -b["effect"], atol=1e-5)
    assert np.allclose(a["tau"], b["tau"], atol=1e-6)
    if family == "masked":
        assert (a["tau"] > 0).all() and a["loglik_m"].lt(0).all()  # pseudo-log-likelihood per token


def test_unscorable_pair_is_reported_not_dropped_silently(tiny_model_dirs) -> None:
    model, tok, family = load_model(tiny_model_dirs["llama"])
    bad = {**PAIRS[0], "id": "bad", "target": "astronaut"}
    eff, failed = pair_effects(model, tok, family, [PAIRS[0], bad])
    assert list(eff["id"]) == [PAIRS[0]["id"]]
    assert "bad" in failed and "astronaut" in failed["bad"]


def test_knn_is_exact() -> None:
    g = torch.Generator().manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(37, 8, generator=g), dim=-1)
    k = torch.nn.functional.normalize(torch.randn(53, 8, generator=g), dim=-1)
    sims, idx = causal.knn(q, k, 5, chunk=10)
    brute = (q @ k.T).numpy()
    assert np.array_equal(idx.numpy(), np.argsort(-brute, axis=1)[:, :5])
    assert np.allclose(sims.numpy(), np.sort(brute, axis=1)[:, ::-1][:, :5], atol=1e-6)
    _, i2 = causal.knn(q, q, 3, chunk=10, exclude_self=True)
    assert not (i2 == torch.arange(37)[:, None]).any()


def test_alignment_hand_example() -> None:
    ref = torch.eye(3)  # e1, e2, e3
    m = torch.tensor([[1.0, 0.0, 0.0]])  # cosines 1, 0, 0 -> top-2 mean 0.5
    f = torch.nn.functional.normalize(torch.tensor([[1.0, 1.0, 0.0]]), dim=-1)  # .7071, .7071, 0 -> .7071
    assert causal.alignment(m, f, ref, k=2).item() == pytest.approx((0.5 + 2**-0.5) / 2, abs=1e-6)


def test_split_by_quantile_absolute_and_tau_min() -> None:
    a = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    tau = np.array([1.0, 1.0, 0.0, 1.0, 1.0])
    keep, thr = causal.split(a, tau, "quantile", 0.4)
    assert thr == pytest.approx(0.26) and keep.tolist() == [False, False, True, True, True]
    keep, thr = causal.split(a, tau, "absolute", 0.3, tau_min=0.5)
    assert thr == 0.3 and keep.tolist() == [False, False, False, True, True]


def test_empty_aligned_set_names_theta_and_range() -> None:
    with pytest.raises(EmptyAlignedSet) as err:
        causal.split(np.array([0.2, 0.35]), np.array([0.1, 0.2]), "absolute", 0.9)
    msg = str(err.value)
    assert "theta=0.9 (absolute)" in msg and "[0.2000, 0.3500]" in msg


def test_neighbour_index_respects_k_and_similarity() -> None:
    rows = [[1.0, 0.0], [0.9, 0.1], [0.8, 0.3], [0.0, 1.0]]
    emb = torch.nn.functional.normalize(torch.tensor(rows), dim=-1)
    nb = causal.neighbour_index(emb, k_c=2, sim_min=0.5)
    assert nb[0][0] == [1, 2] and nb[0][1][0] >= nb[0][1][1] >= 0.5
    assert nb[3] == ([], [])  # its best match has cosine 0.35 < sim_min
    assert all(i not in ids for i, (ids, _) in enumerate(nb))
    assert causal.neighbour_index(emb, k_c=0, sim_min=0.0) == [([], [])] * 4


@pytest.fixture(scope="module")
def causal_outputs(tiny_model_dirs, tmp_path_factory):
    return fixture_pairs.build_causal_dir(tiny_model_dirs["llama"], tmp_path_factory.mktemp("causal"))


def test_views_screen_toxic_pairs(causal_outputs) -> None:
    toxic = {p["id"] for p in PAIRS if p["toxic"]}
    aligned = {r["id"] for r in read_jsonl(causal_outputs / "aligned.jsonl")}
    unaligned = {r["id"] for r in read_jsonl(causal_outputs / "unaligned.jsonl")}
    assert not (aligned | unaligned) & toxic and len(aligned | unaligned) == len(PAIRS) - len(toxic)
    un = causal_outputs / "unscreened"
    pool = {r["id"] for name in ("aligned.jsonl", "unaligned.jsonl") for r in read_jsonl(un / name)}
    assert pool == {p["id"] for p in PAIRS}
    for rec in read_jsonl(causal_outputs / "neighbours.jsonl"):
        assert set(rec["neighbours"]) <= aligned and set(rec["neighbours_all"]) <= aligned | unaligned
        assert rec["id"] not in rec["neighbours_all"] and (rec["aligned"] or not rec["neighbours"])
    table = pd.read_csv(causal_outputs / "effects.csv")
    assert set(table.loc[table["aligned"], "id"]) == aligned
    assert {"tau", "effect", "rule", "alignment", "loglik", "aligned_unscreened"} <= set(table.columns)
    first = next(read_jsonl(causal_outputs / "aligned.jsonl"))
    assert {"s_m", "s_f", "target", "tau", "rule", "alignment"} <= set(first)


def test_load_pairs_names_line_and_key(tmp_path) -> None:
    path = tmp_path / "pairs.jsonl"
    write_jsonl(path, [PAIRS[0], {k: v for k, v in PAIRS[1].items() if k != "target"}])
    with pytest.raises(ValueError, match=r"record 2: key 'target' missing"):
        causal.load_pairs(str(path))
    write_jsonl(path, [PAIRS[0], PAIRS[0]])
    with pytest.raises(ValueError, match="duplicate id"):
        causal.load_pairs(str(path))
    write_jsonl(path, [{**PAIRS[0], "toxic": "no"}])
    with pytest.raises(ValueError, match="key 'toxic'"):
        causal.load_pairs(str(path))


def test_reference_corpus(data_dir) -> None:
    r1 = causal.reference_corpus(str(data_dir), ["sst2", "rte"], 200, 6, seed=3)
    r2 = causal.reference_corpus(str(data_dir), ["sst2", "rte"], 200, 6, seed=3)
    assert r1 == r2 and len(r1) == len(set(r1)) == 200 and all(len(s.split()) >= 6 for s in r1)
    assert causal.reference_corpus(str(data_dir), ["sst2", "rte"], 200, 6, seed=4) != r1


def test_report_helpers() -> None:
    ci = causal_report.mean_ci([1, 2, 3, 4, 5])  # mean 3, sem .7071, t(.975, 4) = 2.776445
    assert ci["mean"] == 3 and ci["ci_low"] == pytest.approx(3 - 1.963243, abs=1e-5)
    t = pd.DataFrame({"id": list("abcd"), "target": list("xxyx"), "aligned": [True, False, True, True]})
    s = causal_report.survivors(t, "target")
    assert s.to_dict("records")[0] == {"target": "x", "pairs": 3, "aligned": 2, "share": pytest.approx(2 / 3)}
