# Multi-stage build of a static binary into a minimal, non-root image.
#   docker build -t kube-reloader:0.1.0 .
# The binary is built exactly as the tests build it (cargo build --release, Cargo.lock honoured),
# for the musl target so it needs no libc; TLS is rustls, so no OpenSSL either. Where no Docker
# engine runs, hack/image.sh builds the same image with buildah.
FROM rust:1.95-bookworm AS build
RUN rustup target add x86_64-unknown-linux-musl \
 && apt-get update && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The inputs: exactly hack/image-inputs, one COPY each.
COPY Cargo.toml ./Cargo.toml
COPY Cargo.lock ./Cargo.lock
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --target x86_64-unknown-linux-musl --bin reloader \
 && cp target/x86_64-unknown-linux-musl/release/reloader /reloader

# distroless static, nonroot: user 65532, /etc/passwd, and the CA bundle the alert sinks need.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /reloader /reloader
USER 65532:65532
EXPOSE 9090
ENTRYPOINT ["/reloader"]
