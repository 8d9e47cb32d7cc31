"""minipve's parameter checks give Proxmox's messages (no containers needed)."""

from __future__ import annotations

import pytest

from minipve.paramdefs import SCHEMAS
from minipve.params import MISSING, UNKNOWN, ParamErrors, validate
from minipve.state import format_conf, parse_conf

CREATE = SCHEMAS[("POST", "/nodes/{node}/lxc")]
SHUTDOWN = SCHEMAS[("POST", "/nodes/{node}/lxc/{vmid}/status/shutdown")]


def errors_of(schema, raw) -> dict[str, str]:
    with pytest.raises(ParamErrors) as info:
        validate(schema, raw)
    return info.value.errors


def test_values_are_typed_from_form_strings() -> None:
    got = validate(
        CREATE,
        {
            "node": "minipve",
            "vmid": "101",
            "ostemplate": "local:vztmpl/x.tar.zst",
            "start": "1",
            "unprivileged": "false",
            "cpulimit": "1.5",
            "net0": "name=eth0",
        },
    )
    assert got["vmid"] == 101 and got["start"] is True and got["unprivileged"] is False
    assert got["cpulimit"] == 1.5 and got["net0"] == "name=eth0"


@pytest.mark.parametrize(
    ("raw", "name", "message"),
    [
        ({"vmid": "x"}, "vmid", "type check ('integer') failed - got 'x'"),
        ({"vmid": "99"}, "vmid", "invalid format - value does not look like a valid VM ID"),
        ({"vmid": "101", "timeout": "-1"}, "timeout", "value must have a minimum value of 0"),
        ({"vmid": "101", "forceStop": "maybe"}, "forceStop", "type check ('boolean') failed - got 'maybe'"),
        ({"vmid": "101", "force": "1"}, "force", UNKNOWN),
        ({}, "vmid", MISSING),
    ],
)
def test_errors_name_the_culprit(raw, name, message) -> None:
    assert errors_of(SHUTDOWN, {"node": "minipve", **raw})[name] == message


def test_indexed_and_enum_parameters() -> None:
    base = {"node": "minipve", "vmid": "101", "ostemplate": "t"}
    assert validate(CREATE, {**base, "net31": "name=eth0", "mp255": "x"})["net31"] == "name=eth0"
    assert errors_of(CREATE, {**base, "net32": "name=eth0"}) == {"net32": UNKNOWN}
    assert errors_of(CREATE, {**base, "cmode": "x"}) == {
        "cmode": "value 'x' does not have a value in the enumeration 'shell, console, tty'"
    }
    assert errors_of(CREATE, {**base, "hostname": "bad_name!"}) == {
        "hostname": "invalid format - value does not look like a valid DNS name"
    }


def test_conf_round_trip_keeps_description_and_types() -> None:
    conf = {
        "description": "line one\nline two: 100%",
        "hostname": "web1",
        "memory": 512,
        "template": 1,
        "net0": "name=eth0,bridge=vmbr0,ip=dhcp",
    }
    text = format_conf(conf)
    assert text.startswith("#line one\n#line two: 100%25\n") and "memory: 512\n" in text
    assert parse_conf(text) == conf
