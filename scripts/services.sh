#!/usr/bin/env bash
# Starts the servers the tests need, where they are not already listening, and installs the
# Prometheus tools they run. Idempotent: a server whose port answers, or a tool already on the
# PATH, is left alone. Used by `make test` and CI.
set -euo pipefail

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local port=$1 name=$2
  for _ in $(seq 1 60); do
    listening "$port" && return 0
    sleep 0.5
  done
  echo "services: $name did not start on port $port" >&2
  return 1
}

start_postgres() {
  listening 5432 && return 0
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    local version
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
  else
    echo "services: PostgreSQL is not running on 5432 and pg_ctlcluster is missing" >&2
    return 1
  fi
  wait_port 5432 PostgreSQL
}

# Redis for the shared rate limiter's tests: keeps nothing on disk (tests that restart a
# server start one of their own, on a port of their own).
start_redis() {
  listening 6379 && return 0
  if command -v redis-server >/dev/null 2>&1; then
    redis-server --port 6379 --bind 127.0.0.1 --daemonize yes --save '' --appendonly no
  else
    echo "services: Redis is not running on 6379 and redis-server is missing" >&2
    return 1
  fi
  wait_port 6379 Redis
}

# RabbitMQ for the RabbitMQ queue's tests (tests that restart a broker start a node of their
# own, on ports of their own). The Debian service where there is one, else a detached node.
start_rabbitmq() {
  listening 5672 && return 0
  if command -v service >/dev/null 2>&1 && [ -x /etc/init.d/rabbitmq-server ]; then
    service rabbitmq-server start
  elif command -v rabbitmq-server >/dev/null 2>&1; then
    rabbitmq-server -detached
  else
    echo "services: RabbitMQ is not running on 5672 and rabbitmq-server is missing" >&2
    return 1
  fi
  wait_port 5672 RabbitMQ
}

# promtool (Debian's `prometheus` package) checks and unit-tests deploy/prometheus/rules.yaml
# (tests/deploy). The package brings a Prometheus server too and, where it can, starts it as a
# service on :9090; no test wants it (a test that needs a server starts one on a port of its
# own), so a service the install started is stopped and kept from starting at boot.
install_promtool() {
  command -v promtool >/dev/null 2>&1 && return 0
  if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" -ne 0 ]; then
    echo "services: promtool is missing: install Debian's prometheus package (as root)" >&2
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
  command -v promtool >/dev/null 2>&1
}

start_postgres
start_redis
start_rabbitmq
install_promtool
