"""The config file (defaults for run and control serve); the schedule installer is tested in
tests/test_schedule.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from probe.cli import cli, config


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_config_sets_defaults_and_resolves_paths(tmp_path: Path):
    path = write(
        tmp_path / "config.toml",
        '[run]\ncontrol = ["http://127.0.0.1:9"]\nout = "res"\ngeoip_db = "db.mmdb"\n'
        'timeout = 3\ncountry = "IR"\n\n[control]\nport = 9999\nallow_net = ["10.0.0.0/8"]\n',
    )
    default_map = config.load(path, explicit=True)
    run = default_map["run"]
    assert run["controls"] == ("http://127.0.0.1:9",)
    assert run["out_dir"] == str(tmp_path / "res")
    assert run["geoip_dbs"] == (str(tmp_path / "db.mmdb"),)
    assert run["timeout"] == 3 and run["country"] == "IR"
    assert default_map["control"]["serve"] == {"port": 9999, "allow_nets": ("10.0.0.0/8",)}


def test_config_paths_expand_home_and_variables(tmp_path: Path, monkeypatch):
    """`out = "~/x"` is the home directory's x, not `<config dir>/~/x`; `$VARS` too."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PROBE_TEST_DATA", str(tmp_path / "data"))
    path = write(
        tmp_path / "config.toml",
        '[run]\nout = "~/probe-results"\nca_file = ["$PROBE_TEST_DATA/a.pem", "${HOME}/b.pem"]\n'
        'geoip_db = "rel/asn.mmdb"\n\n[control]\nca_file = "~/c.pem"\n',
    )
    default_map = config.load(path, explicit=True)
    run = default_map["run"]
    assert run["out_dir"] == str(tmp_path / "home" / "probe-results")
    assert run["ca_files"] == (str(tmp_path / "data" / "a.pem"), str(tmp_path / "home" / "b.pem"))
    assert run["geoip_dbs"] == (str(tmp_path / "rel" / "asn.mmdb"),)
    assert default_map["control"]["serve"]["ca_files"] == (str(tmp_path / "home" / "c.pem"),)


def test_an_unset_variable_in_a_config_path_is_an_error(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("PROBE_TEST_UNSET", raising=False)
    path = write(tmp_path / "config.toml", '[run]\ntimeout = 3\nout = "$PROBE_TEST_UNSET/x"\n')
    with pytest.raises(config.ConfigError) as raised:
        config.load(path, explicit=True)
    assert (
        str(raised.value) == f"{path}:3: out = '$PROBE_TEST_UNSET/x': $PROBE_TEST_UNSET is not set"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[run]\ntimeout = 'soon'\n", "config.toml:2: timeout has the wrong type"),
        ("[run]\n\ncolour = 1\n", "config.toml:3: unknown key 'colour' in [run]"),
        ("[walk]\nx = 1\n", "config.toml:1: unknown section [walk]"),
        ("[run]\ncontrol = [1]\n", "config.toml:2: control must be a list of strings"),
        ("[run\n", "config.toml:1: invalid TOML"),
    ],
)
def test_bad_config_is_one_line_with_file_and_line(tmp_path: Path, text: str, message: str):
    path = write(tmp_path / "config.toml", text)
    with pytest.raises(config.ConfigError) as raised:
        config.load(path, explicit=True)
    assert str(raised.value).startswith(str(tmp_path / message.split(":", 1)[0]))
    assert message.split(":", 1)[1] in str(raised.value)


def test_missing_config_is_fine_unless_asked_for(tmp_path: Path):
    assert config.load(tmp_path / "none.toml") == {}
    with pytest.raises(config.ConfigError, match="not found"):
        config.load(tmp_path / "none.toml", explicit=True)


def test_cli_reports_a_bad_config_with_exit_2(tmp_path: Path):
    path = write(tmp_path / "c.toml", "[run]\nnonsense = 1\n")
    result = CliRunner().invoke(cli, ["--config", str(path), "run", "--help"])
    assert result.exit_code == 2
    assert "c.toml:2: unknown key 'nonsense'" in result.output


def test_cli_takes_defaults_from_the_config(tmp_path: Path):
    path = write(tmp_path / "c.toml", "[run]\ntimeout = 700\n")
    result = CliRunner().invoke(cli, ["--config", str(path), "run", "--no-control"])
    # The config's timeout reached the option check, which refuses it where it was written.
    assert result.exit_code == 2
    assert f"{path}:2: timeout = 700.0: must be" in result.output


def test_config_with_a_byte_order_mark_loads(tmp_path: Path):
    path = tmp_path / "config.toml"
    path.write_bytes(b"\xef\xbb\xbf[run]\ntimeout = 4\n")
    assert config.load(path, explicit=True)["run"]["timeout"] == 4
