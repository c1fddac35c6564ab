#!/usr/bin/env bash
# The whole test suite, runnable on a fresh machine that has only the Rust
# toolchain and the package registries. Suites that need servers or Python
# get them installed and started here (as root via apt/pip), never silently
# skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# Python reference oracles and the training script: PyPI catboost, prophet
# and pandas in a virtualenv under target/ (reused when already complete).
PYENV="${FINOPSIA_PYENV:-$PWD/target/pyenv}"
if ! "$PYENV/bin/python" -c "import catboost, pandas, prophet" >/dev/null 2>&1; then
    echo "== python venv ($PYENV): catboost, prophet, pandas"
    if ! command -v python3 >/dev/null 2>&1 || ! python3 -c "import venv, ensurepip" >/dev/null 2>&1; then
        apt-get update -qq && apt-get install -y -qq python3 python3-venv python3-pip >/dev/null
    fi
    rm -rf "$PYENV"
    python3 -m venv "$PYENV"
    "$PYENV/bin/pip" install -q --disable-pip-version-check -r tests/requirements.txt
fi
export FINOPSIA_TEST_PYTHON="$PYENV/bin/python"
"$FINOPSIA_TEST_PYTHON" -c "import catboost, prophet; print('python catboost', catboost.__version__, 'prophet', prophet.__version__)"

echo "== cargo fmt --check"
cargo fmt --all -- --check
cargo fmt --manifest-path udfs/arroyo/Cargo.toml --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
LOG="$(mktemp)"
trap 'rm -f "$LOG"' EXIT
echo "== cargo test"
cargo test --workspace --no-fail-fast 2>&1 | tee -a "$LOG"
echo "== Arroyo UDF workspace (udfs/arroyo: own lockfile, arrow 51)"
cargo test --manifest-path udfs/arroyo/Cargo.toml --locked --lib 2>&1 | tee -a "$LOG"
# One closing line over every test binary above.
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$LOG"
