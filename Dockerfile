# syntax=docker/dockerfile:1
#
# Delivery Monitor image: `monitor serve` on 0.0.0.0:8080, as UID 10001.
#
#   docker build -t delivery-monitor .
#   docker run --rm -p 8080:8080 \
#     -v "$PWD/config/monitor.yaml:/etc/monitor/monitor.yaml:ro" \
#     -v monitor-data:/data \
#     -e MONITOR_API_TOKENS -e SENDGRID_API_KEY \
#     delivery-monitor
#
# Secrets (API tokens, provider passwords, a PostgreSQL URL with a password)
# are passed at run time as environment variables; none is baked in here.
# The image also runs with a read-only root filesystem: it writes only to
# /data (SQLite) and, if the runtime mounts one, /tmp.

ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------
# build: a wheel of the project, installed with its dependencies into a venv.
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
# .dockerignore lets only the packaging files and the monitor package through.
COPY . .

# The venv has no pip of its own (a smaller image, no installer at run time);
# the build stage's pip installs into it. Dependencies come as wheels.
RUN python -m venv --without-pip /opt/venv \
 && pip wheel --no-deps --wheel-dir /wheels . \
 && pip --python /opt/venv/bin/python install /wheels/delivery_monitor-*.whl \
 && /opt/venv/bin/monitor --help > /dev/null

# ---------------------------------------------------------------------------
# runtime: the same base, the venv, a non-root user. No compilers, no pip.
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="delivery-monitor" \
      org.opencontainers.image.description="Tells teams whether their email really gets through: SMTP probes, receive-side checks, signed webhooks." \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed numeric UID/GID so Kubernetes' runAsNonRoot can verify it and
# volumes can be prepared for it (the Helm chart uses runAsUser 10001).
RUN groupadd --system --gid 10001 monitor \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
            --home-dir /nonexistent --shell /usr/sbin/nologin monitor \
 && mkdir -p /data /etc/monitor \
 && chown 10001:10001 /data \
 && printf '%s\n' \
      '# Placeholder: mount your monitor.yaml here (see config/monitor.yaml).' \
      'providers: []' > /etc/monitor/monitor.yaml

COPY --from=build /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MONITOR_LISTEN=0.0.0.0:8080 \
    MONITOR_CONFIG=/etc/monitor/monitor.yaml \
    MONITOR_DATABASE_URL=sqlite+aiosqlite:////data/monitor.db

WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080

USER 10001:10001

# slim has no curl: ask /healthz with the standard library, on the port that
# MONITOR_LISTEN names, bypassing any HTTP(S)_PROXY from the environment.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request as r; port = os.environ.get('MONITOR_LISTEN', '0.0.0.0:8080').rpartition(':')[2]; opener = r.build_opener(r.ProxyHandler({})); sys.exit(0 if opener.open(f'http://127.0.0.1:{port}/healthz', timeout=4).status == 200 else 1)"]

ENTRYPOINT ["monitor"]
CMD ["serve"]
