"""The MCP server: tool, resource and prompt registration on the official SDK, and nothing else.

Every tool is a row of :data:`~mcp_orchestration.server.registry.TOOLS`, all
registered the same way, once: that one registration serves every protocol
generation the SDK speaks (2025-11-25 sessions, 2026-07-28 stateless requests).
Every tool runs its :class:`~mcp_orchestration.server.tools.ConfigTools` method
in a worker thread under a time limit; an expected failure becomes a tool error
with a stable code, anything else a generic ``internal`` error, and all text
passes through the redactor. Served over HTTP with authorization, a call also
needs its tool's scope, and runs on behalf of the token's principal (who is
then named in what it signs and logs).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

import anyio
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult

from mcp_orchestration.app.attribution import acting_for
from mcp_orchestration.core.errors import (
    InsufficientScopeError,
    InternalError,
    LimitError,
    OrchestrationError,
    UsageError,
    ValidationError,
)
from mcp_orchestration.security.ids import check_name_id
from mcp_orchestration.security.principal import Principal
from mcp_orchestration.security.redaction import REDACTOR
from mcp_orchestration.server.auth import principal_of
from mcp_orchestration.server.registry import TOOLS, ToolSpec
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

DESCRIPTIONS: dict[str, str] = {spec.name: spec.description for spec in TOOLS}


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


async def _run(operation: Callable[[], Result], principal: Principal | None = None) -> Result:
    """Run one operation in a worker thread with a time limit, for ``principal``; map every failure to a tool error.

    A failure is returned as a ``CallToolResult`` with ``isError`` set, which the
    SDK passes through unchanged (its type cannot be spelled in the tools' return
    annotations, which describe the success schema).
    """
    try:
        with acting_for(principal), anyio.fail_after(CALL_TIMEOUT_SECONDS):  # the thread runs in a copy of this context
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


def build_server(
    tools: ConfigTools, *, auth: AuthSettings | None = None, token_verifier: TokenVerifier | None = None
) -> MCPServer:
    """The MCP server for one store; with ``auth`` (HTTP only), a request needs a token ``token_verifier`` accepts."""
    server = MCPServer(
        SERVER_NAME,
        instructions=INSTRUCTIONS,
        version=_version(),
        middleware=[_hide_rejected_arguments],
        auth=auth,
        token_verifier=token_verifier,
    )

    for spec in TOOLS:
        _register_tool(server, tools, spec, authorized=auth is not None)
    _register_resources(server, tools)
    return server


def _caller(spec: ToolSpec) -> Principal:
    """The principal of the request's token, if it grants ``spec``'s scope; else the refusal.

    The endpoint admits only tokens with the read scope; a writing tool's own
    scope is checked here, per call. No token at all (it cannot happen behind
    the SDK's middleware) is refused too: the check fails closed.
    """
    token = get_access_token()
    if token is None or spec.scope not in token.scopes:
        raise InsufficientScopeError(f"{spec.name} needs the scope {spec.scope}, which this token does not grant.")
    return principal_of(token)


def _register_tool(server: MCPServer, tools: ConfigTools, spec: ToolSpec, *, authorized: bool) -> None:
    """Serve ``spec``: its method's signature is the tool's schema; each call looks the method up on ``tools``.

    ``authorized``: the server checks tokens, so each call needs the tool's scope and runs for the token's principal.
    """

    async def call(**arguments: Any) -> Any:
        try:
            principal = _caller(spec) if authorized else None
        except InsufficientScopeError as error:
            return _error_result(error)
        return await _run(lambda: getattr(tools, spec.name)(**arguments), principal)

    call.__name__ = spec.name  # the SDK names the input schema after it
    call.__signature__ = spec.signature  # type: ignore[attr-defined]
    server.add_tool(
        call, name=spec.name, description=spec.description, annotations=spec.annotations, structured_output=True
    )


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
