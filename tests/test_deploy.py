"""deploy/: every Kubernetes manifest valid against the Kubernetes schema, consistent
with the worker, and the Dockerfile's assumptions checked.

Validation uses ``kubernetes-validate`` (the Kubernetes OpenAPI schemas, strict: unknown
fields are errors). The Vault overlay is a strategic-merge patch; ``_patch`` below
merges it the way kustomize does for these fields (maps deep, containers by name)
and the result is validated. Docker cannot run here: the Dockerfile is checked by
reading it (stages, user, entrypoint, files it copies) and its entrypoint command is
run for real against the repository (``handoff run --help`` and the flow it names).
Not covered: building the image, applying the manifests to a cluster, the Vault
Agent Injector and prometheus-adapter themselves.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from handoff.flowref import load_flow
from handoff.secrets import DEFAULT_SECRETS_DIR
from handoff.worker import ACTIVE_JOBS_METRIC, WorkerSettings, required_secrets

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
BASE = DEPLOY / "k8s" / "base"
K8S_VERSION = "1.30.0"


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _base() -> dict[str, dict[str, Any]]:
    kustomization = _docs(BASE / "kustomization.yaml")[0]
    objects: dict[str, dict[str, Any]] = {}
    for name in kustomization["resources"]:
        for doc in _docs(BASE / name):
            objects[doc["kind"]] = doc
    return objects


def _patch(base: Any, patch: Any) -> Any:
    """Strategic merge for what the overlay patches: maps deep, named lists by name."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            out[key] = _patch(base[key], value) if key in base else value
        return out
    if isinstance(base, list) and isinstance(patch, list) and all(
            isinstance(i, dict) and "name" in i for i in [*base, *patch]):
        merged = {i["name"]: i for i in base}
        for item in patch:
            merged[item["name"]] = _patch(merged[item["name"]], item) \
                if item["name"] in merged else item
        return list(merged.values())
    return patch


MANIFESTS = sorted(p for p in (DEPLOY / "k8s").rglob("*.yaml")
                   if p.name not in {"kustomization.yaml", "deployment-patch.yaml",
                                     "prometheus-adapter-values.yaml"})


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_manifest_is_valid_kubernetes(path: Path) -> None:
    for doc in _docs(path):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_validator_rejects_a_broken_manifest() -> None:
    """Guard: the validation above can fail (a typo'd field, a wrong type)."""
    deployment = _base()["Deployment"]
    broken = _patch(deployment, {"spec": {"template": {"spec": {"terminationGracePeriod": 5}}}})
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)
    wrong_type = _patch(deployment, {"spec": {"replicas": "two"}})
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong_type, K8S_VERSION, strict=True)


def test_kustomizations_list_existing_files_and_the_vault_overlay_is_valid() -> None:
    for kustomization in (DEPLOY / "k8s").rglob("kustomization.yaml"):
        spec = _docs(kustomization)[0]
        for ref in spec.get("resources", []) + [p["path"] for p in spec.get("patches", [])]:
            assert (kustomization.parent / ref).exists(), f"{kustomization}: {ref}"
    patched = _patch(_base()["Deployment"], _docs(DEPLOY / "k8s/vault/deployment-patch.yaml")[0])
    kubernetes_validate.validate(patched, K8S_VERSION, strict=True)
    pod = patched["spec"]["template"]
    [worker] = pod["spec"]["containers"]
    assert {"name": "HANDOFF_SECRETS_DIR", "value": "/vault/secrets"} in worker["env"]
    assert worker["envFrom"]  # the base's settings survive the patch


def test_vault_templates_render_every_secret_the_worker_requires() -> None:
    """The injector writes one file per secret the worker asks for, from the KV v2 entry
    the VaultProvider reads by default (mount ``secret``, path ``handoff``)."""
    annotations = _docs(DEPLOY / "k8s/vault/deployment-patch.yaml")[0]["spec"]["template"][
        "metadata"]["annotations"]
    prefix = "vault.hashicorp.com/agent-inject-template-"
    rendered = {k.removeprefix(prefix): v for k, v in annotations.items() if k.startswith(prefix)}
    needed = required_secrets(load_flow("examples.callcenter:flow"))
    assert sorted(rendered) == sorted(needed)
    for name, template in rendered.items():
        assert template == ('{{- with secret "secret/data/handoff" -}}'
                            f"{{{{ .Data.data.{name} }}}}{{{{- end -}}}}")
        assert annotations[f"vault.hashicorp.com/agent-inject-secret-{name}"] == \
            "secret/data/handoff"


def test_deployment_matches_the_worker() -> None:
    objects = _base()
    deployment, config, hpa = objects["Deployment"], objects["ConfigMap"], objects[
        "HorizontalPodAutoscaler"]
    settings = WorkerSettings.from_env("x:y", config["data"])
    pod = deployment["spec"]["template"]["spec"]
    [worker] = pod["containers"]
    ports = {p["name"]: p["containerPort"] for p in worker["ports"]}
    assert ports == {"health": settings.health_port, "metrics": settings.metrics_port}
    # liveness apart from readiness (handoff.health; tests/test_worker.py checks both)
    for probe in ("startupProbe", "livenessProbe"):
        assert worker[probe]["httpGet"] == {"path": "/live", "port": "health"}
    assert worker["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "health"}
    assert settings.register_retries >= 1
    # the multiprocess metrics directory is a mounted, writable volume
    assert mounts_of(worker)["metrics"] == config["data"]["PROMETHEUS_MULTIPROC_DIR"]
    # the drain fits in the grace period, with time left to checkpoint and exit
    assert pod["terminationGracePeriodSeconds"] >= settings.drain_timeout + 30
    assert worker["resources"]["requests"]["cpu"] and worker["resources"]["requests"]["memory"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert worker["args"][0] == "examples.callcenter:flow" and worker["args"][1] == "start"
    # the mounted Secret is where the files provider looks by default
    mounts = {m["name"]: m["mountPath"] for m in worker["volumeMounts"]}
    assert mounts["secrets"] == config["data"]["HANDOFF_SECRETS_DIR"] == DEFAULT_SECRETS_DIR
    assert mounts["checkpoints"] == settings.checkpoint_dir
    assert deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == \
        str(settings.metrics_port)
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]


def test_hpa_scales_on_cpu_and_the_metric_the_worker_exports() -> None:
    hpa = _base()["HorizontalPodAutoscaler"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    by_type = {m["type"]: m for m in hpa["spec"]["metrics"]}
    assert by_type["Resource"]["resource"]["name"] == "cpu"
    metric = by_type["Pods"]["pods"]["metric"]["name"]
    assert metric == ACTIVE_JOBS_METRIC  # the gauge handoff.worker publishes
    max_jobs = WorkerSettings.from_env("x:y", _base()["ConfigMap"]["data"]).max_jobs
    assert 0 < float(by_type["Pods"]["pods"]["target"]["averageValue"]) < max_jobs
    adapter = _docs(DEPLOY / "k8s/prometheus-adapter-values.yaml")[0]
    [rule] = adapter["rules"]["custom"]
    assert rule["seriesQuery"].startswith(metric + "{") and rule["name"]["as"] == metric


def mounts_of(container: dict[str, Any]) -> dict[str, str]:
    return {m["name"]: m["mountPath"] for m in container["volumeMounts"]}


# -- Dockerfile --------------------------------------------------------------------------
def _dockerfile() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instr, _, rest = line.partition(" ")
            out.append((instr.upper(), rest.strip()))
    return out


def _final_stage() -> list[tuple[str, str]]:
    lines = _dockerfile()
    last_from = max(i for i, (instr, _) in enumerate(lines) if instr == "FROM")
    return lines[last_from:]


def test_dockerfile_runtime_is_slim_and_not_root() -> None:
    final = _final_stage()
    assert re.match(r"python:3\.11-slim\b", final[0][1])
    [user] = [rest for instr, rest in final if instr == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0  # numeric, so runAsNonRoot can verify it
    pod = _base()["Deployment"]["spec"]["template"]["spec"]
    assert int(uid) == pod["securityContext"]["runAsUser"]
    exposed = {int(p) for instr, rest in final if instr == "EXPOSE" for p in rest.split()}
    assert exposed == {8081, 9100}


def test_dockerfile_loads_the_silero_model_at_build_time() -> None:
    runs = [rest for instr, rest in _dockerfile() if instr == "RUN"]
    assert any("silero.VAD.load()" in r for r in runs)
    assert any(re.search(r"pip install \"?\.\[vault\]", r) for r in runs)


def test_dockerfile_copies_only_files_that_exist() -> None:
    for instr, rest in _dockerfile():
        if instr == "COPY" and not rest.startswith("--from"):
            *sources, _dest = shlex.split(rest)
            for src in sources:
                assert (REPO / src).exists(), f"COPY {src}: not in the repository"
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored


def test_dockerfile_entrypoint_is_handoff_run_start_and_that_command_works() -> None:
    final = dict(_final_stage())
    command = [*yaml.safe_load(final["ENTRYPOINT"]), *yaml.safe_load(final["CMD"])]
    assert command[:2] == ["handoff", "run"] and command[-1] == "start"
    flow_ref = command[2]
    assert load_flow(flow_ref).name  # the flow the image runs by default loads
    # the same command, run here: the console script resolves and takes these arguments
    help_text = subprocess.run([sys.executable, "-m", "handoff.cli", "run", "--help"],
                               capture_output=True, text=True, timeout=60, cwd=REPO)
    assert help_text.returncode == 0 and "console | dev | start" in help_text.stdout
    scripts = _docs_toml_scripts()
    assert scripts["handoff"] == "handoff.cli:app"


def _docs_toml_scripts() -> dict[str, str]:
    import tomllib

    return dict(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"])


def test_every_test_docs_deploy_md_cites_exists() -> None:
    """docs/deploy.md backs its claims with test names; each must be a real test."""
    doc = (REPO / "docs" / "deploy.md").read_text()
    modules = {p.stem for p in (REPO / "tests").glob("test_*.py")}
    cited = set(re.findall(r"\btest_[a-z0-9_]+", doc)) - modules
    defined = set()
    for path in (REPO / "tests").glob("test_*.py"):
        defined |= set(re.findall(r"^(?:async )?def (test_[a-z0-9_]+)", path.read_text(), re.M))
    assert len(cited) > 20
    missing = {c for c in cited
               if c not in defined and not (c.endswith("_") and any(d.startswith(c)
                                                                     for d in defined))}
    assert not missing, f"docs/deploy.md cites tests that do not exist: {sorted(missing)}"
