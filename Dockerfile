# syntax=docker/dockerfile:1
# One image for every RDMT process: the streaming services (`rdmt service ingest|monitor|evaluator|sink|notifier`),
# the topic set-up job (`rdmt topics create`) and the batch CLI (`rdmt run`, `rdmt sql`, ...).
# Build from the repository root:  docker build -t rdmt:latest .   (docs/deployment.md)
ARG PYTHON_IMAGE=python:3.11-slim

# ---- build: install rdmt_core (with the `server` extra: clickhouse-connect, and `dashboard`: rdmt serve) and the services into a virtualenv ----
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# libs/rdmt_core/src/rdmt_core/schemas is a symlink to ../../../../schemas: keep the repository layout so the
# Avro schemas end up inside the installed package.
COPY schemas/ schemas/
COPY libs/rdmt_core/ libs/rdmt_core/
COPY services/ services/
RUN python -m venv /opt/rdmt \
 && /opt/rdmt/bin/pip install --upgrade pip \
 && /opt/rdmt/bin/pip install "./libs/rdmt_core[server,dashboard]" ./services \
 && /opt/rdmt/bin/python -c "import rdmt_core.avro as a; a.schema_dir()" \
 && /opt/rdmt/bin/rdmt --version \
 && /opt/rdmt/bin/rdmt service --help

# ---- runtime ----
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="rdmt" \
      org.opencontainers.image.description="RDMT: data-quality monitoring of the Roman WFI detectors (all services)" \
      org.opencontainers.image.licenses="BSD-3-Clause"
ARG RDMT_UID=10001
ARG RDMT_GID=10001
RUN groupadd --system --gid "${RDMT_GID}" rdmt \
 && useradd --system --uid "${RDMT_UID}" --gid rdmt --home-dir /var/lib/rdmt --create-home --shell /usr/sbin/nologin rdmt \
 && mkdir -p /data /etc/rdmt /var/lib/rdmt/state \
 && chown rdmt:rdmt /data /var/lib/rdmt /var/lib/rdmt/state
COPY --from=build /opt/rdmt /opt/rdmt
ENV PATH=/opt/rdmt/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MPLBACKEND=Agg \
    MPLCONFIGDIR=/var/lib/rdmt/.matplotlib \
    RDMT_METRICS_PORT=9100
# /data: the shared volume with the Level-2 and reference files (and the sink's ECSV files and reports);
# /var/lib/rdmt: the working directory; /var/lib/rdmt/state: the evaluator's partition-local state (both owned by
# rdmt so that a volume mounted there is writable).
WORKDIR /var/lib/rdmt
USER rdmt:rdmt
EXPOSE 9100
# Every service serves /healthz on --metrics-port (9100 in the compose file and the Helm chart; RDMT_METRICS_PORT
# tells this check another port). One-shot commands (`rdmt topics create`) exit before the first check.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('RDMT_METRICS_PORT', '9100') + '/healthz', timeout=4)"]
ENTRYPOINT ["rdmt"]
CMD ["--help"]
