# Dockerfile: the molecule image (moleculed, molecule-api, the workers and the migrations).
#
# STARTING POINT, NOT TESTED: the development machine has no Docker engine, so this file has never
# been built. A later issue finishes it, together with docker-compose.yml. That issue should also add
# a .dockerignore, so that build*/ and .run/ (databases, sockets) stay out of the build context.

# --- build: the same Makefile as on a workstation, on the same Debian release ---------------
FROM debian:bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential pkg-config \
      libfcgi-dev libpq-dev libhiredis-dev libjson-c-dev libcurl4-openssl-dev libssl-dev libyaml-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Only what the build reads, so that edits to docs or tests do not invalidate the layer.
COPY Makefile ./
COPY common common
COPY fcgi fcgi
COPY workers workers
# `make` (target all) also builds the benchmark's hello-fcgi and the test drivers in tests/tools.
COPY tests/bench/hello_fcgi.c tests/bench/hello_fcgi.c
COPY tests/tools tests/tools
RUN make -j"$(nproc)"

# --- runtime: shared libraries only, no compiler ----------------------------------------------
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libfcgi0ldbl libpq5 libhiredis0.14 libjson-c5 libcurl4 libssl3 libyaml-0-2 ca-certificates \
      git tzdata \
 && rm -rf /var/lib/apt/lists/*
# Not root. The socket folder is created here so that a fresh named volume mounted on it inherits
# this ownership.
RUN useradd --system --home-dir /opt/molecule --shell /usr/sbin/nologin molecule \
 && mkdir -p /run/molecule \
 && chown molecule: /run/molecule
# moleculed finds molecule-api and the workers next to its own binary.
COPY --from=build /src/build/moleculed /src/build/molecule-* /usr/local/bin/
WORKDIR /opt/molecule
# migrations_dir defaults to "sql", relative to the working directory.
COPY sql sql
USER molecule
ENV MOLECULE_FCGI_SOCKET=/run/molecule/api.sock
CMD ["moleculed"]
