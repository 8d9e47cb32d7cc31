#!/usr/bin/env bash
# Idempotent set-up of a Debian 12 host as root: host packages, the virtualenv, the Ansible
# collections. Both README commands call it; a second run only checks and returns.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${CTFORGE_CACHE:-/var/cache/ctforge}
VENV=$ROOT/.venv
# postgresql: the binaries of the private servers that tests and benchmarks start (ctforge.devdb);
# the guard below keeps Debian's own cluster from starting at install. chromium, chromium-driver
# and fonts-liberation: the headless browser of the web page's test (tests/test_web_browser.py).
HOST_PACKAGES=(
  lxc debootstrap dnsmasq-base nftables apt-cacher-ng eatmydata zstd iproute2 rsync
  openssh-client python3 python3-venv ca-certificates git postgresql
  chromium chromium-driver fonts-liberation
)

log() { printf '\033[1m==> %s\033[0m\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
  echo "ctforge set-up must run as root (it installs host packages and runs LXC containers)." >&2
  exit 1
fi
mkdir -p "$CACHE"

missing=()
for p in "${HOST_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "Installing host packages: ${missing[*]}"
  # No daemon of a package may start on the host: minipve starts its own, bound to its bridge.
  policy=/usr/sbin/policy-rc.d
  had_policy=0; [ -e "$policy" ] && had_policy=1
  [ $had_policy = 1 ] || { printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod 755 "$policy"; }
  DEBIAN_FRONTEND=noninteractive apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  [ $had_policy = 1 ] || rm -f "$policy"
fi

stamp=$VENV/.ctforge-installed
want=$(cat "$ROOT/pyproject.toml" "$ROOT/requirements/constraints.txt" | sha256sum | cut -c1-16)
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "Creating the virtualenv in $VENV"
  python3 -m venv "$VENV"
  PIP_CACHE_DIR=$CACHE/pip "$VENV/bin/pip" install -q --disable-pip-version-check \
    -c "$ROOT/requirements/constraints.txt" -e "$ROOT[dev]"
  echo "$want" > "$stamp"
fi

"$VENV/bin/python" "$ROOT/scripts/install-collections.py" --cache "$CACHE/wheels" --dest "$ROOT/.collections"
