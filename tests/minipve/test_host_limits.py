"""The host limits minipve raises for many containers at once (the twenty-workspaces test is the end to
end proof: past the inotify limit a CT boots without a lease)."""

from __future__ import annotations

from minipve.host.lxc import INOTIFY_WANTED, raise_inotify_limit


def test_a_low_inotify_limit_is_raised_and_a_higher_one_left_alone(tmp_path) -> None:
    limit = tmp_path / "max_user_instances"
    limit.write_text("128\n")
    assert raise_inotify_limit(limit) == 128
    assert limit.read_text() == f"{INOTIFY_WANTED}\n"
    assert raise_inotify_limit(limit) is None  # at the wanted value already
    limit.write_text("65536\n")
    assert raise_inotify_limit(limit) is None
    assert limit.read_text() == "65536\n"  # never lowered


def test_a_limit_that_cannot_be_read_changes_nothing(tmp_path) -> None:
    assert raise_inotify_limit(tmp_path / "absent") is None
    limit = tmp_path / "read-only"
    limit.mkdir()  # a directory: reading fails as on a host without the file
    assert raise_inotify_limit(limit) is None
