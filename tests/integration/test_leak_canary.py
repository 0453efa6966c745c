"""Leak canary: no encoding of a signing key or passphrase ever leaves the process.

Keys and passphrases are generated at run time and turned into *canaries*:
every encoding a key is likely to be printed in (the PEM text and its
JSON-escaped form, each base64 line, the DER, the raw seed as hex and base64),
built here from ``cryptography``, not by asking the redactor. Then every
command of the real CLI runs as a subprocess -- with and without ``--debug``
and ``--json``, with ``--log-format json`` -- through its success paths and
every failure we can provoke, and no canary may appear on stdout, on stderr
(where the logs go) or in the telemetry files.
"""

from __future__ import annotations

import base64
import ctypes
import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
import traceback
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from mcp_orchestration.app import rotation
from mcp_orchestration.app.environment import ENV_PREFIX
from mcp_orchestration.app.settings import DEFAULT_KEY_FILE, load_settings
from mcp_orchestration.core import fsutil
from mcp_orchestration.core.errors import OrchestrationError, SigningKeyError
from mcp_orchestration.security.secret_rules import MASK
from mcp_orchestration.store.repository import ProfileUpdate, Repository
from mcp_orchestration.trust import key_sources, keys
from mcp_orchestration.trust.key_sources import KeySpec
from mcp_orchestration.trust.signer import PublicKey, Signer

MIN_LINE = 16  # shorter PEM lines carry too little to matter (the redactor's threshold too)
WINDOW = 24  # a partial leak: any 24 characters of an encoding of the seed
FULL = ("--debug", "--json", "--log-format", "json")
Flags = tuple[tuple[str, ...], ...]
ALL_FLAGS: Flags = ((), ("--debug",), ("--json",), FULL)  # for one representative case of each path
FAILURE_FLAGS: Flags = (("--debug",), FULL)  # a traceback in text, and in JSON logs with a JSON error
SINGLE_FLAGS: Flags = (("--debug",), FULL)  # cases without flags of their own take one of these in turn
IS_ROOT = os.geteuid() == 0
PR_CAPBSET_DROP = 24
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 1, 2


# -- canaries ------------------------------------------------------------------------------------


def _unpadded_b64(raw: bytes) -> tuple[str, str]:
    return base64.b64encode(raw).decode().rstrip("="), base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _windows(text: str) -> set[str]:
    return {text[i : i + WINDOW] for i in range(len(text) - WINDOW + 1)}


def pem_canaries(label: str, pem: str) -> dict[str, str]:
    """The PEM text, its JSON-escaped form, each base64 body line (>= 16 chars) and the whole body."""
    text = pem.strip()
    body = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("-----")]
    found = {f"{label}: PEM text": text, f"{label}: JSON-escaped PEM": json.dumps(text)[1:-1]}
    found.update({f"{label}: PEM line {n}": line for n, line in enumerate(body, 1) if len(line) >= MIN_LINE})
    found[f"{label}: PEM body"] = "".join(body)
    return found


@dataclass
class Canaries:
    """Secret strings that must never be seen, by name; ``partial`` maps 24-char windows of the seed to names."""

    exact: dict[str, str] = field(default_factory=dict)
    partial: dict[str, str] = field(default_factory=dict)

    def add_key(self, label: str, private: Any, file_text: str | None = None) -> None:
        """Every encoding of a private key, plus the file it was delivered in."""
        none = serialization.NoEncryption()
        der = private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, none)
        der_b64 = base64.b64encode(der).decode()
        self.exact[f"{label}: DER base64"] = der_b64
        self.exact[f"{label}: DER base64 unpadded"] = der_b64.rstrip("=")
        pkcs8 = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, none)
        self.exact.update(pem_canaries(f"{label} PKCS8", pkcs8.decode()))
        if isinstance(private, ed25519.Ed25519PrivateKey):
            seed = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, none)
            b64, b64url = _unpadded_b64(seed)
            forms = {"hex": seed.hex(), "HEX": seed.hex().upper(), "base64": b64, "base64url": b64url}
            for name, value in forms.items():
                self.exact[f"{label}: seed {name}"] = value
                self.partial.update(dict.fromkeys(_windows(value), f"{label}: part of seed {name}"))
            # The PKCS8 DER is a fixed 16-byte prefix and the seed: from char 22 on, its base64 is all seed.
            self.partial.update(dict.fromkeys(_windows(der_b64[22:]), f"{label}: part of PKCS8 body"))
            openssh = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, none)
            self.exact.update(pem_canaries(f"{label} OpenSSH", openssh.decode()))
        else:
            legacy = private.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, none
            )
            self.exact.update(pem_canaries(f"{label} traditional", legacy.decode()))
        if file_text is not None:
            self.exact.update(pem_canaries(f"{label} file", file_text))

    def add_text(self, label: str, secret: str) -> None:
        """A passphrase: as written, JSON-escaped, and its bytes as hex and base64."""
        value = secret.strip()
        b64, b64url = _unpadded_b64(value.encode())
        self.exact.update(
            {
                label: value,
                f"{label}: JSON-escaped": json.dumps(value)[1:-1],
                f"{label}: hex": value.encode().hex(),
                f"{label}: base64": b64,
                f"{label}: base64url": b64url,
            }
        )

    def leaks(self, text: str) -> list[str]:
        """The names of every canary found in ``text``."""
        found = [name for name, value in self.exact.items() if value in text]
        return found + sorted({name for window, name in self.partial.items() if window in text})


def read_private(path: Path, passphrase: bytes | None = None) -> Any:
    data = path.read_bytes()
    if b"OPENSSH PRIVATE KEY" in data:
        return serialization.load_ssh_private_key(data, passphrase)
    return serialization.load_pem_private_key(data, passphrase)


# -- running the CLI -----------------------------------------------------------------------------


def _without_file_override() -> None:  # pragma: no cover - runs in the child
    """preexec_fn: drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH so that even root obeys file modes.

    Switching to another uid is no option: the interpreter may live under a 0700
    home. Dropped from the bounding set, the two capabilities are gone from the
    exec'd process, so it cannot read a mode-000 file although it runs as root.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


@dataclass(frozen=True)
class Case:
    """One command line, run once per set of global flags; ``{v}`` in argv or stdin becomes the variant number."""

    label: str
    argv: tuple[str, ...]
    status: int | None = 0  # expected exit status; None: any
    code: str | None = None  # expected error code on stderr
    home: str = "s1"
    env: Mapping[str, str] = field(default_factory=dict)
    stdin: str | None = None
    contains: str | None = None  # expected in the output of the text variants
    json_contains: str | None = None  # expected in the output of the --json variants
    flags: Flags | None = None
    drop_file_override: bool = False


@dataclass
class Run:
    label: str
    argv: list[str]
    status: int
    stdout: str = field(repr=False)
    stderr: str = field(repr=False)


class Harness:
    """Runs cases as real subprocesses and records every run and every unmet expectation."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.runs: list[Run] = []
        self.failures: list[str] = []
        self.base_env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
        self.base_env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
        self.base_env["MCP_ORCHESTRATION_HOST_STATE"] = str(root / "host-state.json")

    def _one(self, case: Case, number: int, flags: tuple[str, ...]) -> Run:
        argv = [part.replace("{v}", str(number)) for part in case.argv]
        # Global options are accepted before and after the subcommand: use both places.
        argv = [*flags, *argv] if number % 2 else [*argv, *flags]
        env = {**self.base_env, "MCP_ORCHESTRATION_HOME": str(self.root / case.home), **case.env}
        completed = subprocess.run(
            [sys.executable, "-m", "mcp_orchestration", *argv],
            input=None if case.stdin is None else case.stdin.replace("{v}", str(number)),
            capture_output=True,
            text=True,
            env=env,
            cwd=self.root,
            check=False,
            timeout=60,
            preexec_fn=_without_file_override if case.drop_file_override and IS_ROOT else None,
        )
        run = Run(f"{case.label} [{' '.join(flags) or 'no flags'}]", argv, completed.returncode, **_out(completed))
        self._check(case, run, "--json" in flags)
        return run

    def _check(self, case: Case, run: Run, as_json: bool) -> None:
        where = f"{run.label}: mcp-orchestration {' '.join(run.argv)[:300]}"
        tail = run.stderr[-1500:]
        if case.status is not None and run.status != case.status:
            self.failures.append(f"{where}: exit {run.status}, expected {case.status}\n{tail}")
        if case.code is not None and f"[{case.code}]" not in run.stderr and f'"code": "{case.code}"' not in run.stderr:
            self.failures.append(f"{where}: error code {case.code} not reported\n{tail}")
        contains = case.json_contains if as_json else case.contains
        if contains is not None and contains not in run.stdout + run.stderr:
            self.failures.append(f"{where}: {contains!r} not in the output\n{tail}")

    def _jobs(self, cases: tuple[Case, ...]) -> list[tuple[Case, int, tuple[str, ...]]]:
        # Subprocesses cost ~0.2 s each: most cases run once, alternating between the two flag sets.
        flag_sets = [case.flags or (SINGLE_FLAGS[i % 2],) for i, case in enumerate(cases)]
        return [(case, n, flags) for case, sets in zip(cases, flag_sets, strict=True) for n, flags in enumerate(sets)]

    def sequence(self, *cases: Case) -> None:
        """Run cases one after another (commands that change a store)."""
        self.runs.extend(self._one(*job) for job in self._jobs(cases))

    def batch(self, *cases: Case) -> None:
        """Run independent cases in parallel (never ones that need a preexec_fn)."""
        jobs = self._jobs(cases)
        assert not any(case.drop_file_override for case, _, _ in jobs)
        with ThreadPoolExecutor(max_workers=2 * (os.cpu_count() or 2)) as pool:
            self.runs.extend(pool.map(lambda job: self._one(*job), jobs))


def _out(completed: subprocess.CompletedProcess[str]) -> dict[str, str]:
    return {"stdout": completed.stdout, "stderr": completed.stderr}


# -- the whole run ---------------------------------------------------------------------------------


@dataclass
class World:
    root: Path
    canaries: Canaries = field(repr=False)
    runs: list[Run] = field(repr=False)
    failures: list[str] = field(repr=False)
    telemetry: dict[str, str] = field(repr=False)
    unreadable_tested: bool


def legacy_publish(home: Path, key_file: Path, client: str, profile: str, payload: Any, changelog: str = "") -> None:
    """Sign ``payload`` in unchecked, through the store's low-level publish, as an earlier release could."""
    key = keys.parse_private_key(key_file.read_bytes(), None, origin=str(key_file))
    Repository(home / "storage").publish(key, [ProfileUpdate(client, profile, payload, changelog)])


def _write(path: Path, data: bytes | str, mode: int = 0o600) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    path.chmod(mode)
    return path


def _pkcs8(private: Any, passphrase: bytes | None = None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    )
    pem: bytes = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    return pem


def _openssh(private: Any) -> bytes:
    return bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
    )


def _fingerprint(private: ed25519.Ed25519PrivateKey) -> str:
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return PublicKey(raw).fingerprint


def _can_make_unreadable(root: Path) -> bool:
    """Whether a child can be kept from reading a mode-000 file (as root: only with CAP_SETPCAP)."""
    if not IS_ROOT:
        return True
    probe = _write(root / "probe", "x", 0o000)
    try:
        completed = subprocess.run(
            [sys.executable, "-c", f"open({str(probe)!r}).read()"],
            capture_output=True,
            check=False,
            preexec_fn=_without_file_override,
        )
    except subprocess.SubprocessError:
        return False
    return b"PermissionError" in completed.stderr


def _object(storage: Path, object_id: str) -> Path:
    return storage / "objects" / "sha256" / object_id[:2] / object_id[2:]


def _tamper(store: Path, kind: str, artifact: str) -> None:
    """Damage a copy of a store the way an attacker or a bad disk would."""
    storage, head_path = store / "storage", store / "storage" / "index" / "HEAD"
    if kind == "artifact":  # one bit of a published config
        path = _object(storage, artifact)
        path.chmod(0o600)
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
    elif kind == "rollback":  # an older, validly signed head replayed
        head = json.loads(base64.b64decode(json.loads(head_path.read_bytes())["payload"]))
        head_path.write_bytes(_object(storage, head["previous_head"]).read_bytes())
    elif kind == "signature":  # one bit of the head's signature
        envelope = json.loads(head_path.read_bytes())
        sig = bytearray(base64.b64decode(envelope["signatures"][0]["sig"]))
        sig[5] ^= 0x01
        envelope["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
        head_path.write_bytes(rfc8785.dumps(envelope))
    else:  # "key_history": the pinned first version rewritten
        path = storage / "keys" / "00000001.json"
        envelope = json.loads(path.read_bytes())
        payload = json.loads(base64.b64decode(envelope["payload"]))
        payload["created_at"] = "1999-01-01T00:00:00Z"
        envelope["payload"] = base64.b64encode(rfc8785.dumps(payload)).decode()
        path.write_bytes(rfc8785.dumps(envelope))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("leak")
    secrets = root / "secrets"
    secrets.mkdir()
    canaries = Canaries()
    canaries.exact["PEM private-key armour"] = "PRIVATE KEY-----"

    # Keys: A plain PKCS8, B encrypted PKCS8, C OpenSSH, D encrypted PKCS8 (B's successor).
    key_a, key_b, key_c, key_d = (ed25519.Ed25519PrivateKey.generate() for _ in range(4))
    pass_b, pass_d = f"canary-pass-b-{os.urandom(12).hex()}", f"canary-pass-d-{os.urandom(12).hex()}"
    wrong_pass, short_pass = f"canary-wrong-{os.urandom(12).hex()}", "Sh0rt!q"
    a = _write(secrets / "a.pem", _pkcs8(key_a))
    b = _write(secrets / "b.pem", _pkcs8(key_b, pass_b.encode()))
    c = _write(secrets / "c.key", _openssh(key_c))
    d = _write(secrets / "d.pem", _pkcs8(key_d, pass_d.encode()))
    for label, private, path in (("key A", key_a, a), ("key B", key_b, b), ("key C", key_c, c), ("key D", key_d, d)):
        canaries.add_key(label, private, path.read_text())
    pb = _write(secrets / "pass_b", pass_b + "\n")
    pd = _write(secrets / "pass_d", pass_d + "\n")
    pw = _write(secrets / "pass_wrong", wrong_pass + "\n")
    ps = _write(secrets / "pass_short", short_pass + "\n")
    pb_wide = _write(root / "pass_b_wide", pass_b + "\n", 0o644)
    for label, value in (("pass B", pass_b), ("pass D", pass_d), ("wrong pass", wrong_pass), ("short", short_pass)):
        canaries.add_text(label, value)

    # Key files that must fail: garbage, truncated, RSA, EC, encrypted OpenSSH, unreadable; and a 0644 one.
    garbage_text = "\n".join(base64.b64encode(os.urandom(48)).decode() for _ in range(4))
    garbage = _write(secrets / "garbage.pem", garbage_text)
    canaries.exact.update(pem_canaries("garbage", garbage_text))
    key_t = ed25519.Ed25519PrivateKey.generate()
    canaries.add_key("key T", key_t)
    truncated = _write(secrets / "truncated.pem", _pkcs8(key_t)[:60])
    key_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_ec = ec.generate_private_key(ec.SECP256R1())
    rsa_file = _write(secrets / "rsa.pem", _pkcs8(key_rsa))
    ec_file = _write(secrets / "ec.pem", _pkcs8(key_ec))
    canaries.add_key("RSA key", key_rsa, rsa_file.read_text())
    canaries.add_key("EC key", key_ec, ec_file.read_text())
    unreadable = _write(secrets / "unreadable.pem", a.read_bytes(), 0o000)
    wide = _write(root / "wide.pem", a.read_bytes(), 0o644)  # outside /run/secrets and readable by others
    public_a = _write(
        root / "a.pub.pem",
        key_a.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
    )
    fpr_a, fpr_c = _fingerprint(key_a), _fingerprint(key_c)
    unknown_fpr = "SHA256:" + "ab" * 32
    pem_a, pem_b_plain = _pkcs8(key_a).decode(), _pkcs8(key_b).decode()

    # The PEM goes into a payload's env values and into changelogs: every publish refuses it, and a store
    # that already holds it (written by an earlier release, see legacy_publish) only ever shows it masked.
    payload: dict[str, Any] = {
        "mcpServers": {"fs": {"command": "npx", "env": {"SIGNING_KEY": pem_a, "OTHER": pem_b_plain}}}
    }
    artifact = hashlib.sha256(rfc8785.dumps(payload)).hexdigest()
    payload_v = json.dumps({**payload, "variant": "{v}"})
    clean_v = json.dumps({"mcpServers": {"fs": {"command": "npx"}}, "variant": "{v}"})
    (root / "payload.json").write_text(json.dumps(payload))
    (root / "clean.json").write_text(json.dumps({"mcpServers": {"fs": {"command": "npx", "args": ["-y", "fs"]}}}))
    (root / "bad.json").write_text('{"mcpServers": ')
    (root / "array.json").write_text("[1, 2]")
    (root / "nan.json").write_text('{"a": NaN}')
    (root / "big.json").write_text('{"x": "' + "A" * (256 * 1024) + '"}')
    (root / "dup.json").write_text(f"{{{json.dumps(pem_a)}: 1, {json.dumps(pem_a)}: 2}}")
    (root / "gen").mkdir()

    h = Harness(root)
    ka, kc = ("--key-file", str(a)), ("--key-file", str(c))
    kb = ("--key-file", str(b), "--passphrase-file", str(pb))
    kd = ("--key-file", str(d), "--passphrase-file", str(pd))
    main = ("--client", "claude-desktop", "--profile", "main")
    clean = ("--client", "claude-desktop", "--profile", "clean")
    p0 = ("--client", "claude-desktop", "--profile", "p0")
    masked: dict[str, Any] = {"contains": MASK, "json_contains": MASK}

    def publish(*key: str, profile: str = "v{v}") -> tuple[str, ...]:
        return ("publish", *key, "--client", "claude-desktop", "--profile", profile, "--file", "-")

    def fingerprint(*key: str) -> tuple[str, ...]:
        return ("keys", "fingerprint", *key)

    def store_s1() -> None:
        """Key A; rotated to C; A revoked. Of the variants of a write, the first changes the store."""
        h.sequence(
            Case("init", ("init", *ka), contains="Root key: SHA256:", flags=ALL_FLAGS),
            Case("init pinned", ("init", *ka, "--expect-key", fpr_a)),
            Case("init wrong pin", ("init", *ka, "--expect-key", fpr_c), 4, "key_untrusted"),
            Case("init PEM as pin", ("init", *ka, f"--expect-key={pem_a}"), 2, "invalid_id"),
            Case("init other key", ("init", *kc), 6, "conflict"),
            Case("init key via env", ("init",), env={"MCP_ORCHESTRATION_SIGNING_KEY_FILE": str(a)}),
        )
        for profile in ("main", "p0"):  # what an earlier release signed in unchecked
            legacy_publish(root / "s1", a, "claude-desktop", profile, payload, "key in the payload")
        h.sequence(
            Case(
                "publish PEM payload",
                (*publish(*ka, profile="p{v}"), "--changelog=key in the payload"),
                2,
                "validation",
                stdin=payload_v,
                flags=ALL_FLAGS,
            ),
            Case(
                "publish PEM changelog",
                (*publish(*ka, profile="c{v}"), f"--changelog={pem_a}"),
                2,
                "validation",
                stdin=payload_v,
                flags=ALL_FLAGS,
            ),
            Case("publish PEM file", ("publish", *ka, *main, "--file", "payload.json"), 2, "validation"),
            Case("publish file", ("publish", *ka, *clean, "--file", "clean.json"), contains="published"),
            Case("publish unchanged", ("publish", *ka, *clean, "--file", "clean.json"), contains="unchanged"),
            Case(
                "publish 0644 key",
                publish("--key-file", str(wide)),
                stdin=clean_v,
                contains="group or others",
                flags=((), ("--log-format", "json")),
            ),
        )
        h.batch(
            Case("get", ("get", *main), **masked, flags=ALL_FLAGS),
            Case("export", ("export", *main), **masked, flags=ALL_FLAGS),
            Case(
                "verify deep reports the stored key",
                ("verify", "--deep"),
                contains="WARNING",
                json_contains="/env/",
                flags=ALL_FLAGS,
            ),
            Case("get PEM profile", ("get", *p0), **masked),
            Case("get artifact", ("get", *main, "--artifact", artifact), **masked),
            Case("get unknown artifact", ("get", *main, "--artifact", "ab" * 32), 5, "not_found"),
            Case("get bad artifact id", ("get", *main, "--artifact", "../x"), 2, "invalid_id"),
            Case("get unknown profile", ("get", "--client", "claude-desktop", "--profile", "nope"), 5, "not_found"),
            Case("get bad client", ("get", "--client", "../x", "--profile", "main"), 2, "invalid_id"),
            Case("history", ("history", *p0), flags=ALL_FLAGS),
            Case("history unknown", ("history", "--client", "claude-desktop", "--profile", "nope"), 5, "not_found"),
            Case("verify", ("verify",), contains="OK: index version"),
            Case("verify deep", ("verify", "--deep"), flags=FAILURE_FLAGS),
            Case("verify pinned", ("verify", "--expect-key", fpr_a)),
            Case("verify wrong pin", ("verify", "--expect-key", fpr_c), 4, "key_untrusted"),
            Case("verify PEM as pin", ("verify", f"--expect-key={pem_a}"), 2, "invalid_id"),
            Case("index export", ("index", "export"), contains="payloadType", flags=FAILURE_FLAGS),
            Case("keys list", ("keys", "list"), contains=fpr_a, json_contains=fpr_a, flags=FAILURE_FLAGS),
            Case("keys export-public", ("keys", "export-public"), contains="PUBLIC KEY"),
            Case("keys export-public A", ("keys", "export-public", "--keyid", fpr_a), contains="PUBLIC KEY"),
            Case("keys export-public unknown", ("keys", "export-public", "--keyid", unknown_fpr), 5, "not_found"),
            Case("keys export-public bad id", ("keys", "export-public", "--keyid", "nope"), 2, "invalid_id"),
            Case("keys fingerprint", fingerprint(*ka), contains=fpr_a, json_contains=fpr_a, flags=ALL_FLAGS),
            Case("keys fingerprint OpenSSH", fingerprint(*kc), contains=fpr_c),
            Case("keys fingerprint encrypted", fingerprint(*kb)),
            Case("keys fingerprint public", fingerprint("--public-key", str(public_a)), contains=fpr_a),
            Case("private key as public", fingerprint("--public-key", str(a)), 4, "key_format"),
            Case("missing public key", fingerprint("--public-key", "nope.pem"), 2, "usage"),
            Case("serve (stdin closed)", ("serve",), 0),
            Case("no subcommand", ("keys",), 2),
            Case("publish bad client", ("publish", *ka, "--client", "../x", "--profile", "p", "--file", "-"), 2),
            Case("publish PEM as client", ("publish", *ka, f"--client={pem_a}", "--profile", "p", "--file", "-"), 2),
            Case("publish bad profile", ("publish", *ka, "--client", "c", "--profile", "A/..", "--file", "-"), 2),
            Case("publish bad JSON", ("publish", *ka, *main, "--file", "bad.json"), 2, "validation"),
            Case("publish key file", ("publish", *ka, *main, "--file", str(a)), 2, "validation"),
            Case("publish encrypted key file", ("publish", *ka, *main, "--file", str(b)), 2, "validation"),
            Case("publish array", ("publish", *ka, *main, "--file", "array.json"), 2, "validation"),
            Case("publish NaN", ("publish", *ka, *main, "--file", "nan.json"), 2, "validation"),
            Case("publish oversized", ("publish", *ka, *main, "--file", "big.json"), 2, "limit"),
            Case("publish duplicate PEM keys", ("publish", *ka, *main, "--file", "dup.json"), 2, "validation"),
            Case("publish missing file", ("publish", *ka, *main, "--file", "nope.json"), 2, "usage"),
        )
        h.sequence(
            Case("rotate", ("keys", "rotate", *ka, "--new-key-file", str(c)), contains=fpr_c, flags=ALL_FLAGS),
            Case("rotate via env", ("keys", "rotate", *ka), env={"MCP_ORCHESTRATION_SIGNING_KEY_NEXT_FILE": str(c)}),
            Case("rotate to itself", ("keys", "rotate", *ka, "--new-key-file", str(a)), 2, "usage"),
            Case("publish retired key", publish(*ka), 4, "key_retired", stdin=clean_v, flags=FAILURE_FLAGS),
            Case("publish new key", publish(*kc, profile="after-{v}"), stdin=clean_v),
            Case("revoke", ("keys", "revoke", fpr_a, *kc), contains=fpr_a, flags=ALL_FLAGS),
            Case("revoke active", ("keys", "revoke", fpr_c, *kc), 6, "conflict"),
            Case("revoke unknown", ("keys", "revoke", unknown_fpr, *kc), 5, "not_found"),
            Case("revoke bad id", ("keys", "revoke", "not-a-key", *kc), 2, "invalid_id"),
            Case("revoke PEM", ("keys", "revoke", pem_a, *kc), 2),
            Case("publish revoked key", publish(*ka), 4, "key_revoked", stdin=clean_v, flags=FAILURE_FLAGS),
            Case("rotate to revoked key", ("keys", "rotate", *kc, "--new-key-file", str(a)), 4, "key_revoked"),
        )
        h.batch(
            Case("verify after revoke", ("verify",)),
            Case("verify deep after revoke", ("verify", "--deep")),
            Case("get after revoke", ("get", *main), **masked),
            Case("history after revoke", ("history", *p0)),
            Case("keys list after revoke", ("keys", "list"), contains="revoked", json_contains="revoked"),
            Case("export-public revoked", ("keys", "export-public", "--keyid", fpr_a), contains="PUBLIC KEY"),
            Case("index export after revoke", ("index", "export")),
        )

    def store_s2() -> None:
        """Encrypted key B, rotated to encrypted key D."""
        s2: dict[str, Any] = {"home": "s2"}
        key_files = {
            "MCP_ORCHESTRATION_SIGNING_KEY_FILE": str(b),
            "MCP_ORCHESTRATION_SIGNING_KEY_PASSPHRASE_FILE": str(pb),
        }
        next_files = {
            "MCP_ORCHESTRATION_SIGNING_KEY_NEXT_FILE": str(d),
            "MCP_ORCHESTRATION_SIGNING_KEY_NEXT_PASSPHRASE_FILE": str(pd),
        }
        new_d = ("--new-key-file", str(d))
        h.sequence(
            Case("s2 init", ("init", *kb), **s2),
            Case("s2 init via *_FILE", ("init",), env=key_files, **s2),
            Case("s2 publish", (*publish(*kb), "--changelog=s2"), stdin=clean_v, **s2),
            Case("s2 publish PEM changelog", (*publish(*kb), f"--changelog={pem_b_plain}"), 2, "validation", **s2),
            Case(
                "s2 publish 0644 passphrase",
                publish("--key-file", str(b), "--passphrase-file", str(pb_wide), profile="w{v}"),
                stdin=clean_v,
                contains="group or others",
                **s2,
            ),
            Case("s2 rotate, no new passphrase", ("keys", "rotate", *kb, *new_d), 4, "key_passphrase", **s2),
            Case(
                "s2 rotate, wrong new passphrase",
                ("keys", "rotate", *kb, *new_d, "--new-passphrase-file", str(pw)),
                4,
                "key_passphrase",
                **s2,
            ),
            Case("s2 rotate", ("keys", "rotate", *kb, *new_d, "--new-passphrase-file", str(pd)), **s2),
            Case("s2 rotate via env", ("keys", "rotate", *kb), env=next_files, **s2),
            Case("s2 publish new key", publish(*kd, profile="after-{v}"), stdin=clean_v, **s2),
            Case("s2 publish retired key", publish(*kb), 4, "key_retired", stdin=clean_v, **s2),
            Case("s2 history", ("history", "--client", "claude-desktop", "--profile", "v0"), **s2),
        )

    def key_failures_and_generate() -> None:
        failures = [
            Case("missing key", fingerprint("--key-file", "nope.pem"), 4, "key_unavailable"),
            Case("directory as key", fingerprint("--key-file", str(secrets)), 4, "key_unavailable"),
            Case("garbage key", fingerprint("--key-file", str(garbage)), 4, "key_format"),
            Case("garbage key publish", publish("--key-file", str(garbage)), 4, "key_format", stdin=clean_v),
            Case("truncated key", fingerprint("--key-file", str(truncated)), 4, "key_format"),
            Case("RSA key", fingerprint("--key-file", str(rsa_file)), 4, "key_format"),
            Case("RSA key init", ("init", "--key-file", str(rsa_file)), 4, "key_format", home="s4"),
            Case("EC key", fingerprint("--key-file", str(ec_file)), 4, "key_format"),
            Case("no passphrase", fingerprint("--key-file", str(b)), 4, "key_passphrase"),
            Case("wrong passphrase", fingerprint("--key-file", str(b), "--passphrase-file", str(pw)), 4),
            Case(
                "wrong passphrase publish", publish("--key-file", str(b), "--passphrase-file", str(pw)), 4, stdin="{}"
            ),
            Case("short passphrase", fingerprint("--key-file", str(b), "--passphrase-file", str(ps)), 4),
            Case("passphrase, plain key", fingerprint(*ka, "--passphrase-file", str(pb)), 4, "key_passphrase"),
            Case("passphrase, OpenSSH key", fingerprint(*kc, "--passphrase-file", str(pb)), 4, "key_passphrase"),
            Case("keyring source", fingerprint("--key-source", "keyring"), 4, "key_unavailable"),
            Case(
                "plain key variable",
                ("keys", "list"),
                4,
                "plain_secret_env",
                env={"MCP_ORCHESTRATION_SIGNING_KEY": pem_a},
            ),
            Case(
                "plain key variable and key file",
                publish(*ka),
                4,
                "plain_secret_env",
                env={"MCP_ORCHESTRATION_SIGNING_KEY": pem_a},
                stdin=payload_v,
            ),
            Case(
                "plain passphrase variable",
                ("init", *kb),
                4,
                "plain_secret_env",
                env={"MCP_ORCHESTRATION_SIGNING_KEY_PASSPHRASE": pass_b},
                home="s4",
            ),
            Case(
                "plain next-key variables",
                ("keys", "rotate", *ka),
                4,
                "plain_secret_env",
                env={
                    "MCP_ORCHESTRATION_SIGNING_KEY_NEXT": pem_b_plain,
                    "MCP_ORCHESTRATION_SIGNING_KEY_NEXT_PASSPHRASE": pass_d,
                },
                home="s4",
            ),
        ]
        # Every flag set for the commonest mistakes, two for the other key paths, one for the rest.
        every, both = {"wrong passphrase", "plain key variable"}, {"garbage key", "RSA key", "no passphrase"}
        failures = [
            replace(case, flags=ALL_FLAGS if case.label in every else FAILURE_FLAGS if case.label in both else None)
            for case in failures
        ]
        if not DEFAULT_KEY_FILE.exists():
            failures.append(Case("no key configured", ("keys", "fingerprint"), 4, "key_unavailable"))
        if shutil.which("ssh-keygen"):
            ssh_enc = secrets / "ssh_enc"
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", pass_b, "-C", "", "-f", str(ssh_enc)],
                check=True,
                capture_output=True,
            )
            canaries.exact.update(pem_canaries("encrypted OpenSSH file", ssh_enc.read_text()))
            failures += [
                Case("encrypted OpenSSH", fingerprint("--key-file", str(ssh_enc)), 4),
                Case(
                    "encrypted OpenSSH, passphrase",
                    fingerprint("--key-file", str(ssh_enc), "--passphrase-file", str(pb)),
                    4,
                ),
            ]
        generate = ("keys", "generate")
        h.batch(
            *failures,
            Case("generate", (*generate, "--out", "gen/pkcs8-{v}.pem"), contains="SHA256:", flags=ALL_FLAGS),
            Case("generate OpenSSH", (*generate, "--out", "gen/ssh-{v}.key", "--format", "openssh")),
            Case("generate encrypted", (*generate, "--out", "gen/enc-{v}.pem", "--passphrase-file", str(pb))),
            Case(
                "generate owned",
                (*generate, "--out", "gen/owned-{v}.pem", "--owner", "65532", "--mode", "0400"),
                0 if IS_ROOT else 2,
            ),
            Case("generate onto existing", (*generate, "--out", str(a)), 6, "conflict", flags=FAILURE_FLAGS),
            Case("generate short passphrase", (*generate, "--out", "gen/s-{v}.pem", "--passphrase-file", str(ps)), 4),
            Case(
                "generate encrypted OpenSSH",
                (*generate, "--out", "gen/x-{v}.key", "--format", "openssh", "--passphrase-file", str(pb)),
                4,
                "key_format",
            ),
            Case("generate into missing dir", (*generate, "--out", "gen/nope/k.pem"), 2, "usage"),
            Case("generate keyring", (*generate, "--keyring"), 4, "key_unavailable"),
            Case("generate bad mode", (*generate, "--out", "gen/m-{v}.pem", "--mode", "0644"), 2),
            Case(
                "generate, plain key variable",
                (*generate, "--out", "gen/env-{v}.pem"),
                4,
                "plain_secret_env",
                env={"MCP_ORCHESTRATION_SIGNING_KEY": pem_a},
            ),
            Case("get uninitialised", ("get", *main), 5, "not_initialized", home="s4", flags=((),)),
            Case("verify uninitialised", ("verify",), 5, home="s4", flags=((),)),
            Case("keys list uninitialised", ("keys", "list"), 5, home="s4", flags=((),)),
            Case("index export uninitialised", ("index", "export"), 5, home="s4", flags=(FULL,)),
        )

    def tampered_stores() -> None:
        h.sequence(
            Case("s3 init", ("init", *ka), home="s3", flags=((),)),
        )
        legacy_publish(root / "s3", a, "claude-desktop", "main", payload)
        h.sequence(
            Case("s3 publish 2", publish(*ka, profile="main"), stdin=clean_v, home="s3", flags=((),)),
        )
        cases: list[Case] = []
        codes = {
            "artifact": "integrity",
            "rollback": "rollback",
            "signature": "signature",
            "key_history": "key_history",
        }
        for kind, code in codes.items():
            shutil.copytree(root / "s3", root / f"t-{kind}")
            _tamper(root / f"t-{kind}", kind, artifact)
            # A copy in a new home: this host never pinned it, so every command states the root.
            at: dict[str, Any] = {"home": f"t-{kind}", "status": None, "env": {"MCP_ORCHESTRATION_EXPECT_KEY": fpr_a}}
            cases += [
                Case(f"{kind}: verify deep", ("verify", "--deep"), **{**at, "status": 3}, code=code),
                Case(f"{kind}: verify", ("verify",), **at),
                Case(f"{kind}: get", ("get", *main, "--artifact", artifact), **at),
                Case(f"{kind}: history", ("history", *main), **at),
                Case(f"{kind}: publish", publish(*ka, profile="t"), **at, stdin=clean_v),
            ]
        h.batch(*cases)

    # The stores are independent: run them side by side.
    with ThreadPoolExecutor(max_workers=4) as lanes:
        for lane in [lanes.submit(f) for f in (store_s1, store_s2, key_failures_and_generate, tampered_stores)]:
            lane.result()

    # Last, with no other thread running (preexec_fn): a key file this process may not read.
    unreadable_tested = _can_make_unreadable(root)
    if unreadable_tested:
        h.sequence(
            Case(
                "unreadable key",
                fingerprint("--key-file", str(unreadable)),
                4,
                "key_unreadable",
                contains="chown 65532",
                json_contains="chown 65532",
                flags=ALL_FLAGS,
                drop_file_override=True,
            ),
            Case(
                "unreadable key publish",
                publish("--key-file", str(unreadable)),
                4,
                "key_unreadable",
                stdin="{}",
                drop_file_override=True,
            ),
        )

    # Keys that `keys generate` wrote are canaries too.
    for path in sorted((root / "gen").iterdir()):
        if path.is_file():
            passphrase = pass_b.encode() if path.name.startswith("enc-") else None
            canaries.add_key(f"generated {path.name}", read_private(path, passphrase), path.read_text())

    telemetry = {
        str(path.relative_to(root)): path.read_text(errors="replace")
        for path in sorted(root.glob("*/telemetry/*"))
        if path.is_file()
    }
    return World(root, canaries, h.runs, h.failures, telemetry, unreadable_tested)


# -- the assertions over the whole run ---------------------------------------------------------


def test_canaries_are_built_from_the_real_keys(world: World) -> None:
    """The detector is not vacuous: it finds the canaries in the key files themselves."""
    secrets = world.root / "secrets"
    assert "key A: PEM text" not in world.canaries.exact  # names are qualified by format
    for name, must_find in (
        ("a.pem", "key A file: PEM line 1"),
        ("b.pem", "key B file: PEM line 1"),
        ("c.key", "key C file: PEM line 3"),
        ("pass_b", "pass B"),
    ):
        assert must_find in world.canaries.leaks((secrets / name).read_text()), name
    assert world.canaries.exact["key A PKCS8: PEM body"] == world.canaries.exact["key A: DER base64"]
    assert len(world.canaries.exact["key A: seed hex"]) == 64
    assert len(world.canaries.exact["key A: seed base64url"]) == 43
    assert any(name.startswith("generated ") for name in world.canaries.exact)
    # Partial leaks count: 80 escaped characters of a PEM (what an id check echoes) or half a body line.
    line = world.canaries.exact["key A PKCS8: PEM line 1"]
    assert "key A: part of PKCS8 body" in world.canaries.leaks(
        ascii(world.canaries.exact["key A PKCS8: PEM text"][:80])
    )
    assert "key A: part of PKCS8 body" in world.canaries.leaks(line[20:50])


def test_every_path_behaved_as_expected(world: World) -> None:
    assert not world.failures, "\n\n".join(world.failures)
    assert len(world.runs) > 150


@pytest.mark.parametrize("channel", ["stdout", "stderr"])
def test_no_secret_in_cli_output(world: World, channel: str) -> None:
    leaks = [
        f"{run.label} ({' '.join(run.argv)[:200]}): {found}"
        for run in world.runs
        if (found := world.canaries.leaks(getattr(run, channel)))
    ]
    assert not leaks, "\n".join(leaks)


def test_no_secret_in_telemetry(world: World) -> None:
    assert any(name.endswith("events.jsonl") for name in world.telemetry)
    events = [json.loads(line) for text in world.telemetry.values() for line in text.splitlines()]
    assert {"key_load", "init", "publish", "rotate", "revoke", "verify"} <= {e["event"] for e in events}
    assert {"key_passphrase", "key_format", "key_unavailable"} <= {e["outcome"] for e in events}
    leaks = [f"{name}: {found}" for name, text in world.telemetry.items() if (found := world.canaries.leaks(text))]
    assert not leaks, "\n".join(leaks)


def test_pem_in_payload_and_changelog_comes_back_masked(world: World) -> None:
    """A PEM in a payload or a changelog is refused; one an earlier release signed in is shown masked."""
    shown = [run for run in world.runs if run.label.startswith("get PEM") and run.status == 0]
    assert shown
    for run in shown:
        assert MASK in run.stdout, run.label
        assert "BEGIN" not in run.stdout, run.label
    payloads = [json.loads(run.stdout) for run in shown if run.label.startswith("get ") and "--json" in run.argv]
    assert payloads
    for payload in payloads:
        env = payload["config"]["mcpServers"]["fs"]["env"]
        assert env == {"SIGNING_KEY": MASK, "OTHER": MASK}
    reports = [
        json.loads(run.stdout)
        for run in world.runs
        if run.label.startswith("verify deep reports") and "--json" in run.argv
    ]
    assert reports
    for report in reports:
        held = {(c["profile"], frozenset(c["paths"])) for c in report["credentials"]}
        paths = frozenset({"/mcpServers/fs/env/SIGNING_KEY", "/mcpServers/fs/env/OTHER"})
        assert held == {("main", paths), ("p0", paths)}


def test_unreadable_key_file_was_exercised(world: World) -> None:
    if not world.unreadable_tested:
        pytest.skip("running as root without CAP_SETPCAP: cannot make a file unreadable to the child")
    runs = [run for run in world.runs if run.label.startswith("unreadable key")]
    assert runs
    assert all(run.status == 4 for run in runs)


# -- in-process: SigningKey rendering and key error text ------------------------------------


def _render(value: object) -> list[str]:
    return [
        repr(value),
        str(value),
        format(value),
        f"{value}",
        f"{value!r}",
        f"{value:>300}",
        "%s %r" % (value, value),  # noqa: UP031
        "{} {!r}".format(value, value),  # noqa: UP032
        repr([value]),
        str({"key": value}),
    ]


def test_signing_key_never_shows_itself(tmp_path: Path) -> None:
    canaries = Canaries()
    passphrase = f"pass-{os.urandom(8).hex()}"
    canaries.add_text("passphrase", passphrase)
    pass_file = _write(tmp_path / "pass", passphrase)
    loaded: list[Signer] = []
    for name, fmt, secret in (("plain", "pkcs8", None), ("enc", "pkcs8", pass_file), ("ssh", "openssh", None)):
        private = ed25519.Ed25519PrivateKey.generate()
        data = _openssh(private) if fmt == "openssh" else _pkcs8(private, passphrase.encode() if secret else None)
        path = _write(tmp_path / name, data)
        canaries.add_key(name, private, data.decode())
        key = key_sources.load_signing_key(KeySpec("file", path, secret))
        assert key.fingerprint == _fingerprint(private)
        loaded.append(key)
    loaded.append(keys.generate())
    for key in loaded:
        for text in _render(key):
            assert key.fingerprint in text
            assert not canaries.leaks(text), text
        with pytest.raises(TypeError):
            pickle.dumps(key)


def _error_texts(error: BaseException) -> list[str]:
    texts = [str(error), repr(error), "".join(traceback.format_exception(error))]
    if isinstance(error, OrchestrationError):
        texts += [error.diagnostics(), json.dumps(error.to_dict()), error.message, error.hint]
    return texts


def test_key_errors_never_carry_the_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    canaries = Canaries()
    passphrase, wrong = f"pass-{os.urandom(8).hex()}", f"wrong-{os.urandom(8).hex()}"
    for label, value in (("passphrase", passphrase), ("wrong", wrong), ("short", "Sh0rt!q")):
        canaries.add_text(label, value)
    key_a, key_b, key_c = (ed25519.Ed25519PrivateKey.generate() for _ in range(3))
    a = _write(tmp_path / "a.pem", _pkcs8(key_a))
    b = _write(tmp_path / "b.pem", _pkcs8(key_b, passphrase.encode()))
    c = _write(tmp_path / "c.key", _openssh(key_c))
    for label, private, path in (("A", key_a, a), ("B", key_b, b), ("C", key_c, c)):
        canaries.add_key(label, private, path.read_text())
    key_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_ec = ec.generate_private_key(ec.SECP256R1())
    rsa_file, ec_file = _write(tmp_path / "rsa.pem", _pkcs8(key_rsa)), _write(tmp_path / "ec.pem", _pkcs8(key_ec))
    canaries.add_key("RSA", key_rsa, rsa_file.read_text())
    canaries.add_key("EC", key_ec, ec_file.read_text())
    garbage_text = base64.b64encode(os.urandom(60)).decode()
    canaries.exact["garbage"] = garbage_text
    pass_file = _write(tmp_path / "pass", passphrase + "\n")
    wrong_file = _write(tmp_path / "wrong", wrong + "\n")
    short_file = _write(tmp_path / "short", "Sh0rt!q\n")
    garbage = _write(tmp_path / "garbage.pem", garbage_text)
    truncated = _write(tmp_path / "truncated.pem", a.read_bytes()[:60])
    unreadable = _write(tmp_path / "unreadable.pem", a.read_bytes(), 0o000)
    if IS_ROOT:  # root reads mode-000 files; make the read fail as it would for uid 65532
        real_read = fsutil.read_named_file

        def read_named_file(path: Path, limit: int) -> bytes:
            if Path(path) == unreadable:
                raise PermissionError(13, "Permission denied", str(path))
            return real_read(path, limit)

        monkeypatch.setattr(keys, "read_named_file", read_named_file)

    def load(path: Path | None, secret: Path | None = None, source: str = "file") -> Callable[[], object]:
        return lambda: key_sources.load_signing_key(KeySpec(source, path, secret))  # type: ignore[arg-type,unused-ignore]

    attempts: dict[str, Callable[[], object]] = {
        "missing": load(tmp_path / "nope.pem"),
        "directory": load(tmp_path),
        "unreadable": load(unreadable),
        "no key configured": load(None),
        "keyring": load(None, source="keyring"),
        "garbage": load(garbage),
        "truncated": load(truncated),
        "RSA": load(rsa_file),
        "EC": load(ec_file),
        "no passphrase": load(b),
        "wrong passphrase": load(b, wrong_file),
        "short passphrase": load(b, short_file),
        "passphrase for plain PKCS8": load(a, pass_file),
        "passphrase for OpenSSH": load(c, pass_file),
        "passphrase file missing": load(b, tmp_path / "nope"),
        "parse without passphrase": lambda: keys.parse_private_key(b.read_bytes(), None, "test"),
        "parse with wrong passphrase": lambda: keys.parse_private_key(b.read_bytes(), wrong.encode(), "test"),
        "private key as public key": lambda: PublicKey.from_pem(a.read_bytes()),
        "RSA public key": lambda: PublicKey.from_pem(
            key_rsa.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        ),
        "encrypted OpenSSH output": lambda: keys.generate().serialize("openssh", passphrase.encode()),
        "plain key variable": lambda: load_settings(environ={"MCP_ORCHESTRATION_SIGNING_KEY": a.read_text()}),
        "plain passphrase variable": lambda: load_settings(
            environ={"MCP_ORCHESTRATION_SIGNING_KEY_PASSPHRASE": passphrase}
        ),
    }
    # Key errors of the store: a retired, a revoked and an unknown key trying to sign.
    index = Repository(tmp_path / "storage")
    signer_a = key_sources.load_signing_key(KeySpec("file", a, None))
    signer_c = key_sources.load_signing_key(KeySpec("file", c, None))
    signer_b = key_sources.load_signing_key(KeySpec("file", b, pass_file))
    index.initialize(signer_a)
    rotation.rotate(index, signer_a, signer_c)
    update = [ProfileUpdate("c", "p", {"k": a.read_text()}, a.read_text())]
    attempts["retired key"] = lambda: index.publish(signer_a, update)
    attempts["unknown key"] = lambda: index.publish(signer_b, update)
    revoked: dict[str, Callable[[], object]] = {
        "revoked key": lambda: index.publish(signer_a, update),
        "rotate to revoked key": lambda: rotation.rotate(index, signer_c, signer_a),
    }

    def collect(cases: Mapping[str, Callable[[], object]]) -> dict[str, SigningKeyError]:
        raised: dict[str, SigningKeyError] = {}
        for name, attempt in cases.items():
            with pytest.raises(SigningKeyError) as info:
                attempt()
            raised[name] = info.value
        return raised

    errors = collect(attempts)
    rotation.revoke(index, signer_c, signer_a.keyid)
    errors |= collect(revoked)
    assert errors["unreadable"].code == "key_unreadable"
    assert errors["retired key"].code == "key_retired"
    assert errors["revoked key"].code == "key_revoked"
    leaks = [
        f"{name}: {found}"
        for name, error in errors.items()
        for text in _error_texts(error)
        if (found := canaries.leaks(text))
    ]
    assert not leaks, "\n".join(leaks)
