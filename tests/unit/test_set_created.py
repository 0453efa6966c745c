"""build/set_created.py: only the config's times change, and two builds of one commit get one image id."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from tests.unit.test_repro_check import BASE, VENV, repro_check, saved_image

ROOT = Path(__file__).resolve().parents[2]
EPOCH_ISO = "2026-12-03T11:58:32Z"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("set_created", ROOT / "build" / "set_created.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["set_created"] = module
    spec.loader.exec_module(module)
    return module


set_created = _load()


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
