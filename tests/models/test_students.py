import pytest

from edgekd.errors import EdgekdError
from edgekd.models import build_student, count_params, create_timm, pick_auto_student
from edgekd.models.students import AUTO_CANDIDATES


def test_auto_picks_largest_under_one_sixteenth():
    sizes = {n: count_params(create_timm(n, 10)) for n in AUTO_CANDIDATES}
    small050, small075 = sizes["mobilenetv3_small_050"], sizes["mobilenetv3_small_075"]
    assert small050 < small075
    # a teacher with 16x (small_075 + 1) params admits small_075 and everything below it
    name, got = pick_auto_student(16 * (small075 + 1), 10)
    assert got == sizes
    assert name == max((n for n in sizes if sizes[n] <= small075 + 1), key=sizes.get)
    # a teacher too small for any candidate gets the smallest one
    assert pick_auto_student(1000, 10)[0] == min(sizes, key=sizes.get)


def test_auto_skips_candidates_over_the_latency_budget():
    sizes = {n: count_params(create_timm(n, 10)) for n in AUTO_CANDIDATES}
    by_size = sorted(sizes, key=sizes.get, reverse=True)
    teacher = 16 * sizes[by_size[0]]  # every candidate is under the size limit
    tried = []

    def fits(name):
        tried.append(name)
        return name not in by_size[:2]  # the two largest are too slow

    assert pick_auto_student(teacher, 10, fits)[0] == by_size[2]
    assert tried == by_size[:3]  # largest first, stopping at the first that fits
    # nothing fits: the smallest under the limit (the report shows the budget missed)
    assert pick_auto_student(teacher, 10, lambda _n: False)[0] == by_size[-1]


def test_build_student_head_matches_classes():
    m = build_student("mobilenetv3_small_050", 7, (3, 32, 32))
    assert m.get_classifier().out_features == 7


def test_build_student_unknown_name():
    with pytest.raises(EdgekdError, match="unknown timm model"):
        build_student("mobilenetv9_tiny", 10, (3, 32, 32))


def test_build_student_single_channel():
    m = build_student("resnet10t", 3, (1, 16, 16))
    assert m.conv1[0].in_channels == 1 if hasattr(m.conv1, "__getitem__") else True
