"""`--option KEY=VALUE`: values take the type of the factory parameter they set."""

import pytest

from cod_diffc.backbones import registry
from cod_diffc.cli._common import parse_options


def test_values_take_the_type_of_the_parameter_default():
    assert parse_options(["std=0.5", "patch_size=2"], "gaussian") == {"std": 0.5, "patch_size": 2}
    assert parse_options(["prompt=2024", "cache_dir=true"], "sd") == {"prompt": "2024", "cache_dir": "true"}
    assert parse_options(["allow_download=True"], "cod") == {"allow_download": True}


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("patch_size=two", "patch_size takes an integer"),
        ("mean=abc", "mean takes a number"),
        ("std", "is not KEY=VALUE"),
    ],
)
def test_values_of_the_wrong_type_are_refused(pair, message):
    with pytest.raises(ValueError, match=message):
        parse_options([pair], "gaussian")


def test_a_bool_option_takes_only_true_or_false():
    with pytest.raises(ValueError, match="allow_download takes true or false"):
        parse_options(["allow_download=yes"], "cod")


def test_a_factory_with_open_options_gets_guessed_types(monkeypatch):
    monkeypatch.setattr(registry.BACKBONES, "runtime", {})
    registry.register_backbone("open-options", lambda model=None, **options: None)
    assert parse_options(["a=1", "b=0.5", "c=false", "d=text"], "open-options") == {
        "a": 1,
        "b": 0.5,
        "c": False,
        "d": "text",
    }
