"""``handoff new NAME``: a project with a path to production from its first minute.

The project is a Python package with a two-state flow, its tests (a scripted
conversation through a real AgentSession, the generated property tests and a 100 %
transition-coverage gate), ``handoff.toml`` with its tiers, a Dockerfile that installs
the package itself, Kubernetes manifests for it, and ``ci.sh`` — every command a hint
names exists in it. Its ``pytest`` passes right after creation, offline and with no key.
"""

from __future__ import annotations

import keyword
import re
from pathlib import Path

from .errors import FlowError


class ScaffoldError(FlowError):
    """The project cannot be created (bad name, folder not empty)."""


def package_name(name: str) -> str:
    """``my-support-line`` → ``my_support_line``; refuses what cannot be a package."""
    package = re.sub(r"[-.\s]+", "_", name.strip()).lower()
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", package) or keyword.iskeyword(package):
        raise ScaffoldError(f"{name!r} cannot name a Python package: use letters, digits, "
                            "'-' or '_', starting with a letter")
    return package


def create(name: str, parent: Path) -> tuple[Path, list[Path]]:
    """Write the project ``parent/name``; returns its folder and the files written."""
    package = package_name(name)
    root = parent / name
    if root.exists() and any(root.iterdir()):
        raise ScaffoldError(f"{root} exists and is not empty")
    flow_ref = f"{package}.flow:flow"
    values = {"name": name, "package": package, "flow_ref": flow_ref, "flow_name": package}
    written = []
    for relative, template in FILES.items():
        path = root / relative.format(**values)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.format(**values).lstrip("\n"))
        if path.suffix == ".sh":
            path.chmod(0o755)
        written.append(path)
    return root, written


# -- the files ------------------------------------------------------------------------------
# Templates use str.format: literal braces are doubled.
FILES: dict[str, str] = {}

FILES["pyproject.toml"] = '''
[build-system]
requires = ["setuptools>=68", "wheel"]
build-backend = "setuptools.build_meta"

[project]
name = "{name}"
version = "0.1.0"
requires-python = ">=3.11"
# handoff is published as livekit-handoff (it imports as `handoff`)
dependencies = ["livekit-handoff"]

[project.optional-dependencies]
# pytest, pytest-asyncio and hypothesis: what handoff.testing and these tests use
test = ["livekit-handoff[testing]"]

[tool.setuptools.packages.find]
include = ["{package}*"]

[tool.pytest.ini_options]
testpaths = ["tests"]
asyncio_mode = "auto"
asyncio_default_fixture_loop_scope = "function"
# the flows `pytest --handoff-coverage-min=100` gates (every transition taken by a test)
handoff_coverage_flows = ["{flow_ref}"]
'''

FILES["handoff.toml"] = '''
# The models behind the flow's tiers. HANDOFF_TIER_FAST_MODEL, _BASE_URL, _FALLBACKS
# override them; the key comes from the secrets chain (OPENAI_API_KEY by default).
[tiers.fast]
model = "gpt-4o-mini"

[tiers.smart]
model = "gpt-4o"
fallbacks = ["fast"]
'''

FILES["{package}/__init__.py"] = '''
"""{name}: a handoff flow."""
'''

FILES["{package}/flow.py"] = '''
"""The flow: a greeter that learns who is calling, then a helper."""

from livekit.agents import RunContext

from handoff import Context, Flow, State, transition


class Call(Context):
    caller_name: str | None = None


class Greeter(State[Call]):
    """Greets the caller and asks their name."""

    instructions = "Greet the caller in one short sentence and ask their name."

    @transition(to="Helper")
    async def caller_identified(self, ctx: RunContext[Call], name: str) -> None:
        """Call once the caller has told you their name."""
        ctx.userdata.caller_name = name


class Helper(State[Call]):
    """Helps the caller with their question."""

    tier = "smart"
    instructions = "Help the caller with their question, briefly and kindly."


flow = Flow("{flow_name}", context=Call, initial=Greeter, states=[Greeter, Helper],
            final=[Helper])
'''

FILES["{package}/scripts.py"] = '''
"""A scripted conversation: ``handoff chat {flow_ref} --script {package}.scripts:replies``
talks to the flow offline, with no key (the agent's side is this list)."""

from handoff.testing import call

replies = ["Hello! Who am I speaking with?", call("caller_identified", name="Ann"),
           "Thanks Ann, how can I help?"]
'''

FILES["tests/__init__.py"] = ""

FILES["tests/test_flow.py"] = '''
"""The flow's tests: a conversation through a real AgentSession, and the property tests
handoff generates from the flow's declaration. Offline: the LLM is scripted."""

from handoff.testing import FlowStateMachine, ScriptedLLM, call, load_profile
from {package}.flow import flow
from {package}.scripts import replies

load_profile()  # HYPOTHESIS_PROFILE=ci runs thousands of examples; the default is quick


async def test_the_greeter_hands_over_once_it_knows_the_callers_name() -> None:
    llm = ScriptedLLM(["Hello! Who am I speaking with?", call("caller_identified", name="Ann"),
                       "Thanks Ann, how can I help?"])
    async with flow.session(llm=llm) as run:
        assert run.state == "Greeter"
        await run.session.run(user_input="I'm Ann")
        assert run.state == "Helper" and run.context.caller_name == "Ann"


def test_the_offline_script_is_a_whole_conversation() -> None:
    assert any(not isinstance(reply, str) for reply in replies)


# hypothesis walks the flow's declaration; FlowStateMachine(flow, mode="session") does
# the same through real AgentSessions (slower: run it in CI with HYPOTHESIS_PROFILE=ci)
TestFlow = FlowStateMachine(flow).TestCase
'''

FILES["ci.sh"] = '''
#!/usr/bin/env bash
# What CI runs for {name}: install, test with the transition-coverage gate, check the
# flow, keep its diagram current. Needs Graphviz (`apt-get install graphviz`) for the
# diagram check.
set -euo pipefail
python -m pip install -q -e ".[test]"
HYPOTHESIS_PROFILE="${{HYPOTHESIS_PROFILE:-ci}}" python -m pytest -q --handoff-coverage-min=100
handoff check {flow_ref} --strict
handoff diagram {flow_ref} -f svg -o diagrams/{flow_name}.svg --check
'''

FILES["Dockerfile"] = '''
# The {name} worker: handoff and this package installed, run as a non-root user.
#   docker build -t {name}-worker .                 # livekit-handoff from the index
#   docker build --build-arg HANDOFF="livekit-handoff @ git+https://git.example.com/handoff" ...
#   docker run --env-file .env {name}-worker          # LIVEKIT_*, OPENAI_API_KEY
FROM python:3.11-slim
ARG HANDOFF=livekit-handoff
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin worker
WORKDIR /app
RUN pip install "$HANDOFF"
COPY pyproject.toml handoff.toml ./
COPY {package} ./{package}
RUN pip install . \\
 && python -c "from livekit.plugins import silero; silero.VAD.load()"
ENV HANDOFF_HEALTH_PORT=8081 HANDOFF_METRICS_PORT=9100 \\
    PROMETHEUS_MULTIPROC_DIR=/tmp/handoff-metrics
USER 10001
EXPOSE 8081 9100
ENTRYPOINT ["handoff", "run"]
CMD ["{flow_ref}", "start"]
'''

FILES[".dockerignore"] = '''
.venv
.git
__pycache__
.pytest_cache
.hypothesis
'''

FILES["deploy/k8s/kustomization.yaml"] = '''
# kubectl apply -k deploy/k8s   (set the image you pushed below)
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
labels:
  - pairs:
      app.kubernetes.io/part-of: {name}
resources:
  - configmap.yaml
  - deployment.yaml
  - hpa.yaml
images:
  - name: {name}-worker
    newName: registry.example.com/{name}-worker
    newTag: "0.1.0"
'''

FILES["deploy/k8s/configmap.yaml"] = '''
apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}-worker
data:
  HANDOFF_MAX_JOBS: "8"
  HANDOFF_DRAIN_TIMEOUT: "1800"
  HANDOFF_HEALTH_PORT: "8081"
  HANDOFF_METRICS_PORT: "9100"
  HANDOFF_SECRETS: "env,files"
  HANDOFF_SECRETS_DIR: /var/run/secrets/handoff
  PROMETHEUS_MULTIPROC_DIR: /var/run/handoff/metrics
'''

FILES["deploy/k8s/deployment.yaml"] = '''
# Secrets (LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET, OPENAI_API_KEY) come from the
# Secret {name}-secrets, mounted where handoff's files provider reads them.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}-worker
  labels:
    app.kubernetes.io/name: {name}-worker
spec:
  replicas: 2
  selector:
    matchLabels:
      app.kubernetes.io/name: {name}-worker
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 25%
      maxUnavailable: 0
  template:
    metadata:
      labels:
        app.kubernetes.io/name: {name}-worker
      annotations:
        prometheus.io/scrape: "true"
        prometheus.io/port: "9100"
        prometheus.io/path: /metrics
    spec:
      terminationGracePeriodSeconds: 1860
      securityContext:
        runAsNonRoot: true
        runAsUser: 10001
      containers:
        - name: worker
          image: {name}-worker
          args: ["{flow_ref}", "start"]
          envFrom:
            - configMapRef:
                name: {name}-worker
          ports:
            - name: health
              containerPort: 8081
            - name: metrics
              containerPort: 9100
          resources:
            requests:
              cpu: "1"
              memory: 2Gi
          startupProbe:
            httpGet:
              path: /live
              port: health
            periodSeconds: 2
            failureThreshold: 60
          livenessProbe:
            httpGet:
              path: /live
              port: health
            periodSeconds: 10
          readinessProbe:
            httpGet:
              path: /ready
              port: health
            periodSeconds: 5
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
          volumeMounts:
            - name: secrets
              mountPath: /var/run/secrets/handoff
              readOnly: true
            - name: metrics
              mountPath: /var/run/handoff/metrics
            - name: tmp
              mountPath: /tmp
      volumes:
        - name: secrets
          secret:
            secretName: {name}-secrets
        - name: metrics
          emptyDir:
            medium: Memory
        - name: tmp
          emptyDir: {{}}
'''

FILES["deploy/k8s/hpa.yaml"] = '''
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {name}-worker
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {name}-worker
  minReplicas: 2
  maxReplicas: 20
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: 60
'''

FILES["README.md"] = '''
# {name}

A multi-agent voice flow on [handoff](https://github.com/) and LiveKit Agents.

```sh
python -m venv .venv && . .venv/bin/activate && pip install -e ".[test]"
pytest                                                             # offline, no key
handoff chat {flow_ref} --script {package}.scripts:replies       # talk to it, offline
handoff run {flow_ref} console                                   # with OPENAI_API_KEY
handoff diagram {flow_ref} -f svg -o diagrams/{flow_name}.svg      # draw it
./ci.sh                                                            # what CI runs
docker build -t {name}-worker . && kubectl apply -k deploy/k8s     # production
```
'''
