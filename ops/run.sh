#!/usr/bin/env bash
# Runs the hub's main job locally on the embedded defaults:
#   - the pinned broker with durable SQLite storage (var/broker/dev);
#   - the hub with ops/hub.example.toml (state in var/hub/), delivering to the 12345 platform;
#   - the 12345 platform simulator (adapters/hotline12345/simulator) on 127.0.0.1:9481, pushing
#     new tickets to the hub every few seconds and closing/visiting the ones the bureau replies to;
#   - the hotline domain app (apps/hotline) with its API on 127.0.0.1:9490 (SQLite in var/hotline/).
# Ctrl-C stops them in reverse order, each gracefully (in-flight work finishes, producers flush),
# then the broker if this script started it. The hub logs here; the others to var/run/*.log.
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

cargo build "${profile_flag[@]}" -p hub -p hotline-app -p hotline12345-simulator
bin="${CARGO_TARGET_DIR:-target}/$target"
"$bin/hub" check --config ops/hub.example.toml

mkdir -p var/run
pids=()
stop_all() {
  trap - INT TERM
  echo "run.sh: stopping"
  # Reverse order: the platform stops pushing, the app drains, then the hub flushes.
  local i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${pids[$i]}" 2>/dev/null || true
    wait "${pids[$i]}" 2>/dev/null || true
  done
}
trap stop_all INT TERM

"$bin/hub" serve --config ops/hub.example.toml &
pids+=($!)
# The app and the simulator need the hub's topics and gateway: wait until the hub is ready.
for _ in $(seq 1 120); do
  if curl -sf -o /dev/null http://127.0.0.1:9470/readyz; then break; fi
  if ! kill -0 "${pids[0]}" 2>/dev/null; then echo "run.sh: the hub exited; its log is above" >&2; exit 1; fi
  sleep 1
done
curl -sf -o /dev/null http://127.0.0.1:9470/readyz || { echo "run.sh: the hub is not ready after 120 s" >&2; stop_all; exit 1; }

"$bin/hotline-app" --config apps/hotline/hotline.example.toml serve >var/run/hotline-app.log 2>&1 &
pids+=($!)
"$bin/hotline12345-simulator" serve --listen 127.0.0.1:9481 --hub http://127.0.0.1:9480 \
  --push-every 10s --batch 3 --xml-ratio 0.3 --lifecycle --state-file var/simulator/state.json \
  >var/run/simulator.log 2>&1 &
pids+=($!)

cat <<'EOF'
run.sh: running. 运行中：
  hub admin       http://127.0.0.1:9470  (/healthz, /readyz, /metrics)      log: this terminal
  hub console     http://127.0.0.1:9470/console/  (operator: see README.md)
  hub gateway     http://127.0.0.1:9480  (partners' pushes)
  12345 simulator http://127.0.0.1:9481  (/sim/tickets, /sim/stats)         log: var/run/simulator.log
  hotline app     http://127.0.0.1:9490  (/api/v1/tickets)                  log: var/run/hotline-app.log
Try (README.md, "Watch a ticket flow", has more):
  curl -s -H 'Authorization: Bearer dev-only-handler-token-change-me' 'http://127.0.0.1:9490/api/v1/tickets?status=DISPATCHED'
Ctrl-C to stop. 按 Ctrl-C 停止。
EOF
# Not exec: stop_all must run when any of them exits or on Ctrl-C.
wait -n "${pids[@]}" || true
stop_all
