# The Python services of docker-compose.yml (API, command consumer, analytics consumer,
# migrations, topic set-up): one image, `billing <command>`.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    PATH="/app/.venv/bin:$PATH" \
    BILLING_DATA_DIR=/data

RUN pip install --no-cache-dir uv==0.13.8 \
    && useradd --create-home --uid 10001 billing \
    && mkdir -p /data \
    && chown billing /data

WORKDIR /app

# The locked dependencies first: this layer is reused until pyproject.toml or uv.lock change.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project

# The project's packages (pyproject.toml [tool.hatch.build.targets.wheel] packages) and the
# Alembic configuration; tests/test_docker_compose.py keeps this list complete.
COPY alembic.ini ./
COPY api ./api
COPY analytics ./analytics
COPY billing ./billing
COPY cli ./cli
COPY consumers ./consumers
COPY contracts ./contracts
COPY producers ./producers
COPY stack ./stack
RUN uv sync --frozen --no-dev

USER billing
EXPOSE 8000
ENTRYPOINT ["billing"]
CMD ["api"]
