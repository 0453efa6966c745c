"""Read-only use cases for a long-running server: what this product knows, and the published configs, masked.

A server answers the same artifact many times, and artifacts never change, so
:class:`PublishedConfigs` masks each one once (bounded); the command line reads
once per process and uses :func:`~mcp_orchestration.app.operations.get`.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from mcp_orchestration.app import operations, results
from mcp_orchestration.app.operations import App
from mcp_orchestration.app.views import server_description
from mcp_orchestration.config import catalog, clients
from mcp_orchestration.config.masking import mask_secrets

MASKED_CACHE_ENTRIES = 256


def client_list() -> results.ClientList:
    """The MCP clients this product can produce configs for."""
    return {
        "clients": [
            {"id": spec.id, "name": spec.name, "config_key": spec.config_key, "transports": list(spec.transports)}
            for spec in clients.load_clients().values()
        ]
    }


def server_list(catalog_file: Path | None) -> results.ServerList:
    """The catalog of well-known servers, in brief."""
    return {
        "servers": [
            {"id": s.id, "name": s.name, "description": s.description, "transport": s.transport}
            for s in catalog.load_catalog(catalog_file).values()
        ]
    }


def server_details(server_id: str, catalog_file: Path | None) -> results.ServerDetails:
    """One catalog entry in full: command, parameters and environment variable names."""
    return {"server": server_description(catalog.get_server(server_id, catalog_file))}


class PublishedConfigs:
    """A store's published configs as shown: verified on every read, masked once per artifact."""

    def __init__(self, app: App) -> None:
        self.app = app
        self._masked_cache: dict[str, str] = {}
        self._masked_lock = threading.Lock()

    def config(self, client: str, profile: str, artifact: str | None = None) -> results.PublishedConfig:
        """A profile's published config (latest, or a past artifact), verified and masked."""
        entry, payload = operations.read_published(self.app, client, profile, artifact)
        return operations.published_view(
            entry, self._masked(entry.artifact, payload), operations.lock_view(self.app, entry)
        )

    def export(self, client: str, profile: str) -> results.ExportedConfig:
        """The client's own file shape for a profile's published config, with its artifact and index version."""
        clients.get_client(client)
        return operations.export_view(self.config(client, profile))

    def _masked(self, artifact: str, payload: Any) -> dict[str, Any]:
        """``mask_secrets`` of an artifact, computed once per artifact."""
        with self._masked_lock:  # a server reads in worker threads
            text = self._masked_cache.get(artifact)
        if text is None:
            text = json.dumps(mask_secrets(payload))
            with self._masked_lock:
                if len(self._masked_cache) >= MASKED_CACHE_ENTRIES:
                    self._masked_cache.pop(next(iter(self._masked_cache)))
                self._masked_cache[artifact] = text
        return dict(json.loads(text))
