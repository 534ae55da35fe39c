#!/usr/bin/env bash
# Runs the benchmark harness in release mode against the local broker (memory storage, started
# here if needed and stopped afterwards). Arguments go to hub-bench, e.g.
#   ops/bench.sh produce --count 50000 --size 1024 --concurrency 64,256
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=ops/lib.sh
. ops/lib.sh
ensure_broker test
export HUB_BENCH_KAFKA_BOOTSTRAP=$(ops/broker.sh bootstrap test)
cargo build --release -p hub-bench
echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  commit: $(git rev-parse --short HEAD 2>/dev/null || echo none)"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
"${CARGO_TARGET_DIR:-target}/release/hub-bench" "${@:-produce}"
