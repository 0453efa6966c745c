#!/usr/bin/env python3
"""Never answers: reads and drops its stdin, sleeps on after EOF, ignores SIGTERM, and starts a child that does too.

Both process ids go to the file named by ``$PROBE_PID_FILE`` (the leader's
first), so a test can check that the whole tree was stopped.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(3600)"


def main() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = subprocess.Popen([sys.executable, "-c", STUBBORN])
    Path(os.environ["PROBE_PID_FILE"]).write_text(f"{os.getpid()} {child.pid}")
    while os.read(0, 1 << 16):
        pass
    time.sleep(3600)


if __name__ == "__main__":
    main()
