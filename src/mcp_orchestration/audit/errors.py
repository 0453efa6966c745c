"""Why the gate could reach no verdict: typed errors with stable codes, all exit status 2.

A report, lock or exceptions file that cannot be read or parsed is not a pass
and not a policy finding either: the gate stops and says which file to fix.
"""

from __future__ import annotations

from mcp_orchestration.core.errors import UsageError


class ReportUnreadableError(UsageError):
    code = "report_unreadable"
    hint = "Run pip-audit again with `-f json -o FILE` (build/audit.sh does) and pass that file."


class ReportMalformedError(UsageError):
    code = "report_malformed"
    hint = "The file is not pip-audit's JSON report (`-f json`); regenerate it with build/audit.sh."


class ExceptionsUnreadableError(UsageError):
    code = "exceptions_unreadable"
    hint = "Pass the reviewed exceptions file with --exceptions (audit-exceptions.toml at the repository root)."


class LockUnreadableError(UsageError):
    code = "lock_unreadable"
    hint = "Pass the hash-pinned lock the reports were made from with --lock (build/requirements.lock)."


class LockMalformedError(UsageError):
    code = "lock_malformed"
    hint = "The lock must pin every package as `name==version` (build/lock.sh writes it so); regenerate it."


# -- the image's Debian packages and Debian's security data (debian_gate.py, sbom.py) ---------------


class DpkgStatusUnreadableError(UsageError):
    code = "dpkg_status_unreadable"
    hint = (
        "Pass the image's /var/lib/dpkg/status.d, copied out of a created container (build/audit.sh does), "
        "with --debian-status."
    )


class DpkgStatusMalformedError(UsageError):
    code = "dpkg_status_malformed"
    hint = "Each file of status.d must be one dpkg control stanza with Package, Version and Architecture."


class DpkgStatusEmptyError(UsageError):
    code = "dpkg_status_empty"
    hint = "A Debian-based image lists at least base-files: the directory is not the image's status.d."


class OsReleaseError(UsageError):
    code = "os_release_invalid"
    hint = "Pass the image's /etc/os-release (docker cp -L follows its symlink); it must be Debian's, with VERSION_ID."


class TrackerUnreachableError(UsageError):
    code = "tracker_unreachable"
    hint = (
        "Debian's security data could not be downloaded: no verdict on the Debian packages. "
        "Run `make audit` where security-tracker.debian.org answers over HTTPS."
    )


class TrackerUnreadableError(UsageError):
    code = "tracker_unreadable"
    hint = "Pass the Debian security tracker's JSON (build/audit.sh downloads it) with --debian-tracker."


class TrackerMalformedError(UsageError):
    code = "tracker_malformed"
    hint = "The file is not the Debian security tracker's JSON, or was cut short; download it again."


class TrackerReleaseMissingError(UsageError):
    code = "tracker_release_missing"
    hint = "The tracker data does not cover the image's Debian release: a wrong or partial download cannot pass."


class TrackerIncompleteError(UsageError):
    code = "tracker_incomplete"
    hint = (
        "Debian's tracker lists issues of thousands of source packages for a release: this file is a fragment "
        "or a partial export. Download the whole tracker/data/json again."
    )


class TrackerStaleError(UsageError):
    code = "tracker_stale"
    hint = "Debian's issues change daily: download the tracker data again (build/audit.sh does, every run)."


class TrackerFutureError(UsageError):
    code = "tracker_future"
    hint = (
        "Check this machine's clock (timedatectl), then download the tracker data again: the download dates "
        "the file with the server's Last-Modified."
    )


class VenvUnreadableError(UsageError):
    code = "venv_unreadable"
    hint = "Pass the site-packages of the image's /venv (build/audit.sh copies it to build/out/image-venv)."


class WheelhouseUnreadableError(UsageError):
    code = "wheelhouse_unreadable"
    hint = "Pass the wheelhouse the image was built from (build/out/wheelhouse/<arch>) readable, or rebuild it."


class WheelMismatchError(UsageError):
    code = "wheel_mismatch"
    hint = "The wheelhouse is not the one the lock allows: rebuild it with build/wheelhouse.sh, then the image."
