"""A publisher and desktops for fleet tests: real keys, a real store, real mirrors, ``sync`` in-process."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mcp_orchestration.app import rotation
from mcp_orchestration.app.sync import ApplyRequest, SyncRequest, SyncResult, sync
from mcp_orchestration.store.mirror import push
from mcp_orchestration.store.mirror.transport import TransportOptions, open_target
from mcp_orchestration.store.repository import ANY_BASE, ProfileUpdate, Repository
from mcp_orchestration.trust import keys
from mcp_orchestration.trust.signer import Signer


def servers(name: str, *args: str) -> dict[str, Any]:
    """A config with one stdio server."""
    return {"mcpServers": {name: {"command": "npx", "args": ["-y", *args]}}}


@dataclass
class Publisher:
    """A store and its signing key, as the publisher holds them."""

    home: Path
    key: Signer = field(default_factory=keys.generate)
    lifetime: timedelta = timedelta(days=7)

    def __post_init__(self) -> None:
        self.repository.initialize(self.key)

    @property
    def repository(self) -> Repository:
        return Repository(self.home / "storage", head_lifetime=self.lifetime)

    @property
    def root(self) -> str:
        return self.repository.load_history().root_fingerprint

    def publish(self, client: str, profile: str, payload: dict[str, Any]) -> int:
        update = ProfileUpdate(client, profile, payload, expected_base=ANY_BASE)
        return self.repository.publish(self.key, [update]).index_version

    def push(self, url: str, token_file: Path | None = None) -> push.PushResult:
        target = open_target(url, TransportOptions(token_file=token_file))
        try:
            return push.push(self.repository, target)
        finally:
            target.close()

    def rotate(self) -> None:
        new = keys.generate()
        rotation.rotate(self.repository, self.key, new)
        self.key = new

    def revoke(self, keyid: str) -> None:
        rotation.revoke(self.repository, self.key, keyid)

    def refresh(self) -> None:
        rotation.refresh(self.repository, self.key)


@dataclass
class Desktop:
    """A desktop with its own state directory and a Claude Desktop config holding the user's own settings."""

    base: Path
    root: str
    url: str
    client: str = "claude-desktop"
    profile: str = "default"

    def __post_init__(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        if not self.config.exists():
            self.config.write_text(json.dumps({"theme": "dark", "mcpServers": {"mine": {"command": "mine"}}}))

    @property
    def config(self) -> Path:
        return self.base / "claude_desktop_config.json"

    @property
    def state_dir(self) -> Path:
        return self.base / "state"

    def request(self, **changes: Any) -> SyncRequest:
        fields: dict[str, Any] = {
            "url": self.url,
            "expect_root": self.root,
            "applies": (ApplyRequest(self.client, self.profile, self.config),),
            "state_dir": self.state_dir,
            "timeout": 5.0,
        }
        return SyncRequest(**{**fields, **changes})

    def sync(self, *, now: datetime | None = None, **changes: Any) -> SyncResult:
        return sync(self.request(**changes), now=now, environ={})

    def servers(self) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self.config.read_text())["mcpServers"]
        return found

    def files(self) -> dict[str, bytes]:
        """Every file under the desktop's directory (config, backups, state; not the empty lock file)."""
        found = sorted(self.base.rglob("*"))
        return {str(p.relative_to(self.base)): p.read_bytes() for p in found if p.is_file() and p.name != ".lock"}


def later(days: float) -> datetime:
    return datetime.now(UTC) + timedelta(days=days)
