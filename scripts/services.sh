#!/usr/bin/env bash
# Starts the servers the tests need, where they are not already listening. Idempotent: a
# server whose port answers is left alone. Used by `make test` and CI.
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

start_redis() {
  listening 6379 && return 0
  redis-server --daemonize yes --port 6379 --save '' --appendonly no
  wait_port 6379 Redis
}

start_postgres
start_redis
