"""The typed playbook request and result (ctforge.requests) against the playbooks themselves.

The examples validate; the playbooks' set_stats keys are the result models' fields; the formats table
the playbooks use (rendered through Ansible) is the model's; the playbooks' defaults are the model's;
bad input is refused by both, and by the real provision.yml before it makes any API call; extravars
written by the model reach ansible-playbook and ansible-runner as text that is never rendered.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ctforge import formats
from ctforge import requests as rq
from playbook_helpers import REPO, local_play

PLAYBOOKS = REPO / "playbooks"
# the playbooks' request files (family.yml is ctforge apply's: tests/test_apply.py reads it)
EXAMPLES = sorted(p for p in (REPO / "examples").glob("*.yml") if p.name != "family.yml")
BASE = yaml.safe_load((REPO / "examples" / "base.yml").read_text())
# ctforge_* names in playbooks/ that are no variables: inventory groups, action plugins, a local fact's file.
NOT_VARIABLES = {"ctforge_staging", "ctforge_smoke", "ctforge_workspace", "ctforge_applied", "ctforge_fact",
                 "ctforge_files", "ctforge_service", "ctforge_shell", "ctforge_base",
                 "ctforge_request_problems", "ctforge_workspace_request"}  # groups, plugins, a fact
# The request each example is, by file name; the others are provision requests.
EXAMPLE_REQUESTS: dict[str, type[rq._Request]] = {"workspace.yml": rq.WorkspaceRequest}


def provision(**fields: Any) -> rq.ProvisionRequest:
    return rq.ProvisionRequest.model_validate({**BASE, **fields})


def refused(**fields: Any) -> str:
    with pytest.raises(ValidationError) as info:
        provision(**fields)
    return str(info.value)


# --- the examples and the results --------------------------------------------------------------


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_example_is_a_valid_request(example: Path) -> None:
    data = yaml.safe_load(example.read_text())
    request = EXAMPLE_REQUESTS.get(example.name, rq.ProvisionRequest).model_validate(data)
    assert {k: v for k, v in request.extravars().items() if k in data} == data


def _tasks(node: Any, where: Path) -> list[tuple[dict, Path]]:
    """Every task under a play or task list, following include_tasks/import_tasks of literal files."""
    found: list[tuple[dict, Path]] = []
    for item in node if isinstance(node, list) else []:
        if not isinstance(item, dict):
            continue
        for key in ("tasks", "pre_tasks", "post_tasks", "handlers", "block", "rescue", "always"):
            found += _tasks(item.get(key), where)
        found.append((item, where))
        for key in ("ansible.builtin.include_tasks", "ansible.builtin.import_tasks", "include_tasks",
                    "import_tasks"):
            target = item.get(key)
            target = target.get("file") if isinstance(target, dict) else target
            if isinstance(target, str) and "{{" not in target:
                path = (where.parent / target).resolve()
                found += _tasks(yaml.safe_load(path.read_text()), path)
    return found


def set_stats_keys(playbook: str) -> set[str]:
    path = PLAYBOOKS / playbook
    keys: set[str] = set()
    for play in yaml.safe_load(path.read_text()):
        for task, _ in _tasks([play], path):
            stats = task.get("ansible.builtin.set_stats") or task.get("set_stats")
            if stats:
                keys |= set(stats["data"])
    return keys


@pytest.mark.parametrize("playbook", sorted(rq.RESULTS))
def test_the_playbooks_set_stats_keys_are_the_result_fields(playbook: str) -> None:
    assert set_stats_keys(playbook) == set(rq.RESULTS[playbook].model_fields)


def test_every_lifecycle_playbook_has_a_request_and_a_result() -> None:
    steps = {p.name for p in PLAYBOOKS.glob("*.yml")} - {"build.yml"}
    assert steps == set(rq.RESULTS) == {r.playbook for r in rq.REQUESTS.values()}


def test_a_result_reads_what_set_stats_reports_and_refuses_a_key_it_does_not_declare() -> None:
    stats = {"vmid": 150, "node": "minipve", "ip": "10.213.0.57", "stacks": ["nodejs"]}
    assert rq.ProvisionResult.model_validate(stats).build_key is None
    key = "SHA256:" + "A" * 43
    finalized = {"vmid": 150, "node": "minipve", "template": True, "stacks": [], "build_key": key}
    assert rq.FinalizeResult.model_validate(finalized).build_key == key
    for bad in ({**stats, "surprise": 1}, {**stats, "ip": "10.0.0.1\n"}, {**stats, "build_key": "MD5:aa"}):
        with pytest.raises(ValidationError):
            rq.ProvisionResult.model_validate(bad)


# --- the playbooks' formats and defaults are the model's ----------------------------------------

PROBLEMS_PLAY = """\
- name: Check a request
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Find its problems as check_request.yml does
      ansible.builtin.set_fact:
        found: "{{ request | ctforge_request_problems }}"
    - name: Write them where the test reads them
      ansible.builtin.copy:
        content: "{{ found | to_json }}"
        dest: "{{ result_file }}"
        mode: "0644"
"""
# One problem of every kind request_problems names, in the types Ansible hands a filter (an int, a
# bool, a list, a mapping from extra vars), beside fields that are right.
BAD_REQUEST = {
    "ctforge_template_name": 7, "ctforge_vmid": "99", "ctforge_cores": [2], "ctforge_memory": 512,
    "ctforge_keep_build_key": True, "ctforge_stacks": ["nodejs", "Node", "nodejs"],
    "ctforge_ca_certificates": "/a.crt", "ctforge_env_vars": {"OK": "a", "9a": "b", "X": "two\nlines"},
    "ctforge_net0": "name=eth0,ip=dhcpx,ip=dhcp,tag=0,x=1,ip", "ctforge_apt_proxy": "ftp://" + "p" * 90,
    "ctforge_node": None, "ctforge_surprise": "1",
}


def test_the_playbooks_refuse_with_request_problems_messages_through_ansible(tmp_path: Path) -> None:
    proc, found = local_play(tmp_path, PROBLEMS_PLAY, {"request": BAD_REQUEST})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert found == formats.request_problems(BAD_REQUEST)
    assert found == [
        'ctforge_template_name is "7", not text',
        f'ctforge_vmid is "99", which does not match {formats.FORMATS["scalars"]["ctforge_vmid"]} '
        "(service/ctforge/formats.py)",
        f'ctforge_cores is "[2]", which does not match {formats.FORMATS["scalars"]["ctforge_cores"]} '
        "(service/ctforge/formats.py)",
        'ctforge_stacks lists ["Node"], which do not match ' + formats.FORMATS["lists"]["ctforge_stacks"],
        'ctforge_stacks lists an item more than once: ["nodejs", "Node", "nodejs"]',
        'ctforge_ca_certificates is "/a.crt", not a list',
        'ctforge_env_vars has keys ["9a"], which do not match '
        + formats.FORMATS["mappings"]["ctforge_env_vars"]["key"],
        'ctforge_env_vars: the values of ["X"] are not one line of text without control characters',
        'ctforge_net0: "ip=dhcpx" is not a valid ip',
        "ctforge_net0: the key ip appears twice",
        'ctforge_net0: "tag=0" is not a valid tag',
        'ctforge_net0: "x=1" has no known key (the keys are: ' + ", ".join(formats.NET_KEYS) + ")",
        'ctforge_net0: "ip" is not a valid ip',
        'ctforge_apt_proxy is "ftp://' + "p" * 71 + '...", which does not match its format '
        "(service/ctforge/formats.py)",
        "ctforge_surprise has no format in service/ctforge/formats.py",
    ]
    assert "two" not in json.dumps(found)  # an env var's value is never quoted


def _defaults(text: str) -> dict[str, list[str]]:
    """variable -> the argument texts of every `ctforge_x | default(...)` in a task file."""
    found: dict[str, list[str]] = {}
    for var, arg in re.findall(r"\b(ctforge_\w+) \| default\(((?:[^()]|\([^()]*\))*)\)", text):
        found.setdefault(var, []).append(arg)
    return found


def _literal(arg: str) -> tuple[bool, Any]:
    """(True, value) for a literal default; `'', true` (empty means unset) and none are None."""
    arg = arg.strip()
    if arg == "none" or re.fullmatch(r"''\s*,\s*true", arg):
        return True, None
    try:
        return True, yaml.safe_load(arg) if arg in ("true", "false") else ast.literal_eval(arg)
    except (ValueError, SyntaxError):
        return False, None


# (the task file that settles a request, its model, the fields it requires)
SETTLED = [
    ("settle_request.yml", rq.ProvisionRequest, {"ctforge_template_name", "ctforge_vmid"}),
    ("validate_workspace.yml", rq.WorkspaceRequest,
     {"ctforge_workspace_name", "ctforge_vmid", "ctforge_template_vmid", "ctforge_ssh_public_keys"}),
    ("../workspace_power.yml", rq.WorkspacePowerRequest, {"ctforge_vmid", "ctforge_state"}),
]


@pytest.mark.parametrize(("tasks", "model", "required"), SETTLED, ids=lambda v: getattr(v, "__name__", None))
def test_the_playbooks_defaults_are_the_models(tasks: str, model: type[rq._Request],
                                               required: set[str]) -> None:
    text = (PLAYBOOKS / "tasks" / tasks).read_text()
    fields = model.model_fields
    defaults = _defaults(text)
    assert set(defaults) <= set(fields), set(defaults) - set(fields)
    for var, args in defaults.items():
        for arg in args:
            literal, value = _literal(arg)
            if var in ("ctforge_parent_vmid", "ctforge_base_ct_template") and value == "":
                value = None  # the model takes an empty origin as not given, as the playbooks do
            if var == "ctforge_dev_user" and value == "":
                value = None  # validate_workspace.yml: empty is "the template's", as None in the model
            if var in required and literal and value is None:
                continue  # a required field not given goes to the check as None, which names it
            want = value if literal else None  # computed (inventory, state dir, template): None in the model
            assert fields[var].default == want, (var, arg)
    # the ones without a default are the required ones
    assert {n for n, f in fields.items() if f.is_required()} == required


def _checked(tasks: str) -> dict[str, Any]:
    """The request that a task (at any depth of a playbook's plays) checks: the __check of the one that
    includes or imports check_request.yml, or the request of ctforge_workspace_request."""
    found = _tasks(yaml.safe_load((PLAYBOOKS / "tasks" / tasks).read_text()), PLAYBOOKS / "tasks" / tasks)
    return next(t["ctforge_workspace_request"]["request"] if "ctforge_workspace_request" in t
                else t["vars"]["__check"] for t, _ in found
                if "ctforge_workspace_request" in t
                or any(str(t.get(f"ansible.builtin.{how}_tasks", "")).endswith("check_request.yml")
                       for how in ("include", "import")))


@pytest.mark.parametrize(("tasks", "model", "required"), SETTLED, ids=lambda v: getattr(v, "__name__", None))
def test_each_playbook_checks_every_field_of_its_request(tasks: str, model: type[rq._Request],
                                                         required: set[str]) -> None:
    assert set(_checked(tasks)) == set(model.model_fields)


def test_every_request_field_has_a_format() -> None:
    known = set(formats.SCALARS) | set(formats.LISTS) | set(formats.MAPPINGS) | set(formats.NETS)
    assert set().union(*(r.model_fields for r in rq.REQUESTS.values())) == known


def test_the_state_dir_and_build_key_defaults() -> None:
    text = (PLAYBOOKS / "tasks" / "settle_request.yml").read_text()
    assert "ctforge_ssh_private_key_file | default(__state_dir + '/build_key')" in text
    state_dir = "lookup('ansible.builtin.env', 'CTFORGE_STATE_DIR') or '/var/lib/ctforge'"
    assert f"ctforge_state_dir | default({state_dir})" in text
    assert "keep_build_key: \"{{ ctforge_keep_build_key | default(true) | bool }}\"" in text


def test_every_ctforge_variable_the_playbooks_read_is_a_request_field() -> None:
    fields = set().union(*(r.model_fields for r in rq.REQUESTS.values()))
    used: set[str] = set()
    for path in PLAYBOOKS.rglob("*.yml"):
        used |= set(re.findall(r"\b(ctforge_[a-z0-9_]+)\b", path.read_text()))
    assert used - NOT_VARIABLES <= fields, used - NOT_VARIABLES - fields


# --- bad input is refused -----------------------------------------------------------------------

METACHARACTERS = [*";|&$`<>\"'(){}[]*?!#~\\ \t\n\r", "$(id)", "`id`", "\x00"]
IDENTIFIERS = ["ctforge_template_name", "ctforge_node", "ctforge_storage", "ctforge_template_storage",
               "ctforge_base_ct_template", "ctforge_ssh_private_key_file", "ctforge_state_dir",
               "ctforge_apt_proxy", "ctforge_dev_user", "ctforge_net0"]
GOOD = {"ctforge_template_name": "base", "ctforge_node": "pve1", "ctforge_storage": "local-zfs",
        "ctforge_template_storage": "local", "ctforge_base_ct_template": "debian-12-standard",
        "ctforge_ssh_private_key_file": "/var/lib/ctforge/build_key", "ctforge_state_dir": "/var/lib/ctforge",
        "ctforge_apt_proxy": "http://10.213.0.1:3142", "ctforge_dev_user": "kobozo",
        "ctforge_net0": "name=eth0,bridge=vmbr0,ip=dhcp"}


@pytest.mark.parametrize("field", IDENTIFIERS)
@pytest.mark.parametrize("where", ["end", "middle"])
def test_a_metacharacter_or_a_newline_in_an_identifier_is_refused(field: str, where: str) -> None:
    provision(**{field: GOOD[field]})
    for char in METACHARACTERS:
        good = GOOD[field]
        value = good + char if where == "end" else good[:2] + char + good[2:]
        assert field in refused(**{field: value}), (field, value)


@pytest.mark.parametrize("value", ["base\n", "Base", "-base", "base-", "a" * 64, "ba_se", "", "bäse"])
def test_a_name_that_is_no_dns_label_is_refused(value: str) -> None:
    assert "ctforge_template_name" in refused(ctforge_template_name=value)


@pytest.mark.parametrize(("field", "value"), [
    ("ctforge_vmid", 99), ("ctforge_vmid", 1_000_000_000), ("ctforge_vmid", "150\n"), ("ctforge_vmid", True),
    ("ctforge_vmid", 150.5), ("ctforge_cores", 0), ("ctforge_cores", 8193), ("ctforge_memory", 15),
    ("ctforge_swap", -1), ("ctforge_disk_gb", 0), ("ctforge_unprivileged", "maybe"),
    ("ctforge_description", "x" * 8193), ("ctforge_description", "bell\x07"),
    ("ctforge_stacks", ["nodejs", "nodejs"]), ("ctforge_stacks", ["no_such_stack"]),
    ("ctforge_stacks", ["Node"]),
    ("ctforge_env_vars", {"BAD NAME": "x"}), ("ctforge_env_vars", {"OK": "two\nlines"}),
    ("ctforge_apt_proxy", "ftp://proxy:3142"), ("ctforge_apt_proxy", 'http://proxy";'),
    ("ctforge_dev_user", "root"), ("ctforge_parent_vmid", 150),
])
def test_a_bad_value_is_refused_and_named(field: str, value: Any) -> None:
    assert field in refused(**{field: value}) or field == "ctforge_parent_vmid"


def test_exactly_one_origin_is_required() -> None:
    assert "not both" in refused(ctforge_parent_vmid=200)
    with pytest.raises(ValidationError, match="not neither"):
        rq.ProvisionRequest(ctforge_template_name="x", ctforge_vmid=7500)
    assert provision(ctforge_base_ct_template="", ctforge_parent_vmid=7150).ctforge_base_ct_template is None


def test_unknown_fields_are_refused() -> None:
    assert "ctforge_vmdi" in refused(ctforge_vmdi=150)


@pytest.mark.parametrize("net", [
    "name=eth0,bridge=vmbr0,ip=10.1.2.3/24,gw=10.1.2.1,ip6=fd00::2/64,gw6=fd00::1,hwaddr=BC:24:11:00:00:01,"
    "firewall=1,mtu=1500,rate=12.5,tag=10,trunks=1;20,type=veth,link_down=0,host-managed=off",
    "name=eth0,ip=manual,ip6=auto", "name=eth0,ip6=::ffff:10.0.0.1/104",
])
def test_net0_takes_what_proxmox_takes(net: str) -> None:
    assert provision(ctforge_net0=net).ctforge_net0 == net


@pytest.mark.parametrize(("net", "reason"), [
    ("bridge=vmbr0", "'name' is required"), ("name=eth0,name=eth1", "appears twice"),
    ("name=eth0,colour=blue", "not a netN key"), ("name=eth0,ip=10.0.0.1/33", "ip"),
    ("name=eth0,ip=10.0.0.1/7", "ip"), ("name=eth0,ip=010.0.0.1/24", "ip"),
    ("name=eth0,ip6=fd00::1::2/64", "ip6"), ("name=eth0,hwaddr=01:00:00:00:00:00", "hwaddr"),
    ("name=eth0,mtu=63", "mtu"), ("name=eth0,tag=4095", "tag"), ("name=eth0,type=macvlan", "type"),
    ("name=eth0,firewall=maybe", "firewall"), ("name=eth0,", "not a netN key"),
    ("name", "name"), ("name=eth0,ip=dhcp\n", "ip"), ("name=eth0 ,ip=dhcp", "name"),
])
def test_net0_refuses_what_proxmox_refuses(net: str, reason: str) -> None:
    assert reason in refused(ctforge_net0=net)


_NET_VALUES = {
    "bridge": st.from_regex(r"\Avmbr[0-9]{1,3}\Z"), "ip": st.sampled_from(["dhcp", "manual", "10.0.0.2/24"]),
    "gw": st.just("10.0.0.1"), "firewall": st.sampled_from(["0", "1", "yes", "off"]),
    "mtu": st.integers(64, 65535).map(str), "tag": st.integers(1, 4094).map(str),
    "rate": st.decimals(0, 10_000, places=2).map(str), "type": st.just("veth"),
}


@st.composite
def nets(draw) -> str:
    keys = draw(st.lists(st.sampled_from(sorted(_NET_VALUES)), unique=True))
    parts = ["name=" + draw(st.from_regex(r"\Aeth[0-9]\Z"))] + [f"{k}={draw(_NET_VALUES[k])}" for k in keys]
    return ",".join(draw(st.permutations(parts)))


@settings(max_examples=200, deadline=None)
@given(net=nets(), junk=st.sampled_from([*METACHARACTERS, ",", ",name=eth1", "="]))
def test_a_valid_net0_passes_and_any_junk_after_it_is_refused(net: str, junk: str) -> None:
    formats.parse_net(net)
    with pytest.raises(ValueError):
        formats.parse_net(net + junk)


@settings(max_examples=300, deadline=None)
@given(n=st.integers(-10, 10**10) | st.integers(-10, 70_000)
       | st.sampled_from([15, 16, 99, 100, 4094, 4095, 8192, 8193, 65535, 65536, 999_999_999, 10**9]))
def test_the_numeric_patterns_are_proxmox_bounds(n: int) -> None:
    bounds = {"ctforge_vmid": (100, 999_999_999), "ctforge_cores": (1, 8192),
              "ctforge_memory": (16, 999_999_999), "ctforge_swap": (0, 999_999_999),
              "ctforge_disk_gb": (1, 999_999), "ctforge_pve_module_wait": (1, 9999),
              "ctforge_ssh_timeout": (1, 99_999)}
    for field, (low, high) in bounds.items():
        by_pattern = re.fullmatch(formats.FORMATS["scalars"][field], str(n)) is not None
        assert by_pattern == (low <= n <= high), (field, n)
        try:
            provision(**{field: n})
            accepted = True
        except ValidationError:
            accepted = False
        assert accepted == by_pattern, (field, n)
    for key, (low, high) in {"mtu": (64, 65535), "tag": (1, 4094)}.items():
        by_pattern = re.fullmatch(formats.FORMATS["net_keys"][key], str(n)) is not None
        assert by_pattern == (low <= n <= high), (key, n)


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=30))
def test_text_is_accepted_exactly_when_the_playbooks_pattern_matches_it(text: str) -> None:
    for field in ("ctforge_template_name", "ctforge_node", "ctforge_storage", "ctforge_description",
                  "ctforge_apt_proxy", "ctforge_dev_user", "ctforge_ssh_private_key_file"):
        by_pattern = re.fullmatch(formats.FORMATS["scalars"][field], text) is not None
        try:
            provision(**{field: text})
            accepted = True
        except ValidationError:
            accepted = False
        assert accepted == by_pattern, (field, text)


# --- the playbooks refuse the same input before any API call ------------------------------------

UNREACHABLE = {"PROXMOX_HOST": "127.0.0.1", "PROXMOX_PORT": "9", "PROXMOX_USER": "root@pam",
               "PROXMOX_TOKEN_ID": "ctforge", "PROXMOX_TOKEN_SECRET": "not-a-secret",
               "PROXMOX_NODE": "minipve"}


def run_provision(extra: dict, *files: Path) -> subprocess.CompletedProcess:
    """provision.yml against a port where nothing listens: an API call fails, so the checks came first."""
    env = {**os.environ, **UNREACHABLE, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    cmd = [str(REPO / ".venv" / "bin" / "ansible-playbook"), str(PLAYBOOKS / "provision.yml")]
    for path in files:
        cmd += ["-e", f"@{path}"]
    return subprocess.run([*cmd, "-e", json.dumps(extra)], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize(("field", "value"), [
    ("ctforge_template_name", "base\n"), ("ctforge_vmid", 99), ("ctforge_net0", "name=eth0,ip=dhcp;reboot"),
    ("ctforge_stacks", ["nodejs", "nodejs"]), ("ctforge_cores", 0), ("ctforge_env_vars", {"A B": "x"}),
    ("ctforge_apt_proxy", "http://proxy/$(id)"), ("ctforge_description", "x" * 8193),
])
def test_provision_refuses_bad_input_naming_it_before_any_api_call(field: str, value: Any) -> None:
    with pytest.raises(ValidationError):
        provision(**{field: value})
    proc = run_provision({**BASE, "ctforge_vmid": 7500, field: value})
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "The request is refused, nothing was touched" in out and field in out, out[-3000:]
    tasks = re.findall(r"^TASK \[(.*?)\]", out, flags=re.M)
    assert tasks[-1] == "Ensure every field of the request has the format Proxmox accepts", tasks


# --- extravars that are never rendered ----------------------------------------------------------

MARKER_PLAY = """\
- name: Use the request's strings the way the playbooks do
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Settle them (a set_fact renders what it is given)
      ansible.builtin.set_fact:
        __seen:
          description: "{{ ctforge_description }}"
          env: "{{ ctforge_env_vars }}"
          name: "{{ ctforge_template_name }}"
    - name: Write them where the test reads them
      ansible.builtin.copy:
        content: "{{ __seen | to_json }}"
        dest: "{{ result_file }}"
        mode: "0644"
"""


# Strings that a YAML loader would take for another type if they were written plain.
LOOKALIKES = {"EMPTY": "", "NUMBER": "123", "TRUE": "true", "NULL": "null", "TILDE": "~", "OCTAL": "0755"}


def _jinja_request(marker: Path) -> rq.ProvisionRequest:
    template = "{{ lookup('pipe', 'touch " + str(marker) + "') }}"
    return provision(ctforge_description=f"before {template} after",
                     ctforge_env_vars={"EVIL": template, **LOOKALIKES})


def test_extravars_written_by_the_model_are_never_rendered_by_ansible_playbook(tmp_path: Path) -> None:
    marker = tmp_path / "rendered"
    request = _jinja_request(marker)
    extravars = tmp_path / "vars.yml"
    extravars.write_text(rq.extravars_yaml(request))
    proc, seen = local_play(tmp_path, MARKER_PLAY, {}, "-e", f"@{extravars}")
    assert seen, proc.stdout + proc.stderr
    assert seen["description"] == request.ctforge_description
    assert seen["env"] == request.ctforge_env_vars
    assert not marker.exists()


def test_a_file_the_user_wrote_is_theirs_and_is_rendered(tmp_path: Path) -> None:
    """The counterpart that makes the test above able to fail: plain extra vars are trusted."""
    marker = tmp_path / "rendered"
    extravars = tmp_path / "vars.yml"
    extravars.write_text(yaml.safe_dump(_jinja_request(marker).extravars()))
    proc, seen = local_play(tmp_path, MARKER_PLAY, {}, "-e", f"@{extravars}")
    assert seen, proc.stdout + proc.stderr
    assert marker.exists() and seen["description"] == "before  after"


def _runner(tmp_path: Path, request: rq.ProvisionRequest, **kwargs: Any) -> dict:
    import ansible_runner

    data = tmp_path / "job"
    (data / "project").mkdir(parents=True)
    (data / "project" / "play.yml").write_text(MARKER_PLAY)
    result = tmp_path / "seen.json"
    (data / "inventory").mkdir()
    (data / "inventory" / "hosts").write_text(f"localhost ansible_connection=local result_file={result}"
                                              f" ansible_python_interpreter={sys.executable}\n")
    if not kwargs:
        rq.write_extravars(request, data)
    env = {"ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "PATH": f"{REPO / '.venv/bin'}:{os.environ['PATH']}"}
    run = ansible_runner.run(private_data_dir=str(data), playbook="play.yml", envvars=env, quiet=True,
                             **kwargs)
    assert run.rc == 0, run.stdout.read()
    return json.loads(result.read_text())


def test_ansible_runner_passes_the_models_extravars_as_text(tmp_path: Path) -> None:
    marker = tmp_path / "rendered"
    request = _jinja_request(marker)
    seen = _runner(tmp_path, request)
    assert seen["description"] == request.ctforge_description and seen["env"] == request.ctforge_env_vars
    assert not marker.exists()
    assert (tmp_path / "job" / "env" / "extravars").stat().st_mode & 0o077 == 0


def test_ansible_runner_renders_its_own_extravars_argument(tmp_path: Path) -> None:
    """Why write_extravars exists: run(extravars=dict) reaches Ansible as trusted JSON and is rendered."""
    marker = tmp_path / "rendered"
    _runner(tmp_path, _jinja_request(marker), extravars=_jinja_request(marker).extravars())
    assert marker.exists()


def test_the_command_line_writes_safe_extravars(tmp_path: Path) -> None:
    request_file = tmp_path / "request.json"
    request_file.write_text(json.dumps({**BASE, "ctforge_description": "{{ x }}"}))
    proc = subprocess.run([sys.executable, "-m", "ctforge.requests", "provision", str(request_file)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("---\n!unsafe\n") and "ctforge_description: '{{ x }}'" in proc.stdout
    request_file.write_text(json.dumps({**BASE, "ctforge_vmid": 1}))
    proc = subprocess.run([sys.executable, "-m", "ctforge.requests", "provision", str(request_file)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 1 and "ctforge_vmid" in proc.stderr


SETTLE_PLAY = """\
- name: Settle a request
  hosts: localhost
  connection: local
  gather_facts: false
  vars: {{pve_api_host: 127.0.0.1, pve_api_user: root@pam, pve_api_token_id: t, pve_api_token_secret: s,
          pve_node: minipve, pve_storage: local}}
  tasks:
    - name: Settle it
      ansible.builtin.include_tasks: {tasks}/settle_request.yml
    - name: Write it where the test reads it
      ansible.builtin.copy:
        content: "{{{{ __req | to_json }}}}"
        dest: "{{{{ result_file }}}}"
        mode: "0600"
"""


@pytest.mark.parametrize("value", ["s3cret-token-value", "s3cret-token-value\nsecond line"])
def test_env_var_values_stay_out_of_the_log_even_when_refused(tmp_path: Path, value: str) -> None:
    play = SETTLE_PLAY.format(tasks=PLAYBOOKS / "tasks")
    proc, req = local_play(tmp_path, play, {**BASE, "ctforge_env_vars": {"API_TOKEN": value}}, "-vv")
    out = proc.stdout + proc.stderr
    assert "s3cret-token-value" not in out, out[-3000:]
    if "\n" in value:
        assert proc.returncode != 0 and "API_TOKEN" in out and not req
    else:
        assert proc.returncode == 0 and req["env_vars"] == {"API_TOKEN": value}
        state_dir = os.environ.get("CTFORGE_STATE_DIR") or "/var/lib/ctforge"
        assert req["ssh_key"] == f"{state_dir}/build_key" and req["keep_build_key"] is True


# --- the playbooks' check and the model agree, value for value -----------------------------------

CHECK_ONE = """\
- name: Check one candidate, recording its verdict
  block:
    - name: Check it
      ansible.builtin.include_tasks: {tasks}/check_request.yml
      vars:
        __check: "{{{{ candidate }}}}"
  rescue:
    - name: Take the refusal as the verdict
      ansible.builtin.meta: noop
  always:
    - name: Record the verdict
      ansible.builtin.set_fact:
        verdicts: "{{{{ verdicts | default([]) + [__request_problems | length == 0] }}}}"
"""
AGREE_PLAY = """\
- name: Check many candidates
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Check each
      ansible.builtin.include_tasks: {check_one}
      loop: "{{{{ candidates }}}}"
      loop_control:
        loop_var: candidate
    - name: Write the verdicts where the test reads them
      ansible.builtin.copy:
        content: "{{{{ verdicts | to_json }}}}"
        dest: "{{{{ result_file }}}}"
        mode: "0644"
"""
_PIECES = st.sampled_from(["name=eth0", "bridge=vmbr0", "ip=dhcp", "ip=10.0.0.2/24", "ip6=fd00::2/64",
                           "mtu=1500", "tag=4095", "tag=7", "firewall=1", "type=veth", "gw=10.0.0.1",
                           "hwaddr=02:00:00:00:00:01", "x=1", "name=", "name", "", "rate=1.5"])
_JUNK = st.text(alphabet="aZ09-_.:/=,;$'\" \n\t{}%~@", max_size=12)


@st.composite
def candidates(draw) -> dict[str, Any]:
    field = draw(st.sampled_from(["ctforge_net0", "ctforge_template_name", "ctforge_apt_proxy",
                                  "ctforge_node", "ctforge_env_vars", "ctforge_vmid", "ctforge_cores",
                                  "ctforge_description", "ctforge_stacks"]))
    if field == "ctforge_net0":
        parts = draw(st.lists(_PIECES, min_size=1, max_size=4))
        value: Any = ",".join(parts) + draw(st.sampled_from(["", "", "\n"]))
    elif field == "ctforge_env_vars":
        value = {draw(st.sampled_from(["OK", "A B", "_x", "9a"])): draw(_JUNK)}
    elif field in ("ctforge_vmid", "ctforge_cores"):
        value = draw(st.integers(-5, 10_000) | _JUNK)
    elif field == "ctforge_stacks":
        value = draw(st.lists(st.sampled_from(["nodejs", "redis", "Node", "a;b", ""]), max_size=3))
    else:
        value = draw(_JUNK | st.sampled_from(["base", "pve1", "http://10.0.0.1:3142", "https://proxy/x"]))
    return {field: value}


def model_accepts(candidate: dict[str, Any]) -> bool:
    try:
        provision(**candidate)
    except ValidationError:
        return False
    return True


@settings(max_examples=2, deadline=None, suppress_health_check=list(HealthCheck))
@given(batch=st.lists(candidates(), min_size=50, max_size=50,
                      unique_by=lambda c: json.dumps(c, sort_keys=True)))
def test_the_playbooks_check_and_the_model_agree_on_every_value(batch: list[dict[str, Any]]) -> None:
    import tempfile

    batch = [{"ctforge_vmid": 7500}, {"ctforge_net0": "name=eth0,tag=4095"},
             {"ctforge_env_vars": {"OK": "a\nb"}}, *batch]

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        (tmp_path / "check_one.yml").write_text(CHECK_ONE.format(tasks=PLAYBOOKS / "tasks"))
        # the candidates as text, never rendered (they hold braces)
        (tmp_path / "candidates.yml").write_text("--- !unsafe\n" + yaml.safe_dump({"candidates": batch}))
        proc, verdicts = local_play(tmp_path, AGREE_PLAY.format(check_one=tmp_path / "check_one.yml"), {},
                                    "-e", f"@{tmp_path / 'candidates.yml'}")
    assert isinstance(verdicts, list) and len(verdicts) == len(batch), proc.stdout[-3000:] + proc.stderr
    # stack ids: the formats only; the catalog is the ctforge_stacks action's to check in the playbooks
    model = [model_accepts(c) if "ctforge_stacks" not in c else _stack_format_ok(c["ctforge_stacks"])
             for c in batch]
    disagree = [(c, m, v) for c, m, v in zip(batch, model, verdicts, strict=True) if m != v]
    assert not disagree, disagree[:5]
    assert True in model and False in model  # both verdicts occur: the comparison is not vacuous


def _stack_format_ok(stacks: list[str]) -> bool:
    return len(set(stacks)) == len(stacks) and all(re.fullmatch(formats.FORMATS["lists"]["ctforge_stacks"], s)
                                                   for s in stacks)


# --- the workspace requests ---------------------------------------------------------------------

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDWvuzDBlMQHJjgFI07QgrtUHc40Gpfz/EqOs23UGVr9 alice@laptop"
WORKSPACE = {"ctforge_workspace_name": "alice-api", "ctforge_vmid": 7600, "ctforge_template_vmid": 7300,
             "ctforge_stacks": ["python"], "ctforge_ssh_public_keys": [KEY]}


def workspace(**fields: Any) -> rq.WorkspaceRequest:
    return rq.WorkspaceRequest.model_validate({**WORKSPACE, **fields})


@pytest.mark.parametrize("key", [
    KEY, KEY.rsplit(" ", 1)[0], KEY + " and more words",
    "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7" + "x" * 300,
    "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBOo= c",
    "sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29tAAAAIA== yubikey",
])
def test_an_openssh_public_key_is_accepted(key: str) -> None:
    assert workspace(ctforge_ssh_public_keys=[key]).ctforge_ssh_public_keys == [key]


@pytest.mark.parametrize("key", [
    f'command="id" {KEY}', f"no-pty {KEY}", KEY + "\n", f"{KEY}\n{KEY}", KEY.replace(" ", "\t", 1),
    "ssh-ed25519", "ssh-ed25519 AAAA", "ssh-ed25519 not-base64-at-all-here-no",
    "ssh-dss AAAAB3NzaC1kc3MAAACBAP" + "x" * 40,
    KEY + " bell\x07", "", " " + KEY,
])
def test_a_key_with_options_lines_or_no_key_is_refused(key: str) -> None:
    with pytest.raises(ValidationError, match="ctforge_ssh_public_keys"):
        workspace(ctforge_ssh_public_keys=[key])


@pytest.mark.parametrize(("field", "value"), [
    ("ctforge_ssh_public_keys", []), ("ctforge_ssh_public_keys", [KEY, KEY]),
    ("ctforge_ssh_public_keys", KEY),
    ("ctforge_workspace_name", "Alice"), ("ctforge_template_vmid", 99), ("ctforge_template_vmid", 7600),
    ("ctforge_stacks", ["no_such_stack"]), ("ctforge_template_stacks", ["no_such_stack"]),
    ("ctforge_cores", 0), ("ctforge_memory", 15), ("ctforge_net0", "name=eth0,ip=dhcp;reboot"),
])
def test_a_bad_workspace_value_is_refused(field: str, value: Any) -> None:
    with pytest.raises(ValidationError) as info:
        workspace(**{field: value})
    assert field in str(info.value) or (field == "ctforge_template_vmid" and value == 7600)


def test_the_power_request_takes_started_or_stopped() -> None:
    for state in ("started", "stopped"):
        assert rq.WorkspacePowerRequest(ctforge_vmid=7600, ctforge_state=state).ctforge_state == state
    for state in ("running", "Started", "stopped\n", True):
        with pytest.raises(ValidationError, match="ctforge_state"):
            rq.WorkspacePowerRequest(ctforge_vmid=7600, ctforge_state=state)


def test_the_workspace_results_read_what_set_stats_reports() -> None:
    made = {"vmid": 7600, "node": "minipve", "ip": "10.213.0.60", "dev_user": "kobozo",
            "template_stacks": ["nodejs"], "installed": ["python"], "stacks": ["nodejs", "python"],
            "build_key": None}
    assert rq.WorkspaceResult.model_validate(made).installed == ["python"]
    power = {"vmid": 7600, "node": "minipve", "status": "stopped", "ip": None}
    assert rq.WorkspacePowerResult.model_validate(power).ip is None
    for bad in ({**power, "status": "paused"}, {**power, "surprise": 1}):
        with pytest.raises(ValidationError):
            rq.WorkspacePowerResult.model_validate(bad)


def run_against_nothing(playbook: str, extra: dict) -> subprocess.CompletedProcess:
    """A playbook against a port where nothing listens: an API call fails, so the checks came first."""
    env = {**os.environ, **UNREACHABLE, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    cmd = [str(REPO / ".venv" / "bin" / "ansible-playbook"), str(PLAYBOOKS / playbook),
           "-e", json.dumps(extra)]
    return subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)


FORMAT_CHECK = "Ensure every field of the request has the format Proxmox accepts"


WORKSPACE_CHECK = "Validate the workspace request against Proxmox's formats, the catalog and the cluster"


@pytest.mark.parametrize(("field", "value"), [
    ("ctforge_ssh_public_keys", [f'command="id" {KEY}']),
    ("ctforge_ssh_public_keys", [KEY + "\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB"]),
    ("ctforge_ssh_public_keys", []),
    ("ctforge_workspace_name", "alice api"),
    ("ctforge_template_vmid", "7300; reboot"),
    ("ctforge_stacks", ["no_such_stack"]),
    ("ctforge_template_stacks", ["no_such_stack"]),
])
def test_workspace_refuses_bad_input_naming_it_before_any_api_call(field: str, value: Any) -> None:
    """Nothing listens where the API is said to be: a refusal, not "cannot reach Proxmox", shows that
    the request's own checks come before the first API call."""
    with pytest.raises(ValidationError):
        workspace(**{field: value})
    proc = run_against_nothing("workspace.yml", {**WORKSPACE, field: value})
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "The request is refused, nothing was touched" in out and field in out, out[-3000:]
    assert "cannot reach Proxmox" not in out
    tasks = re.findall(r"^TASK \[(.*?)\]", out, flags=re.M)
    assert tasks[-1] == WORKSPACE_CHECK, tasks


def test_workspace_power_refuses_a_bad_state_before_any_api_call() -> None:
    proc = run_against_nothing("workspace_power.yml", {"ctforge_vmid": 7600, "ctforge_state": "paused"})
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "ctforge_state" in out, out[-3000:]
    tasks = re.findall(r"^TASK \[(.*?)\]", out, flags=re.M)
    assert tasks[-1] == "Ensure every field of the request has the format Proxmox accepts", tasks


@pytest.mark.parametrize(("name", "hostname"), [
    ("base", "base"), ("Full stack", "full-stack"), ("Node.js 22", "node-js-22"),
    ("Web_Child+2", "web-child-2"), ("A" * 64, "a" * 63),
])
def test_a_template_name_the_api_takes_becomes_a_hostname_provision_takes(name: str, hostname: str) -> None:
    """The API lets a template be called "Full stack"; its CT's hostname must be one DNS label."""
    from ctforge.api.schemas import TemplateCreate
    from ctforge.formats import FORMATS, hostname_for

    TemplateCreate(name=name)  # the API takes the name
    assert hostname_for(name) == hostname
    assert re.fullmatch(FORMATS["scalars"]["ctforge_template_name"], hostname_for(name))
