import pytest

from edgekd.errors import TargetError
from edgekd.targets import builtin_profiles, get_target, load_profile_file


def test_every_builtin_profile_validates_and_has_sources():
    profiles = builtin_profiles()
    assert "host" in profiles
    for prof in profiles.values():
        assert prof.sources
        assert {"runtime", "precisions"} <= set(prof.sources)


def test_unknown_target_lists_valid_names():
    with pytest.raises(TargetError) as e:
        get_target("hots")
    line = e.value.one_line()
    assert "unknown target" in line and "'hots'" in line and "host" in line


def _write(tmp_path, text):
    p = tmp_path / "dev.yaml"
    p.write_text(text)
    return p


GOOD = """name: dev
description: a test device
runtime: onnxruntime
runtime_version: "1.20"
precisions: [fp32]
sources: {runtime: vendor page, precisions: vendor page}
"""


def test_user_yaml_by_path(tmp_path):
    assert get_target(str(_write(tmp_path, GOOD))).name == "dev"


@pytest.mark.parametrize(
    "text,needle",
    [
        (GOOD + "bogus_key: 1\n", "bogus_key"),
        (
            GOOD.replace(
                "sources: {runtime: vendor page, precisions: vendor page}",
                "sources: {runtime: vendor page}",
            ),
            "precisions",
        ),
        (GOOD.replace("[fp32]", "[fp64]"), "precisions"),
        ("name: [unclosed\n", "not valid YAML"),
        ("!!python/object/apply:os.system ['echo hi']\n", "not valid YAML"),
    ],
)
def test_malformed_profiles_give_one_line(tmp_path, text, needle):
    with pytest.raises(TargetError) as e:
        load_profile_file(_write(tmp_path, text))
    assert needle in e.value.one_line()
    assert "\n" not in e.value.one_line()


@pytest.mark.parametrize("name", ["", "Jetson Nano", "-x", "a/b"])
def test_profile_name_must_be_a_slug(tmp_path, name):
    import yaml as _yaml

    data = _yaml.safe_load(GOOD)
    data["name"] = name
    with pytest.raises(TargetError, match="name"):
        load_profile_file(_write(tmp_path, _yaml.safe_dump(data)))
