"""The shell blocks of README.md and SECURITY.md, and how each one is exercised.

Every ``sh`` block in the two documents is preceded by a marker naming the
test that runs it, so no documented command can drift from the code:

    <!-- doc-test: KIND [scenario=NAME] [files=NAME,NAME] -->

``make`` blocks list Makefile targets (each must exist: ``make -n``);
``synopsis`` blocks show a command's usage (each option must be in its
``--help``); ``cli`` blocks run on the host in a scratch directory;
``container`` blocks run against the built image; ``openssl`` is the
independent verification recipe. Blocks of one ``scenario`` run in document
order as one script, so a runbook's steps share their variables. ``files``
names inputs the harness provides in the scratch directory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = (ROOT / "README.md", ROOT / "SECURITY.md")
KINDS = frozenset({"make", "synopsis", "cli", "container", "openssl"})

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
_MARKER = re.compile(r"<!-- doc-test: (\w+)((?: [\w-]+=[\w.,/-]+)*) -->\s*\Z")


@dataclass(frozen=True)
class Block:
    """One fenced shell block and its marker."""

    document: str
    line: int
    kind: str
    scenario: str
    files: tuple[str, ...]
    text: str

    @property
    def where(self) -> str:
        return f"{self.document}:{self.line}"


def shell_blocks() -> list[Block]:
    """Every ``sh`` block of the documents; a block without a valid marker fails here, naming its place."""
    blocks = []
    for path in DOCUMENTS:
        text = path.read_text(encoding="utf-8")
        for fence in _FENCE.finditer(text):
            if fence.group(1) != "sh":
                continue
            line = text.count("\n", 0, fence.start()) + 1
            before = text[: fence.start()].rstrip().rsplit("\n", 1)[-1] + "\n"
            marker = _MARKER.search(before)
            if marker is None or marker.group(1) not in KINDS:
                raise AssertionError(f"{path.name}:{line}: sh block without a doc-test marker of {sorted(KINDS)}")
            options = dict(item.split("=", 1) for item in marker.group(2).split())
            blocks.append(
                Block(
                    document=path.name,
                    line=line,
                    kind=marker.group(1),
                    scenario=options.get("scenario", f"{path.stem}-{line}"),
                    files=tuple(filter(None, options.get("files", "").split(","))),
                    text=_dedent(fence.group(2)),
                )
            )
    return blocks


def scenarios(kind: str) -> dict[str, list[Block]]:
    """The blocks of ``kind``, grouped by scenario, in document order."""
    grouped: dict[str, list[Block]] = {}
    for block in shell_blocks():
        if block.kind == kind:
            grouped.setdefault(block.scenario, []).append(block)
    return grouped


def commands(block: Block) -> list[str]:
    """The block's commands: continuation lines joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", block.text)
    lines = (line.split("  #", 1)[0].strip() for line in joined.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _dedent(text: str) -> str:
    """A block indented inside a list item, as written at the left margin."""
    lines = text.splitlines()
    indent = min((len(line) - len(line.lstrip()) for line in lines if line.strip()), default=0)
    return "\n".join(line[indent:] for line in lines) + "\n"


def provide(name: str, directory: Path) -> None:
    """Create the input ``name`` a block expects in its scratch directory."""
    import json
    import os

    from tests.conftest import SAMPLE_CONFIG, write_key

    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if name == "config.json":
        path.write_text(json.dumps(SAMPLE_CONFIG))
    elif name in ("compose.secrets.yml", "deploy/swarm/publisher.stack.yml"):
        path.write_bytes((ROOT / name).read_bytes())
    elif path.name.startswith("signing_key"):
        write_key(path)  # as a Docker secret must be: readable by the container's uid only
        os.chown(path, 65532, 65532)
        path.chmod(0o400)
    else:
        raise AssertionError(f"no provider for the documented input {name!r}")


def script(blocks: list[Block]) -> str:
    """One bash script of a scenario's blocks, failing at the first failed command."""
    parts = [f"# {block.where}\n{block.text}" for block in blocks]
    return "set -euo pipefail\n" + "\n".join(parts)
