import pytest

from cod_diffc.cli import main


def test_help_exits_cleanly(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "configs" in capsys.readouterr().out


def test_unknown_subcommand_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["frobnicate"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_configs_lists_every_named_configuration(capsys):
    from cod_diffc import NAMED_CONFIGS

    assert main(["configs"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in NAMED_CONFIGS)
