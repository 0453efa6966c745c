"""Where Docker and Swarm mount secrets: the default home of every key, passphrase and PIN file.

Its own module so that the settings can name the defaults without loading any
key-handling code (and cryptography with it).
"""

from __future__ import annotations

from pathlib import Path

SECRETS_DIR = Path("/run/secrets")
