"""Volumes of storage `local`: plain directories (full) and overlayfs linked clones (chains).

A volume lives in `<storage>/images/<vmid>/<last part of its name>/` and keeps a `volume.json`:
{"kind": "dir"|"overlay", "lower": [names of lower volumes, topmost first], "base": bool}.
A dir volume's root filesystem is `rootfs/`; an overlay volume holds only `upper/` and `work/` and is
mounted at `<state>/mnt/<vmid>` while used. Base (template) volumes are read-only: nothing in this
module writes into one, and they are only ever lower layers or copy sources.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from minipve.host import HostConfig, HostError, Log
from minipve.host.commands import run, write_file

_PART = re.compile(r"^(subvol|basevol)-(\d+)-disk-(\d+)$")
META = "volume.json"


def _no_symlink_parents(root: Path, relpath: str) -> Path:
    parent = root
    for part in Path(relpath).parent.parts:
        parent = parent / part
        if parent.is_symlink():
            raise HostError(f"refusing to write /{relpath}: /{parent.relative_to(root)} is a symlink")
    return root / relpath


def _parse(volume: str) -> tuple[str, int, str]:
    """(kind prefix, owner vmid, last part) of a volume name; HostError when malformed."""
    parts = volume.split("/")
    if not 1 <= len(parts) <= 2 or not all(_PART.match(p) for p in parts):
        raise HostError(f"unable to parse volume name '{volume}'")
    match = _PART.match(parts[-1])
    assert match is not None
    return match.group(1), int(match.group(2)), parts[-1]


class Volumes:
    def __init__(self, config: HostConfig) -> None:
        self.config = config
        self.images = config.storage_dir / "images"
        self.mnt = config.state_dir / "mnt"

    # -- naming and metadata -------------------------------------------------------------------
    def path(self, volume: str) -> Path:
        _, vmid, last = _parse(volume)
        return self.images / str(vmid) / last

    def meta(self, volume: str) -> dict:
        try:
            return json.loads((self.path(volume) / META).read_text())
        except FileNotFoundError:
            raise HostError(f"volume '{volume}' does not exist") from None

    def _write_meta(self, volume: str, meta: dict) -> None:
        write_file(self.path(volume) / META, json.dumps(meta, indent=1) + "\n")

    def layer(self, volume: str) -> Path:
        """The directory this volume adds to a stack: rootfs of a dir volume, upper of an overlay."""
        return self.path(volume) / ("rootfs" if self.meta(volume)["kind"] == "dir" else "upper")

    def is_base(self, volume: str) -> bool:
        return _parse(volume)[0] == "basevol"

    def _metas(self) -> list[dict]:
        """Every volume's volume.json. A concurrent destroy renames a volume to .<name>.destroying,
        removes it, then removes its VMID's directory: those are skipped, and so is whatever goes
        between the listing and the read (pathlib's glob would match the dot names, and fails on a
        directory removed while it walks)."""
        metas = []
        for owner_dir in sorted(_entries(self.images)):
            for volume_dir in sorted(_entries(owner_dir)):
                if volume_dir.name.startswith("."):
                    continue
                try:
                    metas.append(json.loads((volume_dir / META).read_text()))
                except (FileNotFoundError, NotADirectoryError):
                    continue
        return metas

    def all_volumes(self) -> list[str]:
        return [meta["name"] for meta in self._metas()]

    def _new_dir(self, volume: str) -> Path:
        path = self.path(volume)
        if path.exists():
            raise HostError(f"volume '{volume}' already exists")
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    # -- creation ----------------------------------------------------------------------------
    def create(self, vmid: int, ostemplate: Path, log: Log) -> str:
        if not ostemplate.is_file():
            raise HostError(f"volume '{ostemplate.name}' does not exist")
        volume = f"subvol-{vmid}-disk-0"
        path = self._new_dir(volume)
        staging = path.with_name(f".{path.name}.creating")
        shutil.rmtree(staging, ignore_errors=True)
        (staging / "rootfs").mkdir(parents=True)
        try:
            log(f"extracting archive '{ostemplate}'")
            run(
                [
                    "tar",
                    "-xpf",
                    ostemplate,
                    "--zstd",
                    "--numeric-owner",
                    "--xattrs",
                    "--xattrs-include=*",
                    "--acls",
                    "-C",
                    staging / "rootfs",
                ],
            )
            write_file(staging / META, json.dumps({"name": volume, "kind": "dir", "lower": []}) + "\n")
            os.rename(staging, path)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return volume

    def linked_clone(self, base_volume: str, vmid: int) -> str:
        if not self.is_base(base_volume):
            raise HostError(f"linked clone feature is not supported for '{base_volume}' (not a template)")
        base_meta = self.meta(base_volume)
        base_last = _parse(base_volume)[2]
        volume = f"{base_last}/subvol-{vmid}-disk-0"
        path = self._new_dir(volume)
        staging = path.with_name(f".{path.name}.creating")
        shutil.rmtree(staging, ignore_errors=True)
        (staging / "upper").mkdir(parents=True)
        (staging / "work").mkdir()
        lower = [base_volume, *base_meta["lower"]]
        write_file(staging / META, json.dumps({"name": volume, "kind": "overlay", "lower": lower}) + "\n")
        os.rename(staging, path)
        return volume

    def full_clone(self, source: str, vmid: int, log: Log) -> str:
        volume = f"subvol-{vmid}-disk-0"
        path = self._new_dir(volume)
        staging = path.with_name(f".{path.name}.creating")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        try:
            with self.opened(source) as src_root:
                log(f"copying volume '{source}' to '{volume}'")
                run(["cp", "-a", "--reflink=auto", src_root, staging / "rootfs"])
            write_file(staging / META, json.dumps({"name": volume, "kind": "dir", "lower": []}) + "\n")
            os.rename(staging, path)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return volume

    def make_base(self, volume: str, vmid: int) -> str:
        kind, owner, last = _parse(volume)
        if kind == "basevol":
            raise HostError("you can't convert a template to a template")
        if owner != vmid:
            raise HostError(f"volume '{volume}' does not belong to CT {vmid}")
        self._unmount(owner)
        new_last = last.replace("subvol-", "basevol-", 1)
        new_name = volume.rsplit("/", 1)[0] + "/" + new_last if "/" in volume else new_last
        meta = self.meta(volume)
        meta.update(name=new_name, base=True)
        old_path, new_path = self.path(volume), self.path(new_name)
        self._write_meta(volume, meta)
        os.rename(old_path, new_path)
        return new_name

    # -- queries -------------------------------------------------------------------------------
    def linked_clones_of(self, volume: str) -> list[str]:
        users = []
        for meta in self._metas():
            if volume in meta.get("lower", []):
                users.append(meta["name"])
        return users

    def usage(self, volume: str) -> int:
        proc = run(["du", "-s", "-B1", "-x", self.layer(volume)], check=False)
        with contextlib.suppress(ValueError, IndexError):
            return int(proc.stdout.split()[0])
        return 0

    def destroy(self, volume: str) -> None:
        _, owner, _ = _parse(volume)
        path = self.path(volume)
        if not path.exists():
            return
        users = self.linked_clones_of(volume)
        if users:
            raise HostError(f"base volume '{volume}' is still in use by linked clones")
        self._unmount(owner)
        if os.path.ismount(self.mnt / str(owner)):
            raise HostError(f"volume '{volume}' is still mounted")
        doomed = path.with_name(f".{path.name}.destroying")
        os.rename(path, doomed)
        shutil.rmtree(doomed)
        with contextlib.suppress(OSError):
            path.parent.rmdir()

    # -- mounting ------------------------------------------------------------------------------
    def rootfs(self, volume: str) -> Path:
        """Where the CT's root filesystem is seen (mount overlays first with `mount`)."""
        if self.meta(volume)["kind"] == "dir":
            return self.path(volume) / "rootfs"
        return self.mnt / str(_parse(volume)[1])

    def mount(self, volume: str) -> Path:
        meta = self.meta(volume)
        target = self.rootfs(volume)
        if meta["kind"] == "dir" or os.path.ismount(target):
            return target
        lowers = [str(self.layer(name)) for name in meta["lower"]]
        for name, layer in zip(meta["lower"], lowers, strict=True):
            if not Path(layer).is_dir():
                raise HostError(f"lower volume '{name}' of '{volume}' is missing")
        target.mkdir(parents=True, exist_ok=True)
        path = self.path(volume)
        if meta.get("base"):  # a template is only read: stack its own layer as one more lower
            options = f"lowerdir={':'.join([str(path / 'upper'), *lowers])}"
        else:
            options = f"lowerdir={':'.join(lowers)},upperdir={path / 'upper'},workdir={path / 'work'}"
        run(["mount", "-t", "overlay", "overlay", "-o", options, target])
        return target

    def unmount(self, volume: str) -> None:
        self._unmount(_parse(volume)[1])

    def _unmount(self, vmid: int) -> None:
        target = self.mnt / str(vmid)
        if os.path.ismount(target):
            run(["umount", target])
        with contextlib.suppress(OSError):
            target.rmdir()

    def write_offline(self, volume: str, relpath: str, text: str, mode: int) -> None:
        """Write one file into a volume without mounting it (mount and umount cost a filesystem sync).

        For an unmounted overlay this is an offline change of its upper layer, which overlayfs
        allows: missing parent directories are created with the owner and mode of the lower ones.
        """
        if self.meta(volume)["kind"] == "dir" or os.path.ismount(self.rootfs(volume)):
            write_file(_no_symlink_parents(self.rootfs(volume), relpath), text, mode)
            return
        upper = self.layer(volume)
        lowers = [self.layer(name) for name in self.meta(volume)["lower"]]
        parent = Path(relpath).parent
        for depth in range(1, len(parent.parts) + 1):
            part = Path(*parent.parts[:depth])
            if (upper / part).is_dir():
                continue
            source = next((low / part for low in lowers if (low / part).is_dir()), None)
            if source is None or (upper / part).is_symlink():
                raise HostError(f"cannot write /{relpath} in volume '{volume}': /{part} is not a directory")
            st = source.lstat()
            (upper / part).mkdir(mode=st.st_mode & 0o7777)
            os.chown(upper / part, st.st_uid, st.st_gid)
            os.chmod(upper / part, st.st_mode & 0o7777)
        write_file(upper / relpath, text, mode)

    @contextlib.contextmanager
    def opened(self, volume: str) -> Iterator[Path]:
        """The volume's root filesystem for a moment; mounted only for as long as needed."""
        target = self.rootfs(volume)
        was_mounted = self.meta(volume)["kind"] == "dir" or os.path.ismount(target)
        root = self.mount(volume)
        try:
            yield root
        finally:
            if not was_mounted:
                self.unmount(volume)


def _entries(directory: Path) -> list[Path]:
    """The subdirectories of `directory`; none when it is gone (removed by a concurrent destroy)."""
    try:
        return [Path(entry.path) for entry in os.scandir(directory) if entry.is_dir(follow_symlinks=False)]
    except (FileNotFoundError, NotADirectoryError):
        return []
