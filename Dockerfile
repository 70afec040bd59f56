# syntax=docker/dockerfile:1.7
#
# Strongroom container image: a release build in the Rust image, then only the binaries on a
# distroless base (glibc + libgcc, no shell, no package manager): the server, and the
# OpenBao/Vault plugin, which a Kubernetes init container installs into the OpenBao pod with
# `/strongroom-openbao-plugin install /plugins` (docs/vault-plugin.md).
#
#   docker build -t strongroom .
#   docker run --rm -e DATABASE_URL=... -p 3000:3000 strongroom            # serve
#   docker run --rm -e DATABASE_URL=... strongroom migrate
#
# NOT BUILT IN THIS REPOSITORY'S CI: the development machines have the docker client but no
# Docker engine, so this file is checked by review only. Build it where an engine (or
# BuildKit/buildah/kaniko) runs, push it, and pin the pushed digest in the kustomize overlay.
#
# Runs as uid/gid 10001 (not the distroless `nonroot` 65532) to match runAsUser in
# deploy/k8s; the numeric USER lets the kubelet enforce runAsNonRoot.

# checkov:skip=CKV_DOCKER_2:No HEALTHCHECK: the distroless runtime has no shell or HTTP client to run one, and Kubernetes ignores image HEALTHCHECKs; deploy/k8s probes /v1/sys/seal-status (liveness) and /v1/sys/health (readiness).
#
# Base images by tag; for reproducible builds pin them by digest in the build pipeline
# (e.g. `rust:1-bookworm@sha256:...`), which cannot be looked up from this repository.

# The runtime's passwd/group, extended with the strongroom user, so tools that look the uid
# up find a name (distroless has no useradd).
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime-base

FROM rust:1-bookworm AS builder
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
# Compiled in: the built-in casbin model and policy (auth::policy) and the guides the portal
# serves (portal's include_str!: docs/ and README.md).
COPY policies ./policies
COPY docs ./docs
COPY README.md ./README.md
COPY plugins/openbao/Cargo.toml ./plugins/openbao/Cargo.toml
COPY plugins/openbao/src ./plugins/openbao/src
# A workspace member (the benchmark): cargo reads every member's manifest; the image ships only
# the two binaries built below.
COPY bench/Cargo.toml ./bench/Cargo.toml
COPY bench/src ./bench/src
# BuildKit cache mounts keep the crate registry and the target dir between builds; the binary
# is copied out of the mounted target dir because cache mounts are not part of the layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin strongroom --bin strongroom-openbao-plugin \
    && install -D -m 0755 target/release/strongroom /out/strongroom \
    && install -D -m 0755 target/release/strongroom-openbao-plugin /out/strongroom-openbao-plugin
COPY --from=runtime-base /etc/passwd /etc/group /tmp/base/
RUN install -d /out/etc \
    && cp /tmp/base/passwd /out/etc/passwd && cp /tmp/base/group /out/etc/group \
    && echo 'strongroom:x:10001:10001:strongroom:/nonexistent:/sbin/nologin' >> /out/etc/passwd \
    && echo 'strongroom:x:10001:' >> /out/etc/group

FROM runtime-base
LABEL org.opencontainers.image.title="strongroom" \
      org.opencontainers.image.description="Multi-tenant vault for personal data (Databunker Pro v2 API)" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/etc/passwd /out/etc/group /etc/
COPY --from=builder /out/strongroom /strongroom
COPY --from=builder /out/strongroom-openbao-plugin /strongroom-openbao-plugin
USER 10001:10001
# Listen on all interfaces inside the container (the binary's default is 127.0.0.1:3000).
ENV STRONGROOM_LISTEN=0.0.0.0:3000 \
    STRONGROOM_METRICS_LISTEN=0.0.0.0:9102
# 3000: API; 9102: Prometheus /metrics (separate listener).
EXPOSE 3000 9102
ENTRYPOINT ["/strongroom"]
CMD ["serve"]
