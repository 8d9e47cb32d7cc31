#!/usr/bin/env bash
# The main job: build the canonical template chain (base → nodejs → fullstack) on minipve, with
# the same playbooks and modules that run against a real Proxmox cluster. Does its own set-up.
# minipve keeps running afterwards so you can look around; `bash scripts/demo.sh stop` ends it,
# `.venv/bin/minipve reset` removes everything it made.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${MINIPVE_STATE_DIR:-/var/lib/minipve}
PIDFILE=$STATE.serve.pid
LOG=$STATE.serve.log
CHAIN=(base nodejs fullstack)

log() { printf '\033[1m==> %s\033[0m\n' "$*"; }
serving() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

if [ "${1:-}" = stop ]; then
  if serving; then kill "$(cat "$PIDFILE")"; rm -f "$PIDFILE"; log "minipve stopped (containers are kept)"; fi
  exit 0
fi

bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
export ANSIBLE_CONFIG=$ROOT/ansible.cfg PATH=$ROOT/.venv/bin:$PATH

if ! serving; then
  log "Starting minipve (state in $STATE, log in $LOG); the first start builds the Debian 12 appliance"
  rm -f "$STATE/client.env"
  setsid minipve serve --state-dir "$STATE" >"$LOG" 2>&1 < /dev/null &
  echo $! > "$PIDFILE"
  for _ in $(seq 1 900); do
    [ -f "$STATE/client.env" ] && break
    if ! serving; then echo "minipve did not start; its log says:" >&2; tail -n 20 "$LOG" >&2; exit 1; fi
    sleep 1
  done
  [ -f "$STATE/client.env" ] || { echo "minipve did not become ready in 15 minutes: see $LOG" >&2; exit 1; }
fi
set -a; . "$STATE/client.env"; set +a

for template in "${CHAIN[@]}"; do
  log "Building template '$template' (examples/$template.yml)"
  start=$SECONDS
  ansible-playbook playbooks/build.yml -e "@examples/$template.yml"
  log "Template '$template' is ready ($((SECONDS - start)) s)"
done

log "The chain on minipve (https://$PROXMOX_HOST:$PROXMOX_PORT/api2/json):"
python - <<'PY'
import os

from proxmoxer import ProxmoxAPI

api = ProxmoxAPI(os.environ["PROXMOX_HOST"], port=int(os.environ["PROXMOX_PORT"]),
                 user=os.environ["PROXMOX_USER"], token_name=os.environ["PROXMOX_TOKEN_ID"],
                 token_value=os.environ["PROXMOX_TOKEN_SECRET"], verify_ssl=False)
node = os.environ["PROXMOX_NODE"]
for ct in sorted(api.nodes(node).lxc.get(), key=lambda c: c["vmid"]):
    kind = "template" if ct.get("template") else ct["status"]
    print(f"  {ct['vmid']:>5}  {ct.get('name', ''):<12} {kind}")
PY
cat <<MSG

Next: clone a template and log in, e.g.
  set -a; . $STATE/client.env; set +a
  ansible-playbook playbooks/build.yml -e @examples/fullstack.yml   # re-running changes nothing
Stop minipve with 'bash scripts/demo.sh stop'; remove everything with '.venv/bin/minipve reset'.
MSG
