# syntax=docker/dockerfile:1.7
# One image for the API and the CPU workers (EXTRA=worker: tensorflow-cpu), or, built with
# --build-arg EXTRA=gpu, the GPU worker image (tensorflow[and-cuda]). docker-compose.yml builds both.
ARG PYTHON_IMAGE=python:3.11.10-slim-bookworm

FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --create-home --uid 10001 bumpfit && install -d -o bumpfit -g bumpfit /data

FROM base AS build
ARG EXTRA=worker
RUN python -m venv /opt/venv
COPY pyproject.toml README.md alembic.ini /srv/bumpfit/
COPY alembic /srv/bumpfit/alembic
COPY app /srv/bumpfit/app
COPY workers /srv/bumpfit/workers
# Editable, so app/migrate.py finds the migrations in /srv/bumpfit/alembic.
RUN /opt/venv/bin/pip install -e "/srv/bumpfit[${EXTRA}]"

FROM base AS runtime
COPY --from=build /opt/venv /opt/venv
COPY --from=build /srv/bumpfit /srv/bumpfit
ENV PATH=/opt/venv/bin:$PATH
USER bumpfit
# SQLite, when no BUMPFIT_DATABASE_URL is given, lands in /data/bumpfit.db.
WORKDIR /data
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
ENTRYPOINT ["bumpfit"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
