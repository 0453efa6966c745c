"""The MCP server: tool, resource and prompt registration on the official SDK, and nothing else.

Tool names and descriptions are fixed text (a snapshot test guards them: a
description that changes silently is how tool poisoning starts). Every tool
runs its :class:`~mcp_orchestration.server.tools.ConfigTools` operation in a
worker thread under a time limit; an expected failure becomes a tool error
with a stable code, anything else a generic ``internal`` error, and all text
passes through the redactor.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any, TypeVar, cast

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult
from pydantic import Field

from mcp_orchestration.app.operations import MAX_CHANGELOG_CHARS
from mcp_orchestration.core.errors import InternalError, LimitError, OrchestrationError, UsageError, ValidationError
from mcp_orchestration.security.ids import check_name_id
from mcp_orchestration.security.redaction import REDACTOR
from mcp_orchestration.server import schemas
from mcp_orchestration.server.tools import ConfigTools

log = logging.getLogger(__name__)
_ERROR_TYPE = re.compile(r"\[type=(\w+)")
Result = TypeVar("Result", bound=Mapping[str, Any])

CALL_TIMEOUT_SECONDS = 20.0
SERVER_NAME = "mcp-orchestration"
ERROR_META_KEY = "mcp-orchestration/error"  # a tool error's {code, message, hint} in the result's _meta
INSTRUCTIONS = (
    "Manages MCP client configurations as signed, content-addressed artifacts. Edit a profile's draft with "
    "add_server_to_config / remove_server_from_config, check it with validate_config and diff_config, then "
    "publish_config. Secrets are never stored: reference them as ${env:NAME} placeholders. Writing a client's "
    "config file on a machine is an operator action (`mcp-orchestration deploy`), not a tool."
)

DESCRIPTIONS: dict[str, str] = {
    "list_clients": "List the MCP clients (Claude Desktop, Cursor, VS Code, Windsurf) this server manages configs for.",
    "list_profiles": "List published config profiles and drafts, optionally for one client.",
    "get_config": (
        "Get the published config of a client profile (or a past artifact of it), verified against its signature "
        "and hash. Environment and header values are masked."
    ),
    "diff_config": "Show how a profile's draft differs from its published config. Values of env vars are masked.",
    "list_available_servers": "List the well-known MCP servers in the catalog that can be added to a config.",
    "describe_server": "Describe one catalog server: command, parameters and the environment variable names it needs.",
    "add_server_to_config": (
        "Add a catalog server to a profile's draft. Required secrets become ${env:NAME} placeholders; "
        "secret values are never accepted."
    ),
    "remove_server_from_config": "Remove a server, by its name in the config, from a profile's draft.",
    "view_draft_config": "Show a profile's draft (masked) and its difference from the published config.",
    "clear_draft_config": "Discard a profile's draft.",
    "validate_config": "Validate a profile's draft: shape, limits, and secrets that must be placeholders instead.",
    "publish_config": (
        "Validate, sign and publish a profile's draft as a new index version. Needs the server's signing key."
    ),
    "get_config_history": "List every published version of a profile, newest first, with artifact ids and changelogs.",
    "verify_config": (
        "Verify a profile's published config: the key history, the signed index chain, and the artifact's hash."
    ),
    "get_trust_info": "Show the signing key fingerprints, the public key history and the current index version.",
    "export_config": (
        "Export a profile's published config in the client's own file format, with its artifact id and index version."
    ),
}

Client = Annotated[str, Field(description="Client id, e.g. claude-desktop, cursor, vscode, windsurf.")]
Profile = Annotated[str, Field(description="Profile id, e.g. default.")]


def _error_result(error: OrchestrationError) -> CallToolResult:
    """A tool error: the text a model reads, and the same error as data in ``_meta`` for programs.

    Not in ``structuredContent``: clients validate that against the tool's
    output schema, error or not, and would replace the message with their own.
    """
    data = {key: REDACTOR.scrub(value) for key, value in error.to_dict().items()}
    text = f"[{data['code']}] {data['message']}" + (f"\n{data['hint']}" if data["hint"] else "")
    return CallToolResult.model_validate(
        {"isError": True, "content": [{"type": "text", "text": text}], "_meta": {ERROR_META_KEY: data}}
    )


def _redacted(result: Result) -> Result:
    """The result, as it would be sent, passed through the redactor (a no-op unless a secret slipped in)."""
    text = json.dumps(result, sort_keys=True)
    redacted = REDACTOR.redact(text)
    return result if redacted == text else cast("Result", json.loads(redacted))


async def _run(operation: Callable[[], Result]) -> Result:
    """Run one operation in a worker thread with a time limit; map every failure to a tool error.

    A failure is returned as a ``CallToolResult`` with ``isError`` set, which the
    SDK passes through unchanged (its type cannot be spelled in the tools' return
    annotations, which describe the success schema).
    """
    try:
        with anyio.fail_after(CALL_TIMEOUT_SECONDS):
            # The worker thread cannot be stopped; on timeout the call answers at once and the
            # thread finishes on its own (every write it makes is atomic and under a lock).
            return _redacted(await anyio.to_thread.run_sync(operation, abandon_on_cancel=True))
    except OrchestrationError as error:
        failure = _error_result(error)
    except TimeoutError:
        failure = _error_result(
            LimitError(
                f"The call took longer than {CALL_TIMEOUT_SECONDS:.0f} seconds.",
                "It may still complete in the background: check get_config_history before repeating it.",
            )
        )
    except Exception:
        log.exception("Unexpected error in a tool call")
        failure = _error_result(InternalError(InternalError.default_message))
    return cast("Result", failure)


def _resource(operation: Callable[[], Mapping[str, Any]]) -> str:
    """A resource body as JSON; an expected failure is a resource error with its code, redacted."""
    try:
        return REDACTOR.redact(json.dumps(operation()))
    except OrchestrationError as error:
        raise ResourceError(REDACTOR.scrub(f"[{error.code}] {error.message}")) from None


def _argument_error(text: str) -> OrchestrationError:
    """The SDK's own tool error as the product's error, without the data it quotes.

    Pydantic's messages quote the input (``input_value=...``): a model that puts
    a token in the wrong argument must not see it echoed into the transcript. A
    result that failed its own output schema is a bug of ours: ``internal``.
    """
    kept = [line.split(" [type=")[0] for line in text.splitlines() if not line.startswith("    For further")]
    message = "\n".join(kept)
    if "validation error" in message:
        kinds = _ERROR_TYPE.findall(text)
        if kinds and all(kind.endswith("too_long") for kind in kinds):  # a bound, as the operations report it
            return LimitError(message)
        return ValidationError(message)
    if message.startswith("Error executing tool"):  # our tools never raise: the result failed its schema
        log.error("A tool result failed its output schema: %s", REDACTOR.scrub(message))
        return InternalError(InternalError.default_message)
    return UsageError(message)


async def _hide_rejected_arguments(ctx: Any, call_next: Any) -> Any:
    """Rewrite the SDK's own errors, which quote the request: tool arguments, resource URIs.

    A failed ``resources/read`` comes back as a protocol error naming the URI;
    the URI is the client's input, so the error is re-raised with its text
    scrubbed and without the echoed data.
    """
    try:
        result = await call_next(ctx)
    except MCPError as error:
        if ctx.method != "resources/read":
            raise
        raise MCPError(error.error.code, REDACTOR.scrub(error.error.message)) from None
    if (
        ctx.method == "tools/call"
        and isinstance(result, dict)
        and result.get("isError")
        and ERROR_META_KEY not in result.get("_meta", {})
    ):
        text = "\n".join(str(block.get("text", "")) for block in result.get("content", []))
        failure = _error_result(_argument_error(text))
        return {**result, **failure.model_dump(mode="json", by_alias=True, exclude_none=True)}
    return result


def build_server(tools: ConfigTools) -> MCPServer:
    """The MCP server for one store."""
    server = MCPServer(
        SERVER_NAME, instructions=INSTRUCTIONS, version=_version(), middleware=[_hide_rejected_arguments]
    )

    def tool(name: str) -> Callable[[Callable[..., Any]], Any]:
        return server.tool(name=name, description=DESCRIPTIONS[name], structured_output=True)

    @tool("list_clients")
    async def list_clients() -> schemas.ClientList:
        return await _run(tools.list_clients)

    @tool("list_profiles")
    async def list_profiles(client: Client | None = None) -> schemas.ProfileList:
        return await _run(lambda: tools.list_profiles(client))

    @tool("get_config")
    async def get_config(
        client: Client,
        profile: Profile,
        artifact: Annotated[str | None, Field(description="A past artifact id (64 hex digits).")] = None,
    ) -> schemas.PublishedConfig:
        return await _run(lambda: tools.get_config(client, profile, artifact))

    @tool("diff_config")
    async def diff_config(client: Client, profile: Profile) -> schemas.ProfileDiff:
        return await _run(lambda: tools.diff_config(client, profile))

    @tool("list_available_servers")
    async def list_available_servers() -> schemas.ServerList:
        return await _run(tools.list_available_servers)

    @tool("describe_server")
    async def describe_server(
        server_id: Annotated[str, Field(description="Catalog server id.")],
    ) -> schemas.ServerDetails:
        return await _run(lambda: tools.describe_server(server_id))

    @tool("add_server_to_config")
    async def add_server_to_config(  # noqa: PLR0917 (the tool's arguments)
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
    ) -> schemas.DraftView:
        return await _run(
            lambda: tools.add_server_to_config(
                client, profile, server_id, name=name, parameters=parameters, optional_env=optional_env
            )
        )

    @tool("remove_server_from_config")
    async def remove_server_from_config(
        client: Client, profile: Profile, name: Annotated[str, Field(description="Server name in the config.")]
    ) -> schemas.DraftView:
        return await _run(lambda: tools.remove_server_from_config(client, profile, name))

    @tool("view_draft_config")
    async def view_draft_config(client: Client, profile: Profile) -> schemas.DraftWithDiff:
        return await _run(lambda: tools.view_draft_config(client, profile))

    @tool("clear_draft_config")
    async def clear_draft_config(client: Client, profile: Profile) -> schemas.DraftCleared:
        return await _run(lambda: tools.clear_draft_config(client, profile))

    @tool("validate_config")
    async def validate_config(client: Client, profile: Profile) -> schemas.ValidationResult:
        return await _run(lambda: tools.validate_config(client, profile))

    @tool("publish_config")
    async def publish_config(
        client: Client,
        profile: Profile,
        changelog: Annotated[str, Field(description="Why this version exists.", max_length=MAX_CHANGELOG_CHARS)] = "",
    ) -> schemas.PublishResult:
        return await _run(lambda: tools.publish_config(client, profile, changelog))

    @tool("get_config_history")
    async def get_config_history(client: Client, profile: Profile) -> schemas.ConfigHistory:
        return await _run(lambda: tools.get_config_history(client, profile))

    @tool("verify_config")
    async def verify_config(client: Client, profile: Profile) -> schemas.VerifyResult:
        return await _run(lambda: tools.verify_config(client, profile))

    @tool("get_trust_info")
    async def get_trust_info() -> schemas.TrustInfo:
        return await _run(tools.get_trust_info)

    @tool("export_config")
    async def export_config(client: Client, profile: Profile) -> schemas.ExportedConfig:
        return await _run(lambda: tools.export_config(client, profile))

    _register_resources(server, tools)
    return server


def _register_resources(server: MCPServer, tools: ConfigTools) -> None:
    @server.resource(
        "mcp-orchestration://capabilities",
        name="capabilities",
        description="Clients, catalog servers and tools this server offers.",
        mime_type="application/json",
    )
    def capabilities() -> str:
        return _resource(
            lambda: {
                "clients": tools.list_clients()["clients"],
                "servers": tools.list_available_servers()["servers"],
                "tools": sorted(DESCRIPTIONS),
            }
        )

    @server.resource(
        "mcp-orchestration://keys",
        name="key-history",
        description="The public key history: fingerprints, statuses and index ranges.",
        mime_type="application/json",
    )
    def key_history() -> str:
        return _resource(tools.get_trust_info)

    @server.resource(
        "mcp-orchestration://config/{client}/{profile}",
        name="latest-config",
        description="The latest published config of a client profile (masked).",
        mime_type="application/json",
    )
    def latest_config(client: str, profile: str) -> str:
        return _resource(lambda: tools.get_config(client, profile))

    @server.prompt(name="review_draft", description="Review a profile's draft before publishing it.")
    def review_draft(client: str, profile: str) -> str:
        check_name_id(client, "client")  # the ids go into the prompt's text: no injected instructions
        check_name_id(profile, "profile")
        return (
            f"Review the draft config of {client}/{profile} before it is published. Call view_draft_config and "
            "validate_config, explain each server it would start (command and arguments) and each environment "
            "variable it needs, point out anything risky (unpinned packages, broad filesystem access, network "
            "access), and ask for confirmation before calling publish_config."
        )


def _version() -> str:
    from mcp_orchestration.core.version import package_version

    return package_version()
