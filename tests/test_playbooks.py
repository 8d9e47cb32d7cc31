"""The lifecycle playbooks on minipve: the canonical chain base → nodejs → fullstack, a leak canary,
idempotence, interrupted finalizes taken up again, a template that keeps no key, bad input and destroy.
One chain is built per module and shared by every test."""

from __future__ import annotations

import subprocess

import pytest

from playbook_helpers import REPO, api, clone_and_start, destroy, run_playbook, ssh

pytestmark = [pytest.mark.host, pytest.mark.slow]

BASE, NODEJS, FULLSTACK, PROBE = 7150, 7200, 7250, 7299
KEYLESS = 7280  # a leaf of base built with ctforge_keep_build_key: false
EXAMPLES = REPO / "examples"
EXTRA_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGNhbmFyeWNhbmFyeWNhbmFyeWNhbmFyeWNhbmFyeWNh canary@leak"
CANARY = f"""set -e
for home in /root /home/kobozo; do
  [ -d "$home" ] || continue
  echo '{{"oauthAccount": "canary"}}' > "$home/.claude.json"
  printf '//registry.npmjs.org/:_authToken=npm_canary_token\\n' >> "$home/.npmrc"
  echo 'https://canary:secret@example.com' > "$home/.git-credentials"
  echo 'export CANARY_SECRET=1' > "$home/.bash_history"
  mkdir -p "$home/.ssh" && echo '{EXTRA_KEY}' >> "$home/.ssh/authorized_keys"
done
"""
LEAKS = ".claude.json .git-credentials .bash_history"


@pytest.fixture(scope="module")
def chain(minipve, tmp_path_factory):
    """Builds the chain once; records every step's outcome for the tests to assert on."""
    env = minipve.env
    node = env["PROXMOX_NODE"]
    keydir = tmp_path_factory.mktemp("build-key")
    key = keydir / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    common = {"ctforge_ssh_private_key_file": str(key), "ctforge_node": node, "ctforge_smoke_vmid": 7298}
    px = api(env)
    steps: dict[str, object] = {"env": env, "node": node, "key": key, "px": px, "common": common}
    try:
        steps["base"] = run_playbook(env, "build.yml", {**common, "ctforge_vmid": BASE},
                                     extra_files=(EXAMPLES / "base.yml",))
        assert steps["base"].rc == 0, steps["base"].output[-4000:]
        nodejs = {**common, "ctforge_vmid": NODEJS, "ctforge_parent_vmid": BASE}
        # A real cluster lists a new CT's name only after its next stats push: the module's KeyError
        # on 'name' must not show. The clean stop fails, as when a run dies after prepare.
        minipve.faults(name_late=60, endpoints={"POST /nodes/{node}/lxc/{vmid}/status/shutdown":
                                                "run interrupted after prepare"})
        try:
            steps["nodejs_interrupted"] = run_playbook(env, "build.yml", nodejs,
                                                       extra_files=(EXAMPLES / "nodejs.yml",))
        finally:
            minipve.faults()
        steps["nodejs_tags_after_interruption"] = px.nodes(node).lxc(NODEJS).config.get().get("tags", "")
        steps["nodejs"] = run_playbook(env, "build.yml", nodejs, extra_files=(EXAMPLES / "nodejs.yml",))
        assert steps["nodejs"].rc == 0, steps["nodejs"].output[-4000:]
        steps["keyless"] = run_playbook(env, "build.yml", {
            **common, "ctforge_vmid": KEYLESS, "ctforge_parent_vmid": BASE,
            "ctforge_template_name": "keyless", "ctforge_stacks": [], "ctforge_keep_build_key": False})
        fullstack = {**common, "ctforge_vmid": FULLSTACK, "ctforge_parent_vmid": NODEJS}
        steps["fullstack_vars"] = fullstack
        steps["provision"] = run_playbook(env, "provision.yml", fullstack,
                                          extra_files=(EXAMPLES / "fullstack.yml",))
        assert steps["provision"].rc == 0, steps["provision"].output[-4000:]
        steps["provision_again"] = run_playbook(env, "provision.yml", fullstack,
                                                extra_files=(EXAMPLES / "fullstack.yml",))
        steps["staging_tags"] = px.nodes(node).lxc(FULLSTACK).config.get().get("tags", "")
        interfaces = px.nodes(node).lxc(FULLSTACK).interfaces.get()
        staging_ip = next(i["inet"].split("/")[0] for i in interfaces
                          if i.get("name") != "lo" and i.get("inet"))
        ssh(staging_ip, key, CANARY)
        steps["staging_hostkey"] = ssh(staging_ip, key, "cat /etc/ssh/ssh_host_ed25519_key.pub").stdout
        steps["staging_rsa"] = ssh(staging_ip, key, "cat /etc/ssh/ssh_host_rsa_key.pub").stdout
        steps["parent_not_template"] = run_playbook(
            env, "provision.yml", {**common, "ctforge_vmid": 7260, "ctforge_parent_vmid": FULLSTACK,
                                   "ctforge_template_name": "child", "ctforge_stacks": []})
        # Prepare runs, then the run dies before the CT is marked prepared: it keeps running with its
        # host keys gone, and sshd answers nobody.
        minipve.faults(endpoints={"PUT /nodes/{node}/lxc/{vmid}/config": "run interrupted after prepare"})
        try:
            steps["finalize_interrupted"] = run_playbook(env, "finalize.yml",
                                                         {**common, "ctforge_vmid": FULLSTACK})
        finally:
            minipve.faults()
        steps["finalize"] = run_playbook(env, "finalize.yml", {**common, "ctforge_vmid": FULLSTACK})
        assert steps["finalize"].rc == 0, steps["finalize"].output[-4000:]
        steps["finalize_again"] = run_playbook(env, "finalize.yml", {**common, "ctforge_vmid": FULLSTACK})
        ip = clone_and_start(px, node, FULLSTACK, PROBE)
        steps["probe_tags"] = px.nodes(node).lxc(PROBE).config.get().get("tags", "")
        steps["template_tags"] = {vmid: px.nodes(node).lxc(vmid).config.get().get("tags", "")
                                  for vmid in (BASE, NODEJS, FULLSTACK)}
        probe = {}
        for name, command in {
            "node": "node --version",
            "claude": "su - kobozo -c 'claude --version'",
            "psql": "su - postgres -c \"psql -tAc 'select 1'\"",
            "redis": "redis-cli ping",
            "facts": "ls /etc/ansible/facts.d/",
            "leaks": f"for h in /root /home/kobozo; do for f in {LEAKS}; do [ -e $h/$f ] && echo $h/$f; "
                     "done; "
                     "grep -l _authToken $h/.npmrc 2>/dev/null; grep -l canary $h/.ssh/authorized_keys "
                     "2>/dev/null; done; true",
            "hostkey": "cat /etc/ssh/ssh_host_ed25519_key.pub",
            # RSA comes after sshd, from the host key unit's transient -rsa unit
            "rsa": "for _ in $(seq 150); do systemctl -q is-active ctforge-ssh-hostkeys-rsa || break; "
                   "sleep 0.2; done; cat /etc/ssh/ssh_host_rsa_key.pub",
        }.items():
            probe[name] = ssh(ip, key, command, check=False)
        probe["rsa_offered"] = subprocess.run(["ssh-keyscan", "-t", "rsa", ip], capture_output=True,
                                              text=True, timeout=60)
        steps["probe"] = probe
        destroy(px, node, PROBE)
        if steps["keyless"].rc == 0:
            ip = clone_and_start(px, node, KEYLESS, PROBE)
            steps["keyless_probe"] = {
                "login": ssh(ip, key, "true", check=False),
                "authorized": subprocess.run(
                    ["lxc-attach", "-P", str(minipve.state_dir / "lxc"), "-n", str(PROBE), "--",
                     "sh", "-c", "cat /root/.ssh/authorized_keys 2>/dev/null; true"],
                    capture_output=True, text=True, timeout=60),
            }
            destroy(px, node, PROBE)
        yield steps
    finally:
        for vmid in (PROBE, 7298, 7260, KEYLESS, FULLSTACK, NODEJS, BASE):
            if any(g["vmid"] == vmid for g in px.cluster.resources.get(type="vm")):
                destroy(px, node, vmid)


def test_chain_builds_each_template_with_build_yml(chain):
    px, node = chain["px"], chain["node"]
    for vmid in (BASE, NODEJS, FULLSTACK):
        assert int(px.nodes(node).lxc(vmid).config.get().get("template", 0)) == 1


def test_fullstack_clone_runs_every_stack(chain):
    probe = chain["probe"]
    assert probe["node"].returncode == 0 and probe["node"].stdout.startswith("v"), probe["node"]
    assert probe["claude"].returncode == 0 and "Claude Code" in probe["claude"].stdout, probe["claude"]
    assert probe["psql"].stdout.strip() == "1", probe["psql"]
    assert probe["redis"].stdout.strip() == "PONG", probe["redis"]


def test_fullstack_clone_records_all_four_effective_stacks(chain):
    facts = set(chain["probe"]["facts"].stdout.split())
    assert {f"ctforge_{s}.fact" for s in ("nodejs", "claude_cli", "postgresql", "redis")} <= facts


def test_leak_canary_is_gone_from_the_clone(chain):
    assert chain["probe"]["leaks"].stdout.strip() == ""


def test_clone_has_new_host_keys(chain):
    assert chain["probe"]["hostkey"].stdout.strip()
    assert chain["probe"]["hostkey"].stdout != chain["staging_hostkey"]


def test_clone_makes_its_rsa_key_after_sshd_starts_and_sshd_offers_it(chain):
    rsa = chain["probe"]["rsa"].stdout.split()
    assert rsa and rsa[0] == "ssh-rsa", chain["probe"]["rsa"]
    assert rsa[1] not in chain["staging_rsa"]
    assert rsa[1] in chain["probe"]["rsa_offered"].stdout  # without a reload: sshd reads keys per connection


def test_provision_again_changes_nothing(chain):
    run = chain["provision_again"]
    assert run.rc == 0, run.output[-4000:]
    assert run.changed and set(run.changed.values()) == {0}, run.changed


def test_finalize_on_a_template_changes_nothing(chain):
    run = chain["finalize_again"]
    assert run.rc == 0, run.output[-4000:]
    assert set(run.changed.values()) == {0}, run.changed


def _guests(chain) -> set[int]:
    return {g["vmid"] for g in chain["px"].cluster.resources.get(type="vm")}


def test_an_interrupted_build_is_taken_up_by_running_it_again(chain):
    """Stopped after prepare and the mark: build.yml again converts the CT without preparing it again."""
    interrupted = chain["nodejs_interrupted"]
    assert interrupted.rc != 0 and "run interrupted after prepare" in interrupted.output
    assert "KeyError" not in interrupted.output
    assert "ctforge-prepared" in chain["nodejs_tags_after_interruption"]
    again = chain["nodejs"].output
    assert "was prepared for templating by a finalize that did not finish" in again
    assert "Ensure each installed stack has shed" not in again  # not prepared twice
    assert "ctforge-prepared" not in chain["px"].nodes(chain["node"]).lxc(NODEJS).config.get().get("tags", "")


def test_only_a_staging_ct_carries_the_staging_tag(chain):
    """provision tags the staging CT for inventories/ctforge_staging.proxmox.yml; finalize takes the tag off
    the template (with the prepared mark of an interrupted run), so a clone of it does not inherit it."""
    assert "ctforge-staging" in chain["staging_tags"].split(";")
    for vmid, tags in chain["template_tags"].items():
        assert "ctforge-staging" not in tags.split(";"), (vmid, tags)
        assert "ctforge-prepared" not in tags.split(";"), (vmid, tags)
    assert "ctforge-staging" not in chain["probe_tags"].split(";")


def test_a_ct_left_running_without_host_keys_is_restarted_and_finalized(chain):
    """Stopped after prepare, before the mark: sshd answers nobody until a restart makes new host keys."""
    interrupted = chain["finalize_interrupted"]
    assert interrupted.rc != 0 and "run interrupted after prepare" in interrupted.output
    restart = "Restart the staging CT, so that its first-boot unit makes new SSH host keys"
    assert restart in chain["finalize"].output


def test_a_template_that_keeps_no_key_trusts_none(chain):
    run = chain["keyless"]
    assert run.rc == 0, run.output[-4000:]
    probe = chain["keyless_probe"]
    assert probe["login"].returncode == 255 and "Permission denied" in probe["login"].stderr, probe["login"]
    assert probe["authorized"].stdout.strip() == "", probe["authorized"]


def test_parent_that_is_not_a_template_is_refused(chain):
    run = chain["parent_not_template"]
    assert run.rc != 0
    assert f"Parent {FULLSTACK} ('fullstack') is not a template" in run.output
    assert 7260 not in _guests(chain)


@pytest.mark.parametrize(("extra", "drop", "message"), [
    ({"ctforge_stacks": ["nosuchstack"]}, (), "nosuchstack"),
    ({}, ("PROXMOX_TOKEN_SECRET",), "Proxmox credentials are missing"),
    ({"ctforge_vmid": BASE, "ctforge_template_name": "other"}, (),
     f"VMID {BASE} is taken by template 'base'"),
    ({"ctforge_storage": "nosuchstore"}, (), "Storage 'nosuchstore' does not exist"),
])
def test_bad_input_fails_before_touching_proxmox(chain, extra, drop, message):
    before = _guests(chain)
    request = {**chain["common"], "ctforge_vmid": 7270, "ctforge_template_name": "bad",
               "ctforge_base_ct_template": "debian-12-standard", "ctforge_stacks": [], **extra}
    run = run_playbook(chain["env"], "provision.yml", request, env_drop=drop)
    assert run.rc != 0
    assert message in run.output, run.output[-3000:]
    assert _guests(chain) == before


def test_storage_that_cannot_hold_templates_is_refused(chain):
    """`isos` (tests/conftest.py) holds appliances and ISOs but no CT volumes, like many a real `local`.

    The other refusal, by type (thick LVM, iSCSI, PBS), cannot be provoked here: minipve serves dir
    storages only.
    """
    before = _guests(chain)
    run = run_playbook(chain["env"], "provision.yml", {
        **chain["common"], "ctforge_vmid": 7271, "ctforge_template_name": "bad",
        "ctforge_base_ct_template": "debian-12-standard", "ctforge_storage": "isos"})
    assert run.rc != 0
    assert "Storage 'isos' cannot hold containers: its content is iso,vztmpl, without rootdir" in run.output
    assert "Set ctforge_storage to one of local" in run.output
    assert _guests(chain) == before


def test_destroy_refuses_a_template_with_linked_clones(chain):
    run = run_playbook(chain["env"], "destroy.yml", {"ctforge_vmid": BASE})
    assert run.rc != 0
    assert "in use by linked clones" in run.output
    assert BASE in _guests(chain)
