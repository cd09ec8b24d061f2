"""The browser pages: login, agent desktop, supervisor wallboard, and their static files.

Plain HTML, CSS and JavaScript modules served as they are: nothing to build.
"""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web

from contact_center.keys import DAEMON
from contact_center.web.routes import ANY_USER, PUBLIC, SUPERVISORS, RouteSpec

STATIC_DIR = Path(__file__).parent / "static"
_SAFE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*\.(js|css|html|svg)$")
_TYPES = {
    "js": "text/javascript",
    "css": "text/css",
    "html": "text/html",
    "svg": "image/svg+xml",
}
# The pages hold no inline script or style: the policy forbids everything not served by us.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
# On every page and every static file: a file opened directly must be as unframeable and
# unsniffable as the page that links it (X-Frame-Options for browsers without CSP 2).
SECURITY_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
}


def secure(response: web.StreamResponse) -> web.StreamResponse:
    """`response` with the pages' security headers."""
    response.headers.update(SECURITY_HEADERS)
    return response


def _page(name: str) -> web.StreamResponse:
    response = secure(web.FileResponse(STATIC_DIR / name))
    response.headers["Cache-Control"] = "no-store"
    return response


async def login_page(request: web.Request) -> web.StreamResponse:
    """The login form."""
    return _page("login.html")


async def desktop_page(request: web.Request) -> web.StreamResponse:
    """The agent desktop."""
    return _page("desktop.html")


async def wallboard_page(request: web.Request) -> web.StreamResponse:
    """The supervisor wallboard."""
    return _page("wallboard.html")


async def static_file(request: web.Request) -> web.StreamResponse:
    """A script or stylesheet of the pages (no data: public).

    Not the pages themselves: those have their own routes, with the login redirect.
    """
    name = request.match_info["name"]
    path = STATIC_DIR / name
    if not _SAFE_NAME.match(name) or name.endswith(".html") or not path.is_file():
        raise web.HTTPNotFound()
    response = web.FileResponse(path)
    response.content_type = _TYPES[name.rsplit(".", 1)[1]]
    return secure(response)


async def desktop_settings(request: web.Request) -> web.Response:
    """What the pages need from the configuration: reason codes, dispositions, queues."""
    config = request.app[DAEMON].config
    return web.json_response(
        {
            "reason_codes": list(config.routing.reason_codes),
            "dispositions": list(config.routing.dispositions),
            "wrap_up_seconds": config.routing.wrap_up_seconds,
            "queues": [
                {
                    "name": q.name,
                    "channels": list(q.channels),
                    "sla_seconds": q.sla_seconds,
                }
                for q in config.queues
            ],
            "pbx_mode": config.pbx.mode,
            "canned_replies": [r.model_dump() for r in config.channels.canned_replies],
        }
    )


ROUTES = [
    RouteSpec("GET", "/login", login_page, PUBLIC, "Login page", page=True),
    RouteSpec("GET", "/desktop", desktop_page, ANY_USER, "Agent desktop", page=True),
    RouteSpec("GET", "/wallboard", wallboard_page, SUPERVISORS, "Wallboard", page=True),
    RouteSpec("GET", "/static/{name}", static_file, PUBLIC, "Page assets"),
    RouteSpec("GET", "/api/v1/settings", desktop_settings, ANY_USER, "Settings the pages use"),
]
