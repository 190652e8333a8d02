import pytest

from edgekd.errors import EdgekdError
from edgekd.models import build_student


def test_build_student_head_matches_classes():
    m = build_student("mobilenetv3_small_050", 7, (3, 32, 32))
    assert m.get_classifier().out_features == 7


def test_build_student_unknown_name():
    with pytest.raises(EdgekdError, match="unknown timm model"):
        build_student("mobilenetv9_tiny", 10, (3, 32, 32))


def test_build_student_single_channel():
    m = build_student("resnet10t", 3, (1, 16, 16))
    assert m.conv1[0].in_channels == 1 if hasattr(m.conv1, "__getitem__") else True
