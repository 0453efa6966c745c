"""``make image`` stamps the image's own layers with its own SOURCE_DATE_EPOCH, never one a cache remembers.

BuildKit keys a COPY by its source's contents, not their times: two builds
whose trees differ only in times would share one cached layer, stamped with the
first build's time. ``make repro-check`` builds with ``--no-cache`` and cannot
see that; this runs ``make image`` again, right after the image was built with
another epoch, and reads every entry of the layers it adds.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.build_scripts import load
from tests.container.conftest import DOCKER, IMAGE, docker

pytestmark = pytest.mark.container

ROOT = Path(__file__).resolve().parents[2]
TAG = "mcp-orchestration:epoch-test"
repro_check = load("repro_check")


@pytest.fixture
def other_epoch_image() -> Iterator[tuple[str, int]]:
    labels = docker("image", "inspect", "-f", "{{.Created}}", IMAGE).stdout.strip()
    epoch = int(datetime.fromisoformat(labels.replace("Z", "+00:00")).timestamp()) + 3600
    result = subprocess.run(
        ["make", "--no-print-directory", "image", f"IMAGE={TAG}", f"SOURCE_DATE_EPOCH={epoch}", f"DOCKER={DOCKER}"],
        capture_output=True, text=True, timeout=600, check=False, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    yield TAG, epoch
    docker("image", "rm", TAG, check=False)


def test_a_build_right_after_one_with_another_epoch_stamps_every_entry_it_adds_with_its_own(
    other_epoch_image: tuple[str, int], tmp_path: Path
) -> None:
    tag, epoch = other_epoch_image
    image = repro_check.read_saved(tag, repro_check.save(DOCKER, tag, tmp_path))
    added = [layer for layer in image.layers if "/layers/" in layer.created_by]
    assert len(added) == 3  # venv, stdlib bytecode, store directory
    want = datetime.fromtimestamp(epoch, UTC).isoformat()
    stale = [
        f"{name}: {entry.mtime}"
        for layer in added
        for (name, _), entry in repro_check.read_entries(image, layer).items()
        if entry.mtime != want
    ]
    assert stale == []
    assert image.config["created"] == datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
