"""The scorer: batched == plain on tiny models of every family; sharing of prediction contexts; encoding."""

from __future__ import annotations

import numpy as np
import pytest

from fairgender_utils.evaluate.scoring import Request, Scorer
from fairgender_utils.evaluate.scoring_plan import Plan
from tests.metrics_fixtures import one_thread, tiny  # noqa: F401  (fixtures)

SENTENCES = ["The nurse said that she was tired.", "The doctor said that he was tired.",
             "My sister is a pilot who likes math.", "xqzbossy people are here."]


def _requests(scorer: Scorer) -> list[Request]:
    out = []
    for text in SENTENCES:
        enc = scorer.encode(text)
        out.append(Request(enc.ids, tuple(i for i, ok in enumerate(enc.scorable) if ok)))
    # a masked-LM style request with a removed token, and one scoring a single position
    out.append(Request(out[0].ids[:4] + out[0].ids[5:], (2,)))
    return out


@pytest.mark.parametrize("kind", ["bert", "roberta", "albert", "llama"])
def test_batched_equals_plain(tiny, kind):
    model, tok, family = tiny[kind]
    scorer = Scorer(model, tok, family, batch_tokens=64)  # small batches: several batches, padding
    reqs = _requests(scorer)
    fast, plain = scorer.logprobs(reqs), scorer.logprobs_plain(reqs)
    assert [len(a) for a in fast] == [len(r.positions) for r in reqs]
    for a, b in zip(fast, plain, strict=True):
        assert np.abs(a - b).max() <= 1e-5
    assert scorer._head is not None  # the body + head split reproduced the model's logits
    assert (scorer._reads is not None) == (kind == "bert")  # encoder_reads took over, after its check
    assert all(np.all(a < 0) for a in fast)


def test_read_encoder_equals_body_with_padding(tiny):
    """Padded rows, several reads in a row, rows read out of order: the body's hidden states there."""
    import torch

    from fairgender_utils.lm.encoder_reads import ReadEncoder, ReadHead
    from fairgender_utils.lm.heads import body_of
    model, tok, _ = tiny["bert"]
    enc = tok(["The nurse said that she was tired.", "Hi there."], padding=True, return_tensors="pt")
    rows, cols = torch.tensor([1, 0, 0, 1]), torch.tensor([2, 5, 1, 0])
    with torch.inference_mode():
        want = body_of(model)(**enc).last_hidden_state[rows, cols]
        got = ReadEncoder.of(body_of(model))(enc["input_ids"], enc["attention_mask"], rows, cols)
        assert torch.allclose(want, got, atol=1e-5)
        assert torch.allclose(model(**enc).logits[rows, cols], ReadHead.of(model)(got), atol=1e-4)


def test_without_separable_head_same_numbers(tiny):
    model, tok, family = tiny["bert"]
    fast = Scorer(model, tok, family)
    full = Scorer(model, tok, family)
    full._head, full._reads = None, None  # forces full logits
    reqs = _requests(fast)
    for a, b in zip(fast.logprobs(reqs), full.logprobs(reqs), strict=True):
        assert np.abs(a - b).max() <= 1e-5


def test_causal_prefixes_are_shared_and_bos_added(tiny):
    model, tok, family = tiny["llama"]
    scorer = Scorer(model, tok, family)
    a, b = scorer.encode("The man said he was here."), scorer.encode("The man said she was here.")
    assert tok("The man").input_ids[0] != tok.bos_token_id  # this tokenizer adds no BOS itself
    assert a.ids[0] == tok.bos_token_id and not a.scorable[0] and all(a.scorable[1:])
    reqs = [Request(a.ids, tuple(range(1, len(a.ids)))), Request(b.ids, tuple(range(1, len(b.ids))))]
    plan = Plan(reqs, "causal", None)
    shared = next(i for i, (x, y) in enumerate(zip(a.ids, b.ids, strict=False)) if x != y)
    # one prediction context per distinct prefix: len(a) - 1 of a, and b's from its first difference on
    assert len(plan.slot_read) == (len(a.ids) - 1) + (len(b.ids) - 1) - shared  # ids[:p], p <= shared, once
    la, lb = scorer.logprobs(reqs)
    assert np.array_equal(la[:shared - 1], lb[:shared - 1])  # the same prefix gives the same numbers


def test_causal_packing_of_shared_prefixes(tiny):
    model, tok, family = tiny["llama"]
    scorer = Scorer(model, tok, family, batch_tokens=64)
    texts = ["The nurse said that she was tired.", "The nurse said that he was tired.",
             "The nurse said that it was late.", "My sister is a pilot.", "My brother is a pilot."]
    reqs = [Request(e.ids, tuple(range(1, len(e.ids)))) for e in map(scorer.encode, texts)]
    packed, plain = Plan(reqs, "causal", None, pack=True), Plan(reqs, "causal", None)
    assert len(packed.rows) == 2
    assert sum(len(r.ids) for r in packed.rows) < sum(len(r.ids) for r in reqs)
    row = packed.rows[0]  # shared prefix once, then one branch per sentence, positions continuing after it
    shared = row.branch.index(1)
    assert row.positions[shared] == shared and row.branch[-1] == 3
    assert row.positions[-1] == len(reqs[2].ids) - 1
    assert packed.slot_read != plain.slot_read
    fast = scorer.logprobs(reqs)
    assert scorer._pack is True  # the tree mask was checked against separate sequences and used
    for a, b in zip(fast, scorer.logprobs_plain(reqs), strict=True):
        assert np.abs(a - b).max() <= 1e-5


def test_masked_identical_rows_run_once(tiny):
    model, tok, family = tiny["bert"]
    scorer = Scorer(model, tok, family)
    enc = scorer.encode("The nurse was here.")
    doctor_id = tok.convert_tokens_to_ids("doctor")
    reqs = [Request(enc.ids, (2,)), Request(enc.ids[:2] + (doctor_id,) + enc.ids[3:], (2,))]
    plan = Plan(reqs, "masked", tok.mask_token_id)
    assert len(plan.rows) == 1 and plan.slot_tokens[0] == [enc.ids[2], tok.convert_tokens_to_ids("doctor")]
    nurse, doctor = scorer.logprobs(reqs)
    assert np.abs(scorer.logprobs_plain(reqs)[1] - doctor).max() <= 1e-5 and nurse[0] != doctor[0]


def test_bad_position_is_an_error(tiny):
    model, tok, family = tiny["llama"]
    scorer = Scorer(model, tok, family)
    enc = scorer.encode("The man.")
    with pytest.raises(ValueError, match="position 0"):
        scorer.logprobs([Request(enc.ids, (0,))])
    with pytest.raises(ValueError, match="family"):
        Scorer(model, tok, "seq2seq")
