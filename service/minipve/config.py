"""minipve's settings: where it keeps state, where it listens, and who may log in.

Users, passwords and API tokens live in `<state>/minipve.yml` (mode 0600), made on first serve
with a generated root@pam password and token `root@pam!ctforge`. Secrets never reach a log.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import yaml

DEFAULT_STATE_DIR = Path("/var/lib/minipve")
DEFAULT_LISTEN = "127.0.0.1"
DEFAULT_PORT = 8006
DEFAULT_SUBNET = "10.213.0.0/24"
DEFAULT_BRIDGE = "mpvebr0"
DEFAULT_NODE = "minipve"
DEFAULT_TOKEN = "root@pam!ctforge"
CONFIG_NAME = "minipve.yml"


class ConfigError(Exception):
    """The config file or a setting is wrong; the message names the culprit."""


@dataclass
class Credentials:
    """Passwords by user (`root@pam`) and token secrets by full token id (`root@pam!ctforge`)."""

    users: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    def check_password(self, user: str, password: str) -> bool:
        known = self.users.get(user)
        return known is not None and secrets.compare_digest(known.encode(), password.encode())

    def check_token(self, token_id: str, secret: str) -> bool:
        known = self.tokens.get(token_id)
        return known is not None and secrets.compare_digest(known.encode(), secret.encode())


@dataclass(frozen=True)
class Settings:
    state_dir: Path = DEFAULT_STATE_DIR
    listen: str = DEFAULT_LISTEN
    port: int = DEFAULT_PORT
    subnet: ipaddress.IPv4Network = field(default_factory=lambda: ipaddress.IPv4Network(DEFAULT_SUBNET))
    bridge: str = DEFAULT_BRIDGE
    node: str = DEFAULT_NODE

    @property
    def gateway(self) -> ipaddress.IPv4Address:
        return next(self.subnet.hosts())

    @property
    def config_file(self) -> Path:
        return self.state_dir / CONFIG_NAME

    def check_listen(self) -> None:
        """minipve listens on loopback or on its own bridge's address, nowhere else."""
        try:
            addr = ipaddress.ip_address(self.listen)
        except ValueError as exc:
            raise ConfigError(f"--listen {self.listen!r} is not an IP address") from exc
        if not (addr.is_loopback or addr == self.gateway):
            raise ConfigError(
                f"--listen {self.listen} refused: minipve listens only on loopback or on its bridge "
                f"address {self.gateway}"
            )


def parse_subnet(text: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.IPv4Network(text)
    except ValueError as exc:
        raise ConfigError(f"--subnet {text!r} is not an IPv4 network such as 10.213.0.0/24: {exc}") from exc
    if net.prefixlen > 29:
        raise ConfigError(f"--subnet {text} is too small: use a /29 or larger")
    return net


def load_credentials(settings: Settings, create: bool = True) -> Credentials:
    """Read the credentials file; make it (with fresh secrets) when it is missing and `create`."""
    path = settings.config_file
    if not path.exists():
        if not create:
            raise ConfigError(f"{path} does not exist: run `minipve serve` once to create it")
        data = {
            "users": {"root@pam": {"password": secrets.token_urlsafe(18)}},
            "tokens": {DEFAULT_TOKEN: {"secret": str(uuid.uuid4())}},
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write("# minipve users and API tokens (secrets: keep this file private)\n")
            yaml.safe_dump(data, fh, sort_keys=True)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    creds = Credentials()
    for section, key, target in (("users", "password", creds.users), ("tokens", "secret", creds.tokens)):
        entries = raw.get(section) or {}
        if not isinstance(entries, dict):
            raise ConfigError(f"{path}: `{section}` must be a mapping")
        for name, value in entries.items():
            if not isinstance(value, dict) or not isinstance(value.get(key), str):
                raise ConfigError(f"{path}: {section}.{name} needs a string `{key}`")
            if section == "tokens" and "!" not in str(name):
                raise ConfigError(f"{path}: token {name!r} must look like user@realm!tokenid")
            target[str(name)] = value[key]
    return creds
