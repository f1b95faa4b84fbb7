"""Stage 02: locating words in every tokenizer family, the word-order rule and the bounded effect, sentence
features without special tokens, the alignment score, the corrupted controls, splits, θ, the neighbour
index, the views and their re-split."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoTokenizer

from fairgender_utils.causal import alignment as causal
from fairgender_utils.causal import controls as corrupt
from fairgender_utils.causal import diagnostics as causal_report
from fairgender_utils.causal import scores, tables, views
from fairgender_utils.causal.alignment import EmptyAlignedSet
from fairgender_utils.causal.effects import pair_effects
from fairgender_utils.io import read_jsonl, write_jsonl
from fairgender_utils.lm.embed import SentenceFeatures, sentence_features
from fairgender_utils.lm.loading import load_model
from fairgender_utils.lm.losses import two_way_jsd
from fairgender_utils.lm.slots import encode_pair, encode_pairs, encode_text, word_chars
from tests import fixture_pairs, tiny_models
from tests.params import stage_config

PAIRS = fixture_pairs.pairs()
TRAIN_DEV = [p for p in PAIRS if p["split"] != "test"]


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
    # ... so those pairs use the two-way JSD of omega (omega itself kept), which does not
    assert (first["tau"] > 1e-8).all() and first["omega"].abs().gt(0).all()
    assert np.allclose(first["tau"], two_way_jsd(torch.tensor(first["omega"].to_numpy())).numpy(), atol=1e-7)
    assert (eff["tau"] > 0).all() and (eff["tau"] <= math.log(2) + 1e-6).all()  # one scale: a JSD
    assert eff["context_jsd"].notna().all()
    later = eff[eff["rule"] == "target_slot"]
    assert (later["tau"] == later["slot_jsd"]).all() and later["omega"].isna().all()


def test_two_way_jsd_by_hand() -> None:
    # omega = ln 3: q = (3/4, 1/4); JSD(q, swap q) = ln 2 - H(3/4, 1/4) + ... = KL(q || (1/2, 1/2))
    q = np.array([0.75, 0.25])
    by_hand = float((q * np.log(2 * q)).sum())
    assert float(two_way_jsd(torch.tensor(math.log(3)))) == pytest.approx(by_hand, abs=1e-6)


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


# ------------------------------------------------------------------ sentence features


@pytest.mark.parametrize("kind", ["llama", "bert"])
def test_sentence_features_by_brute_force(kind, tiny_model_dirs) -> None:
    """Own-token pooling skips BOS/CLS/SEP; the log-likelihood is the mean next-token (causal) or
    one-token-masked (masked) log-probability of the own tokens, one sentence at a time."""
    model, tok, family = load_model(tiny_model_dirs[kind])
    texts = ["The nurse said that he works at the hospital.", "My sister is a teacher.", "He is a pilot."]
    feats = sentence_features(model, tok, texts, family, batch_size=2, loglik=True)
    special = set(tok.all_special_ids)
    total = torch.zeros_like(feats.prob_sum)
    for i, text in enumerate(texts):
        ids = encode_text(tok, text, family, 128)[0]
        own = [k for k, t in enumerate(ids) if t not in special]
        assert len(own) < len(ids)  # there is a special token to leave out
        x = torch.tensor([ids])
        hidden = model(input_ids=x, output_hidden_states=True).hidden_states[-1][0].detach()
        for emb, keep in ((feats.emb, own), (feats.emb_special, range(len(ids)))):
            ref = torch.nn.functional.normalize(hidden[list(keep)].mean(0), dim=0)
            assert torch.allclose(emb[i], ref, atol=1e-5)
        lps = []
        for k in own:
            if family == "causal":
                if k == 0:
                    continue
                lp = torch.log_softmax(model(input_ids=x[:, :k]).logits[0, -1].detach(), -1)
            else:
                masked = x.clone()
                masked[0, k] = tok.mask_token_id
                lp = torch.log_softmax(model(input_ids=masked).logits[0, k].detach(), -1)
            lps.append(float(lp[ids[k]]))
            total += lp.exp().double()
        assert feats.tokens[i] == [ids[k] for k in own if family != "causal" or k > 0]
        assert float(feats.loglik[i]) == pytest.approx(np.mean(lps), abs=1e-4)
    assert feats.positions == sum(len(t) for t in feats.tokens)
    assert torch.allclose(feats.prob_sum, total, atol=1e-4)  # the marginal's numerator
    assert float(feats.prob_sum.sum()) == pytest.approx(feats.positions, abs=1e-3)


def test_slor_and_z_scores_by_hand() -> None:
    log_marginal = torch.log(torch.tensor([0.5, 0.25, 0.25]))
    got = scores.slor(torch.tensor([-1.0, -2.0]), [[0, 1], [2]], log_marginal)
    assert got == pytest.approx([-1.0 - (math.log(0.5) + math.log(0.25)) / 2, -2.0 - math.log(0.25)])
    ref = {"knn": np.array([1.0, 3.0]), "slor": np.array([0.0, 2.0, np.nan])}  # mean 2 sd 1; mean 1 sd 1
    out = scores.combine({"knn": np.array([4.0]), "slor": np.array([0.0])}, ref, {"knn": 0.5, "slor": 0.5})
    assert out == pytest.approx([0.5 * 2.0 + 0.5 * -1.0])
    assert scores.pair_mean(np.array([1.0, 2.0, 3.0, 5.0])) == pytest.approx([2.0, 3.5])


def test_auc_by_hand() -> None:
    assert scores.auc(np.array([2.0, 3.0]), np.array([1.0])) == 1.0
    assert scores.auc(np.array([1.0, 3.0]), np.array([2.0])) == 0.5
    assert scores.auc(np.array([1.0]), np.array([1.0])) == 0.5  # a tie counts one half


# ------------------------------------------------------------------ corrupted controls


def test_shuffled_controls_keep_words_and_share_one_permutation() -> None:
    for p in PAIRS:
        rng = random.Random(7)
        state = rng.getstate()
        s_m = corrupt.shuffle_words(p["s_m"], rng)
        rng.setstate(state)
        s_f = corrupt.shuffle_words(p["s_f"], rng)
        for orig, new in ((p["s_m"], s_m), (p["s_f"], s_f)):
            assert new != orig and new[0].isupper() and new[-1] == orig[-1] == "."
            assert sorted(w.lower().strip(".") for w in new.split()) == sorted(w.lower().strip(".")
                                                                              for w in orig.split())
        if len(p["s_m"].split()) == len(p["s_f"].split()):  # one permutation: word pairs stay aligned
            def aligned(a, b):
                return sorted(zip(a.lower().strip(".").split(), b.lower().strip(".").split()))
            assert aligned(s_m, s_f) == aligned(p["s_m"], p["s_f"])
    assert corrupt.shuffle_words("He is.", random.Random(0)) == "Is he."  # two words: the one other order
    assert corrupt.shuffle_words("I saw NATO.", random.Random(1)).count("NATO") == 1


def test_replaced_controls_and_their_words(data_dir) -> None:
    assert corrupt.replace_word("Nurse Amy met the nurse.", "nurse", "table") == "Table Amy met the nurse."
    words = corrupt.control_words("data/raw/gender_word_lists/auto_debias/wiki_words_5000.txt", str(data_dir),
                                  exclude=["season"])
    gendered = {"he", "she", "his", "her", "man", "woman", "king", "queen", "mother", "father"}
    assert not gendered & set(words) and "season" not in words and "nurse" not in words
    assert all(w.isalpha() and len(w) >= 3 for w in words) and {"first", "city", "school"} <= set(words)
    ctl = corrupt.build_controls(TRAIN_DEV, words, seed=3, per_pair=2)
    assert ctl == corrupt.build_controls(TRAIN_DEV, words, seed=3, per_pair=2)  # seeded
    first = TRAIN_DEV[0]["id"]
    assert [c["id"] for c in ctl[:4]] == [f"{first}~shuffled~0", f"{first}~shuffled~1", f"{first}~replaced~0",
                                         f"{first}~replaced~1"] and len(ctl) == 4 * len(TRAIN_DEV)
    assert ctl[2]["s_m"] != ctl[3]["s_m"] or ctl[0]["s_m"] != ctl[1]["s_m"]  # the draws differ
    for c in ctl:
        p = next(q for q in TRAIN_DEV if q["id"] == c["source"])
        assert c["split"] == p["split"]
        if c["kind"] == "replaced":
            new = set(c["s_m"].lower().strip(".").split()) - set(p["s_m"].lower().strip(".").split())
            assert len(new) == 1 and new <= set(words) and p["target"] not in c["s_m"].lower()
            assert new == set(c["s_f"].lower().strip(".").split()) - set(p["s_f"].lower().strip(".").split())


def test_controls_are_scored_exactly_as_real_pairs(tiny_model_dirs) -> None:
    model, tok, family = load_model(tiny_model_dirs["llama"])
    cfg = stage_config("causal", batch_size=4)
    ref = scores.build_reference(model, tok, family, tiny_models.corpus(40), 20, 8, 64)
    table, emb, failed, _ = tables.score_pairs(model, tok, family, TRAIN_DEV[:6], ref, cfg)
    # a "control" that is a real pair verbatim gets the real pair's a, batched with other controls or not
    twins = [{"id": f"{p['id']}~copy", "source": p["id"], "kind": "copy", "split": p["split"],
              "s_m": p["s_m"], "s_f": p["s_f"]} for p in TRAIN_DEV[:6]]
    got, feats = tables.score_controls(model, tok, family, twins, ref, cfg)
    assert np.allclose(got["alignment"], table["alignment"], atol=1e-5) and not failed
    assert set(feats) == {"copy"} and emb.shape[0] == 6


# ------------------------------------------------------------------ splits, θ, the index


def test_load_pairs_drops_test_and_names_line_and_key(tmp_path) -> None:
    path = tmp_path / "pairs.jsonl"
    write_jsonl(path, PAIRS)
    kept, n_test = causal.load_pairs(str(path))
    assert n_test == sum(p["split"] == "test" for p in PAIRS) == 5 and kept == TRAIN_DEV
    broken_test = {**next(p for p in PAIRS if p["split"] == "test"), "s_m": None}
    write_jsonl(path, [PAIRS[0], broken_test])  # a test record is not looked at beyond its split
    assert causal.load_pairs(str(path)) == ([PAIRS[0]], 1)
    no_target = {k: v for k, v in PAIRS[1].items() if k != "target"}
    for bad, match in ((no_target, r"record 2: key 'target' missing"),
                       ({**PAIRS[1], "split": "valid"}, r"record 2: key 'split' is 'valid'"),
                       ({**PAIRS[1], "step2": True}, r"record 2: key 'step2' missing or not str"),
                       ({**PAIRS[1], "step2": "repaired"}, r"record 2: key 'step2' is 'repaired'"),
                       (PAIRS[0], "duplicate id"), ({**PAIRS[1], "toxic": "no"}, "key 'toxic'")):
        write_jsonl(path, [PAIRS[0], bad])
        with pytest.raises(ValueError, match=match):
            causal.load_pairs(str(path))
    write_jsonl(path, [p for p in PAIRS if p["split"] != "train"])
    with pytest.raises(ValueError, match="no train pairs"):
        causal.load_pairs(str(path))


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


def test_knn_cosine_hand_example() -> None:
    eye = torch.eye(3)  # R: e1, e2, e3
    ref = scores.Reference(eye, eye, torch.zeros(2), [[0], [1]], torch.zeros(3))
    m = torch.tensor([[1.0, 0.0, 0.0]])  # cosines 1, 0, 0 -> top-2 mean 0.5
    f = torch.nn.functional.normalize(torch.tensor([[1.0, 1.0, 0.0]]), dim=-1)  # .7071, .7071, 0 -> .7071
    feats = SentenceFeatures(torch.cat([m, f]), torch.cat([m, f]))
    knn = scores.signals(feats, ref, k=2)["knn"]
    assert knn == pytest.approx([0.5, 2**-0.5], abs=1e-6)
    assert scores.pair_mean(knn) == pytest.approx([(0.5 + 2**-0.5) / 2], abs=1e-6)
    assert scores.reference_signals(ref, k=2)["knn"] == pytest.approx([0.0, 0.0, 0.0])  # itself excluded


def test_thresholds_and_split() -> None:
    a = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    tau = np.array([1.0, 1.0, 0.0, 1.0, 1.0])
    assert causal.threshold(a, "quantile", 0.4) == pytest.approx(0.26)
    assert causal.threshold(a, "absolute", -1.7) == -1.7
    shuffled = np.arange(20.0)  # the 0.95 quantile (linear) is 18.05: 19 of 20 shuffled controls below it
    thr = causal.threshold(a, "control", 0.25, shuffled=shuffled, reject=0.95)
    assert thr == pytest.approx(18.05) and (shuffled < thr).mean() == 0.95
    with pytest.raises(ValueError, match="needs the shuffled controls"):
        causal.threshold(a, "control", 0.25)
    assert causal.split(a, tau, 0.26).tolist() == [False, False, True, True, True]
    assert causal.split(a, tau, 0.3, tau_min=0.5).tolist() == [False, False, False, True, True]


def test_empty_aligned_set_names_threshold_and_range() -> None:
    with pytest.raises(EmptyAlignedSet) as err:
        causal.split(np.array([0.2, 0.35]), np.array([0.1, 0.2]), 0.9)
    msg = str(err.value)
    assert "a >= 0.9000" in msg and "[0.2000, 0.3500]" in msg and "theta_control_reject" in msg


def test_neighbour_index_respects_k_and_similarity() -> None:
    rows = [[1.0, 0.0], [0.9, 0.1], [0.8, 0.3], [0.0, 1.0]]
    emb = torch.nn.functional.normalize(torch.tensor(rows), dim=-1)
    nb = causal.neighbour_index(emb, k_c=2, sim_min=0.5)
    assert nb[0][0] == [1, 2] and nb[0][1][0] >= nb[0][1][1] >= 0.5
    assert nb[3] == ([], [])  # its best match has cosine 0.35 < sim_min
    assert all(i not in ids for i, (ids, _) in enumerate(nb))
    assert causal.neighbour_index(emb, k_c=0, sim_min=0.0) == [([], [])] * 4


def test_sim_min_as_a_quantile_of_pairwise_cosines() -> None:
    g = torch.Generator().manual_seed(1)
    emb = torch.nn.functional.normalize(torch.randn(9, 4, generator=g), dim=-1)
    brute = [float(emb[i] @ emb[j]) for i in range(9) for j in range(i + 1, 9)]
    assert causal.sim_threshold(emb, "quantile", 0.9) == pytest.approx(np.quantile(brute, 0.9), abs=1e-6)
    assert causal.sim_threshold(emb, "absolute", 0.3) == 0.3
    thr = causal.sim_threshold(emb, "quantile", 0.9)
    nb = causal.neighbour_index(emb, k_c=8, sim_min=thr)
    assert sum(len(ids) for ids, _ in nb) == 2 * sum(s >= thr for s in brute)  # both ends of each close pair


# ------------------------------------------------------------------ views, files, re-split


@pytest.fixture(scope="module")
def causal_outputs(tiny_model_dirs, tmp_path_factory):
    return fixture_pairs.build_causal_dir(tiny_model_dirs["llama"], tmp_path_factory.mktemp("causal"))


def test_views_hold_train_pairs_and_screen_toxic_ones(causal_outputs) -> None:
    train = {p["id"] for p in PAIRS if p["split"] == "train"}
    toxic = {p["id"] for p in PAIRS if p["toxic"]}
    aligned = {r["id"] for r in read_jsonl(causal_outputs / "aligned.jsonl")}
    unaligned = {r["id"] for r in read_jsonl(causal_outputs / "unaligned.jsonl")}
    assert aligned | unaligned == train - toxic and not aligned & unaligned
    un = causal_outputs / "unscreened"
    pool = {r["id"] for name in ("aligned.jsonl", "unaligned.jsonl") for r in read_jsonl(un / name)}
    assert pool == train
    for rec in read_jsonl(causal_outputs / "neighbours.jsonl"):
        assert set(rec["neighbours"]) <= aligned and set(rec["neighbours_all"]) <= aligned | unaligned
        assert rec["id"] not in rec["neighbours_all"] and (rec["aligned"] or not rec["neighbours"])
    dev = list(read_jsonl(causal_outputs / "dev.jsonl"))
    assert {r["id"] for r in dev} == {p["id"] for p in PAIRS if p["split"] == "dev"}
    table = pd.read_csv(causal_outputs / "effects.csv")
    assert set(table["split"]) == {"train", "dev"} and len(table) == len(TRAIN_DEV)  # no test pair anywhere
    assert set(table.loc[table["aligned"] & (table["split"] == "train"), "id"]) == aligned
    dev_rows = table[table["split"] == "dev"]
    assert {r["id"]: r["aligned"] for r in dev} == dict(zip(dev_rows["id"], dev_rows["aligned"]))
    columns = {"tau", "effect", "rule", "alignment", "loglik", "aligned_unscreened", "s_m", "step2"}
    assert columns <= set(table.columns)
    first = next(read_jsonl(causal_outputs / "aligned.jsonl"))
    pair = next(p for p in PAIRS if p["id"] == first["id"])
    assert first == {**pair, **{k: first[k] for k in views.EFFECT_COLUMNS}}  # pair fields + effect columns


def test_resplit_without_a_forward_pass(causal_outputs) -> None:
    d = causal_outputs
    saved = (d / "effects.csv", d / "pair_embeddings.safetensors", d / "index.json")
    table, emb, index = views.load_saved(*saved)
    assert emb.shape[0] == len(table) and index["k_c"] == 5
    same = views.split_and_neighbours(table, emb, index["threshold"], index["tau_min"], index["k_c"],
                                      index["sim_min"], index["screen_toxic"])
    assert same["neighbours"] == list(read_jsonl(d / "neighbours.jsonl"))
    stricter = views.split_and_neighbours(table, emb, float(table["alignment"].median()), 0.0, 2, 0.5, True)
    train = table[(table["split"] == "train") & ~table["toxic"]]
    assert len(stricter["aligned_rows"]) == int((train["alignment"] >= table["alignment"].median()).sum())
    assert all(len(r["neighbours"]) <= 2 and min(r["sims"] or [1]) >= 0.5 for r in stricter["neighbours"])
    views.write_view(stricter, table, d / "resplit")
    got = {r["id"] for r in read_jsonl(d / "resplit" / "aligned.jsonl")}
    assert got == set(table["id"].iloc[stricter["aligned_rows"]])
    shuffled = table.iloc[::-1].reset_index(drop=True)
    shuffled.to_csv(d / "reordered.csv", index=False)
    with pytest.raises(ValueError, match="not the pairs of"):
        views.load_saved(d / "reordered.csv", *saved[1:])


def test_reference_corpus(data_dir) -> None:
    r1 = causal.reference_corpus(str(data_dir), ["sst2", "rte"], 200, 6, seed=3)
    r2 = causal.reference_corpus(str(data_dir), ["sst2", "rte"], 200, 6, seed=3)
    assert r1 == r2 and len(r1) == len(set(r1)) == 200 and all(len(s.split()) >= 6 for s in r1)
    assert causal.reference_corpus(str(data_dir), ["sst2", "rte"], 200, 6, seed=4) != r1
    from fairgender_utils.loaders import load_glue

    rte = {t for e in load_glue(data_dir, "rte", "train")[0] for t in (e.text_a, e.text_b)}
    assert sum(s in rte for s in r1) == 100  # an equal share of each task, whatever their sizes
    labels = {e.text_a: e.label for e in load_glue(data_dir, "cola", "train")[0]}
    cola = causal.reference_corpus(str(data_dir), ["cola"], 300, 6, seed=0)
    assert all(labels[s] == 1.0 for s in cola)  # acceptable sentences only


def test_report_helpers() -> None:
    ci = causal_report.mean_ci([1, 2, 3, 4, 5])  # mean 3, sem .7071, t(.975, 4) = 2.776445
    assert ci["mean"] == 3 and ci["ci_low"] == pytest.approx(3 - 1.963243, abs=1e-5)
    t = pd.DataFrame({"id": list("abcd"), "target": list("xxyx"), "aligned": [True, False, True, True]})
    s = causal_report.survivors(t, "target")
    assert s.to_dict("records")[0] == {"target": "x", "pairs": 3, "aligned": 2, "share": pytest.approx(2 / 3)}
    real = pd.DataFrame({"id": ["a", "b", "c"], "split": ["train", "train", "dev"],
                         "alignment": [3.0, 1.0, 2.0]})
    ctl = pd.DataFrame({"source": ["a", "b", "c", "c"], "split": ["train", "train", "dev", "dev"],
                        "kind": ["shuffled", "replaced"] * 2, "alignment": [0.0, 2.0, 2.0, 5.0]})
    got = causal_report.auc_table(real, ctl).set_index(["split", "control"])
    auc, paired = got["auc"], got["paired"]
    assert auc[("train", "shuffled")] == 1.0 and auc[("train", "replaced")] == 0.5
    assert auc[("dev", "replaced")] == 0.0 and auc[("train+dev", "all controls")] == pytest.approx(6 / 12)
    assert paired[("train", "replaced")] == 0.0 and paired[("dev", "shuffled")] == 0.5  # b < its 2.0; a tie
    assert paired[("train+dev", "all controls")] == pytest.approx(1.5 / 4)
    view = {"neighbours": [{"aligned": True, "neighbours": ["b"]}, {"aligned": True, "neighbours": []},
                           {"aligned": False, "neighbours": []}]}
    assert causal_report.neighbour_counts(view, 2) == {
        "aligned_with_fewer_than_k_c_neighbours": 2, "aligned_without_neighbours": 1, "neighbours_mean": 0.5}
