"""Draft use cases: edit a profile's config in steps, see how it differs, then publish it through the one gate.

A draft is the store's working state (``store.drafts``): authenticated by the
signing key, never signed into the index. Every rule of an edit is here, once:
ids are checked before use, the key comes first on every write (once loaded,
the redactor knows it, so no later error can quote it), edits are serialised
under the drafts lock, configs leave masked, and a publish goes through
:func:`~mcp_orchestration.app.operations.publish_payload` with the draft's base
artifact as its compare-and-swap.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from mcp_orchestration.app import operations, results
from mcp_orchestration.app.operations import App
from mcp_orchestration.app.views import diff_view, validation_view
from mcp_orchestration.config import catalog, clients
from mcp_orchestration.config.diff import ConfigDiff, diff_configs
from mcp_orchestration.config.masking import mask_secrets
from mcp_orchestration.config.model import SERVERS_KEY
from mcp_orchestration.config.validation import require_valid, validate_config
from mcp_orchestration.core.clock import utc_now
from mcp_orchestration.core.errors import NotFoundError
from mcp_orchestration.security.ids import check_name_id, check_server_name, shown
from mcp_orchestration.store.drafts import Draft, DraftStore

EMPTY_CONFIG: dict[str, Any] = {SERVERS_KEY: {}}


class Drafting:
    """The drafts of one store, and the use cases over them."""

    def __init__(self, app: App, catalog_file: Path | None = None) -> None:
        self.app = app
        self.store = DraftStore(app.settings.storage_dir)
        self.catalog_file = catalog_file

    def profiles(self, client: str | None = None) -> results.ProfileList:
        """Every published profile (optionally of one client), and which have a draft."""
        if client is not None:
            check_name_id(client, "client")
        published = self.app.index.list_profiles()
        drafts = set(self.store.list())  # names checked, files not read: listing needs no key
        names = {(c, p) for c, profiles in published.items() for p in profiles} | drafts
        return {
            "profiles": [
                {"client": c, "profile": p, "published": p in published.get(c, []), "has_draft": (c, p) in drafts}
                for c, p in sorted(names)
                if client is None or c == client
            ]
        }

    def view(self, client: str, profile: str) -> results.DraftWithDiff:
        """The draft (masked) and how it differs from the published config."""
        draft = self._draft(client, profile)
        return {**_shown(draft), "diff": diff_view(self._diff_against_published(draft))}

    def diff(self, client: str, profile: str) -> results.ProfileDiff:
        """How the draft differs from the published config (env values masked)."""
        diff = diff_view(self._diff_against_published(self._draft(client, profile)))
        return {"client": client, "profile": profile, **diff}

    def validate(self, client: str, profile: str) -> results.ValidationResult:
        """Check the draft against the config rules, secrets included."""
        return validation_view(client, profile, validate_config(self._draft(client, profile).payload))

    def add_server(
        self,
        client: str,
        profile: str,
        server_id: str,
        *,
        name: str | None = None,
        parameters: dict[str, Any] | None = None,
        optional_env: list[str] | None = None,
    ) -> results.DraftView:
        """Add a catalog server to the profile's draft (secrets become placeholders)."""
        clients.get_client(client)
        server = catalog.get_server(server_id, self.catalog_file)
        entry = server.instantiate(parameters or {}, optional_env or ())
        entry_name = check_server_name(name or server.id)

        def add(config: dict[str, Any]) -> dict[str, Any]:
            payload = {**config, SERVERS_KEY: {**config.get(SERVERS_KEY, {}), entry_name: entry}}
            require_valid(payload)
            return payload

        return self._edit(client, profile, add)

    def remove_server(self, client: str, profile: str, name: str) -> results.DraftView:
        """Remove a server, by its name in the config, from the profile's draft."""

        def remove(config: dict[str, Any]) -> dict[str, Any]:
            servers = dict(config.get(SERVERS_KEY, {}))
            if name not in servers:
                raise NotFoundError(f"The draft of {client}/{profile} has no server named {shown(name)}.")
            del servers[name]
            return {**config, SERVERS_KEY: servers}

        return self._edit(client, profile, remove)

    def clear(self, client: str, profile: str) -> results.DraftCleared:
        """Drop the profile's draft."""
        with self.app.telemetry.operation("draft_clear") as event:
            event.set(keyid=self.app.require_writable().keyid)
            clients.get_client(client)
            with self.store.lock():
                cleared = self.store.clear(client, profile)
            event.set(client=client, profile=profile, changed=cleared)
        return {"client": client, "profile": profile, "cleared": cleared}

    def publish(self, client: str, profile: str, changelog: str = "") -> results.PublishResult:
        """Publish the draft through the one gate (``operations.publish_payload`` checks all of it), then drop it;
        the result shows exactly what was signed.

        The publish succeeds only if the profile is still at the draft's base
        artifact (checked under the index lock) or already holds the draft's
        config, so the diff shown is from the config this publish replaced.
        """
        key = self.app.require_writable()
        operations.check_changelog(changelog)  # the gate checks it again; a hostile changelog is refused first
        with self.store.lock():  # no edit can slip in between publishing the draft and dropping it
            draft = self.store.get(client, profile, key)
            if draft is None:
                raise NotFoundError(
                    f"There is no draft of {client}/{profile} to publish.",
                    "Edit the profile first (add_server_to_config / remove_server_from_config).",
                )
            base = None if draft.base_artifact is None else self.app.index.objects.get_json(draft.base_artifact)
            published = operations.publish_payload(
                self.app, client, profile, draft.payload, changelog, base_artifact=draft.base_artifact
            )
            self.store.clear(client, profile)
        replaced = base if published["changed"] else draft.payload  # unchanged: it was already published
        return {**published, "diff": diff_view(diff_configs(replaced, draft.payload))}

    def _draft(self, client: str, profile: str) -> Draft:
        """The profile's draft, or a new one started from its published config.

        Checking a draft's MAC needs the signing key: without one, the key's
        error is the answer, never a draft no one can vouch for.
        """
        clients.get_client(client)
        check_name_id(profile, "profile")
        existing = self.store.get(client, profile, self.app.signing_key)
        if existing is not None:
            return existing
        try:
            entry, payload = operations.read_published(self.app, client, profile)
        except NotFoundError:
            return Draft(client, profile, dict(EMPTY_CONFIG), None, utc_now())
        return Draft(client, profile, payload, entry.artifact, utc_now())

    def _edit(self, client: str, profile: str, change: Callable[[dict[str, Any]], dict[str, Any]]) -> results.DraftView:
        """Apply ``change`` to the draft's config: read, change and write under the drafts lock, so no edit is lost."""
        with self.app.telemetry.operation("draft_edit") as event:
            key = self.app.require_writable()
            event.set(keyid=key.keyid)
            with self.store.lock():
                draft = self._draft(client, profile)
                updated = Draft(client, profile, change(draft.payload), draft.base_artifact, utc_now())
                self.store.save(updated, key)
            event.set(client=client, profile=profile)
        return _shown(updated)

    def _diff_against_published(self, draft: Draft) -> ConfigDiff:
        try:
            _, published = operations.read_published(self.app, draft.client, draft.profile)
        except NotFoundError:
            published = None
        return diff_configs(published, draft.payload)


def _shown(draft: Draft) -> results.DraftView:
    """A draft as every result shows it: its config masked."""
    return {
        "client": draft.client,
        "profile": draft.profile,
        "base_artifact": draft.base_artifact,
        "updated_at": draft.updated_at,
        "config": mask_secrets(draft.payload),
    }
