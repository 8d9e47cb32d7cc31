"""The scrub of a staging CT on minipve: credentials a person leaves, found by where and by what they are.

One base staging CT is built for the module. A person plants a credential of every class over SSH, as root
and as the dev user, and in a service user's home; one of them is made immutable, and a token sits in a
project's `.env`, where no path list looks. The first finalize must refuse, naming both files, before it
changes anything else (no template, the CT still answers with its host keys). The person fixes both; the
second finalize makes the template, and a clone of it carries none of what was planted.
"""

from __future__ import annotations

import subprocess

import pytest

from playbook_helpers import REPO, api, clone_and_start, destroy, run_playbook

pytestmark = [pytest.mark.host, pytest.mark.slow]

STAGING, PROBE, SMOKE = 7400, 7418, 7419
SERVICE_HOME = "/var/lib/ci-runner"  # a service user's home, as postgres has /var/lib/postgresql
MARK = "ctforgecanary"  # in every planted secret that has room for it (keys are found by their armour)
AWS_KEY_ID = "AKIACTFORGECANARY001"
GITHUB_TOKEN = f"ghp_{MARK}0123456789abcdefghijklm"
NPM_TOKEN = f"npm_{MARK}0123456789abcdefghijklm"
PYPI_TOKEN = f"pypi-AgEIcHlwaS5vcmcCJG{MARK}LTk5ZTEtNDE0ZS1hNmU3LWNjYzE1YmQ0ZjA5MQACKlszLCJhYjI0"
SECRETS = (AWS_KEY_ID, GITHUB_TOKEN, NPM_TOKEN, PYPI_TOKEN, f"{MARK}-docker", f"{MARK}-netrc")
EXTRA_KEY = f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGNhbmFyeWNhbmFyeWNhbmFyeWNhbmFyeWNhbmFyeWNh {MARK}@laptop"

# As root: cloud CLIs, cluster client, .netrc, container registry auth, a key pair, authorized_keys2, a
# service user's home with a TLS key and git credentials. /root/.aws/credentials is then made immutable.
AS_ROOT = rf"""set -e
umask 077
mkdir -p ~/.aws ~/.kube ~/.config/gcloud ~/.azure ~/.docker ~/.config/containers ~/.ssh
printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' \
  {AWS_KEY_ID} {MARK}/K7MDENG/bPxRfiCY > ~/.aws/credentials
printf 'apiVersion: v1\nusers:\n- name: admin\n  user:\n    token: {MARK}.kube.token\n' > ~/.kube/config
printf '{{"client_secret": "{MARK}-gcloud", "refresh_token": "1//{MARK}", "type": "authorized_user"}}\n' \
  > ~/.config/gcloud/application_default_credentials.json
printf '{{"AccessToken": {{"x": {{"secret": "{MARK}-azure"}}}}}}\n' > ~/.azure/msal_token_cache.json
printf 'machine registry.example.com login deploy password {MARK}-netrc\n' > ~/.netrc
auth=$(printf 'deploy:{MARK}-docker' | base64)
printf '{{"auths": {{"registry.example.com": {{"auth": "%s"}}}}}}\n' "$auth" > ~/.docker/config.json
cp ~/.docker/config.json ~/.config/containers/auth.json
ssh-keygen -q -t ed25519 -N '' -C root@staging -f ~/.ssh/id_ed25519
echo '{EXTRA_KEY}' > ~/.ssh/authorized_keys2
useradd --system --home-dir {SERVICE_HOME} --create-home --shell /usr/sbin/nologin ci-runner
install -d -o ci-runner -m 0700 {SERVICE_HOME}/tls
ssh-keygen -q -m PEM -t rsa -b 2048 -N '' -f {SERVICE_HOME}/tls/runner.key
printf 'https://ci:{GITHUB_TOKEN}@github.com\n' > {SERVICE_HOME}/.git-credentials
chown -R ci-runner: {SERVICE_HOME}
install -d -o kobozo -g kobozo -m 0700 /home/kobozo/.ssh
install -o kobozo -g kobozo -m 0600 ~/.ssh/authorized_keys /home/kobozo/.ssh/authorized_keys
chattr +i ~/.aws/credentials
"""
# As the dev user: package indexes, registries, git credential helper, a deploy key in a project, and a
# token in the project's .env (found only by what it is).
AS_DEV = rf"""set -e
umask 077
mkdir -p ~/.config/pip ~/.cargo ~/.gem ~/projects/app
printf '[distutils]\nindex-servers = pypi\n[pypi]\nusername = __token__\npassword = %s\n' {PYPI_TOKEN} \
  > ~/.pypirc
printf '[global]\ntimeout = 60\nindex-url = https://deploy:{MARK}pip@pypi.example.com/simple\n' \
  > ~/.config/pip/pip.conf
printf 'prefix=/home/kobozo/.npm-global\n//registry.npmjs.org/:_authToken={NPM_TOKEN}\n' > ~/.npmrc
printf '[registry]\ntoken = "cio{MARK}0123456789abcdef"\n' > ~/.cargo/credentials.toml
printf -- '---\n:rubygems_api_key: rubygems_{MARK}0123456789abcdef\n' > ~/.gem/credentials
printf 'https://kobozo:{GITHUB_TOKEN}@github.com\n' > ~/.git-credentials
printf '[user]\n\tname = Kobozo\n\temail = kobozo@example.com\n' > ~/.gitconfig
printf '[credential]\n\thelper = store\n[core]\n\teditor = vim\n' >> ~/.gitconfig
ssh-keygen -q -t ed25519 -N '' -C deploy@app -f ~/projects/app/deploy_key
printf 'GITHUB_TOKEN={GITHUB_TOKEN}\n' > ~/projects/app/.env
"""
PLANTED = (
    "/root/.aws", "/root/.kube", "/root/.config/gcloud", "/root/.azure", "/root/.netrc",
    "/root/.docker/config.json", "/root/.config/containers/auth.json", "/root/.ssh/id_ed25519",
    "/root/.ssh/id_ed25519.pub", "/root/.ssh/authorized_keys2", f"{SERVICE_HOME}/tls/runner.key",
    f"{SERVICE_HOME}/tls/runner.key.pub",
    f"{SERVICE_HOME}/.git-credentials", "/home/kobozo/.ssh/authorized_keys", "/home/kobozo/.pypirc",
    "/home/kobozo/.cargo/credentials.toml", "/home/kobozo/.gem/credentials", "/home/kobozo/.git-credentials",
    "/home/kobozo/projects/app/deploy_key", "/home/kobozo/projects/app/deploy_key.pub",
    "/home/kobozo/projects/app/.env",
)
HOMES = f"/root /home {SERVICE_HOME}"


def ssh_as(user: str, ip: str, key, script: str, *, check: bool = True) -> subprocess.CompletedProcess:
    """A bash script run by `user` over SSH, as a person at a terminal would."""
    proc = subprocess.run(
        ["ssh", "-i", str(key), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
         "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", f"{user}@{ip}", "bash -s"],
        input=script, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 or not check, f"{user}@{ip}: rc {proc.returncode}: {proc.stderr[-2000:]}"
    return proc


def ipv4(px, node: str, vmid: int) -> str:
    return next(i["inet"].split("/")[0] for i in px.nodes(node).lxc(vmid).interfaces.get()
                if i.get("name") != "lo" and i.get("inet"))


@pytest.fixture(scope="module")
def scrub(minipve, tmp_path_factory):
    env = minipve.env
    node = env["PROXMOX_NODE"]
    key = tmp_path_factory.mktemp("build-key") / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    common = {"ctforge_ssh_private_key_file": str(key), "ctforge_node": node, "ctforge_smoke_vmid": SMOKE,
              "ctforge_vmid": STAGING}
    px = api(env)
    out: dict[str, object] = {"px": px, "node": node}
    try:
        build = run_playbook(env, "provision.yml", {**common, "ctforge_template_name": "scrubbed"},
                             extra_files=(REPO / "examples" / "base.yml",))
        assert build.rc == 0, build.output[-4000:]
        ip = ipv4(px, node, STAGING)
        ssh_as("root", ip, key, AS_ROOT)
        ssh_as("kobozo", ip, key, AS_DEV)
        out["hostkey"] = ssh_as("root", ip, key, "cat /etc/ssh/ssh_host_ed25519_key.pub").stdout
        out["refused"] = run_playbook(env, "finalize.yml", common)
        out["refused_is_template"] = int(px.nodes(node).lxc(STAGING).config.get().get("template", 0)) == 1
        out["refused_guests"] = {g["vmid"] for g in px.cluster.resources.get(type="vm")}
        out["hostkey_after_refusal"] = ssh_as("root", ip, key, "cat /etc/ssh/ssh_host_ed25519_key.pub",
                                              check=False).stdout
        # the person reads the message and fixes both files, as root: the scrub took the dev user's keys
        ssh_as("root", ip, key, "chattr -i ~/.aws/credentials && rm /home/kobozo/projects/app/.env")
        out["fixed"] = True
        out["finalized"] = run_playbook(env, "finalize.yml", common)
        assert out["finalized"].rc == 0, out["finalized"].output[-4000:]
        clone = clone_and_start(px, node, STAGING, PROBE)
        out["left"] = ssh_as("root", clone, key, f"""
            for path in {' '.join(PLANTED)}; do if [ -e "$path" ]; then echo "$path"; fi; done
            grep -rIil {MARK} {HOMES} /etc /srv /tmp /var/tmp 2>/dev/null
            grep -rl 'PRIVATE KEY' {HOMES} 2>/dev/null
            true""").stdout.split()
        out["kept"] = ssh_as("root", clone, key, "cat /home/kobozo/.config/pip/pip.conf /home/kobozo/.npmrc "
                                                 "/home/kobozo/.gitconfig").stdout
        yield out
    finally:
        if "fixed" not in out and "ip" in locals():  # an immutable file would make the destroy fail
            ssh_as("root", ip, key, "chattr -i ~/.aws/credentials", check=False)
        for vmid in (PROBE, SMOKE, STAGING):
            if any(g["vmid"] == vmid for g in px.cluster.resources.get(type="vm")):
                destroy(px, node, vmid)


def test_finalize_refuses_what_it_cannot_remove_naming_each_file(scrub):
    run = scrub["refused"]
    assert run.rc != 0
    assert "Not ready for a template, still present: " in run.output, run.output[-4000:]
    assert "/root/.aws/credentials" in run.output  # immutable: the scrub could not remove it
    assert "/home/kobozo/projects/app/.env (GitHub Token: line 1)" in run.output  # by what it is


def test_a_refused_ct_is_no_template_and_still_answers_with_its_host_keys(scrub):
    assert not scrub["refused_is_template"]
    assert SMOKE not in scrub["refused_guests"]
    assert scrub["hostkey_after_refusal"] and scrub["hostkey_after_refusal"] == scrub["hostkey"]


def test_no_planted_credential_is_in_a_clone_of_the_template(scrub):
    assert scrub["left"] == []


def test_settings_beside_a_credential_stay(scrub):
    kept = scrub["kept"]
    assert "timeout = 60" in kept and "[global]" in kept  # pip.conf without its index URL's password
    assert "prefix=/home/kobozo/.npm-global" in kept  # .npmrc without its token
    assert "editor = vim" in kept and "[credential]" not in kept and "[user]" not in kept


def test_the_scan_names_files_and_never_a_secret(scrub):
    for run in (scrub["refused"], scrub["finalized"]):
        for secret in SECRETS:
            assert secret not in run.output

