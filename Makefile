# handoff — two commands for a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
VENV  ?= .venv
PY    := $(VENV)/bin/python
PIP   := $(VENV)/bin/pip
# Debian packages the tests need (graphviz's `dot` renders diagrams; redis-server backs checkpoint
# and event-log tests; chromium and its driver run the inspector's browser tests; tmux is the
# terminal the console tests type into).
APT_PACKAGES ?= graphviz espeak-ng redis-server chromium chromium-driver tmux
# seconds to wait while another apt or dpkg holds apt's lock (then: "apt is busy")
APT_WAIT ?= 300
# pip extras installed for this repository: `dev` is everything the tests, lint, types and docs
# use (users install `livekit-handoff` or `livekit-handoff[testing]`; see pyproject.toml).
EXTRAS ?= dev

.PHONY: demo test venv deps apt lint bench diagrams docs clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	@# a venv from before the rename holds an editable `handoff` distribution of this checkout
	$(PIP) uninstall -q -y handoff 2>/dev/null || true
	$(PIP) install -q -e ".[$(EXTRAS)]"
	touch $@

venv: $(VENV)/.installed

apt:
	@APT_WAIT=$(APT_WAIT) .ci/apt-install $(APT_PACKAGES)

deps: venv apt

## The main job: the call-centre flow driven through a whole caller conversation.
## `make demo MODE=voice`: the same call as audio, offline (espeak-ng speaks, pocketsphinx
## hears, Silero VAD takes turns), written to callcenter-call.wav (caller left, agents right).
## `make demo MODE=realtime`: the same call on a speech-to-speech (realtime) model, scripted.
MODE ?= text
demo: venv
ifeq ($(MODE),voice)
	$(MAKE) apt APT_PACKAGES=espeak-ng
	$(PY) -m examples.callcenter.voice_demo --wav callcenter-call.wav
else ifeq ($(MODE),realtime)
	$(PY) -m examples.callcenter.realtime_demo
else
	$(PY) -m examples.callcenter.demo
endif

## Every test (lint and types included). CI runs the thorough hypothesis profile
## (thousands of generated conversations) and gates on the call centre's transition
## coverage; `make test HYPOTHESIS_PROFILE=handoff-dev` for the quick local profile.
## The tests run on every core (pytest-xdist; `make test WORKERS=0` runs them in one
## process); the coverage gate adds up the workers' counts. The 30 slowest are listed.
HYPOTHESIS_PROFILE ?= ci
COVERAGE_MIN ?= 100
WORKERS ?= auto
test: deps
	$(PY) -m ruff check handoff examples tests benchmarks
	$(PY) -m mypy
	HYPOTHESIS_PROFILE=$(HYPOTHESIS_PROFILE) $(PY) -m pytest -q -n $(WORKERS) --durations=30 \
	  -p handoff.testing.pytest_plugin --handoff-coverage-min=$(COVERAGE_MIN)

## Render every flow in examples/ to diagrams/ (SVG + DOT source beside it).
## `make test` fails when diagrams/ is stale (tests/test_cli_diagram.py runs `--check`).
diagrams: deps
	$(PY) -m handoff.cli diagram examples -f svg -o diagrams

lint: venv
	$(PY) -m ruff check handoff examples tests benchmarks
	$(PY) -m mypy

## The documentation site (MkDocs + Material + mkdocstrings), built strictly: a broken link or
## reference fails. Written to site/; `make test` builds it too (tests/test_docs.py).
docs: venv
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

## Benchmarks: what handoff costs on top of LiveKit, as ratios measured side by side in one
## run; writes docs/benchmarks.md and benchmarks/results.json (`python -m benchmarks --quick` for a smoke run).
bench: venv
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

## The worker image (needs Docker; not run by `make test`): make image IMAGE=registry/handoff-worker:tag
IMAGE ?= handoff-worker:dev
.PHONY: image
image:
	docker build -f deploy/Dockerfile -t $(IMAGE) .
