# syntax=docker/dockerfile:1
#
# celeriac: one image for every role. The command picks the role:
#   docker run IMAGE            -> entrypoint.sh api     (HTTP API on $PORT0, $PORT or 8000)
#   docker run IMAGE worker     -> entrypoint.sh worker  (health port 8001)
#   docker run IMAGE beat       -> entrypoint.sh beat    (scheduler only, health port 8001)
#   docker run IMAGE dev        -> API + worker against $CELERIAC_BROKER_URL
# CI has no Docker engine, so this file is linted (hadolint) but not built there:
# keep it plain enough to be right by reading. See docs/deployment.md.

ARG RUST_VERSION=1.95
ARG DEBIAN_SUITE=bookworm

# ---------------------------------------------------------------- build
FROM rust:${RUST_VERSION}-slim-${DEBIAN_SUITE} AS build
WORKDIR /src

# Dependency layer: compile every dependency against stub sources, so this layer is
# reused until Cargo.toml or Cargo.lock change. The stubs mirror the crate's targets
# (src/lib.rs, src/bin/api.rs, src/bin/worker.rs).
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src/bin \
    && printf '//! dependency-cache stub\n' > src/lib.rs \
    && printf '//! dependency-cache stub\nfn main() {}\n' > src/bin/api.rs \
    && cp src/bin/api.rs src/bin/worker.rs \
    && cargo build --release --locked \
    && rm -rf src

# The real sources (the Lua scripts under src/redis/lua and the dashboard under ui/ are
# embedded with include_str!/include_bytes!), and build.rs (link flags of the binaries).
# Removing the stub's fingerprints forces cargo to rebuild the crate itself, whatever
# the mtimes of the copied files.
COPY build.rs ./
COPY ui ./ui
COPY src ./src
RUN rm -rf target/release/.fingerprint/celeriac-* \
    && cargo build --release --locked \
    && install -m 0755 target/release/celeriac-api target/release/celeriac-worker /usr/local/bin/

# ---------------------------------------------------------------- runtime
FROM debian:${DEBIAN_SUITE}-slim AS runtime

# ca-certificates: TLS to Redis (rediss://) and HTTP tasks. The version follows the base
# image's security updates, hence not pinned.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 celeriac \
    && useradd --system --uid 10001 --gid celeriac --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin celeriac \
    && mkdir -p /app \
    && chown celeriac:celeriac /app

COPY --from=build /usr/local/bin/celeriac-api /usr/local/bin/celeriac-worker /usr/local/bin/
COPY --chmod=0755 entrypoint.sh /usr/local/bin/entrypoint.sh
# `entrypoint.sh dev` execs this; without a Cargo.toml beside it, it builds nothing.
COPY --chmod=0755 scripts/dev.sh /usr/local/libexec/celeriac/dev.sh

WORKDIR /app
USER 10001:10001

# PORT: the API's port unless the scheduler sets PORT0 (Marathon does).
# CELERIAC_HEALTH_PORT: the worker's and beat's /healthz and /readyz (the API ignores it).
ENV PORT=8000 \
    CELERIAC_HEALTH_PORT=8001 \
    CELERIAC_LOG_FORMAT=json \
    RUST_LOG=info

EXPOSE 8000 8001
STOPSIGNAL SIGTERM

# No curl in the image: the API binary does the probe. `entrypoint.sh healthcheck`
# checks the API port, then the health port, so one HEALTHCHECK fits every role.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["entrypoint.sh", "healthcheck"]

ENTRYPOINT ["entrypoint.sh"]
CMD ["api"]
