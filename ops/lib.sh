# Shared by the ops scripts (source it; not executable on its own).

# ensure_broker PROFILE: start the local broker of PROFILE (test|dev) unless it already answers,
# and stop it when the calling script exits if, and only if, this call started it.
ensure_broker() {
  local profile=$1 root
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  if "$root/ops/broker.sh" status "$profile" >/dev/null 2>&1; then
    return 0
  fi
  "$root/ops/broker.sh" start "$profile"
  # shellcheck disable=SC2064 # expand now: the trap must name this profile
  trap "'$root/ops/broker.sh' stop '$profile' || true" EXIT
}
