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

# A second PostgreSQL server, for the tests of a deployment in two regions (each region's
# database on a server of its own: an EU workspace's rows must be on the EU one only). A
# cluster of the project's own under HERALD_PG2_DIR, initialised once, trust authentication,
# on 127.0.0.1:5433; run as the postgres user when this script runs as root.
PG2_PORT=${HERALD_PG2_PORT:-5433}
PG2_DIR=${HERALD_PG2_DIR:-/var/tmp/herald-pg-$PG2_PORT}

as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_postgres_second() {
  listening "$PG2_PORT" && return 0
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$bin" ]; then
    echo "services: no PostgreSQL binaries for the second server (apt-get install postgresql)" >&2
    return 1
  fi
  if [ ! -f "$PG2_DIR/PG_VERSION" ]; then
    mkdir -p "$PG2_DIR"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$PG2_DIR"
    as_postgres "$bin/initdb" -D "$PG2_DIR" -U postgres -A trust -N >/dev/null
    cat >>"$PG2_DIR/postgresql.conf" <<CONF
# herald: the second region's test server
port = $PG2_PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PG2_DIR'
shared_buffers = 32MB
max_connections = 100
fsync = off
CONF
  fi
  as_postgres "$bin/pg_ctl" -D "$PG2_DIR" -l "$PG2_DIR/server.log" -w -t 60 start >/dev/null
  wait_port "$PG2_PORT" "PostgreSQL (second server)"
  as_postgres "$bin/psql" -h 127.0.0.1 -p "$PG2_PORT" -U postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = 'test'" | grep -q 1 ||
    as_postgres "$bin/createdb" -h 127.0.0.1 -p "$PG2_PORT" -U postgres test
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
start_postgres_second
start_redis
start_rabbitmq
