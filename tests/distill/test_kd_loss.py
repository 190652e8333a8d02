import math

import pytest
import torch

from edgekd.distill.losses import KDBatch, KDLoss, create_loss, kd_loss, list_losses
from edgekd.errors import ConfigError


def _kl_by_hand(p, q):
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True))


@pytest.mark.parametrize("T", [1.0, 2.0, 4.0])
def test_kd_loss_worked_example(T):
    # teacher logits [ln 3, 0], student [0, 0]: at T=1, p_t = [3/4, 1/4] and p_s = [1/2, 1/2]
    t = torch.tensor([[math.log(3.0), 0.0]])
    s = torch.tensor([[0.0, 0.0]])
    z = 3.0 ** (1 / T)
    p_t = [z / (1 + z), 1 / (1 + z)]
    expected = T * T * _kl_by_hand(p_t, [0.5, 0.5])
    assert kd_loss(s, t, T).item() == pytest.approx(expected, abs=1e-6)
    if T == 1.0:
        assert expected == pytest.approx(0.75 * math.log(1.5) + 0.25 * math.log(0.5))


def test_kd_loss_is_a_batch_mean():
    t = torch.tensor([[math.log(3.0), 0.0], [0.0, 0.0]])
    s = torch.zeros(2, 2)
    one = _kl_by_hand([0.75, 0.25], [0.5, 0.5])
    assert kd_loss(s, t, 1.0).item() == pytest.approx(one / 2, abs=1e-6)


def test_kd_loss_zero_when_student_equals_teacher():
    x = torch.randn(8, 10)
    assert kd_loss(x, x, 4.0).abs().item() < 1e-6


def test_module_returns_named_terms_and_weights():
    s, t, y = torch.randn(4, 5, requires_grad=True), torch.randn(4, 5), torch.tensor([0, 1, 2, 3])
    terms = KDLoss(temperature=2.0, alpha=0.7)(KDBatch(s, t, y))
    assert set(terms) == {"loss_kd", "loss_ce"}
    assert terms["loss_kd"].item() == pytest.approx(0.7 * kd_loss(s, t, 2.0).item(), rel=1e-6)
    ce = torch.nn.functional.cross_entropy(s, y).item()
    assert terms["loss_ce"].item() == pytest.approx(0.3 * ce, rel=1e-6)
    sum(terms.values()).backward()
    assert torch.isfinite(s.grad).all()


def test_registry():
    assert "kd" in list_losses()
    with pytest.raises(ConfigError, match="unknown KD loss"):
        create_loss("dkdd")


def test_duplicate_registration_names_both_places():
    from edgekd.distill.losses import register_loss

    with pytest.raises(ValueError, match="registered twice"):
        register_loss("kd")(type("Other", (), {}))
