# flagsync daemon image: slim, non-root, configured by environment and secrets; no tests, no mocks.
#
# Dependencies come from the hash-locked requirements/runtime.txt (scripts/lock refreshes it), the
# flagsync wheel is built with the locked setuptools of requirements/build.txt, and nothing is
# installed by name alone. BASE_IMAGE is an argument so that a test can build on a local stand-in
# (scripts/image-test); it must provide python3 with venv, and useradd.
ARG BASE_IMAGE=docker.io/library/python:3.11-slim-bookworm@sha256:b18992999dbe963a45a8a4da40ac2b1975be1a776d939d098c647482bcad5cba

FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY requirements/runtime.txt requirements/build.txt ./requirements/
RUN python3 -m venv /opt/flagsync \
 && /opt/flagsync/bin/pip install --require-hashes --only-binary :all: -r requirements/runtime.txt \
 && python3 -m venv /opt/build \
 && /opt/build/bin/pip install --require-hashes -r requirements/build.txt
COPY pyproject.toml README.md ./
COPY flagsync ./flagsync
# Only flagsync/ is copied, so the wheel holds no mock server and no tests; the mock's console script goes too.
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /wheels . \
 && /opt/flagsync/bin/pip install --no-deps /wheels/*.whl \
 && rm -f /opt/flagsync/bin/flagsync-mock \
 && /opt/flagsync/bin/python -m pip uninstall --yes pip

FROM ${BASE_IMAGE}
RUN groupadd --system --gid 10001 flagsync \
 && useradd --system --uid 10001 --gid 10001 --home-dir /app --create-home --shell /usr/sbin/nologin flagsync \
 && mkdir -p /app/var && chown flagsync:flagsync /app/var
COPY --from=build /opt/flagsync /opt/flagsync
USER 10001:10001
WORKDIR /app
# http_host is set explicitly: the default is loopback, and the probe and the scraper come from outside the container.
ENV PATH=/opt/flagsync/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    FLAGSYNC_LOG__FORMAT=json \
    FLAGSYNC_DAEMON__HTTP_HOST=0.0.0.0 \
    FLAGSYNC_DAEMON__HTTP_PORT=9108
EXPOSE 9108
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["/opt/flagsync/bin/python", "-c", "import os, sys, urllib.request; port = os.environ.get('FLAGSYNC_DAEMON__HTTP_PORT', '9108'); sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["/opt/flagsync/bin/flagsync"]
CMD ["daemon"]
