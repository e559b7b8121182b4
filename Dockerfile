# Image for web, worker and beat (docker-compose.yml). Static files are collected at build time and
# served by whitenoise; everything else is configured through environment variables.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 SCRM_VAR_DIR=/var/lib/scrm
WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY . .
RUN SECRET_KEY=build-only python manage.py collectstatic --noinput \
    && useradd --system --home /app scrm && mkdir -p /var/lib/scrm && chown -R scrm /var/lib/scrm
USER scrm
EXPOSE 8000
CMD ["gunicorn", "scrm.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
