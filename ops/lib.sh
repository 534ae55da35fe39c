# Shared by the ops scripts (source it; not executable on its own).

# ensure_broker PROFILE: start the local broker of PROFILE (test|exact|dev) unless it already answers.
# If this call started it, release_broker (also run when the calling script exits) stops it.
ensure_broker() {
  local profile=$1 root
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  if "$root/ops/broker.sh" status "$profile" >/dev/null 2>&1; then
    return 0
  fi
  "$root/ops/broker.sh" start "$profile"
  HUB_STARTED_BROKERS+=("$root/ops/broker.sh stop $profile")
  trap release_broker EXIT
}

# Stops the brokers ensure_broker started, once.
HUB_STARTED_BROKERS=()
release_broker() {
  local stop
  for stop in "${HUB_STARTED_BROKERS[@]}"; do
    $stop || true
  done
  HUB_STARTED_BROKERS=()
}
