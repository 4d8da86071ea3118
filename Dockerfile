# One image for the API and the CPU workers (EXTRA=worker: tensorflow-cpu), or, built with
# --build-arg EXTRA=gpu on the CUDA base (see docker-compose.yml), the GPU worker image.
ARG BASE_IMAGE=python:3.11.10-slim-bookworm

FROM ${BASE_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# The CUDA base has no Python: install Debian's/Ubuntu's where `python3` is missing.
RUN command -v python3 >/dev/null || (apt-get update && apt-get install -y --no-install-recommends \
        python3 python3-venv python3-pip && rm -rf /var/lib/apt/lists/*)
RUN useradd --create-home --uid 10001 bumpfit && install -d -o bumpfit -g bumpfit /data

FROM base AS build
ARG EXTRA=worker
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# Dependencies first, from pyproject.toml alone: a source change does not reinstall TensorFlow.
COPY pyproject.toml /srv/bumpfit/
RUN python -c "import tomllib; p = tomllib.load(open('/srv/bumpfit/pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies'] + p['optional-dependencies']['${EXTRA}']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt
COPY README.md /srv/bumpfit/
COPY alembic /srv/bumpfit/alembic
COPY app /srv/bumpfit/app
COPY workers /srv/bumpfit/workers
# A normal (non-editable) install: the migrations travel inside the package.
RUN pip install --no-deps "/srv/bumpfit[${EXTRA}]"

FROM base AS runtime
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
USER bumpfit
# SQLite (when no BUMPFIT_DATABASE_URL is given) and compilation caches live in /data.
WORKDIR /data
VOLUME /data
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4)"]
ENTRYPOINT ["bumpfit"]
# Binding 0.0.0.0 needs BUMPFIT_API_KEYS (`bumpfit keys new`); docker-compose.yml passes them.
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
