"""Parameter checking as Proxmox's JSON schema layer does it, with Proxmox's error texts.

Each served endpoint declares its parameters in minipve.paramdefs with `Param`. `validate` turns
the raw request values (strings from a form or query, or JSON values) into typed values, fills
defaults, and collects every error into a `{param: message}` mapping (a 400 reply).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

MISSING = "property is missing and it is not optional"
UNKNOWN = "property is not defined in schema and the schema does not allow additional properties"
TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off"}

_FORMAT_RES = {
    "pve-node": (re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?$"), "valid node name"),
    "pve-storage-id": (re.compile(r"^[a-z][a-z0-9\-_.]*[a-z0-9]$", re.I), "valid storage identifier"),
    "pve-configid": (re.compile(r"^[a-z][a-z0-9_\-]+$", re.I), "valid configuration key"),
    "pve-poolid": (re.compile(r"^[A-Za-z0-9_\-/]+$"), "valid pool identifier"),
    "dns-name": (
        re.compile(r"^([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?\.)*[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?$"),
        "valid DNS name",
    ),
    "mac-prefix": (re.compile(r"^[0-9a-fA-F][02468aAcCeE](:[0-9a-fA-F]{2}){0,2}:?$"), "valid MAC prefix"),
}


@dataclass(frozen=True)
class Param:
    type: str  # string | integer | number | boolean
    optional: bool = True
    default: Any = None
    enum: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    format: str | None = None  # a named format, or "property-string" for key=value lists
    max_length: int | None = None
    pattern: str | None = None
    index_max: int | None = None  # `net[n]`: accepted as net0..net<index_max>


def s(**kw: Any) -> Param:
    return Param("string", **kw)


def i(**kw: Any) -> Param:
    return Param("integer", **kw)


def n(**kw: Any) -> Param:
    return Param("number", **kw)


def b(**kw: Any) -> Param:
    return Param("boolean", **kw)


class ParamErrors(Exception):
    """Parameter verification failed; `errors` maps each culprit to its message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("Parameter verification failed.")
        self.errors = errors


def _lookup(schema: dict[str, Param], name: str) -> Param | None:
    if name in schema:
        return schema[name]
    m = re.fullmatch(r"([a-z]+)(\d+)", name)
    if m:
        indexed = schema.get(f"{m.group(1)}[n]")
        if indexed is not None and (indexed.index_max is None or int(m.group(2)) <= indexed.index_max):
            return indexed
    return None


def _fmt_num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _convert(param: Param, value: Any) -> Any:
    """The typed value, or raise ValueError with Proxmox's message."""
    if param.type == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in TRUE_WORDS:
            return True
        if text in FALSE_WORDS:
            return False
        raise ValueError(f"type check ('boolean') failed - got '{value}'")
    if param.type == "integer":
        if isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()))
        ):
            raise ValueError(f"type check ('integer') failed - got '{value}'")
        number: float = int(value)
        if param.format == "pve-vmid" and not re.fullmatch(r"[1-9][0-9]{2,8}", str(int(number))):
            # Proxmox checks the format before the range
            raise ValueError("invalid format - value does not look like a valid VM ID")
    elif param.type == "number":
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"type check ('number') failed - got '{value}'") from None
    else:
        if isinstance(value, (dict, list)):
            raise ValueError(f"type check ('string') failed - got '{value}'")
        text = str(value)
        if param.max_length is not None and len(text) > param.max_length:
            raise ValueError(f"value may only be {param.max_length} characters long")
        if param.enum is not None and text not in param.enum:
            raise ValueError(
                f"value '{text}' does not have a value in the enumeration '{', '.join(param.enum)}'"
            )
        if param.pattern is not None and not re.fullmatch(param.pattern, text):
            raise ValueError("value does not match the regex pattern")
        checker = _FORMAT_RES.get(param.format or "")
        if checker and not checker[0].fullmatch(text):
            raise ValueError(f"invalid format - value does not look like a {checker[1]}")
        return text
    if param.minimum is not None and number < param.minimum:
        raise ValueError(f"value must have a minimum value of {_fmt_num(param.minimum)}")
    if param.maximum is not None and number > param.maximum:
        raise ValueError(f"value must have a maximum value of {_fmt_num(param.maximum)}")
    return number


def validate(schema: dict[str, Param], raw: dict[str, Any]) -> dict[str, Any]:
    """Typed parameters with defaults filled in; raise ParamErrors listing every culprit."""
    errors: dict[str, str] = {}
    out: dict[str, Any] = {}
    for name, value in raw.items():
        param = _lookup(schema, name)
        if param is None:
            errors[name] = UNKNOWN
            continue
        try:
            out[name] = _convert(param, value)
        except ValueError as exc:
            errors[name] = str(exc)
    for name, param in schema.items():
        if name.endswith("[n]") or name in out or name in errors:
            continue
        if not param.optional:
            errors[name] = MISSING
    if errors:
        raise ParamErrors(errors)
    return out


def default(schema: dict[str, Param], name: str) -> Any:
    return schema[name].default


def parse_property_string(text: str, default_key: str | None = None) -> dict[str, str]:
    """`name=eth0,bridge=vmbr0,ip=dhcp` (a bare first item belongs to `default_key`)."""
    out: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        if "=" in item:
            key, _, value = item.partition("=")
            out[key.strip()] = value.strip()
        elif default_key is not None and default_key not in out:
            out[default_key] = item
        else:
            raise ValueError(f"missing key in '{item}'")
    return out


def format_property_string(values: dict[str, str], default_key: str | None = None) -> str:
    parts = []
    if default_key is not None and default_key in values:
        parts.append(values[default_key])
    parts.extend(f"{k}={v}" for k, v in values.items() if k != default_key)
    return ",".join(parts)
