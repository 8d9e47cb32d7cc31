"""etc/pve/storage.cfg: Proxmox's format, `local` always there, clear errors for what minipve cannot serve."""

from __future__ import annotations

from pathlib import Path

import pytest

from minipve.config import ConfigError
from minipve.storagecfg import LOCAL_CONTENT, config_path, load_storages


def write(state: Path, text: str) -> Path:
    path = config_path(state)
    path.parent.mkdir(parents=True)
    path.write_text(text)
    return path


def test_a_missing_file_is_written_with_local_alone(tmp_path: Path) -> None:
    storages = load_storages(tmp_path, tmp_path / "local")
    assert list(storages) == ["local"] and storages["local"].content == LOCAL_CONTENT
    text = config_path(tmp_path).read_text()
    assert text.startswith("dir: local\n\tpath ")
    assert "\tcontent backup,images,iso,rootdir,snippets,vztmpl\n" in text
    assert load_storages(tmp_path, tmp_path / "local") == storages  # read back the same


def test_extra_dir_storages_are_read(tmp_path: Path) -> None:
    write(tmp_path, "dir: local\n\tpath /ignored\n\tcontent iso\n\n# ISOs from the NAS\ndir: isos\n"
                    "        path /srv/isos\n        content iso,vztmpl\n")
    storages = load_storages(tmp_path, tmp_path / "local")
    assert storages["local"].path == tmp_path / "local" and storages["local"].content == LOCAL_CONTENT
    assert storages["isos"].path == Path("/srv/isos") and storages["isos"].content_text == "iso,vztmpl"


@pytest.mark.parametrize(("text", "message"), [
    ("lvm: thick\n\tvgname pve\n", "thick is of type lvm; minipve serves dir storages only"),
    ("dir: more\n\tpath /srv/more\n\tcontent rootdir,iso\n", "keeps container volumes on storage local only"),
    ("dir: odd\n\tpath /srv/odd\n\tcontent iso,movies\n", "storage odd has unknown content movies"),
    ("dir: nopath\n\tcontent iso\n", "storage nopath needs a `path`"),
    ("\tpath /srv\n", "an option before any `type: name` line"),
    ("dir\n", "expected `type: name`"),
    ("dir: 9bad\n\tpath /x\n", "'9bad' is not a valid storage identifier"),
    ("dir: twice\n\tpath /a\n\ndir: twice\n\tpath /b\n", "storage twice is defined twice"),
])
def test_what_minipve_cannot_serve_is_named(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_storages(tmp_path, tmp_path / "local")
    assert message in str(info.value) and str(path) in str(info.value)
