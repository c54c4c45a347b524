# The portal's image: one for the web, worker and scheduled jobs.
FROM python:3.12-slim-bookworm AS build
WORKDIR /app
COPY pyproject.toml README.md ./
COPY aup_portal aup_portal
COPY acknowledgements acknowledgements
RUN python -m venv /venv && /venv/bin/pip install --no-cache-dir ".[s3]"

FROM python:3.12-slim-bookworm
# WeasyPrint's libraries; libharfbuzz-subset0 makes receipt rendering several times faster.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 \
       libharfbuzz0b libharfbuzz-subset0 fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 1000 portal
COPY --from=build /venv /venv
WORKDIR /app
COPY --chown=portal:portal . .
ENV PATH=/venv/bin:$PATH PYTHONUNBUFFERED=1 DJANGO_SETTINGS_MODULE=aup_portal.settings
RUN DJANGO_SECRET_KEY=collectstatic-only python manage.py collectstatic --no-input -v 0
USER portal
EXPOSE 8000
# Full exports of a large policy stream for longer than gunicorn's default 30 s timeout.
CMD ["gunicorn", "aup_portal.wsgi", "--bind", "0.0.0.0:8000", "--workers", "4", "--timeout", "300"]
