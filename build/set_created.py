"""Stamp a built image with SOURCE_DATE_EPOCH instead of the clock, so that its id is reproducible too.

Docker 20.10's BuildKit writes the wall-clock time into the image config
(``created``, and each history entry's); newer engines take it from a
``SOURCE_DATE_EPOCH`` build argument. Everything else in the config is
already deterministic (``make repro-check``), so with the times set to the
commit's, two builds of one commit have the same config and therefore the
same image id (the config's digest), as apko and distroless images do.

The image is saved (``docker image save``), its config rewritten with only
those times changed, and loaded back under the same name; its layers are
copied byte for byte, and the engine checks them against the config's
``diff_ids`` on load. The image it replaces is removed if nothing else names it.

Usage: python build/set_created.py [--docker PATH] IMAGE EPOCH

Exit status: 0 stamped, 1 not (the image keeps the engine's times), 2 an
EPOCH that is not whole seconds from 1970 to 9999. stderr names a stable
code, what happened and what to do.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

LATEST = int(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp())  # RFC 3339's four-digit years end here


class StampError(Exception):
    """Base of every failure: the image keeps the engine's times. ``code`` is stable, ``hint`` says what to do."""

    code = "stamp"
    hint = ""
    exit_status = 1


class EpochError(StampError):
    code = "epoch"
    hint = "SOURCE_DATE_EPOCH is the commit's time in whole seconds since 1970, UTC: `git log -1 --format=%ct`."
    exit_status = 2


class DockerError(StampError):
    code = "docker"
    hint = "Check that the engine runs (`docker info`), that --docker names its client, and that IMAGE is local."


class RewriteError(StampError):
    code = "rewrite"
    hint = (
        "The saved image could not be read or the stamped one written: check the free space of the scratch "
        "directory ($TMPDIR), and that `docker image save IMAGE` writes an archive of one image."
    )


class ImageIdError(StampError):
    code = "image_id"
    hint = "Something tagged IMAGE again while it was stamped (another build?): build and stamp it again."


def config_time(epoch: int) -> str:
    """The config's time for SOURCE_DATE_EPOCH; refused unless 1970 to 9999, what the config and datetime hold."""
    if not 0 <= epoch <= LATEST:
        raise _out_of_range(str(epoch))
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_epoch(text: str) -> int:
    """SOURCE_DATE_EPOCH as ``date +%s`` prints a time since 1970: ASCII digits only (no sign, fraction, 1e9).

    More digits than LATEST has are refused before int() sees them, which raises ValueError past 4300 digits.
    """
    if not (text.isascii() and text.isdigit()):
        raise EpochError(f"SOURCE_DATE_EPOCH {text!r} is not a whole number of seconds")
    digits = text.lstrip("0") or "0"
    if len(digits) > len(str(LATEST)):
        raise _out_of_range(text)
    return int(digits)


def _out_of_range(epoch: str) -> EpochError:
    shown = epoch if len(epoch) <= 32 else f"{epoch[:16]}... ({len(epoch)} digits)"
    return EpochError(f"SOURCE_DATE_EPOCH {shown} is not between 0 (1970) and {LATEST} (9999-12-31T23:59:59Z)")


def stamped(config: dict[str, Any], created: str) -> dict[str, Any]:
    """The config with ``created`` and each history entry's set to ``created``; nothing else changes."""
    result = dict(config, created=created)
    history = config.get("history")
    if isinstance(history, list):
        result["history"] = [dict(entry, created=created) if isinstance(entry, dict) else entry for entry in history]
    return result


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def rewrite(saved: Path, target: Path, created: str) -> str:
    """Copy a ``docker image save`` archive with its config stamped; return the new image id."""
    with tarfile.open(saved) as source:
        manifest_file = source.extractfile("manifest.json")
        if manifest_file is None:
            raise RewriteError("the saved image has no manifest.json")
        manifest = json.load(manifest_file)
        if not (isinstance(manifest, list) and len(manifest) == 1):
            raise RewriteError("the saved archive does not hold exactly one image")
        old_name = manifest[0]["Config"]
        config_file = source.extractfile(old_name)
        if config_file is None:
            raise RewriteError(f"the saved image has no config {old_name}")
        config = stamped(json.load(config_file), created)
        config_bytes = json.dumps(config, separators=(",", ":")).encode()
        image_id = hashlib.sha256(config_bytes).hexdigest()
        manifest[0]["Config"] = f"{image_id}.json"
        with tarfile.open(target, "w") as archive:
            for member in source:
                if member.name in {"manifest.json", old_name}:
                    continue
                archive.addfile(member, source.extractfile(member) if member.isfile() else None)
            _add(archive, f"{image_id}.json", config_bytes)
            _add(archive, "manifest.json", json.dumps(manifest).encode())
    return f"sha256:{image_id}"


def _docker(docker: str, *args: str) -> str:
    try:
        result = subprocess.run([docker, *args], capture_output=True, text=True, errors="backslashreplace", check=False)
    except OSError as error:
        raise DockerError(f"cannot run {docker}: {error}") from error
    if result.returncode != 0:
        raise DockerError(f"docker {args[0]} {args[1]} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def stamp(docker: str, image: str, epoch: int) -> str:
    time = config_time(epoch)
    old_id = _docker(docker, "image", "inspect", "-f", "{{.Id}}", image)
    with tempfile.TemporaryDirectory(prefix="set-created-") as scratch:
        saved, rewritten = Path(scratch) / "saved.tar", Path(scratch) / "stamped.tar"
        _docker(docker, "image", "save", "-o", str(saved), image)
        new_id = rewrite(saved, rewritten, time)
        saved.unlink()
        _docker(docker, "image", "load", "-q", "-i", str(rewritten))
    if _docker(docker, "image", "inspect", "-f", "{{.Id}}", image) != new_id:
        raise ImageIdError(f"{image} is not the stamped image {new_id} after loading it")
    if old_id != new_id:
        subprocess.run([docker, "image", "rm", old_id], capture_output=True, check=False)  # kept if still named
    return new_id


def _failed(image: str, error: StampError) -> int:
    print(f"set_created: {image}: error [{error.code}]: {error}", file=sys.stderr)
    if error.hint:
        print(error.hint, file=sys.stderr)
    return error.exit_status


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="set_created.py", description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("image", metavar="IMAGE")
    parser.add_argument("epoch", metavar="EPOCH", help="SOURCE_DATE_EPOCH: whole seconds since 1970, UTC")
    parser.add_argument("--docker", default=shutil.which("docker") or "/usr/bin/docker")
    args = parser.parse_args(argv)
    try:
        epoch = parse_epoch(args.epoch)
        image_id = stamp(args.docker, args.image, epoch)
    except StampError as error:
        return _failed(args.image, error)
    except (OSError, tarfile.TarError, KeyError, TypeError, ValueError) as error:
        return _failed(args.image, RewriteError(f"{type(error).__name__}: {error}"))
    print(f"set_created: {args.image} is {image_id}, created {epoch} (SOURCE_DATE_EPOCH)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
