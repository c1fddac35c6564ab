# Production image of the finopsia binary (used by docker-compose.yml).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p finopsia && strip target/release/finopsia

FROM debian:bookworm-slim
RUN useradd --system --home /var/lib/finopsia finopsia && mkdir -p /var/lib/finopsia && chown finopsia /var/lib/finopsia
COPY --from=build /src/target/release/finopsia /usr/local/bin/finopsia
USER finopsia
WORKDIR /var/lib/finopsia
ENV FINOPSIA__DATA_DIR=/var/lib/finopsia/data
VOLUME /var/lib/finopsia
# Healthy while a service holds the data directory's writer lock.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s CMD ["finopsia", "status", "--data-dir", "/var/lib/finopsia/data"]
ENTRYPOINT ["finopsia"]
CMD ["run"]
