"""minipve API tests use the session's `minipve` fixture (tests/conftest.py) and these helpers."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from pve_helpers import client


@pytest.fixture(scope="session")
def pve_env(minipve) -> dict[str, str]:
    return dict(minipve.env)


@pytest.fixture(scope="session")
def api(pve_env):
    return client(pve_env)


@pytest.fixture(scope="session")
def node(pve_env) -> str:
    return pve_env["PROXMOX_NODE"]


@pytest.fixture(scope="session")
def ssh_keypair(tmp_path_factory: pytest.TempPathFactory) -> Path:
    key = tmp_path_factory.mktemp("pve-ssh") / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key


@pytest.fixture
def faults(minipve):
    """The fault switch, cleared after the test whatever happened."""
    yield minipve.faults
    minipve.faults()
