# MiniTwit's container image: the web UI (5000) and the simulator API (5001),
# plus the `minitwit` command (migrate, import-sqlite, logs setup|search).
#
#   docker build --build-arg MINITWIT_REVISION="$(git rev-parse HEAD)" -t minitwit .
#
# Two stages on one base: "build" installs the dependencies and the app into a
# virtualenv (pip, setuptools and their caches stay there); the final stage
# copies only the virtualenv and the sources, and runs as an unprivileged user.
# The revision is baked in as a label and as MINITWIT_REVISION, which the app
# reports in minitwit_build_info{version, revision}. tests/test_container.py
# lints this file with hadolint and checks these properties.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
WORKDIR /app

# The dependencies first, from pyproject.toml alone: this layer is rebuilt only
# when they change, not on every change to the app.
COPY pyproject.toml ./
RUN python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
        > /tmp/requirements.txt \
    && /opt/venv/bin/pip install --no-cache-dir -r /tmp/requirements.txt

# The app, installed in place: /app/app is the package and /app/kibana holds
# the saved objects `minitwit logs setup` imports (it looks beside the package).
COPY README.md ./
COPY app/ app/
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps --editable . \
    && /opt/venv/bin/pip uninstall --yes pip setuptools \
    && python -m compileall -q app

FROM ${PYTHON_IMAGE}
ARG MINITWIT_VERSION=1.0.0
ARG MINITWIT_REVISION=unknown
LABEL org.opencontainers.image.title="MiniTwit" \
      org.opencontainers.image.description="MiniTwit web UI and simulator API" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${MINITWIT_VERSION}" \
      org.opencontainers.image.revision="${MINITWIT_REVISION}"

# No package tools at run time: the virtualenv brought everything it needs.
RUN python -m pip uninstall --yes pip setuptools wheel \
    && groupadd --system --gid 10001 minitwit \
    && useradd --system --no-log-init --uid 10001 --gid minitwit \
        --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin minitwit

COPY --from=build /opt/venv /opt/venv
COPY --from=build /app/app /app/app
COPY kibana/ /app/kibana/
COPY docker/healthcheck.py /usr/local/bin/minitwit-healthcheck
WORKDIR /app

ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MINITWIT_ENV=production \
    MINITWIT_HOST=0.0.0.0 \
    MINITWIT_WEB_PORT=5000 \
    MINITWIT_API_PORT=5001 \
    MINITWIT_REVISION="${MINITWIT_REVISION}"

USER 10001:10001
EXPOSE 5000 5001

# Healthy while both ports answer /health with 200 (503: the database is unreachable).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/usr/local/bin/minitwit-healthcheck"]

# SIGTERM (docker stop) lets in-flight requests finish, then exits 0.
ENTRYPOINT ["minitwit"]
CMD ["serve"]
