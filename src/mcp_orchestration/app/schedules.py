"""Schedule definitions that run a command (``sync``) unattended on a desktop: launchd, Task Scheduler, systemd.

Pure: :func:`render_schedule` turns an argument vector and an interval into
file contents; nothing is installed or read. Each rendering keeps every
argument exactly as given (URLs, fingerprints, spaces, quotes, ``%``,
non-ASCII), quoting it the way that file's reader unquotes, and runs as the
logged-in user at low priority, never elevated, never twice at once.
"""

from __future__ import annotations

import plistlib
import re
import shlex
import subprocess
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path, PurePath, PurePosixPath, PureWindowsPath
from xml.etree import ElementTree as ET

from mcp_orchestration.core.errors import ValidationError

LABEL = "com.mcp-orchestration.sync"  # the launchd label
UNIT = "mcp-orchestration-sync"  # the systemd unit and Windows task name
MIN_INTERVAL = timedelta(minutes=5)  # a fleet polling its mirror more often gains nothing
TASK_NAMESPACE = "http://schemas.microsoft.com/windows/2004/02/mit/task"
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# A Windows Exec action expands %NAME% in its arguments; percent-encoding (%2F, %E2%9C) is left alone.
_WINDOWS_VARIABLE = re.compile(r"%(?![0-9A-Fa-f]{2}%)([A-Za-z_][A-Za-z0-9_.()-]*)%")


def render_schedule(
    platform: str,
    program: list[str],
    arguments: list[str],
    every: timedelta,
    *,
    home: PurePath | None = None,
) -> dict[str, bytes]:
    """The files that run ``program + arguments`` every ``every`` on ``platform`` ("macos", "windows", "linux").

    ``program`` is the command to start, its first item an absolute path (e.g.
    ``["/usr/local/bin/mcp-orchestration"]``); ``arguments`` are passed as given
    (e.g. ``["sync", "--from", URL, ...]``). ``home`` (default: this user's) is
    where macOS logs go, under ``~/Library/Logs``. Returns file name -> content.
    """
    minutes = _minutes(every)
    argv = [*program, *arguments]
    if not program:
        raise ValidationError("A schedule needs a program to run.")
    for argument in argv:
        if not isinstance(argument, str) or "\x00" in argument:
            raise ValidationError("Every argument of a scheduled command must be a string without NUL.")
    renderers: dict[str, Callable[[list[str], int, PurePath | None], dict[str, bytes]]] = {
        "macos": _launchd,
        "windows": _task_scheduler,
        "linux": _systemd,
    }
    render = renderers.get(platform)
    if render is None:
        raise ValidationError(f"No schedule for platform {platform!r}: use one of {', '.join(renderers)}.")
    flavour = PureWindowsPath if platform == "windows" else PurePosixPath
    if not flavour(program[0]).is_absolute():
        raise ValidationError(
            "A scheduled program must be an absolute path: a scheduler's search path is not the shell's.",
            hint="Give the full path of mcp-orchestration (`command -v mcp-orchestration`, `where.exe` on Windows).",
        )
    return render(argv, minutes, home)


def _minutes(every: timedelta) -> int:
    if every < MIN_INTERVAL or every % timedelta(minutes=1):
        raise ValidationError(f"A schedule runs every whole number of minutes, at least {MIN_INTERVAL}; not {every}.")
    return every // timedelta(minutes=1)


def _launchd(argv: list[str], minutes: int, home: PurePath | None) -> dict[str, bytes]:
    """A LaunchAgent (``~/Library/LaunchAgents``): at load, then every interval, as background work."""
    logs = PurePosixPath(str(home if home is not None else Path.home()), "Library", "Logs")
    agent = {
        "Label": LABEL,
        "ProgramArguments": argv,
        "StartInterval": minutes * 60,
        "RunAtLoad": True,
        "ProcessType": "Background",
        "LowPriorityIO": True,
        "Nice": 10,
        "StandardOutPath": str(logs / f"{UNIT}.log"),
        "StandardErrorPath": str(logs / f"{UNIT}.log"),
    }
    return {f"{LABEL}.plist": plistlib.dumps(agent, fmt=plistlib.FMT_XML, sort_keys=True)}


def _task_scheduler(argv: list[str], minutes: int, home: PurePath | None) -> dict[str, bytes]:
    """A Task Scheduler task (``schtasks /Create /XML``): as the logged-on user, least privilege, one at a time."""
    for argument in argv:
        if _CONTROL.search(argument) or "\n" in argument:
            raise ValidationError("A Windows task's command line cannot hold a control character or line break.")
        variable = _WINDOWS_VARIABLE.search(argument)
        if variable:
            raise ValidationError(
                f"Task Scheduler would replace %{variable[1]}% in an argument with an environment variable's value.",
                hint="Pass the value itself; a lone % or URL percent-encoding is kept as written.",
            )
    if '"' in argv[0]:
        raise ValidationError("A Windows program path cannot contain a double quote.")
    ET.register_namespace("", TASK_NAMESPACE)

    def el(parent: ET.Element, tag: str, text: str | None = None, **attributes: str) -> ET.Element:
        child = ET.SubElement(parent, f"{{{TASK_NAMESPACE}}}{tag}", attributes)
        child.text = text
        return child

    interval = f"PT{minutes}M"
    task = ET.Element(f"{{{TASK_NAMESPACE}}}Task", {"version": "1.2"})
    info = el(task, "RegistrationInfo")
    el(info, "Description", "mcp-orchestration: apply the signed MCP configuration (sync)")
    el(info, "URI", f"\\{UNIT}")
    trigger = el(el(task, "Triggers"), "TimeTrigger")
    repetition = el(trigger, "Repetition")
    el(repetition, "Interval", interval)  # no Duration: repeat indefinitely
    el(repetition, "StopAtDurationEnd", "false")
    el(trigger, "StartBoundary", "2000-01-01T00:00:00")  # local time; the first run is the next interval
    el(trigger, "Enabled", "true")
    el(trigger, "RandomDelay", f"PT{max(1, minutes // 3)}M")  # spread a fleet's requests to the mirror
    principal = el(el(task, "Principals"), "Principal", id="Author")
    el(principal, "LogonType", "InteractiveToken")  # only while the user is logged on, as that user
    el(principal, "RunLevel", "LeastPrivilege")  # never elevated
    settings = el(task, "Settings")
    el(settings, "MultipleInstancesPolicy", "IgnoreNew")
    el(settings, "DisallowStartIfOnBatteries", "false")
    el(settings, "StopIfGoingOnBatteries", "false")
    el(settings, "AllowHardTerminate", "true")
    el(settings, "StartWhenAvailable", "true")
    el(settings, "RunOnlyIfNetworkAvailable", "false")  # offline, sync keeps the last good config and says so
    el(settings, "AllowStartOnDemand", "true")
    el(settings, "Enabled", "true")
    el(settings, "Hidden", "false")
    el(settings, "ExecutionTimeLimit", interval)  # a run that outlasts its interval is stopped
    el(settings, "Priority", "7")  # below normal
    execute = el(el(task, "Actions", Context="Author"), "Exec")
    el(execute, "Command", argv[0])
    if argv[1:]:
        el(execute, "Arguments", subprocess.list2cmdline(argv[1:]))
    body = ET.tostring(task, encoding="unicode")
    text = f'<?xml version="1.0" encoding="UTF-16"?>\r\n{body}\r\n'
    return {f"{UNIT}.xml": text.encode("utf-16")}  # with a byte-order mark, as schtasks exports


def _systemd(argv: list[str], minutes: int, home: PurePath | None) -> dict[str, bytes]:
    """A user service and timer (``~/.config/systemd/user``), and the equivalent crontab line where one fits."""
    service = "\n".join(
        [
            "[Unit]",
            "Description=mcp-orchestration: apply the signed MCP configuration (sync)",
            "",
            "[Service]",
            "Type=oneshot",
            f"ExecStart={' '.join(systemd_quote(argument) for argument in argv)}",
            f"TimeoutStartSec={minutes}min",
            "Nice=10",
            "IOSchedulingClass=idle",
            "UMask=0077",
            # Hardening that needs no privilege, so it works in a user manager (no mount namespaces).
            "NoNewPrivileges=yes",
            "LockPersonality=yes",
            "RestrictRealtime=yes",
            "RestrictSUIDSGID=yes",
            "SystemCallArchitectures=native",
            "",
        ]
    )
    timer = "\n".join(
        [
            "[Unit]",
            "Description=Run mcp-orchestration sync regularly",
            "",
            "[Timer]",
            "OnBootSec=5min",
            f"OnUnitActiveSec={minutes}min",
            f"RandomizedDelaySec={max(60, minutes * 20)}",  # a third of the interval, in seconds: spreads a fleet
            "AccuracySec=1min",
            "Persistent=true",
            "",
            "[Install]",
            "WantedBy=timers.target",
            "",
        ]
    )
    files = {f"{UNIT}.service": service.encode(), f"{UNIT}.timer": timer.encode()}
    line = cron_line(argv, minutes)
    if line is not None:
        files[f"{UNIT}.crontab"] = line.encode()
    return files


def systemd_quote(argument: str) -> str:
    """One ``ExecStart=`` word that systemd reads back as exactly ``argument``.

    Double-quoted with C escapes; ``%`` (a specifier) doubled and ``$`` (a
    variable) doubled, since both are expanded even inside quotes; a lone
    ``;`` (a command separator) escaped.
    """
    if argument == ";":
        return "\\;"
    escaped = []
    for char in argument:
        if char in '\\"':
            escaped.append("\\" + char)
        elif char == "\n":
            escaped.append("\\n")
        elif char == "\t":
            escaped.append("\\t")
        elif char == "\r":
            escaped.append("\\r")
        elif _CONTROL.match(char):
            escaped.append(f"\\x{ord(char):02x}")
        elif char in "%$":
            escaped.append(char * 2)
        else:
            escaped.append(char)
    return '"' + "".join(escaped) + '"'


def cron_line(argv: list[str], minutes: int) -> str | None:
    """A crontab line for the same command, when the interval divides an hour or a day; else None.

    Each argument is quoted for ``/bin/sh``; cron turns an unescaped ``%``
    into a line break, so it is written ``\\%``. A line break in an argument
    has no crontab form (None).
    """
    if any("\n" in argument or "\r" in argument for argument in argv):
        return None
    if minutes < 60 and 60 % minutes == 0:
        when = f"*/{minutes} * * * *"
    elif minutes % 60 == 0 and 24 % (minutes // 60) == 0:
        when = f"0 */{minutes // 60} * * *"
    else:
        return None
    command = " ".join(shlex.quote(argument) for argument in argv).replace("%", "\\%")
    return f"{when} {command}\n"
