#!/usr/bin/env bash
# Starts the servers the tests need, where they are not already listening. Idempotent: a
# server whose port answers is left alone. Used by `make test` and CI (the tools the tests
# run are installed by scripts/tools.sh).
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

start_postgres
start_redis
start_rabbitmq
