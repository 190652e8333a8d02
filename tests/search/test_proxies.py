"""Each proxy on tiny nets whose values are derived by hand from the definitions."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from edgekd.search.proxies import (
    gradnorm_score,
    naswot_score,
    params_score,
    relation_distance,
    synflow_score,
)
from edgekd.search.proxies.diswot import classifier_gradient


def _linear(weight, bias=False) -> nn.Linear:
    w = torch.tensor(weight, dtype=torch.float32)
    lin = nn.Linear(w.shape[1], w.shape[0], bias=bias)
    with torch.no_grad():
        lin.weight.copy_(w)
    return lin


def test_naswot_on_codes_written_down():
    # identity layer + ReLU: x1=[1,-1] -> code [1,0]; x2=[-1,1] -> [0,1]; x3=[1,1] -> [1,1]
    # K = N_A - Hamming = [[2,0,1],[0,2,1],[1,1,2]]; det K = 2*3 - 0 + 1*(0-2) = 4
    net = nn.Sequential(_linear([[1.0, 0.0], [0.0, 1.0]]), nn.ReLU())
    x = torch.tensor([[1.0, -1.0], [-1.0, 1.0], [1.0, 1.0]])
    assert naswot_score(net, x) == pytest.approx(math.log(4.0))


def test_naswot_identical_codes_are_singular():
    net = nn.Sequential(_linear([[1.0, 0.0], [0.0, 1.0]]), nn.ReLU())
    x = torch.tensor([[1.0, 1.0], [2.0, 3.0]])  # same code twice: det 0
    assert naswot_score(net, x) == float("-inf")


def test_synflow_one_layer_is_the_sum_of_absolute_weights():
    w = [[1.0, -2.0, 3.0], [-0.5, 0.0, 4.0]]
    assert synflow_score(_linear(w), (3,)) == pytest.approx(sum(abs(v) for r in w for v in r))


def test_synflow_two_layers_count_the_path_sum_twice():
    # R = 1^T |W2| |W1| 1; each layer's sum(theta * dR/dtheta) equals R, so the score is 2R
    w1, w2 = [[1.0, -2.0], [3.0, 0.5]], [[-1.0, 2.0]]
    r = sum(abs(w2[0][i]) * sum(abs(v) for v in w1[i]) for i in range(2))
    net = nn.Sequential(_linear(w1), _linear(w2))
    assert synflow_score(net, (2,)) == pytest.approx(2 * r)
    assert net[0].weight[0, 1].item() == -2.0  # the scored model is a copy


def test_gradnorm_is_the_norm_of_the_ce_gradient():
    w = [[0.5, -1.0], [2.0, 0.0]]
    x, y = [1.0, 2.0], 1
    z = [sum(wi * xi for wi, xi in zip(row, x, strict=True)) for row in w]
    p = [math.exp(v) / sum(math.exp(u) for u in z) for v in z]
    g = [[(p[i] - (1.0 if i == y else 0.0)) * x[j] for j in range(2)] for i in range(2)]
    expected = math.sqrt(sum(v * v for row in g for v in row))
    got = gradnorm_score(_linear(w), torch.tensor([x]), torch.tensor([y]))
    assert got == pytest.approx(expected, rel=1e-5)


def test_relation_distance_worked_example():
    # teacher rows orthogonal: G_t = I. student rows equal: G_s = ones, rows -> 1/sqrt(2)
    # squared Frobenius: 2 (1 - 1/sqrt2)^2 + 2 (1/sqrt2)^2, divided by B^2 = 4
    f_t = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    f_s = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])  # another width: fine
    r = 1 / math.sqrt(2)
    assert relation_distance(f_t, f_s) == pytest.approx((2 * (1 - r) ** 2 + 2 * r**2) / 4)
    assert relation_distance(f_t, f_t) == pytest.approx(0.0)


def test_params_baseline_counts_trainable_parameters():
    net = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1, bias=False))
    assert params_score(net) == 3 * 2 + 2 + 2


def test_classifier_gradient_by_hand():
    # z = W e; mean CE over 2 samples; dCE/dW[i, j] = mean_b (p_bi - [y_b = i]) e_bj
    w = [[0.5, -1.0], [2.0, 0.0]]
    e = [[1.0, 2.0], [-1.0, 0.5]]
    y = [1, 0]
    expected = [[0.0, 0.0], [0.0, 0.0]]
    for b in range(2):
        z = [sum(wi * ei for wi, ei in zip(row, e[b], strict=True)) for row in w]
        p = [math.exp(v) / sum(math.exp(u) for u in z) for v in z]
        for i in range(2):
            for j in range(2):
                expected[i][j] += (p[i] - (1.0 if i == y[b] else 0.0)) * e[b][j] / 2
    et = torch.tensor(e)
    got = classifier_gradient(et @ torch.tensor(w).T, et, torch.tensor(y))
    assert got.flatten().tolist() == pytest.approx(sum(expected, []), rel=1e-5)


def _small_cnn(width: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10),
    )  # fmt: skip


def test_diswot_is_zero_for_the_teacher_itself_and_leaves_the_student_alone():
    from edgekd.search.proxies import diswot_score

    torch.manual_seed(0)
    teacher = _small_cnn(8)
    x, y = torch.randn(16, 3, 8, 8), torch.arange(16) % 10
    teacher(x)  # running statistics = this batch's (momentum 1), so eval == batch statistics
    teacher[1].momentum = 1.0
    teacher(x)
    teacher.eval()
    same = diswot_score(teacher, teacher, x, y)
    assert same["diswot"] == pytest.approx(0.0, abs=1e-5)
    student = _small_cnn(4)
    before = {k: v.clone() for k, v in student.state_dict().items()}
    other = diswot_score(teacher, student, x, y)
    assert other["diswot"] < 0 and other["d_rel"] > 0 and other["d_sem"] > 0
    assert student.training  # mode restored
    for k, v in student.state_dict().items():  # BatchNorm buffers untouched
        assert torch.equal(v, before[k]), k


def _at(width: int):
    """`model_at(seed)`: the small CNN of `width` at random init with that seed."""

    def model_at(seed: int) -> nn.Sequential:
        torch.manual_seed(seed)
        return _small_cnn(width)

    return model_at


def test_diswot_reference_gives_the_teachers_own_architecture_zero():
    """Random-init reference: a candidate with the teacher's architecture is, at every seed,
    the very network the teacher side was computed from, so both distances are 0 (the best
    score); any other architecture is below it."""
    from edgekd.search.proxies import DiswotReference

    batches = [(torch.randn(16, 3, 8, 8), torch.arange(16) % 10) for _ in range(2)]
    ref = DiswotReference(_at(8), batches, seeds=[0, 1, 2])
    assert len(ref.draws) == 6
    same = ref.score(_at(8))
    assert same == pytest.approx({"diswot": 0.0, "d_sem": 0.0, "d_rel": 0.0}, abs=1e-6)
    other = ref.score(_at(4))
    assert other["diswot"] < 0 and other["d_sem"] > 0 and other["d_rel"] > 0


def test_diswot_reference_is_the_mean_of_single_draws():
    """Against a trained teacher, the reference's score is the plain mean over (seed, batch)
    of the one-draw DisWOT of the student built at that seed."""
    from edgekd.search.proxies import DiswotReference, diswot_score

    torch.manual_seed(0)
    teacher = _small_cnn(8).eval()
    batches = [(torch.randn(16, 3, 8, 8), torch.arange(16) % 10) for _ in range(3)]
    ref = DiswotReference(lambda _s: teacher, batches, seeds=[5, 6], trained=True)
    single = [diswot_score(teacher, _at(4)(s), x, y) for s in (5, 6) for x, y in batches]
    got = ref.score(_at(4))
    for k in ("diswot", "d_sem", "d_rel"):
        assert got[k] == pytest.approx(sum(d[k] for d in single) / 6, rel=1e-5), k
    # random-init reference: the teacher at each seed, with batch statistics like the student
    ref = DiswotReference(_at(8), batches, seeds=[5, 6])
    single = [diswot_score(_at(8)(s), _at(4)(s), x, y, teacher_batch_stats=True)
              for s in (5, 6) for x, y in batches]  # fmt: skip
    got = ref.score(_at(4))
    for k in ("diswot", "d_sem", "d_rel"):
        assert got[k] == pytest.approx(sum(d[k] for d in single) / 6, rel=1e-5), k


def test_random_init_proxies_use_batch_statistics_without_dropout():
    """Batch statistics for BatchNorm, but no dropout noise: the score of a network with
    dropout does not depend on the random state at scoring time."""
    from edgekd.search.proxies import diswot_score, naswot_score

    torch.manual_seed(0)
    net = _small_cnn(8)
    net.insert(7, nn.Dropout(0.5))  # before the classifier
    teacher = _small_cnn(8).eval()
    x, y = torch.randn(16, 3, 8, 8), torch.arange(16) % 10
    scores = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        scores.append((diswot_score(teacher, net, x, y), naswot_score(net, x)))
    assert scores[0] == scores[1]
    assert net.training and net[7].training  # the caller's modes are restored
