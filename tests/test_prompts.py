"""Stage prompts: the restricted LM head, the probe inputs, the vocabulary, and the beam search against an
exhaustive search scored by plain full forward passes, for masked and causal LMs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy.spatial.distance import jensenshannon

from fairgender_utils.lm.heads import body_of, head_logits, lm_head, restricted_logits
from fairgender_utils.lm.loading import load_model
from fairgender_utils.lm.probes import probe_inputs, slot_token_ids
from fairgender_utils.lm.slots import PairError
from fairgender_utils.loaders import GenderWords
from fairgender_utils.loaders.formats import DataFormatError
from fairgender_utils.prompts import search
from fairgender_utils.prompts.search import Probe, beam_search, excluded_words, prompt_jsd, vocabulary
from tests import fixture_pairs, tiny_models

PAIRS = [["he", "she"], ["man", "woman"], ["father", "mother"], ["his", "her"]]
STEREOTYPES = ["nurse", "doctor", "engineer", "kitchen", "strong", "caring", "emotional", "logical"]
VOCAB = ["the", "is", "very", "said"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("kind", list(tiny_models.FAMILIES))
def test_restricted_logits_are_the_full_heads_columns(kind, tiny_model_dirs) -> None:
    model, tok, _ = load_model(tiny_model_dirs[kind])
    enc = tok(["the nurse is here", "he said that"], return_tensors="pt", padding=True)
    ids = torch.tensor([7, 3, 250, 11, 3])  # a repeated id is a repeated column
    with torch.no_grad():
        full = model(**enc).logits[:, 1]
        h = body_of(model)(**enc).last_hidden_state[:, 1]
        assert torch.allclose(restricted_logits(model, h, ids), full[:, ids], atol=1e-5)
        model.config.final_logit_softcapping = 0.5  # Gemma-2 style capping: tanh(z / c) * c
        capped = head_logits(model, lm_head(model), h)[:, ids]
        assert torch.allclose(capped, torch.tanh(full[:, ids] / 0.5) * 0.5, atol=1e-5)
        assert torch.allclose(restricted_logits(model, h, ids), capped, atol=1e-5)


def test_restricted_logits_carry_gradients_to_the_projection(tiny_model_dirs) -> None:
    model, _, _ = load_model(tiny_model_dirs["bert"])
    h = torch.randn(2, model.config.hidden_size)
    restricted_logits(model, h, torch.tensor([5, 9])).sum().backward()
    grad = model.get_output_embeddings().weight.grad
    assert grad[[5, 9]].abs().sum() > 0 and grad[[0, 6]].abs().sum() == 0


def _naive_slot(model, tok, family, word: str, prompt: str, ids: list[int]) -> np.ndarray:
    """The slot distribution over ``ids`` from one unpadded full forward pass of the probe."""
    text = f"{word} {prompt}" + (f" {tok.mask_token}" if family == "masked" else "")
    enc = tok(text)["input_ids"]
    if family == "causal" and enc[0] != tok.bos_token_id:
        enc = [tok.bos_token_id, *enc]
    read = enc.index(tok.mask_token_id) if family == "masked" else len(enc) - 1
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([enc])).logits[0, read, ids].double().numpy()
    p = np.exp(logits - logits.max())
    return p / p.sum()


def _naive_score(model, tok, family, prompt: str, ids: list[int]) -> float:
    return float(np.mean([jensenshannon(_naive_slot(model, tok, family, m, prompt, ids),
                                        _naive_slot(model, tok, family, f, prompt, ids)) ** 2
                          for m, f in PAIRS]))


@pytest.fixture(scope="module")
def opinionated(tiny_model_dirs, tmp_path_factory) -> dict:
    """Tiny models with larger weights (JSDs of ~1e-2 rather than ~1e-7: their order is not float noise)."""
    base = tmp_path_factory.mktemp("opinionated")
    return {kind: fixture_pairs.opinionated(tiny_model_dirs[kind], base / kind) for kind in tiny_models.FAMILIES}


@pytest.mark.parametrize("kind,reuse", [(k, False) for k in tiny_models.FAMILIES] + [("llama", True)])
def test_beam_search_equals_exhaustive_search(kind, reuse, opinionated, monkeypatch) -> None:
    model, tok, family = load_model(opinionated[kind])
    continued = []
    real = search._continued_rows
    monkeypatch.setattr(search, "_continued_rows", lambda p, pre, rests, out: continued.append(len(rests))
                        or real(p, pre, rests, out))
    ids, _ = slot_token_ids(tok, STEREOTYPES, "first")
    naive = {" ".join(ws): _naive_score(model, tok, family, " ".join(ws), ids)
             for n in (1, 2, 3) for ws in itertools.product(VOCAB, repeat=n)}
    probe = Probe.of(model, tok, family, PAIRS, ids, batch_size=5, max_length=16,  # several padded batches
                     reuse_prefix=reuse)  # causal LMs: prefixes run once, continued from their KV cache

    def score(prompts: list[str]) -> np.ndarray:
        return prompt_jsd(probe, prompts, chunk_texts=30)  # several chunks of 5 prompts

    # a beam of K = V^(PL-1) keeps every prompt: the search is exhaustive
    records, steps = beam_search(score, VOCAB, length=3, beam=16)
    for n in (1, 2, 3):
        got = [(r["prompt"], r["jsd"]) for r in records if r["length"] == n]
        every = sorted((p for p in naive if len(p.split()) == n), key=lambda p: -naive[p])[:16]
        assert [p for p, _ in got] == every
        assert [s for _, s in got] == pytest.approx([naive[p] for p in every], rel=1e-4, abs=1e-9)
    assert [s["candidates"] for s in steps] == [4, 16, 64]
    assert steps[2]["jsd_max"] == pytest.approx(max(v for p, v in naive.items() if len(p.split()) == 3), rel=1e-4)
    # a narrow beam (K = 2) follows the same selection the plain scores make
    records, _ = beam_search(score, VOCAB, length=3, beam=2)
    current = list(VOCAB)
    for n in (1, 2, 3):
        top = sorted(current, key=lambda p: -naive[p])[:2]
        assert [r["prompt"] for r in records if r["length"] == n] == top
        current = [f"{p} {w}" for p in top for w in VOCAB]
    assert (sum(continued) > 100) == reuse  # most probes continued a shared prefix


def test_a_word_in_two_pairs_is_scored_once_and_pairs_keep_their_sides(tiny_model_dirs) -> None:
    model, tok, family = load_model(tiny_model_dirs["llama"])
    ids, _ = slot_token_ids(tok, STEREOTYPES, "first")
    probe = Probe.of(model, tok, family, [["he", "she"], ["his", "her"], ["him", "her"]], ids, 8, 16, True)
    assert probe.words == ("he", "she", "his", "her", "him")
    assert probe.male.tolist() == [0, 2, 4] and probe.female.tolist() == [1, 3, 3]
    swapped = Probe.of(model, tok, family, [["she", "he"]], ids, 8, 16, True)
    one = Probe.of(model, tok, family, [["he", "she"]], ids, 8, 16, True)
    assert prompt_jsd(swapped, ["the"])[0] == pytest.approx(prompt_jsd(one, ["the"])[0], rel=1e-6)  # symmetric


def test_probe_inputs_read_the_mask_or_the_last_token(tiny_model_dirs) -> None:
    for kind in ("bert", "llama"):
        model, tok, family = load_model(tiny_model_dirs[kind])
        text = f"he is very {tok.mask_token}" if family == "masked" else "he is very"
        (ids, read), = probe_inputs(tok, [text], family, 16)
        if family == "masked":
            assert ids[read] == tok.mask_token_id and ids[0] == tok.cls_token_id
        else:
            assert ids[0] == tok.bos_token_id and read == len(ids) - 1
            assert tok.decode(ids[1:]) == "he is very"
        with pytest.raises(PairError, match=r"probe 'he is very.*more than max_length=3"):
            probe_inputs(tok, [text], family, 3)
    bert = load_model(tiny_model_dirs["bert"])[1]
    with pytest.raises(PairError, match="0 mask tokens"):
        probe_inputs(bert, ["he is very"], "masked", 16)


def test_stereotype_tokens_first_piece_or_dropped(tiny_model_dirs) -> None:
    tok = load_model(tiny_model_dirs["llama"])[1]
    words = ["nurse", "nursemaid", "zyxwv", "nurse"]  # in the tiny vocabulary / split / split / again
    assert len(tok(" nurse", add_special_tokens=False)["input_ids"]) == 1
    assert len(tok(" zyxwv", add_special_tokens=False)["input_ids"]) > 1
    ids, report = slot_token_ids(tok, words, "first")
    first = [tok(" " + w, add_special_tokens=False)["input_ids"][0] for w in words]
    assert ids == list(dict.fromkeys(first))
    assert report["multi_subtoken"] == ["nursemaid", "zyxwv"]
    assert "nurse" in report["shared_token"]  # listed twice
    dropped, report = slot_token_ids(tok, words, "drop")
    assert dropped == [first[0]] and report["shared_token"] == ["nurse"]


def test_vocabulary_leaves_out_gendered_stereotype_and_non_letter_words(tmp_path) -> None:
    words = GenderWords(pairs=(("king", "queen"),), targets=("nurse",), swap_pairs=(("he", "she"),))
    assert excluded_words(words) == {"king", "queen", "nurse", "he", "she"}
    f = tmp_path / "wiki.txt"
    f.write_text("the 10\nhe 9\nking's 8\n\nnurse 7\nof 6\nkm² 5\nthe 4\nqueen 3\nin 2\n")
    assert vocabulary(f, excluded_words(words), 3) == ["the", "of", "in"]
    with pytest.raises(DataFormatError, match=r"wiki.txt: 3 usable words in 10 lines, fewer than vocab_size=4"):
        vocabulary(f, excluded_words(words), 4)
