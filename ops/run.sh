#!/usr/bin/env bash
# Runs the hub's main job locally on the embedded defaults: the pinned broker with durable
# SQLite storage (var/broker/dev) and the hub with ops/hub.example.toml (state in var/hub/).
# Ctrl-C stops the hub gracefully (in-flight work finishes, the producer flushes), then the
# broker if this script started it. Later issues add the partner simulators and domain apps here.
#
#   ops/run.sh            debug build (quicker to build)
#   ops/run.sh --release  optimised build
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

profile_flag=()
target=debug
if [ "${1:-}" = "--release" ]; then profile_flag=(--release); target=release; fi

# shellcheck source=ops/lib.sh
. ops/lib.sh
ensure_broker dev

cargo build "${profile_flag[@]}" -p hub
hub="${CARGO_TARGET_DIR:-target}/$target/hub"
"$hub" check --config ops/hub.example.toml
echo "run.sh: hub starting; admin on http://127.0.0.1:9470 (/healthz, /readyz). Ctrl-C to stop."
# Not exec: the trap must run after the hub exits to stop the broker.
"$hub" serve --config ops/hub.example.toml &
hub_pid=$!
trap 'kill -TERM $hub_pid 2>/dev/null || true' INT TERM
wait $hub_pid || true
wait $hub_pid 2>/dev/null || true
