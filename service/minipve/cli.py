"""`minipve serve | doctor | reset`."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

import typer

from minipve import config as cfg
from minipve.host import HostConfig, HostError, Problem
from minipve.statelock import StateDirInUse, hold
from minipve.storagecfg import load_storages

app = typer.Typer(help="A one-node Proxmox VE API over real LXC containers.", no_args_is_help=True)

STATE = typer.Option(cfg.DEFAULT_STATE_DIR, "--state-dir", help="where minipve keeps everything it makes")
LISTEN = typer.Option(cfg.DEFAULT_LISTEN, "--listen", help="loopback or the bridge gateway address")
PORT = typer.Option(cfg.DEFAULT_PORT, "--port", min=1, max=65535)
SUBNET = typer.Option(cfg.DEFAULT_SUBNET, "--subnet", help="private IPv4 subnet of the bridge")
BRIDGE = typer.Option(cfg.DEFAULT_BRIDGE, "--bridge", help="Linux bridge minipve owns")
NODE = typer.Option(cfg.DEFAULT_NODE, "--node", help="Proxmox node name")
SETTINGS_FILE = "serve.json"
DEFAULT_APPLIANCE = "debian-12-standard"


def _die(message: str) -> None:
    typer.echo(f"minipve: {message}", err=True)
    raise typer.Exit(1)


def _settings(state_dir: Path, listen: str, port: int, subnet: str, bridge: str, node: str) -> cfg.Settings:
    try:
        settings = cfg.Settings(
            state_dir=state_dir.resolve(),
            listen=listen,
            port=port,
            subnet=cfg.parse_subnet(subnet),
            bridge=bridge,
            node=node,
        )
        settings.check_listen()
    except cfg.ConfigError as exc:
        _die(str(exc))
    if len(bridge) > 15 or not bridge.replace("-", "").replace("_", "").isalnum():
        _die(f"--bridge {bridge!r}: a Linux interface name is at most 15 letters, digits, '-' or '_'")
    return settings


def _host(settings: cfg.Settings):
    from minipve.host.lxc import LxcHost

    return LxcHost(
        HostConfig(
            state_dir=settings.state_dir, node=settings.node, bridge=settings.bridge, subnet=settings.subnet
        )
    )


def _hold(state_dir: Path, command: str, advice: str) -> int:
    """The state dir's lock for this process's lifetime (see minipve.statelock), or exit."""
    try:
        return hold(state_dir, command)
    except StateDirInUse as exc:
        _die(f"{exc}: {advice}")
    except OSError as exc:
        _die(f"cannot lock {state_dir}: {exc}")
    raise AssertionError("unreachable")


def _print_problems(problems: list[Problem]) -> None:
    for problem in problems:
        typer.echo(f"- {problem.what}\n    fix: {problem.fix}", err=True)


def _write_client_env(settings: cfg.Settings, creds: cfg.Credentials, apt_proxy: str | None) -> Path:
    user, _, token = cfg.DEFAULT_TOKEN.partition("!")
    values = {
        "PROXMOX_HOST": settings.listen,
        "PROXMOX_PORT": str(settings.port),
        "PROXMOX_USER": user,
        "PROXMOX_TOKEN_ID": token,
        "PROXMOX_TOKEN_SECRET": creds.tokens.get(cfg.DEFAULT_TOKEN, ""),
        "PROXMOX_VALIDATE_CERTS": "false",
        "PROXMOX_NODE": settings.node,
        "MINIPVE_APT_PROXY": apt_proxy or "",
    }
    path = settings.state_dir / "client.env"
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.writelines(f"{key}={value}\n" for key, value in values.items())
    os.replace(tmp, path)
    return path


@app.command()
def serve(
    state_dir: Path = STATE,
    listen: str = LISTEN,
    port: int = PORT,
    subnet: str = SUBNET,
    bridge: str = BRIDGE,
    node: str = NODE,
    appliance: str = typer.Option(
        DEFAULT_APPLIANCE,
        "--appliance",
        help="appliance to place in storage local before serving ('' for none)",
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Serve the Proxmox VE API on https://LISTEN:PORT/api2/json until SIGTERM or Ctrl-C."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    settings = _settings(state_dir, listen, port, subnet, bridge, node)
    # Before anything else: a second serve on a state dir in use leaves the first one alone.
    _lock = _hold(settings.state_dir, "serve", "stop that process first, or choose another --state-dir")
    (settings.state_dir / "client.env").unlink(missing_ok=True)  # a crashed serve's, if any
    host = _host(settings)
    problems = host.check()
    if problems:
        typer.echo("minipve cannot serve: the host lacks what it needs:", err=True)
        _print_problems(problems)
        raise typer.Exit(1)
    try:
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        creds = cfg.load_credentials(settings)
        storages = load_storages(settings.state_dir, host.config.storage_dir)
        for store in storages.values():  # once here, as Proxmox makes a dir storage's path
            store.path.mkdir(parents=True, exist_ok=True)
    except (cfg.ConfigError, OSError) as exc:
        _die(str(exc))
    (settings.state_dir / SETTINGS_FILE).write_text(
        json.dumps({"subnet": str(settings.subnet), "bridge": settings.bridge, "node": settings.node}) + "\n"
    )
    try:
        host.up()
    except HostError as exc:
        _die(f"cannot set up the host: {exc}")

    from minipve.api.app import App
    from minipve.api.auth import Auth
    from minipve.api.routes import build_router
    from minipve.api.server import make_server
    from minipve.certs import ensure_certificate
    from minipve.recovery import recover

    stop = threading.Event()
    server = None
    try:
        api = App(settings, host, Auth(creds, settings.state_dir), storages)
        recover(api)
        if appliance:
            known = {a.package: a for a in host.appliances()}
            if appliance not in known:
                _die(f"--appliance {appliance!r} is unknown; known: {', '.join(sorted(known))}")
            target = host.config.storage_dir / "template" / "cache" / known[appliance].template
            if not target.exists():
                logging.getLogger("minipve").info("placing appliance %s in storage local", appliance)
                host.build_appliance(
                    appliance, lambda line: logging.getLogger("minipve.appliance").info(line)
                )
        cert, key = ensure_certificate(
            settings.state_dir, settings.node, [settings.listen, str(settings.gateway)]
        )
        try:
            server = make_server(api, build_router(), settings.listen, settings.port, str(cert), str(key))
        except OSError as exc:
            _die(f"cannot listen on {settings.listen}:{settings.port}: {exc.strerror or exc}")
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        thread = threading.Thread(target=server.serve_forever, name="minipve-http", daemon=True)
        thread.start()
        _write_client_env(settings, creds, host.apt_proxy_url())
        logging.getLogger("minipve").info(
            "serving https://%s:%s/api2/json (node %s)", settings.listen, settings.port, settings.node
        )
        stop.wait()
        logging.getLogger("minipve").info("stopping: containers keep running")
    except HostError as exc:
        _die(str(exc))
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        (settings.state_dir / "client.env").unlink(missing_ok=True)
        host.down()


@app.command()
def doctor(state_dir: Path = STATE, subnet: str = SUBNET, bridge: str = BRIDGE, node: str = NODE) -> None:
    """Check every host prerequisite; print what is missing and the command that fixes it."""
    settings = _settings(state_dir, cfg.DEFAULT_LISTEN, cfg.DEFAULT_PORT, subnet, bridge, node)
    problems = _host(settings).check()
    if problems:
        typer.echo(f"{len(problems)} problem(s):", err=True)
        _print_problems(problems)
        raise typer.Exit(1)
    typer.echo("ok: this host can run minipve")


@app.command()
def reset(state_dir: Path = STATE, subnet: str = SUBNET, bridge: str = BRIDGE, node: str = NODE) -> None:
    """Stop and remove every CT, volume, daemon, nft table and the bridge minipve made; remove STATE_DIR.

    Refused while a `minipve serve` runs on STATE_DIR."""
    saved = state_dir / SETTINGS_FILE
    if saved.exists():
        try:
            data = json.loads(saved.read_text())
            subnet, bridge, node = data["subnet"], data["bridge"], data["node"]
        except (ValueError, KeyError) as exc:
            _die(f"{saved} is damaged ({exc}); pass --subnet and --bridge")
    settings = _settings(state_dir, cfg.DEFAULT_LISTEN, cfg.DEFAULT_PORT, subnet, bridge, node)
    if settings.state_dir.is_dir():  # refused while a serve runs on it: stop that serve first
        _lock = _hold(settings.state_dir, "reset", "stop that process first (SIGTERM), then reset")
    try:
        _host(settings).reset()
    except HostError as exc:
        _die(f"reset incomplete: {exc}")
    typer.echo(f"reset: removed everything minipve made for {settings.state_dir}")
