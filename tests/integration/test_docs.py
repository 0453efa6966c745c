"""Every shell block of README.md and SECURITY.md is exercised (see ``tests/doc_blocks.py``).

Here: Makefile targets exist, usage synopses match ``--help``, and the
``cli`` runbooks run as written in a scratch directory with a scratch home.
``container`` blocks run in ``tests/container/test_docs_container.py`` (the
swarm stack's in ``test_swarm_stack.py``), the ``openssl`` recipe in
``test_openssl_interop.py``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.doc_blocks import KINDS, ROOT, Block, commands, provide, scenarios, script, shell_blocks

BIN = Path(sys.executable).parent
CLI = str(BIN / "mcp-orchestration")


def test_every_shell_block_has_a_marker_and_every_kind_is_used() -> None:
    blocks = shell_blocks()  # raises, naming the block, if one lacks a marker
    assert {block.kind for block in blocks} == KINDS
    assert len([b for b in blocks if b.kind == "openssl"]) == 1


def _blocks(kind: str) -> list[Block]:
    return [block for blocks in scenarios(kind).values() for block in blocks]


@pytest.mark.parametrize("block", _blocks("make"), ids=lambda b: b.where)
def test_documented_make_targets_exist(block: Block) -> None:
    for command in commands(block):
        argv = command.split()
        assert argv[0] == "make", f"{block.where}: not a make command: {command}"
        dry = subprocess.run(
            ["make", "-n", *argv[1:]], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
            env={**os.environ, "DOCKER": "/bin/false"},  # a dry run must not reach an engine
        )  # fmt: skip
        assert dry.returncode == 0, f"{block.where}: `{command}`: {dry.stderr}"


def _help(words: list[str]) -> str:
    result = subprocess.run([CLI, *words, "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, f"`mcp-orchestration {' '.join(words)} --help`: {result.stderr}"
    return result.stdout


@pytest.mark.parametrize("block", _blocks("synopsis"), ids=lambda b: b.where)
def test_documented_synopses_match_the_help(block: Block) -> None:
    for command in commands(block):
        argv = command.split()
        assert argv[0] == "mcp-orchestration", f"{block.where}: not our command: {command}"
        path = []  # the subcommand: the leading lowercase words
        for word in argv[1:]:
            if not re.fullmatch(r"[a-z][a-z-]*", word):
                break
            path.append(word)
        text = _help(path)
        for option in re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", command):
            assert option in text, f"{block.where}: {option} is not an option of `{' '.join(path)}`"


@pytest.mark.parametrize("name", sorted(scenarios("cli")), ids=str)
def test_documented_runbooks_run_as_written(name: str, tmp_path: Path) -> None:
    blocks = scenarios("cli")[name]
    for block in blocks:
        for file in block.files:
            provide(file, tmp_path)
    env = {
        "PATH": f"{BIN}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
    }
    result = subprocess.run(
        ["bash", "-c", script(blocks)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    where = ", ".join(block.where for block in blocks)
    assert result.returncode == 0, f"{where} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
