"""Proxmox VE's formats for the playbooks' request variables, as patterns matched whole.

pve-common's JSONSchema formats and pve-container's netN property string, by playbook variable
(`ctforge_vmid`, `ctforge_net0`, ...). Every pattern is matched whole (`anchored`: `\\A...\\Z`), so a
trailing newline or a shell metacharacter is refused. `request_problems` checks a playbook request
against the table (`FORMATS`): playbooks/tasks/check_request.yml refuses with its messages (filter
ctforge_request_problems), and so does the workspace playbook's own check (action
ctforge_workspace_request). ctforge.requests types its models with the same patterns, and
tests/test_requests.py checks that the playbooks and the models agree, value for value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4 = rf"(?:{_OCTET}\.){{3}}{_OCTET}"
_H16 = r"[0-9a-fA-F]{1,4}"
_LS32 = rf"(?:{_H16}:{_H16}|{IPV4})"
# RFC 3986's IPv6address, as pve-common's IPV6RE builds it.
IPV6 = "(?:" + "|".join((
    rf"(?:{_H16}:){{6}}{_LS32}",
    rf"::(?:{_H16}:){{5}}{_LS32}",
    rf"(?:{_H16})?::(?:{_H16}:){{4}}{_LS32}",
    rf"(?:(?:{_H16}:){{0,1}}{_H16})?::(?:{_H16}:){{3}}{_LS32}",
    rf"(?:(?:{_H16}:){{0,2}}{_H16})?::(?:{_H16}:){{2}}{_LS32}",
    rf"(?:(?:{_H16}:){{0,3}}{_H16})?::{_H16}:{_LS32}",
    rf"(?:(?:{_H16}:){{0,4}}{_H16})?::{_LS32}",
    rf"(?:(?:{_H16}:){{0,5}}{_H16})?::{_H16}",
    rf"(?:(?:{_H16}:){{0,6}}{_H16})?::",
)) + ")"
# pve_verify_cidrv4 / cidrv6: a prefix of 8 to 32 (IPv4) or 8 to 128 (IPv6) bits.
CIDR4 = rf"{IPV4}/(?:[89]|[12][0-9]|3[0-2])"
CIDR6 = rf"{IPV6}/(?:[89]|[1-9][0-9]|1[01][0-9]|12[0-8])"
# PVE::JSONSchema::parse_boolean, case-insensitive.
BOOLEAN = r"(?i:1|0|on|off|yes|no|true|false)"


def anchored(pattern: str) -> str:
    return rf"\A(?:{pattern})\Z"


# The LXC netN property string (pve-container's $netconf_desc), one pattern per key for its value.
NET_KEYS: dict[str, str] = {
    "name": r"[-_.A-Za-z0-9]+",
    "bridge": r"[-_.A-Za-z0-9]+",  # pve-bridge-id
    "hwaddr": r"[0-9a-fA-F][02468aceACE](?::[0-9a-fA-F]{2}){5}",  # mac-addr: unicast (I/G bit clear)
    "ip": rf"dhcp|manual|{CIDR4}",  # pve-ipv4-config
    "gw": IPV4,
    "ip6": rf"auto|dhcp|manual|{CIDR6}",  # pve-ipv6-config
    "gw6": IPV6,
    "firewall": BOOLEAN,
    "link_down": BOOLEAN,
    "host-managed": BOOLEAN,
    "mtu": r"6[4-9]|[7-9][0-9]|[1-9][0-9]{2,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]"
           r"|6553[0-5]",  # 64 - 65535
    "rate": r"[0-9]+(?:\.[0-9]+)?|\.[0-9]+",  # Mbps
    "tag": r"[1-9][0-9]{0,2}|[1-3][0-9]{3}|40[0-8][0-9]|409[0-4]",  # VLAN 1-4094
    "trunks": r"[0-9]+(?:;[0-9]+)*",
    "type": r"veth",
}
NET_REQUIRED = ("name",)

VMID_MIN, VMID_MAX = 100, 999_999_999  # pve-vmid
CORES_MAX = 8192
MEMORY_MIN = 16
DESCRIPTION_MAX = 8192  # pve-container: description maxLength 8 KiB

ABS_PATH = r"~?/[A-Za-z0-9._+@/-]*"  # an absolute (or ~/) path without spaces, quotes or shell syntax
_DNS_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST = rf"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[{IPV6}\]"
STACK_ID = r"[a-z][a-z0-9_]{0,63}"  # the catalog's stack ids
STORAGE_ID = r"[a-zA-Z][a-zA-Z0-9._-]*[a-zA-Z0-9]"  # pve-storage-id
ENV_NAME = r"[A-Za-z_][A-Za-z0-9_]{0,127}"
_APPLIANCE = r"[A-Za-z0-9][A-Za-z0-9._+-]{0,254}"
# One line of an authorized_keys file without options: a key type sshd takes, the key's base64 and an
# optional comment (no control character, so no second line).
SSH_PUBLIC_KEY = (r"(?:ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(?:256|384|521)|sk-ssh-ed25519@openssh\.com"
                  r"|sk-ecdsa-sha2-nistp256@openssh\.com) AAAA[A-Za-z0-9+/]{16,16384}={0,2}"
                  r"(?: [^\x00-\x1f\x7f]{1,1024})?")

# Scalar variables: the whole value (an int or bool as its text) must match.
SCALARS: dict[str, str] = {
    # One DNS label in lower case: a hostname Proxmox accepts (dns-name, max 255) and a sane record name.
    "ctforge_template_name": _DNS_LABEL,
    "ctforge_workspace_name": _DNS_LABEL,  # the workspace CT's hostname
    "ctforge_vmid": r"[1-9][0-9]{2,8}",  # pve-vmid: 100 - 999999999
    "ctforge_parent_vmid": r"[1-9][0-9]{2,8}",
    "ctforge_smoke_vmid": r"[1-9][0-9]{2,8}",
    "ctforge_template_vmid": r"[1-9][0-9]{2,8}",  # the ready template a workspace is cloned from
    "ctforge_node": r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?",  # pve-node
    "ctforge_storage": STORAGE_ID,
    "ctforge_template_storage": STORAGE_ID,
    # An appliance name (debian-12-standard) or a volume id (local:vztmpl/debian-12-standard_12.12-1_amd64...)
    "ctforge_base_ct_template": rf"{_APPLIANCE}|{STORAGE_ID}:vztmpl/{_APPLIANCE}",
    "ctforge_cores": r"[1-9][0-9]{0,2}|[1-7][0-9]{3}|80[0-9]{2}|81[0-8][0-9]|819[0-2]",  # 1 - 8192
    "ctforge_memory": r"1[6-9]|[2-9][0-9]|[1-9][0-9]{2,8}",  # MiB, >= 16
    "ctforge_swap": r"0|[1-9][0-9]{0,8}",  # MiB, >= 0
    "ctforge_disk_gb": r"[1-9][0-9]{0,5}",  # GiB, >= 1
    "ctforge_unprivileged": BOOLEAN,
    "ctforge_keep_build_key": BOOLEAN,
    # Free text, stored by Proxmox as the config's comment: lines and tabs, no other control characters.
    "ctforge_description": rf"[^\x00-\x08\x0b-\x1f\x7f]{{0,{DESCRIPTION_MAX}}}",
    "ctforge_ssh_private_key_file": ABS_PATH,
    "ctforge_state_dir": ABS_PATH,
    # How long a community.proxmox module waits for its task before the playbook follows it by UPID (s).
    "ctforge_pve_module_wait": r"[1-9][0-9]{0,3}",
    # How long provision and finalize wait for a started CT's IPv4 and SSH (tasks/wait_for_ssh.yml, s).
    "ctforge_ssh_timeout": r"[1-9][0-9]{0,4}",
    # The roles' shared options (roles/*/defaults): the dev user's name, and a full pass of every role.
    "ctforge_dev_user": r"(?!root\Z)[a-z_][a-z0-9_-]{0,31}",  # a user name other than root
    "ctforge_reapply": BOOLEAN,
    # The build-time apt proxy: empty, or http(s)://host[:port][/path]; no quote or space for apt.conf.
    "ctforge_apt_proxy": rf"|https?://(?:{_HOST})(?::[0-9]{{1,5}})?(?:/[A-Za-z0-9._~%/-]*)?",
    # The power state workspace_power.yml brings a workspace CT to.
    "ctforge_state": r"started|stopped",
}
# Scalars that must be text: a number or a boolean there is refused (the others take digits as text too).
TEXTS = ("ctforge_template_name", "ctforge_node", "ctforge_storage", "ctforge_template_storage",
         "ctforge_base_ct_template", "ctforge_description", "ctforge_ssh_private_key_file",
         "ctforge_state_dir", "ctforge_apt_proxy", "ctforge_dev_user", "ctforge_workspace_name",
         "ctforge_state")
# List variables: each item must match; no item twice.
LISTS: dict[str, str] = {
    "ctforge_stacks": STACK_ID,
    "ctforge_inherited_stacks": STACK_ID,
    "ctforge_ca_certificates": ABS_PATH,
    "ctforge_template_stacks": STACK_ID,  # a workspace's template's effective stacks
    "ctforge_ssh_public_keys": SSH_PUBLIC_KEY,  # the workspace owner's keys
}
# Mapping variables: each key and each value must match.
MAPPINGS: dict[str, dict[str, str]] = {
    # One line of text per variable, without control characters (written to the CT's environment).
    "ctforge_env_vars": {"key": ENV_NAME, "value": r"[^\x00-\x1f\x7f]{0,4096}"},
}
# netN property strings: each part KEY=VALUE with a key of NET_KEYS and a value of its format, no key
# twice, the required keys present.
NETS = ("ctforge_net0",)

# The table request_problems() checks a playbook request against, anchored for `match`.
FORMATS: dict[str, Any] = {
    "scalars": {name: anchored(p) for name, p in SCALARS.items()},
    "texts": list(TEXTS),
    "lists": {name: anchored(p) for name, p in LISTS.items()},
    "mappings": {name: {k: anchored(p) for k, p in kv.items()} for name, kv in MAPPINGS.items()},
    "nets": list(NETS),
    "net_keys": {key: anchored(p) for key, p in NET_KEYS.items()},
    "net_required": list(NET_REQUIRED),
}


def hostname_for(name: str) -> str:
    """The CT hostname (one DNS label) for a template's name, which may have capitals, spaces, dots:
    "Full stack" -> full-stack, "Node.js 22" -> node-js-22."""
    label = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:63].rstrip("-")
    return label or "ctforge-template"


def login_command(ip: str | None, dev_user: str | None) -> str | None:
    """How the owner logs in to a workspace: `ssh DEV_USER@IP`, the address alone while its user is
    unknown (a record from before migration 0004), None without an address."""
    if not ip:
        return None
    return f"ssh {dev_user}@{ip}" if dev_user else ip


def parse_net(value: str) -> dict[str, str]:
    """A netN property string as Proxmox parses it, refused with the reason on an unknown key or bad value."""
    parts = value.split(",")
    parsed: dict[str, str] = {}
    for part in parts:
        key, _, text = part.partition("=")
        if key not in NET_KEYS:
            raise ValueError(f"{part!r}: {key!r} is not a netN key (the keys are: {', '.join(NET_KEYS)})")
        if re.fullmatch(anchored(NET_KEYS[key]), text) is None:
            raise ValueError(f"{part!r}: not a valid value for {key}")
        if key in parsed:
            raise ValueError(f"the key {key!r} appears twice")
        parsed[key] = text
    missing = [key for key in NET_REQUIRED if key not in parsed]
    if missing:
        raise ValueError(f"the key {missing[0]!r} is required")
    return parsed


def _shown(value: Any) -> str:
    """A value as a refusal quotes it: its text, cut to about 80 characters, as JSON."""
    text = str(value)
    if len(text) > 85:  # Jinja's truncate(80): 5 characters of leeway, then cut at a word, "..."
        text = text[:77].rsplit(" ", 1)[0] + "..."
    return json.dumps(text)


def _matches(pattern: str, value: Any) -> bool:
    return re.match(pattern, str(value)) is not None


def request_problems(check: Mapping[str, Any]) -> list[str]:
    """What is wrong with a playbook request's fields ({variable: value}, None for a field not
    given), one message per problem, each naming the variable; [] when every field has its format.
    playbooks/tasks/check_request.yml refuses a request with these (filter ctforge_request_problems).
    The values of ctforge_env_vars may be secrets: a message names their keys, never their values."""
    table, out = FORMATS, []
    for var, value in check.items():
        if value is None:
            continue
        if var in table["scalars"]:
            pattern = table["scalars"][var]
            if var in table["texts"] and not isinstance(value, str):
                out.append(f"{var} is {_shown(value)}, not text")
            elif isinstance(value, (Mapping, list, tuple, set)) or not _matches(pattern, value):
                shown_pattern = pattern if len(pattern) < 120 else "its format"
                out.append(f"{var} is {_shown(value)}, which does not match {shown_pattern} "
                           "(service/ctforge/formats.py)")
        elif var in table["lists"]:
            pattern = table["lists"][var]
            if isinstance(value, (str, Mapping)) or not isinstance(value, (list, tuple)):
                out.append(f"{var} is {_shown(value)}, not a list")
                continue
            items = [str(item) for item in value]
            bad = [item for item in items if not _matches(pattern, item)]
            if bad:
                out.append(f"{var} lists {json.dumps(bad)}, which do not match {pattern}")
            if len(set(items)) != len(items):
                out.append(f"{var} lists an item more than once: {json.dumps(items)}")
        elif var in table["mappings"]:
            formats = table["mappings"][var]
            if not isinstance(value, Mapping):
                out.append(f"{var} is not a mapping of names to values")
                continue
            bad_keys = [str(k) for k in value if not _matches(formats["key"], k)]
            bad_values = ([str(k) for k, v in value.items() if not isinstance(v, str)]
                          + [str(k) for k, v in value.items() if isinstance(v, str)
                             and not _matches(formats["value"], v)])
            if bad_keys:
                out.append(f"{var} has keys {json.dumps(bad_keys)}, which do not match {formats['key']}")
            if bad_values:
                out.append(f"{var}: the values of {json.dumps(bad_values)} are not one line of text "
                           "without control characters")
        elif var in table["nets"]:
            if not isinstance(value, str):
                out.append(f"{var} is {_shown(value)}, not a property string such as "
                           "name=eth0,bridge=vmbr0,ip=dhcp")
                continue
            keys: list[str] = []
            for part in value.split(","):
                key, sep, text = part.partition("=")
                if key not in table["net_keys"]:
                    out.append(f"{var}: {json.dumps(part)} has no known key (the keys are: "
                               f"{', '.join(table['net_keys'])})")
                elif not sep or not _matches(table["net_keys"][key], text):
                    out.append(f"{var}: {json.dumps(part)} is not a valid {key}")
                elif key in keys:
                    out.append(f"{var}: the key {key} appears twice")
                keys.append(key)
            out.extend(f"{var}: the key {key} is required"
                       for key in table["net_required"] if key not in keys)
        else:
            out.append(f"{var} has no format in service/ctforge/formats.py")
    return out
