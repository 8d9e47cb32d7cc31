"""minipve's own parameter definitions for every endpoint it serves (Proxmox VE 9 names and types).

Keyed by (METHOD, path template); the router serves exactly these. Parameters that minipve accepts
but does not act on (pool, unprivileged, features, ...) are still declared: they are validated and
stored in the CT config as Proxmox stores them.
"""

from __future__ import annotations

from minipve.params import Param, b, i, n, s

VMID_MAX = 999_999_999
NODE = s(optional=False, format="pve-node")
VMID = i(optional=False, format="pve-vmid", minimum=100, maximum=VMID_MAX)
OPT_VMID = i(format="pve-vmid", minimum=100, maximum=VMID_MAX)
UPID = s(optional=False)
STORAGE = s(optional=False, format="pve-storage-id")
LOCKS = (
    "backup",
    "create",
    "destroyed",
    "disk",
    "fstrim",
    "migrate",
    "mounted",
    "rollback",
    "snapshot",
    "snapshot-delete",
)
ARCHES = ("amd64", "i386", "arm64", "armhf", "riscv32", "riscv64")
OSTYPES = (
    "debian",
    "devuan",
    "ubuntu",
    "centos",
    "fedora",
    "opensuse",
    "archlinux",
    "alpine",
    "gentoo",
    "nixos",
    "unmanaged",
)
CTRL_CHARS = r"[^\x00-\x08\x10-\x1F\x7F]"

# Settings a CT config holds, shared by create and config PUT.
CT_OPTIONS: dict[str, Param] = {
    "arch": s(default="amd64", enum=ARCHES),
    "cmode": s(default="tty", enum=("shell", "console", "tty")),
    "console": b(default=1),
    "cores": i(minimum=1, maximum=8192),
    "cpulimit": n(default=0, minimum=0, maximum=8192),
    "cpuunits": i(minimum=0, maximum=500000),
    "debug": b(default=0),
    "description": s(max_length=8192),
    "dev[n]": s(format="property-string", index_max=255),
    "entrypoint": s(default="/sbin/init", pattern=f"{CTRL_CHARS}+"),
    "env": s(pattern=rf"(?:\w+={CTRL_CHARS}*)(?:\0\w+={CTRL_CHARS}*)*"),
    "features": s(format="property-string"),
    "hookscript": s(format="pve-volume-id"),
    "hostname": s(format="dns-name", max_length=255),
    "lock": s(enum=LOCKS),
    "memory": i(default=512, minimum=16),
    "mp[n]": s(format="property-string", index_max=255),
    "nameserver": s(format="lxc-ip-with-ll-iface-list"),
    "net[n]": s(format="property-string", index_max=31),
    "onboot": b(default=0),
    "ostype": s(enum=OSTYPES),
    "protection": b(default=0),
    "rootfs": s(format="property-string"),
    "searchdomain": s(format="dns-name-list"),
    "startup": s(format="pve-startup-order"),
    "swap": i(default=512, minimum=0),
    "tags": s(format="pve-tag-list"),
    "template": b(default=0),
    "timezone": s(format="pve-ct-timezone"),
    "tty": i(default=2, minimum=0, maximum=6),
    "unprivileged": b(default=0),
    "unused[n]": s(format="property-string", index_max=255),
}

CT_CREATE: dict[str, Param] = {
    **CT_OPTIONS,
    "node": NODE,
    "vmid": VMID,
    "ostemplate": s(optional=False, max_length=255),
    "bwlimit": n(minimum=0),
    "force": b(),
    "ha-managed": b(default=0),
    "ignore-unpack-errors": b(),
    "password": s(),
    "pool": s(format="pve-poolid"),
    "restore": b(),
    "ssh-public-keys": s(),
    "start": b(default=0),
    "storage": s(default="local", format="pve-storage-id"),
    "unique": b(),
}

CT_CONFIG_PUT: dict[str, Param] = {
    **CT_OPTIONS,
    "node": NODE,
    "vmid": VMID,
    "delete": s(format="pve-configid-list"),
    "digest": s(max_length=40),
    "revert": s(format="pve-configid-list"),
}

NODE_ONLY = {"node": NODE}
CT_ONLY = {"node": NODE, "vmid": VMID}
TASK = {"node": NODE, "upid": UPID}

NEXT_ID_FORMAT = {"lower": (100, VMID_MAX), "upper": (100, VMID_MAX + 1)}

SCHEMAS: dict[tuple[str, str], dict[str, Param]] = {
    ("GET", "/version"): {},
    ("GET", "/access/ticket"): {},
    ("POST", "/access/ticket"): {
        "username": s(optional=False, max_length=64),
        "password": s(optional=False),
        "realm": s(format="pve-realm", max_length=32),
        "otp": s(),
        "path": s(max_length=64),
        "privs": s(format="pve-priv-list", max_length=64),
        "new-format": b(default=1),
        "tfa-challenge": s(),
    },
    ("GET", "/nodes"): {},
    ("GET", "/nodes/{node}/status"): NODE_ONLY,
    ("GET", "/cluster/status"): {},
    ("GET", "/cluster/resources"): {"type": s(enum=("vm", "storage", "node", "sdn"))},
    ("GET", "/cluster/nextid"): {"vmid": OPT_VMID},
    ("GET", "/cluster/options"): {},
    ("PUT", "/cluster/options"): {
        "bwlimit": s(format="property-string"),
        "consent-text": s(max_length=65536),
        "console": s(enum=("applet", "vv", "html5", "xtermjs")),
        "crs": s(format="property-string"),
        "delete": s(format="pve-configid-list"),
        "description": s(max_length=65536),
        "email_from": s(format="email-opt"),
        "fencing": s(default="watchdog", enum=("watchdog", "hardware", "both")),
        "ha": s(format="property-string"),
        "http_proxy": s(pattern=r"http://.*"),
        "keyboard": s(
            enum=(
                "de",
                "de-ch",
                "da",
                "en-gb",
                "en-us",
                "es",
                "fi",
                "fr",
                "fr-be",
                "fr-ca",
                "fr-ch",
                "hu",
                "is",
                "it",
                "ja",
                "lt",
                "mk",
                "nl",
                "no",
                "pl",
                "pt",
                "pt-br",
                "sv",
                "sl",
                "tr",
            )
        ),
        "language": s(
            enum=(
                "ar",
                "ca",
                "da",
                "de",
                "en",
                "es",
                "eu",
                "fa",
                "fr",
                "hr",
                "he",
                "it",
                "ja",
                "ka",
                "kr",
                "nb",
                "nl",
                "nn",
                "pl",
                "pt_BR",
                "ru",
                "sl",
                "sv",
                "tr",
                "ukr",
                "zh_CN",
                "zh_TW",
            )
        ),
        "mac_prefix": s(default="BC:24:11", format="mac-prefix"),
        "max_workers": i(minimum=1),
        "migration": s(format="property-string"),
        "migration_unsecure": b(),
        "next-id": s(format="property-string"),
        "notify": s(format="property-string"),
        "registered-tags": s(),
        "replication": s(format="property-string"),
        "tag-style": s(format="property-string"),
        "u2f": s(format="property-string"),
        "user-tag-access": s(format="property-string"),
        "webauthn": s(format="property-string"),
    },
    ("GET", "/nodes/{node}/lxc"): NODE_ONLY,
    ("POST", "/nodes/{node}/lxc"): CT_CREATE,
    ("GET", "/nodes/{node}/lxc/{vmid}"): CT_ONLY,
    ("DELETE", "/nodes/{node}/lxc/{vmid}"): {
        **CT_ONLY,
        "destroy-unreferenced-disks": b(),
        "force": b(default=0),
        "purge": b(default=0),
    },
    ("POST", "/nodes/{node}/lxc/{vmid}/clone"): {
        **CT_ONLY,
        "newid": VMID,
        "bwlimit": n(minimum=0),
        "description": s(),
        "full": b(),
        "hostname": s(format="dns-name"),
        "pool": s(format="pve-poolid"),
        "snapname": s(format="pve-configid", max_length=40),
        "storage": s(format="pve-storage-id"),
        "target": s(format="pve-node"),
    },
    ("GET", "/nodes/{node}/lxc/{vmid}/config"): {
        **CT_ONLY,
        "current": b(default=0),
        "snapshot": s(format="pve-configid", max_length=40),
    },
    ("PUT", "/nodes/{node}/lxc/{vmid}/config"): CT_CONFIG_PUT,
    ("GET", "/nodes/{node}/lxc/{vmid}/status"): CT_ONLY,
    ("GET", "/nodes/{node}/lxc/{vmid}/status/current"): CT_ONLY,
    ("POST", "/nodes/{node}/lxc/{vmid}/status/start"): {**CT_ONLY, "debug": b(default=0), "skiplock": b()},
    ("POST", "/nodes/{node}/lxc/{vmid}/status/stop"): {
        **CT_ONLY,
        "overrule-shutdown": b(default=0),
        "skiplock": b(),
    },
    ("POST", "/nodes/{node}/lxc/{vmid}/status/shutdown"): {
        **CT_ONLY,
        "forceStop": b(default=0),
        "timeout": i(default=60, minimum=0),
    },
    ("POST", "/nodes/{node}/lxc/{vmid}/status/reboot"): {**CT_ONLY, "timeout": i(minimum=0)},
    ("GET", "/nodes/{node}/lxc/{vmid}/interfaces"): CT_ONLY,
    ("POST", "/nodes/{node}/lxc/{vmid}/template"): CT_ONLY,
    ("GET", "/nodes/{node}/storage"): {
        **NODE_ONLY,
        "content": s(format="pve-storage-content-list"),
        "enabled": b(default=0),
        "format": b(default=0),
        "storage": s(format="pve-storage-id"),
        "target": s(format="pve-node"),
    },
    ("GET", "/nodes/{node}/storage/{storage}/status"): {**NODE_ONLY, "storage": STORAGE},
    ("GET", "/nodes/{node}/storage/{storage}/content"): {
        **NODE_ONLY,
        "storage": STORAGE,
        "content": s(format="pve-storage-content"),
        "vmid": OPT_VMID,
    },
    ("DELETE", "/nodes/{node}/storage/{storage}/content/{volume}"): {
        **NODE_ONLY,
        "storage": s(format="pve-storage-id"),
        "volume": s(optional=False),
        "delay": i(minimum=1, maximum=30),
    },
    ("GET", "/nodes/{node}/aplinfo"): NODE_ONLY,
    ("POST", "/nodes/{node}/aplinfo"): {
        **NODE_ONLY,
        "storage": STORAGE,
        "template": s(optional=False, max_length=255),
    },
    ("GET", "/nodes/{node}/tasks"): {
        **NODE_ONLY,
        "errors": b(default=0),
        "limit": i(default=50, minimum=0),
        "since": i(),
        "source": s(default="archive", enum=("archive", "active", "all")),
        "start": i(default=0, minimum=0),
        "statusfilter": s(format="pve-task-status-type-list"),
        "typefilter": s(),
        "until": i(),
        "userfilter": s(),
        "vmid": OPT_VMID,
    },
    ("GET", "/nodes/{node}/tasks/{upid}"): TASK,
    ("GET", "/nodes/{node}/tasks/{upid}/status"): TASK,
    ("GET", "/nodes/{node}/tasks/{upid}/log"): {
        **TASK,
        "download": b(),
        "limit": i(default=50, minimum=0),
        "start": i(default=0, minimum=0),
    },
}
