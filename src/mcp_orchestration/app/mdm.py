"""``export --format mobileconfig|reg``: a profile's verified servers as Claude Desktop's managed configuration.

The fleet path that needs no agent on the desktop: the MDM (Jamf, Intune,
Group Policy) delivers the file, the app reads the servers as policy. The
servers are read exactly as ``deploy`` reads them (key history against the
pinned root, the signed index chain, the host's last accepted head) and are
the entries ``deploy`` would write, unmasked, since a profile must work: a
``${env:NAME}`` placeholder, which Claude Desktop does not expand, is refused
unless ``resolve_env`` writes its value from this environment, as deploy does.
Credentials never reach a profile this way: publishing refuses them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, Literal

from mcp_orchestration.app.deploy import deployable
from mcp_orchestration.app.operations import App
from mcp_orchestration.config.clients import get_client
from mcp_orchestration.config.mdm import Provenance, render_mobileconfig, render_reg
from mcp_orchestration.core.errors import UsageError

MdmFormat = Literal["mobileconfig", "reg"]
MDM_FORMATS: tuple[MdmFormat, ...] = ("mobileconfig", "reg")
MDM_CLIENTS = ("claude-desktop",)  # the clients whose managed configuration is documented
_RENDERERS: Mapping[str, Callable[[Mapping[str, Mapping[str, Any]], Provenance], bytes]] = {
    "mobileconfig": render_mobileconfig,
    "reg": render_reg,
}


def export_managed(
    app: App,
    client: str,
    profile: str,
    fmt: MdmFormat,
    *,
    resolve_env: bool = False,
    environ: Mapping[str, str] | None = None,
) -> bytes:
    """The bytes of ``client/profile``'s managed configuration file in ``fmt``."""
    spec = get_client(client)
    if spec.id not in MDM_CLIENTS:
        raise UsageError(
            f"{spec.name} has no documented managed (MDM) configuration, so there is no {fmt} to export.",
            hint=f"Use --format json, or export a {' or '.join(MDM_CLIENTS)} profile.",
        )
    render = _RENDERERS.get(fmt)
    if render is None:
        raise UsageError(f"Unknown MDM format {fmt!r}: use one of {', '.join(MDM_FORMATS)}.")
    with app.telemetry.operation("export_managed") as event:
        event.set(format=fmt, resolve_env=resolve_env)
        source, servers, _ = deployable(
            app, spec, profile, resolve_env=resolve_env, environ=os.environ if environ is None else environ
        )
        event.set(keyid=source.keyid, index_version=source.index_version)
        provenance = Provenance(
            client=spec.id,
            profile=profile,
            artifact=source.artifact,
            index_version=source.index_version,
            root_fingerprint=source.root_fingerprint,
            keyid=source.keyid,
        )
        return render(servers, provenance)
