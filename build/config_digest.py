"""The digest of an image's config, on any image store: its layers and its settings both.

Docker's classic store reports it as the image id; the containerd store reports
the manifest's digest instead, which a registry's recompression can change. The
image labels each base with it beside the ChainID, which covers the layers only:
a base served with the same layers but another ``ONBUILD``, ``SHELL`` or ``ENV``
would run its own code in every rebuild, unseen. The config names every layer by
its digest, so only the config is read, not the layers. build/rebuild-compare.sh checks
the pulled bases against these labels; build/sbom.sh and build/verify-release.sh
name the image itself by it.

Usage: config_digest.py [--docker DOCKER] IMAGE    prints sha256:HEX
Exit status: 0, or 2 when the image cannot be saved or read (the reason on stderr).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import repro_check  # build/, beside this script: one reader of saved images


def config_digest(docker: str, image: str) -> str:
    """``sha256:`` of the config blob, read from ``docker image save``: the layers are named in it by digest."""
    with tempfile.TemporaryDirectory(prefix="config-digest-") as scratch:
        return repro_check.read_config_digest(image, repro_check.save(docker, image, Path(scratch)))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="config_digest.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("image", metavar="IMAGE")
    parser.add_argument("--docker", default="/usr/bin/docker", help="the Docker client (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        print(config_digest(args.docker, args.image))
    except repro_check.ReproCheckError as error:
        print(f"config-digest: error [{error.code}]: {error}", file=sys.stderr)
        if error.hint:
            print(error.hint, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
