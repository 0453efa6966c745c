"""Schedule definitions for an unattended sync: each rendering parsed back, hostile arguments intact."""

from __future__ import annotations

import plistlib
import re
import shlex
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path, PurePosixPath
from xml.etree import ElementTree as ET

import pytest

from mcp_orchestration.app.schedules import TASK_NAMESPACE, render_schedule
from mcp_orchestration.core.errors import ValidationError

URL = "https://mirror.example.com/mcp%20store/?a=1&b=2"
FINGERPRINT = "SHA256:" + "0f" * 32
HOSTILE = [
    *("sync", "--from", URL, "--expect-key", FINGERPRINT, "--apply", "claude-desktop/default"),
    *("two words", 'say "hi"', "back\\slash\\", "trail\\\\", "100%", "%%", "$HOME", "héllo ✓ 😀", "", ";"),
]
POSIX_PROGRAM = ["/opt/mcp orchestration/bin/mcp-orchestration"]
WINDOWS_PROGRAM = ["C:\\Program Files\\mcp-orchestration\\mcp-orchestration.exe"]
EVERY = timedelta(minutes=15)
NS = {"t": TASK_NAMESPACE}
ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"'}


def ms_crt_split(line: str) -> list[str]:
    """Split a command line as the Microsoft C runtime does (2n backslashes + quote -> n and toggle, ...)."""
    args: list[str] = []
    current: list[str] = []
    in_quotes = started = False
    i = 0
    while i < len(line):
        char = line[i]
        if char == "\\":
            run = len(line[i:]) - len(line[i:].lstrip("\\"))
            if i + run < len(line) and line[i + run] == '"':
                current.append("\\" * (run // 2))
                if run % 2:
                    current.append('"')
                    i += run + 1
                else:
                    i += run
                started = True
                continue
            current.append("\\" * run)
            i += run
            started = True
            continue
        if char == '"':
            if in_quotes and i + 1 < len(line) and line[i + 1] == '"':
                current.append('"')  # "" inside quotes: a literal quote (post-2008 CRT)
                i += 2
                continue
            in_quotes = not in_quotes
            started = True
        elif char in " \t" and not in_quotes:
            if started:
                args.append("".join(current))
                current, started = [], False
        else:
            current.append(char)
            started = True
        i += 1
    if started:
        args.append("".join(current))
    return args


def systemd_split(value: str) -> list[str]:
    """Undo ExecStart quoting: words in double quotes with C escapes, ``%%`` and ``$$`` halved, ``\\;``."""
    words = []
    for match in re.finditer(r'"((?:[^"\\]|\\.)*)"|\\;', value):
        if match[0] == "\\;":
            words.append(";")
            continue
        text = re.sub(r"%%", "%", re.sub(r"\$\$", "$", match[1]))
        words.append(re.sub(r"\\(x[0-9a-f]{2}|.)", lambda m: ESCAPES.get(m[1]) or chr(int(m[1][1:], 16)), text))
    return words


def parse_unit(text: str) -> dict[str, dict[str, str]]:
    """A small systemd unit reader: ``[Section]`` headers and ``Key=value`` lines."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in text.splitlines():
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        assert key and key not in current, line
        current[key] = value
    return sections


def test_launchd_agent_runs_the_arguments_as_given_in_the_background() -> None:
    files = render_schedule("macos", POSIX_PROGRAM, HOSTILE, EVERY, home=PurePosixPath("/Users/ada"))
    agent = plistlib.loads(files["com.mcp-orchestration.sync.plist"])
    assert agent["Label"] == "com.mcp-orchestration.sync"
    assert agent["ProgramArguments"] == POSIX_PROGRAM + HOSTILE
    assert agent["StartInterval"] == 900 and agent["RunAtLoad"] is True
    assert agent["ProcessType"] == "Background" and agent["LowPriorityIO"] is True
    assert agent["StandardOutPath"].startswith("/Users/ada/Library/Logs/")
    assert agent["StandardErrorPath"].startswith("/Users/ada/Library/Logs/")


def test_windows_task_is_utf16_least_privilege_interactive_and_never_doubled() -> None:
    data = render_schedule("windows", WINDOWS_PROGRAM, HOSTILE, EVERY)["mcp-orchestration-sync.xml"]
    assert data.startswith(b"\xff\xfe")
    assert data.decode("utf-16").startswith('<?xml version="1.0" encoding="UTF-16"?>')
    task = ET.fromstring(data.decode("utf-16").split("?>", 1)[1])  # noqa: S314 (our own output)
    assert task.tag == f"{{{TASK_NAMESPACE}}}Task"
    assert task.findtext("t:Triggers/t:TimeTrigger/t:Repetition/t:Interval", namespaces=NS) == "PT15M"
    assert task.find("t:Triggers/t:TimeTrigger/t:StartBoundary", NS) is not None
    assert task.findtext("t:Principals/t:Principal/t:LogonType", namespaces=NS) == "InteractiveToken"
    assert task.findtext("t:Principals/t:Principal/t:RunLevel", namespaces=NS) == "LeastPrivilege"
    assert task.findtext("t:Settings/t:MultipleInstancesPolicy", namespaces=NS) == "IgnoreNew"
    assert task.findtext("t:Settings/t:ExecutionTimeLimit", namespaces=NS) == "PT15M"
    command = task.findtext("t:Actions/t:Exec/t:Command", namespaces=NS)
    arguments = task.findtext("t:Actions/t:Exec/t:Arguments", namespaces=NS)
    assert command == WINDOWS_PROGRAM[0] and arguments is not None
    assert ms_crt_split(arguments) == HOSTILE
    assert URL in arguments and FINGERPRINT in arguments


def test_windows_refuses_what_task_scheduler_would_expand() -> None:
    with pytest.raises(ValidationError, match="%USERPROFILE%"):
        render_schedule("windows", WINDOWS_PROGRAM, ["sync", "--state", "%USERPROFILE%\\x"], EVERY)
    with pytest.raises(ValidationError, match="line break"):
        render_schedule("windows", WINDOWS_PROGRAM, ["a\nb"], EVERY)
    kept = render_schedule("windows", WINDOWS_PROGRAM, ["https://x.example/%E2%9C%93%20"], EVERY)
    assert "%E2%9C%93%20" in kept["mcp-orchestration-sync.xml"].decode("utf-16")


def test_systemd_user_units_quote_every_argument_back_exactly() -> None:
    argv = [*HOSTILE, "new\nline\ttab"]
    files = render_schedule("linux", POSIX_PROGRAM, argv, EVERY)
    service = parse_unit(files["mcp-orchestration-sync.service"].decode())["Service"]
    assert service["Type"] == "oneshot" and service["NoNewPrivileges"] == "yes"
    assert systemd_split(service["ExecStart"]) == POSIX_PROGRAM + argv
    assert "%%20" in service["ExecStart"] and "$$HOME" in service["ExecStart"]
    timer = parse_unit(files["mcp-orchestration-sync.timer"].decode())
    assert timer["Timer"]["OnUnitActiveSec"] == "15min" and timer["Timer"]["OnBootSec"] == "5min"
    assert int(timer["Timer"]["RandomizedDelaySec"]) > 0 and timer["Timer"]["Persistent"] == "true"
    assert timer["Install"]["WantedBy"] == "timers.target"
    assert "mcp-orchestration-sync.crontab" not in files  # a line break has no crontab form


def test_cron_line_runs_the_same_command() -> None:
    line = render_schedule("linux", POSIX_PROGRAM, HOSTILE, EVERY)["mcp-orchestration-sync.crontab"].decode()
    when, command = line[: len("*/15 * * * *")], line[len("*/15 * * * * ") :]
    assert when == "*/15 * * * *" and command.endswith("\n")
    assert shlex.split(command.replace("\\%", "%")) == POSIX_PROGRAM + HOSTILE  # cron unescapes \\% first
    assert "%" not in re.sub(r"\\%", "", command)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_accepts_the_units(tmp_path: Path) -> None:
    program = tmp_path / "mcp orchestration"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    for name, content in render_schedule("linux", [str(program)], HOSTILE, EVERY).items():
        (tmp_path / name).write_bytes(content)
    units = [str(tmp_path / "mcp-orchestration-sync.service"), str(tmp_path / "mcp-orchestration-sync.timer")]
    result = subprocess.run(
        ["systemd-analyze", "--user", "verify", *units], capture_output=True, text=True, check=False
    )
    problems = [line for line in result.stderr.splitlines() if "mcp-orchestration-sync" in line]
    assert not problems, result.stderr


@pytest.mark.parametrize("every", [timedelta(minutes=4), timedelta(minutes=7, seconds=30), timedelta(0)])
def test_intervals_are_whole_minutes_of_at_least_five(every: timedelta) -> None:
    with pytest.raises(ValidationError, match="at least"):
        render_schedule("linux", POSIX_PROGRAM, ["sync"], every)


def test_programs_must_be_absolute_and_platforms_known() -> None:
    with pytest.raises(ValidationError, match="absolute"):
        render_schedule("linux", ["mcp-orchestration"], ["sync"], EVERY)
    with pytest.raises(ValidationError, match="absolute"):
        render_schedule("windows", ["/usr/bin/x"], ["sync"], EVERY)
    with pytest.raises(ValidationError, match="platform"):
        render_schedule("darwin", POSIX_PROGRAM, ["sync"], EVERY)
