"""The listening socket of ``serve --http``: what every connection it accepts inherits."""

from __future__ import annotations

import asyncio
import socket

from mcp_orchestration.server import http


async def accepted_nodelay(sock: socket.socket, port: int) -> int:
    """TCP_NODELAY of a connection accepted on ``sock`` as uvicorn serves it (``loop.create_server(sock=...)``)."""
    accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            peer: socket.socket = transport.get_extra_info("socket")
            accepted.set_result(peer.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    server = await asyncio.get_running_loop().create_server(Probe, sock=sock)
    async with server:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            return await asyncio.wait_for(accepted, timeout=10)
        finally:
            writer.close()


def test_accepted_connections_send_without_waiting_for_acks() -> None:
    """Nagle's algorithm is off on every connection, as uvicorn has it on the sockets it binds itself.

    With it on, a response written in two parts (uvicorn sends the headers,
    then the body) waits for the client's delayed ACK of the first: about 40 ms
    added to every 2026-07-28 request on Linux. asyncio turns it off only for
    a socket created as TCP (``proto`` IPPROTO_TCP), not for ``proto`` 0.
    """
    sock, endpoint = http.listen(http.HttpEndpoint("127.0.0.1", 0))

    assert asyncio.run(accepted_nodelay(sock, endpoint.port)) != 0


def test_the_listening_socket_is_the_asked_address_with_the_port_it_got() -> None:
    sock, endpoint = http.listen(http.HttpEndpoint("127.0.0.1", 0))
    with sock:
        assert sock.getsockname() == ("127.0.0.1", endpoint.port)
        assert endpoint.port != 0
        assert endpoint.url == f"http://127.0.0.1:{endpoint.port}/mcp"
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) != 0
