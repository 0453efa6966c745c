"""What each MCP tool takes and returns: one method per tool, whose signature is the tool's schema.

The SDK derives each tool's input schema from its method's parameters (with
their descriptions) and its output schema from the method's result type, a
typed result of the app layer. The methods only pass arguments on: every rule
(ids, masking, secrets, limits, the signing key, the publish gate) is the app
layer's, and nothing writes outside the store: writing a client's file on the
user's machine is the operator's ``deploy`` command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from mcp_orchestration.app import browsing, inspection, operations, results
from mcp_orchestration.app.browsing import PublishedConfigs
from mcp_orchestration.app.drafting import Drafting
from mcp_orchestration.app.operations import MAX_CHANGELOG_CHARS, App

Client = Annotated[str, Field(description="Client id, e.g. claude-desktop, cursor, vscode, windsurf.")]
Profile = Annotated[str, Field(description="Profile id, e.g. default.")]


class ConfigTools:
    """The tools of one server process, over one store."""

    def __init__(self, app: App, catalog_file: Path | None = None) -> None:
        self.app = app
        self.catalog_file = catalog_file
        self.published = PublishedConfigs(app)
        self.drafting = Drafting(app, catalog_file)
        self.drafts = self.drafting.store  # the drafts the tools edit (tests plant and watch them here)

    # -- browsing ------------------------------------------------------------------------

    def list_clients(self) -> results.ClientList:
        """The MCP clients this server can produce configs for."""
        return browsing.client_list()

    def list_profiles(self, client: Client | None = None) -> results.ProfileList:
        """Every published profile (optionally of one client), and which have a draft."""
        return self.drafting.profiles(client)

    def list_available_servers(self) -> results.ServerList:
        """The catalog of well-known servers, in brief."""
        return browsing.server_list(self.catalog_file)

    def describe_server(
        self, server_id: Annotated[str, Field(description="Catalog server id.")]
    ) -> results.ServerDetails:
        """One catalog entry in full: command, parameters and environment variable names."""
        return browsing.server_details(server_id, self.catalog_file)

    # -- published configs ---------------------------------------------------------------

    def get_config(
        self,
        client: Client,
        profile: Profile,
        artifact: Annotated[str | None, Field(description="A past artifact id (64 hex digits).")] = None,
    ) -> results.PublishedConfig:
        """A profile's published config (latest, or a past artifact), verified and masked."""
        return self.published.config(client, profile, artifact)

    def get_config_history(self, client: Client, profile: Profile) -> results.ConfigHistory:
        """Every published version of a profile, newest first."""
        return operations.profile_history(self.app, client, profile)

    def export_config(self, client: Client, profile: Profile) -> results.ExportedConfig:
        """The client's own file shape for a profile's published config, with its artifact and index version."""
        return self.published.export(client, profile)

    def verify_config(self, client: Client, profile: Profile) -> results.VerifyResult:
        """Verify the key history, the signed chain and the profile's artifact bytes."""
        return inspection.verify_profile(self.app, client, profile)

    def get_trust_info(self) -> results.TrustInfo:
        """Fingerprints, the key history and the current index version (public data only)."""
        return inspection.trust_info(self.app)

    # -- drafts --------------------------------------------------------------------------

    def add_server_to_config(  # noqa: PLR0917 (the tool's arguments)
        self,
        client: Client,
        profile: Profile,
        server_id: Annotated[str, Field(description="Catalog server id, from list_available_servers.")],
        name: Annotated[str | None, Field(description="Name of the server in the config (default: its id).")] = None,
        parameters: Annotated[
            dict[str, Any] | None, Field(description="Values for the server's parameters (see describe_server).")
        ] = None,
        optional_env: Annotated[
            list[str] | None, Field(description="Names of optional environment variables to reference.")
        ] = None,
    ) -> results.DraftView:
        """Add a catalog server to the profile's draft (secrets become placeholders)."""
        return self.drafting.add_server(
            client, profile, server_id, name=name, parameters=parameters, optional_env=optional_env
        )

    def remove_server_from_config(
        self, client: Client, profile: Profile, name: Annotated[str, Field(description="Server name in the config.")]
    ) -> results.DraftView:
        """Remove a server from the profile's draft."""
        return self.drafting.remove_server(client, profile, name)

    def view_draft_config(self, client: Client, profile: Profile) -> results.DraftWithDiff:
        """The draft (masked) and how it differs from the published config."""
        return self.drafting.view(client, profile)

    def clear_draft_config(self, client: Client, profile: Profile) -> results.DraftCleared:
        """Drop the profile's draft."""
        return self.drafting.clear(client, profile)

    def diff_config(self, client: Client, profile: Profile) -> results.ProfileDiff:
        """How the draft differs from the published config (env values masked)."""
        return self.drafting.diff(client, profile)

    def validate_config(self, client: Client, profile: Profile) -> results.ValidationResult:
        """Check the draft against the config rules, secrets included."""
        return self.drafting.validate(client, profile)

    def publish_config(
        self,
        client: Client,
        profile: Profile,
        changelog: Annotated[str, Field(description="Why this version exists.", max_length=MAX_CHANGELOG_CHARS)] = "",
    ) -> results.PublishResult:
        """Publish the draft, then drop it; the result shows exactly what was signed."""
        return self.drafting.publish(client, profile, changelog)
