#!/usr/bin/env bash
# The local Kafka-protocol broker for development and tests: Tansu, pinned, built once per
# machine into a cache folder, run as a separate process on 127.0.0.1 (never linked into the hub:
# Tansu is AGPL). Production runs Apache Kafka or Redpanda with the same client code.
#
#   ops/broker.sh install            build Tansu into the cache if it is not there (~15 min cold)
#   ops/broker.sh start  PROFILE     start it, PROFILE one of
#                                    test:  memory storage on 127.0.0.1:19092 (fast);
#                                    exact: fresh SQLite storage on 127.0.0.1:19093, for tests
#                                           that restart consumers at stored offsets (memory
#                                           storage mishandles reads from inside a batch);
#                                    dev:   SQLite storage under var/broker/dev on 127.0.0.1:9092
#   ops/broker.sh stop   PROFILE     stop it
#   ops/broker.sh status PROFILE     exit 0 when it answers a Kafka ApiVersions request
#   ops/broker.sh bootstrap PROFILE  print its bootstrap address
#
# Environment: HUB_CACHE_DIR (default ~/.cache/shanghai-hub), HUB_BROKER_TEST_PORT (19092),
# HUB_BROKER_EXACT_PORT (19093), HUB_BROKER_DEV_PORT (9092).
set -euo pipefail

TANSU_VERSION=0.6.0
# The default features have no storage engine that works; these two give memory and SQLite.
TANSU_FEATURES=dynostore,libsql

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cache=${HUB_CACHE_DIR:-$HOME/.cache/shanghai-hub}
prefix="$cache/tansu-$TANSU_VERSION"
tansu="$prefix/bin/tansu"
var="$root/var/broker"

die() { echo "broker.sh: $*" >&2; exit 1; }

profile_port() {
  case "$1" in
    test) echo "${HUB_BROKER_TEST_PORT:-19092}" ;;
    exact) echo "${HUB_BROKER_EXACT_PORT:-19093}" ;;
    dev) echo "${HUB_BROKER_DEV_PORT:-9092}" ;;
    *) die "unknown profile '$1' (test, exact or dev)" ;;
  esac
}

install() {
  if [ -x "$tansu" ] && "$tansu" --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
    return 0
  fi
  echo "broker.sh: building Tansu $TANSU_VERSION into $prefix (once per machine; ~15 minutes on 2 cores)" >&2
  mkdir -p "$prefix"
  # A private target folder under the cache keeps a half-finished build for the next try.
  CARGO_TARGET_DIR="$cache/tansu-build" cargo install --locked tansu \
    --version "$TANSU_VERSION" --features "$TANSU_FEATURES" --root "$prefix"
  "$tansu" --version | grep -q "$TANSU_VERSION" || die "installed Tansu does not report $TANSU_VERSION"
}

# A real Kafka-protocol check: send ApiVersions v0 and expect our correlation id and error 0.
healthy() {
  local port=$1
  python3 - "$port" <<'PY'
import socket, struct, sys
port = int(sys.argv[1])
client = b"hub-healthcheck"
body = struct.pack(">hhi", 18, 0, 0x48554221) + struct.pack(">h", len(client)) + client
try:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.settimeout(2)
        s.sendall(struct.pack(">i", len(body)) + body)
        head = s.recv(4)
        size = struct.unpack(">i", head)[0]
        data = b""
        while len(data) < size:
            chunk = s.recv(size - len(data))
            if not chunk:
                break
            data += chunk
    corr, err = struct.unpack(">ih", data[:6])
    sys.exit(0 if corr == 0x48554221 and err == 0 else 1)
except Exception:
    sys.exit(1)
PY
}

pidfile() { echo "$var/$1.pid"; }

running_pid() {
  local f; f=$(pidfile "$1")
  [ -f "$f" ] || return 1
  local pid; pid=$(cat "$f")
  kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

# An empty data/ folder for the exact test broker, in /dev/shm when it is writable.
fresh_data() {
  local workdir=$1 shm="/dev/shm/shanghai-hub-broker-exact-$2"
  mkdir -p "$workdir"
  rm -rf "$workdir/data"
  if [ -d /dev/shm ] && [ -w /dev/shm ]; then
    rm -rf "$shm" && mkdir -p "$shm" && ln -s "$shm" "$workdir/data"
  fi
}

start() {
  local profile=$1 port; port=$(profile_port "$profile")
  install
  if running_pid "$profile" >/dev/null && healthy "$port"; then
    echo "broker.sh: $profile broker already running on 127.0.0.1:$port"
    return 0
  fi
  if healthy "$port"; then
    die "something else already answers Kafka on 127.0.0.1:$port; stop it or set HUB_BROKER_${profile^^}_PORT"
  fi
  local storage workdir
  case "$profile" in
    test) storage="memory://tansu/"; workdir="$var/test" ;;
    # Tansu 0.6.0's memory storage reports a partition's end as the last batch's base offset
    # + 1 and serves nothing for a fetch that starts inside a multi-record batch, so a consumer
    # restarted mid-batch skips records (docs/broker.md). SQLite storage does neither, but
    # serves only a few hundred records a second; hence two test brokers. Each start of this
    # one begins empty; its file lives in RAM (/dev/shm) where there is one.
    exact) storage="sqlite://data/tansu.db"; workdir="$var/exact"; fresh_data "$workdir" "$port" ;;
    # Tansu resolves a SQLite URL against its working directory (absolute paths do not work),
    # so it runs from the folder that holds data/.
    dev) storage="sqlite://data/tansu.db"; workdir="$var/dev" ;;
  esac
  mkdir -p "$workdir/data"
  (
    cd "$workdir"
    setsid "$tansu" broker \
      --cluster-id "hub-$profile" \
      --listener-url "tcp://127.0.0.1:$port" \
      --advertised-listener-url "tcp://127.0.0.1:$port" \
      --storage-engine "$storage" \
      >"$var/$profile.log" 2>&1 </dev/null &
    echo $! >"$(pidfile "$profile")"
  )
  for _ in $(seq 1 150); do
    if healthy "$port"; then
      echo "broker.sh: $profile broker ready on 127.0.0.1:$port ($storage, log $var/$profile.log)"
      return 0
    fi
    running_pid "$profile" >/dev/null || { tail -20 "$var/$profile.log" >&2; die "$profile broker exited at start"; }
    sleep 0.2
  done
  tail -20 "$var/$profile.log" >&2
  die "$profile broker did not answer on 127.0.0.1:$port within 30 s"
}

stop() {
  local profile=$1 pid
  profile_port "$profile" >/dev/null
  if pid=$(running_pid "$profile"); then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    echo "broker.sh: $profile broker stopped"
  fi
  rm -f "$(pidfile "$profile")"
  # The exact test broker's records are thrown away with it (they live in RAM).
  if [ "$profile" = exact ]; then rm -rf "/dev/shm/shanghai-hub-broker-exact-$(profile_port exact)"; fi
}

cmd=${1:-}; profile=${2:-test}
mkdir -p "$var"
case "$cmd" in
  install) install ;;
  start) start "$profile" ;;
  stop) stop "$profile" ;;
  status)
    port=$(profile_port "$profile")
    if healthy "$port"; then echo "broker.sh: $profile broker answers on 127.0.0.1:$port"; else die "$profile broker does not answer on 127.0.0.1:$port"; fi ;;
  bootstrap) echo "127.0.0.1:$(profile_port "$profile")" ;;
  *) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
