"""RunConfig (defaults < YAML file < flags, validated once) and the library entry point ``mirage_bench.run``."""

import json

import pytest
import yaml
from typer.testing import CliRunner

import helpers
import mirage_bench as mb
from mirage_bench import api
from mirage_bench.cli import app
from mirage_bench.errors import ConfigError
from mirage_bench.runconfig import RunConfig


def test_flags_override_the_file_which_overrides_the_defaults(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"seeds": [1, 2], "bootstrap": 10, "launcher": {"kind": "submitit-local", "time_min": 30}}))
    config = RunConfig.from_sources(path, {"seeds": "3", "launcher": {"max_jobs": 2}})
    assert config.seeds == [3] and config.bootstrap == 10 and config.protocol == "mini"
    assert (config.launcher.kind, config.launcher.time_min, config.launcher.max_jobs) == ("submitit-local", 30, 2)


def test_a_mistyped_key_in_the_file_is_refused_naming_the_allowed_keys(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("protocl: mini\n")
    with pytest.raises(ConfigError, match=r"unknown key 'protocl'.*allowed keys here: .*protocol"):
        RunConfig.from_sources(path)


def test_launcher_settings_are_checked_when_the_config_is_built():
    with pytest.raises(ConfigError, match="pass --launcher submitit"):
        RunConfig(launcher={"kind": "local", "max_jobs": 3})


@pytest.fixture
def stubbed(tmp_path, monkeypatch):
    bench = helpers.benchmark(tmp_path / "data")
    monkeypatch.setattr(api, "load_benchmark", lambda *args, **kwargs: bench)
    return bench


def test_the_cli_reads_the_config_file_and_a_typed_flag_wins(stubbed, tmp_path, monkeypatch):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"out": str(tmp_path / "from-file"), "seeds": [0, 1], "bootstrap": 7}))
    asked = []

    def plan(config, notify):
        asked.append(config)
        raise ConfigError("planned nothing: only the configuration is checked here")

    monkeypatch.setattr(api, "plan", plan)
    result = CliRunner().invoke(app, ["run", "--config", str(path), "--seeds", "5", "--device", "cpu", "--dry-run"], terminal_width=250)
    assert result.exit_code == 2 and "planned nothing" in result.output
    [config] = asked
    assert (config.out, config.seeds, config.bootstrap, config.train, config.evaluate) == (tmp_path / "from-file", [5], 7, True, True)


def test_run_returns_a_typed_record_whose_dump_is_the_file_and_tables_as_frames(stubbed, tmp_path):
    config = mb.RunConfig(out=tmp_path / "out", bootstrap=0)
    record = mb.run(config, notify=lambda line: None)
    assert isinstance(record, mb.RunRecord)
    on_disk = json.loads((tmp_path / "out" / "runs" / record.run_id / "record.json").read_text())
    assert on_disk == record.json_dict() and mb.RunRecord.model_validate(on_disk).model_dump() == record.model_dump()
    assert all(c.computed_in_this_run for c in record.eval_cells) and not record.computed_nothing()
    long = record.report.long
    assert set(long["detector"]) == {r.name for r in stubbed.recipes} and long["value"].notna().any()
    again = mb.run(config, notify=lambda line: None)
    assert again.computed_nothing() and again.run_id != record.run_id
