import numpy as np
import torch
from sklearn.datasets import load_digits

from edgekd.data import load_data, stack_inputs
from edgekd.data.digits import digits_bundle


def test_split_sizes_and_stratification(digits):
    # 1797 images, 20% val: sklearn's train_test_split gives ceil(0.2 * 1797) = 360 val images
    assert len(digits.train) == 1437 and len(digits.val) == 360
    _, y_val = stack_inputs(digits.val)
    counts = np.bincount(y_val.numpy(), minlength=10)
    full = np.bincount(load_digits().target, minlength=10)
    # stratified: every class's val share within one image of 20%
    assert np.all(np.abs(counts - full * 0.2) <= 1)


def test_images_are_3x32x32_in_range(digits):
    x, _ = stack_inputs(digits.val)
    assert x.shape == (360, 3, 32, 32)
    assert x.min() >= -1.0 and x.max() <= 1.0
    assert digits.input_shape == (3, 32, 32) and digits.num_classes == 10


def test_pixels_are_the_upsampled_sklearn_digits(digits):
    # the mean of an image is preserved (up to edge effects) by bilinear upsampling;
    # check the val set is a subset of the real digits by matching means
    raw = load_digits().images / 16.0
    raw_means = np.sort(raw.reshape(len(raw), -1).mean(1))
    x, _ = stack_inputs(digits.val)
    means = ((x[:, 0] + 1) / 2).reshape(len(x), -1).mean(1).numpy()
    idx = np.searchsorted(raw_means, means).clip(0, len(raw_means) - 1)
    assert np.median(np.abs(raw_means[idx] - means)) < 0.02


def test_split_is_fixed_across_calls():
    a, b = digits_bundle(augment=False), digits_bundle(augment=False)
    assert torch.equal(stack_inputs(a.val)[0], stack_inputs(b.val)[0])
    assert a.fingerprint == b.fingerprint


def test_train_augmentation_shifts_but_calib_does_not(digits):
    torch.manual_seed(0)
    shifted = [digits.train[0][0] for _ in range(8)]
    assert any(not torch.equal(shifted[0], s) for s in shifted[1:])
    assert torch.equal(digits.calib_source[0][0], digits.calib_source[0][0])


def test_calibration_subset_is_seeded_and_sized(digits):
    a = digits.calibration_subset(100, seed=3)
    b = digits.calibration_subset(100, seed=3)
    assert len(a) == 100 and a.indices == b.indices
    assert len(digits.calibration_subset(10_000, seed=0)) == len(digits.calib_source)


def test_input_shape_override_resizes():
    b = load_data("digits", (1, 16, 16))
    assert b.input_shape == (1, 16, 16)
    assert b.val[0][0].shape == (1, 16, 16)
