# syntax=docker/dockerfile:1
# rva: one image for the daemon (`rva run`, the default) and the memory-pressure agent (`rva agent`).
#
#   docker build -t rva:dev .
#   docker run --rm rva:dev --help
#
# Dependencies are the ones the tests run with: requirements.lock is generated from the test venv
# (`python -m autoscaler.testing.lockfile`) and installed with --no-deps, so nothing else is resolved.
ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm

# ---- build: a venv with the locked dependencies and rva ------------------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/rva
WORKDIR /src
COPY requirements.lock ./
RUN /opt/rva/bin/pip install --no-deps --only-binary=:all: -r requirements.lock
COPY pyproject.toml README.md ./
COPY autoscaler ./autoscaler
RUN /opt/rva/bin/pip install --no-deps . \
    && /opt/rva/bin/pip check \
    && /opt/rva/bin/rva --help >/dev/null

# ---- runtime: the venv only, non-root ------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="rva" \
      org.opencontainers.image.description="Vertical-first autoscaler for Ray on Kubernetes" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/rva /opt/rva
ENV PATH=/opt/rva/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    RAY_USAGE_STATS_ENABLED=0
# 65532: the conventional "nonroot" uid/gid; the manifests run with a read-only root filesystem.
USER 65532:65532
WORKDIR /tmp
EXPOSE 8080 9464
ENTRYPOINT ["rva"]
CMD ["run"]
