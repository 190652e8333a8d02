"""Worked examples for every loss, derived from the definitions with plain Python `math`
(no torch in the expected values), asserted to 1e-4."""

from __future__ import annotations

import math

import pytest
import torch

from edgekd.distill.losses import (
    KDBatch,
    akl_loss,
    cakld_loss,
    create_loss,
    dkd_loss,
    fa_loss,
    fa_loss_fast,
    faqd_loss,
    fitnet_loss,
    luminet_loss,
    mixstd_loss,
    nd_loss,
    nkd_loss,
    ofa_loss,
    qfd_loss,
    quantize_feature,
    sinkd_loss,
    teacher_confidence,
    ttm_loss,
)

TOL = 1e-4


def softmax(z, T=1.0):
    e = [math.exp(v / T) for v in z]
    return [v / sum(e) for v in e]


def kl(p, q):
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True) if pi > 0)


S = [[1.0, 2.0, 0.0], [0.5, -1.0, 2.0]]
T_ = [[2.0, 1.0, 0.0], [0.0, 0.0, 3.0]]
Y = [0, 2]


def tensors():
    return torch.tensor(S), torch.tensor(T_), torch.tensor(Y)


def test_dkd_worked_example():
    temp, alpha, beta = 2.0, 1.0, 8.0
    tckd = nckd = 0.0
    for s, t, y in zip(S, T_, Y, strict=True):
        p_s, p_t = softmax(s, temp), softmax(t, temp)
        tckd += kl([p_t[y], 1 - p_t[y]], [p_s[y], 1 - p_s[y]])
        others = [j for j in range(3) if j != y]
        q_s = softmax([s[j] for j in others], temp)
        q_t = softmax([t[j] for j in others], temp)
        nckd += kl(q_t, q_s)
    tckd, nckd = tckd / 2 * temp**2, nckd / 2 * temp**2
    got_t, got_n = dkd_loss(*tensors(), alpha, beta, temp)
    assert got_t.item() == pytest.approx(alpha * tckd, abs=TOL)
    assert got_n.item() == pytest.approx(beta * nckd, abs=TOL)


def test_dkd_warmup_is_linear_in_epochs():
    s, t, y = tensors()
    loss = create_loss("dkd", ce=0.0, warmup=4.0)
    full = sum(loss(KDBatch(s, t, y, progress=10.0)).values()).item()
    half = sum(loss(KDBatch(s, t, y, progress=2.0)).values()).item()
    assert half == pytest.approx(full / 2, abs=TOL)


@pytest.mark.parametrize("weighted", [False, True])
def test_ttm_and_wttm_worked_example(weighted):
    gamma = 0.5
    total = 0.0
    for s, t in zip(S, T_, strict=True):
        # softmax(t)^gamma renormalised, computed as powers (not as softmax(gamma*t))
        p = softmax(t)
        powered = [v**gamma for v in p]
        target = [v / sum(powered) for v in powered]
        term = kl(target, softmax(s))
        total += term * (sum(powered) if weighted else 1.0)
    s, t, _ = tensors()
    assert ttm_loss(s, t, gamma, weighted).item() == pytest.approx(total / 2, abs=TOL)


def test_nkd_worked_example():
    temp, gamma = 2.0, 1.5
    lt = lnt = 0.0
    for s, t, y in zip(S, T_, Y, strict=True):
        lt += -softmax(t)[y] * math.log(softmax(s)[y])
        others = [j for j in range(3) if j != y]
        q_t = softmax([t[j] for j in others], temp)
        q_s = softmax([s[j] for j in others], temp)
        lnt += -gamma * temp**2 * sum(a * math.log(b) for a, b in zip(q_t, q_s, strict=True))
    got_t, got_nt = nkd_loss(*tensors(), temp, gamma)
    assert got_t.item() == pytest.approx(lt / 2, abs=TOL)
    assert got_nt.item() == pytest.approx(lnt / 2, abs=TOL)


def test_nkd_teacher_weight_is_detached():
    s, t, y = tensors()
    s, t = s.clone().requires_grad_(True), t.clone().requires_grad_(True)
    loss_t, _ = nkd_loss(s, t, y, 1.0, 1.5)
    loss_t.backward()
    assert s.grad.abs().sum() > 0
    assert t.grad is None or t.grad.abs().sum() == 0


def test_luminet_worked_example():
    alpha, temp, eps = 2.0, 2.0, 1e-5

    def standardize(rows):
        cols = list(zip(*rows, strict=True))
        out_cols = []
        for c in cols:
            m = sum(c) / len(c)
            v = sum((x - m) ** 2 for x in c) / len(c)  # biased
            out_cols.append([(x - m) / math.sqrt(v + eps) for x in c])
        return [list(r) for r in zip(*out_cols, strict=True)]

    zs, zt = standardize(S), standardize(T_)
    expected = sum(kl(softmax(t, temp), softmax(s, temp)) for s, t in zip(zs, zt, strict=True))
    expected = alpha**2 * expected / 2
    s, t, _ = tensors()
    assert luminet_loss(s, t, alpha, temp).item() == pytest.approx(expected, abs=TOL)


def test_akl_worked_example():
    mu = 0.5
    total = 0.0
    for s, t in zip(S, T_, strict=True):
        p_t, p_s = softmax(t), softmax(s)
        order = sorted(range(3), key=lambda j: -p_t[j])
        cum, g_head, g_tail = 0.0, 0.0, 0.0
        for rank, j in enumerate(order):
            cum += p_t[j]
            gap = abs(p_t[j] - p_s[j])
            if rank == 0 or cum <= mu:
                g_head += gap
            else:
                g_tail += gap
        w_h, w_t = g_head / (g_head + g_tail), g_tail / (g_head + g_tail)
        total += w_h * kl(p_t, p_s) + w_t * kl(p_s, p_t)
    s, t, _ = tensors()
    assert akl_loss(s, t, mu, 1.0).item() == pytest.approx(total / 2, abs=TOL)


def test_nd_worked_example():
    # sample 1: s=[3,4] (norm 5), t=[0,5] (norm 5), class 0 centre along [2,0] -> 1 - 3/5
    # sample 2: s=[1,0] (norm 1), t=[0,2] (norm 2), class 1 centre along [0,3] -> 1 - 0/2
    s = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    t = torch.tensor([[0.0, 5.0], [0.0, 2.0]])
    centres = torch.tensor([[2.0, 0.0], [0.0, 3.0]])
    got = nd_loss(s, t, centres, torch.tensor([0, 1]))
    assert got.item() == pytest.approx(((1 - 3 / 5) + 1.0) / 2, abs=TOL)


def test_fitnet_mse_with_resize_by_average_pooling():
    # student map 1x2x2 averaged down to the teacher's 1x1: mean(1,2,3,6) = 3, teacher 5
    s = torch.tensor([[[[1.0, 2.0], [3.0, 6.0]]]])
    t = torch.tensor([[[[5.0]]]])
    assert fitnet_loss(s, t).item() == pytest.approx((3 - 5) ** 2, abs=TOL)


def test_fa_worked_example():
    # 1x2 maps, 2 channels. student positions [1,0] and [0,2] -> unit [1,0],[0,1]: A_s = I.
    # teacher positions [3,0] and [1,0] -> both [1,0]: A_t = all ones. A_s - A_t has two -1
    # entries out of four: mean squared entry 0.5.
    s = torch.tensor([[[[1.0, 0.0]], [[0.0, 2.0]]]])
    t = torch.tensor([[[[3.0, 1.0]], [[0.0, 0.0]]]])
    assert fa_loss(s, t).item() == pytest.approx(0.5, abs=TOL)
    # any R with R R^T = k I makes the estimate exact: k = 2, R = sqrt(2) I
    r = math.sqrt(2) * torch.eye(2)
    assert fa_loss_fast(s, t, r).item() == pytest.approx(0.5, abs=TOL)


def test_fa_teacher_resized_to_student():
    # the teacher's 2x2 map is pooled to the student's 1x1: both affinities are [[1]]
    s = torch.randn(1, 3, 1, 1)
    t = torch.randn(1, 5, 2, 2)
    assert fa_loss(s, t).item() == pytest.approx(0.0, abs=TOL)


def test_fa_fast_is_unbiased():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(2, 4, 3, 3, generator=g), torch.randn(2, 6, 3, 3, generator=g)
    exact = fa_loss(s, t).item()
    est = [fa_loss_fast(s, t, torch.randn(9, 16, generator=g)).item() for _ in range(400)]
    assert sum(est) / len(est) == pytest.approx(exact, rel=0.05)


def test_sinkd_worked_example():
    # 2018cx/SinKD loss.py: W = L1 cost between rows of softmax(s/T) and softmax(t/T),
    # P = exp(-W/eps) normalised rows then columns `iters` times, loss = sum(P * W)
    temp, eps, iters = 2.0, 0.1, 20
    p = [softmax(s, temp) for s in S]
    q = [softmax(t, temp) for t in T_]
    w = [[sum(abs(a - b) for a, b in zip(pi, qj, strict=True)) for qj in q] for pi in p]
    k = [[math.exp(-x / eps) for x in row] for row in w]
    for _ in range(iters):
        k = [[x / sum(row) for x in row] for row in k]
        cols = [sum(k[i][j] for i in range(2)) for j in range(2)]
        k = [[k[i][j] / cols[j] for j in range(2)] for i in range(2)]
    want = sum(k[i][j] * w[i][j] for i in range(2) for j in range(2))
    s, t, y = tensors()
    assert sinkd_loss(s, t, temp, eps, iters).item() == pytest.approx(want, abs=TOL)
    # the module: ce * CE + kd * T^2 KL + sinkhorn * that distance
    terms = create_loss("sinkd", ce=0.0, kd=0.5, sinkhorn=0.25)(KDBatch(s, t, y))
    kd = sum(kl(softmax(tt, temp), softmax(ss, temp)) for ss, tt in zip(S, T_, strict=True)) / 2
    assert terms["loss_sinkhorn"].item() == pytest.approx(0.25 * want, abs=TOL)
    assert terms["loss_kd"].item() == pytest.approx(0.5 * temp**2 * kd, abs=TOL)


def test_sinkd_temperature_is_used():
    # the official class ignores its T (self.T = 2); here T changes the distributions
    s, t, _ = tensors()
    assert sinkd_loss(s, t, 1.0, 0.1, 20).item() != pytest.approx(
        sinkd_loss(s, t, 4.0, 0.1, 20).item()
    )


def test_cakld_worked_example():
    # BitDistiller mytrainer.py: beta * KL(p_s || p_t) + (1 - beta) * KL(p_t || p_s), T = 1
    beta = 0.7
    want = (
        sum(
            beta * kl(softmax(ss), softmax(tt)) + (1 - beta) * kl(softmax(tt), softmax(ss))
            for ss, tt in zip(S, T_, strict=True)
        )
        / 2
    )
    s, t, y = tensors()
    assert cakld_loss(s, t, beta).item() == pytest.approx(want, abs=TOL)
    loss = create_loss("cakld")
    loss.set_teacher_confidence(beta)
    terms = loss(KDBatch(s, t, y))
    assert set(terms) == {"loss_cakld"}  # the official trainer has no cross-entropy term
    assert terms["loss_cakld"].item() == pytest.approx(want, abs=TOL)


def test_cakld_beta_is_the_teachers_mean_top1_probability():
    # train.py: the mean over samples of max_c softmax(teacher)_c
    want = (max(softmax(T_[0])) + max(softmax(T_[1]))) / 2
    assert teacher_confidence(torch.tensor(T_)).item() == pytest.approx(want, abs=TOL)
    loss = create_loss("cakld")
    with pytest.raises(RuntimeError, match="set_teacher_confidence"):
        loss(KDBatch(*tensors()))
    loss.set_teacher_confidence(want)
    assert "beta" in loss.state_dict()  # kept in every checkpoint with the loss's state
    with pytest.raises(ValueError):
        loss.set_teacher_confidence(1.5)


def _std_unbiased(z):
    m = sum(z) / len(z)
    return math.sqrt(sum((v - m) ** 2 for v in z) / (len(z) - 1))


def test_mixstd_worked_example():
    # hchoi71/MIX-KD MIXSTD.py: each row divided by its own unbiased std (L17-18), then
    # batchmean KL(softmax(t / std_t) || softmax(s / std_s)) (L24-27), alpha 0.9, no T^2.
    # By hand for one row (s = [1, 2, 0.5], t = [0.5, 2.5, 0]): std_s = sqrt(1.1667 / 2) =
    # 0.763763, std_t = sqrt(3.5 / 2) = 1.322876, KL = 0.0034366, x 0.9 = 0.0030930
    s1, t1 = [1.0, 2.0, 0.5], [0.5, 2.5, 0.0]
    assert _std_unbiased(s1) == pytest.approx(0.763763, abs=1e-6)
    one = kl(softmax([v / _std_unbiased(t1) for v in t1]),
             softmax([v / _std_unbiased(s1) for v in s1]))  # fmt: skip
    assert one == pytest.approx(0.0034366481, abs=1e-9)
    got = mixstd_loss(torch.tensor([s1]), torch.tensor([t1])).item()
    assert got == pytest.approx(one, abs=1e-7)
    # the two-row batch: mean of the rows; the module: ce on std-scaled logits + kd weight
    want = sum(kl(softmax([v / _std_unbiased(t) for v in t]),
                  softmax([v / _std_unbiased(s) for v in s]))
               for s, t in zip(S, T_, strict=True)) / 2  # fmt: skip
    s, t, y = tensors()
    terms = create_loss("mixstd")(KDBatch(s, t, y))
    assert terms["loss_kd"].item() == pytest.approx(0.9 * want, abs=TOL)
    ce = sum(-math.log(softmax([v / _std_unbiased(r) for v in r])[c])
             for r, c in zip(S, Y, strict=True)) / 2  # fmt: skip
    assert terms["loss_ce"].item() == pytest.approx(0.1 * ce, abs=TOL)
    assert "loss_ce" not in create_loss("mixstd")(KDBatch(s, t, None))  # label-free


def _ofa_by_hand(s, t, y, eps, temperature=1.0):
    # Hao840/OFAKD distillers/ofa.py L13-18: sum_j -((p_t + m)^eps - m)_j * log p_s,j
    p_s, p_t = softmax(s, temperature), softmax(t, temperature)
    m = [1.0 if j == y else 0.0 for j in range(len(s))]
    return sum(-((pt + mj) ** eps - mj) * math.log(ps)
               for ps, pt, mj in zip(p_s, p_t, m, strict=True))  # fmt: skip


def test_ofa_worked_example():
    # s = [1, 2, 0.5], t = [0.5, 2.5, 0], y = 1: p_s = [0.2312, 0.6285, 0.1402],
    # p_t = [0.1112, 0.8214, 0.0674]; eps 1.5: weights [0.0371, 2.4582 - 1, 0.0175], so
    # 0.0371 * 1.4644 + 1.4582 * 0.4644 + 0.0175 * 1.9644 = 0.7658
    s1, t1 = [1.0, 2.0, 0.5], [0.5, 2.5, 0.0]
    assert _ofa_by_hand(s1, t1, 1, 1.5) == pytest.approx(0.7657946531, abs=1e-9)
    assert _ofa_by_hand(s1, t1, 1, 1.0) == pytest.approx(0.6766724438, abs=1e-9)
    one = torch.tensor([s1]), torch.tensor([t1]), torch.tensor([1])
    assert ofa_loss(*one, eps=1.5).item() == pytest.approx(0.7657946531, abs=1e-6)
    # eps = 1 is the cross-entropy to the teacher's distribution
    ce_t = -sum(pt * math.log(ps) for pt, ps in zip(softmax(t1), softmax(s1), strict=True))
    assert ofa_loss(*one, eps=1.0).item() == pytest.approx(ce_t, abs=1e-6)
    # a batch: the row mean; temperature divides both models' logits
    s, t, y = tensors()
    want = sum(_ofa_by_hand(a, b, c, 1.5, 2.0) for a, b, c in zip(S, T_, Y, strict=True)) / 2
    assert ofa_loss(s, t, y, eps=1.5, temperature=2.0).item() == pytest.approx(want, abs=TOL)


def test_qfd_worked_example():
    # QFD (arXiv 2307.10638): L2 to the teacher's quantized feature. 2 bits on [0, 1]: 3 steps
    # of 1/3; t = [0.1, 0.52, 1.0] -> round(0.3, 1.56, 3) = 0, 2, 3 -> [0, 2/3, 1]
    t = torch.tensor([[0.1, 0.52, 1.0]])
    q = quantize_feature(t, 0.0, 1.0, 2)
    assert q.flatten().tolist() == pytest.approx([0.0, 2 / 3, 1.0], abs=1e-7)
    s = torch.tensor([[0.0, 0.5, 1.0]])
    want = (0.5 - 2 / 3) ** 2 / 3  # mean over the 3 entries
    assert qfd_loss(s, t, 0.0, 1.0, 2).item() == pytest.approx(want, abs=1e-7)
    # out of range values clamp to the ends; a negative range keeps its sign
    assert quantize_feature(torch.tensor([-5.0, 9.0]), -1.0, 1.0, 1).tolist() == [-1.0, 1.0]
    loss = create_loss("qfd", bits=2, ce=0.0)
    loss.setup({"emb_s": (3,), "emb_t": (3,)})
    loss.set_teacher_feature_range(0.2, 1.0)  # all non-negative: lo becomes 0
    assert loss.feature_range.tolist() == [0.0, 1.0]
    terms = loss(KDBatch(s, s, None, emb_s=s, emb_t=t))
    assert set(terms) == {"loss_qfd"} and terms["loss_qfd"].item() == pytest.approx(want, abs=1e-7)


def test_faqd_worked_example():
    # lzj994/FAQD quant_distill_cifar100.py fa_loss (order 1): ||A_s - A_t||_1 / (HW)^2 summed
    # over the batch. A 1x2 map: student positions (1, 0) and (1, 1), unit (1, 0), (1, 1)/sqrt2,
    # so A_s = [[1, r], [r, 1]] with r = 1/sqrt2; teacher positions (0, 1) and (0, 2): A_t = 1
    s = torch.tensor([[[[1.0, 1.0]], [[0.0, 1.0]]]])  # [1, C=2, H=1, W=2]
    t = torch.tensor([[[[0.0, 0.0]], [[1.0, 2.0]]]])
    one = 2 * (1 - 1 / math.sqrt(2)) / 4
    assert faqd_loss(s, t).item() == pytest.approx(one, abs=1e-4)  # the 1e-5 in the norm
    assert faqd_loss(torch.cat([s, s]), torch.cat([t, t])).item() == pytest.approx(2 * one,
                                                                                abs=2e-4)
    # the module: 0.3 CE + MSE on the logits + 0.1 x the affinity terms of its stages
    loss = create_loss("faqd", stages="1")
    loss.setup({"stages_s": ((2, 1, 2),), "stages_t": ((2, 1, 2),)})
    with torch.no_grad():  # an identity adapter: 1x1 conv = I, no bias; ReLU keeps s >= 0
        loss.adapters[0][0].weight.copy_(torch.eye(2).view(2, 2, 1, 1))
        loss.adapters[0][0].bias.zero_()
    ls, lt, y = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 2.0]]), torch.tensor([1])
    terms = loss(KDBatch(ls, lt, y, stages_s=[s], stages_t=[t]))
    assert terms["loss_fa"].item() == pytest.approx(0.1 * one, abs=1e-5)
    assert terms["loss_kd"].item() == pytest.approx((1.0 + 0.0) / 2)
    ce = -math.log(softmax([1.0, 2.0])[1])
    assert terms["loss_ce"].item() == pytest.approx(0.3 * ce, abs=1e-6)
