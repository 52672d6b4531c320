# relais on the official Deno image, as a non-root user, with its data in /data.
# The Node.js image is Dockerfile.node (docker build -f Dockerfile.node .).
FROM denoland/deno:2.9.6

WORKDIR /app
COPY deno.json deno.lock import_map.json ./
COPY src ./src
COPY actors ./actors
COPY routes ./routes
RUN deno cache src/main.ts

RUN mkdir -p /data && chown deno:deno /data
USER deno
ENV HOST=0.0.0.0 \
    PORT=8787 \
    RELAIS_KV_PATH=/data/relais.kv \
    RELAIS_OUTBOX_DIR=/data/outbox
VOLUME /data
EXPOSE 8787

HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["deno", "eval", "const r = await fetch('http://127.0.0.1:8787/healthz'); Deno.exit(r.ok ? 0 : 1)"]

CMD ["run", "--v8-flags=--no-allocation-site-pretenuring", "--allow-net", "--allow-env", "--allow-read=/data", "--allow-write=/data", "src/main.ts"]
