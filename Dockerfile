# flagsync daemon image: slim, non-root, configured by environment and secrets; no tests, no mocks.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY flagsync ./flagsync
# Only flagsync/ is copied, so the wheel holds no mock server and no tests.
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[postgres]"

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /app --create-home flagsync
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER flagsync
WORKDIR /app
ENV PYTHONUNBUFFERED=1 \
    FLAGSYNC_LOG__FORMAT=json \
    FLAGSYNC_DAEMON__HTTP_HOST=0.0.0.0 \
    FLAGSYNC_DAEMON__HTTP_PORT=9108
EXPOSE 9108
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9108/healthz', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["flagsync"]
CMD ["daemon"]
