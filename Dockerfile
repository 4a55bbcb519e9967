# pryvrt as a container: one `pryvrt serve` process per container (scale by running more
# containers behind a balancer; compose.yaml runs two behind HAProxy). It expects an
# external PostgreSQL (DATABASE_URL) and, with more than one container, Redis (REDIS_URL)
# and a shared PRYVRT_SECRET_KEY. Build: docker build -t pryvrt .
FROM python:3.11-slim

WORKDIR /app
# The package and its schema (pryvrt/schema.sql links to ./schema.sql).
COPY pyproject.toml README.md schema.sql ./
COPY pryvrt ./pryvrt
RUN pip install --no-cache-dir . && rm -rf /root/.cache

# Not root; the data directory holds only the generated secret key when PRYVRT_SECRET_KEY
# is unset (a single container), never a database: set DATABASE_URL.
RUN useradd --system --home-dir /var/lib/pryvrt --create-home pryvrt
USER pryvrt
ENV PRYVRT_HOST=0.0.0.0 \
    PORT=3000 \
    PRYVRT_DATA_DIR=/var/lib/pryvrt
EXPOSE 3000
HEALTHCHECK --interval=5s --timeout=3s --start-period=20s \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:3000/health', timeout=2)"]
CMD ["pryvrt", "serve"]
