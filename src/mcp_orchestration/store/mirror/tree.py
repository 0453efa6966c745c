"""The files of a mirror, and the most a reader takes of each.

The same paths as a store's ``storage/`` directory, so a store (or a copy of
one on a share) is itself a mirror::

    index/HEAD                  the current signed head (the only file that changes)
    keys/00000001.json ...      the key history versions (each written once)
    objects/sha256/ab/cdef...   every object the heads reach, heads included (each written once)
"""

from __future__ import annotations

from mcp_orchestration.core.errors import InvalidIdError
from mcp_orchestration.security.ids import check_artifact_id

HEAD_PATH = "index/HEAD"
MAX_HEAD_BYTES = 64 * 1024  # a head envelope is about 700 bytes
MAX_KEY_VERSION_BYTES = 1 << 20  # as store/keyhistory.py bounds them
MAX_OBJECT_BYTES = 16 << 20  # a client tree of 100,000 profiles; far above any config
MAX_KEY_VERSIONS = 10_000  # how many key history versions a head may claim


def key_path(number: int) -> str:
    """The path of key history version ``number`` (1-based)."""
    if not 1 <= number <= MAX_KEY_VERSIONS:
        raise InvalidIdError(f"Key history version {number} is out of range.")
    return f"keys/{number:08d}.json"


def object_path(object_id: str) -> str:
    """The path of an object; the id is checked first, so it never makes another path."""
    object_id = check_artifact_id(object_id)
    return f"objects/sha256/{object_id[:2]}/{object_id[2:]}"


def is_mirror_path(path: str) -> bool:
    """Whether ``path`` is one a mirror holds (what a transport may be asked for)."""
    if path == HEAD_PATH:
        return True
    parts = path.split("/")
    if len(parts) == 2 and parts[0] == "keys":
        name = parts[1]
        return len(name) == 13 and name.endswith(".json") and name[:8].isdigit()
    if len(parts) == 4 and parts[:2] == ["objects", "sha256"]:
        try:
            return object_path(parts[2] + parts[3]) == path
        except InvalidIdError:
            return False
    return False
