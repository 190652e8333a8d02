from edgekd.errors import DataError, EdgekdError


def test_one_line_names_value_valid_and_fix():
    e = DataError("unknown thing", value="bad\nname", valid=["a", "b"], fix="pass a or b")
    assert e.one_line() == "unknown thing: bad name; valid: a, b; pass a or b"
    assert "\n" not in str(e)
    assert isinstance(e, EdgekdError) and e.exit_code == 1


def test_long_valid_lists_are_truncated():
    e = EdgekdError("x", valid=[str(i) for i in range(30)])
    assert e.one_line().endswith("10, 11, ...")
