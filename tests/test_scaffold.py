"""``handoff new NAME``: the project it writes installs, and its own tests pass at once.

The project is scaffolded into a temporary folder with the real command, installed
offline (``pip install --no-deps --no-index`` into a temporary prefix; handoff itself
is this checkout, installed in the test environment), and its own ``pytest`` is run in
a subprocess with no key and the coverage gate at 100 %. Its Kubernetes manifests
pass kubernetes-validate, its CI script names only commands that exist, and
``diagram --check`` names a command that exists in the project.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from .ops_support import REPO

K8S_VERSION = "1.30.0"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "HANDOFF_",
                                                                     "LIVEKIT_", "PYTHONPATH"))}
    env.update(extra)
    return env


def _handoff(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "handoff.cli", *args], cwd=cwd, text=True,
                          capture_output=True, timeout=600,
                          env=_env(**{"PYTHONPATH": str(REPO), **env}))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    parent = tmp_path_factory.mktemp("new")
    made = _handoff("new", "support-line", cwd=parent)
    assert made.returncode == 0, made.stderr
    assert "next: cd" in made.stdout
    return parent / "support-line"


def test_the_new_project_installs_offline_and_its_tests_pass_with_no_key(
    project: Path, tmp_path: Path
) -> None:
    prefix = tmp_path / "prefix"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
         "--no-build-isolation", "--prefix", str(prefix), str(project)],
        capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr
    [site] = list(prefix.glob("lib/python*/site-packages"))
    assert (site / "support_line" / "flow.py").is_file()  # the package itself was installed
    tests = tmp_path / "tests"  # run the project's tests against the installed package
    shutil.copytree(project / "tests", tests)
    shutil.copy(project / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copy(project / "handoff.toml", tmp_path / "handoff.toml")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "--handoff-coverage-min=100"],
        cwd=tmp_path, capture_output=True, text=True, timeout=900,
        env=_env(PYTHONPATH=os.pathsep.join([str(site), str(REPO)])))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert " passed" in run.stdout and "failed" not in run.stdout
    assert "100" in run.stdout  # the transition-coverage report of the gate


def test_the_new_flow_checks_clean_and_chats_offline(project: Path) -> None:
    env = {"PYTHONPATH": os.pathsep.join([str(project), str(REPO)])}
    check = _handoff("check", "support_line.flow:flow", "--strict", cwd=project, **env)
    assert check.returncode == 0, check.stdout + check.stderr
    chat = subprocess.run(
        [sys.executable, "-m", "handoff.cli", "chat", "support_line.flow:flow", "--script",
         "support_line.scripts:replies"], cwd=project, input="I'm Ann\n", text=True,
        capture_output=True, timeout=300, env=_env(**env))
    assert chat.returncode == 0, chat.stderr
    assert "Greeter → Helper by caller_identified" in chat.stdout


def test_diagram_check_names_the_projects_own_command(project: Path) -> None:
    if shutil.which("dot") is None:
        pytest.skip("Graphviz is not installed")
    env = {"PYTHONPATH": os.pathsep.join([str(project), str(REPO)])}
    args = ["diagram", "support_line.flow:flow", "-f", "svg", "-o", "diagrams/support_line.svg"]
    stale = _handoff(*args, "--check", cwd=project, **env)
    assert stale.returncode == 1
    hint = stale.stderr.strip().splitlines()[-1]
    assert hint == ("diagrams are stale: run `handoff diagram support_line.flow:flow -f svg "
                    "-o diagrams/support_line.svg`")
    assert "make" not in stale.stderr  # the project has no Makefile
    assert _handoff(*args, cwd=project, **env).returncode == 0  # the hinted command
    assert _handoff(*args, "--check", cwd=project, **env).returncode == 0
    ci = (project / "ci.sh").read_text()
    assert " ".join(args) + " --check" in ci  # CI checks what the hint regenerates


def test_the_manifests_are_valid_and_match_the_worker(project: Path) -> None:
    from handoff.worker import WorkerSettings

    docs = {}
    for path in sorted((project / "deploy" / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc.get("kind") != "Kustomization":
                kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
            docs[doc["kind"]] = doc
    kustomization = docs["Kustomization"]
    for resource in kustomization["resources"]:
        assert (project / "deploy" / "k8s" / resource).is_file()
    settings = WorkerSettings.from_env("x:y", docs["ConfigMap"]["data"])
    [worker] = docs["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert worker["args"] == ["support_line.flow:flow", "start"]
    assert worker["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert worker["livenessProbe"]["httpGet"]["path"] == "/live"
    ports = {p["name"]: p["containerPort"] for p in worker["ports"]}
    assert ports == {"health": settings.health_port, "metrics": settings.metrics_port}
    dockerfile = (project / "Dockerfile").read_text()
    assert "COPY support_line ./support_line" in dockerfile and "pip install ." in dockerfile
    assert 'CMD ["support_line.flow:flow", "start"]' in dockerfile


def test_a_name_that_is_not_a_package_or_an_existing_folder_is_one_line(tmp_path: Path) -> None:
    bad = _handoff("new", "1st-line", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.startswith("error: '1st-line' cannot name")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    taken = _handoff("new", "taken", cwd=tmp_path)
    assert taken.returncode == 2 and "exists and is not empty" in taken.stderr
