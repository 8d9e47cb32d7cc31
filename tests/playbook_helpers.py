"""Run the lifecycle playbooks against a minipve instance and reach its CTs over SSH."""

from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


@dataclass
class PlaybookRun:
    rc: int
    output: str

    @property
    def changed(self) -> dict[str, int]:
        return {m.group(1): int(m.group(3)) for m in RECAP.finditer(self.output)}


def run_playbook(pve_env: dict, playbook: str, extra: dict, *, env_drop: tuple[str, ...] = (),
                 extra_files: tuple[Path, ...] = ()) -> PlaybookRun:
    """ansible-playbook playbooks/<playbook> with the minipve client settings in the environment."""
    import json

    env = {**os.environ, **pve_env, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_FORCE_COLOR": "0"}
    for key in env_drop:
        env.pop(key, None)
    cmd = [str(REPO / ".venv" / "bin" / "ansible-playbook"), str(REPO / "playbooks" / playbook)]
    for path in extra_files:
        cmd += ["-e", f"@{path}"]
    cmd += ["-e", json.dumps(extra)]
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=3600)
    return PlaybookRun(proc.returncode, proc.stdout + proc.stderr)


def local_play(tmp_path: Path, play: str, extra: dict,
               *options: str) -> tuple[subprocess.CompletedProcess, dict]:
    """ansible-playbook of `play` on localhost with the local connection, for the action plugins' tests.

    The play writes what it registered to `result_file`, a var set here; it comes back parsed, or {} when the
    play stopped before writing it.
    """
    import json
    import sys

    (tmp_path / "play.yml").write_text(play)
    result = tmp_path / "result.json"
    result.unlink(missing_ok=True)
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_STDOUT_CALLBACK": "default"}
    cmd = [str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", "localhost,", str(tmp_path / "play.yml"),
           "-e", json.dumps({"result_file": str(result), "ansible_python_interpreter": sys.executable,
                             **extra}), *options]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    return proc, json.loads(result.read_text()) if result.exists() else {}


def ssh(ip: str, key: Path, command: str, *, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["ssh", "-i", str(key), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
         "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", f"root@{ip}", command],
        capture_output=True, text=True, timeout=300, check=check)


def api(pve_env: dict):
    from proxmoxer import ProxmoxAPI

    return ProxmoxAPI(
        pve_env["PROXMOX_HOST"], port=int(pve_env["PROXMOX_PORT"]), user=pve_env["PROXMOX_USER"],
        token_name=pve_env["PROXMOX_TOKEN_ID"], token_value=pve_env["PROXMOX_TOKEN_SECRET"], verify_ssl=False,
    )


def wait_task(px, node: str, upid: str) -> None:
    while (status := px.nodes(node).tasks(upid).status.get())["status"] != "stopped":
        time.sleep(0.2)
    assert status["exitstatus"] == "OK", status


def clone_and_start(px, node: str, template: int, newid: int, phases: dict[str, float] | None = None) -> str:
    """A linked clone of a template, started; returns its IPv4 once SSH answers.

    `phases`, when given, gets the seconds from the call to each step's end: clone, start, ipv4, ssh.
    """
    import socket

    began = time.monotonic()
    marks = phases if phases is not None else {}
    wait_task(px, node, px.nodes(node).lxc(template).clone.post(newid=newid, hostname=f"probe{newid}"))
    marks["clone"] = time.monotonic() - began
    wait_task(px, node, px.nodes(node).lxc(newid).status.start.post())
    marks["start"] = time.monotonic() - began
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for iface in px.nodes(node).lxc(newid).interfaces.get() or []:
            inet = iface.get("inet") or ""
            if iface.get("name") != "lo" and inet and not inet.startswith("127."):
                ip = inet.split("/")[0]
                marks.setdefault("ipv4", time.monotonic() - began)
                try:
                    with socket.create_connection((ip, 22), timeout=2) as conn:
                        if conn.recv(8).startswith(b"SSH-"):
                            marks["ssh"] = time.monotonic() - began
                            return ip
                except OSError:
                    pass
        time.sleep(0.1)
    raise AssertionError(f"clone {newid} never answered over SSH")


def destroy(px, node: str, vmid: int) -> None:
    if px.nodes(node).lxc(vmid).status.current.get()["status"] == "running":
        wait_task(px, node, px.nodes(node).lxc(vmid).status.stop.post())
    wait_task(px, node, px.nodes(node).lxc(vmid).delete(purge=1))
