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
ENTRYPOINT ["finopsia"]
CMD ["run"]
