"""Settings in one place: flags over environment over the project's table over defaults,
and a bad value is one line naming where it came from (exit 2 from the CLI)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from handoff.errors import ConfigError
from handoff.events import event_store_from_env
from handoff.persistence import SQLiteStore, store_from_env
from handoff.settings import InspectorSettings, StoreSettings, WorkerSettings
from handoff.tiers import Tiers, TierSettings
from handoff.voice import VoiceSettings

from .ops_support import REPO

TOKEN = "a-token-of-some-length-42"


def project(tmp_path: Path, table: str, *, handoff_toml: bool = False) -> Path:
    if handoff_toml:
        (tmp_path / "handoff.toml").write_text(table)
    else:
        (tmp_path / "pyproject.toml").write_text('[project]\nname = "app"\n' + table)
    return tmp_path


def handoff_cli(folder: Path, command: list[str], variables: dict[str, str],
                ) -> subprocess.CompletedProcess[str]:
    """``handoff COMMAND`` run in ``folder`` with ``variables`` and none of the caller's
    own settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HANDOFF_", "LIVEKIT_", "OTEL_", "VAULT_"))}
    env.update({**variables, "PYTHONPATH": str(REPO), "XDG_STATE_HOME": str(folder)})
    return subprocess.run([sys.executable, "-m", "handoff.cli", *command], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_flags_win_over_the_environment_which_wins_over_the_table(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "other").mkdir()
    start = project(tmp_path / "app", "[tool.handoff.worker]\nmax_jobs = 3\ndrain_timeout = 30\n"
                                      "health_port = 9000\n")
    s = WorkerSettings.load({"HANDOFF_DRAIN_TIMEOUT": "60", "HANDOFF_HEALTH_PORT": "9001"},
                            start=start, flow="m:f", health_port=9002, max_jobs=None)
    assert (s.max_jobs, s.drain_timeout, s.health_port) == (3, 60, 9002)
    assert WorkerSettings.load({}, start=tmp_path / "other", flow="m:f").max_jobs == 8


def test_handoff_toml_holds_the_same_tables(tmp_path: Path) -> None:
    start = project(tmp_path, "[inspector]\nport = 9999\nstale_after = 2.5\n", handoff_toml=True)
    s = InspectorSettings.load({}, start=start)
    assert (s.host, s.port, s.stale_after, s.token) == ("127.0.0.1", 9999, 2.5, None)


def test_the_documented_variable_names_are_read() -> None:
    s = WorkerSettings.from_env("m:f", {
        "HANDOFF_MAX_JOBS": "2", "HANDOFF_LOAD_THRESHOLD": "0.5", "HANDOFF_DRAIN_TIMEOUT": "5",
        "HANDOFF_HEALTH_PORT": "1", "HANDOFF_METRICS_PORT": "2", "HANDOFF_IDLE_PROCESSES": "0",
        "LIVEKIT_AGENT_NAME": "desk", "HANDOFF_CHECKPOINT_DIR": "/cp",
        "HANDOFF_REGISTER_RETRIES": "1"})
    assert s.model_dump() == {
        "flow": "m:f", "max_jobs": 2, "load_threshold": 0.5, "drain_timeout": 5, "health_port": 1,
        "metrics_port": 2, "idle_processes": 0, "agent_name": "desk", "checkpoint_dir": "/cp",
        "register_retries": 1}
    stores = StoreSettings.load({"HANDOFF_CHECKPOINT_STORE": "redis://r/0", "HANDOFF_EVENT_STORE": "off",
                                 "HANDOFF_EVENT_RETENTION_DAYS": "1.5", "HANDOFF_EVENT_MAX_CALLS": "9"})
    assert (stores.checkpoint_store, stores.event_store, stores.event_retention_days,
            stores.event_max_calls, stores.checkpoints_configured) == (
        "redis://r/0", "off", 1.5, 9, True)
    assert InspectorSettings.load({"HANDOFF_INSPECT_TOKEN": TOKEN}).token_value == TOKEN
    assert InspectorSettings.load({"HANDOFF_INSPECT_TOKEN": ""}).token is None


@pytest.mark.parametrize(("environ", "flags", "message"), [
    ({"HANDOFF_MAX_JOBS": "many"}, {},
     "HANDOFF_MAX_JOBS = 'many': Input should be a valid integer, unable to parse string as an integer"),
    ({"HANDOFF_MAX_JOBS": "0"}, {}, "HANDOFF_MAX_JOBS = '0': Input should be greater than or equal to 1"),
    ({"HANDOFF_LOAD_THRESHOLD": "2"}, {},
     "HANDOFF_LOAD_THRESHOLD = '2': Input should be less than or equal to 1"),
    ({}, {"health_port": 70000}, "--health-port = 70000: Input should be less than or equal to 65535"),
    ({"HANDOFF_HEALTH_PORT": "x", "HANDOFF_MAX_JOBS": "y"}, {},
     "HANDOFF_MAX_JOBS = 'y': Input should be a valid integer, unable to parse string as an integer "
     "(and 1 more)"),
])
def test_a_bad_value_is_one_line_naming_its_source(
        environ: dict[str, str], flags: dict[str, int], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        WorkerSettings.from_env("m:f", environ, **flags)
    assert str(caught.value) == message


def test_a_bad_value_in_the_table_names_the_file_and_the_key(tmp_path: Path) -> None:
    start = project(tmp_path, "[tool.handoff.stores]\nevent_max_calls = 0\n")
    with pytest.raises(ConfigError) as caught:
        StoreSettings.load({}, start=start)
    assert str(caught.value) == (f"[tool.handoff.stores] event_max_calls in {tmp_path}/pyproject.toml"
                                 " = 0: Input should be greater than or equal to 1")
    (tmp_path / "handoff.toml").write_text("[stores]\nevnet_store = 'off'\n")
    with pytest.raises(ConfigError, match=r"handoff.toml: unknown setting\(s\) evnet_store in the "
                                          r"stores table; known: checkpoint_store, "):
        StoreSettings.load({}, start=start)


def test_a_bad_token_never_shows_its_value(tmp_path: Path) -> None:
    start = project(tmp_path, f"[tool.handoff.inspector]\ntoken = ['{TOKEN}']\n")
    with pytest.raises(ConfigError) as caught:
        InspectorSettings.load({}, start=start)
    assert "token in" in str(caught.value) and TOKEN not in str(caught.value)


def test_the_event_store_reads_its_settings(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="HANDOFF_EVENT_RETENTION_DAYS = 'a week'"):
        event_store_from_env({"HANDOFF_CHECKPOINT_DIR": str(tmp_path),
                              "HANDOFF_EVENT_RETENTION_DAYS": "a week"})


@pytest.mark.parametrize(("command", "variable", "message"), [
    (["run", "examples.readme.hello:flow", "start"], "HANDOFF_MAX_JOBS=lots",
     "error: HANDOFF_MAX_JOBS = 'lots': Input should be a valid integer"),
    (["inspect"], "HANDOFF_INSPECT_PORT=web", "error: HANDOFF_INSPECT_PORT = 'web': Input should be"),
    (["inspect"], "HANDOFF_EVENT_MAX_CALLS=-1", "error: HANDOFF_EVENT_MAX_CALLS = '-1': Input should"),
    (["chat", "examples.callcenter:flow", "--script", "examples.callcenter.demo:AGENT_SCRIPT"],
     "HANDOFF_EVENT_STORE=postgres://db", "error: HANDOFF_EVENT_STORE = 'postgres://db': Value "
     "error, use redis://host:port/db or sqlite:///path/to/file.db (or off)"),
    (["run", "examples.readme.hello:flow", "console", "--text"], "HANDOFF_CHECKPOINT_STORE=/tmp/x",
     "error: HANDOFF_CHECKPOINT_STORE = '/tmp/x': Value error, use redis://"),
    (["run", "examples.readme.hello:flow", "start"], "HANDOFF_SECRETS_TTL=soon",
     "error: HANDOFF_SECRETS_TTL = 'soon': Input should be a valid number"),
    (["run", "examples.readme.hello:flow", "start"], "HANDOFF_SECRETS=aws,env",
     "error: HANDOFF_SECRETS = 'aws,env': Value error, unknown provider 'aws'; use env, files, "
     "vault"),
    (["run", "examples.readme.hello:flow", "console", "--text"], "OTEL_TRACES_EXPORTER=zipkin",
     "error: OTEL_TRACES_EXPORTER = 'zipkin': Value error, handoff supports otlp, console, none"),
    (["run", "examples.readme.hello:flow", "console", "--text"], "LIVEKIT_TELEMETRY_ALLOW_PII=sure",
     "error: LIVEKIT_TELEMETRY_ALLOW_PII = 'sure': Input should be a valid boolean"),
    (["chat", "examples.readme.hello:flow", "--inspect"], "HANDOFF_EVENT_RETENTION_DAYS=0",
     "error: --inspect 127.0.0.1:8765: HANDOFF_EVENT_RETENTION_DAYS = '0': Input should be greater"),
])
def test_the_cli_says_a_bad_setting_in_one_line_and_exits_2(
        tmp_path: Path, command: list[str], variable: str, message: str) -> None:
    name, value = variable.split("=", 1)
    done = handoff_cli(tmp_path, command, {name: value})
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(message), done.stderr


def test_the_voice_is_read_the_same_way(tmp_path: Path) -> None:
    start = project(tmp_path, '[tool.handoff.voice]\ntts_voice = "coral"\nlanguage = "de"\n'
                              "endpointing_min_delay = 0.4\n")
    cfg = VoiceSettings.load({"HANDOFF_TTS_VOICE": "verse", "HANDOFF_LANGUAGE": ""}, start=start)
    assert (cfg.tts_voice, cfg.language, cfg.endpointing_min_delay) == ("verse", "de", 0.4)
    project(tmp_path, '[tool.handoff.voice]\nendpointing_min_delay = "soon"\n')
    with pytest.raises(ConfigError) as caught:
        VoiceSettings.load({}, start=start)
    assert str(caught.value) == (
        f"[tool.handoff.voice] endpointing_min_delay in {tmp_path}/pyproject.toml = 'soon': "
        "Input should be a valid number, unable to parse string as a number")
    project(tmp_path, '[tool.handoff.voice]\ntts_options = "fast"\n')
    with pytest.raises(ConfigError, match=r"tts_options in .* = 'fast': Input should be a valid "
                                          r"dictionary"):
        VoiceSettings.load({}, start=start)


# -- tiers --------------------------------------------------------------------------------
def test_tiers_read_the_environment_over_the_table_over_the_built_in_tiers(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    start = project(tmp_path / "app", '[tool.handoff.tiers.smart]\nmodel = "gpt-4o"\n'
                                      'temperature = 0.2\nfallbacks = ["fast"]\n'
                                      '[tool.handoff.tiers.fast]\nmodel = "mini"\n')
    s = TierSettings.load({"HANDOFF_TIER_SMART_TEMPERATURE": "0.7", "HANDOFF_TIER_SMART_MODEL": "",
                           "HANDOFF_TIER_SMART_KIND": "realtime", "HANDOFF_TIER_FAST_FALLBACKS": "",
                           "HANDOFF_TIER_NEW_MODEL": "ignored: no tier 'new' is declared"},
                          start=start)
    smart = s.configs()["smart"]
    assert (smart.model, smart.temperature, smart.kind, smart.fallbacks) == (
        "gpt-4o", 0.7, "realtime", ("fast",))
    assert sorted(s.tiers) == ["fast", "smart"] and s.tiers["fast"].fallbacks == ()
    (tmp_path / "elsewhere").mkdir()
    built_in = TierSettings.load({"HANDOFF_TIER_SMART_FALLBACKS": " a , b "},
                                 start=tmp_path / "elsewhere")
    assert built_in.tiers["smart"].fallbacks == ("a", "b") and built_in.tiers["fast"].model == (
        "gpt-4o-mini")


@pytest.mark.parametrize(("table", "environ", "message"), [
    ('[tool.handoff.tiers.smart]\nmodel = "m"\n', {"HANDOFF_TIER_SMART_TEMPERATURE": "hot"},
     "HANDOFF_TIER_SMART_TEMPERATURE = 'hot': Input should be a valid number, unable to parse "
     "string as a number"),
    ('[tool.handoff.tiers.smart]\nmodel = "m"\n', {"HANDOFF_TIER_SMART_KIND": "speech"},
     "HANDOFF_TIER_SMART_KIND = 'speech': Value error, kind 'speech' is not one of "
     "['llm', 'realtime']"),
    ('[tool.handoff.tiers.smart]\nmodel = "m"\ntemperature = "hot"\n', {},
     "[tool.handoff.tiers.smart] temperature in {file} = 'hot': Input should be a valid number, "
     "unable to parse string as a number"),
    ('[tool.handoff.tiers.smart]\nprovider = "groq"\n', {},
     "[tool.handoff.tiers.smart] model in {file} = {{'provider': 'groq'}}: Field required"),
    ('[tool.handoff.tiers.smart]\nmodel = "m"\noptions = 3\n', {},
     "[tool.handoff.tiers.smart] options in {file} = 3: Value error, 'options' must be a table "
     "of constructor arguments"),
    ('[tool.handoff.tiers.smart]\nmodel = "m"\nmodle = "x"\n', {},
     "{file}: unknown key(s) modle in tier 'smart'; known: model, provider, base_url, "
     "api_key_env, temperature, fallbacks, options, kind"),
    ('[tool.handoff.tiers]\nsmart = "gpt-4o"\n', {},
     "[tool.handoff.tiers] smart in {file}: a tier is a table (model = ..., provider = ...)"),
])
def test_a_bad_tier_is_one_line_naming_the_variable_or_the_key(
        tmp_path: Path, table: str, environ: dict[str, str], message: str) -> None:
    start = project(tmp_path, table)
    with pytest.raises(ConfigError) as caught:
        Tiers.load(start, environ=environ)
    assert str(caught.value) == message.format(file=tmp_path / "pyproject.toml")


def test_a_bad_tier_in_handoff_toml_names_its_table(tmp_path: Path) -> None:
    start = project(tmp_path, '[tiers.fast]\nmodel = "m"\nfallbacks = "fast"\n', handoff_toml=True)
    assert Tiers.load(start, environ={}).configs["fast"].fallbacks == ("fast",)
    project(tmp_path, '[tiers.fast]\nmodel = "m"\nfallbacks = 3\n', handoff_toml=True)
    with pytest.raises(ConfigError, match=r"^\[tiers.fast\] fallbacks in .*handoff.toml = 3: "):
        Tiers.load(start, environ={})


@pytest.mark.parametrize(("table", "variable", "message"), [
    ('[tool.handoff.tiers.fast]\nmodel = "m"\ntemperature = "hot"\n', "",
     "[tool.handoff.tiers.fast] temperature in {dir}/pyproject.toml = 'hot': Input should be"),
    ('[tool.handoff.tiers.fast]\nmodel = "m"\n', "HANDOFF_TIER_FAST_TEMPERATURE=warm",
     "HANDOFF_TIER_FAST_TEMPERATURE = 'warm': Input should be a valid number"),
])
def test_the_cli_says_a_bad_tier_in_one_line_and_exits_2(
        tmp_path: Path, table: str, variable: str, message: str) -> None:
    project(tmp_path, table)
    done = handoff_cli(tmp_path, ["check", "examples.readme.hello:flow"],
                       dict([variable.split("=", 1)]) if variable else {})
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: "), done.stderr
    assert message.format(dir=tmp_path) in done.stderr
    assert "cannot import" not in done.stderr  # the setting's line, not the import's


def test_the_checkpoint_store_reads_its_settings(tmp_path: Path) -> None:
    store = store_from_env({"HANDOFF_CHECKPOINT_DIR": str(tmp_path / "cp")})
    assert isinstance(store, SQLiteStore) and (tmp_path / "cp").is_dir()
    assert store_from_env({}) is None
    with pytest.raises(ConfigError) as caught:
        store_from_env({"HANDOFF_CHECKPOINT_STORE": "/tmp/x.db"})
    assert str(caught.value) == ("HANDOFF_CHECKPOINT_STORE = '/tmp/x.db': Value error, use "
                                 "redis://host:port/db or sqlite:///path/to/file.db")
