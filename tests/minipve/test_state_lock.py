"""A state dir serves one minipve at a time: a second `serve` on it, as a person might start one by
hand beside the demo's, refuses at once naming the PID that holds it and leaves the first alone;
`reset` refuses too while it runs."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
import time

import pytest
from pve_helpers import create_ct, destroy_ct, task_ok, wait_ipv4

from minipve.host.commands import pid_alive
from minipve.statelock import StateDirInUse, hold

pytestmark = pytest.mark.host


def minipve_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "minipve", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_a_second_serve_and_reset_on_a_state_dir_in_use_refuse_and_touch_nothing(minipve, api, node) -> None:
    first, state = minipve.proc.pid, minipve.state_dir
    dns_pid = pid_alive(state / "run" / "dnsmasq.pid")
    acng_pid = pid_alive(state / "run" / "apt-cacher-ng.pid")
    client_env = (state / "client.env").read_text()
    assert dns_pid and acng_pid
    settings = ["--state-dir", str(state), "--port", str(minipve.port)]
    settings += ["--subnet", minipve.subnet, "--bridge", minipve.bridge]

    started = time.monotonic()
    second = minipve_cli("serve", *settings)
    elapsed = time.monotonic() - started
    assert second.returncode == 1, second.stderr
    assert f"state dir {state} is in use by minipve serve (PID {first})" in second.stderr
    assert elapsed < 10, f"refused only after {elapsed:.1f} s"  # at once: no host check, no bind
    reset = minipve_cli("reset", "--state-dir", str(state))
    assert reset.returncode == 1, reset.stderr
    assert f"is in use by minipve serve (PID {first}): stop that process first" in reset.stderr

    # the first instance still serves, with its daemons and its client.env
    assert minipve.proc.poll() is None
    assert minipve.request("GET", "/api2/json/version")[0] == 200
    assert pid_alive(state / "run" / "dnsmasq.pid") == dns_pid
    assert pid_alive(state / "run" / "apt-cacher-ng.pid") == acng_pid
    assert (state / "client.env").read_text() == client_env
    # and a new CT still gets its address from that dnsmasq
    vmid = int(api.cluster.nextid.get())
    try:
        create_ct(api, node, vmid)
        task_ok(api, node, api.nodes(node).lxc(vmid).status.start.post())
        assert ipaddress.IPv4Address(wait_ipv4(api, node, vmid)) in ipaddress.IPv4Network(minipve.subnet)
    finally:
        destroy_ct(api, node, vmid)


HOLDER = """
import sys, time
from pathlib import Path
from minipve.statelock import hold
hold(Path(sys.argv[1]), "serve")
print("held", flush=True)
time.sleep(120)
"""


def test_the_lock_goes_with_its_process(tmp_path) -> None:
    """Held by a process that is killed, the lock is free again: a crash leaves nothing stale."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(StateDirInUse) as refused:
            hold(tmp_path, "serve")
        assert (refused.value.pid, refused.value.command) == (holder.pid, "serve")
    finally:
        holder.kill()
        holder.wait()
    fd = hold(tmp_path, "reset")
    try:
        assert (tmp_path / "minipve.lock").read_text() == f"{os.getpid()} reset\n"
    finally:
        os.close(fd)
