"""Fixtures shared by every suite: one minipve instance for the whole test session.

It gets its own state dir, port, subnet and bridge, so it runs beside a developer's instance
(127.0.0.1:8006, 10.213.0.0/24, mpvebr0) without touching it, and is reset on exit.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TEST_PORT = int(os.environ.get("CTFORGE_TEST_PVE_PORT", "18006"))
TEST_SUBNET = os.environ.get("CTFORGE_TEST_PVE_SUBNET", "10.231.0.0/24")
TEST_BRIDGE = os.environ.get("CTFORGE_TEST_PVE_BRIDGE", "mpvetest0")


def host_can_run_containers() -> str | None:
    """Why real containers cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "real containers need root"
    for tool in ("lxc-start", "debootstrap", "nft", "dnsmasq"):
        if shutil.which(tool) is None:
            return f"{tool} is missing: run `bash scripts/setup.sh`"
    return None


@pytest.fixture(scope="session")
def minipve() -> Iterator[object]:
    """A running minipve with real LXC containers; `.env` holds the PROXMOX_* client settings."""
    reason = host_can_run_containers()
    if reason:
        pytest.skip(reason)
    from minipve.launcher import MiniPVE

    state_dir = Path(tempfile.mkdtemp(prefix="ctforge-test-minipve-"))
    # `isos` is the storage a real cluster's `local` usually is: appliances and ISOs, no CT volumes.
    with MiniPVE(state_dir=state_dir, port=TEST_PORT, subnet=TEST_SUBNET, bridge=TEST_BRIDGE,
                 storages={"isos": "iso,vztmpl"}) as pve:
        yield pve
