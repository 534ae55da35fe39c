#!/usr/bin/env bash
# Runs every test of the workspace against real services: the pinned local broker (started here
# with memory storage, and the exact one with SQLite storage, each stopped afterwards if this script started it) and the machine's
# PostgreSQL (HUB_TEST_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/postgres).
# Arguments are passed to `cargo test`, e.g. `ops/test.sh -p hub-state`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

export HUB_TEST_POSTGRES_URL=${HUB_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
export HUB_TEST_KAFKA_BOOTSTRAP=${HUB_TEST_KAFKA_BOOTSTRAP:-$(ops/broker.sh bootstrap test)}
# The domain apps' tests restart consumers at stored offsets: they need a broker that serves a
# read from inside a batch, which the fast memory storage does not (docs/broker.md).
export HUB_TEST_KAFKA_EXACT_BOOTSTRAP=${HUB_TEST_KAFKA_EXACT_BOOTSTRAP:-$(ops/broker.sh bootstrap exact)}

# shellcheck source=ops/lib.sh
. ops/lib.sh
ensure_broker test
ensure_broker exact

if ! pg_isready -q -d "$HUB_TEST_POSTGRES_URL" 2>/dev/null; then
  echo "test.sh: PostgreSQL does not answer at $HUB_TEST_POSTGRES_URL; start it (see README) or set HUB_TEST_POSTGRES_URL" >&2
  exit 1
fi

# Independent implementations the tests compare the hub with (tests/python/requirements.txt),
# in a virtual environment cached beside the broker; rebuilt when the requirements change.
venv=${HUB_CACHE_DIR:-$HOME/.cache/shanghai-hub}/py-venv
stamp="$venv/requirements.sha256"
want=$(sha256sum tests/python/requirements.txt | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "test.sh: preparing the Python test environment in $venv"
  python3 -m venv --clear "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/python/requirements.txt
  echo "$want" >"$stamp"
fi
export HUB_TEST_PYTHON="$venv/bin/python"

# The S3-compatible server the file store's tests store into (moto's server mode,
# tests/python/s3-requirements.txt), in its own cached virtual environment so its many
# dependencies never move the versions above; rebuilt when its requirements change.
s3venv=${HUB_CACHE_DIR:-$HOME/.cache/shanghai-hub}/s3-venv
s3stamp="$s3venv/requirements.sha256"
s3want=$(sha256sum tests/python/s3-requirements.txt | cut -d' ' -f1)
if [ ! -x "$s3venv/bin/moto_server" ] || [ "$(cat "$s3stamp" 2>/dev/null)" != "$s3want" ]; then
  echo "test.sh: preparing the S3 test server (moto) in $s3venv"
  python3 -m venv --clear "$s3venv"
  "$s3venv/bin/pip" install --quiet --disable-pip-version-check -r tests/python/s3-requirements.txt
  echo "$s3want" >"$s3stamp"
fi
export HUB_TEST_MOTO_SERVER="$s3venv/bin/moto_server"

# The SFTP tests start Debian's OpenSSH server themselves (hub/files/tests/sftp.rs).
if [ ! -x /usr/sbin/sshd ]; then
  echo "test.sh: the SFTP tests need OpenSSH's server: apt-get install openssh-server" >&2
  exit 1
fi

# The console's browser test (hub/app/tests/console.rs drives tests/console with Playwright)
# uses Debian's Chromium; its npm packages are installed here, again when the lock changes.
if [ ! -x /usr/bin/chromium ]; then
  echo "test.sh: the console's browser test needs Chromium: apt-get install chromium chromium-driver" >&2
  exit 1
fi
lock=$(sha256sum tests/console/package-lock.json | cut -d' ' -f1)
if [ "$(cat tests/console/node_modules/.package-lock.sha256 2>/dev/null)" != "$lock" ]; then
  echo "test.sh: installing the console test's npm packages (tests/console)"
  (cd tests/console && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
  echo "$lock" >tests/console/node_modules/.package-lock.sha256
fi

# npm sm-crypto, the second independent SM2/SM3/SM4 implementation the hub is compared with
# (tests/node, run by tests/node/peer.rs with the Node.js of HUB_TEST_NODE): installed from its
# lock, again only when the lock changes.
if ! command -v node >/dev/null; then
  echo "test.sh: the sm-crypto interop tests need Node.js: apt-get install nodejs npm" >&2
  exit 1
fi
node_lock=$(sha256sum tests/node/package-lock.json | cut -d' ' -f1)
if [ "$(cat tests/node/node_modules/.package-lock.sha256 2>/dev/null)" != "$node_lock" ]; then
  echo "test.sh: installing the sm-crypto peer's npm packages (tests/node)"
  (cd tests/node && npm ci --no-audit --no-fund --loglevel=error)
  echo "$node_lock" >tests/node/node_modules/.package-lock.sha256
fi
export HUB_TEST_NODE=${HUB_TEST_NODE:-$(command -v node)}

# The run's output is kept: after the tests, pii-scan proves no personal value of the fixtures
# reached Kafka or this log in clear text.
mkdir -p var/test-logs
log=var/test-logs/cargo-test.log
set -o pipefail
cargo test --workspace --all-targets "$@" 2>&1 | tee "$log"
cargo run -q -p hub-tests --bin pii-scan -- --log "$log"
release_broker

# One closing line for the whole run (cargo prints one per test binary, the last of which is
# often a crate's empty doc-test run).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
