"""The publisher's shipped refresh schedules run what the README says: `refresh --push-to`, daily."""

from __future__ import annotations

import configparser
from pathlib import Path
from typing import Any

import pytest
import yaml

from mcp_orchestration import cli
from mcp_orchestration.core.errors import UsageError
from mcp_orchestration.store.mirror.transport import scheme_of

ROOT = Path(__file__).resolve().parents[2]
PUBLISHER = ROOT / "deploy" / "publisher"


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((PUBLISHER / name).read_text())
    return parser


def refresh_arguments(command: str) -> list[str]:
    words = command.split()
    return words[words.index("refresh") :]


def test_the_systemd_timer_runs_the_refresh_service_daily() -> None:
    service, timer = unit("mcp-orchestration-refresh.service"), unit("mcp-orchestration-refresh.timer")
    assert service["Service"]["Type"] == "oneshot"
    arguments = refresh_arguments(service["Service"]["ExecStart"])
    assert cli.build_parser().parse_args(arguments).push_to == ["https://mirror.example.internal/mcp/"]
    assert timer["Timer"]["OnCalendar"] == "daily" and timer["Timer"]["Persistent"] == "true"
    assert "SIGNING_KEY=" not in (PUBLISHER / "mcp-orchestration-refresh.service").read_text()  # a file, never a value


def test_the_cron_line_runs_the_same_refresh_daily() -> None:
    (line,) = [entry for entry in (PUBLISHER / "crontab").read_text().splitlines() if not entry.startswith("#")]
    minute, hour, day, month, weekday, *command = line.split()
    assert (day, month, weekday) == ("*", "*", "*") and minute.isdigit() and hour.isdigit()
    args = cli.build_parser().parse_args(refresh_arguments(" ".join(command)))
    assert args.push_to and args.token_file == Path("/etc/mcp-orchestration/mirror_token")


def test_the_compose_refresh_service_reaches_the_network_and_holds_the_key_as_a_secret() -> None:
    compose: dict[str, Any] = yaml.safe_load((ROOT / "compose.secrets.yml").read_text())
    refresh = compose["services"]["refresh"]
    assert refresh["command"][:2] == ["refresh", "--push-to"] and refresh["network_mode"] == "bridge"
    assert refresh["secrets"] == ["signing_key"] and refresh["read_only"] is True


@pytest.mark.parametrize("url", ["", "  "])
def test_an_empty_mirror_url_is_refused_rather_than_taken_as_this_directory(url: str) -> None:
    with pytest.raises(UsageError, match="No mirror URL"):
        scheme_of(url)
