FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app

COPY pyproject.toml README.md constraints.txt ./
COPY graphql_api ./graphql_api
COPY db ./db
COPY client ./client
RUN pip install --no-cache-dir -c constraints.txt . \
    && useradd --system --uid 10001 --create-home app \
    && mkdir /data && chown app /data

# Without DATABASE_URL the image runs its own embedded PostgreSQL, kept in this volume.
ENV SESSION_GRAPHQL_DATA_DIR=/data/pgdata
VOLUME /data
USER app
EXPOSE 8000
# Replicas are stateless; migrations take an advisory lock, so every replica may run them on start.
# Listening on 0.0.0.0, serve refuses to run without credentials: make a key first with
#   docker run --rm -v <volume>:/data <image> session-graphql token create --role admin
# (or give it JWT settings). `--insecure` would serve everyone as admin: only for throwaway use.
ENV SESSION_GRAPHQL_MIGRATE_ON_START=true
# One server process per CPU the container may use (its --cpus quota included); a number overrides it.
ENV SESSION_GRAPHQL_WORKERS=auto
CMD ["session-graphql", "serve", "--host", "0.0.0.0", "--port", "8000"]
