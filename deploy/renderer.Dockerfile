# syntax=docker/dockerfile:1.7
# The renderer: `sothebais-renderer` (Bevy offscreen, GStreamer encode and outputs).
#
#   docker build -f deploy/renderer.Dockerfile -t sothebais/renderer .
#
# On the GPU box the NVIDIA Container Toolkit mounts the driver into the container:
# Vulkan for Bevy (capability `graphics`) and NVENC for nvh264enc (`video`; CUDA is
# `compute`). Without a GPU, Mesa's lavapipe draws on the CPU and x264 encodes
# (compose.yaml's `cpu` profile). tests/e2e/deploy.rs checks the runtime's package
# list against the libraries the binary links and the GStreamer elements it uses.

FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends mold pkg-config \
      libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
ENV RUSTFLAGS="-C link-arg=-fuse-ld=mold" CARGO_TARGET_DIR=/target
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/target \
    cargo build --release --locked -p sothebais-renderer --bin sothebais-renderer \
 && install -D /target/release/sothebais-renderer /out/sothebais-renderer

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly libvulkan1 mesa-vulkan-drivers tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/sothebais --create-home sothebais
COPY --from=build /out/sothebais-renderer /usr/local/bin/sothebais-renderer
COPY deploy/healthcheck /usr/local/bin/healthcheck
COPY scenes /app/scenes
COPY assets /app/assets
WORKDIR /app
ENV SOTHEBAIS_DATA_DIR=/var/lib/sothebais \
    SOTHEBAIS_BIND=0.0.0.0 \
    LOG_FORMAT=json \
    STREAM_SCENES_DIR=/app/scenes \
    STREAM_ASSETS_DIR=/app/assets \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics,video
USER sothebais
VOLUME /var/lib/sothebais
EXPOSE 4200 4201 4290 4291
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 CMD ["healthcheck", "4291"]
ENTRYPOINT ["tini", "--", "sothebais-renderer"]
