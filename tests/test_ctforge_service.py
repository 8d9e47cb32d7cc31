"""The ctforge_service action plugin: systemd units enabled and started, stopped or restarted in one call.

Runs the real plugin through ansible-playbook against a real CT (created from the appliance on the test
session's minipve), on two units of the test's own that just sleep; the postgresql and redis roles'
molecule scenarios and the chain tests run it on their services.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from playbook_helpers import REPO, api, destroy, ssh, wait_task

VMID = 7420
APPLIANCE = "local:vztmpl/debian-12-standard_12.12-1_amd64.tar.zst"
UNITS = ("ctforge-demo-a.service", "ctforge-demo-b.service")
UNIT_TEXT = "[Unit]\nDescription=ctforge_service test unit\n[Service]\nExecStart=/bin/sleep infinity\n" \
            "[Install]\nWantedBy=multi-user.target\n"

PLAY = """\
- name: Manage the test units
  hosts: ct
  gather_facts: false
  tasks:
    - name: Ensure the units are as asked
      ctforge_service: "{{ service_args }}"
      register: __service

    - name: Write the result where the test reads it
      ansible.builtin.copy:
        content: "{{ __service | to_json }}"
        dest: "{{ result_file }}"
        mode: "0644"
      delegate_to: localhost
      check_mode: false
"""


@pytest.fixture(scope="module")
def ct(minipve, tmp_path_factory) -> Iterator[dict]:
    """A running CT from the appliance, with the test's key and the test units (disabled, stopped)."""
    env = minipve.env
    px, node = api(env), env["PROXMOX_NODE"]
    keydir = tmp_path_factory.mktemp("service-key")
    key = keydir / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    try:
        wait_task(px, node, px.nodes(node).lxc.post(
            vmid=VMID, hostname="service-test", ostemplate=APPLIANCE, net0="name=eth0,bridge=vmbr0,ip=dhcp",
            **{"ssh-public-keys": key.with_suffix(".pub").read_text()}))
        wait_task(px, node, px.nodes(node).lxc(VMID).status.start.post())
        ip = wait_for_ssh(px, node)
        for unit in UNITS:
            ssh(ip, key, f"printf %s {shlex.quote(UNIT_TEXT)} > /etc/systemd/system/{unit}")
        ssh(ip, key, "systemctl daemon-reload")
        yield {"ip": ip, "key": key}
    finally:
        if any(g["vmid"] == VMID for g in px.cluster.resources.get(type="vm")):
            destroy(px, node, VMID)


def wait_for_ssh(px, node: str) -> str:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for iface in px.nodes(node).lxc(VMID).interfaces.get() or []:
            if iface.get("name") == "eth0" and iface.get("inet"):
                ip = iface["inet"].split("/")[0]
                try:
                    with socket.create_connection((ip, 22), timeout=2) as conn:
                        if conn.recv(8).startswith(b"SSH-"):
                            return ip
                except OSError:
                    pass
        time.sleep(0.2)
    raise AssertionError(f"CT {VMID} never answered over SSH")


def service(ct: dict, tmp_path: Path, check: bool = False,
            **args) -> tuple[subprocess.CompletedProcess, dict]:
    (tmp_path / "play.yml").write_text(PLAY)
    result = tmp_path / "result.json"
    result.unlink(missing_ok=True)
    (tmp_path / "hosts.yml").write_text(json.dumps({"all": {"hosts": {"ct": {
        "ansible_host": ct["ip"], "ansible_user": "root", "ansible_ssh_private_key_file": str(ct["key"])}}}}))
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_STDOUT_CALLBACK": "default"}
    cmd = [str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", str(tmp_path / "hosts.yml"),
           str(tmp_path / "play.yml"), "-e", json.dumps({"service_args": args, "result_file": str(result)}),
           *(["--check"] if check else [])]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    return proc, json.loads(result.read_text()) if result.exists() else {}


def unit_state(ct: dict, unit: str) -> tuple[str, str, str]:
    """is-enabled, is-active and the main PID, read over SSH rather than through the plugin."""
    out = ssh(ct["ip"], ct["key"], f"systemctl is-enabled {unit}; systemctl is-active {unit}; "
              f"systemctl show -P MainPID {unit}", check=False).stdout.split()
    return out[0], out[1], out[2]


@pytest.fixture
def reset(ct: dict) -> dict:
    """Both units disabled and stopped before each test."""
    ssh(ct["ip"], ct["key"], f"systemctl disable --now {' '.join(UNITS)} 2>/dev/null; true")
    return ct


def test_enables_and_starts_what_differs_and_a_rerun_changes_nothing(reset: dict, tmp_path: Path) -> None:
    ssh(reset["ip"], reset["key"], f"systemctl enable -q {UNITS[1]}")
    proc, first = service(reset, tmp_path, name=list(UNITS), enabled=True, state="started")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert first["changed"] is True
    assert first["actions"] == [f"enable {UNITS[0]}", f"start {UNITS[0]}", f"start {UNITS[1]}"]
    for unit in UNITS:
        assert unit_state(reset, unit)[:2] == ("enabled", "active")
        assert first["status"][unit] == {"enabled": "enabled", "active": "active"}

    proc, again = service(reset, tmp_path, name=list(UNITS), enabled=True, state="started")
    assert proc.returncode == 0 and again["changed"] is False and again["actions"] == []


def test_restarted_always_restarts(reset: dict, tmp_path: Path) -> None:
    service(reset, tmp_path, name=UNITS[0], state="started")
    before = unit_state(reset, UNITS[0])[2]
    proc, result = service(reset, tmp_path, name=UNITS[0], state="restarted")
    assert proc.returncode == 0 and result["changed"] is True and result["actions"] == [f"restart {UNITS[0]}"]
    after = unit_state(reset, UNITS[0])
    assert after[1] == "active" and after[2] not in (before, "0")


def test_stopped_and_disabled(reset: dict, tmp_path: Path) -> None:
    service(reset, tmp_path, name=UNITS[0], enabled=True, state="started")
    proc, result = service(reset, tmp_path, name=UNITS[0], enabled=False, state="stopped")
    assert proc.returncode == 0 and result["actions"] == [f"disable {UNITS[0]}", f"stop {UNITS[0]}"]
    assert unit_state(reset, UNITS[0])[:2] == ("disabled", "inactive")


def test_check_mode_reports_and_changes_nothing(reset: dict, tmp_path: Path) -> None:
    proc, result = service(reset, tmp_path, check=True, name=UNITS[0], enabled=True, state="started",
                           daemon_reload=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert result["changed"] is True
    assert result["actions"] == ["daemon-reload", f"enable {UNITS[0]}", f"start {UNITS[0]}"]
    assert unit_state(reset, UNITS[0])[:2] == ("disabled", "inactive")


def test_a_unit_that_does_not_exist_fails_with_systemctls_message(reset: dict, tmp_path: Path) -> None:
    units = ["ctforge-no-such.service", UNITS[0]]
    proc, _ = service(reset, tmp_path, name=units, enabled=True, state="started")
    assert proc.returncode != 0
    assert "Unable to enable service ctforge-no-such.service" in proc.stdout
    assert "does not exist" in proc.stdout
    assert unit_state(reset, UNITS[0])[:2] == ("disabled", "inactive")  # stopped at the first failure


def test_a_start_that_fails_says_why(reset: dict, tmp_path: Path) -> None:
    ssh(reset["ip"], reset["key"], "printf '[Service]\\nType=oneshot\\nExecStart=/bin/false\\n' "
        "> /etc/systemd/system/ctforge-broken.service && systemctl daemon-reload")
    proc, _ = service(reset, tmp_path, name="ctforge-broken.service", state="started")
    assert proc.returncode != 0
    assert "Unable to start service ctforge-broken.service" in proc.stdout
    assert "Job for ctforge-broken.service failed" in proc.stdout  # systemctl's own words
