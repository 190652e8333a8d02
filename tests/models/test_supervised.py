"""Random erasing (Zhong et al., Algorithm 1) as the teacher recipe applies it."""

import torch

from edgekd.models.supervised import random_erase


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_probability_zero_leaves_the_batch_whole_and_the_input_is_never_changed() -> None:
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    before = x.clone()
    assert torch.equal(random_erase(x, 0.0, _gen()), x)
    random_erase(x, 1.0, _gen())
    assert torch.equal(x, before)


def test_each_erased_image_gets_one_rectangle_within_the_area_bounds_in_every_channel() -> None:
    h = w = 32
    x = torch.zeros(64, 3, h, w)
    y = random_erase(x, 1.0, _gen())
    lo, hi = 0.02 * h * w, 0.4 * h * w
    for img in y:
        mask = img != 0  # N(0, 1) fill is never exactly 0
        assert torch.equal(mask[0], mask[1]) and torch.equal(mask[0], mask[2])
        rows = mask[0].any(1).nonzero().flatten()
        cols = mask[0].any(0).nonzero().flatten()
        eh, ew = len(rows), len(cols)
        assert rows[-1] - rows[0] + 1 == eh and cols[-1] - cols[0] + 1 == ew  # contiguous
        assert int(mask[0].sum()) == eh * ew  # a filled rectangle
        assert 0 < eh < h and 0 < ew < w
        # sides are rounded from sqrt(a r) and sqrt(a / r): allow half a pixel on each side
        assert (eh - 0.5) * (ew - 0.5) <= hi and (eh + 0.5) * (ew + 0.5) >= lo


def test_about_p_of_the_images_are_erased_and_the_same_seed_erases_the_same_way() -> None:
    x = torch.zeros(400, 1, 16, 16)
    a = random_erase(x, 0.5, _gen(3))
    erased = int((a != 0).flatten(1).any(1).sum())
    assert 150 < erased < 250  # Binomial(400, 0.5) lies within 5 sd of 200
    assert torch.equal(a, random_erase(x, 0.5, _gen(3)))
    assert not torch.equal(a, random_erase(x, 0.5, _gen(4)))


def test_an_image_too_small_for_any_rectangle_is_left_whole() -> None:
    x = torch.zeros(5, 3, 1, 1)
    assert torch.equal(random_erase(x, 1.0, _gen()), x)
