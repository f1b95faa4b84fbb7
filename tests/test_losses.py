"""JSD, the KNN bias loss, the LM losses and MLM masking, against hand computations."""

from __future__ import annotations

import math

import pytest
import torch

from fairgender_utils.lm.losses import (
    _JSD,
    batched_j,
    bias_loss,
    jsd,
    kl_loss,
    lm_loss,
    mlm_mask,
    pair_j,
    stable_seed,
    word_logprob,
)
from fairgender_utils.lm.slots import PairSlots


def _log(p):
    return torch.log(torch.tensor(p, dtype=torch.float32))


def test_jsd_matches_hand_computation() -> None:
    # p = (.5, .5), q = (.9, .1), m = (.7, .3):
    # KL(p||m) = .5 ln(.5/.7) + .5 ln(.5/.3) = 0.0871773; KL(q||m) = .9 ln(.9/.7) + .1 ln(.1/.3) = 0.1163218
    # JSD = (0.0871773 + 0.1163218) / 2 = 0.1017496
    value = jsd(_log([[0.5, 0.5]]), _log([[0.9, 0.1]]))
    assert value.item() == pytest.approx(0.1017496, abs=1e-6)
    assert jsd(_log([[0.9, 0.1]]), _log([[0.5, 0.5]])).item() == pytest.approx(0.1017496, abs=1e-6)


def test_jsd_bounds_and_batches() -> None:
    p = _log([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]])
    q = _log([[0.2, 0.3, 0.5], [0.0, 0.5, 0.5]])
    out = jsd(p, q)
    assert out.shape == (2,)
    assert out[0].item() == pytest.approx(0.0, abs=1e-7)
    assert out[1].item() == pytest.approx(math.log(2), abs=1e-6)  # disjoint supports: ln 2, no NaN


def test_jsd_gradient_is_exact() -> None:
    torch.manual_seed(0)
    a = torch.log_softmax(torch.randn(3, 7, dtype=torch.double), -1).requires_grad_()
    b = torch.log_softmax(torch.randn(3, 7, dtype=torch.double), -1).requires_grad_()
    assert torch.autograd.gradcheck(_JSD.apply, (a, b))


def test_bias_loss_equals_j_when_w0_is_one() -> None:
    j = torch.tensor([1.0, 2.0, 3.0, 5.0])
    assert bias_loss(j, [[1, 3], [0]], w0=1.0).item() == pytest.approx(1.5)  # mean of J over the batch pairs


def test_bias_loss_mixes_neighbours() -> None:
    j = torch.tensor([1.0, 2.0, 3.0, 5.0])
    # L_b(0) = .9*1 + .1*(2+5)/2 = 1.25; L_b(1) = .9*2 + .1*1 = 1.9; mean 1.575
    assert bias_loss(j, [[1, 3], [0]], w0=0.9).item() == pytest.approx(1.575)
    # a pair without neighbours keeps J: (1.25 + 2) / 2
    assert bias_loss(j, [[1, 3], []], w0=0.9).item() == pytest.approx(1.625)
    # w0 = 0: only the neighbours count
    assert bias_loss(j, [[2]], w0=0.0).item() == pytest.approx(3.0)


def test_lm_loss_averages_per_sentence_first() -> None:
    nll = torch.tensor([1.0, 3.0, 5.0, 1.0])  # sentence 0: 1, 3, 5 (mean 3); sentence 1: 1
    logits = torch.stack([torch.tensor([-v, math.log1p(-math.exp(-v))]) for v in nll.tolist()])  # log-probs
    loss = lm_loss(logits, torch.zeros(4, dtype=torch.long), torch.tensor([0, 0, 0, 1]), 2)
    assert loss.item() == pytest.approx(2.0)  # (3 + 1) / 2, not the token mean 2.5


def test_kl_loss_hand_value() -> None:
    # KL((.5,.5) || (.9,.1)) = .5 ln(.5/.9) + .5 ln(.5/.1) = 0.5108256
    p0, p = _log([[0.5, 0.5]]), _log([[0.9, 0.1]])
    assert kl_loss(p0, p, torch.tensor([0]), 1).item() == pytest.approx(0.5108256, abs=1e-6)
    assert kl_loss(p0, p0, torch.tensor([0]), 1).item() == pytest.approx(0.0, abs=1e-7)


def test_mlm_mask_properties() -> None:
    ids = list(range(100, 120))
    special = [True] + [False] * 18 + [True]
    out1, pos1 = mlm_mask(ids, special, mask_id=3, vocab_size=500, seed=7)
    out2, pos2 = mlm_mask(ids, special, mask_id=3, vocab_size=500, seed=7)
    assert (out1, pos1) == (out2, pos2)  # seeded
    assert pos1 and 0 not in pos1 and 19 not in pos1  # at least one, never a special token
    assert all(out1[k] == ids[k] for k in range(20) if k not in pos1)
    chosen = sum(len(mlm_mask(ids, special, 3, 500, seed=s)[1]) for s in range(300))
    assert 0.12 < chosen / (300 * 18) < 0.19  # about 15% (+ the at-least-one rule)


def test_stable_seed() -> None:
    assert stable_seed(1, "a", 2) == stable_seed(1, "a", 2)
    assert stable_seed(1, "a", 2) != stable_seed(1, "a", 3)


def _slots(rule: str, shared=()) -> PairSlots:
    # s^m: tokens 0..5, s^f: tokens 0..5 with a one-token gendered word at 2 and the target at 4
    ids_m, ids_f = (1, 2, 10, 3, 20, 4), (1, 2, 11, 3, 20, 4)
    return PairSlots("x", ids_m, ids_f, (4, 5), (4, 5), (2, 3), (2, 3), rule, shared)


def test_word_logprob_and_pair_j_rules() -> None:
    torch.manual_seed(0)
    lm, lf = torch.log_softmax(torch.randn(6, 30), -1), torch.log_softmax(torch.randn(6, 30), -1)
    lp_m, lp_f = (lambda ks: lm[list(ks)]), (lambda ks: lf[list(ks)])
    assert word_logprob(lp_m, (1, 2, 10, 3), (2, 4)).item() == pytest.approx((lm[2, 10] + lm[3, 3]).item())
    s = _slots("target_slot")
    assert pair_j(s, "masked", lp_m, lp_f).item() == pytest.approx(jsd(lm[[4]], lf[[4]]).item())
    a = _slots("attribute_logodds", shared=((3, 3), (4, 4)))
    omega = lm[2, 10] - lf[2, 11]
    context = jsd(lm[[3, 4]], lf[[3, 4]]).mean()
    assert pair_j(a, "causal", lp_m, lp_f).item() == pytest.approx((omega**2 + context).item(), rel=1e-5)
    no_context = pair_j(a, "causal", lp_m, lp_f, context_weight=0.0)
    assert no_context.item() == pytest.approx((omega**2).item(), rel=1e-5)


def test_batched_j_equals_pair_j() -> None:
    torch.manual_seed(1)
    lm, lf = torch.log_softmax(torch.randn(3, 30), -1), torch.log_softmax(torch.randn(3, 30), -1)
    lw = torch.log_softmax(torch.randn(2, 30), -1)
    # pair 0 (target slot): rows 0 (slot) and 1 (shared); pair 1 (attribute rule): row 2 (shared) + words
    args = (torch.tensor([0, 0, 1]), torch.tensor([False, True, True]), lw, torch.tensor([10, 11]),
            torch.tensor([1.0, -1.0]), torch.tensor([1, 1]), torch.tensor([False, True]))
    got = batched_j(lm, lf, *args)
    want0 = jsd(lm[[0]], lf[[0]])[0] + jsd(lm[[1]], lf[[1]])[0]
    want1 = (lw[0, 10] - lw[1, 11]) ** 2 + jsd(lm[[2]], lf[[2]])[0]
    assert got.tolist() == pytest.approx([want0.item(), want1.item()], rel=1e-5)
    half = batched_j(lm, lf, *args, context_weight=0.5)
    assert half[0].item() == pytest.approx((jsd(lm[[0]], lf[[0]])[0] + 0.5 * jsd(lm[[1]], lf[[1]])[0]).item())


def test_two_way_jsd_is_bounded_symmetric_and_matches_a_hand_computation():
    import math

    from fairgender_utils.lm.losses import two_way_jsd

    s = 1 / (1 + math.exp(-1.0))  # σ(1)
    hand = s * math.log(2 * s) + (1 - s) * math.log(2 * (1 - s))  # JSD((s, 1-s), (1-s, s)), mixture (½, ½)
    out = two_way_jsd(torch.tensor([0.0, 1.0, -1.0, 40.0, -40.0]))
    assert out[0].item() == 0.0
    assert out[1].item() == pytest.approx(hand, rel=1e-6) and out[2].item() == pytest.approx(hand, rel=1e-6)
    assert out[3].item() == pytest.approx(math.log(2), rel=1e-6) and out[4].item() <= math.log(2) + 1e-7
