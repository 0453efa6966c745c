"""``${env:NAME}`` and ``${input:ID}``: how a config refers to values it must not hold.

Clients expand them (VS Code both, Cursor and Windsurf ``env``); deploy writes
values for the clients that cannot, and ``lock`` starts servers with them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

PLACEHOLDER = re.compile(r"\$\{(env|input):([A-Za-z_][A-Za-z0-9_.-]{0,127})\}")


def substitute_env(text: str, values: Mapping[str, str]) -> str:
    """``text`` with each ``${env:NAME}`` whose NAME is in ``values`` replaced by its value; the rest kept."""
    return PLACEHOLDER.sub(lambda m: values.get(m[2], m[0]) if m[1] == "env" else m[0], text)
