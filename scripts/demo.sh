#!/usr/bin/env bash
# The main job: the whole product on one machine. Sets itself up, starts minipve (a one-node Proxmox
# VE API over real LXC containers) and the ctforge service, builds the canonical template chain
# (base → nodejs → fullstack, examples/family.yml) through the service with live progress, then
# prints the tree with VMIDs and build times, the web page's address and token, and how to SSH in.
# Run again, it changes nothing and says so. Both keep running afterwards so you can look around:
# `bash scripts/demo.sh stop` stops them, `.venv/bin/minipve reset` removes every CT minipve made.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${MINIPVE_STATE_DIR:-/var/lib/minipve}
PIDFILE=$STATE.serve.pid
LOG=$STATE.serve.log
SERVICE_STATE=${CTFORGE_STATE_DIR:-/var/lib/ctforge}
SERVICE_PIDFILE=$SERVICE_STATE.serve.pid
SERVICE_LOG=$SERVICE_STATE.serve.log
SERVICE_PORT=${CTFORGE_PORT:-8100}
FAMILY=$ROOT/examples/family.yml
ADMIN=${CTFORGE_DEMO_USER:-admin}

log() { printf '\033[1m==> %s\033[0m\n' "$*"; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
# Ends the process a pidfile names (only that one, which this script started) and waits for it.
stop_pidfile() {
  alive "$1" || { rm -f "$1"; return 0; }
  local pid; pid=$(cat "$1")
  kill "$pid"
  for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  rm -f "$1"
  log "$2"
}

if [ "${1:-}" = stop ]; then
  stop_pidfile "$SERVICE_PIDFILE" "the ctforge service stopped"
  stop_pidfile "$PIDFILE" "minipve stopped (containers are kept)"
  exit 0
fi

bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
export ANSIBLE_CONFIG=$ROOT/ansible.cfg PATH=$ROOT/.venv/bin:$PATH

if ! alive "$PIDFILE"; then
  log "Starting minipve (state in $STATE, log in $LOG); the first start builds the Debian 12 appliance"
  # serve refuses a state dir another process holds (it names the PID), and writes client.env anew
  # once it answers: wait for one newer than any left behind.
  mkdir -p "$(dirname "$STATE")"
  touch "$STATE.serve.start"
  setsid minipve serve --state-dir "$STATE" >"$LOG" 2>&1 < /dev/null &
  echo $! > "$PIDFILE"
  for _ in $(seq 1 900); do
    [ "$STATE/client.env" -nt "$STATE.serve.start" ] && break
    if ! alive "$PIDFILE"; then echo "minipve did not start; its log says:" >&2; tail -n 20 "$LOG" >&2; exit 1; fi
    sleep 1
  done
  [ "$STATE/client.env" -nt "$STATE.serve.start" ] || { echo "minipve did not become ready in 15 minutes: see $LOG" >&2; exit 1; }
fi
set -a; . "$STATE/client.env"; set +a   # PROXMOX_*: the service reaches minipve as it would a cluster

export CTFORGE_STATE_DIR=$SERVICE_STATE CTFORGE_PORT=$SERVICE_PORT
export CTFORGE_URL=http://127.0.0.1:$SERVICE_PORT
ctforge db upgrade >/dev/null
ctforge users list | grep -q "^│ $ADMIN " || ctforge users add "$ADMIN" --admin >/dev/null

if ! alive "$SERVICE_PIDFILE"; then
  log "Starting the ctforge service on $CTFORGE_URL (state in $SERVICE_STATE, log in $SERVICE_LOG)"
  setsid ctforge serve --host 127.0.0.1 --port "$SERVICE_PORT" >>"$SERVICE_LOG" 2>&1 < /dev/null &
  echo $! > "$SERVICE_PIDFILE"
  for _ in $(seq 1 600); do
    python -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
      "$CTFORGE_URL/api/v1/health" 2>/dev/null && break
    if ! alive "$SERVICE_PIDFILE"; then echo "ctforge serve did not start; its log says:" >&2; tail -n 20 "$SERVICE_LOG" >&2; exit 1; fi
    sleep 0.1
  done
fi

# The CLI's config file (mode 0600) keeps the endpoint and the token: a token from an earlier run is
# used again while the service still takes it; otherwise a new one is made and kept there.
CONFIG=$(python -c 'import typer; print(typer.get_app_dir("ctforge"))')/config.toml
config_token() {
  [ -f "$CONFIG" ] && python - "$CONFIG" <<'PY'
import sys
import tomllib

print(tomllib.load(open(sys.argv[1], "rb")).get("token", ""))
PY
}
TOKEN=$(config_token || true)
if [ -z "$TOKEN" ] || ! ctforge login --url "$CTFORGE_URL" --token "$TOKEN" >/dev/null 2>&1; then
  TOKEN=$(ctforge tokens create "$ADMIN")
  ctforge login --url "$CTFORGE_URL" --token "$TOKEN" >/dev/null
fi
export CTFORGE_TOKEN=$TOKEN

log "Building the family of $FAMILY through the service (ctforge apply)"
ctforge apply "$FAMILY"

log "The template family (ctforge templates):"
ctforge templates
echo
python - "$(ctforge jobs --json --limit 200)" <<'PY'
import json
import sys
from datetime import datetime

seen = set()
lines = []
for job in json.loads(sys.argv[1])["data"]:  # newest first
    name = job["template_name"]
    if (job["workspace_id"] or job["kind"] not in ("build", "rebuild", "retry") or job["status"] != "successful"
            or name in seen):
        continue
    seen.add(name)
    took = datetime.fromisoformat(job["finished_at"]) - datetime.fromisoformat(job["started_at"])
    lines.append(f"  {name:<12} {job['kind']:<8} {took.total_seconds():5.0f} s   ctforge jobs show {job['id']}")
print("Build times (the latest job that built each template, oldest first):", *reversed(lines), sep="\n")
PY
cat <<MSG

The web page:  $CTFORGE_URL/   (log in with the token below)
API token:     $TOKEN   (user $ADMIN; kept in $CONFIG for the CLI)
The CLI:       export PATH=$ROOT/.venv/bin:\$PATH, then e.g.
  ctforge templates show fullstack
  ctforge templates create mine --parent fullstack --stacks python    # a child of your own
  ctforge templates provision mine                                    # follows the job; then 'staging'
  ssh -i $SERVICE_STATE/build_key root@\$(ctforge templates show mine --json | python -c 'import json,sys; print(json.load(sys.stdin)["staging_container_ip"])')
  ctforge templates finalize mine                                     # back to a template, smoke-tested
  ctforge workspaces create api --stacks nodejs,postgresql,python --key ~/.ssh/id_ed25519.pub
  bash scripts/demo.sh                                                # again: changes nothing
Stop the service and minipve with 'bash scripts/demo.sh stop'; remove every CT with '.venv/bin/minipve reset'.
MSG
