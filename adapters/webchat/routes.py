"""The web chat's HTTP routes: the visitors' socket, the widget's files and a demo page.

All public (visitors do not log in). The adapters layer cannot use the daemon's route
table, so the routes come as plain `ChatRoute`s and the composition root registers each
with its role (`contact_center.web.routes.PUBLIC`); the daemon's security headers (its
CSP) are handed in and sent on every file, as on the daemon's own pages.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from adapters.webchat.socket import ChatSocket

STATIC_DIR = Path(__file__).parent / "static"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class ChatRoute:
    """One public route of the web chat."""

    method: str
    path: str
    handler: Handler
    summary: str


def _file(name: str, content_type: str, headers: Mapping[str, str]) -> Handler:
    path = STATIC_DIR / name

    async def serve(request: web.Request) -> web.StreamResponse:
        response = web.FileResponse(path)
        response.content_type = content_type
        response.headers.update(headers)
        # Revalidated on each load (cheap: 304), so a new release reaches embedding sites.
        response.headers["Cache-Control"] = "no-cache"
        return response

    serve.__doc__ = f"The web chat's {name}."
    return serve


def chat_routes(socket: ChatSocket, security_headers: Mapping[str, str]) -> list[ChatRoute]:
    """The routes to register, each public: `/ws/chat`, the widget's script and style, the
    demo page (served with `security_headers`: the daemon's CSP and framing rules)."""

    # A function of its own, not the bound method: the daemon's route table keeps each
    # route's roles as attributes on its handler.
    async def chat_socket(request: web.Request) -> web.StreamResponse:
        """The visitors' WebSocket."""
        return await socket.handle(request)

    return [
        ChatRoute("GET", "/ws/chat", chat_socket, "Web chat visitors' WebSocket"),
        ChatRoute(
            "GET",
            "/chat/widget.js",
            _file("widget.js", "text/javascript", security_headers),
            "Web chat widget script (one script tag embeds it)",
        ),
        ChatRoute(
            "GET",
            "/chat/widget.css",
            _file("widget.css", "text/css", security_headers),
            "Web chat widget style",
        ),
        ChatRoute(
            "GET",
            "/chat/demo",
            _file("demo.html", "text/html", security_headers),
            "A page that embeds the web chat widget",
        ),
    ]
