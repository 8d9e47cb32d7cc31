#!/usr/bin/env bash
# Runs every ctforge test: the lint gates, the catalog, minipve on real LXC containers, each
# role's molecule scenario and the canonical template chain. Does its own set-up first.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh -m "not slow"`).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
export ANSIBLE_CONFIG=$ROOT/ansible.cfg
export PATH=$ROOT/.venv/bin:$PATH
exec pytest "$@"
