#!/usr/bin/env bash
# The benchmark harness (hub-bench), built in release mode with the hub, against the local test
# broker (memory storage; started here if it is not running, and then stopped again on exit so
# ops/test.sh finds the broker as it was). docs/performance.md explains the scenarios.
#
#   ops/bench.sh smoke      ≤ 60 s of measuring: ceilings, per-stage costs and the hub's ingest
#                           path once each; exits non-zero unless every scenario produced numbers
#                           and every request was answered 200 (CI runs this, on the debug build:
#                           HUB_BENCH_BUILD=debug ops/bench.sh smoke)
#   ops/bench.sh full       every scenario at 8, 64 and 256 connections, 20 s each (~8 minutes);
#                           appends the results to docs/performance.md, JSON under var/bench/
#   ops/bench.sh profile    ingest-1k with the hub under valgrind's callgrind, then the top of
#                           callgrind_annotate (var/bench/*-callgrind.out)
#   ops/bench.sh produce …  the raw producer benchmark, e.g. produce --count 50000 --concurrency 64,256
#   ops/bench.sh mapping …  mapping throughput on one core
#
# Options after smoke|full|profile go to `hub-bench run` (hub-bench run --help), e.g.
#   ops/bench.sh full --scenarios ingest-1k --connections 64 --state-dir /dev/shm
# Options before the subcommand go to hub-bench itself, e.g. ops/bench.sh --linger-ms 1 produce.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=ops/lib.sh
. ops/lib.sh

# Split hub-bench's own options from the subcommand and its arguments.
global=()
while [ $# -gt 0 ] && [[ $1 == --* ]]; do
  global+=("$1")
  case "$1" in --*=*) ;; *) [ $# -gt 1 ] && { shift; global+=("$1"); } ;; esac
  shift
done
sub=${1:-produce}
[ $# -gt 0 ] && shift

ensure_broker test
export HUB_BENCH_KAFKA_BOOTSTRAP=$(ops/broker.sh bootstrap test)
# The broker's pid, for its CPU columns: known only when this checkout's broker.sh started it
# (a broker another checkout started answers on the same port without a pid file here).
broker_pid=$(cat var/broker/test.pid 2>/dev/null || true)
if [ -n "$broker_pid" ]; then export HUB_BENCH_BROKER_PID=$broker_pid; else unset HUB_BENCH_BROKER_PID; fi
target=${CARGO_TARGET_DIR:-$root/target}
# HUB_BENCH_BUILD=debug runs the harness on the debug build (CI's smoke run: it proves the harness
# works end to end without a second, release build of the workspace; its numbers mean nothing).
build=${HUB_BENCH_BUILD:-release}
case "$build" in
  release) build_flags=(--release) ;;
  debug) build_flags=() ;;
  *) echo "bench.sh: HUB_BENCH_BUILD must be release or debug, not $build" >&2; exit 2 ;;
esac
case "$sub" in
  smoke|full|profile) cargo build "${build_flags[@]}" -p hub-bench -p hub ;;
  *) cargo build "${build_flags[@]}" -p hub-bench ;;
esac
export HUB_BENCH_HUB_BIN=$target/$build/hub
echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  commit: $(git rev-parse --short HEAD 2>/dev/null || echo none)  build: $build"
if [ "$build" = debug ] && [ "$sub" = full ]; then
  echo "bench.sh: a full run on the debug build would append meaningless figures to docs/performance.md" >&2
  exit 2
fi
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
bench=("$target/$build/hub-bench" "${global[@]}")

case "$sub" in
  smoke)
    "${bench[@]}" run smoke --command "ops/bench.sh smoke${*:+ $*}" "$@"
    ;;
  full)
    "${bench[@]}" run full --append-doc docs/performance.md --command "ops/bench.sh full${*:+ $*}" "$@"
    ;;
  profile)
    command -v valgrind >/dev/null || { echo "bench.sh: profile needs valgrind (apt-get install valgrind)" >&2; exit 1; }
    mkdir -p var/bench
    out=var/bench/$(date -u +%Y%m%dT%H%M%SZ)-callgrind.out
    "${bench[@]}" run profile --command "ops/bench.sh profile${*:+ $*}" \
      --hub-wrapper "valgrind --tool=callgrind --callgrind-out-file=$root/$out" "$@"
    # Self cost by function, then inclusive cost (what each function and its callees take);
    # to files first, so that `head` closing the pipe is not a failure under pipefail.
    callgrind_annotate "$out" >"$out.self.txt" 2>/dev/null
    callgrind_annotate --inclusive=yes "$out" >"$out.inclusive.txt" 2>/dev/null
    head -60 "$out.self.txt"
    head -60 "$out.inclusive.txt"
    echo "profile: $out, annotated in $out.self.txt and $out.inclusive.txt"
    ;;
  *)
    "${bench[@]}" "$sub" "$@"
    ;;
esac
