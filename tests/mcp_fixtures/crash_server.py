#!/usr/bin/env python3
"""Writes credentials and terminal escapes on stderr, then exits with status 3 before answering anything.

``crash_server.py GITHUB_TOKEN JWT`` writes both tokens it is given, and the
value of ``$CRASH_SECRET`` (a secret no rule recognises: only the probe's
knowledge of the environment it passed can mask it).
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    github_token, jwt = sys.argv[1:3]
    sys.stderr.write(f"loading config with token {github_token}\n")
    sys.stderr.write(f"GET /api Authorization: Bearer {jwt}\n")
    sys.stderr.write(f"connecting with password {os.environ.get('CRASH_SECRET', '')}\n")
    sys.stderr.write("\x1b[31mfatal\x1b[0m: cannot continue\x1b[2K\n")
    sys.exit(3)


if __name__ == "__main__":
    main()
