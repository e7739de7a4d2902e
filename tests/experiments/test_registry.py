import pytest

from niso_geom.experiments.registry import MethodRegistry, UnknownMethodError


def test_registry_keeps_order_defaults_and_names_unknown_methods():
    reg = MethodRegistry("demo")

    @reg.register("a", "first")
    def run_a(x):
        return x + 1

    @reg.register("b", "second, extra", default=False)
    def run_b(x):
        return x * 2

    assert reg.choices() == ("a", "b") and reg.defaults() == ("a",)
    assert reg["a"](1) == 2 and reg["b"](3) == 6 and run_a(1) == 2
    assert "b" in reg and "c" not in reg and len(reg) == 2
    with pytest.raises(UnknownMethodError, match="unknown method 'c'; choose from a, b"):
        reg.validate(["a", "c"])
    with pytest.raises(ValueError, match="twice"):
        reg.register("a", "again")(run_a)
    assert reg.help_text() == "a: first; b: second, extra"
