#!/usr/bin/env bash
# Installs the command-line tools the tests run, where they are missing. Idempotent: a tool
# already on the PATH is left alone. Used by `make test` and CI.
#
# promtool (Debian's `prometheus` package) checks and unit-tests deploy/prometheus/rules.yaml.
# The package also brings a Prometheus server and, where it can, starts it as a service on
# :9090; the tests need none (a test that wants a server starts one on a port of its own), so
# a service the install started is stopped and kept from starting at boot.
set -euo pipefail

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    echo "tools: $1 needs root: install Debian's prometheus package (promtool) by hand" >&2
    return 1
  fi
}

install_promtool() {
  command -v promtool >/dev/null 2>&1 && return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "tools: promtool is missing and apt-get is not here: install Prometheus's promtool" >&2
    return 1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    prometheus >/dev/null
  if [ -x /etc/init.d/prometheus ]; then
    as_root service prometheus stop >/dev/null 2>&1 || true  # not running: nothing to stop
    as_root update-rc.d prometheus disable >/dev/null 2>&1 || true  # no SysV links to turn off
  fi
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    as_root systemctl disable --now prometheus.service >/dev/null 2>&1 || true
  fi
  command -v promtool >/dev/null 2>&1 || { echo "tools: promtool still missing" >&2; return 1; }
}

install_promtool
