"""`minipve` commands refuse bad settings with a message naming the culprit, before touching the host."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from minipve.cli import app

runner = CliRunner()


@pytest.mark.parametrize(
    ("args", "culprit"),
    [
        (
            ["--listen", "8.8.8.8"],
            "--listen 8.8.8.8 refused: minipve listens only on loopback or on its bridge",
        ),
        (["--listen", "localhost"], "--listen 'localhost' is not an IP address"),
        (["--subnet", "10.1.2.3/33"], "--subnet '10.1.2.3/33' is not an IPv4 network"),
        (["--subnet", "10.1.2.0/30"], "--subnet 10.1.2.0/30 is too small"),
        (["--bridge", "a-bridge-name-too-long"], "--bridge 'a-bridge-name-too-long'"),
    ],
)
def test_serve_refuses_bad_settings(tmp_path, args, culprit) -> None:
    result = runner.invoke(app, ["serve", "--state-dir", str(tmp_path / "state"), *args])
    assert result.exit_code == 1
    assert culprit in result.output
    assert not (tmp_path / "state").exists()  # nothing half made


def test_listen_on_the_bridge_gateway_is_allowed(tmp_path) -> None:
    from minipve.config import Settings, parse_subnet

    Settings(state_dir=tmp_path, listen="10.232.0.1", subnet=parse_subnet("10.232.0.0/24")).check_listen()
