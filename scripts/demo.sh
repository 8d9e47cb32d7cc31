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
  # serve refuses a state dir another process holds (it names the PID), and writes client.env anew
  # once it answers: wait for one newer than any left behind.
  touch "$STATE.serve.start" 2>/dev/null || { mkdir -p "$(dirname "$STATE")"; touch "$STATE.serve.start"; }
  setsid minipve serve --state-dir "$STATE" >"$LOG" 2>&1 < /dev/null &
  echo $! > "$PIDFILE"
  for _ in $(seq 1 900); do
    [ "$STATE/client.env" -nt "$STATE.serve.start" ] && break
    if ! serving; then echo "minipve did not start; its log says:" >&2; tail -n 20 "$LOG" >&2; exit 1; fi
    sleep 1
  done
  [ "$STATE/client.env" -nt "$STATE.serve.start" ] || { echo "minipve did not become ready in 15 minutes: see $LOG" >&2; exit 1; }
fi
set -a; . "$STATE/client.env"; set +a

# One API reader for the loop and the listing: `chain state FILE` prints ready when the example's VMID
# holds a template already, new otherwise; `chain list` lists the CTs.
chain() {
  python - "$@" <<'PY'
import os
import sys

import yaml
from proxmoxer import ProxmoxAPI

api = ProxmoxAPI(os.environ["PROXMOX_HOST"], port=int(os.environ["PROXMOX_PORT"]),
                 user=os.environ["PROXMOX_USER"], token_name=os.environ["PROXMOX_TOKEN_ID"],
                 token_value=os.environ["PROXMOX_TOKEN_SECRET"], verify_ssl=False)
cts = {int(ct["vmid"]): ct for ct in api.nodes(os.environ["PROXMOX_NODE"]).lxc.get()}
if sys.argv[1] == "state":
    vmid = int(yaml.safe_load(open(sys.argv[2]))["ctforge_vmid"])
    print("ready" if cts.get(vmid, {}).get("template") else "new")
else:
    for vmid, ct in sorted(cts.items()):
        print(f"  {vmid:>5}  {ct.get('name', ''):<12} {'template' if ct.get('template') else ct['status']}")
PY
}

# A template built by an earlier run is not built again (provision refuses a VMID that holds a
# template): finalize re-runs its smoke test instead, which changes nothing.
for template in "${CHAIN[@]}"; do
  start=$SECONDS
  if [ "$(chain state "examples/$template.yml")" = ready ]; then
    log "Template '$template' is built already: re-checking it (playbooks/finalize.yml changes nothing)"
    ansible-playbook playbooks/finalize.yml -e "@examples/$template.yml"
  else
    log "Building template '$template' (examples/$template.yml)"
    ansible-playbook playbooks/build.yml -e "@examples/$template.yml"
  fi
  log "Template '$template' is ready ($((SECONDS - start)) s)"
done

log "The chain on minipve (https://$PROXMOX_HOST:$PROXMOX_PORT/api2/json):"
chain list
cat <<MSG

Next, e.g.:
  set -a; . $STATE/client.env; set +a
  ansible-playbook playbooks/finalize.yml -e @examples/fullstack.yml   # a ready template: re-checked, unchanged
  bash scripts/demo.sh                                                 # again: re-checks the chain
Stop minipve with 'bash scripts/demo.sh stop'; remove everything with '.venv/bin/minipve reset'.
MSG
