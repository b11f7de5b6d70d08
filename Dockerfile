# The gateway with the bundled demo (legacy Flask app + migrated features).
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY legacy_flask ./legacy_flask
COPY features ./features
RUN pip install '.[demo]' && useradd --create-home --uid 10001 gateway
COPY migration_map.yaml /etc/gateway/migration_map.yaml

USER gateway
ENV GATEWAY_MAP_PATH=/etc/gateway/migration_map.yaml
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/_gateway/health', timeout=2)"
CMD ["sh", "-c", "gateway seed --if-empty && exec gateway serve --host 0.0.0.0 --port 8000 --workers ${GATEWAY_WORKERS:-2}"]
