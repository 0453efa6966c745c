"""build/set_created.py: only the config's times change, and two builds of one commit get one image id."""

from __future__ import annotations

from pathlib import Path

from tests.build_scripts import load
from tests.unit.test_repro_check import BASE, VENV, repro_check, saved_image

EPOCH_ISO = "2026-12-03T11:58:32Z"


set_created = load("set_created")


def test_two_builds_stamped_with_one_epoch_have_one_image_id(tmp_path: Path) -> None:
    first = saved_image(tmp_path / "a.tar", [BASE, VENV], created="2026-12-03T12:00:01.123456789Z")
    second = saved_image(tmp_path / "b.tar", [BASE, VENV], created="2026-12-04T08:30:00.5Z")
    a_id = set_created.rewrite(first, tmp_path / "a2.tar", EPOCH_ISO)
    b_id = set_created.rewrite(second, tmp_path / "b2.tar", EPOCH_ISO)
    assert a_id == b_id
    a = repro_check.read_saved("A", tmp_path / "a2.tar")
    assert a.id == a_id  # the engine's id: the digest of the config bytes written


def test_only_the_times_change_and_the_layers_are_copied_byte_for_byte(tmp_path: Path) -> None:
    original = repro_check.read_saved("A", saved_image(tmp_path / "a.tar", [BASE, VENV]))
    set_created.rewrite(tmp_path / "a.tar", tmp_path / "stamped.tar", EPOCH_ISO)
    stamped = repro_check.read_saved("A", tmp_path / "stamped.tar")  # checks every layer against its diff id
    assert stamped.config["created"] == EPOCH_ISO
    assert {entry["created"] for entry in stamped.config["history"]} == {EPOCH_ISO}
    assert repro_check.compare(original, stamped) == []
    assert [layer.diff_id for layer in stamped.layers] == [layer.diff_id for layer in original.layers]
    assert stamped.id != original.id
