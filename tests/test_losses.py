"""JSD, the bounded two-way JSD, the KNN bias loss and its weights, the LM losses (own, top-k KL) and MLM
masking, against hand computations."""

from __future__ import annotations

import math

import pytest
import torch

from fairgender_utils.lm.losses import (
    _JSD,
    batched_j,
    bias_loss,
    jsd,
    knn_weights,
    lm_loss,
    mlm_mask,
    pair_j,
    stable_seed,
    topk_kl,
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


def test_topk_kl_hand_values() -> None:
    # p0 = (.5, .3, .2), p = (.2, .5, .3). Full KL = .5 ln(.5/.2) + .3 ln(.3/.5) + .2 ln(.2/.3) = 0.2238047.
    # Top-1 of p0 (token 0) + rest: (.5, .5) vs (.2, .8): .5 ln(.5/.2) + .5 ln(.5/.8) = 0.2231436 (<= full).
    # Top-2 (tokens 0, 1) + rest: the rest is one token, so the full KL.
    p0, p = _log([[0.5, 0.3, 0.2]]), _log([[0.2, 0.5, 0.3]])
    one = torch.tensor([0])
    for k, want in ((1, 0.2231436), (2, 0.2238047), (3, 0.2238047)):
        v, idx = p0.topk(k, -1)
        rest = torch.log1p(-v.exp().sum(-1)) if k < 3 else torch.tensor([-1e4])
        assert topk_kl(p, idx, v, rest, one, 1).item() == pytest.approx(want, abs=1e-6), k
    v, idx = p0.topk(1, -1)
    assert topk_kl(p0, idx, v, torch.log(torch.tensor([0.5])), one, 1).item() == pytest.approx(0.0, abs=1e-7)


def test_knn_weights_turn_the_epoch_sum_of_l_b_into_a_weighted_sum_of_j() -> None:
    # N(0) = {1, 2}, N(1) = {0}, N(2) = {}: w0 = .9 + .1 (from N(1)) = 1; w1 = .9 + .1/2; w2 = 1 + .1/2
    nb = [[1, 2], [0], []]
    w = knn_weights(nb, 0.9)
    assert w == pytest.approx([1.0, 0.95, 1.05])
    j = torch.tensor([1.0, 2.0, 3.0])
    # sum_i L_b(i) = (.9 + .1*2.5) + (1.8 + .1) + 3 = 6.05 = 1*1 + .95*2 + 1.05*3
    assert bias_loss(j, nb, 0.9).item() * 3 == pytest.approx(6.05)
    assert bias_loss(j, [[], [], []], 0.9, weights=w).item() * 3 == pytest.approx(6.05)
    assert knn_weights(nb, 1.0) == [1.0, 1.0, 1.0]


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
    omega = (lm[2, 10] - lf[2, 11]).item()
    context = jsd(lm[[3, 4]], lf[[3, 4]]).mean().item()
    assert pair_j(a, "causal", lp_m, lp_f).item() == pytest.approx(_two_way(omega) + context, rel=1e-5)
    no_context = pair_j(a, "causal", lp_m, lp_f, context_weight=0.0)
    assert no_context.item() == pytest.approx(_two_way(omega), rel=1e-5)
    assert no_context.item() <= math.log(2)


def _two_way(omega: float) -> float:
    """By hand: q = (s, 1-s), s = sigmoid(omega); JSD(q, swapped q) with mixture (1/2, 1/2)."""
    s = 1 / (1 + math.exp(-omega))
    return s * math.log(2 * s) + (1 - s) * math.log(2 * (1 - s))


def test_batched_j_equals_pair_j() -> None:
    torch.manual_seed(1)
    lm, lf = torch.log_softmax(torch.randn(3, 30), -1), torch.log_softmax(torch.randn(3, 30), -1)
    lw = torch.log_softmax(torch.randn(2, 30), -1)
    # pair 0 (target slot): rows 0 (slot) and 1 (shared); pair 1 (attribute rule): row 2 (shared) + words
    args = (torch.tensor([0, 0, 1]), torch.tensor([False, True, True]), lw, torch.tensor([10, 11]),
            torch.tensor([1.0, -1.0]), torch.tensor([1, 1]), torch.tensor([False, True]))
    got = batched_j(lm, lf, *args)
    want0 = jsd(lm[[0]], lf[[0]])[0] + jsd(lm[[1]], lf[[1]])[0]
    want1 = _two_way((lw[0, 10] - lw[1, 11]).item()) + jsd(lm[[2]], lf[[2]])[0].item()
    assert got.tolist() == pytest.approx([want0.item(), want1], rel=1e-5)
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
