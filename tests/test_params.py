"""Parameter declarations: coercion, bounds, choices, and the messages users see."""

import pytest

from harness.errors import ParamError
from harness.params import Param, validate_params


def test_float_accepts_yaml_exponent_strings_and_ints():
    p = Param(float, 1.0, low=0)
    assert p.coerce("lr", "1e-3") == pytest.approx(1e-3)
    assert p.coerce("lr", 2) == 2.0 and isinstance(p.coerce("lr", 2), float)


@pytest.mark.parametrize("value", [True, "abc", [1], 1.5])
def test_int_rejects_non_integers(value):
    with pytest.raises(ParamError, match="wrong type"):
        Param(int, 1).coerce("n", value)


def test_int_accepts_integral_float():
    assert Param(int, 1).coerce("n", 4.0) == 4


def test_bounds_and_messages():
    p = Param(int, 1, low=1)
    with pytest.raises(ParamError) as err:
        p.coerce("n_features", 0)
    assert str(err.value) == "n_features: 0 is out of range; allowed: an integer ≥ 1"
    q = Param(float, 0.5, low=0, high=1, low_open=True, high_open=True)
    for bad in (0, 1, float("nan")):
        with pytest.raises(ParamError):
            q.coerce("f", bad)
    assert q.coerce("f", 0.25) == 0.25


def test_choices_and_nullable():
    p = Param(str, "a", choices=("a", "b"))
    with pytest.raises(ParamError, match="allowed: one of a, b"):
        p.coerce("k", "c")
    with pytest.raises(ParamError, match="null is not allowed"):
        p.coerce("k", None)
    assert Param(int, None, nullable=True).coerce("k", None) is None


def test_validate_fills_defaults_and_names_unknown_keys():
    decl = {"a": Param(int, 3), "b": Param(str, "x")}
    assert validate_params(decl, {"b": "y"}, "problem p") == {"a": 3, "b": "y"}
    with pytest.raises(ParamError) as err:
        validate_params(decl, {"c": 1}, "problem p")
    assert err.value.key == "c" and "valid: a, b" in str(err.value)


def test_required_parameter_missing():
    with pytest.raises(ParamError, match="needs this parameter"):
        validate_params({"a": Param(int)}, {}, "strategy s")
