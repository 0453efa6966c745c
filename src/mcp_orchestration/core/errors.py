"""Typed errors with stable codes, exit statuses and the fix a human reads.

Every failure the product can report is one of these types. The ``code`` is
stable (scripts and MCP clients match on it), ``message`` says what happened
and ``diagnostics()`` says how to fix it. No error ever carries secret values:
messages are built from paths, ids and fingerprints only.
"""

from __future__ import annotations

import errno
from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit statuses of the command line, documented in the README."""

    OK = 0
    FAILURE = 1
    USAGE = 2
    VERIFICATION = 3
    KEY = 4
    NOT_FOUND = 5
    CONFLICT = 6
    EXPIRED = 7
    UNAVAILABLE = 8
    DRIFT = 9
    POLICY = 10


class OrchestrationError(Exception):
    """Base of every expected failure: a stable code, a message and a fix."""

    code: str = "error"
    exit_code: ExitCode = ExitCode.FAILURE
    hint: str = ""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint

    def diagnostics(self) -> str:
        """The paragraph a person reads: what happened, then how to fix it."""
        return f"{self.message}\n{self.hint}" if self.hint else self.message

    def to_dict(self) -> dict[str, str]:
        """A structured form for ``--json`` output and tool errors."""
        return {"code": self.code, "message": self.message, "hint": self.hint}


class InternalError(OrchestrationError):
    """An unexpected failure; its details stay in the server's log."""

    code = "internal"
    default_message = "Internal error; the server logged the details."


class FilesystemError(OrchestrationError):
    """A file the store needs cannot be read or written (permissions, disk full, ...)."""

    code = "filesystem"
    hint = "Check the ownership, permissions and free space of the store's home directory."


class UsageError(OrchestrationError):
    code = "usage"
    exit_code = ExitCode.USAGE


class InvalidIdError(UsageError):
    code = "invalid_id"


class ValidationError(UsageError):
    code = "validation"


class LimitError(UsageError):
    code = "limit"


class NotFoundError(OrchestrationError):
    code = "not_found"
    exit_code = ExitCode.NOT_FOUND


class NotInitializedError(NotFoundError):
    code = "not_initialized"
    hint = "Run `mcp-orchestration init` with the signing key to create the store."


class ConflictError(OrchestrationError):
    code = "conflict"
    exit_code = ExitCode.CONFLICT


class VerificationError(OrchestrationError):
    """The store's content or signatures cannot be trusted."""

    code = "verification"
    exit_code = ExitCode.VERIFICATION
    hint = (
        "Do not use this store's content. Restore it from a verified backup, "
        "or investigate who changed the files (see SECURITY.md, 'Tamper response')."
    )


class IntegrityError(VerificationError):
    code = "integrity"


class DraftUnauthenticatedError(IntegrityError):
    """A draft whose MAC is missing or wrong: planted or edited by someone without the signing key."""

    code = "draft_unauthenticated"
    hint = (
        "Clear it with clear_draft_config (or remove the file) and edit again; a draft made before a key "
        "rotation or by an earlier release is refused the same way."
    )


class SignatureError(VerificationError):
    code = "signature"


class RollbackError(VerificationError):
    code = "rollback"


class ForkError(RollbackError):
    """Two signed heads claim the same place in the chain: one of them was built on a rewound index."""

    code = "fork"


class KeyHistoryError(VerificationError):
    code = "key_history"


class ExpiredError(VerificationError):
    """A validly signed head whose expiry passed: the publisher stopped refreshing, or a mirror froze it."""

    code = "expired"
    exit_code = ExitCode.EXPIRED
    hint = (
        "The last good config stays in place. The publisher must re-sign the index (`mcp-orchestration refresh`, "
        "run on a schedule) and push it to the mirror; if the mirror serves an old copy, fix the mirror."
    )


class MirrorError(OrchestrationError):
    """A mirror answered in a way a genuine distribution point never does; nothing it sent was used."""

    code = "mirror"
    exit_code = ExitCode.VERIFICATION
    hint = (
        "Nothing was applied and the last good config stays in place. Check the mirror's configuration "
        "(SECURITY.md, 'Fleet rollout'), or whether someone between this machine and it changes responses."
    )


class MirrorUnavailableError(MirrorError):
    """The mirror cannot be reached or does not answer in time (offline, down, overloaded)."""

    code = "mirror_unavailable"
    exit_code = ExitCode.UNAVAILABLE
    hint = "The last good config stays in place; the next scheduled sync tries again."


class MirrorTimeoutError(MirrorUnavailableError):
    code = "mirror_timeout"


class MirrorRedirectError(MirrorError):
    code = "mirror_redirect"


class MirrorContentTypeError(MirrorError):
    code = "mirror_content_type"


class MirrorTooLargeError(MirrorError):
    code = "mirror_too_large"


class MirrorMissingError(MirrorError):
    """The mirror lacks a file that the signed index it serves names: a partial or damaged push."""

    code = "mirror_missing"


class ServerProbeError(OrchestrationError):
    """A configured MCP server could not be started and listed (``lock``/``check`` run it on the operator's host).

    ``stderr_tail`` is the end of what the server wrote on stderr, bounded and
    redacted, for the report; it is never part of the message.
    """

    code = "server_unreachable"
    exit_code = ExitCode.UNAVAILABLE
    hint = "Run the server's command by hand on this machine to see why; its stderr (redacted) is in the report."

    def __init__(self, message: str, hint: str | None = None, *, stderr_tail: str = "") -> None:
        super().__init__(message, hint)
        self.stderr_tail = stderr_tail


class ServerStartError(ServerProbeError):
    code = "server_start"
    hint = "Install the command, or fix its path in the published config."


class ServerTimeoutError(ServerProbeError):
    code = "server_timeout"
    hint = "The server did not answer in time. Raise --timeout if it is slow to start (npx and uvx download first)."


class ServerExitedError(ServerProbeError):
    code = "server_exited"


class ServerProtocolError(ServerProbeError):
    code = "server_protocol"
    hint = "The server must write only JSON-RPC messages on stdout (logs belong on stderr)."


class PackageResolveError(OrchestrationError):
    """The package manager or the Docker engine could not say which exact release a launcher would run."""

    code = "package_resolve"
    exit_code = ExitCode.UNAVAILABLE
    hint = "Check that npm, uv, pip or docker is installed and can reach its registry from this machine."


class PolicyError(OrchestrationError):
    """The store's signed policy refuses this (see ``policy show``)."""

    code = "policy"
    exit_code = ExitCode.POLICY


class UnpinnedPackageError(PolicyError):
    code = "policy_unpinned"
    hint = (
        "Pin each launcher to an exact release (npx pkg@1.2.3, uvx pkg==1.2.3, docker run image@sha256:...), "
        "or change the store's policy with `mcp-orchestration policy set`."
    )


class LockMissingError(PolicyError):
    code = "lock_missing"
    hint = "Lock the profile's servers on the publisher (`mcp-orchestration lock --client C --profile P`)."


class LockStaleError(PolicyError):
    code = "lock_stale"
    hint = "The profile changed after its servers were locked: lock it again (`mcp-orchestration lock`)."


class UnhealthyError(OrchestrationError):
    """A health check's own HTTP endpoint does not answer."""

    code = "unhealthy"
    exit_code = ExitCode.UNAVAILABLE


class InsufficientScopeError(OrchestrationError):
    """An authenticated HTTP caller's token does not grant what the tool needs."""

    code = "insufficient_scope"
    hint = "Ask the issuer for a token with that scope (read-only tools need only the read scope)."


class SigningKeyError(OrchestrationError):
    """Base of failures to obtain or use the signing key."""

    code = "key_error"
    exit_code = ExitCode.KEY


class KeyUnavailableError(SigningKeyError):
    code = "key_unavailable"
    hint = (
        "Mount the key as a Docker secret at /run/secrets/signing_key, pass "
        "--key-file PATH or set MCP_ORCHESTRATION_SIGNING_KEY_FILE, or use "
        "--key-source keyring on a desktop."
    )


class KeyUnreadableError(SigningKeyError):
    code = "key_unreadable"


class KeyFormatError(SigningKeyError):
    code = "key_format"
    hint = "Use an Ed25519 key in PKCS8 PEM or OpenSSH format (`mcp-orchestration keys generate`)."


class PassphraseError(SigningKeyError):
    code = "key_passphrase"


class PinError(SigningKeyError):
    """A PKCS#11 token refused the PIN (or it cannot be used); the PIN itself is never quoted."""

    code = "key_pin"
    hint = (
        "Check the PIN file: it must hold exactly the token's user PIN (a trailing newline is ignored). "
        "Tokens lock the PIN after a few wrong tries; unlock it with the token's own tools."
    )


class KeySourceUnavailableError(SigningKeyError):
    """A key source needs software that is not installed here."""

    code = "key_source_unavailable"


class PlainSecretEnvError(SigningKeyError):
    code = "plain_secret_env"


class KeyNotTrustedError(SigningKeyError):
    code = "key_untrusted"
    hint = "Use the active key listed by `mcp-orchestration keys list`."


class KeyRetiredError(SigningKeyError):
    code = "key_retired"
    hint = (
        "This key was rotated out. Point the process at the new key "
        "(update the signing_key secret) and restart it; reads keep working."
    )


class KeyRevokedError(SigningKeyError):
    code = "key_revoked"
    hint = "This key is revoked and can sign nothing. Use the active key."


def unreadable_file(
    label: str, exc: OSError, *, kind: type[UsageError] = UsageError, hint: str | None = None
) -> UsageError:
    """The error for a file an operator named that cannot be read, or is refused by the safe open.

    Over its bound is ``limit``; a link, FIFO, device or unreadable file is
    ``kind`` (the safe open's reason, e.g. "is a FIFO", in the message).
    """
    if exc.errno == errno.EFBIG:
        return LimitError(f"{label} is over the limit: it {exc.strerror}.")
    refused = exc.errno in (errno.ELOOP, errno.EINVAL, errno.EISDIR, errno.ENXIO)  # the safe open's "is a ..."
    reason = f"it {exc.strerror}" if refused else exc.strerror
    return kind(f"{label} cannot be read: {reason}.", hint)
