# syntax=docker/dockerfile:1
# Herald: one image for every role. The command names the role:
#   herald serve | api | run | dispatcher | worker --platforms ... | migrate | simulate
# docs/operations.md, "The roles" says what each needs; compose.yaml runs them all.

# The base, pinned by version and by digest (the multi-platform index of
# python:3.11.16-slim-bookworm built 2026-09-01, as docker-library/repo-info recorded it):
# a rebuild gets the same bytes until someone moves both on purpose. Python 3.11 is the version
# the test suite runs on.
ARG PYTHON_IMAGE=python:3.11.16-slim-bookworm@sha256:c425d915a89a6dcd3183b1797ad9bd8878caff5a417f6371c8df93c8ea8b727f

# --- builder: Herald's wheel and the wheels of everything it needs -------------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# What the wheel is made of, nothing else (.dockerignore keeps the rest of the tree out).
COPY pyproject.toml README.md ./
COPY src ./src
# Every dependency as a wheel too, so the runtime stage installs offline, with no compiler.
RUN pip wheel --wheel-dir /wheels .

# --- runtime -------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="herald" \
      org.opencontainers.image.description="Schedules and publishes social-media posts: never lost, never twice, within every rate limit." \
      org.opencontainers.image.licenses="Apache-2.0"

# A numeric user and group, 10001 (Kubernetes' runAsNonRoot can check a number, not a name;
# above the host's own users), no login shell, no home: HOME points into /tmp below.
RUN groupadd --system --gid 10001 herald \
 && useradd --system --uid 10001 --gid herald --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin herald \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/herald

# Installed from the builder's wheels only (--no-index: nothing fetched here). pip compiles
# the bytecode now, and the standard library's too (the base image ships it without), so a
# process on a read-only root never wants to write a .pyc and starts fast: the health check
# starts a Python process every few seconds.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    pip install --no-index --find-links=/wheels /wheels/herald-*.whl \
 && python -m compileall -q -j 0 /usr/local/lib/python3.11

# Read-only root: nothing writes outside /tmp (a tmpfs in compose.yaml and the Kubernetes
# manifests) and the data volume. HOME, the XDG directories and the temp directory point
# there; no bytecode is written; output is not buffered (logs reach the collector at once).
# The listeners bind every interface of the container (the defaults are loopback only); the
# probe port is not set here: the engine roles set HERALD_ENGINE__PROBE_PORT, and
# `herald healthcheck` asks the API port when it is unset.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    XDG_CACHE_HOME=/tmp/.cache \
    XDG_CONFIG_HOME=/tmp/.config \
    XDG_DATA_HOME=/tmp/.local/share \
    XDG_STATE_HOME=/tmp/.local/state \
    HERALD_LOG_FORMAT=json \
    HERALD_API__HOST=0.0.0.0 \
    HERALD_API__PORT=8080 \
    HERALD_ENGINE__PROBE_HOST=0.0.0.0

# The embedded SQLite database (`herald serve` on one box): herald.db is relative to the
# working directory, so it lands in the volume. PostgreSQL deployments never write here.
WORKDIR /var/lib/herald
VOLUME ["/var/lib/herald"]

USER 10001:10001

# 8080: the API (api, serve); 9090: the engine roles' probe (/healthz, /readyz, /metrics)
# when HERALD_ENGINE__PROBE_PORT=9090, as compose.yaml and deploy/kubernetes set it.
EXPOSE 8080 9090

# The role's /healthz: the probe port when one is set, else the API port. Exit 0 or 1 only.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["herald", "healthcheck"]

# SIGTERM (Docker's default stop signal) drains: in-flight requests get
# engine.shutdown_grace_s, the rest is handed back. Give the container longer than that.
STOPSIGNAL SIGTERM
ENTRYPOINT ["herald"]
CMD ["serve"]
