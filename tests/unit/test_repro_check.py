"""build/repro_check.py: equal images pass, and every kind of difference is named, file by file.

The images are ``docker image save`` archives made here, with real tar layers:
what the engine would write, without an engine.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import tracemalloc
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from tests.build_scripts import load

repro_check = load("repro_check")


@dataclass(frozen=True)
class File:
    name: str
    data: bytes = b""
    mtime: int = 1_700_000_000
    mode: int = 0o644
    uid: int = 0
    kind: bytes = tarfile.REGTYPE
    link: str = ""


def layer_tar(files: Sequence[File]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for file in files:
            info = tarfile.TarInfo(file.name)
            info.type, info.mtime, info.mode, info.uid, info.gid = file.kind, file.mtime, file.mode, file.uid, file.uid
            info.linkname = file.link
            info.size = len(file.data) if file.kind == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(file.data) if file.kind == tarfile.REGTYPE else None)
    return out.getvalue()


def saved_image(
    path: Path, layers: Sequence[Sequence[File]], created: str = "2026-12-03T10:00:00Z", *, gzipped: bool = False
) -> Path:
    """A ``docker image save`` archive: manifest.json, the config, one tar per layer (gzipped: a containerd store's)."""
    tars = [layer_tar(files) for files in layers]
    diff_ids = ["sha256:" + hashlib.sha256(tar).hexdigest() for tar in tars]
    blobs = [gzip.compress(tar, mtime=0) for tar in tars] if gzipped else tars
    config: dict[str, Any] = {
        "architecture": "amd64",
        "created": created,
        "config": {"User": "65532:65532", "Entrypoint": ["/venv/bin/mcp-orchestration"]},
        "history": [{"created": created, "created_by": f"COPY layer{i} / # buildkit"} for i in range(len(blobs))],
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    with tarfile.open(path, "w") as archive:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))

        add("config.json", json.dumps(config).encode())
        for index, blob in enumerate(blobs):
            add(f"{index}/layer.tar", blob)
        manifest = [
            {"Config": "config.json", "RepoTags": None, "Layers": [f"{i}/layer.tar" for i in range(len(blobs))]}
        ]
        add("manifest.json", json.dumps(manifest).encode())
    return path


BASE = [File("usr/", kind=tarfile.DIRTYPE, mode=0o755), File("usr/lib/libc.so.6", b"\x7fELF libc")]
VENV = [
    File("venv/", kind=tarfile.DIRTYPE, mode=0o755),
    File("venv/bin/python", kind=tarfile.SYMTYPE, link="/usr/bin/python3.13", mode=0o777),
    File("venv/lib/module.py", b"print('hello')\n"),
]


def compare(tmp_path: Path, a_layers: Sequence[Sequence[File]], b_layers: Sequence[Sequence[File]]) -> list[str]:
    a = repro_check.read_saved("A", saved_image(tmp_path / "a.tar", a_layers))
    b = repro_check.read_saved("B", saved_image(tmp_path / "b.tar", b_layers, created="2026-12-03T11:00:00Z"))
    report: list[str] = repro_check.compare(a, b)
    return report


def test_two_builds_that_differ_only_in_created_are_the_same(tmp_path: Path) -> None:
    assert compare(tmp_path, [BASE, VENV], [BASE, VENV]) == []


def test_a_file_time_is_reported_with_both_values(tmp_path: Path) -> None:
    later = [VENV[0], VENV[1], replace(VENV[2], mtime=1_700_000_060)]
    report = compare(tmp_path, [BASE, VENV], [BASE, later])
    assert report[0].startswith("config: /rootfs/diff_ids/1: ")
    assert report[1].startswith("layer 1 (COPY layer1 / # buildkit): sha256:")
    assert report[2:] == ["  venv/lib/module.py: mtime 2023-11-14T22:13:20+00:00 != 2023-11-14T22:14:20+00:00"]


def test_a_time_no_date_can_show_is_compared_as_raw_seconds(tmp_path: Path) -> None:
    """Year 36812 (2**40 s, a PAX mtime) is no reason for no verdict: equal is the same, unequal is shown."""
    far = [VENV[0], VENV[1], replace(VENV[2], mtime=2**40 - 1)]
    assert compare(tmp_path, [BASE, far], [BASE, far]) == []
    report = compare(tmp_path, [BASE, VENV], [BASE, far])
    assert report[2:] == ["  venv/lib/module.py: mtime 2023-11-14T22:13:20+00:00 != 1099511627775"]


@pytest.mark.parametrize("mtime", ["inf", "-inf", "nan"])
def test_a_pax_time_that_is_no_number_of_seconds_is_shown_as_read(mtime: str) -> None:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("etc/issue")
        info.pax_headers = {"mtime": mtime}
        tar.addfile(info)
    (entry,) = repro_check.read_layer(io.BytesIO(out.getvalue())).values()
    assert entry.mtime == mtime


def test_content_owner_mode_and_link_differences_are_each_named(tmp_path: Path) -> None:
    changed = [
        replace(VENV[0], uid=65532),
        replace(VENV[1], link="/usr/bin/python3"),
        replace(VENV[2], data=b"print('hullo')\n", mode=0o600),
    ]
    lines = compare(tmp_path, [BASE, VENV], [BASE, changed])[2:]
    assert lines[0] == "  venv: owner 0:0 (-:-) != 65532:65532 (-:-)"
    assert lines[1] == "  venv/bin/python: link /usr/bin/python3.13 != /usr/bin/python3"
    digest = "sha256:" + hashlib.sha256(b"print('hello')\n").hexdigest()
    assert lines[2].startswith(f"  venv/lib/module.py: mode 0644 != 0600; digest {digest} != sha256:")


def test_files_in_one_build_only_are_listed(tmp_path: Path) -> None:
    extra = [*VENV, File("venv/lib/__pycache__/module.cpython-313.pyc", b"pyc")]
    lines = compare(tmp_path, [BASE, extra], [BASE, VENV[:2]])[2:]
    assert lines == ["  only in A: venv/lib/__pycache__/module.cpython-313.pyc", "  only in A: venv/lib/module.py"]


def test_the_same_entries_in_another_order_are_reported_as_order(tmp_path: Path) -> None:
    lines = compare(tmp_path, [BASE, VENV], [BASE, [VENV[0], VENV[2], VENV[1]]])[2:]
    assert lines == ["  same entries in another order, from entry 1: venv/bin/python != venv/lib/module.py"]


def test_a_config_difference_other_than_created_is_reported(tmp_path: Path) -> None:
    a = repro_check.read_saved("A", saved_image(tmp_path / "a.tar", [BASE]))
    b = repro_check.read_saved("B", saved_image(tmp_path / "b.tar", [BASE]))
    b.config["config"]["User"] = "0:0"
    assert repro_check.compare(a, b) == ['config: /config/User: "65532:65532" != "0:0"']


def test_a_missing_layer_is_reported(tmp_path: Path) -> None:
    report = compare(tmp_path, [BASE, VENV], [BASE])
    assert "layers: A has 2, B has 1" in report


def test_differences_past_the_limit_are_counted(tmp_path: Path) -> None:
    many = [File(f"venv/f{i:02}", b"x") for i in range(50)]
    a = repro_check.read_saved("A", saved_image(tmp_path / "a.tar", [many]))
    b = repro_check.read_saved("B", saved_image(tmp_path / "b.tar", [[replace(f, data=b"y") for f in many]]))
    report = repro_check.compare(a, b, limit=5)
    assert len(report) == 1 + 1 + 5 + 1
    assert report[-1] == "  ... and 45 more"


def test_a_large_layer_is_never_held_whole_in_memory(tmp_path: Path) -> None:
    """A released image is not trusted to be small: a layer and each file in it are hashed in chunks."""
    size = 32 << 20
    a_path = saved_image(tmp_path / "a.tar", [[File("big", bytes(size))]])
    b_path = saved_image(tmp_path / "b.tar", [[File("big", b"\1" + bytes(size - 1))]])
    tracemalloc.start()
    try:
        report = repro_check.compare(repro_check.read_saved("A", a_path), repro_check.read_saved("B", b_path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report[2].startswith("  big: digest sha256:")
    assert peak < size // 4


def test_a_layer_equal_in_both_images_is_not_walked(tmp_path: Path) -> None:
    """Equal digests are the verdict for that layer: its entries are never read, however many or odd they are."""
    paths = []
    for name in ("a", "b"):
        saved_image(tmp_path / f"{name}.tar", [BASE])
        paths.append(_with_layer(tmp_path / f"{name}.tar", b"not a tar, but the same bytes in both"))
    a, b = (repro_check.read_saved(name, path) for name, path in zip("AB", paths, strict=True))
    assert repro_check.compare(a, b) == []


def _with_layer(path: Path, blob: bytes, *, tampered: bool = False) -> Path:
    """The saved image with its one layer replaced by ``blob``: the config's diff id too, unless ``tampered``."""
    rewritten = path.with_suffix(".new.tar")
    with tarfile.open(path) as source, tarfile.open(rewritten, "w") as target:
        for member in source:
            data = source.extractfile(member)
            assert data is not None
            body = data.read()
            if member.name == "0/layer.tar":
                body = blob
            elif member.name == "config.json" and not tampered:
                config = json.loads(body)
                config["rootfs"]["diff_ids"] = ["sha256:" + hashlib.sha256(blob).hexdigest()]
                body = json.dumps(config).encode()
            member.size = len(body)
            target.addfile(member, io.BytesIO(body))
    return rewritten


def test_a_config_past_the_json_limit_is_refused_unread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(repro_check, "JSON_LIMIT", 100)
    with pytest.raises(repro_check.ReproCheckError, match=r"^A: config\.json is larger than 100 bytes"):
        repro_check.read_saved("A", saved_image(tmp_path / "a.tar", [BASE]))


def test_a_layer_that_does_not_hash_to_its_diff_id_is_no_verdict(tmp_path: Path) -> None:
    path = saved_image(tmp_path / "a.tar", [BASE])
    tampered = _with_layer(path, layer_tar([*BASE, File("usr/bin/extra", b"planted")]), tampered=True)
    with pytest.raises(repro_check.ReproCheckError, match=r"^A: layer 0 hashes to sha256:") as caught:
        repro_check.read_saved("A", tampered)
    assert caught.value.code == "layer_digest"


def test_an_archive_that_is_not_an_image_is_no_verdict(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar at all")
    with pytest.raises(repro_check.ReproCheckError, match=r"^A: not a readable image archive") as caught:
        repro_check.read_saved("A", junk)
    assert caught.value.code == "image_archive"


def docker_saving(tmp_path: Path) -> str:
    """A client whose ``image save -o FILE NAME`` copies the archive tmp_path/NAME: main without an engine."""
    client = tmp_path / "docker"
    client.write_text('#!/bin/sh\n[ "$1 $2 $3" = "image save -o" ] && exec cp "${0%/*}/$5" "$4"\nexit 1\n')
    client.chmod(0o755)
    return str(client)


def test_main_exits_0_for_the_same_image_and_1_for_another(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    saved_image(tmp_path / "a", [BASE, VENV])
    saved_image(tmp_path / "b", [BASE])
    assert repro_check.main(["--docker", docker_saving(tmp_path), "a", "a"]) == 0
    assert capsys.readouterr().out.endswith("repro-check: the same: 2 layer digests equal, image ids equal\n")
    assert repro_check.main(["--docker", docker_saving(tmp_path), "a", "b"]) == 1
    out = capsys.readouterr().out
    assert "\nrepro-check: DIFFERENT\nconfig: " in out
    assert out.endswith("\nlayers: A has 2, B has 1\n")


def test_main_prints_a_name_that_is_no_text_or_holds_a_newline_escaped_on_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A newline in a name could forge a report line; bytes that are not UTF-8 could stop the report."""
    saved_image(tmp_path / "a", [BASE])
    saved_image(tmp_path / "b", [[*BASE, File("usr/\udce9t\udce9"), File("usr/x\n  only in A: usr/y")]])
    assert repro_check.main(["--docker", docker_saving(tmp_path), "a", "b"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2:] == ["  only in B: usr/x\\n  only in A: usr/y", "  only in B: usr/\\udce9t\\udce9"]


@pytest.mark.parametrize("limit", ["0", "-3", "x"])
def test_a_limit_of_no_differences_is_a_usage_error(capsys: pytest.CaptureFixture[str], limit: str) -> None:
    """Review finding: --limit 0 or less was taken, and a report of differences showed none of them."""
    with pytest.raises(SystemExit) as exited:
        repro_check.main(["--docker", "/bin/false", "--limit", limit, "a", "b"])
    assert exited.value.code == 2
    assert f"argument --limit: must be a whole number above 0, not {limit}" in capsys.readouterr().err


def test_main_exits_2_when_the_engine_cannot_save_an_image(capsys: pytest.CaptureFixture[str]) -> None:
    assert repro_check.main(["--docker", "/bin/false", "a", "b"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("repro-check: no verdict [image_save]: a: docker image save failed")
    assert err.endswith("\nCheck that the engine runs (`docker info`), that --docker names its client, and that the "
                        "image is local (`docker pull` a released image by digest first).\n")  # fmt: skip


def test_main_exits_2_when_there_is_no_docker_client(capsys: pytest.CaptureFixture[str]) -> None:
    assert repro_check.main(["--docker", "/nonexistent/docker", "a", "b"]) == 2
    assert capsys.readouterr().err.startswith("repro-check: no verdict [image_save]: a: cannot run /nonexistent/docker")


def test_main_gives_no_verdict_on_any_unexpected_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Neither "the same" (0) nor "different" (1): either would be a verdict on images never compared."""

    def fails(*_: object) -> list[str]:
        raise RecursionError("maximum recursion depth exceeded")

    saved_image(tmp_path / "a", [BASE])
    monkeypatch.setattr(repro_check, "compare", fails)
    assert repro_check.main(["--docker", docker_saving(tmp_path), "a", "a"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("repro-check: no verdict [internal]: RecursionError: maximum recursion depth exceeded\n")


def _images(tmp_path: Path) -> tuple[Any, Any]:
    a = repro_check.read_saved("A", saved_image(tmp_path / "a.tar", [BASE]))
    b = repro_check.read_saved("B", saved_image(tmp_path / "b.tar", [BASE]))
    return a, b


def test_a_dotted_config_key_cannot_stand_in_for_the_field_it_spells(tmp_path: Path) -> None:
    """A released config running as root, with a top-level "config.User" key holding the expected value."""
    a, b = _images(tmp_path)
    b.config["config"]["User"] = "0:0"
    b.config["config.User"] = "65532:65532"
    report = repro_check.compare(a, b)
    assert 'config: /config/User: "65532:65532" != "0:0"' in report
    assert 'config: /config.User: (absent) != "65532:65532"' in report


def test_an_empty_field_is_not_an_absent_one(tmp_path: Path) -> None:
    a, b = _images(tmp_path)
    b.config["config"]["Cmd"] = []
    b.config["config"]["Volumes"] = {}
    assert repro_check.compare(a, b) == [
        "config: /config/Cmd: (absent) != []",
        "config: /config/Volumes: (absent) != {}",
    ]


def test_a_key_with_a_slash_does_not_collide_with_a_nested_one(tmp_path: Path) -> None:
    a, b = _images(tmp_path)
    a.config["config"]["Labels"] = {"a": {"b": "x"}}
    b.config["config"]["Labels"] = {"a/b": "x"}
    report = repro_check.compare(a, b)
    assert 'config: /config/Labels/a/b: "x" != (absent)' in report
    assert 'config: /config/Labels/a~1b: (absent) != "x"' in report


def test_a_name_written_twice_in_a_layer_is_listed_as_such(tmp_path: Path) -> None:
    """The second entry wins on extraction: the report must show it, not fold it into the first."""
    twice = [*VENV, File("venv/lib/module.py", b"import os\n")]
    lines = compare(tmp_path, [BASE, VENV], [BASE, twice])[2:]
    assert lines == [
        "  only in B: venv/lib/module.py (entry 2 of this name)",
        "  venv/lib/module.py: entries of this name: 1 in A, 2 in B",
    ]


def test_a_name_written_again_cannot_stand_in_for_a_file_named_like_its_label(tmp_path: Path) -> None:
    """B plants "a (again, entry 2)", then writes "a" again with A's bytes for that name: both must show."""
    a_layer = [File("a", b"1"), File("a (again, entry 2)", b"2")]
    b_layer = [File("a", b"1"), File("a (again, entry 2)", b"planted"), File("a", b"2")]
    digest = {data: "sha256:" + hashlib.sha256(data).hexdigest() for data in (b"2", b"planted")}
    assert compare(tmp_path, [a_layer], [b_layer])[2:] == [
        "  only in B: a (entry 2 of this name)",
        "  a: entries of this name: 1 in A, 2 in B",
        f"  a (again, entry 2): size 1 != 7; digest {digest[b'2']} != {digest[b'planted']}",
    ]


def test_owner_names_and_pax_headers_are_compared(tmp_path: Path) -> None:
    def layer(uname: str, pax: dict[str, str]) -> bytes:
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
            info = tarfile.TarInfo("etc/passwd")
            info.uname, info.pax_headers, info.size = uname, pax, 1
            tar.addfile(info, io.BytesIO(b"x"))
        return out.getvalue()

    def read(blob: bytes) -> Any:
        return repro_check.read_layer(io.BytesIO(blob))

    left = read(layer("root", {}))
    right = read(layer("nonroot", {"SCHILY.xattr.security.capability": "cap"}))
    (line,) = repro_check.layer_differences(left, right)
    assert line.startswith("etc/passwd: owner 0:0 (root:-) != 0:0 (nonroot:-); pax  != ")
    assert "SCHILY.xattr.security.capability" in line


def test_layers_saved_gzipped_by_a_containerd_store_are_read_as_the_tars_they_hash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved_image(tmp_path / "classic", [BASE, VENV])
    saved_image(tmp_path / "containerd", [BASE, VENV], gzipped=True)
    assert repro_check.main(["--docker", docker_saving(tmp_path), "classic", "containerd"]) == 0
    assert capsys.readouterr().out.endswith("repro-check: the same: 2 layer digests equal, image ids equal\n")
    saved_image(tmp_path / "changed", [BASE, [*VENV, File("venv/planted.pth", b"import os\n")]], gzipped=True)
    assert repro_check.main(["--docker", docker_saving(tmp_path), "classic", "changed"]) == 1
    assert "  only in B: venv/planted.pth" in capsys.readouterr().out.splitlines()


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"\x28\xb5\x2f\xfd" + b"\0" * 60, "is zstd-compressed"),
        (gzip.compress(layer_tar(BASE))[:60], "not a readable image archive"),  # of 142 bytes
    ],
    ids=["zstd", "cut-gzip"],
)
def test_a_layer_that_cannot_be_decompressed_is_no_verdict(tmp_path: Path, blob: bytes, message: str) -> None:
    archive = saved_image(tmp_path / "a", [BASE])
    with tarfile.open(archive) as saved:
        members = {member.name: saved.extractfile(member) for member in saved if member.isfile()}
        contents = {name: handle.read() for name, handle in members.items() if handle is not None}
    contents["0/layer.tar"] = blob
    with tarfile.open(archive, "w") as rewritten:
        for name, data in contents.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            rewritten.addfile(info, io.BytesIO(data))
    with pytest.raises(repro_check.ArchiveError, match=message):
        repro_check.read_saved("A", archive)
