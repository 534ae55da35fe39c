# Shared by the ops scripts (source it; not executable on its own).

# ensure_broker PROFILE: start the local broker of PROFILE (test|dev) unless it already answers.
# If this call started it, release_broker (also run when the calling script exits) stops it.
ensure_broker() {
  local profile=$1 root
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  if "$root/ops/broker.sh" status "$profile" >/dev/null 2>&1; then
    return 0
  fi
  "$root/ops/broker.sh" start "$profile"
  HUB_STARTED_BROKER="$root/ops/broker.sh stop $profile"
  trap release_broker EXIT
}

# Stops the broker ensure_broker started, once.
release_broker() {
  if [ -n "${HUB_STARTED_BROKER:-}" ]; then
    $HUB_STARTED_BROKER || true
    HUB_STARTED_BROKER=
  fi
}
