"""The workspace playbooks on minipve, over the session's canonical chain (base -> nodejs -> fullstack):
a workspace from base that installs python only, one from fullstack that installs nothing (taken up after
an interrupted run, keeping no build key), re-runs that change nothing, stop and start, destroy, and bad
input refused before Proxmox is touched. VMIDs 7600-7649; every CT made here is destroyed at the end."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from playbook_helpers import api, destroy, run_playbook, wait_task

pytestmark = [pytest.mark.host, pytest.mark.slow]

FROM_BASE, FROM_FULLSTACK, UNTRUSTED, REFUSED = 7600, 7601, 7602, 7610
OURS = range(7600, 7650)
# set_stats shown at the end of the run, as one JSON line
STATS_ENV = {"ANSIBLE_SHOW_CUSTOM_STATS": "1", "ANSIBLE_CALLBACK_RESULT_FORMAT": "json"}
VERIFY = "Ensure every one of the workspace's stacks passes its verify"


def stats(run) -> dict:
    found = re.findall(r"^\s*RUN: (\{.*\})\s*$", run.output, flags=re.M)
    assert found, run.output[-3000:]
    return json.loads(found[-1])


def login(ip: str, key, user: str, command: str = "id -un") -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            "ssh",
            "-i",
            str(key),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=10",
            "-o",
            "IdentitiesOnly=yes",
            f"{user}@{ip}",
            command,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def ws(canonical_chain, job_service, tmp_path_factory):
    env = {**job_service.pve.env, **STATS_ENV}
    node = env["PROXMOX_NODE"]
    px = api(env)
    keys = tmp_path_factory.mktemp("workspace-keys")
    for name in ("owner", "stranger"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{name}@test", "-f", str(keys / name)],
            check=True,
        )
    build_key = job_service.state_dir / "build_key"
    templates = {name: canonical_chain["templates"][name]["vmid"] for name in ("base", "fullstack")}
    owner_pub = (keys / "owner.pub").read_text().strip()

    def request(vmid: int, name: str, template: str, stacks: list[str], **extra) -> dict:
        return {
            "ctforge_workspace_name": name,
            "ctforge_vmid": vmid,
            "ctforge_template_vmid": templates[template],
            "ctforge_stacks": stacks,
            "ctforge_ssh_public_keys": [owner_pub],
            "ctforge_ssh_private_key_file": str(build_key),
            "ctforge_node": node,
            **extra,
        }

    def guests() -> set[int]:
        return {int(g["vmid"]) for g in px.cluster.resources.get(type="vm")}

    state = {
        "env": env,
        "node": node,
        "px": px,
        "keys": keys,
        "build_key": build_key,
        "request": request,
        "guests": guests,
        "templates": templates,
    }
    try:
        yield state
    finally:
        for vmid in sorted(guests() & set(OURS)):
            destroy(px, node, vmid)


@pytest.fixture(scope="module")
def from_base(ws):
    """{python} from base, then the same request again."""
    request = ws["request"](FROM_BASE, "ws-python", "base", ["python"])
    first = run_playbook(ws["env"], "workspace.yml", request)
    assert first.rc == 0, first.output[-4000:]
    again = run_playbook(ws["env"], "workspace.yml", request)
    return {"first": first, "again": again, "result": stats(first)}


def test_a_workspace_from_base_installs_python_only_and_verifies_every_stack(ws, from_base):
    result = from_base["result"]
    assert result["vmid"] == FROM_BASE and result["node"] == ws["node"]
    assert (
        result["template_stacks"] == []
        and result["installed"] == ["python"]
        and result["stacks"] == ["python"]
    )
    assert result["build_key"] and result["build_key"].startswith("SHA256:")
    out = from_base["first"].output
    assert "python : Ensure Python 3, pip, venv and pipx are installed" in out
    verify = out[out.index(f"TASK [{VERIFY}]") :]
    for role in ("base", "python"):
        assert f"TASK [{role} : Check that" in verify, role
    assert "ctforge-workspace" in ws["px"].nodes(ws["node"]).lxc(FROM_BASE).config.get()["tags"].split(";")


def test_the_owner_logs_in_as_the_dev_user_and_root_only_with_the_build_key(ws, from_base):
    ip, owner, build_key = from_base["result"]["ip"], ws["keys"] / "owner", ws["build_key"]
    as_dev = login(ip, owner, "kobozo", "id -un; stat -c '%a %U' ~/.ssh ~/.ssh/authorized_keys")
    assert as_dev.returncode == 0, as_dev.stderr
    assert as_dev.stdout.split("\n")[:3] == ["kobozo", "700 kobozo", "600 kobozo"], as_dev.stdout
    as_root = login(ip, owner, "root")
    assert as_root.returncode == 255 and "Permission denied" in as_root.stderr, as_root
    assert login(ip, build_key, "root").stdout.strip() == "root"  # kept: ctforge_keep_build_key true
    keys = login(ip, build_key, "root", "cat /home/kobozo/.ssh/authorized_keys").stdout
    assert keys == (ws["keys"] / "owner.pub").read_text()  # exactly the owner's


def test_running_it_again_changes_nothing(from_base):
    again = from_base["again"]
    assert again.rc == 0, again.output[-4000:]
    print("changed on the second run:", again.changed)
    assert set(again.changed.values()) == {0}, again.changed
    assert stats(again) == from_base["result"]


def test_a_covered_workspace_from_fullstack_is_taken_up_after_an_interrupted_run(ws, job_service):
    """The first run dies when the clone is made (start refused); the second takes the CT up, installs
    nothing and, asked to keep no build key, removes it last."""
    stacks = ["nodejs", "claude_cli", "postgresql", "redis"]
    request = ws["request"](FROM_FULLSTACK, "ws-full", "fullstack", stacks, ctforge_keep_build_key=False)
    job_service.pve.faults(endpoints={"POST /nodes/{node}/lxc/{vmid}/status/start": "run interrupted"})
    try:
        interrupted = run_playbook(ws["env"], "workspace.yml", request)
    finally:
        job_service.pve.faults()
    assert interrupted.rc != 0 and "run interrupted" in interrupted.output
    assert FROM_FULLSTACK in ws["guests"]()
    run = run_playbook(ws["env"], "workspace.yml", request)
    assert run.rc == 0, run.output[-4000:]
    assert re.search(
        r"TASK \[Ensure the workspace CT exists as a clone of its template\] \**\nskipping", run.output
    )
    assert "packages : " not in run.output and "python : " not in run.output  # nothing installed
    result = stats(run)
    assert result["installed"] == [] and result["build_key"] is None
    assert set(result["template_stacks"]) == set(stacks) and set(result["stacks"]) == set(stacks)
    verify = run.output[run.output.index(f"TASK [{VERIFY}]") :]
    for role in ("base", "nodejs", "claude_cli", "postgresql", "redis"):
        assert f"TASK [{role} : " in verify, role  # every stack's verify ran
    ip = result["ip"]
    assert login(ip, ws["keys"] / "owner", "kobozo").stdout.strip() == "kobozo"
    refused = login(ip, ws["build_key"], "root")
    assert refused.returncode == 255 and "Permission denied" in refused.stderr, refused


def test_a_template_that_does_not_trust_the_build_key_is_named(ws):
    stranger = ws["keys"] / "stranger"
    request = ws["request"](UNTRUSTED, "ws-untrusted", "base", [], ctforge_ssh_private_key_file=str(stranger))
    run = run_playbook(ws["env"], "workspace.yml", request)
    assert run.rc != 0
    assert f"its template {ws['templates']['base']} does not trust it" in run.output, run.output[-3000:]
    assert "cannot be a workspace's source" in run.output


def test_stop_and_start_through_workspace_power(ws, from_base):
    px, node = ws["px"], ws["node"]
    stop = run_playbook(
        ws["env"], "workspace_power.yml", {"ctforge_vmid": FROM_BASE, "ctforge_state": "stopped"}
    )
    assert stop.rc == 0, stop.output[-3000:]
    assert stats(stop) == {"vmid": FROM_BASE, "node": node, "status": "stopped", "ip": None}
    assert px.nodes(node).lxc(FROM_BASE).status.current.get()["status"] == "stopped"
    again = run_playbook(
        ws["env"], "workspace_power.yml", {"ctforge_vmid": FROM_BASE, "ctforge_state": "stopped"}
    )
    assert again.rc == 0 and set(again.changed.values()) == {0}, again.output[-3000:]
    start = run_playbook(
        ws["env"], "workspace_power.yml", {"ctforge_vmid": FROM_BASE, "ctforge_state": "started"}
    )
    assert start.rc == 0, start.output[-3000:]
    result = stats(start)
    assert result["status"] == "running" and result["ip"]
    assert login(result["ip"], ws["keys"] / "owner", "kobozo").stdout.strip() == "kobozo"


def test_workspace_power_refuses_a_template(ws):
    run = run_playbook(
        ws["env"],
        "workspace_power.yml",
        {"ctforge_vmid": ws["templates"]["base"], "ctforge_state": "started"},
    )
    assert run.rc != 0 and "is a template" in run.output


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ctforge_template_vmid": FROM_BASE}, f"CT {FROM_BASE} ('ws-python') is not a template"),
        ({"ctforge_template_vmid": 7649}, "Template 7649 does not exist"),
        ({"ctforge_ssh_public_keys": ["ssh-ed25519 AAAA-not-a-key"]}, "ctforge_ssh_public_keys"),
        ({"ctforge_stacks": ["no_such_stack"]}, "ctforge_stacks"),
        ({"ctforge_vmid": FROM_BASE}, f"VMID {FROM_BASE} is taken by CT 'ws-python'"),
        ({"ctforge_storage": "nosuch"}, "Storage 'nosuch' does not exist on node minipve (it has local"),
        ({"ctforge_ssh_private_key_file": "/nonexistent/key"}, "The build key /nonexistent/key (or its .pub) "
                                                               "is missing"),
        ({"ctforge_ssh_private_key_file": "MANGLED"}, ".pub is not an OpenSSH public key line"),
    ],
)
def test_bad_input_fails_before_touching_proxmox(ws, from_base, change, message, tmp_path):
    if change.get("ctforge_ssh_private_key_file") == "MANGLED":  # a key pair whose public half is damaged
        (tmp_path / "key").write_text("not read: the public half is refused first\n")
        (tmp_path / "key.pub").write_text("ssh-ed25519 AAAA*not*base64* ctforge-build\n")
        change = {"ctforge_ssh_private_key_file": str(tmp_path / "key")}
    before = ws["guests"]()
    request = {**ws["request"](REFUSED, "ws-refused", "base", []), **change}
    run = run_playbook(ws["env"], "workspace.yml", request)
    assert run.rc != 0
    assert message in run.output, run.output[-3000:]
    assert "TASK [Ensure the workspace CT exists as a clone of its template]" not in run.output
    assert ws["guests"]() == before


def test_destroy_removes_a_running_workspace(ws, from_base):
    px, node = ws["px"], ws["node"]
    if px.nodes(node).lxc(FROM_BASE).status.current.get()["status"] != "running":
        wait_task(px, node, px.nodes(node).lxc(FROM_BASE).status.start.post())
    for vmid in (FROM_BASE, FROM_FULLSTACK, UNTRUSTED):
        if vmid in ws["guests"]():
            run = run_playbook(ws["env"], "destroy.yml", {"ctforge_vmid": vmid})
            assert run.rc == 0, run.output[-3000:]
    assert not ws["guests"]() & {FROM_BASE, FROM_FULLSTACK, UNTRUSTED}
