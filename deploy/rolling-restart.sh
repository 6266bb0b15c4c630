#!/usr/bin/env bash
# Restart the Chatdesk workers on this host one at a time, so the others keep serving: after a
# release (new code, new settings). Each restarted worker must answer /readyz 200 before the next
# one goes down; if one does not within READY_TIMEOUT seconds, stop here with it named (the rest
# keep the old code and keep serving).
#   deploy/rolling-restart.sh                 # every enabled chatdesk@<port> instance
#   deploy/rolling-restart.sh 8001 8002       # these ports
# HOST_HEADER: a name in ALLOWED_HOSTS (the probe goes straight to the worker's port).
set -euo pipefail
READY_TIMEOUT=${READY_TIMEOUT:-60}
# nginx leaves a worker that refused a connection out for fail_timeout (5 s in
# deploy/nginx/chatdesk.conf.template), even once it is ready again: taking the next one down
# sooner leaves nginx with "no live upstreams" (measured in tests/test_rolling_restart.py).
SETTLE_SECONDS=${SETTLE_SECONDS:-6}
HOST_HEADER=${HOST_HEADER:-$(sed -n 's/^ALLOWED_HOSTS=\([^,]*\).*/\1/p' /etc/chatdesk/chatdesk.env 2>/dev/null | head -n1)}
HOST_HEADER=${HOST_HEADER:-localhost}

ports=("$@")
if [ ${#ports[@]} -eq 0 ]; then
  mapfile -t ports < <(systemctl list-units --type=service --all --no-legend --plain 'chatdesk@*.service' \
    | sed -n 's/^chatdesk@\([0-9]\+\)\.service.*/\1/p' | sort -n)
fi
[ ${#ports[@]} -gt 0 ] || { echo "no chatdesk@<port> instances found" >&2; exit 1; }

for port in "${ports[@]}"; do
  echo "restarting chatdesk@${port}"
  # Blocks while the worker drains (up to TimeoutStopSec), then starts the new one.
  systemctl restart "chatdesk@${port}.service"
  deadline=$((SECONDS + READY_TIMEOUT))
  until curl -fsS -o /dev/null -H "Host: ${HOST_HEADER}" "http://127.0.0.1:${port}/readyz"; do
    if [ ${SECONDS} -ge ${deadline} ]; then
      echo "chatdesk@${port} is not ready after ${READY_TIMEOUT}s: stopping the rolling restart here" >&2
      curl -sS -H "Host: ${HOST_HEADER}" "http://127.0.0.1:${port}/readyz" >&2 || true
      exit 1
    fi
    sleep 1
  done
  echo "chatdesk@${port} is ready"
  sleep "${SETTLE_SECONDS}"
done
