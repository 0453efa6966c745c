"""build/set_created.py: only the config's times change, and two builds of one commit get one image id."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.build_scripts import load
from tests.unit.test_repro_check import BASE, VENV, repro_check, saved_image

EPOCH_ISO = "2026-12-03T11:58:32Z"


set_created = load("set_created")


def test_two_builds_stamped_with_one_epoch_have_one_image_id(tmp_path: Path) -> None:
    first = saved_image(tmp_path / "a.tar", [BASE, VENV], created="2026-12-03T12:00:01.123456789Z")
    second = saved_image(tmp_path / "b.tar", [BASE, VENV], created="2026-12-04T08:30:00.5Z")
    a_id = set_created.rewrite(first, tmp_path / "a2.tar", EPOCH_ISO)
    b_id = set_created.rewrite(second, tmp_path / "b2.tar", EPOCH_ISO)
    assert a_id == b_id
    a = repro_check.read_saved("A", tmp_path / "a2.tar")
    assert a.id == a_id  # the engine's id: the digest of the config bytes written


def test_only_the_times_change_and_the_layers_are_copied_byte_for_byte(tmp_path: Path) -> None:
    original = repro_check.read_saved("A", saved_image(tmp_path / "a.tar", [BASE, VENV]))
    set_created.rewrite(tmp_path / "a.tar", tmp_path / "stamped.tar", EPOCH_ISO)
    stamped = repro_check.read_saved("A", tmp_path / "stamped.tar")  # checks every layer against its diff id
    assert stamped.config["created"] == EPOCH_ISO
    assert {entry["created"] for entry in stamped.config["history"]} == {EPOCH_ISO}
    assert repro_check.compare(original, stamped) == []
    assert [layer.diff_id for layer in stamped.layers] == [layer.diff_id for layer in original.layers]
    assert stamped.id != original.id


def test_the_config_time_spans_1970_to_the_last_second_of_9999() -> None:
    assert set_created.config_time(0) == "1970-01-01T00:00:00Z"
    assert set_created.config_time(set_created.LATEST) == "9999-12-31T23:59:59Z"


@pytest.mark.parametrize("epoch", ["100000000000000000000", "253402300800"])
def test_an_epoch_past_9999_is_refused_before_the_engine_is_asked(
    epoch: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """10**20 was an OverflowError traceback; /bin/false as the client shows docker is never reached."""
    assert set_created.main(["--docker", "/bin/false", "img", epoch]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"set_created: img: error [epoch]: SOURCE_DATE_EPOCH {epoch} is not between 0 (1970) and ")
    assert err.endswith(
        "\nSOURCE_DATE_EPOCH is the commit's time in whole seconds since 1970, UTC: `git log -1 --format=%ct`.\n"
    )


def test_an_epoch_of_thousands_of_digits_is_refused_as_an_epoch(capsys: pytest.CaptureFixture[str]) -> None:
    """Review finding: int() refuses over 4300 digits with a ValueError, reported as [rewrite] with exit status 1."""
    assert set_created.main(["--docker", "/bin/false", "img", "9" * 5000]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "set_created: img: error [epoch]: SOURCE_DATE_EPOCH 9999999999999999... (5000 digits) is not between 0 (1970)"
    )
    assert len(err) < 400


def test_leading_zeros_do_not_count_against_an_epoch() -> None:
    assert set_created.parse_epoch("0" * 5000 + "1764763112") == 1764763112


@pytest.mark.parametrize("epoch", ["1e20", "1.5", "-1", " 42", "+42", "4_2", "\u0664\u0662"])
def test_an_epoch_that_is_not_plain_digits_is_refused(epoch: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert set_created.main(["--docker", "/bin/false", "img", epoch]) == 2
    assert capsys.readouterr().err.startswith(
        f"set_created: img: error [epoch]: SOURCE_DATE_EPOCH {epoch!r} is not a whole"
    )


def test_an_engine_failure_is_reported_with_its_code_and_hint(capsys: pytest.CaptureFixture[str]) -> None:
    assert set_created.main(["--docker", "/nonexistent/docker", "img", "1764763112"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("set_created: img: error [docker]: cannot run /nonexistent/docker: ")
    assert err.endswith(
        "\nCheck that the engine runs (`docker info`), that --docker names its client, and that IMAGE is local.\n"
    )
