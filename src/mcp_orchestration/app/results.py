"""The typed results of the use cases, which are also what each MCP tool's ``outputSchema`` publishes.

One definition serves both: the app layer returns these shapes, and the SDK
derives each tool's schema from them and validates every successful result
against it before sending, so a result can only change shape together with its
published schema (the ``tools/list`` snapshot test guards both). Extra keys are
forbidden: nothing reaches a client that the schema does not name.
``typing_extensions.TypedDict`` because pydantic needs it below Python 3.12 for
nested types. Modules the command line loads import this one for type checking
only: pydantic stays out of its start-up.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, with_config
from typing_extensions import TypedDict

STRICT = ConfigDict(extra="forbid")

ArtifactId = Annotated[str, Field(description="SHA-256 of the artifact's canonical JSON (64 hex digits).")]
IndexVersion = Annotated[int, Field(description="Version of the signed index.", ge=1)]
Config = Annotated[
    dict[str, Any],
    Field(description="A config with every env and header value masked unless it is a ${env:NAME} placeholder."),
]


@with_config(STRICT)
class ClientInfo(TypedDict):
    id: str
    name: str
    config_key: str
    transports: list[str]


@with_config(STRICT)
class ClientList(TypedDict):
    clients: list[ClientInfo]


@with_config(STRICT)
class ProfileInfo(TypedDict):
    client: str
    profile: str
    published: bool
    has_draft: bool


@with_config(STRICT)
class ProfileList(TypedDict):
    profiles: list[ProfileInfo]


@with_config(STRICT)
class ServerSummary(TypedDict):
    id: str
    name: str
    description: str
    transport: str


@with_config(STRICT)
class ServerList(TypedDict):
    servers: list[ServerSummary]


@with_config(STRICT)
class ServerParameter(TypedDict):
    name: str
    description: str
    required: bool
    kind: str
    items: str | None


@with_config(STRICT)
class ServerDescription(TypedDict):
    id: str
    name: str
    description: str
    transport: str
    command: str
    args: list[str]
    parameters: list[ServerParameter]
    required_env: list[str]
    optional_env: list[str]
    homepage: str


@with_config(STRICT)
class ServerDetails(TypedDict):
    server: ServerDescription


Pins = Annotated[
    dict[str, str],
    Field(description="SHA-256 of each definition's RFC 8785 form (the whole definition the server sent), by name."),
]


@with_config(STRICT)
class ServerIdentity(TypedDict):
    name: str | None
    version: str | None


@with_config(STRICT)
class LockedServer(TypedDict):
    package: Annotated[
        str | None,
        Field(description="The exact release the lock ran (name@version, name==version, image@sha256:...), if any."),
    ]
    server: Annotated[ServerIdentity, Field(description="What the server said it is.")]
    protocol_version: str
    tools: Pins
    prompts: Pins
    resource_templates: Pins


@with_config(STRICT)
class ToolLockView(TypedDict):
    lock: Annotated[str, Field(description="The tool lock's object id (64 hex digits).")]
    locked_at: str
    current: Annotated[
        bool, Field(description="Whether the lock was taken for this artifact (false: the config changed since).")
    ]
    servers: Annotated[dict[str, LockedServer], Field(description="What each local server exposed, by name.")]
    not_locked: Annotated[dict[str, str], Field(description="Servers the lock does not cover, with why.")]


@with_config(STRICT)
class PublishedConfig(TypedDict):
    client: str
    profile: str
    artifact: ArtifactId
    index_version: IndexVersion
    published_at: str
    changelog: str
    config: Config
    tool_lock: Annotated[
        ToolLockView | None, Field(description="The approved tools of the config's servers (None: never locked).")
    ]


@with_config(STRICT)
class ExportedConfig(TypedDict):
    client: str
    profile: str
    artifact: ArtifactId
    index_version: IndexVersion
    config: Annotated[dict[str, Any], Field(description="The client's own config file content (masked).")]


@with_config(STRICT)
class Publisher(TypedDict):
    subject: str
    client_id: str
    issuer: str


@with_config(STRICT)
class HistoryVersion(TypedDict):
    client: str
    profile: str
    artifact: ArtifactId
    previous_entry: str | None
    changelog: str
    published_at: str
    index_version: IndexVersion
    published_by: Annotated[
        Publisher | None,
        Field(description="The authenticated caller who published it over HTTP; null: the host's own operator."),
    ]


@with_config(STRICT)
class ConfigHistory(TypedDict):
    client: str
    profile: str
    versions: Annotated[list[HistoryVersion], Field(description="Newest first.")]


@with_config(STRICT)
class ValueChange(TypedDict):
    old: Any
    new: Any


@with_config(STRICT)
class NamesChange(TypedDict):
    added: list[str]
    removed: list[str]
    changed: list[str]


@with_config(STRICT)
class ServerChange(TypedDict):
    name: str
    command: ValueChange | None
    args: ValueChange | None
    url: ValueChange | None
    env: NamesChange | None
    headers: NamesChange | None
    other_fields: NamesChange | None


@with_config(STRICT)
class ConfigDiff(TypedDict):
    changed: bool
    added: list[str]
    removed: list[str]
    modified: list[ServerChange]
    top_level: NamesChange
    unified: Annotated[str, Field(description="Unified diff of the masked JSON.")]


@with_config(STRICT)
class ProfileDiff(ConfigDiff):
    client: str
    profile: str


@with_config(STRICT)
class DraftView(TypedDict):
    client: str
    profile: str
    base_artifact: Annotated[ArtifactId | None, Field(description="The published artifact the draft started from.")]
    updated_at: str
    config: Config


@with_config(STRICT)
class DraftWithDiff(DraftView):
    diff: ConfigDiff


@with_config(STRICT)
class DraftCleared(TypedDict):
    client: str
    profile: str
    cleared: Annotated[bool, Field(description="False when there was no draft.")]


@with_config(STRICT)
class Problem(TypedDict):
    code: str
    path: str
    message: str


@with_config(STRICT)
class ValidationResult(TypedDict):
    client: str
    profile: str
    ok: bool
    problems: list[Problem]
    omitted: Annotated[int, Field(description="Problems found beyond those listed.")]
    warnings: Annotated[
        list[Problem],
        Field(description="What a valid config should still fix: a launcher without an exact release (unpinned)."),
    ]


@with_config(STRICT)
class Published(TypedDict):
    client: str
    profile: str
    artifact: ArtifactId
    index_version: IndexVersion
    changed: Annotated[bool, Field(description="False when the draft equals the published config.")]
    keyid: str
    warnings: Annotated[
        list[Problem], Field(description="Launchers without an exact release (allowed by the store's policy).")
    ]


@with_config(STRICT)
class PublishResult(Published):
    diff: Annotated[
        ConfigDiff, Field(description="What was signed: the change from the config this publish replaced (masked).")
    ]


@with_config(STRICT)
class VerifyResult(TypedDict):
    client: str
    profile: str
    artifact: ArtifactId
    verified: Literal[True]
    index_version: IndexVersion
    head_id: str
    keyid: str
    key_history_version: int
    heads_checked: int
    objects_checked: int
    heads_vouched_by_chain: int
    deep: bool
    profiles: int
    unreferenced_objects: int
    damaged_unreferenced: list[str]


@with_config(STRICT)
class KeyInfo(TypedDict):
    fingerprint: str
    status: Literal["active", "retired", "revoked"]
    first_index: int
    last_index: int | None


@with_config(STRICT)
class PolicyRules(TypedDict):
    require_pinned_packages: Annotated[bool, Field(description="Publishing refuses launchers without exact releases.")]
    require_tool_lock: Annotated[bool, Field(description="Deploy and sync refuse a profile without a current lock.")]


@with_config(STRICT)
class TrustInfo(TypedDict):
    policy: Annotated[PolicyRules, Field(description="The store's signed policy.")]
    key_history_version: int
    root: Annotated[str, Field(description="Fingerprint of the pinned root key.")]
    keys: list[KeyInfo]
    index_version: IndexVersion
    signed_by: Annotated[str, Field(description="Fingerprint of the key that signed the current index.")]
