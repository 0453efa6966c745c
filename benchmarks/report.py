"""How every benchmark prints: headed sections, aligned lines, verdicts against targets, one summary.

A benchmark prints what it ran, the baseline it ran beside, both figures, the
ratio and the target; ``summary`` ends the run with PASS/FAIL per target and
the exit status.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Outcome:
    name: str
    target: str
    passed: bool
    figure: str


RESULTS: list[Outcome] = []


def heading(text: str) -> None:
    print()
    print(text)
    print("-" * len(text))


def line(label: str, text: str) -> None:
    print(f"  {label:<11} {text}")


def verdict(name: str, passed: bool, target: str, figure: str, label: str = "target") -> None:
    """Record a target's outcome and print it."""
    RESULTS.append(Outcome(name, target, passed, figure))
    line(label, f"{target}  ->  {'PASS' if passed else 'FAIL'}")


def load_average() -> str:
    """The 1/5/15-minute load average: other work on the machine skews every figure."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f} {five:.2f} {fifteen:.2f} (1/5/15 min) on {os.cpu_count()} CPUs"


def print_machine() -> None:
    """The section every benchmark opens with."""
    heading("Environment")
    line("python", f"{platform.python_implementation()} {platform.python_version()} ({sys.executable})")
    line("system", f"{platform.system()} {platform.release()} {platform.machine()}, {os.cpu_count()} CPUs")
    line("load", load_average())


def summary(started: float) -> int:
    """Print every verdict and the run time; the exit status is 1 if any target failed."""
    heading("Summary")
    width = max((len(outcome.name) for outcome in RESULTS), default=0)
    for outcome in RESULTS:
        mark = "PASS" if outcome.passed else "FAIL"
        print(f"  {mark}  {outcome.name:<{width}} {outcome.figure:<14} target {outcome.target}")
    print(f"\nload average at the end: {load_average()}")
    print(f"total run time {time.perf_counter() - started:.1f} s")
    return 0 if all(o.passed for o in RESULTS) else 1


@contextlib.contextmanager
def scratch_dir(parent: Path | None, prefix: str, keep: bool) -> Iterator[Path]:
    """A fresh directory for one run (under ``parent`` if given), removed afterwards unless ``keep``."""
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        yield work
    finally:
        if keep:
            print(f"\nkept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (p50 of 500 values is the 250th smallest, p99 the 495th)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"
