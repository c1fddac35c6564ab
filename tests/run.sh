#!/usr/bin/env bash
# The whole test suite, runnable on a fresh machine that has only the Rust
# toolchain and the package registries. Later suites that need servers or
# Python install and start them here (as root via apt/pip), never silently skip.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo test --workspace --no-fail-fast
