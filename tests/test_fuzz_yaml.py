"""Random text never makes profile loading raise anything but TargetError."""

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgekd.errors import TargetError
from edgekd.targets import load_profile_file

# tmp_path is reused across examples on purpose: each example rewrites the one file
FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
GOOD = yaml.safe_load(open(__file__.replace("test_fuzz_yaml.py", "../targets/host.yaml")))


@FUZZ
@given(st.text(max_size=400))
def test_random_text(tmp_path, text):
    p = tmp_path / "t.yaml"
    p.write_text(text)
    try:
        load_profile_file(p)
    except TargetError as e:
        assert "\n" not in e.one_line()


values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=10,
)


@FUZZ
@given(st.sampled_from(sorted(GOOD)), values)
def test_mutated_profile(tmp_path, key, value):
    data = dict(GOOD)
    data[key] = value
    p = tmp_path / "t.yaml"
    p.write_text(yaml.safe_dump(data))
    try:
        prof = load_profile_file(p)
    except TargetError:
        return
    assert prof.name  # anything accepted is a full, valid profile


@FUZZ
@given(st.text(max_size=300))
def test_random_recipe_text(tmp_path, text):
    """--config files: anything that is not a valid recipe is one ConfigError line."""
    from edgekd.cli.recipe import load_recipe
    from edgekd.errors import ConfigError

    p = tmp_path / "r.yaml"
    p.write_text(text)
    try:
        out = load_recipe(p, {"epochs", "data", "teacher"})
    except ConfigError as e:
        assert "\n" not in e.one_line()
        return
    assert set(out) <= {"epochs", "data", "teacher"}
