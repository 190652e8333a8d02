import pytest

from edgekd.config import Budgets, CompressConfig, build_config
from edgekd.errors import ConfigError


def test_input_shape_parses_strings():
    assert CompressConfig(teacher="t", input_shape="3,32,32").input_shape == (3, 32, 32)
    assert CompressConfig(teacher="t", input_shape="3x64x48").input_shape == (3, 64, 48)


@pytest.mark.parametrize("shape", ["3,32", "a,b,c", "3,0,32"])
def test_bad_input_shape_is_one_line_naming_the_flag(shape):
    with pytest.raises(ConfigError) as e:
        build_config(CompressConfig, {"teacher": "t", "input_shape": shape})
    assert e.value.one_line().startswith("invalid value for --input-shape")


@pytest.mark.parametrize(
    "field,value,flag",
    [
        ("latency_ms", 0, "--latency-budget-ms"),
        ("latency_ms", -1.0, "--latency-budget-ms"),
        ("max_accuracy_drop", -0.5, "--max-accuracy-drop"),
        ("max_model_mb", 0, "--max-model-mb"),
    ],
)
def test_non_positive_budgets_are_rejected(field, value, flag):
    with pytest.raises(ConfigError, match=flag):
        build_config(Budgets, {field: value})


def test_unknown_key_is_rejected():
    with pytest.raises(ConfigError, match="--epochz"):
        build_config(CompressConfig, {"teacher": "t", "epochz": 3})


def test_weight_average_is_a_fraction_or_swad():
    def cfg(**kw):
        return build_config(CompressConfig, {"teacher": "t.pt", **kw})

    assert cfg(weight_average="0.1").weight_average == 0.1
    assert cfg(weight_average="swad", swad_args="n_converge=2,frequency=5").swad_args == {
        "n_converge": 2, "frequency": 5}  # fmt: skip
    for bad in ("1.5", "abc"):
        with pytest.raises(ConfigError) as e:
            cfg(weight_average=bad)
        assert str(e.value).startswith("invalid value for --weight-average")  # not a union tag
        assert "or swad" in str(e.value)
    with pytest.raises(ConfigError, match="--swad-args needs --weight-average swad"):
        cfg(swad_args="n_converge=2")
    with pytest.raises(ConfigError, match="unknown n_conv"):
        cfg(weight_average="swad", swad_args="n_conv=2")
